//! E-tickets: the gateway's JWKS (the ticket keys, for offline scanners), a booking's
//! tickets, their QR codes and printable page, a reissue, and the revocation feed.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use sales::tickets::{BookingTickets, RevocationFeed, TicketStatus, TicketView, MAX_FEED_PAGE};
use service_kit::extract::{Json, Path, Query};
use service_kit::openapi::RateLimited;
use service_kit::ErrorBody;

use crate::auth::{BookingHolder, HolderRefused, Scanner, ScannerRefused};
use crate::error::{Error, Result};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(jwks))
        .routes(routes!(list))
        .routes(routes!(qr_svg))
        .routes(routes!(print))
        .routes(routes!(reissue))
        .routes(routes!(revocations))
}

/// The public keys that sign e-ticket secrets (`boxoffice_purpose: "ticket"`), for
/// scanners and anyone verifying a ticket offline, and those of the outbox relay's `v1a`
/// webhook signatures (`"webhook"`, when configured). Ticket keys stay here while their
/// files are in `tickets.keys_dir`: keep an old key's public file until its events are over.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "gateway_jwks",
    tag = "tickets",
    responses(
        (status = 200, description = "A JSON Web Key Set (RFC 7517) of Ed25519 keys (RFC 8037)", body = Object),
        RateLimited,
    ),
)]
async fn jwks(State(state): State<AppState>) -> Json<Value> {
    let mut keys = state.sales.ticket_jwks();
    keys.extend(state.webhook_jwks.iter().cloned());
    Json(serde_json::json!({ "keys": keys }))
}

/// The booking's tickets, each with its secret (the QR code's content) while it is
/// live. For the booking's fan (access token) or through the booking's link
/// (`?link=…`, from the booking's answer), long after the access token expired.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/bookings/{booking_id}/tickets",
    operation_id = "list_tickets",
    tag = "tickets",
    params(("event_id" = Uuid, Path), ("booking_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The booking's tickets", body = BookingTickets),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody),
        (status = 404, description = "`booking_not_found` (also another fan's booking, or a revoked link's)", body = ErrorBody),
        (status = 503, description = "`unavailable`, `tickets_unavailable` (no ticket keys here) or `revocations_not_loaded`", body = ErrorBody),
        HolderRefused, RateLimited,
    ),
    security(("access_token" = []), ("booking_link" = [])),
)]
#[tracing::instrument(skip_all, fields(%event_id, %booking_id))]
async fn list(
    State(state): State<AppState>,
    BookingHolder(access): BookingHolder,
    Path((event_id, booking_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<BookingTickets>> {
    Ok(Json(state.sales.booking_tickets(&access, event_id, booking_id).await?))
}

/// The ticket's QR code (its secret) as SVG, for a screen or a printed page.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/bookings/{booking_id}/tickets/{ticket_id}/qr.svg",
    operation_id = "ticket_qr_svg",
    tag = "tickets",
    params(("event_id" = Uuid, Path), ("booking_id" = Uuid, Path), ("ticket_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The QR code", content_type = "image/svg+xml", body = String),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody),
        (status = 404, description = "`booking_not_found` or `ticket_not_found`", body = ErrorBody),
        (status = 409, description = "`ticket_revoked`: a revoked ticket has no QR code", body = ErrorBody),
        (status = 503, description = "`unavailable`, `tickets_unavailable` or `revocations_not_loaded`", body = ErrorBody),
        HolderRefused, RateLimited,
    ),
    security(("access_token" = []), ("booking_link" = [])),
)]
#[tracing::instrument(skip_all, fields(%event_id, %booking_id, %ticket_id))]
async fn qr_svg(
    State(state): State<AppState>,
    BookingHolder(access): BookingHolder,
    Path((event_id, booking_id, ticket_id)): Path<(Uuid, Uuid, Uuid)>,
) -> Result<Response> {
    let ticket = state.sales.booking_ticket(&access, event_id, booking_id, ticket_id).await?;
    let secret = ticket.secret.ok_or(sales::Error::TicketRevoked)?;
    let svg = qr_code_svg(&secret);
    Ok(([(CONTENT_TYPE, "image/svg+xml"), (CACHE_CONTROL, "private, no-store")], svg).into_response())
}

/// The secret as a QR code: byte mode, error correction M, as an SVG document.
fn qr_code_svg(secret: &str) -> String {
    match qrcode::QrCode::with_error_correction_level(secret.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => code.render::<qrcode::render::svg::Color>().min_dimensions(256, 256).quiet_zone(true).build(),
        // A secret is about 200 bytes; a version-40 code holds over 2,000.
        Err(e) => unreachable!("a ticket secret always fits a QR code: {e}"),
    }
}

/// The QR code as an `<svg>` element to put inside HTML: the document without its XML
/// declaration, which has no place in HTML.
fn qr_code_svg_element(secret: &str) -> String {
    let document = qr_code_svg(secret);
    match document.find("<svg") {
        Some(start) => document[start..].to_owned(),
        None => unreachable!("the SVG renderer always writes an <svg> element"),
    }
}

/// The page templates (`templates/`), compiled in; `.html` ones escape what they show.
static PAGES: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_template("tickets.html", include_str!("../../templates/tickets.html"))
        .expect("the page templates parse (checked by the tests)");
    env
});

#[derive(Serialize)]
struct PrintedTicket {
    id: Uuid,
    /// The seat's label, or "General admission".
    place: String,
    section: String,
    revoked: bool,
    checked_in: bool,
    /// The QR code as an `<svg>` element; empty once revoked.
    qr_svg: String,
}

/// The booking's tickets as one HTML page to print (one ticket a printed page) or show:
/// the event, each ticket's place and its QR code; a revoked ticket is marked, with no
/// code. For the booking's fan (access token) or through the booking's link.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/bookings/{booking_id}/tickets/print",
    operation_id = "print_tickets",
    tag = "tickets",
    params(("event_id" = Uuid, Path), ("booking_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The printable page", content_type = "text/html; charset=utf-8", body = String),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody),
        (status = 404, description = "`booking_not_found` (also another fan's booking, or a revoked link's)", body = ErrorBody),
        (status = 503, description = "`unavailable`, `tickets_unavailable` (no ticket keys here) or `revocations_not_loaded`", body = ErrorBody),
        HolderRefused, RateLimited,
    ),
    security(("access_token" = []), ("booking_link" = [])),
)]
#[tracing::instrument(skip_all, fields(%event_id, %booking_id))]
async fn print(
    State(state): State<AppState>,
    BookingHolder(access): BookingHolder,
    Path((event_id, booking_id)): Path<(Uuid, Uuid)>,
) -> Result<Response> {
    let printable = state.sales.printable_tickets(&access, event_id, booking_id).await?;
    let tickets: Vec<PrintedTicket> = printable
        .tickets
        .into_iter()
        .map(|ticket| PrintedTicket {
            id: ticket.id,
            place: ticket.label.unwrap_or_else(|| "General admission".to_owned()),
            section: ticket.section_name,
            revoked: ticket.status == TicketStatus::Revoked,
            checked_in: ticket.status == TicketStatus::CheckedIn,
            qr_svg: ticket.secret.as_deref().map(qr_code_svg_element).unwrap_or_default(),
        })
        .collect();
    let context = minijinja::context! {
        event_name => printable.event_name,
        starts_at => printable.starts_at.map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string()),
        tickets => tickets,
    };
    let page = PAGES.get_template("tickets.html").and_then(|t| t.render(context)).map_err(Error::Page)?;
    Ok(([(CONTENT_TYPE, "text/html; charset=utf-8"), (CACHE_CONTROL, "private, no-store")], page).into_response())
}

/// Gives the ticket a new secret (its QR code leaked): the current secret is revoked,
/// and the new one made, in one transaction, the revocation first. Scanners refuse the
/// old one at once online, and offline once they have read the revocation feed.
#[utoipa::path(
    post,
    path = "/v1/events/{event_id}/bookings/{booking_id}/tickets/{ticket_id}/reissue",
    operation_id = "reissue_ticket",
    tag = "tickets",
    params(("event_id" = Uuid, Path), ("booking_id" = Uuid, Path), ("ticket_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The ticket with its new secret", body = TicketView),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody),
        (status = 404, description = "`ticket_not_found` (also another fan's)", body = ErrorBody),
        (status = 409, description = "`ticket_revoked`: its booking was cancelled", body = ErrorBody),
        (status = 503, description = "`unavailable`, `outcome_unknown`, `tickets_unavailable` or `revocations_not_loaded`", body = ErrorBody),
        HolderRefused, RateLimited,
    ),
    security(("access_token" = []), ("booking_link" = [])),
)]
#[tracing::instrument(skip_all, fields(%event_id, %booking_id, %ticket_id))]
async fn reissue(
    State(state): State<AppState>,
    BookingHolder(access): BookingHolder,
    Path((event_id, booking_id, ticket_id)): Path<(Uuid, Uuid, Uuid)>,
) -> Result<Json<TicketView>> {
    Ok(Json(state.sales.reissue_ticket(&access, event_id, booking_id, ticket_id).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FeedPage {
    /// The `next` of the last page read; 0 (default) for everything. (Positions are
    /// PostgreSQL bigints: read as one, so a larger number is refused, not wrapped.)
    #[serde(default)]
    #[param(minimum = 0)]
    since: i64,
    /// The most revocations a page holds, unless one transaction (a cancellation) alone
    /// revoked more: a page holds whole transactions.
    #[serde(default = "max_feed_page")]
    #[param(minimum = 1, maximum = 1000, default = 1000)]
    limit: u32,
}

fn max_feed_page() -> u32 {
    MAX_FEED_PAGE
}

/// The event's revoked ticket secrets since a position, for offline scanners, a page at
/// a time: while `more` is true, ask again from `next`. The body
/// is signed with the ticket key: `Boxoffice-Signature: kid=<kid>,ed25519=<base64url
/// Ed25519 signature of "boxoffice.ticket-revocations\0" followed by the body>`. The
/// `ETag` names the body: `If-None-Match` with it answers `304` while nothing changed.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/tickets/revocations",
    operation_id = "ticket_revocations",
    tag = "check-in",
    params(("event_id" = Uuid, Path), FeedPage),
    responses(
        (status = 200, description = "Revocations from `since` on, and where to go on from", body = RevocationFeed,
            headers(("ETag" = String), ("Boxoffice-Signature" = String))),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 400, description = "`bad_request`: an unreadable event id, `since` or `limit`, or `limit` out of range", body = ErrorBody),
        (status = 404, description = "`event_not_found`", body = ErrorBody),
        (status = 503, description = "`unavailable` or `tickets_unavailable`", body = ErrorBody),
        ScannerRefused, RateLimited,
    ),
    security(("scanner_key" = [])),
)]
#[tracing::instrument(skip_all, fields(%event_id))]
async fn revocations(
    State(state): State<AppState>,
    Scanner(event_id): Scanner,
    Query(q): Query<FeedPage>,
    headers: HeaderMap,
) -> Result<Response> {
    if !(1..=MAX_FEED_PAGE).contains(&q.limit) {
        return Err(Error::BadRequest(format!("limit must be 1-{MAX_FEED_PAGE}")));
    }
    let since = u64::try_from(q.since).map_err(|_| Error::BadRequest("since must be 0 or more".into()))?;
    let feed = state.sales.ticket_revocations(event_id, since, q.limit).await?;
    let body = serde_json::to_vec(&feed).expect("a revocation feed always serialises");
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..16]));
    let signature = state.sales.sign_revocation_feed(&body)?;
    let unchanged = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim().trim_start_matches("W/") == etag));
    let etag = HeaderValue::from_str(&etag).expect("hex in quotes is a header value");
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag)]).into_response());
    }
    let signature = HeaderValue::from_str(&signature).expect("base64url is a header value");
    Ok((
        [(CONTENT_TYPE, HeaderValue::from_static("application/json")), (ETAG, etag)],
        [("boxoffice-signature", signature)],
        body,
    )
        .into_response())
}
