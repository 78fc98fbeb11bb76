//! Integration tests against the real Redis at 127.0.0.1:6379, each test under its
//! own key prefix.

mod admission;
mod helpers;
mod prequeue;
mod queue;
mod tokens;
