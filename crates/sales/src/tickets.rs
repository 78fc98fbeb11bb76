//! E-tickets and check-in: a fan's tickets (by access token or the booking's capability
//! link), a reissue that revokes the old secret first, the revocation feed offline
//! scanners follow, scanner keys, and check-ins recorded exactly once.
//!
//! Tickets are rows written by the booking statements; a ticket's secret is not stored
//! but signed whenever it is shown ([`crate::domain::ticket_secret`]): Ed25519 is
//! deterministic, so the same ticket and issue always show the same secret, and only the
//! process that shows secrets (the gateway) holds the ticket key. The scheduler, which
//! books late payments, never needs it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use access_token::keys::{read_public_keys, PublicKey};
use access_token::{KeyError, KeyPair};
use arc_swap::ArcSwapOption;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::booking_link::{self, BookingLink};
use crate::domain::offer_link::{self, OfferLink};
use crate::domain::ticket_secret::{self, PlaceKind, SecretError, TicketFields};
use crate::domain::Invalid;
use crate::error::{Error, Result, What};
use crate::model::BookingView;
use crate::states::SectionKind;
use crate::store::bookings::{self as booking_store, BookingKey};
use crate::store::tickets::{self as store, TicketRow};
use crate::{FanScope, Sales};

/// `boxoffice_purpose` of ticket keys in the JWKS.
pub const TICKET_PURPOSE: &str = "ticket";
/// A ticket (and a booking link) stays valid this long after its event's start.
pub const VALID_AFTER_START_SECS: i64 = 86_400;
/// What the revocation feed's signature covers before the body.
pub const FEED_CONTEXT: &[u8] = b"boxoffice.ticket-revocations\0";
/// The most scans one batch upload may carry.
pub const MAX_BATCH: usize = 500;
/// The most revocations a page of the feed holds (and how many unless asked for fewer),
/// unless one transaction alone revoked more: a page holds whole transactions.
pub const MAX_FEED_PAGE: u32 = 1000;

/// The ticket keys: the one that signs secrets now, if this process holds it, and every
/// public key still published (older keys stay while their files do, so tickets signed
/// before a rotation keep verifying until their events are over). Scans are verified
/// with the public keys alone: a replica without the private key (one that only checks
/// tickets in, or whose Secret is not mounted yet) still checks them.
pub struct TicketKeys {
    signer: Option<Arc<TicketSigner>>,
    published: Vec<PublicKey>,
}

/// The private ticket key and the link keys derived from it: what shows secrets and
/// makes and opens capability links.
pub struct TicketSigner {
    pair: KeyPair,
    link_key: [u8; 32],
    offer_link_key: [u8; 32],
}

impl TicketKeys {
    /// `signing` signs; `published` are verified and published (the signing key's public
    /// half is added if missing).
    pub fn new(signing: KeyPair, mut published: Vec<PublicKey>) -> Self {
        if !published.iter().any(|k| k.kid == signing.kid) {
            published.push(signing.public_key());
        }
        let link_key = signing.derive_secret(booking_link::KEY_PURPOSE);
        let offer_link_key = signing.derive_secret(offer_link::KEY_PURPOSE);
        Self { signer: Some(Arc::new(TicketSigner { pair: signing, link_key, offer_link_key })), published }
    }

    /// Keys that verify and publish `published` and sign nothing.
    pub fn verify_only(published: Vec<PublicKey>) -> Self {
        Self { signer: None, published }
    }

    /// `<dir>/<signing_kid>.private.pem` if it is there, and every `<dir>/*.public.pem`:
    /// without the private key file, keys that only verify (an error if there is no
    /// public key either).
    pub fn read(dir: &Path, signing_kid: &str) -> Result<Self, KeyError> {
        match KeyPair::read_private(&dir.join(format!("{signing_kid}.private.pem"))) {
            Ok(signing) => Ok(Self::new(signing, read_public_keys(dir)?)),
            Err(KeyError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(Self::verify_only(read_public_keys(dir)?))
            }
            Err(e) => Err(e),
        }
    }

    /// The signing half, if this process holds the private key.
    pub fn signer(&self) -> Option<&Arc<TicketSigner>> {
        self.signer.as_ref()
    }

    /// Whether `other` signs with the same key (or neither signs) and publishes the same
    /// keys.
    pub fn same_as(&self, other: &TicketKeys) -> bool {
        let signing = |keys: &TicketKeys| keys.signer.as_ref().map(|s| s.pair.public_key());
        signing(self) == signing(other) && self.published == other.published
    }

    /// The public keys as JSON Web Keys naming their purpose.
    pub fn jwks(&self) -> Vec<serde_json::Value> {
        self.published.iter().map(|k| k.jwk_for(TICKET_PURPOSE)).collect()
    }

    fn verify(&self, secret: &str) -> Result<TicketFields, SecretError> {
        ticket_secret::verify(secret, |kid, message, signature| {
            self.published.iter().find(|k| k.kid == kid).map(|k| k.verify_raw(message, signature))
        })
    }
}

/// The ticket keys in use, shared by every clone (of the sale, of the email sender) and
/// replaced whole when their files change. Cheap to clone.
#[derive(Clone, Default)]
pub struct TicketKeyring(Arc<ArcSwapOption<TicketKeys>>);

impl TicketKeyring {
    pub fn new(keys: Option<Arc<TicketKeys>>) -> Self {
        Self(Arc::new(ArcSwapOption::new(keys)))
    }

    pub fn load(&self) -> Option<Arc<TicketKeys>> {
        self.0.load_full()
    }

    /// Puts `keys` in use at once, for every clone.
    pub fn store(&self, keys: Arc<TicketKeys>) {
        self.0.store(Some(keys));
    }

    /// Reads the keys (`<dir>/<signing_kid>.private.pem` if there, every public key)
    /// every `every` until `shutdown`, and puts them in use when they changed: a public
    /// key added is published (so scanners hold it before any ticket is signed with it),
    /// one removed is no longer published nor trusted for scans, and a signing key whose
    /// file appears (a pod started before its Secret was mounted) is put in use, without
    /// a restart. A directory that cannot be read keeps the keys in use (logged).
    pub fn spawn_reloader(&self, dir: PathBuf, signing_kid: String, every: Duration, shutdown: CancellationToken) {
        let ring = self.clone();
        service_kit::periodic::spawn_every(every, shutdown, move || {
            let (ring, dir, kid) = (ring.clone(), dir.clone(), signing_kid.clone());
            async move {
                let signing_kid = kid.clone();
                match tokio::task::spawn_blocking(move || TicketKeys::read(&dir, &kid)).await {
                    Ok(Ok(keys)) => {
                        if ring.load().as_deref().is_none_or(|current| !current.same_as(&keys)) {
                            let kids: Vec<String> = keys.jwks().iter().map(|k| k["kid"].to_string()).collect();
                            let signing = keys.signer().is_some();
                            tracing::info!(%signing_kid, signing, published = ?kids, "ticket keys reloaded");
                            ring.store(Arc::new(keys));
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "reading the ticket keys failed; keeping the keys in use"),
                    Err(e) => tracing::warn!(error = %e, "reading the ticket keys failed; keeping the keys in use"),
                }
            }
        });
    }
}

impl TicketSigner {
    /// The key id secrets are signed under.
    pub fn kid(&self) -> &str {
        &self.pair.kid
    }

    fn sign(&self, fields: &TicketFields) -> String {
        fields.sign(|message| self.pair.sign_raw(message))
    }

    /// The capability link of a booking's `generation` (D7), valid until a day after the
    /// event starts.
    pub fn booking_link(
        &self,
        event_id: Uuid,
        booking_id: Uuid,
        generation: i32,
        starts_at: Option<DateTime<Utc>>,
    ) -> String {
        let link = BookingLink {
            event_id,
            booking_id,
            generation: generation.max(1) as u32,
            valid_until: valid_until(starts_at),
        };
        link.encode(&self.link_key)
    }

    /// The capability link of a waitlist offer (the hold made for the fan), valid until
    /// a day after the event starts, as a booking's.
    pub fn offer_link(&self, event_id: Uuid, hold_id: Uuid, starts_at: Option<DateTime<Utc>>) -> String {
        OfferLink { event_id, hold_id, valid_until: valid_until(starts_at) }.encode(&self.offer_link_key)
    }

    /// The offer `token` names, if it is one of ours still in time.
    pub(crate) fn open_offer_link(&self, token: &str) -> Option<OfferLink> {
        OfferLink::decode(token, &self.offer_link_key, Utc::now().timestamp())
    }

    /// `Boxoffice-Signature` of a revocation feed's body: `kid=<kid>,ed25519=<base64url
    /// signature of FEED_CONTEXT ‖ body>`.
    pub fn sign_feed(&self, body: &[u8]) -> String {
        let mut message = FEED_CONTEXT.to_vec();
        message.extend_from_slice(body);
        let signature = URL_SAFE_NO_PAD.encode(self.pair.sign_raw(&message));
        format!("kid={},ed25519={signature}", self.pair.kid)
    }
}

/// Who is asking for a booking (its tickets, to cancel it, to rotate its link).
#[derive(Debug, Clone)]
pub enum BookingAccess {
    /// The booking's fan, by access token.
    Fan(FanScope),
    /// Whoever holds the booking's capability link.
    Link(String),
}

/// A ticket as its fan sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TicketView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub booking_id: Uuid,
    /// `valid`, `checked_in` or `revoked` (cancelled: no secret).
    pub status: TicketStatus,
    pub section_id: Uuid,
    pub section_name: String,
    /// The seat's label; none for general admission.
    pub label: Option<String>,
    /// The seat's or place's number in its section.
    pub number: i32,
    /// Which secret is current (1, then one more per reissue).
    pub issue: i32,
    /// What the QR code carries (see the README's ticket format); none once revoked.
    pub secret: Option<String>,
    pub valid_from: DateTime<Utc>,
    /// None: no end (an event without a start date).
    pub valid_until: Option<DateTime<Utc>>,
    pub checked_in_at: Option<DateTime<Utc>>,
    pub gate: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    Valid,
    CheckedIn,
    Revoked,
}

/// A booking's tickets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BookingTickets {
    pub booking_id: Uuid,
    pub tickets: Vec<TicketView>,
}

/// A booking's tickets with what a printed ticket shows of its event.
#[derive(Debug, Clone)]
pub struct PrintableTickets {
    pub event_name: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub booking_id: Uuid,
    pub tickets: Vec<TicketView>,
}

/// One page of an event's revoked ticket secrets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RevocationFeed {
    pub event_id: Uuid,
    /// The position asked from.
    pub since: u64,
    /// Where to ask from next (`?since=`): every revocation before it is in this page
    /// or an earlier one, and none can appear there later.
    pub next: u64,
    /// More revocations are there already: ask again from `next` at once. A page holds
    /// whole transactions (one cancellation's tickets are never split), so it may hold
    /// fewer rows than the limit, or more when one transaction alone revoked more.
    pub more: bool,
    pub revocations: Vec<TicketRevocation>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TicketRevocation {
    pub ticket_id: Uuid,
    /// Every secret of this ticket up to this issue is revoked.
    pub issue: i32,
    /// `reissued` or `cancelled`.
    pub reason: String,
    pub revoked_at: DateTime<Utc>,
}

/// A scanner key, as created: the key itself is shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewScannerKey {
    pub id: Uuid,
    pub event_id: Uuid,
    pub name: String,
    /// `Authorization: Bearer <key>` on the event's check-in routes; only its hash is kept.
    pub key: String,
    pub created_at: DateTime<Utc>,
}

/// One scan uploaded by an offline scanner.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfflineScan {
    pub secret: String,
    /// As a scan's `gate`: 1-100 characters, not only spaces, no control characters.
    #[schema(
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub gate: String,
    /// When the scanner scanned it (its clock); at most five minutes ahead of ours.
    pub scanned_at: DateTime<Utc>,
}

/// What a scan means for the gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CheckinResult {
    /// Let them in: this scan is the ticket's check-in.
    Valid { ticket_id: Uuid, checked_in_at: DateTime<Utc>, gate: String, label: Option<String>, number: u32 },
    /// The ticket was checked in before: when and where.
    AlreadyCheckedIn { ticket_id: Uuid, checked_in_at: DateTime<Utc>, gate: String },
    /// This secret was revoked (the booking was cancelled, or the ticket reissued).
    Revoked { ticket_id: Uuid },
    /// A genuine ticket of another event.
    WrongEvent { event_id: Uuid },
    /// Not a ticket we issued, or outside its validity window.
    Invalid { reason: String },
}

impl CheckinResult {
    /// The metric label.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Valid { .. } => "valid",
            Self::AlreadyCheckedIn { .. } => "already_checked_in",
            Self::Revoked { .. } => "revoked",
            Self::WrongEvent { .. } => "wrong_event",
            Self::Invalid { .. } => "invalid",
        }
    }
}

/// Checked in against sold, per section.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckinCounts {
    pub event_id: Uuid,
    pub sold: i64,
    pub checked_in: i64,
    pub sections: Vec<SectionCheckins>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SectionCheckins {
    pub section_id: Uuid,
    pub name: String,
    /// Live tickets (booked places).
    pub sold: i64,
    pub checked_in: i64,
}

impl Sales {
    /// The sale with ticket keys: without them tickets are still written with every
    /// booking, but their secrets cannot be shown or checked (`TicketsUnavailable`);
    /// with public keys only, scans are checked and nothing is shown or signed.
    pub fn with_ticket_keys(self, keys: Arc<TicketKeys>) -> Self {
        self.set_ticket_keys(keys);
        self
    }

    /// Puts `keys` in use at once, for every clone of this sale (the gateway's key
    /// reload): secrets shown and links made from now on are signed with them, and
    /// scans verified against their published keys.
    pub fn set_ticket_keys(&self, keys: Arc<TicketKeys>) {
        self.ticket_keys.store(keys);
    }

    /// The ticket keys in use, if any.
    pub fn ticket_keys(&self) -> Option<Arc<TicketKeys>> {
        self.ticket_keys.load()
    }

    /// The keyring this sale (and its clones) use: to read the keys again while serving.
    pub fn ticket_keyring(&self) -> &TicketKeyring {
        &self.ticket_keys
    }

    pub(crate) fn keys(&self) -> Result<Arc<TicketKeys>> {
        self.ticket_keys.load().ok_or(Error::TicketsUnavailable)
    }

    /// The signing half of the keys in use: what shows secrets and makes links.
    pub(crate) fn signer(&self) -> Result<Arc<TicketSigner>> {
        self.ticket_keys.load().and_then(|keys| keys.signer().cloned()).ok_or(Error::TicketsUnavailable)
    }

    /// The capability link of a booking (D7), valid until a day after the event starts;
    /// None without the ticket signing key.
    pub fn booking_link(
        &self,
        event_id: Uuid,
        booking_id: Uuid,
        generation: i32,
        starts_at: Option<DateTime<Utc>>,
    ) -> Option<String> {
        Some(self.signer().ok()?.booking_link(event_id, booking_id, generation, starts_at))
    }

    /// Which booking `access` may reach: the fan's own, or the one a valid link names
    /// (`InvalidLink` for a changed or expired link, or one of another booking). Whether
    /// the link's generation is still the booking's is said by the statement the key is
    /// used in.
    pub(crate) fn booking_key(&self, access: &BookingAccess, event_id: Uuid, booking_id: Uuid) -> Result<BookingKey> {
        match access {
            BookingAccess::Fan(scope) => Ok(BookingKey::of_fan(scope, booking_id)),
            BookingAccess::Link(token) => {
                let link = BookingLink::decode(token, &self.signer()?.link_key, Utc::now().timestamp())
                    .filter(|l| l.event_id == event_id && l.booking_id == booking_id)
                    .ok_or(Error::InvalidLink)?;
                Ok(BookingKey {
                    event_id,
                    booking_id,
                    fan_id: None,
                    link_generation: Some(link.generation.min(i32::MAX as u32) as i32),
                })
            }
        }
    }

    /// The booking's tickets with their secrets (revoked ones without).
    #[tracing::instrument(skip_all, fields(%event_id, %booking_id))]
    pub async fn booking_tickets(
        &self,
        access: &BookingAccess,
        event_id: Uuid,
        booking_id: Uuid,
    ) -> Result<BookingTickets> {
        let printable = self.printable_tickets(access, event_id, booking_id).await?;
        Ok(BookingTickets { booking_id, tickets: printable.tickets })
    }

    /// The booking's tickets as [`Sales::booking_tickets`] shows them, with the event's
    /// name and start, for a printed page.
    #[tracing::instrument(skip_all, fields(%event_id, %booking_id))]
    pub async fn printable_tickets(
        &self,
        access: &BookingAccess,
        event_id: Uuid,
        booking_id: Uuid,
    ) -> Result<PrintableTickets> {
        let key = self.booking_key(access, event_id, booking_id)?;
        let signer = self.signer()?;
        let rows = self.db.read(move |conn| Box::pin(async move { store::of_booking(conn, &key).await })).await?;
        let Some(first) = rows.first() else {
            return Err(Error::NotFound(What::Booking));
        };
        Ok(PrintableTickets {
            event_name: first.event_name.clone(),
            starts_at: first.starts_at,
            booking_id,
            tickets: rows.iter().map(|row| view(&signer, row)).collect(),
        })
    }

    /// Revokes every link of the booking given out so far and answers the booking with
    /// its new one (a link leaked, or was forwarded to someone it should not reach): the
    /// booking's fan by access token, or whoever holds a current link. The generation
    /// moves on in one conditional statement, so two rotations through the same link
    /// make one new link, and a link rotated away works for nothing from the commit on.
    #[tracing::instrument(skip_all, fields(%event_id, %booking_id))]
    pub async fn rotate_booking_link(
        &self,
        access: &BookingAccess,
        event_id: Uuid,
        booking_id: Uuid,
    ) -> Result<BookingView> {
        let key = self.booking_key(access, event_id, booking_id)?;
        self.signer()?;
        let starts_at = self.event_rules(event_id).await?.starts_at;
        let mut booking = self
            .db
            .transaction(move |tx| {
                Box::pin(async move {
                    booking_store::rotate_link(tx, &key).await?.ok_or(Error::NotFound(What::Booking))?;
                    booking_store::find(tx, &BookingKey::any(event_id, booking_id))
                        .await?
                        .ok_or(Error::NotFound(What::Booking))
                })
            })
            .await?;
        booking.link = self.booking_link(event_id, booking_id, booking.link_generation, starts_at);
        Ok(booking)
    }

    /// One ticket of the booking, as [`Sales::booking_tickets`] shows it.
    pub async fn booking_ticket(
        &self,
        access: &BookingAccess,
        event_id: Uuid,
        booking_id: Uuid,
        ticket_id: Uuid,
    ) -> Result<TicketView> {
        let tickets = self.booking_tickets(access, event_id, booking_id).await?;
        tickets.tickets.into_iter().find(|t| t.id == ticket_id).ok_or(Error::NotFound(What::Ticket))
    }

    /// Gives a live ticket a new secret (its QR code leaked): the current secret is
    /// revoked and the new one made in one transaction, the revocation first.
    #[tracing::instrument(skip_all, fields(%event_id, %booking_id, %ticket_id))]
    pub async fn reissue_ticket(
        &self,
        access: &BookingAccess,
        event_id: Uuid,
        booking_id: Uuid,
        ticket_id: Uuid,
    ) -> Result<TicketView> {
        let key = self.booking_key(access, event_id, booking_id)?;
        self.signer()?;
        self.db
            .transaction(move |tx| {
                Box::pin(async move {
                    let (issue, revoked) =
                        store::lock(tx, &key, ticket_id).await?.ok_or(Error::NotFound(What::Ticket))?;
                    if revoked {
                        return Err(Error::TicketRevoked);
                    }
                    store::reissue(tx, ticket_id, issue).await
                })
            })
            .await?;
        self.booking_ticket(access, event_id, booking_id, ticket_id).await
    }

    /// A page of the event's revocations from `since` (0: all) on: about `limit` rows
    /// (1 to [`MAX_FEED_PAGE`]; the gateway refuses others, this takes the nearest),
    /// whole transactions only.
    #[tracing::instrument(skip(self))]
    pub async fn ticket_revocations(&self, event_id: Uuid, since: u64, limit: u32) -> Result<RevocationFeed> {
        let limit = limit.clamp(1, MAX_FEED_PAGE);
        let page = self
            .db
            .read(move |conn| Box::pin(async move { store::revocations_since(conn, event_id, since, limit).await }))
            .await?
            .ok_or(Error::NotFound(What::Event))?;
        // Every row read is of a finished transaction below the watermark, and the page
        // holds every row of each of its transactions, so moving past the last one read
        // is safe; with none, the position stays (never past a row that could still
        // appear).
        let next = page.rows.iter().map(|r| r.xid as u64 + 1).max().unwrap_or(since).max(since);
        Ok(RevocationFeed {
            event_id,
            since,
            next,
            more: page.more,
            revocations: page
                .rows
                .into_iter()
                .map(|r| TicketRevocation {
                    ticket_id: r.ticket_id,
                    issue: r.issue,
                    reason: r.reason,
                    revoked_at: r.revoked_at,
                })
                .collect(),
        })
    }

    /// The `Boxoffice-Signature` of a revocation feed's body.
    pub fn sign_revocation_feed(&self, body: &[u8]) -> Result<String> {
        Ok(self.signer()?.sign_feed(body))
    }

    /// A scanner key for the event's gates: random, shown once, kept as a hash.
    #[tracing::instrument(skip(self))]
    pub async fn create_scanner_key(&self, event_id: Uuid, name: &str) -> Result<NewScannerKey> {
        let name = scanner_key_name(name)?;
        let key = format!("bosk_{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()));
        let (id, hash, stored_name) = (Uuid::now_v7(), scanner_key_hash(&key), name.clone());
        let created_at = self
            .db
            .write(move |conn| {
                Box::pin(async move { store::create_scanner_key(conn, id, event_id, &stored_name, &hash).await })
            })
            .await?
            .ok_or(Error::NotFound(What::Event))?;
        Ok(NewScannerKey { id, event_id, name, key, created_at })
    }

    /// The event a scanner key opens, if it is a live one. A key found live is taken
    /// from this replica's copy for up to `event_rules_max_age` (a key revoked in the
    /// database stops opening anything within that); one not found is looked up every
    /// time, so a new key works at once.
    pub async fn scanner_key_event(&self, key: &str) -> Result<Option<Uuid>> {
        if !key.starts_with("bosk_") || key.len() > 100 {
            return Ok(None);
        }
        let hash = scanner_key_hash(key);
        let copy = match &self.scanner_keys {
            Some(copies) => copies.get(&hash).await,
            None => None,
        };
        if copy.is_some() {
            return Ok(copy);
        }
        let looked_up = hash.clone();
        let event =
            self.db.read(move |conn| Box::pin(async move { store::scanner_key_event(conn, &looked_up).await })).await?;
        if let (Some(copies), Some(event)) = (&self.scanner_keys, event) {
            copies.insert(hash, event).await;
        }
        Ok(event)
    }

    /// A gate's online scan: `valid` exactly once per ticket, whichever gates race.
    #[tracing::instrument(skip_all, fields(%event_id))]
    pub async fn check_in(&self, event_id: Uuid, secret: &str, gate: &str) -> Result<CheckinResult> {
        let gate = valid_gate(gate)?;
        let fields = match self.verified_for(event_id, secret)? {
            Ok(fields) => fields,
            Err(refused) => return Ok(refused),
        };
        self.db
            .write(move |conn| {
                Box::pin(async move {
                    let issue = fields.issue.min(i32::MAX as u32) as i32;
                    let scan = store::check_in(conn, event_id, fields.ticket_id, issue, &gate, None).await?;
                    outcome(conn, &fields, scan, gate).await
                })
            })
            .await
    }

    /// Offline scans uploaded later, each by the same rule as an online scan except that
    /// the earliest scan of a ticket wins; answered in order, one transaction for all.
    #[tracing::instrument(skip_all, fields(%event_id, scans = scans.len()))]
    pub async fn check_in_batch(&self, event_id: Uuid, scans: Vec<OfflineScan>) -> Result<Vec<CheckinResult>> {
        let scans = checked_batch(scans, Utc::now())?;
        let mut work = Vec::with_capacity(scans.len());
        for scan in scans {
            let gate = scan.gate;
            work.push(match self.verified_for(event_id, &scan.secret)? {
                Ok(fields) => Ok((fields, gate, scan.scanned_at)),
                Err(refused) => Err(refused),
            });
        }
        self.db
            .transaction(move |tx| {
                Box::pin(async move {
                    let mut results = Vec::with_capacity(work.len());
                    for item in work {
                        results.push(match item {
                            Err(refused) => refused,
                            Ok((fields, gate, at)) => {
                                let issue = fields.issue.min(i32::MAX as u32) as i32;
                                let scan =
                                    store::check_in(tx, event_id, fields.ticket_id, issue, &gate, Some(at)).await?;
                                outcome(tx, &fields, scan, gate).await?
                            }
                        });
                    }
                    Ok(results)
                })
            })
            .await
    }

    /// Checked in and sold, by section.
    #[tracing::instrument(skip(self))]
    pub async fn checkin_counts(&self, event_id: Uuid) -> Result<CheckinCounts> {
        self.event_rules(event_id).await?;
        let sections = self.db.read(move |conn| Box::pin(async move { store::counts(conn, event_id).await })).await?;
        Ok(CheckinCounts {
            event_id,
            sold: sections.iter().map(|s| s.sold).sum(),
            checked_in: sections.iter().map(|s| s.checked_in).sum(),
            sections: sections
                .into_iter()
                .map(|s| SectionCheckins {
                    section_id: s.section_id,
                    name: s.name,
                    sold: s.sold,
                    checked_in: s.checked_in,
                })
                .collect(),
        })
    }

    /// The secret's fields if it is a genuine ticket of this event valid now, or the
    /// answer that refuses it.
    fn verified_for(&self, event_id: Uuid, secret: &str) -> Result<Result<TicketFields, CheckinResult>> {
        let keys = self.keys()?;
        let fields = match keys.verify(secret) {
            Ok(fields) => fields,
            Err(e) => return Ok(Err(CheckinResult::Invalid { reason: e.to_string() })),
        };
        if fields.event_id != event_id {
            return Ok(Err(CheckinResult::WrongEvent { event_id: fields.event_id }));
        }
        if !fields.valid_at(Utc::now().timestamp()) {
            return Ok(Err(CheckinResult::Invalid { reason: "outside the ticket's validity window".into() }));
        }
        Ok(Ok(fields))
    }
}

/// What a recorded (or refused) scan answers; reads the winning check-in when another
/// scan came first.
async fn outcome(
    conn: &mut sqlx::PgConnection,
    fields: &TicketFields,
    scan: store::Scan,
    gate: String,
) -> Result<CheckinResult> {
    let ticket_id = fields.ticket_id;
    let Some(current) = scan.current_issue else {
        return Ok(CheckinResult::Invalid { reason: "no such ticket".into() });
    };
    if scan.revoked == Some(true) || i64::from(current) > i64::from(fields.issue) {
        return Ok(CheckinResult::Revoked { ticket_id });
    }
    if i64::from(current) < i64::from(fields.issue) {
        return Ok(CheckinResult::Invalid { reason: "no such ticket issue".into() });
    }
    if let Some(checked_in_at) = scan.recorded_at {
        let label = (fields.place_kind == PlaceKind::Seat).then(|| fields.place_text.clone());
        return Ok(CheckinResult::Valid { ticket_id, checked_in_at, gate, label, number: fields.place_number });
    }
    match store::checkin_of(conn, ticket_id).await? {
        Some((checked_in_at, gate)) => Ok(CheckinResult::AlreadyCheckedIn { ticket_id, checked_in_at, gate }),
        // Not recorded, and no check-in: the ticket was revoked between the two reads.
        None => Ok(CheckinResult::Revoked { ticket_id }),
    }
}

/// A scan's gate, trimmed: 1-100 characters, no control characters.
pub fn valid_gate(gate: &str) -> Result<String, Invalid> {
    let gate = gate.trim();
    if gate.is_empty() || gate.chars().count() > 100 || gate.chars().any(char::is_control) {
        return Err(Invalid::new("invalid_gate", "gate is 1-100 characters, no control characters"));
    }
    Ok(gate.to_owned())
}

/// A scanner key's name, trimmed: 1-100 characters, no control characters.
pub fn scanner_key_name(name: &str) -> Result<String, Invalid> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Invalid::new("invalid_name", "a scanner key's name is 1-100 characters, no control characters"));
    }
    Ok(name.to_owned())
}

/// An offline batch as it can be merged: 1-[`MAX_BATCH`] scans, each with a valid gate
/// (trimmed) and made at most five minutes after `now` by the scanner's clock.
pub fn checked_batch(scans: Vec<OfflineScan>, now: DateTime<Utc>) -> Result<Vec<OfflineScan>, Invalid> {
    if scans.is_empty() || scans.len() > MAX_BATCH {
        return Err(Invalid::new("invalid_batch", format!("a batch carries 1-{MAX_BATCH} scans")));
    }
    let latest = now + chrono::Duration::minutes(5);
    scans
        .into_iter()
        .map(|scan| {
            if scan.scanned_at > latest {
                return Err(Invalid::new("invalid_scanned_at", "a scan's scanned_at is in the future"));
            }
            Ok(OfflineScan { gate: valid_gate(&scan.gate)?, ..scan })
        })
        .collect()
}

fn scanner_key_hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// A day after the start, in Unix seconds; 0 (no end) without a start date.
fn valid_until(starts_at: Option<DateTime<Utc>>) -> u32 {
    starts_at.map_or(0, |at| (at.timestamp() + VALID_AFTER_START_SECS).clamp(1, i64::from(u32::MAX)) as u32)
}

/// A ticket as its fan sees it, its secret signed now (none once revoked).
pub(crate) fn view(signer: &TicketSigner, row: &TicketRow) -> TicketView {
    let until = valid_until(row.starts_at);
    let (place_kind, place_text) = match row.section_kind {
        SectionKind::Reserved => (PlaceKind::Seat, row.seat_label.clone().unwrap_or_default()),
        SectionKind::GeneralAdmission => (PlaceKind::GeneralAdmission, row.section_name.clone()),
    };
    let fields = TicketFields {
        kid: signer.kid().to_owned(),
        event_id: row.event_id,
        ticket_id: row.id,
        issue: row.issue.max(1) as u32,
        valid_from: row.created_at.timestamp().clamp(0, i64::from(u32::MAX)) as u32,
        valid_until: until,
        place_kind,
        place_number: row.seat_number.max(0) as u32,
        place_text,
    };
    let status = match (row.revoked_at, row.checked_in_at) {
        (Some(_), _) => TicketStatus::Revoked,
        (None, Some(_)) => TicketStatus::CheckedIn,
        (None, None) => TicketStatus::Valid,
    };
    TicketView {
        id: row.id,
        event_id: row.event_id,
        booking_id: row.booking_id,
        status,
        section_id: row.section_id,
        section_name: row.section_name.clone(),
        label: row.seat_label.clone(),
        number: row.seat_number,
        issue: row.issue,
        secret: row.revoked_at.is_none().then(|| signer.sign(&fields)),
        valid_from: DateTime::from_timestamp(i64::from(fields.valid_from), 0).unwrap_or(row.created_at),
        valid_until: (until > 0).then(|| DateTime::from_timestamp(i64::from(until), 0)).flatten(),
        checked_in_at: row.checked_in_at,
        gate: row.gate.clone(),
    }
}

impl Sales {
    /// The ticket keys' public halves as JSON Web Keys (none without ticket keys).
    pub fn ticket_jwks(&self) -> Vec<serde_json::Value> {
        self.ticket_keys.load().map(|keys| keys.jwks()).unwrap_or_default()
    }
}
