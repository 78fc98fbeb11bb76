//! The fans' and the organizer's pages (issue 17): `crates/gateway/web/`, embedded in the
//! binary by `rust-embed` in release builds and read from that folder in debug builds (a
//! page edited shows on reload). Every page is `layout.html` (a minijinja template) with
//! its title and scripts, and a content block of its own where it has one
//! (`organizer.html`); its script calls this gateway's API on the page's own origin and
//! the waiting room's across origins (CORS, `waitroom.page_origins`); see README
//! "Origins".

use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use service_kit::extract::Path;
use service_kit::openapi::RateLimited;
use service_kit::ErrorBody;

use crate::error::{Error, Result};
use crate::state::AppState;

#[derive(rust_embed::Embed)]
#[folder = "web/"]
struct Web;

/// A page: the template it renders, its title (also its `<h1>`), its scripts after
/// `common.js`, and a class on its `<main>` for its styles.
struct Page {
    template: &'static str,
    title: &'static str,
    scripts: &'static [&'static str],
    class: Option<&'static str>,
}

const HOME: Page = Page { template: "layout.html", title: "Events", scripts: &["home.js"], class: None };
const WAITING: Page = Page { template: "layout.html", title: "Waiting room", scripts: &["waiting.js"], class: None };
const SEATS: Page = Page { template: "layout.html", title: "Choose your seats", scripts: &["seats.js"], class: None };
const CHECKOUT: Page = Page {
    template: "layout.html",
    title: "Checkout",
    scripts: &["orders.js", "checkout.js"],
    class: Some("order-page"),
};
const BOOKING: Page = Page {
    template: "layout.html",
    title: "Your tickets",
    scripts: &["orders.js", "booking.js"],
    class: Some("order-page"),
};
const ORGANIZER: Page =
    Page { template: "organizer.html", title: "Organizer", scripts: &["organizer.js"], class: Some("organizer") };

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(home))
        .routes(routes!(waiting_page))
        .routes(routes!(seat_picker))
        .routes(routes!(checkout_page))
        .routes(routes!(booking_page))
        .routes(routes!(organizer_page))
        .routes(routes!(asset))
}

/// Home: the events on sale or coming up (the public catalogue).
#[utoipa::path(get, path = "/", operation_id = "home_page", tag = "pages",
    responses((status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String), RateLimited))]
async fn home(State(state): State<AppState>) -> Result<Response> {
    page(&state, &HOME)
}

/// The waiting page: joins the event's queue (or resumes with the ticket the browser
/// kept), shows the fan's standing as the waiting room pushes it, and moves on to the
/// seat picker once admitted.
#[utoipa::path(get, path = "/e/{event_id}", operation_id = "waiting_page", tag = "pages",
    params(("event_id" = Uuid, Path)),
    responses((status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String),
        (status = 400, description = "`bad_request`: the id is not a UUID", body = ErrorBody), RateLimited))]
async fn waiting_page(State(state): State<AppState>, Path(_event_id): Path<Uuid>) -> Result<Response> {
    page(&state, &WAITING)
}

/// The seat picker: the venue's live seat map, holds, the hold's countdown.
#[utoipa::path(get, path = "/e/{event_id}/seats", operation_id = "seat_picker_page", tag = "pages",
    params(("event_id" = Uuid, Path)),
    responses((status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String),
        (status = 400, description = "`bad_request`: the id is not a UUID", body = ErrorBody), RateLimited))]
async fn seat_picker(State(state): State<AppState>, Path(_event_id): Path<Uuid>) -> Result<Response> {
    page(&state, &SEATS)
}

/// Checkout of a hold: the order and the refund policy, the payment, the confirmation.
#[utoipa::path(get, path = "/e/{event_id}/checkout/{hold_id}", operation_id = "checkout_page", tag = "pages",
    params(("event_id" = Uuid, Path), ("hold_id" = Uuid, Path)),
    responses((status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody), RateLimited))]
async fn checkout_page(State(state): State<AppState>, Path(_ids): Path<(Uuid, Uuid)>) -> Result<Response> {
    page(&state, &CHECKOUT)
}

/// A booking and its tickets with their QR codes, and cancelling it: through the
/// booking's link (`?link=…`) or the fan's access token.
#[utoipa::path(get, path = "/e/{event_id}/bookings/{booking_id}", operation_id = "booking_page", tag = "pages",
    params(("event_id" = Uuid, Path), ("booking_id" = Uuid, Path)),
    responses((status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody), RateLimited))]
async fn booking_page(State(state): State<AppState>, Path(_ids): Path<(Uuid, Uuid)>) -> Result<Response> {
    page(&state, &BOOKING)
}

/// The organizer's page (the admin key typed in, kept for the tab only): create an
/// event, open its waiting room, watch the sale live.
#[utoipa::path(get, path = "/admin", operation_id = "organizer_page", tag = "pages",
    responses((status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String), RateLimited))]
async fn organizer_page(State(state): State<AppState>) -> Result<Response> {
    page(&state, &ORGANIZER)
}

/// The pages' scripts, styles and images, each with its `ETag`: browsers ask again on
/// every load and are answered `304` while it has not changed.
#[utoipa::path(get, path = "/assets/{file}", operation_id = "page_asset", tag = "pages",
    params(("file" = String, Path, description = "e.g. `app.css`, `seats.js`", example = "app.css")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"), (String = "image/png"),
        )),
        (status = 304, description = "Not modified since the `ETag` in `If-None-Match`"),
        (status = 404, description = "`not_found`: no such asset", body = ErrorBody),
        RateLimited,
    ))]
async fn asset(Path(file): Path<String>, request: HeaderMap) -> Result<Response> {
    // A name, never a path: nothing outside `web/assets/` is an asset.
    let plain_name = !file.starts_with('.') && !file.contains(['/', '\\']);
    let asset = plain_name.then(|| Web::get(&format!("assets/{file}"))).flatten().ok_or(Error::AssetNotFound)?;
    let etag = format!("\"{}\"", hex::encode(&asset.metadata.sha256_hash()[..16]));
    let revalidate = [(CACHE_CONTROL, "no-cache"), (X_CONTENT_TYPE_OPTIONS, "nosniff")];
    if request.get(IF_NONE_MATCH).is_some_and(|seen| seen.as_bytes() == etag.as_bytes()) {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag)], revalidate).into_response());
    }
    let content_type = asset.metadata.mimetype().to_owned();
    Ok(([(CONTENT_TYPE, content_type), (ETAG, etag)], revalidate, asset.data).into_response())
}

/// A page, with the waiting room's origin in its `<meta name="boxoffice-waitroom">` and a
/// policy allowing scripts, styles and connections to this origin and the waiting room's
/// only (no inline script: what an injected `<script>` would need). The referrer is never
/// sent: a booking page's address carries its capability link.
fn page(state: &AppState, page: &Page) -> Result<Response> {
    let waitroom = &state.pages.waitroom_origin;
    let mut templates = minijinja::Environment::new();
    // Read for each page served: a debug build shows an edited file at once, and a page
    // costs no more than reading two small templates.
    templates.set_loader(|name| Ok(Web::get(name).map(|file| String::from_utf8_lossy(&file.data).into_owned())));
    let context = minijinja::context! {
        title => page.title, scripts => page.scripts, class => page.class, waitroom_origin => waitroom,
    };
    let document = templates.get_template(page.template).and_then(|t| t.render(context)).map_err(Error::Page)?;
    let policy = format!(
        "default-src 'self'; connect-src 'self' {waitroom}; img-src 'self' data:; script-src 'self'; \
         style-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        // The origin was checked at start-up; were it ever not a header value, the
        // strictest policy.
        (
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'self'")),
        ),
    ];
    Ok((headers, document).into_response())
}
