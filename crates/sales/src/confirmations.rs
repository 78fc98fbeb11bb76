//! Emails to fans: the outbox's `confirmation_email` subscriber, what one booking's
//! confirmation carries (its tickets with their secrets, its capability link, the
//! refund policy), and what a waitlist offer's email carries (the places, until when,
//! the offer's capability link). The scheduler's sender renders and sends them.
//!
//! Secrets are signed here, so the process that sends the emails holds the ticket
//! signing key (DECISIONS.md D6: it issues the tickets it mails, as the gateway issues
//! those it shows). Ed25519 is deterministic: the email carries the same secret the
//! gateway shows for the same ticket and issue.

use chrono::{DateTime, Utc};
use service_kit::postgres::Database;
use uuid::Uuid;

use crate::domain::refund_policy::NO_POLICY_IN_WORDS;
use crate::error::{Error, Result};
use crate::model::Price;
use crate::states::BookingStatus;
use crate::states::SubscriberKind;
use crate::store::bookings::BookingKey;
use crate::store::confirmations as store;
use crate::store::deliveries::{self, Subscriber};
use crate::store::tickets as ticket_store;
use crate::tickets::{view, TicketSigner, TicketView};

/// The one subscriber of kind `confirmation_email` (every event's `booking.confirmed`).
pub const SUBSCRIBER_ID: Uuid = Uuid::from_u128(0x0b0c_0f1c_e000_4000_8000_0000_e3a1_1001);

/// Everything a booking's confirmation email says.
#[derive(Debug, Clone)]
pub struct Confirmation {
    pub event_id: Uuid,
    pub booking_id: Uuid,
    pub event_name: String,
    pub starts_at: Option<DateTime<Utc>>,
    /// The refund policy in force now, in words.
    pub refund_policy: String,
    pub total: Price,
    /// The booking's capability link (the token; the sender makes the URL).
    pub link: String,
    /// Best seat first; none revoked (a booking whose tickets are revoked is cancelled).
    pub tickets: Vec<TicketView>,
}

/// Turns the confirmation emails' subscriber on (email configured: it is written if
/// missing) or off (it hears nothing until turned on again: bookings made meanwhile get
/// no email). See `migrations/*_confirmation_emails.sql`.
pub async fn set_enabled(db: &Database, enabled: bool) -> Result<()> {
    let subscriber = Subscriber {
        id: SUBSCRIBER_ID,
        kind: SubscriberKind::ConfirmationEmail,
        topics: &["booking.confirmed", "waitlist.offer_made"],
        ordered: true,
    };
    db.write(move |conn| Box::pin(deliveries::set_subscriber(conn, subscriber, enabled))).await
}

/// The confirmation of the booking, with its secrets signed by `signer`; None when there
/// is nothing to confirm any more: no such booking, or it was cancelled before its
/// email went out.
#[tracing::instrument(skip(db, signer))]
pub async fn confirmation(
    db: &Database,
    signer: &TicketSigner,
    event_id: Uuid,
    booking_id: Uuid,
) -> Result<Option<Confirmation>> {
    let (booking, tickets) = db
        .read(move |conn| {
            Box::pin(async move {
                let Some(booking) = store::booking(conn, event_id, booking_id).await? else {
                    return Ok::<_, Error>((None, Vec::new()));
                };
                let key = BookingKey::any(event_id, booking_id);
                let tickets = ticket_store::of_booking(conn, &key).await?;
                Ok((Some(booking), tickets))
            })
        })
        .await?;
    let Some(booking) = booking.filter(|b| b.status == BookingStatus::Confirmed) else {
        return Ok(None);
    };
    Ok(Some(Confirmation {
        event_id,
        booking_id,
        link: signer.booking_link(event_id, booking_id, booking.link_generation, booking.starts_at),
        refund_policy: booking.refund_policy.map_or_else(|| NO_POLICY_IN_WORDS.to_owned(), |p| p.0.in_words()),
        event_name: booking.event_name,
        starts_at: booking.starts_at,
        total: Price { amount_minor: booking.total_minor, currency: booking.currency },
        tickets: tickets.iter().filter(|t| t.revoked_at.is_none()).map(|row| view(signer, row)).collect(),
    }))
}

/// Everything a waitlist offer's email says.
#[derive(Debug, Clone)]
pub struct OfferNotice {
    pub event_id: Uuid,
    pub hold_id: Uuid,
    pub event_name: String,
    pub starts_at: Option<DateTime<Utc>>,
    /// Take it (check it out, or confirm a free one) before then.
    pub expires_at: DateTime<Utc>,
    pub total: Price,
    /// `(seat label, or None for general admission; section name)`, best first.
    pub places: Vec<(Option<String>, String)>,
    /// The offer's capability link (the token; the sender makes the URL).
    pub link: String,
}

/// The notice of the offer `hold_id` (its `total` as the offer message says it); None
/// when there is nothing to tell any more: the offer was taken, declined or lapsed
/// before its email went out.
#[tracing::instrument(skip(db, signer, total))]
pub async fn offer(
    db: &Database,
    signer: &TicketSigner,
    event_id: Uuid,
    hold_id: Uuid,
    total: Price,
) -> Result<Option<OfferNotice>> {
    let (offer, places) = db
        .read(move |conn| {
            Box::pin(async move {
                let Some(offer) = store::offer(conn, event_id, hold_id).await? else {
                    return Ok::<_, Error>((None, Vec::new()));
                };
                Ok((Some(offer), store::hold_places(conn, hold_id).await?))
            })
        })
        .await?;
    let Some(offer) = offer.filter(|o| o.live) else { return Ok(None) };
    Ok(Some(OfferNotice {
        event_id,
        hold_id,
        link: signer.offer_link(event_id, hold_id, offer.starts_at),
        event_name: offer.event_name,
        starts_at: offer.starts_at,
        expires_at: offer.expires_at,
        total,
        places: places.into_iter().map(|p| (p.label, p.section_name)).collect(),
    }))
}
