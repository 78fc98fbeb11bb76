//! The sandbox's own routes, for scripts and rehearsals (tests can use the `Sandbox`
//! methods): `POST /_sandbox/faults` replaces the faults with its JSON body (the
//! [`Faults`] fields; missing ones are 0) and answers them; `GET /_sandbox/events` lists
//! every event with its delivery attempts. Both need the secret key, like the API.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::api::{authorize, ApiError};
use crate::config::Faults;
use crate::Shared;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new().route("/_sandbox/faults", post(set_faults).get(get_faults)).route("/_sandbox/events", get(events))
}

async fn set_faults(AxumState(shared): AxumState<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = authorize(&shared, &headers) {
        return e.into_response();
    }
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return ApiError::invalid("parameter_invalid_json", format!("Invalid faults: {e}")).into_response(),
    };
    if let Err(e) = faults.validate() {
        return ApiError::invalid("parameter_invalid_float", e.to_string()).into_response();
    }
    shared.lock().faults = faults.clone();
    tracing::info!(?faults, "payments sandbox faults set");
    Json(faults).into_response()
}

async fn get_faults(AxumState(shared): AxumState<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&shared, &headers) {
        return e.into_response();
    }
    let faults = shared.lock().faults.clone();
    Json(faults).into_response()
}

async fn events(AxumState(shared): AxumState<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&shared, &headers) {
        return e.into_response();
    }
    let events = shared.lock().events.clone();
    Json(serde_json::json!({ "data": events })).into_response()
}
