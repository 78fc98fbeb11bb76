//! The waiting room's rules, free of HTTP and Redis: who a fan is, what a ticket
//! proves, when a fan's own id is vouched for, what settings an organizer may choose,
//! how the pre-queue is shuffled, how long a fan should expect to wait and how soon
//! they should poll again, how many fans the sale's remaining places can use, and what
//! an admission receipt says.

pub mod budget;
pub mod eta;
pub mod fan;
pub mod poll;
pub mod receipt;
pub mod settings;
pub mod shuffle;
pub mod ticket;
pub mod vouched;

pub use service_kit::Invalid;
