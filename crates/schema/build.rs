// `sqlx::migrate!` embeds the migration files at compile time, but on stable Rust it
// cannot tell Cargo to watch them: without this a new migration would not be built
// into the binary until something else in this crate changed.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
