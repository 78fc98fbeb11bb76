//! A new event as an organizer describes it, checked and expanded into seat rows.

use service_kit::quoted;

use super::Invalid;
use crate::states::SectionKind;

pub const MAX_SEATS_PER_SECTION: u32 = 100_000;
pub const MAX_SEATS_PER_EVENT: u32 = 200_000;
pub const MAX_SECTIONS: usize = 100;
/// The most places one order may take, whatever the event allows.
pub const MAX_PER_ORDER: u32 = 100;
pub const MAX_ROWS_PER_SECTION: usize = 1_000;
/// The highest price of a seat, in minor units (10 billion in a two-decimal currency):
/// far above any ticket, and low enough that an order's total (at most 100 seats)
/// stays far inside a bigint. Near `i64::MAX`, two seats' total overflowed.
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000_000;

/// How a section's places are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Named seats in rows, best row first. A row without a label numbers its seats
    /// plainly ("1".."N"); a labelled row prefixes them ("A-1").
    Reserved(Vec<Row>),
    /// A capacity and no seat names.
    GeneralAdmission(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub label: Option<String>,
    pub seats: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSection {
    pub name: String,
    pub price_minor: i64,
    pub layout: Layout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub name: String,
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    pub currency: String,
    pub max_per_order: u32,
    pub hold_ttl_seconds: u32,
    pub sections: Vec<NewSection>,
    /// None: fans may not cancel (the organizer still can).
    pub refund_policy: Option<super::refund_policy::RefundPolicy>,
    /// Places one fan may hold and book in this event in all (see [`check_max_per_fan`]);
    /// None: no limit.
    pub max_per_fan: Option<u32>,
    pub waitlist: WaitlistSettings,
    /// Listed in the public catalogue from the start.
    pub published: bool,
}

/// Whether fans may wait for the event's sold-out sections, and how long an offer holds
/// its places for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitlistSettings {
    pub enabled: bool,
    pub offer_ttl_seconds: u32,
}

impl Default for WaitlistSettings {
    /// Off; offers last 30 minutes once it is turned on.
    fn default() -> Self {
        Self { enabled: false, offer_ttl_seconds: 1800 }
    }
}

/// The longest a waitlist offer may last: a week.
pub const MAX_OFFER_TTL_SECONDS: u32 = 604_800;

/// An offer lasts 1 second to [`MAX_OFFER_TTL_SECONDS`]: at creation and when the
/// organizer changes it.
pub fn check_offer_ttl(seconds: u32) -> Result<(), Invalid> {
    if (1..=MAX_OFFER_TTL_SECONDS).contains(&seconds) {
        Ok(())
    } else {
        Err(Invalid::new(
            "invalid_event",
            format!("waitlist_offer_ttl_secs must be between 1 and {MAX_OFFER_TTL_SECONDS}"),
        ))
    }
}

/// The highest `max_per_fan`: an event's largest size. A limit at or above the event's
/// capacity limits nothing, and is allowed.
pub const MAX_PER_FAN: u32 = MAX_SEATS_PER_EVENT;

/// `max_per_fan`, when set, is 1 to [`MAX_PER_FAN`]: at creation and when the organizer
/// changes it.
pub fn check_max_per_fan(max_per_fan: Option<u32>) -> Result<(), Invalid> {
    match max_per_fan {
        Some(n) if !(1..=MAX_PER_FAN).contains(&n) => {
            Err(Invalid::new("invalid_event", format!("max_per_fan must be between 1 and {MAX_PER_FAN}, or null")))
        }
        _ => Ok(()),
    }
}

/// One seat row to insert: everything but its owner and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatSpec {
    pub label: Option<String>,
    pub row_label: Option<String>,
    pub row_rank: i32,
    pub seat_number: i32,
    pub sort_key: i32,
}

impl NewSection {
    pub fn kind(&self) -> SectionKind {
        match self.layout {
            Layout::Reserved(_) => SectionKind::Reserved,
            Layout::GeneralAdmission(_) => SectionKind::GeneralAdmission,
        }
    }

    pub fn capacity(&self) -> u32 {
        match &self.layout {
            Layout::Reserved(rows) => rows.iter().map(|r| r.seats).sum(),
            Layout::GeneralAdmission(capacity) => *capacity,
        }
    }

    /// The section's seat rows, best first.
    pub fn seats(&self) -> Vec<SeatSpec> {
        match &self.layout {
            Layout::GeneralAdmission(capacity) => (1..=*capacity as i32)
                .map(|n| SeatSpec { label: None, row_label: None, row_rank: 0, seat_number: n, sort_key: n })
                .collect(),
            Layout::Reserved(rows) => {
                let mut sort_key = 0;
                let mut seats = Vec::with_capacity(self.capacity() as usize);
                for (rank, row) in rows.iter().enumerate() {
                    for n in 1..=row.seats as i32 {
                        sort_key += 1;
                        let label = match &row.label {
                            Some(row_label) => format!("{row_label}-{n}"),
                            None => n.to_string(),
                        };
                        seats.push(SeatSpec {
                            label: Some(label),
                            row_label: row.label.clone(),
                            row_rank: rank as i32,
                            seat_number: n,
                            sort_key,
                        });
                    }
                }
                seats
            }
        }
    }
}

impl NewEvent {
    /// Checks every rule an event must meet before anything is written.
    pub fn validate(&self) -> Result<(), Invalid> {
        let invalid = |message: String| Err(Invalid::new("invalid_event", message));
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return invalid("name must be 1-200 characters".into());
        }
        if has_control_characters(&self.name) {
            return invalid(format!("name {} must not contain control characters", quoted(&self.name)));
        }
        if !is_currency_code(&self.currency) {
            return invalid(format!("currency {} must be an ISO 4217 code such as EUR", quoted(&self.currency)));
        }
        if !(1..=MAX_PER_ORDER).contains(&self.max_per_order) {
            return invalid(format!("max_per_order must be between 1 and {MAX_PER_ORDER}"));
        }
        check_max_per_fan(self.max_per_fan)?;
        check_offer_ttl(self.waitlist.offer_ttl_seconds)?;
        if !(1..=86_400).contains(&self.hold_ttl_seconds) {
            return invalid("hold_ttl_seconds must be between 1 and 86400".into());
        }
        if self.sections.is_empty() || self.sections.len() > MAX_SECTIONS {
            return invalid(format!("an event needs 1-{MAX_SECTIONS} sections"));
        }
        let mut names = std::collections::HashSet::new();
        let mut row_labels = std::collections::HashSet::new();
        let mut unnamed_rows = 0;
        for section in &self.sections {
            section.validate()?;
            if !names.insert(section.name.as_str()) {
                return invalid(format!("section name {} is used twice", quoted(&section.name)));
            }
            if let Layout::Reserved(rows) = &section.layout {
                for row in rows {
                    match &row.label {
                        Some(label) if !row_labels.insert(label.as_str()) => {
                            return invalid(format!(
                                "row {} appears twice; seat labels must be unique in an event",
                                quoted(label)
                            ))
                        }
                        Some(_) => {}
                        None => unnamed_rows += 1,
                    }
                }
            }
        }
        if unnamed_rows > 1 {
            return invalid("only one row in an event may be unlabelled (its seats are plain numbers)".into());
        }
        if let Some(policy) = &self.refund_policy {
            policy.validate()?;
        }
        let total: u64 = self.sections.iter().map(|s| u64::from(s.capacity())).sum();
        if total > u64::from(MAX_SEATS_PER_EVENT) {
            return invalid(format!("an event may have at most {MAX_SEATS_PER_EVENT} seats, this one has {total}"));
        }
        Ok(())
    }
}

impl NewSection {
    fn validate(&self) -> Result<(), Invalid> {
        let invalid = |message: String| Err(Invalid::new("invalid_event", message));
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            return invalid("section name must be 1-100 characters".into());
        }
        let name = quoted(&self.name);
        if has_control_characters(&self.name) {
            return invalid(format!("section name {name} must not contain control characters"));
        }
        if !(0..=MAX_PRICE_MINOR).contains(&self.price_minor) {
            return invalid(format!("section {name}: price must be 0-{MAX_PRICE_MINOR} minor units"));
        }
        match &self.layout {
            Layout::GeneralAdmission(capacity) => {
                if !(1..=MAX_SEATS_PER_SECTION).contains(capacity) {
                    return invalid(format!("section {name}: capacity must be 1-{MAX_SEATS_PER_SECTION}"));
                }
            }
            Layout::Reserved(rows) => {
                if rows.is_empty() || rows.len() > MAX_ROWS_PER_SECTION {
                    return invalid(format!("section {name}: needs 1-{MAX_ROWS_PER_SECTION} rows"));
                }
                for row in rows {
                    if let Some(label) = &row.label {
                        if !is_row_label(label) {
                            return invalid(format!(
                                "section {name}: row label {} must be 1-8 letters or digits",
                                quoted(label)
                            ));
                        }
                    }
                    if row.seats == 0 {
                        return invalid(format!("section {name}: every row needs at least one seat"));
                    }
                }
                if self.capacity() > MAX_SEATS_PER_SECTION {
                    return invalid(format!("section {name}: at most {MAX_SEATS_PER_SECTION} seats"));
                }
            }
        }
        Ok(())
    }
}

/// NUL cannot be stored in a PostgreSQL text column (the insert failed with a 500), and
/// the others (newlines, escapes, C1 controls) have no place in a name shown on tickets
/// and dashboards.
fn has_control_characters(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn is_currency_code(s: &str) -> bool {
    s.len() == 3 && s.chars().all(|c| c.is_ascii_uppercase())
}

fn is_row_label(s: &str) -> bool {
    (1..=8).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reserved(name: &str, rows: &[(Option<&str>, u32)]) -> NewSection {
        NewSection {
            name: name.into(),
            price_minor: 1000,
            layout: Layout::Reserved(
                rows.iter().map(|(label, seats)| Row { label: label.map(String::from), seats: *seats }).collect(),
            ),
        }
    }

    fn event(sections: Vec<NewSection>) -> NewEvent {
        NewEvent {
            name: "Show".into(),
            starts_at: None,
            currency: "EUR".into(),
            max_per_order: 6,
            hold_ttl_seconds: 600,
            sections,
            refund_policy: None,
            max_per_fan: None,
            waitlist: WaitlistSettings::default(),
            published: false,
        }
    }

    #[test]
    fn labelled_rows_give_row_prefixed_labels_best_row_first() {
        let seats = reserved("Stalls", &[(Some("A"), 2), (Some("B"), 1)]).seats();
        let labels: Vec<_> = seats.iter().map(|s| s.label.clone().unwrap()).collect();
        assert_eq!(labels, ["A-1", "A-2", "B-1"]);
        assert_eq!(seats.iter().map(|s| s.row_rank).collect::<Vec<_>>(), [0, 0, 1]);
        assert_eq!(seats.iter().map(|s| s.sort_key).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn an_unlabelled_row_numbers_seats_plainly() {
        let seats = reserved("Seats", &[(None, 3)]).seats();
        let labels: Vec<_> = seats.iter().map(|s| s.label.clone().unwrap()).collect();
        assert_eq!(labels, ["1", "2", "3"]);
    }

    #[test]
    fn general_admission_places_have_no_labels() {
        let ga = NewSection { name: "Floor".into(), price_minor: 0, layout: Layout::GeneralAdmission(3) };
        assert_eq!(ga.capacity(), 3);
        assert!(ga.seats().iter().all(|s| s.label.is_none()));
    }

    #[test]
    fn a_row_label_used_in_two_sections_is_rejected() {
        let e = event(vec![reserved("Stalls", &[(Some("A"), 2)]), reserved("Circle", &[(Some("A"), 2)])]);
        assert_eq!(e.validate().unwrap_err().code, "invalid_event");
    }

    #[test]
    fn two_unlabelled_rows_are_rejected_because_their_labels_would_clash() {
        let e = event(vec![reserved("Stalls", &[(None, 2)]), reserved("Circle", &[(None, 2)])]);
        assert!(e.validate().is_err());
    }

    #[test]
    fn control_characters_and_prices_past_the_cap_are_rejected() {
        let mut e = event(vec![reserved("Stalls", &[(Some("A"), 2)])]);
        e.name = "Show\0".into();
        assert!(e.validate().is_err());
        let mut e = event(vec![reserved("Stalls\u{9b}", &[(Some("A"), 2)])]);
        assert!(e.validate().is_err());
        e.sections[0].name = "Stalls".into();
        e.sections[0].price_minor = MAX_PRICE_MINOR;
        assert!(e.validate().is_ok());
        e.sections[0].price_minor = MAX_PRICE_MINOR + 1;
        assert!(e.validate().is_err());
    }

    #[test]
    fn bad_currency_and_empty_sections_are_rejected() {
        let mut e = event(vec![reserved("Stalls", &[(Some("A"), 2)])]);
        assert!(e.validate().is_ok());
        e.currency = "eur".into();
        assert!(e.validate().is_err());
        assert!(event(vec![]).validate().is_err());
    }
}
