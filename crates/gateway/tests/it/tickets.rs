//! E-tickets: one per booked place, secrets that verify from the JWKS alone, the
//! booking's link, reissue and cancellation revoking old secrets, the revocation feed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use test_support::Reply;
use uuid::Uuid;

use crate::helpers::{count, spawn_app, spawn_app_reloading_ticket_keys, Event, TestApp, ADMIN_KEY};

/// Books `request` for `fan` and returns the booking's answer.
pub async fn book(app: &TestApp, event: &Event, fan: &str, request: Value) -> Value {
    let reply = app.book(event, fan, request).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

pub fn tickets_path(event: &Event, booking: &Value) -> String {
    event.path(&format!("/bookings/{}/tickets", booking["id"].as_str().unwrap()))
}

/// The booking's tickets, read with the fan's access token.
pub async fn tickets(app: &TestApp, event: &Event, fan: &str, booking: &Value) -> Vec<Value> {
    let token = app.token(fan, event);
    let reply = app.send(Method::GET, &tickets_path(event, booking), Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["tickets"].as_array().unwrap().clone()
}

/// A scanner key for the event's gates.
pub async fn scanner_key(app: &TestApp, event: &Event) -> String {
    let path = format!("/v1/admin/events/{}/scanner-keys", event.id);
    let reply = app.send(Method::POST, &path, Some(ADMIN_KEY), Some(json!({ "name": "North gate" }))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["key"].as_str().unwrap().to_owned()
}

pub fn scan(
    app: &TestApp,
    event: &Event,
    key: &str,
    secret: &str,
    gate: &str,
) -> impl std::future::Future<Output = Reply> {
    app.send(Method::POST, &event.path("/checkins"), Some(key), Some(json!({ "secret": secret, "gate": gate })))
}

/// The revocation feed from `since` once it holds `rows` revocations. The feed shows a
/// revocation once every transaction older than it has ended, on the whole server (the
/// watermark of DECISIONS.md D3): another test's open transaction (the fault tests hold
/// some open for seconds on purpose) holds it back, so this asks again for up to a
/// minute. (Measured: more than 10 s while the whole suite ran beside another.)
pub async fn feed_with(app: &TestApp, event: &Event, key: &str, since: u64, rows: usize) -> Reply {
    let path = event.path(&format!("/tickets/revocations?since={since}"));
    for _ in 0..1200 {
        let reply = app.send(Method::GET, &path, Some(key), None).await;
        if reply.body["revocations"].as_array().is_some_and(|r| r.len() >= rows) {
            return reply;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the feed never showed {rows} revocations");
}

pub fn secret(ticket: &Value) -> String {
    ticket["secret"].as_str().unwrap_or_else(|| panic!("no secret: {ticket}")).to_owned()
}

/// Verifies a secret as an offline scanner would: the key its `kid` names in the JWKS
/// (with purpose `ticket`), Ed25519 over the purpose context and the payload.
fn verify_with_jwks(jwks: &Value, secret: &str) -> Result<sales::domain::ticket_secret::TicketFields, String> {
    sales::domain::ticket_secret::verify(secret, |kid, message, signature| {
        let jwk = jwks["keys"].as_array()?.iter().find(|k| k["kid"] == kid && k["boxoffice_purpose"] == "ticket")?;
        let x: [u8; 32] = URL_SAFE_NO_PAD.decode(jwk["x"].as_str()?).ok()?.try_into().ok()?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&x).ok()?;
        Some(key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature)).is_ok())
    })
    .map_err(|e| e.to_string())
}

#[tokio::test]
async fn every_booked_place_gets_one_ticket_whose_secret_verifies_from_the_jwks() {
    let app = spawn_app().await;
    let event = app.numbered_event(4).await;
    let booking = book(&app, &event, "fan", json!({ "seats": ["1", "2"] })).await;
    let tickets = tickets(&app, &event, "fan", &booking).await;
    assert_eq!(tickets.len(), 2);

    let jwks = app.send(Method::GET, "/.well-known/jwks.json", None, None).await.body;
    let key = &jwks["keys"][0];
    assert_eq!(
        (&key["kty"], &key["crv"], &key["use"], &key["boxoffice_purpose"]),
        (&json!("OKP"), &json!("Ed25519"), &json!("sig"), &json!("ticket"))
    );
    for (ticket, label) in tickets.iter().zip(["1", "2"]) {
        assert_eq!(
            (&ticket["status"], &ticket["label"], &ticket["issue"]),
            (&json!("valid"), &json!(label), &json!(1))
        );
        let fields = verify_with_jwks(&jwks, &secret(ticket)).unwrap();
        assert_eq!(fields.ticket_id.to_string(), ticket["id"].as_str().unwrap());
        assert_eq!((fields.event_id, fields.issue, fields.place_text.as_str()), (event.id, 1, label));
        assert_eq!(fields.kid, key["kid"].as_str().unwrap());
    }
    // A changed secret does not verify; nor does one under another key.
    let mut bytes = URL_SAFE_NO_PAD.decode(secret(&tickets[0])).unwrap();
    let last = bytes.len() - 70;
    bytes[last] ^= 1;
    assert!(verify_with_jwks(&jwks, &URL_SAFE_NO_PAD.encode(&bytes)).is_err());

    // General admission: a ticket per place, named by the section.
    let floor = app.ga_event(10).await;
    let ga = book(&app, &floor, "fan", json!({ "section_id": floor.sections[0], "quantity": 3 })).await;
    let ga_tickets = crate::tickets::tickets(&app, &floor, "fan", &ga).await;
    assert_eq!(ga_tickets.len(), 3);
    let fields = verify_with_jwks(&jwks, &secret(&ga_tickets[0])).unwrap();
    assert_eq!(
        (fields.place_kind, fields.place_text.as_str()),
        (sales::domain::ticket_secret::PlaceKind::GeneralAdmission, "Floor")
    );
    app.assert_inventory_consistent(&event).await;
    app.assert_inventory_consistent(&floor).await;
}

#[tokio::test]
async fn a_confirmed_hold_gets_its_tickets_in_the_confirming_transaction() {
    let app = spawn_app().await;
    let event = app.numbered_event(3).await;
    let hold = app.hold(&event, "fan", json!({ "seats": ["1", "3"] })).await;
    let token = app.token("fan", &event);
    let path = event.path(&format!("/holds/{}/confirm", hold.body["id"].as_str().unwrap()));
    let confirmed = app.send(Method::POST, &path, Some(&token), None).await;
    assert_eq!(confirmed.status, StatusCode::CREATED, "{}", confirmed.body);
    assert!(confirmed.body["link"].is_string(), "the confirmation carries the booking's link: {}", confirmed.body);
    assert_eq!(tickets(&app, &event, "fan", &confirmed.body).await.len(), 2);
    app.assert_inventory_consistent(&event).await;
}

#[tokio::test]
async fn the_booking_link_shows_the_tickets_without_an_access_token_and_nothing_else() {
    let app = spawn_app().await;
    let event = app.numbered_event(4).await;
    let booking = book(&app, &event, "fan", json!({ "seats": ["1"] })).await;
    let other = book(&app, &event, "other", json!({ "seats": ["2"] })).await;
    let link = booking["link"].as_str().expect("the booking's answer carries its link");
    let shown = app
        .send(
            Method::GET,
            &event.path(&format!("/bookings/{}", booking["id"].as_str().unwrap())),
            Some(&app.token("fan", &event)),
            None,
        )
        .await;
    assert_eq!(shown.body["link"], booking["link"], "the booking shows the same link");

    let by_link = app.send(Method::GET, &format!("{}?link={link}", tickets_path(&event, &booking)), None, None).await;
    assert_eq!(by_link.status, StatusCode::OK, "{}", by_link.body);
    assert_eq!(by_link.body["tickets"].as_array().unwrap().len(), 1);
    // Not another booking's tickets, not with a changed link, not on another event.
    let theirs = app.send(Method::GET, &format!("{}?link={link}", tickets_path(&event, &other)), None, None).await;
    assert_eq!((theirs.status, theirs.code()), (StatusCode::UNAUTHORIZED, "invalid_link"));
    let mut changed = link.to_owned();
    changed.replace_range(10..11, if &link[10..11] == "A" { "B" } else { "A" });
    let forged = app.send(Method::GET, &format!("{}?link={changed}", tickets_path(&event, &booking)), None, None).await;
    assert_eq!((forged.status, forged.code()), (StatusCode::UNAUTHORIZED, "invalid_link"));
    // A link of a generation the booking has moved past is revoked.
    sqlx::query("UPDATE bookings SET link_generation = 2 WHERE id = $1")
        .bind(booking["id"].as_str().unwrap().parse::<Uuid>().unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    let revoked = app.send(Method::GET, &format!("{}?link={link}", tickets_path(&event, &booking)), None, None).await;
    assert_eq!((revoked.status, revoked.code()), (StatusCode::NOT_FOUND, "booking_not_found"));
    // The fan's token reaches only the fan's own booking.
    let token = app.token("fan", &event);
    let not_mine = app.send(Method::GET, &tickets_path(&event, &other), Some(&token), None).await;
    assert_eq!(not_mine.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_qr_code_is_an_svg_of_the_secret() {
    let app = spawn_app().await;
    let event = app.numbered_event(1).await;
    let booking = book(&app, &event, "fan", json!({ "seats": ["1"] })).await;
    let ticket = &tickets(&app, &event, "fan", &booking).await[0];
    let path = format!(
        "{}/{}/qr.svg?link={}",
        tickets_path(&event, &booking),
        ticket["id"].as_str().unwrap(),
        booking["link"].as_str().unwrap()
    );
    let reply = app.http.get(app.url(&path)).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(reply.headers()["content-type"], "image/svg+xml");
    let svg = reply.text().await.unwrap();
    assert!(svg.contains("<svg") && svg.contains("<path"), "{}", &svg[..svg.len().min(200)]);
    // The same secret is encoded again as the same QR code: nothing is random.
    let again = app.http.get(app.url(&path)).send().await.unwrap().text().await.unwrap();
    assert_eq!(svg, again);
}

#[tokio::test]
async fn a_reissue_revokes_the_old_secret_in_the_same_transaction_before_the_new_one_exists() {
    let app = spawn_app().await;
    let event = app.numbered_event(2).await;
    let booking = book(&app, &event, "fan", json!({ "seats": ["1"] })).await;
    let old = tickets(&app, &event, "fan", &booking).await.remove(0);
    let path = format!("{}/{}/reissue", tickets_path(&event, &booking), old["id"].as_str().unwrap());
    let reissued = app.send(Method::POST, &path, Some(&app.token("fan", &event)), None).await;
    assert_eq!(reissued.status, StatusCode::OK, "{}", reissued.body);
    assert_eq!(reissued.body["issue"], 2);
    assert_ne!(reissued.body["secret"], old["secret"]);

    let key = scanner_key(&app, &event).await;
    let stale = scan(&app, &event, &key, &secret(&old), "A").await;
    assert_eq!(stale.body["result"], "revoked", "{}", stale.body);
    let fresh = scan(&app, &event, &key, &secret(&reissued.body), "A").await;
    assert_eq!(fresh.body["result"], "valid", "{}", fresh.body);
    // The old secret is in the feed offline scanners read.
    let feed = feed_with(&app, &event, &key, 0, 1).await;
    assert_eq!(feed.body["revocations"][0]["ticket_id"], old["id"]);
    assert_eq!(
        (&feed.body["revocations"][0]["issue"], &feed.body["revocations"][0]["reason"]),
        (&json!(1), &json!("reissued"))
    );

    // The database refuses a new secret without the old one's revocation.
    let ticket_id: Uuid = old["id"].as_str().unwrap().parse().unwrap();
    let bypass =
        sqlx::query("UPDATE tickets SET issue = issue + 1 WHERE id = $1").bind(ticket_id).execute(&app.pool).await;
    let error = bypass.expect_err("an issue moved on without a revocation is refused");
    assert_eq!(error.as_database_error().unwrap().constraint(), Some("tickets_revoked_with_record"), "{error}");
}

#[tokio::test]
async fn cancelling_a_booking_revokes_its_tickets_and_the_seat_sells_with_a_new_one() {
    let app = spawn_app().await;
    let event = app.numbered_event(2).await;
    let booking = book(&app, &event, "fan", json!({ "seats": ["1", "2"] })).await;
    let before = tickets(&app, &event, "fan", &booking).await;
    let key = scanner_key(&app, &event).await;
    let token = app.token("fan", &event);
    let cancel = event.path(&format!("/bookings/{}/cancel", booking["id"].as_str().unwrap()));
    assert_eq!(app.send(Method::POST, &cancel, Some(&token), None).await.status, StatusCode::OK);

    let after = tickets(&app, &event, "fan", &booking).await;
    assert!(after.iter().all(|t| t["status"] == "revoked" && t["secret"].is_null()), "{after:?}");
    for ticket in &before {
        assert_eq!(scan(&app, &event, &key, &secret(ticket), "A").await.body["result"], "revoked");
    }
    let feed = feed_with(&app, &event, &key, 0, 2).await;
    assert_eq!(feed.body["revocations"].as_array().unwrap().len(), 2, "{}", feed.body);
    // The seat sells again, with a ticket of its own; the old one stays revoked.
    let again = book(&app, &event, "other", json!({ "seats": ["1"] })).await;
    let new = tickets(&app, &event, "other", &again).await;
    assert_eq!(scan(&app, &event, &key, &secret(&new[0]), "A").await.body["result"], "valid");
    app.assert_inventory_consistent(&event).await;
    // Without the revocation the seat could not have been sold again: one live ticket per seat.
    let (seat_id,): (i64,) =
        sqlx::query_as("SELECT seat_id FROM tickets WHERE revoked_at IS NULL").fetch_one(&app.pool).await.unwrap();
    let second = sqlx::query(
        "INSERT INTO tickets (id, event_id, booking_id, seat_id) VALUES (gen_random_uuid(), $1, gen_random_uuid(), $2)",
    )
    .bind(event.id)
    .bind(seat_id)
    .execute(&app.pool)
    .await;
    match second {
        Err(sqlx::Error::Database(e)) => assert_eq!(e.constraint(), Some("tickets_one_live_per_seat"), "{e}"),
        other => panic!("a second live ticket for seat {seat_id}: {other:?}"),
    }
}

#[tokio::test]
async fn the_revocation_feed_moves_on_from_where_a_scanner_stopped_and_answers_304_when_unchanged() {
    let app = spawn_app().await;
    let event = app.numbered_event(3).await;
    let key = scanner_key(&app, &event).await;
    let path = event.path("/tickets/revocations");
    let empty = app.send(Method::GET, &path, Some(&key), None).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert_eq!(
        (&empty.body["since"], &empty.body["next"], &empty.body["revocations"]),
        (&json!(0), &json!(0), &json!([]))
    );

    let first = book(&app, &event, "fan", json!({ "seats": ["1"] })).await;
    let second = book(&app, &event, "fan", json!({ "seats": ["2"] })).await;
    let token = app.token("fan", &event);
    for booking in [&first, &second] {
        let cancel = event.path(&format!("/bookings/{}/cancel", booking["id"].as_str().unwrap()));
        app.send(Method::POST, &cancel, Some(&token), None).await;
    }
    let page = feed_with(&app, &event, &key, 0, 2).await;
    assert_eq!(page.body["revocations"].as_array().unwrap().len(), 2);
    let next = page.body["next"].as_u64().unwrap();
    assert!(next > 0);
    let etag = page.headers["etag"].to_str().unwrap().to_owned();
    let unchanged = app.send_with(Method::GET, &path, Some(&key), None, &[("if-none-match", &etag)]).await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    let rest = app.send(Method::GET, &format!("{path}?since={next}"), Some(&key), None).await;
    assert_eq!(rest.body["revocations"], json!([]), "nothing after the position handed out");

    // Signed with the ticket key, under the feed's own purpose.
    let signature = page.headers["boxoffice-signature"].to_str().unwrap();
    let (kid, sig) = signature.strip_prefix("kid=").unwrap().split_once(",ed25519=").unwrap();
    let jwks = app.send(Method::GET, "/.well-known/jwks.json", None, None).await.body;
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).unwrap();
    let x: [u8; 32] = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap().try_into().unwrap();
    let sig: [u8; 64] = URL_SAFE_NO_PAD.decode(sig).unwrap().try_into().unwrap();
    let body = app.http.get(app.url(&path)).bearer_auth(&key).send().await.unwrap().bytes().await.unwrap();
    let mut message = b"boxoffice.ticket-revocations\0".to_vec();
    message.extend_from_slice(&body);
    ed25519_dalek::VerifyingKey::from_bytes(&x)
        .unwrap()
        .verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&sig))
        .unwrap();

    // Scanners only: no key, another event's key.
    assert_eq!(app.send(Method::GET, &path, None, None).await.code(), "scanner_key_required");
    let elsewhere = app.numbered_event(1).await;
    let other_key = scanner_key(&app, &elsewhere).await;
    assert_eq!(app.send(Method::GET, &path, Some(&other_key), None).await.code(), "scanner_key_for_other_event");
    assert_eq!(count(&app.pool, "SELECT count(*) FROM scanner_keys WHERE event_id = $1", event.id).await, 1);
}

fn id(value: &Value) -> &str {
    value["id"].as_str().unwrap()
}

/// `path` with the booking link as its query.
fn with_link(path: &str, link: &str) -> String {
    format!("{path}?link={link}")
}

#[tokio::test]
async fn rotating_the_link_revokes_every_earlier_link_at_once_and_only_the_new_one_works() {
    let app = spawn_app().await;
    let event = app.numbered_event(3).await;
    let booking = book(&app, &event, "fan", json!({ "seats": ["1", "2"] })).await;
    let ticket = tickets(&app, &event, "fan", &booking).await.remove(0);
    let old = booking["link"].as_str().unwrap().to_owned();
    let booking_path = event.path(&format!("/bookings/{}", id(&booking)));
    let rotate = format!("{booking_path}/rotate-link");

    let rotated = app.send(Method::POST, &with_link(&rotate, &old), None, None).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new = rotated.body["link"].as_str().expect("the answer carries the new link").to_owned();
    assert_ne!(new, old);
    assert_eq!((&rotated.body["id"], &rotated.body["status"]), (&booking["id"], &json!("confirmed")));

    // The old link opens nothing any more, rotating it again included.
    let ticket_path = format!("{}/{}", tickets_path(&event, &booking), id(&ticket));
    let refused = [
        (Method::GET, tickets_path(&event, &booking), "booking_not_found"),
        (Method::GET, format!("{ticket_path}/qr.svg"), "booking_not_found"),
        (Method::GET, format!("{}/print", tickets_path(&event, &booking)), "booking_not_found"),
        (Method::POST, format!("{ticket_path}/reissue"), "ticket_not_found"),
        (Method::GET, booking_path.clone(), "booking_not_found"),
        (Method::POST, format!("{booking_path}/cancel"), "booking_not_found"),
        (Method::POST, rotate.clone(), "booking_not_found"),
    ];
    for (method, path, code) in refused {
        let reply = app.send(method.clone(), &with_link(&path, &old), None, None).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, code), "{method} {path}: {}", reply.body);
    }
    // Nothing was changed through it: the booking is confirmed, its secrets as they were.
    let now = tickets(&app, &event, "fan", &booking).await;
    assert!(now.iter().all(|t| t["status"] == "valid" && t["issue"] == 1), "{now:?}");
    assert_eq!(now[0]["secret"], ticket["secret"], "rotating a link leaves the tickets' secrets alone");

    // The new link works; the booking's answers carry it.
    let by_new = app.send(Method::GET, &with_link(&tickets_path(&event, &booking), &new), None, None).await;
    assert_eq!(by_new.status, StatusCode::OK, "{}", by_new.body);
    let shown = app.send(Method::GET, &with_link(&booking_path, &new), None, None).await;
    assert_eq!(shown.body["link"], json!(new), "{}", shown.body);
    let mine = app.send(Method::GET, &event.path("/bookings"), Some(&app.token("fan", &event)), None).await;
    assert_eq!(mine.body["bookings"][0]["link"], json!(new));

    // The fan rotates with the access token too; then the second link is old as well.
    let by_fan = app.send(Method::POST, &rotate, Some(&app.token("fan", &event)), None).await;
    assert_eq!(by_fan.status, StatusCode::OK, "{}", by_fan.body);
    let stale = app.send(Method::GET, &with_link(&tickets_path(&event, &booking), &new), None, None).await;
    assert_eq!((stale.status, stale.code()), (StatusCode::NOT_FOUND, "booking_not_found"));
    let newest = by_fan.body["link"].as_str().unwrap();
    let by_newest = app.send(Method::POST, &with_link(&format!("{booking_path}/cancel"), newest), None, None).await;
    assert_eq!(by_newest.body["status"], "cancelled", "{}", by_newest.body);
    // Not another fan's booking.
    let other = app.send(Method::POST, &rotate, Some(&app.token("other", &event)), None).await;
    assert_eq!((other.status, other.code()), (StatusCode::NOT_FOUND, "booking_not_found"));
}

#[tokio::test]
async fn rotations_through_the_same_link_at_once_make_exactly_one_new_link() {
    let app = spawn_app().await;
    let event = app.numbered_event(1).await;
    let booking = book(&app, &event, "fan", json!({ "seats": ["1"] })).await;
    let rotate =
        with_link(&event.path(&format!("/bookings/{}/rotate-link", id(&booking))), booking["link"].as_str().unwrap());
    let replies = futures::future::join_all((0..10).map(|_| app.send(Method::POST, &rotate, None, None))).await;
    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status).collect();
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(won, 1, "{statuses:?}");
    assert!(replies.iter().all(|r| r.status == StatusCode::OK || r.code() == "booking_not_found"), "{statuses:?}");
    let generation: i32 = sqlx::query_scalar("SELECT link_generation FROM bookings WHERE id = $1")
        .bind(id(&booking).parse::<Uuid>().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(generation, 2);
}

#[tokio::test]
async fn the_printable_page_shows_each_live_tickets_qr_code_and_escapes_the_organizers_text() {
    let app = spawn_app().await;
    let details = app
        .create_event(json!({
            "name": "<script>alert('x')</script> & Friends", "starts_at": "2031-06-01T19:30:00Z",
            "refund_policy": [{ "before_hours": 0, "refund_percent": 100 }],
            "sections": [{ "name": "Hall <b>", "kind": "reserved", "price": { "amount_minor": 0, "currency": "EUR" }, "seats": 4 }]
        }))
        .await;
    let event = crate::helpers::Event::from_details(&details);
    let booking = book(&app, &event, "fan", json!({ "seats": ["1", "2", "3"] })).await;
    let link = booking["link"].as_str().unwrap();
    let print = format!("{}/print", tickets_path(&event, &booking));

    let reply = app.http.get(app.url(&with_link(&print, link))).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(reply.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(reply.headers()["cache-control"], "private, no-store");
    let page = reply.text().await.unwrap();
    assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"), "{}", &page[..page.len().min(200)]);
    assert!(!page.to_lowercase().contains("<script"), "the event name is escaped: {page}");
    assert!(page.contains("<title>Tickets: &lt;script&gt;alert("), "{page}");
    assert!(!page.contains("Hall <b>") && page.contains("Hall &lt;b&gt;"), "{page}");
    assert!(page.contains("2031-06-01 19:30 UTC") && page.contains("break-after: page"));
    // Every ticket's QR code, as its own route draws it, described for screen readers.
    let tickets = tickets(&app, &event, "fan", &booking).await;
    assert_eq!(page.matches("<svg").count(), 3);
    assert_eq!(page.matches("role=\"img\" aria-label=\"QR code of the ticket for ").count(), 3);
    for ticket in &tickets {
        let qr = app
            .http
            .get(app.url(&with_link(&format!("{}/{}/qr.svg", tickets_path(&event, &booking), id(ticket)), link)));
        let svg = qr.send().await.unwrap().text().await.unwrap();
        let element = &svg[svg.find("<svg").unwrap()..];
        assert!(page.contains(element), "ticket {} has its QR code on the page", id(ticket));
        assert!(page.contains(&format!("Ticket {}", id(ticket))));
    }
    // With the fan's token too.
    let by_token = app.send(Method::GET, &print, Some(&app.token("fan", &event)), None).await;
    assert_eq!(by_token.status, StatusCode::OK);

    // Cancelled: every ticket is marked revoked, with no code.
    let cancel = event.path(&format!("/bookings/{}/cancel", id(&booking)));
    assert_eq!(app.send(Method::POST, &with_link(&cancel, link), None, None).await.status, StatusCode::OK);
    let page = app.http.get(app.url(&with_link(&print, link))).send().await.unwrap().text().await.unwrap();
    assert_eq!((page.matches("<svg").count(), page.matches("Revoked: ").count()), (0, 3), "{page}");

    // A revoked link opens no page.
    let rotate = event.path(&format!("/bookings/{}/rotate-link", id(&booking)));
    assert_eq!(app.send(Method::POST, &with_link(&rotate, link), None, None).await.status, StatusCode::OK);
    let revoked = app.send(Method::GET, &with_link(&print, link), None, None).await;
    assert_eq!((revoked.status, revoked.code()), (StatusCode::NOT_FOUND, "booking_not_found"));
}

/// Every page of the feed from 0 with `limit`, read until `more` is false.
async fn feed_pages(app: &TestApp, event: &Event, key: &str, limit: u32) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut since = 0;
    loop {
        let path = event.path(&format!("/tickets/revocations?since={since}&limit={limit}"));
        let page = app.send(Method::GET, &path, Some(key), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let next = page.body["next"].as_u64().unwrap();
        let more = page.body["more"].as_bool().expect("every page says whether more follow");
        assert!(if more { next > since } else { next >= since }, "{}", page.body);
        since = next;
        pages.push(page.body);
        if !more {
            return pages;
        }
        assert!(pages.len() < 100, "the feed never ended");
    }
}

/// The revocations' transaction ids, by (ticket, issue).
async fn revocation_xids(app: &TestApp, event: &Event) -> std::collections::HashMap<(String, i64), String> {
    let rows: Vec<(Uuid, i32, String)> =
        sqlx::query_as("SELECT ticket_id, issue, xid::text FROM ticket_revocations WHERE event_id = $1")
            .bind(event.id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    rows.into_iter().map(|(ticket, issue, xid)| ((ticket.to_string(), i64::from(issue)), xid)).collect()
}

fn revocation_key(row: &Value) -> (String, i64) {
    (row["ticket_id"].as_str().unwrap().to_owned(), row["issue"].as_i64().unwrap())
}

#[tokio::test]
async fn one_cancellation_revoking_more_tickets_than_a_page_holds_comes_whole_in_one_page() {
    let app = spawn_app().await;
    let event = app.numbered_event(8).await;
    let key = scanner_key(&app, &event).await;
    let token = app.token("fan", &event);
    let big = book(&app, &event, "fan", json!({ "seats": ["1", "2", "3", "4", "5"] })).await;
    let small = book(&app, &event, "fan", json!({ "seats": ["6", "7"] })).await;
    for booking in [&big, &small] {
        let cancel = event.path(&format!("/bookings/{}/cancel", id(booking)));
        assert_eq!(app.send(Method::POST, &cancel, Some(&token), None).await.status, StatusCode::OK);
    }
    let unpaged = feed_with(&app, &event, &key, 0, 7).await;
    assert_eq!(unpaged.body["more"], false);

    let pages = feed_pages(&app, &event, &key, 2).await;
    let sizes: Vec<usize> = pages.iter().map(|p| p["revocations"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [5, 2], "the five-ticket cancellation whole, then the other");
    let mores: Vec<&Value> = pages.iter().map(|p| &p["more"]).collect();
    assert_eq!(mores, [&json!(true), &json!(false)]);
    assert_eq!(pages[1]["next"], unpaged.body["next"]);
}

#[tokio::test]
async fn pages_of_whole_transactions_add_up_to_the_unpaged_feed_exactly() {
    let app = spawn_app().await;
    let event = app.numbered_event(16).await;
    let key = scanner_key(&app, &event).await;
    let token = app.token("fan", &event);
    // Cancellations of 1, 2 and 3 tickets and reissues of one: transactions of every size.
    let mut revoked = 0;
    for seats in [vec!["1"], vec!["2", "3"], vec!["4", "5", "6"], vec!["7"], vec!["8", "9"], vec!["10", "11", "12"]] {
        let booking = book(&app, &event, "fan", json!({ "seats": seats })).await;
        let cancel = event.path(&format!("/bookings/{}/cancel", id(&booking)));
        assert_eq!(app.send(Method::POST, &cancel, Some(&token), None).await.status, StatusCode::OK);
        revoked += seats.len();
    }
    let kept = book(&app, &event, "fan", json!({ "seats": ["13", "14"] })).await;
    for ticket in tickets(&app, &event, "fan", &kept).await {
        let reissue = format!("{}/{}/reissue", tickets_path(&event, &kept), id(&ticket));
        assert_eq!(app.send(Method::POST, &reissue, Some(&token), None).await.status, StatusCode::OK);
        revoked += 1;
    }
    let unpaged = feed_with(&app, &event, &key, 0, revoked).await;
    let all = unpaged.body["revocations"].as_array().unwrap().clone();
    assert_eq!((all.len(), &unpaged.body["more"]), (revoked, &json!(false)));
    let xids = revocation_xids(&app, &event).await;

    for limit in [1, 2, 3, 4, 5] {
        let pages = feed_pages(&app, &event, &key, limit).await;
        let read: Vec<Value> = pages.iter().flat_map(|p| p["revocations"].as_array().unwrap().clone()).collect();
        assert_eq!(read, all, "limit {limit}: the pages in order are the unpaged feed");
        assert_eq!(pages.last().unwrap()["next"], unpaged.body["next"], "limit {limit}");
        // No transaction is split across pages: each page holds all of its rows.
        let mut seen = std::collections::HashSet::new();
        for page in &pages {
            let here: std::collections::HashSet<&String> =
                page["revocations"].as_array().unwrap().iter().map(|r| &xids[&revocation_key(r)]).collect();
            for xid in here {
                assert!(seen.insert(xid.clone()), "limit {limit}: transaction {xid} is on two pages");
            }
        }
        assert!(pages.len() > 1 && pages.len() <= revoked, "limit {limit}: {} pages", pages.len());
    }

    // A limit out of range, or not a number, is refused.
    for limit in ["0", "1001", "-1", "many"] {
        let path = event.path(&format!("/tickets/revocations?limit={limit}"));
        let reply = app.send(Method::GET, &path, Some(&key), None).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "bad_request"), "limit={limit}");
    }
}

/// The JWKS's ticket key ids, once they are `want` (read every 50 ms, for at most 5 s).
async fn published_ticket_kids(app: &TestApp, want: &[&str]) -> Vec<String> {
    let mut kids = Vec::new();
    for _ in 0..100 {
        let jwks = app.send(Method::GET, "/.well-known/jwks.json", None, None).await.body;
        kids = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["boxoffice_purpose"] == "ticket")
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        if kids == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    kids
}

#[tokio::test]
async fn ticket_keys_are_read_again_while_serving_without_a_restart() {
    let dir = std::env::temp_dir().join(format!("bo-ticket-keys-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let app = spawn_app_reloading_ticket_keys(&dir, "t1", std::time::Duration::from_millis(50)).await;
    let event = app.numbered_event(4).await;
    let booking = book(&app, &event, "fan", json!({ "seats": ["1"] })).await;
    let path = tickets_path(&event, &booking);
    let token = app.token("fan", &event);

    // Started before its key was there (a Secret mounted late): books, shows no secret.
    let before = app.send(Method::GET, &path, Some(&token), None).await;
    assert_eq!((before.status, before.code()), (StatusCode::SERVICE_UNAVAILABLE, "tickets_unavailable"));
    assert_eq!(published_ticket_kids(&app, &[]).await, Vec::<String>::new());

    // The key appears: published, and signing the secrets shown, with no restart.
    let t1 = access_token::KeyPair::generate("t1").unwrap();
    t1.write_to_dir(&dir).unwrap();
    assert_eq!(published_ticket_kids(&app, &["t1"]).await, ["t1"]);
    let shown = app.send(Method::GET, &path, Some(&token), None).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let jwks = app.send(Method::GET, "/.well-known/jwks.json", None, None).await.body;
    let fields = verify_with_jwks(&jwks, &secret(&shown.body["tickets"][0])).unwrap();
    assert_eq!(fields.kid, "t1");

    // A next key's public half is published before anything is signed with it; taken
    // away, it is no longer published (nor trusted for scans).
    let t2 = access_token::KeyPair::generate("t2").unwrap();
    std::fs::write(dir.join("t2.public.pem"), t2.public_pem()).unwrap();
    assert_eq!(published_ticket_kids(&app, &["t1", "t2"]).await, ["t1", "t2"]);
    std::fs::remove_file(dir.join("t2.public.pem")).unwrap();
    assert_eq!(published_ticket_kids(&app, &["t1"]).await, ["t1"]);

    // A directory that cannot be read keeps the keys in use.
    std::fs::remove_dir_all(&dir).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.send(Method::GET, &path, Some(&token), None).await.status, StatusCode::OK);
    assert_eq!(published_ticket_kids(&app, &["t1"]).await, ["t1"]);
}
