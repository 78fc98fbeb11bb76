//! The waitlist: fans wait for sold-out sections, and freed places become offers for
//! them in line order (holds of their own) before anyone else may buy them.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app, Event, TestApp, ADMIN_KEY};

/// An event with one section of `places` (numbered seats, or general admission), free,
/// with its waitlist on; offers last 10 minutes.
async fn waitlisted_event(app: &TestApp, kind: &str, places: u32, extra: Value) -> Event {
    let section = match kind {
        "reserved" => {
            json!({ "name": "Hall", "kind": "reserved", "price": { "amount_minor": 0, "currency": "EUR" }, "seats": places })
        }
        _ => {
            json!({ "name": "Floor", "kind": "general_admission", "price": { "amount_minor": 0, "currency": "EUR" }, "capacity": places })
        }
    };
    let mut body = json!({
        "name": "Sold-out show", "max_per_order": 10, "waitlist_enabled": true, "waitlist_offer_ttl_secs": 600,
        "refund_policy": [{ "before_hours": 0, "refund_percent": 100 }], "sections": [section],
    });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    Event::from_details(&app.create_event(body).await)
}

async fn join(app: &TestApp, event: &Event, fan: &str, quantity: u32) -> test_support::Reply {
    let token = app.token(fan, event);
    let body = json!({ "quantity": quantity, "section_ids": [event.sections[0]] });
    app.send(Method::POST, &event.path("/waitlist"), Some(&token), Some(body)).await
}

async fn entry(app: &TestApp, event: &Event, fan: &str) -> Value {
    let token = app.token(fan, event);
    let reply = app.send(Method::GET, &event.path("/waitlist/me"), Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

async fn cancel(app: &TestApp, event: &Event, fan: &str, booking: &Value) -> test_support::Reply {
    let token = app.token(fan, event);
    let path = event.path(&format!("/bookings/{}/cancel", booking["id"].as_str().unwrap()));
    app.send(Method::POST, &path, Some(&token), None).await
}

/// The seat labels a hold has, read from the database.
async fn held_labels(app: &TestApp, hold: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT s.label FROM hold_seats h JOIN seats s ON s.id = h.seat_id WHERE h.hold_id = $1 ORDER BY s.sort_key",
    )
    .bind(hold.parse::<Uuid>().unwrap())
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

async fn sweep(app: &TestApp) -> u64 {
    let mut tx = app.pool.begin().await.unwrap();
    let released = sales::waitlist::release_expired_holds(&mut tx, 100).await.unwrap();
    tx.commit().await.unwrap();
    released
}

#[tokio::test]
async fn freed_seats_go_to_the_waitlist_in_line_order_before_anyone_else() {
    let app = spawn_app().await;
    let event = waitlisted_event(&app, "reserved", 2, json!({})).await;
    let early = join(&app, &event, "w1", 1).await;
    assert_eq!((early.status, early.code()), (StatusCode::CONFLICT, "not_sold_out"), "{}", early.body);
    let booking = app.book(&event, "buyer", json!({ "seats": ["1", "2"] })).await;
    assert_eq!(booking.status, StatusCode::CREATED, "{}", booking.body);
    for (fan, quantity) in [("w1", 1), ("w2", 1), ("w3", 2)] {
        let joined = join(&app, &event, fan, quantity).await;
        assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.body);
        assert_eq!(joined.body["status"], "waiting");
    }
    assert_eq!(entry(&app, &event, "w3").await["position"], 3);

    let cancelled = cancel(&app, &event, "buyer", &booking.body).await;

    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    let (w1, w2, w3) =
        (entry(&app, &event, "w1").await, entry(&app, &event, "w2").await, entry(&app, &event, "w3").await);
    assert_eq!(
        (&w1["status"], &w2["status"], &w3["status"]),
        (&json!("offered"), &json!("offered"), &json!("waiting"))
    );
    assert_eq!((&w1["position"], &w3["position"]), (&Value::Null, &json!(1)));
    let (offer1, offer2) = (w1["offer"]["hold_id"].as_str().unwrap(), w2["offer"]["hold_id"].as_str().unwrap());
    assert_eq!(
        (held_labels(&app, offer1).await, held_labels(&app, offer2).await),
        (vec!["1".to_owned()], vec!["2".to_owned()])
    );
    assert_eq!(app.book(&event, "outsider", json!({ "seats": ["1"] })).await.code(), "seat_unavailable");
    let messages: Vec<Value> = sqlx::query_scalar(
        "SELECT payload->'data' FROM outbox_messages WHERE topic = 'waitlist.offer_made' AND event_id = $1 ORDER BY id",
    )
    .bind(event.id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(messages.iter().map(|m| m["hold_id"].as_str().unwrap()).collect::<Vec<_>>(), [offer1, offer2]);
    assert_eq!(messages[0]["fan_id"], "w1");

    // w1 takes the offer like any hold; w2 declines by releasing it: w3 wants two, so the
    // seat is kept for the waitlist, on sale to nobody.
    let confirm = app
        .send(Method::POST, &event.path(&format!("/holds/{offer1}/confirm")), Some(&app.token("w1", &event)), None)
        .await;
    assert_eq!(confirm.status, StatusCode::CREATED, "{}", confirm.body);
    let declined =
        app.send(Method::DELETE, &event.path(&format!("/holds/{offer2}")), Some(&app.token("w2", &event)), None).await;
    assert_eq!(declined.status, StatusCode::OK, "{}", declined.body);
    assert_eq!(entry(&app, &event, "w1").await["status"], "accepted");
    assert_eq!(entry(&app, &event, "w2").await["status"], "declined");
    assert_eq!(entry(&app, &event, "w3").await["status"], "waiting");
    let section = &app.details(&event).await["sections"][0];
    assert_eq!((&section["remaining"], &section["kept_for_waitlist"]), (&json!(0), &json!(1)));
    assert_eq!(app.book(&event, "outsider", json!({ "seats": ["2"] })).await.code(), "seat_unavailable");
    app.assert_inventory_consistent(&event).await;

    // Once nobody waits, the section is on sale again.
    let left = app.send(Method::DELETE, &event.path("/waitlist/me"), Some(&app.token("w3", &event)), None).await;
    assert_eq!((left.status, &left.body["status"]), (StatusCode::OK, &json!("left")), "{}", left.body);
    let bought = app.book(&event, "outsider", json!({ "seats": ["2"] })).await;
    assert_eq!(bought.status, StatusCode::CREATED, "{}", bought.body);
    assert_eq!(app.assert_inventory_consistent(&event).await, 2);
}

#[tokio::test]
async fn a_lapsed_hold_in_a_waitlisted_section_is_offered_by_the_sweep_never_sold() {
    let app = spawn_app().await;
    let event = waitlisted_event(&app, "general_admission", 3, json!({})).await;
    let hold = app.hold(&event, "holder", json!({ "section_id": event.sections[0], "quantity": 3 })).await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);
    assert_eq!(join(&app, &event, "w1", 2).await.status, StatusCode::CREATED);
    app.lapse_holds(&event).await;

    // Lapsed, but kept for the waitlist: not for sale until the sweep offered them.
    let refused = app.book(&event, "outsider", json!({ "section_id": event.sections[0], "quantity": 1 })).await;
    assert_eq!(refused.code(), "sold_out", "{}", refused.body);
    assert_eq!(sweep(&app).await, 1);

    let w1 = entry(&app, &event, "w1").await;
    assert_eq!(w1["status"], "offered");
    let offer = w1["offer"]["hold_id"].as_str().unwrap().to_owned();
    let quantity: i32 = sqlx::query_scalar("SELECT quantity FROM holds WHERE id = $1")
        .bind(offer.parse::<Uuid>().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(quantity, 2);
    // Nobody else waits: the third place is on sale again.
    let bought = app.book(&event, "outsider", json!({ "section_id": event.sections[0], "quantity": 1 })).await;
    assert_eq!(bought.status, StatusCode::CREATED, "{}", bought.body);

    // An offer left to lapse ends as expired, and its places are free for everyone.
    app.lapse_holds(&event).await;
    assert_eq!(sweep(&app).await, 1);
    assert_eq!(entry(&app, &event, "w1").await["status"], "expired");
    let section = &app.details(&event).await["sections"][0];
    assert_eq!((&section["remaining"], &section["kept_for_waitlist"]), (&json!(2), &json!(0)));
    app.assert_inventory_consistent(&event).await;
}

#[tokio::test]
async fn parallel_cancellations_offer_each_place_once_and_none_leaks_to_other_buyers() {
    let app = spawn_app().await;
    let event = waitlisted_event(&app, "general_admission", 12, json!({})).await;
    let mut bookings = Vec::new();
    for i in 0..12 {
        let booked =
            app.book(&event, &format!("buyer-{i}"), json!({ "section_id": event.sections[0], "quantity": 1 })).await;
        assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
        bookings.push(booked.body);
    }
    for i in 0..12 {
        assert_eq!(join(&app, &event, &format!("w{i}"), 1).await.status, StatusCode::CREATED);
    }

    let cancels = (0..12).map(|i| {
        let (app, event, booking) = (&app, &event, &bookings[i]);
        async move { cancel(app, event, &format!("buyer-{i}"), booking).await }
    });
    let outsiders = (0..12)
        .map(|i| app.book(&event, &format!("outsider-{i}"), json!({ "section_id": event.sections[0], "quantity": 1 })));
    let (cancelled, bought) = tokio::join!(join_all(cancels), join_all(outsiders));

    for reply in &cancelled {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let outsider_bookings = bought.iter().filter(|r| r.status == StatusCode::CREATED).count();
    assert_eq!(outsider_bookings, 0, "{:?}", bought.iter().map(|r| r.body.to_string()).collect::<Vec<_>>());
    let (offers, distinct_seats, entries_with_offer): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(DISTINCT h.id), count(DISTINCT hs.seat_id), count(DISTINCT h.waitlist_entry_id)
         FROM holds h JOIN hold_seats hs ON hs.hold_id = h.id
         WHERE h.event_id = $1 AND h.waitlist_entry_id IS NOT NULL AND h.status = 'active'",
    )
    .bind(event.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((offers, distinct_seats, entries_with_offer), (12, 12, 12));
    for i in 0..12 {
        assert_eq!(entry(&app, &event, &format!("w{i}")).await["status"], "offered");
    }
    app.assert_inventory_consistent(&event).await;
}

/// The deadlock a rehearsal met: the sweep making offers holds the line's first entry
/// and is about to uncount it from its section, while a fan joining has counted
/// themselves in that section and waits for the line. Every change of the line now waits
/// for the line's turn before it touches a section, so the join waits and both finish.
#[tokio::test]
async fn a_fan_joining_while_offers_are_being_made_waits_for_them_instead_of_deadlocking() {
    let app = spawn_app().await;
    let event = waitlisted_event(&app, "general_admission", 2, json!({})).await;
    let (first, second) = (
        app.book(&event, "buyer-1", json!({ "section_id": event.sections[0], "quantity": 1 })).await,
        app.book(&event, "buyer-2", json!({ "section_id": event.sections[0], "quantity": 1 })).await,
    );
    assert_eq!((first.status, second.status), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(join(&app, &event, "wants-two", 2).await.status, StatusCode::CREATED);
    // One place comes back; the first in line wants two, so it stays kept for the line.
    assert_eq!(cancel(&app, &event, "buyer-1", &first.body).await.status, StatusCode::OK);

    // Offers being made, as `offer_kept_places` makes them, held open at its first entry.
    let mut offering = app.pool.begin().await.unwrap();
    sales::store::waitlist::take_turn(&mut offering, event.id).await.unwrap();
    let line = sales::store::waitlist::lock_line(&mut offering, event.id, 0, 100).await.unwrap();
    assert_eq!(line.iter().map(|e| e.fan_id.as_str()).collect::<Vec<_>>(), ["wants-two"]);
    let offers_go_on = async {
        wait_until_a_lock_is_awaited(&app).await;
        let uncounted = sales::store::waitlist::mark_offered(&mut offering, line[0].id).await;
        offering.rollback().await.unwrap();
        uncounted
    };
    let (joined, uncounted) = tokio::join!(join(&app, &event, "wants-one", 1), offers_go_on);

    assert!(uncounted.is_ok(), "{uncounted:?}");
    assert_eq!((joined.status, &joined.body["status"]), (StatusCode::CREATED, &json!("offered")), "{}", joined.body);
    assert_eq!(entry(&app, &event, "wants-two").await["status"], "waiting");
    app.assert_inventory_consistent(&event).await;
}

/// A line busy for longer than `lock_timeout` (offers taking that long) sends the fan
/// back to try again, rather than telling them another fan is taking their seat.
#[tokio::test]
async fn a_join_that_waits_for_the_line_past_the_lock_timeout_is_told_to_try_again() {
    let app = spawn_app().await;
    let event = waitlisted_event(&app, "general_admission", 1, json!({})).await;
    let sold = app.book(&event, "buyer", json!({ "section_id": event.sections[0], "quantity": 1 })).await;
    assert_eq!(sold.status, StatusCode::CREATED);

    let mut offering = app.pool.begin().await.unwrap();
    sales::store::waitlist::take_turn(&mut offering, event.id).await.unwrap();
    let refused = join(&app, &event, "patient", 1).await;
    offering.rollback().await.unwrap();

    assert_eq!((refused.status, refused.code()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"), "{}", refused.body);
    let joined = join(&app, &event, "patient", 1).await;
    assert_eq!((joined.status, &joined.body["status"]), (StatusCode::CREATED, &json!("waiting")), "{}", joined.body);
    app.assert_inventory_consistent(&event).await;
}

/// Returns once some session of the test's database waits for a lock (within 10 s).
async fn wait_until_a_lock_is_awaited(app: &TestApp) {
    for _ in 0..200 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("nobody came to wait for a lock");
}

#[tokio::test]
async fn joining_is_refused_clearly_and_changes_nothing() {
    let app = spawn_app().await;
    let event = waitlisted_event(&app, "general_admission", 1, json!({})).await;
    let closed = app.ga_event(1).await;
    assert_eq!(
        app.book(&event, "buyer", json!({ "section_id": event.sections[0], "quantity": 1 })).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.book(&closed, "buyer", json!({ "section_id": closed.sections[0], "quantity": 1 })).await.status,
        StatusCode::CREATED
    );
    let token = app.token("fan", &event);
    let send = |event: &Event, body: Value| {
        let token = app.token("fan", event);
        app.send(Method::POST, &event.path("/waitlist"), Some(&token), Some(body))
    };
    let section = event.sections[0];
    let cases = [
        (json!({ "quantity": 0, "section_ids": [section] }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_quantity"),
        (json!({ "quantity": 11, "section_ids": [section] }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_quantity"),
        (json!({ "quantity": 1, "section_ids": [] }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_selection"),
        (
            json!({ "quantity": 1, "section_ids": [section, section] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_selection",
        ),
        (
            json!({ "quantity": 1, "section_ids": [Uuid::new_v4()] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_section",
        ),
        (
            json!({ "quantity": 1, "section_ids": [section], "email": "nope" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        ),
        (json!({ "quantity": 1, "section_ids": [section], "extra": 1 }), StatusCode::BAD_REQUEST, "bad_request"),
    ];
    for (body, status, code) in cases {
        let reply = send(&event, body.clone()).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{body}: {}", reply.body);
    }
    let not_enabled = send(&closed, json!({ "quantity": 1, "section_ids": [closed.sections[0]] })).await;
    assert_eq!((not_enabled.status, not_enabled.code()), (StatusCode::CONFLICT, "waitlist_closed"));
    let none = app.send(Method::GET, &event.path("/waitlist/me"), Some(&token), None).await;
    assert_eq!((none.status, none.code()), (StatusCode::NOT_FOUND, "waitlist_entry_not_found"));
    let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM waitlist_entries").fetch_one(&app.pool).await.unwrap();
    assert_eq!(entries, 0);

    assert_eq!(send(&event, json!({ "quantity": 1, "section_ids": [section] })).await.status, StatusCode::CREATED);
    let again = send(&event, json!({ "quantity": 1, "section_ids": [section] })).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "already_waitlisted"));

    // The organizer turning the waitlist off ends the line: the section is on sale again.
    let off = app
        .send(
            Method::PATCH,
            &format!("/v1/events/{}", event.id),
            Some(ADMIN_KEY),
            Some(json!({ "waitlist_enabled": false })),
        )
        .await;
    assert_eq!((off.status, &off.body["waitlist_enabled"]), (StatusCode::OK, &json!(false)), "{}", off.body);
    assert_eq!(entry(&app, &event, "fan").await["status"], "left");
    let waiting: i32 = sqlx::query_scalar("SELECT waitlist_waiting FROM sections WHERE id = $1")
        .bind(section)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(waiting, 0);
}

#[tokio::test]
async fn an_offer_honours_the_fans_limit_and_skips_to_the_next_entry() {
    let app = spawn_app().await;
    let event = waitlisted_event(&app, "general_admission", 3, json!({ "max_per_fan": 2 })).await;
    let fans_own = app.book(&event, "w1", json!({ "section_id": event.sections[0], "quantity": 2 })).await;
    assert_eq!(fans_own.status, StatusCode::CREATED, "{}", fans_own.body);
    let other = app.book(&event, "buyer", json!({ "section_id": event.sections[0], "quantity": 1 })).await;
    assert_eq!(join(&app, &event, "w1", 1).await.status, StatusCode::CREATED);
    assert_eq!(join(&app, &event, "w2", 1).await.status, StatusCode::CREATED);

    assert_eq!(cancel(&app, &event, "buyer", &other.body).await.status, StatusCode::OK);

    // w1 already has the two places the limit allows: the place goes to w2.
    assert_eq!(entry(&app, &event, "w1").await["status"], "waiting");
    assert_eq!(entry(&app, &event, "w2").await["status"], "offered");
    app.assert_inventory_consistent(&event).await;
}

#[tokio::test]
async fn a_waitlist_token_joins_the_waitlist_and_nothing_else() {
    let app = spawn_app().await;
    let event = waitlisted_event(&app, "reserved", 1, json!({})).await;
    assert_eq!(app.book(&event, "buyer", json!({ "seats": ["1"] })).await.status, StatusCode::CREATED);
    let token = app.keys.waitlist_token("late-fan", event.id);

    let hold = app.send(Method::POST, &event.path("/holds"), Some(&token), Some(json!({ "seats": ["1"] }))).await;
    let bookings = app.send(Method::GET, &event.path("/bookings"), Some(&token), None).await;
    let body = json!({ "quantity": 1, "section_ids": [event.sections[0]] });
    let joined = app.send(Method::POST, &event.path("/waitlist"), Some(&token), Some(body)).await;
    let shown = app.send(Method::GET, &event.path("/waitlist/me"), Some(&token), None).await;

    for refused in [&hold, &bookings] {
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::FORBIDDEN, "token_scope_insufficient"),
            "{}",
            refused.body
        );
    }
    assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.body);
    assert_eq!(
        (shown.status, &shown.body["status"], &shown.body["position"]),
        (StatusCode::OK, &json!("waiting"), &json!(1))
    );
    let holds: i64 = sqlx::query_scalar("SELECT count(*) FROM holds").fetch_one(&app.pool).await.unwrap();
    assert_eq!(holds, 0);
}

#[tokio::test]
async fn an_offers_link_takes_or_declines_it_without_an_access_token_and_reaches_no_other_hold() {
    let app = spawn_app().await;
    let event = waitlisted_event(&app, "reserved", 3, json!({})).await;
    let booking = app.book(&event, "buyer", json!({ "seats": ["1", "2"] })).await;
    assert_eq!(booking.status, StatusCode::CREATED, "{}", booking.body);
    let own_hold = app.hold(&event, "holder", json!({ "seats": ["3"] })).await;
    assert_eq!(own_hold.status, StatusCode::CREATED, "{}", own_hold.body);
    for fan in ["w1", "w2"] {
        assert_eq!(join(&app, &event, fan, 1).await.status, StatusCode::CREATED);
    }
    assert_eq!(cancel(&app, &event, "buyer", &booking.body).await.status, StatusCode::OK);
    let (w1, w2) = (entry(&app, &event, "w1").await, entry(&app, &event, "w2").await);
    let offer = |entry: &Value| {
        let offer = &entry["offer"];
        (offer["hold_id"].as_str().unwrap().to_owned(), offer["link"].as_str().expect("an offer link").to_owned())
    };
    let ((hold1, link1), (hold2, link2)) = (offer(&w1), offer(&w2));
    let with_link = |hold: &str, rest: &str, link: &str| event.path(&format!("/holds/{hold}{rest}?link={link}"));

    // The link shows its hold to someone with no access token at all.
    let shown = app.send(Method::GET, &with_link(&hold1, "", &link1), None, None).await;
    assert_eq!(
        (shown.status, &shown.body["id"], &shown.body["status"]),
        (StatusCode::OK, &json!(hold1), &json!("active"))
    );

    // It reaches no other hold: another offer, a hold the fan made themselves (even
    // with a well-made offer link for it), and no link of another kind or altered.
    let keys = crate::helpers::ticket_keys();
    let own_hold_id = own_hold.body["id"].as_str().unwrap();
    let forged_for_own_hold = keys.signer().unwrap().offer_link(event.id, own_hold_id.parse().unwrap(), None);
    let booking_link = booking.body["link"].as_str().expect("a booking link");
    let mut altered = link1.clone().into_bytes();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for (path, why) in [
        (with_link(&hold2, "", &link1), "another offer's hold"),
        (with_link(own_hold_id, "", &forged_for_own_hold), "a hold that is no offer"),
        (with_link(&hold1, "", booking_link), "a booking link"),
        (with_link(&hold1, "", &altered), "an altered link"),
        (with_link(&hold1, "/confirm", &link2), "confirming with another offer's link"),
    ] {
        let method = if path.ends_with("/confirm") || path.contains("/confirm?") { Method::POST } else { Method::GET };
        let refused = app.send(method, &path, None, None).await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::UNAUTHORIZED, "invalid_link"),
            "{why}: {}",
            refused.body
        );
    }

    // w1 takes the offer through the link (a free one is confirmed); w2 declines theirs.
    let taken = app.send(Method::POST, &with_link(&hold1, "/confirm", &link1), None, None).await;
    assert_eq!(taken.status, StatusCode::CREATED, "{}", taken.body);
    let declined = app.send(Method::DELETE, &with_link(&hold2, "", &link2), None, None).await;
    assert_eq!((declined.status, &declined.body["status"]), (StatusCode::OK, &json!("released")), "{}", declined.body);
    assert_eq!(entry(&app, &event, "w1").await["status"], "accepted");
    assert_eq!(entry(&app, &event, "w2").await["status"], "declined");
    let booked_by: String = sqlx::query_scalar("SELECT fan_id FROM bookings WHERE id = $1")
        .bind(taken.body["id"].as_str().unwrap().parse::<Uuid>().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(booked_by, "w1", "the booking is the waiting fan's");
    // A taken offer's link still shows the hold, as it now is.
    let after = app.send(Method::GET, &with_link(&hold1, "", &link1), None, None).await;
    assert_eq!((after.status, &after.body["status"]), (StatusCode::OK, &json!("confirmed")));
    app.assert_inventory_consistent(&event).await;
}
