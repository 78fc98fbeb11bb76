//! The sale's rules, free of HTTP and SQL: what a valid event is, what a fan may
//! ask for, and which seats "best available" means.

pub mod best_available;
pub mod booking_link;
pub mod capability_link;
pub mod contact_email;
pub mod event;
pub mod offer_link;
pub mod refund_policy;
pub mod sale_state;
pub mod selection;
pub mod ticket_secret;

pub use service_kit::Invalid;
