//! What a fan asks to hold or book, checked against the event's rules.

use uuid::Uuid;

use super::Invalid;

/// The seats a fan asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These seats exactly, all or none.
    Chosen(Vec<String>),
    /// Any `quantity` places in a section: best available in a reserved section,
    /// the next free places in general admission.
    Section { section_id: Uuid, quantity: u32 },
}

impl Selection {
    /// Builds a selection from the request's two mutually exclusive forms.
    pub fn parse(
        seats: Option<Vec<String>>,
        section_id: Option<Uuid>,
        quantity: Option<i64>,
        max_per_order: u32,
    ) -> Result<Self, Invalid> {
        match (seats, section_id, quantity) {
            (Some(seats), None, None) => Self::chosen(seats, max_per_order),
            (None, Some(section_id), Some(quantity)) => {
                let quantity = check_quantity(quantity, max_per_order)?;
                Ok(Self::Section { section_id, quantity })
            }
            (None, Some(_), None) => Err(Invalid::new("invalid_quantity", "quantity is required with section_id")),
            _ => Err(Invalid::new(
                "invalid_selection",
                "give either \"seats\" (a list of seat labels) or \"section_id\" with \"quantity\"",
            )),
        }
    }

    fn chosen(seats: Vec<String>, max_per_order: u32) -> Result<Self, Invalid> {
        check_quantity(seats.len() as i64, max_per_order)?;
        let mut seen = std::collections::HashSet::new();
        for label in &seats {
            if !is_seat_label(label) {
                return Err(Invalid::new(
                    "unknown_seat",
                    format!("{} is not a seat label such as \"A-12\"", service_kit::quoted(label)),
                ));
            }
            if !seen.insert(label.as_str()) {
                return Err(Invalid::new("duplicate_seat", format!("seat {label} is listed twice")));
            }
        }
        Ok(Self::Chosen(seats))
    }
}

fn check_quantity(quantity: i64, max_per_order: u32) -> Result<u32, Invalid> {
    if quantity <= 0 {
        return Err(Invalid::new("invalid_quantity", "quantity must be at least 1"));
    }
    if quantity > i64::from(max_per_order) {
        return Err(Invalid::new(
            "order_limit_exceeded",
            format!("at most {max_per_order} seats per order for this event"),
        ));
    }
    Ok(quantity as u32)
}

fn is_seat_label(s: &str) -> bool {
    (1..=20).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_seats_are_accepted_up_to_the_order_limit() {
        let s = Selection::parse(Some(vec!["A-1".into(), "A-2".into()]), None, None, 2).unwrap();
        assert_eq!(s, Selection::Chosen(vec!["A-1".into(), "A-2".into()]));
        let err = Selection::parse(Some(vec!["A-1".into(), "A-2".into(), "A-3".into()]), None, None, 2).unwrap_err();
        assert_eq!(err.code, "order_limit_exceeded");
    }

    #[test]
    fn quantity_must_be_positive() {
        for q in [0, -1] {
            let err = Selection::parse(None, Some(Uuid::nil()), Some(q), 6).unwrap_err();
            assert_eq!(err.code, "invalid_quantity");
        }
        assert_eq!(Selection::parse(Some(vec![]), None, None, 6).unwrap_err().code, "invalid_quantity");
    }

    #[test]
    fn both_forms_at_once_or_neither_are_rejected() {
        assert_eq!(Selection::parse(None, None, None, 6).unwrap_err().code, "invalid_selection");
        let both = Selection::parse(Some(vec!["1".into()]), Some(Uuid::nil()), Some(1), 6);
        assert_eq!(both.unwrap_err().code, "invalid_selection");
    }

    #[test]
    fn duplicate_and_malformed_labels_are_rejected() {
        let dup = Selection::parse(Some(vec!["1".into(), "1".into()]), None, None, 6).unwrap_err();
        assert_eq!(dup.code, "duplicate_seat");
        let bad = Selection::parse(Some(vec!["A 1; DROP".into()]), None, None, 6).unwrap_err();
        assert_eq!(bad.code, "unknown_seat");
    }
}
