//! The seats' change feed (DECISIONS.md D3, `migrations/*_seat_changes.sql`).
//!
//! Every change of a seat is a row written by the changing transaction (a trigger on
//! `seats`), numbered by its transaction id. A reader keeps a position and reads
//! [`store::changes_since`] it: the rows below the oldest transaction still running,
//! and moves there, so a change that commits late is never skipped and none is read
//! twice. A new reader, or one the pruning left behind, starts from
//! [`store::snapshot`], which says where to read on from.
//!
//! [`counts`] keeps an event's places for sale and held from the rows (the waiting
//! room's admission budget); [`live`] keeps an event's seat map for the fans watching
//! it (the gateway's seat stream). No HTTP here: the services wrap it.

pub mod counts;
pub mod live;
pub mod store;

pub use counts::{Availability, EventCounts, Position, SeatState, SectionChange};
pub use store::{EventWaitlist, Read};
