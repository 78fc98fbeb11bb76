//! The waiting room's rules, free of HTTP and Redis: who a fan is, what a ticket
//! proves, when a fan's own id is vouched for, what settings an organizer may choose, how the pre-queue is shuffled, and
//! how long a fan should expect to wait.

pub mod eta;
pub mod fan;
pub mod settings;
pub mod shuffle;
pub mod ticket;
pub mod vouched;

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
