//! The sales crate against a real PostgreSQL: one test database each.

mod best_available;
mod plans;
