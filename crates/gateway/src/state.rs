//! What requests share: the sale's handle, the token verifier, the admin key, the rate
//! limits, the revocations and the copies of the public reads (seat maps, event details).
//! Wiring (binding, serving, sweeping) is in [`crate::app`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use access_token::keys::PublicKey;
use access_token::TokenVerifier;
use axum::body::Bytes;
use axum::extract::FromRef;
use sales::model::{CatalogueEvent, SeatView};
use sales::Sales;
use serde::Serialize;
use service_kit::auth::AdminKey;
use service_kit::client_address::ClientAddressConfig;
use service_kit::compression::JsonBody;
use service_kit::rate_limit::ClientLimits;
use uuid::Uuid;

use crate::config::GatewayConfig;
use crate::error::{Error, Result};
use crate::revocations::Revocations;
use crate::seat_stream::SeatStreams;

#[derive(Clone)]
pub struct AppState {
    pub sales: Sales,
    pub verifier: Arc<TokenVerifier>,
    pub admin_key: AdminKey,
    pub limits: Arc<ClientLimits>,
    pub client_address: Arc<ClientAddressConfig>,
    /// The admissions the organizer revoked, as this replica last read them.
    pub revocations: Arc<Revocations>,
    /// The outbox relay's `v1a` public keys as JSON Web Keys, published in
    /// `/.well-known/jwks.json` after the ticket keys in use.
    pub webhook_jwks: Arc<Vec<serde_json::Value>>,
    /// The webhook secrets and the payment page (`[gateway.payments]`).
    pub payments: Arc<crate::config::PaymentsConfig>,
    /// What the pages need to know of the waiting room (`[gateway.pages]`).
    pub pages: Arc<crate::config::PagesConfig>,
    /// The live seat maps' streams ([`crate::seat_stream`]).
    pub seat_streams: Arc<SeatStreams>,
    /// Serialized venue layouts: fixed at creation (D8), kept for
    /// [`LAYOUT_MAX_AGE`] only so an idle replica forgets them.
    layouts: PublicReadCache,
    /// Serialized seat maps, briefly (`seat_map_max_age_ms`); `None` reads every time.
    seat_maps: Option<PublicReadCache>,
    /// Serialized event details (an aggregate over every seat: 65-96 ms on 100,000
    /// seats, issue 19), for as long as a seat map; `None` reads every time.
    details: Option<PublicReadCache>,
    /// The serialized public catalogue (the same aggregate over every listed event),
    /// for as long as a seat map, under the nil id; `None` reads every time.
    catalogue: Option<PublicReadCache>,
}

/// Copies of public reads, each gzip-encoded once when it is read (a 100,000-seat map:
/// 12.8 MB, 0.83 MB gzipped), so the many fans reloading it cost no compression each.
type PublicReadCache = moka::future::Cache<Uuid, JsonBody>;

/// How long a replica keeps a venue's layout, and tells clients they may.
pub const LAYOUT_MAX_AGE: Duration = Duration::from_secs(300);

/// A copy of serialized public reads, each kept for `max_age_ms` (0: none kept).
fn public_read_cache(max_age_ms: u64) -> Option<PublicReadCache> {
    (max_age_ms > 0).then(|| {
        moka::future::Cache::builder().max_capacity(1_000).time_to_live(Duration::from_millis(max_age_ms)).build()
    })
}

/// `read`'s answer as a JSON body, from `cache` when one is kept: concurrent requests
/// for an expired copy wait for one read, gzipped once with the copy. Uncached, it is
/// sent plain (and compressed on the way out, see `service_kit::compression`).
async fn cached<F: Future<Output = Result<Bytes>>>(
    cache: Option<&PublicReadCache>,
    key: Uuid,
    read: impl Fn() -> F,
) -> Result<JsonBody> {
    let Some(cache) = cache else {
        return read().await.map(JsonBody::plain);
    };
    let copy = async { Ok::<_, Error>(JsonBody::compressed(read().await?).await) };
    match cache.try_get_with(key, copy).await {
        Ok(json) => Ok(json),
        // The shared error cannot be moved out; read again for this request's own.
        Err(_) => read().await.map(JsonBody::plain),
    }
}

impl AppState {
    /// `webhook_keys`: the outbox relay's `v1a` public keys, published beside the
    /// ticket keys.
    pub fn new(config: &GatewayConfig, sales: Sales, verifier: TokenVerifier, webhook_keys: &[PublicKey]) -> Self {
        let webhook_jwks = Arc::new(webhook_keys.iter().map(|k| k.jwk_for(sales::webhooks::V1A_KEY_PURPOSE)).collect());
        Self {
            seat_streams: Arc::new(SeatStreams::new(sales.clone(), config.seat_stream)),
            sales,
            verifier: Arc::new(verifier),
            admin_key: AdminKey::new(config.admin_api_key.clone()),
            limits: Arc::new(crate::limits::limits(config)),
            client_address: Arc::new(config.client_address.clone()),
            revocations: Arc::new(Revocations::new(config.revocation_poll_interval())),
            webhook_jwks,
            payments: Arc::new(config.payments.clone()),
            pages: Arc::new(config.pages.clone()),
            layouts: public_read_cache(LAYOUT_MAX_AGE.as_millis() as u64).expect("a layout is kept a while"),
            seat_maps: public_read_cache(config.seat_map_max_age_ms),
            details: public_read_cache(config.seat_map_max_age_ms),
            catalogue: public_read_cache(config.seat_map_max_age_ms),
        }
    }

    /// The event's seat map as a JSON body, kept for `seat_map_max_age_ms`.
    pub async fn seat_map_json(&self, event_id: Uuid) -> Result<JsonBody> {
        cached(self.seat_maps.as_ref(), event_id, || self.read_seat_map(event_id)).await
    }

    /// The event's venue as a JSON body, read once per [`LAYOUT_MAX_AGE`].
    pub async fn seat_layout_json(&self, event_id: Uuid) -> Result<JsonBody> {
        cached(Some(&self.layouts), event_id, || self.read_seat_layout(event_id)).await
    }

    async fn read_seat_layout(&self, event_id: Uuid) -> Result<Bytes> {
        let layout = self.sales.seat_layout(event_id).await?;
        Ok(Bytes::from(serde_json::to_vec(&layout).expect("a layout always serialises")))
    }

    /// The event's details as a JSON body, cached as the seat map is.
    pub async fn event_details_json(&self, event_id: Uuid) -> Result<JsonBody> {
        cached(self.details.as_ref(), event_id, || self.read_event_details(event_id)).await
    }

    /// The public catalogue as a JSON body, cached as the seat map is: however many
    /// fans browse, a replica reads it once per copy.
    pub async fn catalogue_json(&self) -> Result<JsonBody> {
        cached(self.catalogue.as_ref(), Uuid::nil(), || self.read_catalogue()).await
    }

    async fn read_catalogue(&self) -> Result<Bytes> {
        let catalogue = Catalogue { events: self.sales.catalogue().await? };
        Ok(Bytes::from(serde_json::to_vec(&catalogue).expect("a catalogue always serialises")))
    }

    async fn read_event_details(&self, event_id: Uuid) -> Result<Bytes> {
        let details = self.sales.event_details(event_id).await?;
        Ok(Bytes::from(serde_json::to_vec(&details).expect("event details always serialise")))
    }

    async fn read_seat_map(&self, event_id: Uuid) -> Result<Bytes> {
        let seats = self.sales.seat_map(event_id).await?;
        let body = serde_json::to_vec(&SeatMap { event_id, seats }).expect("a seat map always serialises");
        Ok(Bytes::from(body))
    }
}

/// The public catalogue, as `GET /v1/events` answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Catalogue {
    pub events: Vec<CatalogueEvent>,
}

/// An event's seats and their states, as `GET /v1/events/{event_id}/seats` answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SeatMap {
    pub event_id: Uuid,
    pub seats: Vec<SeatView>,
}

impl FromRef<AppState> for AdminKey {
    fn from_ref(state: &AppState) -> Self {
        state.admin_key.clone()
    }
}

impl FromRef<AppState> for Arc<ClientAddressConfig> {
    fn from_ref(state: &AppState) -> Self {
        state.client_address.clone()
    }
}
