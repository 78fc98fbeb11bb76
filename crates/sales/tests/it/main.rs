//! The sales crate against a real PostgreSQL: one test database each.

mod plans;
