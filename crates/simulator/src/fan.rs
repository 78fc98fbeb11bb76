//! One fan's evening: join the line, poll until admitted, shop by plan.

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use serde_json::{json, Value};

use crate::api::{Answer, Api, Event};
use crate::error::Error;
use crate::scenario::{Plan, Scenario};

/// How a fan's evening ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    Booked,
    /// Booked, then cancelled on purpose.
    Cancelled,
    /// Held places and walked away on purpose.
    AbandonedHold,
    SoldOut,
    /// Refused every attempt (contention, seats taken).
    GaveUp,
    /// Still waiting when the rehearsal's time ran out.
    NotAdmitted,
    /// Dropped from the line (skipped as abandoned, the event closed, or the line lost
    /// past the point a ticket can restore).
    LostPlace,
    /// An answer the plan did not expect; counted in the errors.
    Failed,
}

/// What the report needs of one fan.
#[derive(Debug, Clone)]
pub struct FanRecord {
    pub plan: Plan,
    pub joined: bool,
    pub pre_queue: bool,
    /// Times since the rehearsal began: the join sent and answered, the last poll sent
    /// that still found the fan waiting, and the poll answered that found them admitted.
    /// The true moments lie between these, which is what fairness is judged on.
    pub join_sent: Duration,
    pub join_answered: Duration,
    pub last_waiting_poll_sent: Option<Duration>,
    pub admitted_after: Option<Duration>,
    pub ending: Ending,
    pub seats: u32,
    /// The booking the fan was told about (a 2xx with its id), and what became of it.
    pub told: Option<ToldBooking>,
}

/// A booking a fan was told about: it must be in the database, in the state the fan
/// last heard of.
#[derive(Debug, Clone, Copy)]
pub struct ToldBooking {
    pub id: uuid::Uuid,
    /// Told it was cancelled (a 2xx to the cancel).
    pub cancelled: bool,
    /// Asked to cancel without a 2xx: either state is honest.
    pub cancel_unanswered: bool,
}

impl ToldBooking {
    fn of(answer: &Answer) -> Option<Self> {
        let id = answer.text("id")?.parse().ok()?;
        Some(Self { id, cancelled: false, cancel_unanswered: false })
    }
}

impl FanRecord {
    /// A fan whose requests got no answer (the error is in the traffic counts).
    pub fn failed(plan: Plan) -> Self {
        Self {
            plan,
            joined: false,
            pre_queue: false,
            join_sent: Duration::ZERO,
            join_answered: Duration::ZERO,
            last_waiting_poll_sent: None,
            admitted_after: None,
            ending: Ending::Failed,
            seats: 0,
            told: None,
        }
    }
}

/// A fan let in: the access token, and the latest queue ticket (to leave with).
struct Admitted {
    token: String,
    ticket: String,
}

pub struct Fan<'a> {
    pub api: &'a Api,
    pub scenario: &'a Scenario,
    pub event: Event,
    pub plan: Plan,
    pub started: Instant,
    pub deadline: Instant,
}

impl Fan<'_> {
    /// The fan's evening. A request that got no answer ends it as `Failed` (the error
    /// is in the traffic counts), keeping what the fan was told before.
    pub async fn run(self) -> FanRecord {
        let mut record = FanRecord::failed(self.plan);
        if self.journey(&mut record).await.is_err() {
            (record.ending, record.seats) = (Ending::Failed, 0);
        }
        record
    }

    async fn journey(&self, record: &mut FanRecord) -> Result<(), Error> {
        record.join_sent = self.started.elapsed();
        // `503` is "try again shortly" (a replica without Redis for a moment): a
        // browser retries it, until the rehearsal's time runs out.
        let mut joined = self.api.join(self.event.id).await?;
        while joined.status == 503 && Instant::now() < self.deadline {
            tokio::time::sleep(Duration::from_millis(self.scenario.poll_interval_ms)).await;
            joined = self.api.join(self.event.id).await?;
        }
        record.joined = joined.ok();
        record.pre_queue = joined.text("status") == Some("pre_queue");
        record.join_answered = self.started.elapsed();
        let Some(ticket) = joined.text("ticket").filter(|_| joined.ok()) else {
            return Ok(());
        };
        let Some(Admitted { token, ticket }) = self.wait_for_admission(ticket.to_owned(), record).await? else {
            return Ok(());
        };
        self.think().await;
        (record.ending, record.seats) = self.shop(&token, &mut record.told).await?;
        // Done shopping: give the place in the room to the next fan, as a checkout page
        // that tells the waiting room would.
        self.api.leave(self.event.id, &ticket).await?;
        Ok(())
    }

    /// Polls as a browser tab would, each time with the latest ticket (every answer
    /// carries a fresh one, so a fan in a long line never outlives a ticket's lifetime);
    /// `None` when the fan never got in.
    async fn wait_for_admission(&self, mut ticket: String, record: &mut FanRecord) -> Result<Option<Admitted>, Error> {
        loop {
            if Instant::now() >= self.deadline {
                record.ending = Ending::NotAdmitted;
                return Ok(None);
            }
            let sent = self.started.elapsed();
            let polled = self.api.poll(self.event.id, &ticket).await?;
            if let Some(fresh) = polled.text("ticket").filter(|_| polled.ok()) {
                ticket = fresh.to_owned();
            }
            if polled.text("status") == Some("waiting") {
                record.last_waiting_poll_sent = Some(sent);
            }
            if let Some(token) = polled.text("access_token") {
                record.admitted_after = Some(self.started.elapsed());
                return Ok(Some(Admitted { token: token.to_owned(), ticket }));
            }
            if polled.status == 503 {
                tokio::time::sleep(Duration::from_millis(self.scenario.poll_interval_ms)).await;
                continue;
            }
            if !polled.ok() {
                // 404: the ticket names no line; 409 queue_reset: the line was lost and
                // this ticket cannot be put back in it.
                let lost = polled.status == 404 || polled.code() == "queue_reset";
                record.ending = if lost { Ending::LostPlace } else { Ending::Failed };
                return Ok(None);
            }
            let asked = Duration::from_secs(polled.body["poll_after_secs"].as_u64().unwrap_or(0));
            tokio::time::sleep(asked.max(Duration::from_millis(self.scenario.poll_interval_ms))).await;
        }
    }

    async fn shop(&self, token: &str, told: &mut Option<ToldBooking>) -> Result<(Ending, u32), Error> {
        let quantity = self.scenario.quantity;
        let any_section = self.event.general_admission.or(self.event.reserved);
        let by_quantity = |section: Option<uuid::Uuid>| json!({ "section_id": section, "quantity": quantity });
        match self.plan {
            Plan::ChosenSeats => self.hold_and_confirm(token, None, told).await,
            Plan::BestAvailable => self.hold_and_confirm(token, Some(by_quantity(self.event.reserved)), told).await,
            Plan::GeneralAdmission => self
                .attempt(|| async {
                    self.api.book(self.event.id, token, by_quantity(self.event.general_admission)).await
                })
                .await
                .map(|outcome| {
                    outcome.map_or_else(
                        |ending| (ending, 0),
                        |booking| {
                            *told = ToldBooking::of(&booking);
                            (Ending::Booked, quantity)
                        },
                    )
                }),
            Plan::AbandonHold => {
                let held = self
                    .attempt(|| async { self.api.hold(self.event.id, token, by_quantity(any_section)).await })
                    .await?;
                Ok(held.map_or_else(|ending| (ending, 0), |_| (Ending::AbandonedHold, 0)))
            }
            Plan::Cancel => {
                let booked = self
                    .attempt(|| async { self.api.book(self.event.id, token, by_quantity(any_section)).await })
                    .await?;
                let booking = match booked {
                    Ok(booking) => booking,
                    Err(ending) => return Ok((ending, 0)),
                };
                *told = ToldBooking::of(&booking);
                self.think().await;
                let id = booking.text("id").unwrap_or_default().to_owned();
                let cancelled = self.api.cancel(self.event.id, token, &id).await;
                let ok = cancelled.as_ref().is_ok_and(Answer::ok);
                if let Some(told) = told {
                    (told.cancelled, told.cancel_unanswered) = (ok, !ok);
                }
                Ok((if cancelled?.ok() { Ending::Cancelled } else { Ending::Failed }, 0))
            }
        }
    }

    /// Holds `order`, or seats picked from the seat map when there is none (picked
    /// again after someone else was faster), then confirms after thinking.
    async fn hold_and_confirm(
        &self,
        token: &str,
        order: Option<Value>,
        told: &mut Option<ToldBooking>,
    ) -> Result<(Ending, u32), Error> {
        let held = self
            .attempt(|| async {
                let request = match &order {
                    Some(order) => order.clone(),
                    None => match self.pick_seats().await? {
                        Some(labels) => json!({ "seats": labels }),
                        None => return Ok(Answer { status: 409, body: json!({ "error": { "code": "sold_out" } }) }),
                    },
                };
                self.api.hold(self.event.id, token, request).await
            })
            .await?;
        let hold = match held {
            Ok(hold) => hold,
            Err(ending) => return Ok((ending, 0)),
        };
        self.think().await;
        let id = hold.text("id").unwrap_or_default().to_owned();
        let confirmed = self.api.confirm(self.event.id, token, &id).await?;
        if confirmed.ok() {
            *told = ToldBooking::of(&confirmed);
        }
        Ok(if confirmed.ok() { (Ending::Booked, self.scenario.quantity) } else { (Ending::Failed, 0) })
    }

    /// `quantity` free seats from the seat map, at random; `None` when too few are left.
    async fn pick_seats(&self) -> Result<Option<Vec<String>>, Error> {
        let map = self.api.seat_map(self.event.id).await?;
        let mut free: Vec<String> = map.body["seats"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|seat| seat["status"] == "available")
            .filter_map(|seat| seat["label"].as_str().map(str::to_owned))
            .collect();
        if free.len() < self.scenario.quantity as usize {
            return Ok(None);
        }
        free.shuffle(&mut rand::thread_rng());
        free.truncate(self.scenario.quantity as usize);
        Ok(Some(free))
    }

    /// Tries an order up to `attempts` times while it is refused for contention or
    /// taken seats; `Err(ending)` when the fan ends without it.
    async fn attempt<F, Fut>(&self, order: F) -> Result<Result<Answer, Ending>, Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Answer, Error>>,
    {
        for _ in 0..self.scenario.attempts.max(1) {
            let answer = order().await?;
            match answer.code() {
                "ok" => return Ok(Ok(answer)),
                "sold_out" => return Ok(Err(Ending::SoldOut)),
                "seat_contended" | "seat_unavailable" | "rate_limited" | "unavailable" => self.think().await,
                _ => return Ok(Err(Ending::Failed)),
            }
        }
        Ok(Err(Ending::GaveUp))
    }

    async fn think(&self) {
        tokio::time::sleep(Duration::from_millis(self.scenario.think_ms)).await;
    }
}
