//! The Stripe-shaped API: `/v1/payment_intents`, `/v1/refunds`, `/v1/events`.
//!
//! Requests are form-encoded (`metadata[key]=value`), answers are JSON objects shaped
//! like Stripe's, refusals are Stripe's error envelope
//! `{"error":{"type","code","message","param"}}`. Every call needs
//! `Authorization: Bearer <secret key>`; POSTs honour `Idempotency-Key` as Stripe does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::{self, IdempotentResult, IntentStatus, PaymentIntent, Refund, RequestInfo, State};
use crate::Shared;

/// Stripe's limits on metadata.
const METADATA_MAX_KEYS: usize = 50;
const METADATA_KEY_MAX: usize = 40;
const METADATA_VALUE_MAX: usize = 500;
const IDEMPOTENCY_KEY_MAX: usize = 255;
/// Stripe's largest amount (eight digits).
const AMOUNT_MAX: i64 = 99_999_999;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/payment_intents", post(create_intent))
        .route("/v1/payment_intents/{id}", get(retrieve_intent))
        .route("/v1/payment_intents/{id}/cancel", post(cancel_intent))
        .route("/v1/refunds", post(create_refund))
        .route("/v1/refunds/{id}", get(retrieve_refund))
        .route("/v1/events/{id}", get(retrieve_event))
}

/// A refusal in Stripe's shape.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: Some(code),
            message: message.into(),
            param: None,
        }
    }

    fn param(mut self, param: &str) -> Self {
        self.param = Some(param.to_owned());
        self
    }

    fn missing(kind: &str, id: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: Some("resource_missing"),
            message: format!("No such {kind}: '{id}'"),
            param: Some("id".to_owned()),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            kind: "invalid_request_error",
            code: None,
            message: message.into(),
            param: None,
        }
    }

    fn injected() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "api_error",
            code: None,
            message: "An unknown error occurred (injected by the payments sandbox).".to_owned(),
            param: None,
        }
    }

    pub fn body(&self) -> Value {
        let mut error = json!({ "type": self.kind, "message": self.message });
        if let Some(code) = self.code {
            error["code"] = json!(code);
        }
        if let Some(param) = &self.param {
            error["param"] = json!(param);
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// The JSON 404 for any other path, as Stripe answers it.
pub(crate) async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "invalid_request_error",
        code: None,
        message: format!("Unrecognized request URL ({method}: {}).", uri.path()),
        param: None,
    }
}

/// `Authorization: Bearer <secret key>` (or Basic), compared in constant time.
pub(crate) fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "You did not provide an API key. You need to provide your API key in the Authorization header, \
             using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        ));
    };
    let value = value.to_str().unwrap_or("");
    // Bearer, or Basic with the key as user name (`curl -u sk_…:`), as Stripe accepts.
    let given = if let Some(token) = value.strip_prefix("Bearer ") {
        token.as_bytes().to_vec()
    } else if let Some(encoded) = value.strip_prefix("Basic ") {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).unwrap_or_default();
        let user_end = decoded.iter().position(|&b| b == b':').unwrap_or(decoded.len());
        decoded[..user_end].to_vec()
    } else {
        Vec::new()
    };
    if !constant_time_eq(&given, shared.secret_key.as_bytes()) {
        return Err(ApiError::unauthorized("Invalid API Key provided."));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Authorization, then the API faults: latency first (a client with a shorter timeout
/// sees a timeout), then injected failures, which change nothing.
async fn admit(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    authorize(shared, headers)?;
    let latency = shared.lock().faults.api_latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let mut state = shared.lock();
    if state.faults.api_fail_next > 0 {
        state.faults.api_fail_next -= 1;
        return Err(ApiError::injected());
    }
    let p = state.faults.api_failure_probability;
    if state::chance(&mut state.api_rng, p) {
        return Err(ApiError::injected());
    }
    Ok(())
}

/// A form body's pairs, in order, with `metadata[key]` kept as written.
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// The parameters a POST names: scalars by name, `metadata[key]` gathered apart.
struct Params {
    scalars: BTreeMap<String, String>,
    metadata: BTreeMap<String, String>,
}

impl Params {
    /// Refuses a parameter not in `known` as Stripe does (`parameter_unknown`).
    fn read(pairs: &[(String, String)], known: &[&str]) -> Result<Self, ApiError> {
        let mut scalars = BTreeMap::new();
        let mut metadata = BTreeMap::new();
        for (key, value) in pairs {
            if let Some(inner) = key.strip_prefix("metadata[").and_then(|k| k.strip_suffix(']')) {
                if inner.is_empty() || inner.len() > METADATA_KEY_MAX || value.len() > METADATA_VALUE_MAX {
                    return Err(ApiError::invalid(
                        "parameter_invalid_string",
                        format!(
                            "Metadata keys must be 1 to {METADATA_KEY_MAX} characters and values at most \
                             {METADATA_VALUE_MAX}."
                        ),
                    )
                    .param(key));
                }
                // Stripe: an empty value unsets the key.
                if value.is_empty() {
                    metadata.remove(inner);
                } else {
                    metadata.insert(inner.to_owned(), value.clone());
                }
            } else if known.contains(&key.as_str()) || key.starts_with("expand[") {
                scalars.insert(key.clone(), value.clone());
            } else {
                return Err(
                    ApiError::invalid("parameter_unknown", format!("Received unknown parameter: {key}")).param(key)
                );
            }
        }
        if metadata.len() > METADATA_MAX_KEYS {
            return Err(ApiError::invalid(
                "parameter_invalid_string",
                format!("Metadata can have at most {METADATA_MAX_KEYS} keys."),
            )
            .param("metadata"));
        }
        Ok(Self { scalars, metadata })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.scalars.get(name).map(String::as_str)
    }

    fn amount(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.get(name) else { return Ok(None) };
        match raw.parse::<i64>() {
            Ok(n) if (1..=AMOUNT_MAX).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::invalid(
                "parameter_invalid_integer",
                format!("Invalid integer: {raw}; {name} must be a positive integer of at most {AMOUNT_MAX}"),
            )
            .param(name)),
        }
    }
}

/// Runs a POST's effect under the state lock, honouring its `Idempotency-Key`: the same
/// key with the same parameters on the same endpoint replays the first answer (with
/// `Idempotent-Replayed: true`); with other parameters it is a `400 idempotency_error`.
/// Only answers that did something (2xx) are kept: a refused request may be retried
/// under its key, as on Stripe, where validation failures are not saved.
fn idempotent(
    shared: &Shared,
    headers: &HeaderMap,
    endpoint: String,
    pairs: Vec<(String, String)>,
    run: impl FnOnce(&mut State, RequestInfo) -> Result<Value, ApiError>,
) -> Response {
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= IDEMPOTENCY_KEY_MAX => Some(k.to_owned()),
        Some(_) => {
            return ApiError::invalid(
                "idempotency_key_invalid",
                format!("Idempotency keys must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters."),
            )
            .into_response()
        }
    };
    let mut state = shared.lock();
    let mut sorted = pairs;
    sorted.sort();
    if let Some(key) = &key {
        if let Some(kept) = state.idempotency.get(key) {
            if kept.endpoint != endpoint || kept.parameters != sorted {
                return ApiError {
                    status: StatusCode::BAD_REQUEST,
                    kind: "idempotency_error",
                    code: None,
                    message: format!(
                        "Keys for idempotent requests can only be used with the same parameters they were first \
                         used with. Try using a key other than '{key}' if you meant to execute a different request."
                    ),
                    param: None,
                }
                .into_response();
            }
            let status = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
            let mut response = (status, Json(kept.body.clone())).into_response();
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            return response;
        }
    }
    let request = RequestInfo { id: Some(state::new_id("req")), idempotency_key: key.clone() };
    match run(&mut state, request) {
        Ok(body) => {
            if let Some(key) = key {
                let kept = IdempotentResult { endpoint, parameters: sorted, status: 200, body: body.clone() };
                state.idempotency.insert(key, kept);
            }
            Json(body).into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn to_json<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

async fn create_intent(AxumState(shared): AxumState<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = admit(&shared, &headers).await {
        return e.into_response();
    }
    let pairs = parse_form(&body);
    let known = [
        "amount",
        "currency",
        "description",
        "automatic_payment_methods[enabled]",
        "payment_method_types[]",
        "payment_method_types[0]",
    ];
    let params = match Params::read(&pairs, &known) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let amount = match params.amount("amount") {
        Ok(Some(a)) => a,
        Ok(None) => {
            return ApiError::invalid("parameter_missing", "Missing required param: amount.")
                .param("amount")
                .into_response()
        }
        Err(e) => return e.into_response(),
    };
    let currency = match params.get("currency") {
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) => c.to_ascii_lowercase(),
        Some(c) => {
            return ApiError::invalid("parameter_invalid_string", format!("Invalid currency: {c}"))
                .param("currency")
                .into_response()
        }
        None => {
            return ApiError::invalid("parameter_missing", "Missing required param: currency.")
                .param("currency")
                .into_response()
        }
    };
    let description = params.get("description").map(str::to_owned);
    let metadata = params.metadata;
    idempotent(&shared, &headers, "POST /v1/payment_intents".to_owned(), pairs, move |state, request| {
        let id = state::new_id("pi");
        let secret_tail = state::new_id("secret");
        let intent = PaymentIntent {
            client_secret: format!("{id}_{secret_tail}"),
            id: id.clone(),
            object: "payment_intent",
            amount,
            amount_received: 0,
            currency,
            status: IntentStatus::RequiresPaymentMethod,
            description,
            metadata,
            last_payment_error: None,
            latest_charge: None,
            canceled_at: None,
            cancellation_reason: None,
            capture_method: "automatic",
            confirmation_method: "automatic",
            payment_method_types: vec!["card"],
            created: state::now_secs(),
            livemode: false,
            amount_refunded: 0,
        };
        let body = to_json(&intent);
        state.intents.insert(id, intent);
        state.emit("payment_intent.created", body.clone(), request);
        Ok(body)
    })
}

async fn retrieve_intent(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    retrieve(&shared, &headers, "payment_intent", &id, |state| state.intents.get(&id).map(to_json)).await
}

/// `GET` of one object by id, after the key check (and the latency fault): `find`
/// renders it from the state, or it is Stripe's 404 for `kind`.
async fn retrieve(
    shared: &Shared,
    headers: &HeaderMap,
    kind: &str,
    id: &str,
    find: impl FnOnce(&State) -> Option<Value>,
) -> Response {
    if let Err(e) = admit(shared, headers).await {
        return e.into_response();
    }
    let mut state = shared.lock();
    *state.retrievals.entry(kind.to_owned()).or_default() += 1;
    match find(&state) {
        Some(object) => Json(object).into_response(),
        None => ApiError::missing(kind, id).into_response(),
    }
}

async fn cancel_intent(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(e) = admit(&shared, &headers).await {
        return e.into_response();
    }
    let pairs = parse_form(&body);
    let params = match Params::read(&pairs, &["cancellation_reason"]) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let reason = params.get("cancellation_reason").map(str::to_owned);
    idempotent(&shared, &headers, format!("POST /v1/payment_intents/{id}/cancel"), pairs, move |state, request| {
        let Some(intent) = state.intents.get_mut(&id) else {
            return Err(ApiError::missing("payment_intent", &id));
        };
        if intent.status != IntentStatus::RequiresPaymentMethod {
            return Err(ApiError::invalid(
                "payment_intent_unexpected_state",
                format!(
                    "You cannot cancel this PaymentIntent because it has a status of {}.",
                    to_json(&intent.status).as_str().unwrap_or("unknown")
                ),
            ));
        }
        intent.status = IntentStatus::Canceled;
        intent.canceled_at = Some(state::now_secs());
        intent.cancellation_reason = reason;
        let body = to_json(&*intent);
        state.emit("payment_intent.canceled", body.clone(), request);
        Ok(body)
    })
}

async fn create_refund(AxumState(shared): AxumState<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = admit(&shared, &headers).await {
        return e.into_response();
    }
    let pairs = parse_form(&body);
    let params = match Params::read(&pairs, &["payment_intent", "amount", "reason"]) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some(intent_id) = params.get("payment_intent").map(str::to_owned) else {
        return ApiError::invalid("parameter_missing", "Missing required param: payment_intent.")
            .param("payment_intent")
            .into_response();
    };
    let amount = match params.amount("amount") {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let reason = match params.get("reason") {
        None => None,
        Some(r @ ("duplicate" | "fraudulent" | "requested_by_customer")) => Some(r.to_owned()),
        Some(r) => {
            return ApiError::invalid("parameter_invalid_string", format!("Invalid reason: {r}"))
                .param("reason")
                .into_response()
        }
    };
    let metadata = params.metadata;
    let settler = shared.clone();
    idempotent(&shared, &headers, "POST /v1/refunds".to_owned(), pairs, move |state, request| {
        let Some(intent) = state.intents.get_mut(&intent_id) else {
            return Err(ApiError::missing("payment_intent", &intent_id).param("payment_intent"));
        };
        if intent.status != IntentStatus::Succeeded {
            return Err(ApiError::invalid(
                "charge_not_refundable",
                format!("This PaymentIntent ({intent_id}) does not have a successful charge to refund."),
            ));
        }
        let remaining = intent.amount_received - intent.amount_refunded;
        if remaining <= 0 {
            return Err(ApiError::invalid(
                "charge_already_refunded",
                format!("Charge {} has already been refunded.", intent.latest_charge.as_deref().unwrap_or("")),
            ));
        }
        let amount = amount.unwrap_or(remaining);
        if amount > remaining {
            return Err(ApiError::invalid(
                "amount_too_large",
                format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})"),
            )
            .param("amount"));
        }
        intent.amount_refunded += amount;
        let settle_after = state.faults.refund_settle_ms;
        let fails = state::chance(&mut state.api_rng, state.faults.refund_failure_probability);
        let refund = Refund {
            id: state::new_id("re"),
            object: "refund",
            amount,
            currency: intent.currency.clone(),
            payment_intent: intent_id.clone(),
            charge: intent.latest_charge.clone(),
            status: if settle_after > 0 || fails { "pending" } else { "succeeded" },
            reason,
            failure_reason: None,
            metadata,
            created: state::now_secs(),
        };
        let body = to_json(&refund);
        if settle_after > 0 || fails {
            let outcome = if fails { Settled::Failed } else { Settled::Succeeded };
            tokio::spawn(settle_refund(settler, refund.id.clone(), Duration::from_millis(settle_after), outcome));
        }
        state.refunds.insert(refund.id.clone(), refund);
        state.emit("refund.created", body.clone(), request);
        Ok(body)
    })
}

/// What a pending refund becomes.
enum Settled {
    Succeeded,
    /// The card was closed: the amount goes back on the intent.
    Failed,
}

/// A pending refund settles `after` its creation (the `refund_settle_ms` fault), and
/// says so with `refund.updated`, as Stripe's do when the bank has settled them.
async fn settle_refund(shared: Arc<Shared>, id: String, after: Duration, outcome: Settled) {
    tokio::time::sleep(after).await;
    let mut state = shared.lock();
    let Some(refund) = state.refunds.get_mut(&id).filter(|r| r.status == "pending") else { return };
    match outcome {
        Settled::Succeeded => refund.status = "succeeded",
        Settled::Failed => {
            refund.status = "failed";
            refund.failure_reason = Some("expired_or_canceled_card");
        }
    }
    let body = to_json(&*refund);
    let (intent_id, amount, failed) = (refund.payment_intent.clone(), refund.amount, refund.status == "failed");
    if let (true, Some(intent)) = (failed, state.intents.get_mut(&intent_id)) {
        intent.amount_refunded -= amount;
    }
    state.emit("refund.updated", body, RequestInfo::default());
}

async fn retrieve_refund(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    retrieve(&shared, &headers, "refund", &id, |state| state.refunds.get(&id).map(to_json)).await
}

async fn retrieve_event(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    retrieve(&shared, &headers, "event", &id, |state| state.event(&id).map(|event| event.json())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_gathered_and_unknown_parameters_are_refused() {
        let pairs = parse_form(b"amount=100&metadata%5Bhold%5D=h1&metadata[event]=e%201");
        let params = Params::read(&pairs, &["amount"]).map_err(|e| e.message).unwrap();
        assert_eq!(params.metadata.get("hold").map(String::as_str), Some("h1"));
        assert_eq!(params.metadata.get("event").map(String::as_str), Some("e 1"));
        let refused = Params::read(&parse_form(b"amount=1&colour=red"), &["amount"]).err().map(|e| e.code);
        assert_eq!(refused, Some(Some("parameter_unknown")));
    }

    #[test]
    fn amounts_outside_stripes_range_are_refused() {
        for raw in ["0", "-5", "1.5", "abc", "100000000", "99999999999999999999999"] {
            let params = Params::read(&parse_form(format!("amount={raw}").as_bytes()), &["amount"])
                .map_err(|e| e.message)
                .unwrap();
            assert!(params.amount("amount").is_err(), "{raw}");
        }
    }

    #[test]
    fn garbage_bodies_parse_without_panicking() {
        let pairs = parse_form(&[0xff, b'=', b'%', b'&', b'[', 0x00]);
        assert!(Params::read(&pairs, &[]).is_err());
    }
}
