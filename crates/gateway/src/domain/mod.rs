//! The gateway's rules, free of HTTP and SQL: what a valid event is, what a fan may
//! ask for, and which seats "best available" means.

pub mod best_available;
pub mod event;
pub mod selection;

/// A rule broken by the caller's input: answered 422 with this code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}
