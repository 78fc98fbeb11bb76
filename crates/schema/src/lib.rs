//! The one database schema of boxoffice and its one migrator.
//!
//! Every table — the sale's inventory and the waiting room's durable record — is
//! created by the migrations in `migrations/` at the workspace root, applied by
//! [`MIGRATOR`]. Two migrators on one database would fight over `_sqlx_migrations`
//! (each refuses the other's applied versions), so every service, `boxoffice migrate`
//! and every test use this one.

/// The migrations of the boxoffice schema (`migrations/` at the workspace root).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
