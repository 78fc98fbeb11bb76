//! The live seat map (issue 17): the layout, the states, and the stream of changes, read
//! as a browser's `EventSource` reads them, checked against the database.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use test_support::sse::EventStream;
use uuid::Uuid;

use crate::helpers::{spawn_app, spawn_app_with, Event, TestApp};

/// Long enough for any poll on a loaded machine; the delivery time itself is measured
/// by the benchmark (D9), not here.
const GENEROUS: Duration = Duration::from_secs(20);

/// One Server-Sent Event of the seat stream.
#[derive(Debug)]
struct Sse {
    event: String,
    id: i64,
    data: Value,
}

/// A client of `GET …/seats/stream`, reading events as they arrive.
struct StreamClient {
    stream: EventStream,
}

impl StreamClient {
    async fn open(app: &TestApp, event: &Event, last_event_id: Option<&str>) -> Self {
        let mut request = app.http.get(app.url(&event.path("/seats/stream")));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        Self { stream: EventStream::open(request).await }
    }

    async fn next(&mut self) -> Sse {
        let sse = self.stream.next_within(GENEROUS).await.expect("the stream stays open");
        let id = sse.id.as_deref().expect("every event has an id").parse().expect("a numeric id");
        Sse { id, data: sse.json(), event: sse.event }
    }

    /// Events until one names `seat_id`, applying each to `map`.
    async fn until_seat(&mut self, map: &mut SeatMap, seat_id: i64) -> Sse {
        loop {
            let sse = self.next().await;
            map.apply(&sse);
            let names_it = sse.data["seats"].as_array().is_some_and(|seats| seats.iter().any(|s| s[0] == seat_id));
            if sse.event == "changes" && names_it {
                return sse;
            }
        }
    }
}

/// What a client rendering the stream knows: each seat's letter and hold end.
#[derive(Debug, Default, PartialEq)]
struct SeatMap {
    seats: HashMap<i64, (String, Option<i64>)>,
    position: i64,
}

impl SeatMap {
    /// Applies a `snapshot` (with the layout's ids, ascending) or a `changes` event.
    fn apply_with_ids(&mut self, sse: &Sse, ids: &[i64]) {
        match sse.event.as_str() {
            "snapshot" => {
                let states = sse.data["states"].as_str().unwrap();
                assert_eq!(states.len(), ids.len());
                let mut held: HashMap<i64, i64> = HashMap::new();
                for group in sse.data["held_until"].as_array().unwrap() {
                    for id in group[1].as_array().unwrap() {
                        held.insert(id.as_i64().unwrap(), group[0].as_i64().unwrap());
                    }
                }
                self.seats = ids
                    .iter()
                    .zip(states.chars())
                    .map(|(&id, state)| (id, (state.to_string(), held.get(&id).copied())))
                    .collect();
            }
            "changes" => {
                assert!(sse.data["from"].as_i64().unwrap() <= self.position, "a delta that does not fit: {sse:?}");
                for seat in sse.data["seats"].as_array().unwrap() {
                    let state = (seat[1].as_str().unwrap().to_owned(), seat[2].as_i64());
                    self.seats.insert(seat[0].as_i64().unwrap(), state);
                }
            }
            other => panic!("unknown event {other}"),
        }
        assert_eq!(sse.data["position"].as_i64(), Some(sse.id), "the id is the position");
        self.position = sse.id;
    }

    fn apply(&mut self, sse: &Sse) {
        assert_eq!(sse.event, "changes", "a snapshot needs the layout's ids");
        self.apply_with_ids(sse, &[]);
    }
}

/// The layout's seat ids by label, and every id ascending.
async fn seat_ids(app: &TestApp, event: &Event) -> (HashMap<String, i64>, Vec<i64>) {
    let layout = app.send(Method::GET, &event.path("/seats/layout"), None, None).await;
    assert_eq!(layout.status, StatusCode::OK, "{}", layout.body);
    let mut by_label = HashMap::new();
    for section in layout.body["sections"].as_array().unwrap() {
        for row in section["rows"].as_array().unwrap() {
            for seat in row["seats"].as_array().unwrap() {
                by_label.insert(seat[2].as_str().unwrap().to_owned(), seat[0].as_i64().unwrap());
            }
        }
    }
    let mut ids: Vec<i64> = by_label.values().copied().collect();
    ids.sort();
    (by_label, ids)
}

/// The seats as the database has them, in the stream's letters.
async fn database_seats(app: &TestApp, event: &Event) -> HashMap<i64, (String, Option<i64>)> {
    let rows: Vec<(i64, String, Option<i64>)> = sqlx::query_as(
        "SELECT id, left(state::text, 1), floor(extract(epoch FROM held_until) * 1000)::bigint
         FROM seats WHERE event_id = $1 AND label IS NOT NULL",
    )
    .bind(event.id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    rows.into_iter().map(|(id, state, held)| (id, (state, held))).collect()
}

#[tokio::test]
async fn the_layout_lists_rows_and_seats_and_may_be_cached() {
    let app = spawn_app().await;
    let body = app
        .create_event(json!({
            "name": "Rows",
            "sections": [
                { "name": "Stalls", "kind": "reserved", "price": { "amount_minor": 6500, "currency": "EUR" },
                  "rows": [{ "label": "A", "seats": 2 }, { "label": "B", "seats": 3 }] },
                { "name": "Floor", "kind": "general_admission", "price": { "amount_minor": 3000, "currency": "EUR" }, "capacity": 50 }
            ]
        }))
        .await;
    let event = Event::from_details(&body);
    let layout = app.send(Method::GET, &event.path("/seats/layout"), None, None).await;

    assert_eq!(layout.status, StatusCode::OK);
    assert_eq!(layout.headers["cache-control"], "public, max-age=300");
    let sections = layout.body["sections"].as_array().unwrap();
    assert_eq!((sections[0]["name"].as_str(), sections[1]["name"].as_str()), (Some("Stalls"), Some("Floor")));
    assert_eq!(sections[0]["price"], json!({ "amount_minor": 6500, "currency": "EUR" }));
    let rows = sections[0]["rows"].as_array().unwrap();
    let labels: Vec<Vec<&str>> = rows
        .iter()
        .map(|row| row["seats"].as_array().unwrap().iter().map(|s| s[2].as_str().unwrap()).collect())
        .collect();
    assert_eq!(labels, [vec!["A-1", "A-2"], vec!["B-1", "B-2", "B-3"]]);
    assert_eq!((rows[0]["label"].as_str(), rows[0]["seats"][1][1].as_i64()), (Some("A"), Some(2)));
    assert_eq!((sections[1]["capacity"].as_i64(), sections[1]["rows"].as_array().unwrap().len()), (Some(50), 0));
}

#[tokio::test]
async fn a_stream_starts_with_a_snapshot_then_sends_each_change_with_its_position() {
    let app = spawn_app().await;
    let event = app.numbered_event(5).await;
    let (by_label, ids) = seat_ids(&app, &event).await;
    app.book(&event, "fan-0", json!({ "seats": ["5"] })).await;

    let mut stream = StreamClient::open(&app, &event, None).await;
    let snapshot = stream.next().await;
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!((snapshot.data["seats"].as_i64(), snapshot.data["states"].as_str()), (Some(5), Some("aaaab")));
    let mut map = SeatMap::default();
    map.apply_with_ids(&snapshot, &ids);

    let hold = app.hold(&event, "fan-1", json!({ "seats": ["2", "3"] })).await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);
    let held = stream.until_seat(&mut map, by_label["2"]).await;
    assert!(held.id > snapshot.id, "positions move forward: {} then {}", snapshot.id, held.id);
    let held_until = chrono::DateTime::parse_from_rfc3339(hold.body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(map.seats[&by_label["2"]], ("h".to_owned(), Some(held_until.timestamp_millis())));
    assert_eq!(map.seats[&by_label["3"]].0, "h");

    let booked = app.book(&event, "fan-2", json!({ "seats": ["1"] })).await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    stream.until_seat(&mut map, by_label["1"]).await;
    assert_eq!(map.seats[&by_label["1"]], ("b".to_owned(), None));
    assert_eq!(map.seats, database_seats(&app, &event).await);
}

#[tokio::test]
async fn a_client_reconnecting_gets_what_it_missed_or_a_snapshot_when_its_position_is_unknown() {
    let app = spawn_app().await;
    let event = app.numbered_event(4).await;
    let (by_label, ids) = seat_ids(&app, &event).await;
    let mut first = StreamClient::open(&app, &event, None).await;
    let snapshot = first.next().await;
    let mut map = SeatMap::default();
    map.apply_with_ids(&snapshot, &ids);
    drop(first);

    app.book(&event, "fan-1", json!({ "seats": ["4"] })).await;
    // The replica has read the booking once its state says so.
    let deadline = tokio::time::Instant::now() + GENEROUS;
    loop {
        let state = app.send(Method::GET, &event.path("/seats/state"), None, None).await;
        if state.body["states"] == "aaab" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the booking never reached the live map: {}", state.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut again = StreamClient::open(&app, &event, Some(&snapshot.id.to_string())).await;
    let missed = again.next().await;
    assert_eq!(missed.event, "changes", "the deltas it missed, not a snapshot: {missed:?}");
    map.apply(&missed);
    assert_eq!(map.seats[&by_label["4"]], ("b".to_owned(), None));

    for unknown in ["not-a-position", "1", &(missed.id + 1_000_000).to_string()] {
        let mut stream = StreamClient::open(&app, &event, Some(unknown)).await;
        let first = stream.next().await;
        assert_eq!((first.event.as_str(), first.data["states"].as_str()), ("snapshot", Some("aaab")), "{unknown}");
    }
}

/// The property the stream exists for: a snapshot with every delta after it applied is
/// the database's state, whatever order concurrent orders commit in.
#[tokio::test]
async fn a_snapshot_and_its_deltas_equal_the_database_after_a_burst_of_parallel_orders() {
    let app = spawn_app_with(20, |_| {}).await;
    let event = app.numbered_event(41).await;
    let (_, ids) = seat_ids(&app, &event).await;
    let mut stream = StreamClient::open(&app, &event, None).await;
    let mut map = SeatMap::default();
    map.apply_with_ids(&stream.next().await, &ids);

    let orders = (0..60).map(|i| {
        let seats: Vec<String> = [i % 40 + 1, (i * 7) % 40 + 1].iter().map(|n| n.to_string()).collect();
        let path = if i % 3 == 0 { "/bookings" } else { "/holds" };
        let token = app.token(&format!("fan-{i}"), &event);
        app.send(Method::POST, &event.path(path), Some(&token), Some(json!({ "seats": seats })))
    });
    let replies = join_all(orders).await;
    let made = replies.iter().filter(|r| r.status == StatusCode::CREATED).count();
    assert!(made > 5, "the burst made orders: {made}");
    // Released holds put seats back: the stream says so too.
    let holds =
        replies.iter().enumerate().filter(|(_, r)| r.status == StatusCode::CREATED && r.body["status"] == "active");
    for (i, hold) in holds.take(5) {
        let token = app.token(&format!("fan-{i}"), &event);
        let path = event.path(&format!("/holds/{}", hold.body["id"].as_str().unwrap()));
        let released = app.send(Method::DELETE, &path, Some(&token), None).await;
        assert!(released.status.is_success(), "{}", released.body);
    }

    // A last booking, begun after every order above had committed, has a higher
    // transaction id than all of them: the delta naming it covers them all.
    let (by_label, _) = seat_ids(&app, &event).await;
    let last = app.book(&event, "fan-last", json!({ "seats": ["41"] })).await;
    assert_eq!(last.status, StatusCode::CREATED, "{}", last.body);
    stream.until_seat(&mut map, by_label["41"]).await;
    assert_eq!(map.seats, database_seats(&app, &event).await);
}

#[tokio::test]
async fn an_unknown_event_has_no_stream_and_a_bad_id_is_refused() {
    let app = spawn_app().await;
    for path in ["/seats/stream", "/seats/state", "/seats/layout"] {
        let unknown = app.send(Method::GET, &format!("/v1/events/{}{path}", Uuid::new_v4()), None, None).await;
        assert_eq!((unknown.status, unknown.code()), (StatusCode::NOT_FOUND, "event_not_found"), "{path}");
        let bad = app.send(Method::GET, &format!("/v1/events/nope{path}"), None, None).await;
        assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, "bad_request"), "{path}");
    }
}

#[tokio::test]
async fn past_max_streams_a_stream_is_refused_with_retry_after_until_one_closes() {
    let app = spawn_app_with(4, |config| {
        config.seat_stream.max_streams = 1;
        config.seat_stream.keep_alive_secs = 1;
    })
    .await;
    let event = app.numbered_event(2).await;
    let open = StreamClient::open(&app, &event, None).await;

    let refused = app.send(Method::GET, &event.path("/seats/stream"), None, None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::SERVICE_UNAVAILABLE, "too_many_streams"));
    assert_eq!(refused.headers["retry-after"], "5");

    drop(open);
    // The server finds the connection gone at its next write (a keep-alive each second).
    let deadline = tokio::time::Instant::now() + GENEROUS;
    loop {
        let again = app.http.get(app.url(&event.path("/seats/stream"))).send().await.unwrap();
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the closed stream was never counted out");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_stream_ends_after_its_lifetime_so_the_client_reconnects() {
    let app = spawn_app_with(4, |config| config.seat_stream.max_stream_secs = 1).await;
    let event = app.numbered_event(2).await;
    let mut stream = StreamClient::open(&app, &event, None).await;
    stream.next().await;
    assert_eq!(stream.stream.next_within(GENEROUS).await, None, "the stream ended");
}
