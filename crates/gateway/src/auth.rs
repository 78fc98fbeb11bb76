//! Who is calling: the organizer (admin API key), an admitted fan (access token), the
//! holder of a booking's capability link, or a gate's scanner (scanner key).

use std::collections::BTreeMap;

use access_token::{AccessClaims, TokenScope};
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use sales::tickets::BookingAccess;
use sales::FanScope;
use service_kit::openapi::refusals;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, OpenApi, RefOr, Response};
use utoipa::IntoResponses;
use uuid::Uuid;

pub use service_kit::auth::Admin;

use crate::error::Error;
use crate::metrics;
use crate::state::AppState;

/// An admitted fan acting on the event in the request path, proven by an access token
/// for that event with the `shop` scope. Its [`FanScope`] goes to every use case, so a
/// fan can only reach their own holds and bookings.
#[derive(Debug, Clone)]
pub struct Fan(pub FanScope);

impl FromRequestParts<AppState> for Fan {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        match token_holder(parts, state).await? {
            (scope, TokenScope::Shop) => Ok(Fan(scope)),
            (_, TokenScope::Waitlist) => {
                metrics::token_rejected("scope");
                Err(Error::TokenScopeInsufficient)
            }
        }
    }
}

/// A fan who may join the event's waitlist: an admitted fan (`shop`), or one the
/// waiting room sent to the waitlist because nothing was left to sell (`waitlist`).
#[derive(Debug, Clone)]
pub struct WaitlistFan(pub FanScope);

impl FromRequestParts<AppState> for WaitlistFan {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        Ok(WaitlistFan(token_holder(parts, state).await?.0))
    }
}

/// The fan an access token for the event in the request path names, and what the token
/// lets them do.
async fn token_holder(parts: &mut Parts, state: &AppState) -> Result<(FanScope, TokenScope), Error> {
    let token = service_kit::auth::bearer(parts).ok_or_else(|| {
        metrics::token_rejected("missing");
        Error::MissingToken
    })?;
    let claims = checked_claims(token, state)?;
    let event_id = path_event_id(parts, state).await?;
    holder_for_event(claims, event_id)
}

/// An admitted fan whose access token came in a request's body, not its
/// `Authorization` header: `navigator.sendBeacon`, which a page calls as it closes,
/// cannot set headers. Checked as [`Fan`] checks a token.
pub fn fan_from_body_token(token: &str, event_id: Uuid, state: &AppState) -> Result<FanScope, Error> {
    match holder_for_event(checked_claims(token, state)?, event_id)? {
        (scope, TokenScope::Shop) => Ok(scope),
        (_, TokenScope::Waitlist) => {
            metrics::token_rejected("scope");
            Err(Error::TokenScopeInsufficient)
        }
    }
}

/// The token's claims, if it verifies, is not revoked and its fan is within their
/// request limit.
fn checked_claims(token: &str, state: &AppState) -> Result<AccessClaims, Error> {
    let claims = state.verifier.verify(token).map_err(|e| {
        metrics::token_rejected(e.reason());
        Error::BadToken(e)
    })?;
    // On every request: a cached token may have been revoked since it was verified.
    // Until this replica has read the revocations once, it cannot tell: it refuses
    // (fails closed) rather than accept a token revoked before it started.
    if !state.revocations.loaded() {
        metrics::token_rejected("revocations_not_loaded");
        return Err(Error::RevocationsNotLoaded(state.revocations.poll_every()));
    }
    if state.revocations.is_revoked(&claims) {
        metrics::token_rejected("revoked");
        return Err(Error::TokenRevoked);
    }
    state.limits.check_fan(&claims.sub).map_err(Error::RateLimited)?;
    Ok(claims)
}

fn holder_for_event(claims: AccessClaims, event_id: Uuid) -> Result<(FanScope, TokenScope), Error> {
    if claims.evt != event_id {
        metrics::token_rejected("other_event");
        return Err(Error::TokenForOtherEvent);
    }
    Ok((FanScope { event_id, fan_id: claims.sub }, claims.scope))
}

/// Who may reach a booking (show it, cancel it, its tickets, its link): the holder of
/// its capability link (`?link=…`, checked by the use case against the booking in the
/// path, its generation by the statement that reads or locks the booking), or else its
/// fan by access token, as [`Fan`] checks it.
pub struct BookingHolder(pub BookingAccess);

impl FromRequestParts<AppState> for BookingHolder {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if let Some(link) = capability_link(parts, state)? {
            return Ok(BookingHolder(BookingAccess::Link(link)));
        }
        let Fan(scope) = Fan::from_request_parts(parts, state).await?;
        Ok(BookingHolder(BookingAccess::Fan(scope)))
    }
}

/// A fan acting on the hold in the request path: through the hold's waitlist offer link
/// (`?link=…`: an offer may come long after the fan's access token expired), or else by
/// access token, as [`Fan`] checks it. Either way the use case gets the fan's scope, so
/// the hold's own rules apply unchanged.
pub struct HoldFan(pub FanScope);

impl FromRequestParts<AppState> for HoldFan {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if let Some(link) = capability_link(parts, state)? {
            let event_id = path_id(parts, state, "event_id", "an event").await?;
            let hold_id = path_id(parts, state, "hold_id", "a hold").await?;
            return Ok(HoldFan(state.sales.offer_holder(&link, event_id, hold_id).await?));
        }
        let Fan(scope) = Fan::from_request_parts(parts, state).await?;
        Ok(HoldFan(scope))
    }
}

/// The `link` query parameter (a capability link), limited as a fan is: the link stands
/// for its fan.
fn capability_link(parts: &Parts, state: &AppState) -> Result<Option<String>, Error> {
    let link = parts.uri.query().into_iter().flat_map(|q| q.split('&')).find_map(|pair| pair.strip_prefix("link="));
    let Some(link) = link else { return Ok(None) };
    state.limits.check_fan(link).map_err(Error::RateLimited)?;
    Ok(Some(link.to_owned()))
}

/// A gate's scanner, proven by a scanner key of the event in the request path: it may
/// check tickets in and read the revocation feed, nothing else.
pub struct Scanner(pub Uuid);

impl FromRequestParts<AppState> for Scanner {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let key = service_kit::auth::bearer(parts).ok_or(Error::MissingScannerKey)?.to_owned();
        let event_id = path_event_id(parts, state).await?;
        match state.sales.scanner_key_event(&key).await? {
            Some(event) if event == event_id => Ok(Scanner(event_id)),
            Some(_) => Err(Error::ScannerKeyForOtherEvent),
            None => Err(Error::BadScannerKey),
        }
    }
}

/// What [`Scanner`] refuses, for `#[utoipa::path(responses(…))]`.
pub struct ScannerRefused;

impl IntoResponses for ScannerRefused {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refusals([
            ("401", "`scanner_key_required` or `invalid_scanner_key`"),
            ("403", "`scanner_key_for_other_event`: the key is another event's"),
        ])
    }
}

/// What [`HoldFan`] refuses before the handler runs.
pub struct HoldFanRefused;

impl IntoResponses for HoldFanRefused {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refusals([
            ("401", "`missing_token`, `invalid_token`, `token_expired`, `token_revoked`, or `invalid_link` (an offer link that is changed, expired, or another hold's; only a hold made as a waitlist offer has one)"),
            ("403", "`token_for_other_event` (the token names another event) or `token_scope_insufficient` (a `waitlist` token: it may only join the waitlist)"),
        ])
    }
}

/// What [`BookingHolder`] refuses before the handler runs.
pub struct HolderRefused;

impl IntoResponses for HolderRefused {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refusals([
            ("401", "`missing_token`, `invalid_token`, `token_expired`, `token_revoked`, or `invalid_link` (a booking link that is changed, expired, or another booking's; a revoked one is `404 booking_not_found`)"),
            ("403", "`token_for_other_event` (the token names another event) or `token_scope_insufficient` (a `waitlist` token: it may only join the waitlist)"),
        ])
    }
}

async fn path_event_id(parts: &mut Parts, state: &AppState) -> Result<Uuid, Error> {
    path_id(parts, state, "event_id", "an event").await
}

/// The path parameter `name`, the id of `what`.
async fn path_id(parts: &mut Parts, state: &AppState, name: &str, what: &str) -> Result<Uuid, Error> {
    let params = RawPathParams::from_request_parts(parts, state).await.map_err(|e| Error::BadRequest(e.body_text()))?;
    let raw = params
        .iter()
        .find_map(|(param, value)| (param == name).then_some(value))
        .ok_or_else(|| Error::BadRequest(format!("this route has no {name} in its path")))?;
    raw.parse().map_err(|_| Error::BadRequest(format!("{} is not {what} id (a UUID)", service_kit::quoted(raw))))
}

/// The security scheme of the fan's routes, as a handler names it:
/// `security(("access_token" = []))`.
const ACCESS_TOKEN: &str = "access_token";

/// Adds the [`ACCESS_TOKEN`], `booking_link`, `offer_link` and `scanner_key` schemes to
/// the gateway's OpenAPI description.
pub fn describe_access_token(openapi: &mut OpenApi) {
    let link = utoipa::openapi::security::ApiKey::Query(utoipa::openapi::security::ApiKeyValue::with_description(
        "link",
        "A booking's capability link (`link` in the fan's booking answers): that booking, its tickets, \
         cancelling it and rotating its link, until a day after the event starts or until the link is rotated",
    ));
    let offer = utoipa::openapi::security::ApiKey::Query(utoipa::openapi::security::ApiKeyValue::with_description(
        "link",
        "A waitlist offer's capability link (`offer.link` in the fan's waitlist entry, and in the offer's email): \
         that hold's routes, until a day after the event starts",
    ));
    let scanner = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some(
            "`Authorization: Bearer <scanner key>`: a key the organizer issued for one event's gates (check-in only)",
        ))
        .build();
    let components = openapi.components.get_or_insert_with(Components::new);
    components.security_schemes.insert("booking_link".to_owned(), SecurityScheme::ApiKey(link));
    components.security_schemes.insert("offer_link".to_owned(), SecurityScheme::ApiKey(offer));
    components.security_schemes.insert("scanner_key".to_owned(), SecurityScheme::Http(scanner));
    let scheme = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("JWT")
        .description(Some(
            "`Authorization: Bearer <access_token>`: the EdDSA-signed token the waiting room gives an admitted fan, \
             valid for the one event it names",
        ))
        .build();
    let components = openapi.components.get_or_insert_with(Components::new);
    components.security_schemes.insert(ACCESS_TOKEN.to_owned(), SecurityScheme::Http(scheme));
}

/// What [`Fan`] refuses before a fan's handler runs, for `#[utoipa::path(responses(…))]`.
/// Its `503 revocations_not_loaded` (this replica has not read the revocations yet) is
/// described with each route's own 503.
pub struct FanRefused;

impl IntoResponses for FanRefused {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refusals([
            ("401", "`missing_token`, `invalid_token`, `token_expired` or `token_revoked` (the organizer revoked the admission)"),
            ("403", "`token_for_other_event` (the token names another event) or `token_scope_insufficient` (a `waitlist` token: it may only join the waitlist)"),
        ])
    }
}
