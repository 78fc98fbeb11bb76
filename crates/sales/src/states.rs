//! The states the database types as enums (`migrations/*_inventory.sql`), as Rust enums
//! that read and write those types directly and serialise as the API spells them.

use std::fmt;

use serde::Serialize;

/// `seat_state`: who owns a seat row now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "seat_state", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum SeatState {
    Available,
    Held,
    Booked,
}

/// `hold_status`: an active hold ends confirmed, released by the fan, or expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "hold_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Active,
    Confirmed,
    Released,
    Expired,
}

/// `booking_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "booking_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Confirmed,
    Cancelled,
}

/// `section_kind`: named seats in rows, or places without names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "section_kind", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum SectionKind {
    Reserved,
    GeneralAdmission,
}

/// Messages name a state as the API does; the serde rename rule is the one spelling.
impl fmt::Display for HoldStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(name)) => f.write_str(&name),
            _ => write!(f, "{self:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_named_as_the_api_and_the_database_name_them() {
        assert_eq!(HoldStatus::Released.to_string(), "released");
        assert_eq!(serde_json::to_value(SectionKind::GeneralAdmission).unwrap(), "general_admission");
        assert_eq!(serde_json::to_value(BookingStatus::Cancelled).unwrap(), "cancelled");
        assert_eq!(serde_json::to_value(SeatState::Available).unwrap(), "available");
    }
}
