//! What requests share: the sale's handle, the token verifier, the admin key, the rate
//! limits, the revocations and the seat-map copy. Wiring (binding, serving, sweeping) is in [`crate::app`].

use std::sync::Arc;
use std::time::Duration;

use access_token::TokenVerifier;
use axum::body::Bytes;
use axum::extract::FromRef;
use sales::model::SeatView;
use sales::Sales;
use serde::Serialize;
use service_kit::auth::AdminKey;
use service_kit::client_address::ClientAddressConfig;
use service_kit::rate_limit::ClientLimits;
use uuid::Uuid;

use crate::config::GatewayConfig;
use crate::error::Result;
use crate::revocations::Revocations;

#[derive(Clone)]
pub struct AppState {
    pub sales: Sales,
    pub verifier: Arc<TokenVerifier>,
    pub admin_key: AdminKey,
    pub limits: Arc<ClientLimits>,
    pub client_address: Arc<ClientAddressConfig>,
    /// The admissions the organizer revoked, as this replica last read them.
    pub revocations: Arc<Revocations>,
    /// Serialized seat maps, briefly (`seat_map_max_age_ms`); `None` reads every time.
    seat_maps: Option<moka::future::Cache<Uuid, Bytes>>,
}

impl AppState {
    pub fn new(config: &GatewayConfig, sales: Sales, verifier: TokenVerifier) -> Self {
        Self {
            sales,
            verifier: Arc::new(verifier),
            admin_key: AdminKey::new(config.admin_api_key.clone()),
            limits: Arc::new(crate::limits::limits(config)),
            client_address: Arc::new(config.client_address.clone()),
            revocations: Arc::new(Revocations::default()),
            seat_maps: (config.seat_map_max_age_ms > 0).then(|| {
                moka::future::Cache::builder()
                    .max_capacity(1_000)
                    .time_to_live(Duration::from_millis(config.seat_map_max_age_ms))
                    .build()
            }),
        }
    }

    /// The event's seat map as a JSON body. Concurrent requests for an expired copy
    /// wait for one read instead of each walking every seat.
    pub async fn seat_map_json(&self, event_id: Uuid) -> Result<Bytes> {
        let Some(cache) = &self.seat_maps else {
            return self.read_seat_map(event_id).await;
        };
        match cache.try_get_with(event_id, self.read_seat_map(event_id)).await {
            Ok(json) => Ok(json),
            // The shared error cannot be moved out; read again for this request's own.
            Err(_) => self.read_seat_map(event_id).await,
        }
    }

    async fn read_seat_map(&self, event_id: Uuid) -> Result<Bytes> {
        let seats = self.sales.seat_map(event_id).await?;
        let body = serde_json::to_vec(&SeatMap { event_id, seats }).expect("a seat map always serialises");
        Ok(Bytes::from(body))
    }
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
