//! Fan identity: chosen by the client or issued by the waiting room.

use std::fmt;

use uuid::Uuid;

use super::Invalid;

pub const MAX_FAN_ID_LEN: usize = 64;

/// A fan's id: 1-64 characters of letters, digits, `-`, `_` or `.`.
///
/// The alphabet keeps ids safe inside Redis members, tickets, logs and the published
/// shuffle input, where a separator or control character could make two fans collide.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FanId(String);

impl FanId {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let valid = (1..=MAX_FAN_ID_LEN).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new(
                "invalid_fan_id",
                format!("fan_id must be 1-{MAX_FAN_ID_LEN} characters of letters, digits, '-', '_' or '.'"),
            ))
        }
    }

    /// A fresh id for a fan who did not bring one.
    pub fn issue() -> Self {
        Self(Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_ids_outside_the_alphabet_are_rejected() {
        for bad in ["", "a b", "a:b", "é", &"x".repeat(65), "a\nb"] {
            assert!(FanId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(FanId::parse("fan-1_A.b").is_ok());
    }

    #[test]
    fn issued_ids_are_valid_and_distinct() {
        let (a, b) = (FanId::issue(), FanId::issue());
        assert_ne!(a, b);
        assert_eq!(FanId::parse(a.as_str()), Ok(a));
    }
}
