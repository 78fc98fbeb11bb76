//! The address a fan gives for their confirmation email.

use email_address::EmailAddress;

use super::Invalid;

/// RFC 5321's limit on a path, and the column's (`*_contact_email_shape`).
const MAX_LENGTH: usize = 254;

/// An address mail can be sent to: valid by RFC 5322 and, narrower than it allows, one
/// `@` and no spaces (no quoted local parts), as `migrations/*_contact_email.sql` checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactEmail(String);

impl ContactEmail {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let address = raw.trim();
        let plain = address.matches('@').count() == 1 && !address.chars().any(char::is_whitespace);
        if address.len() > MAX_LENGTH || !plain || !EmailAddress::is_valid(address) {
            return Err(Invalid::new(
                "invalid_email",
                format!("`email` must be a plain address such as fan@example.com, at most {MAX_LENGTH} characters"),
            ));
        }
        Ok(Self(address.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_are_taken_trimmed() {
        assert_eq!(ContactEmail::parse(" fan@example.com ").unwrap().as_str(), "fan@example.com");
        assert_eq!(ContactEmail::parse("a.b+tag@mail.example.org").unwrap().as_str(), "a.b+tag@mail.example.org");
    }

    #[test]
    fn anything_else_is_refused() {
        let too_long = format!("{}@example.com", "a".repeat(250));
        for raw in
            ["", "fan", "fan@", "@example.com", "a@b@example.com", "\"a b\"@example.com", "fan @example.com", &too_long]
        {
            assert_eq!(ContactEmail::parse(raw).unwrap_err().code, "invalid_email", "{raw:?}");
        }
    }
}
