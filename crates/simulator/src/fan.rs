//! One fan's evening: join the line, poll until admitted, shop by plan, and pay for
//! paid places on the provider's page, as a browser would.

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};

use crate::api::{Answer, Api, Event, Holder};
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
    /// Opened the payment page and closed it without paying, on purpose.
    AbandonedCheckout,
    /// Paid and closed the tab before the page reported back, on purpose: the booking is
    /// the webhook's to make.
    PaidAndLeft,
    /// Every card tried was declined.
    Declined,
    /// Paid too late: the hold had lapsed and its places were gone, so the payment was
    /// refunded in full.
    Refunded,
    /// The hold lapsed before the fan could pay for it.
    HoldExpired,
    /// Paid, but the gateway had not said what became of it within `follow_secs`.
    PaymentUnknown,
    /// Found it sold out, waited on the waitlist, was offered places and took them.
    WaitlistBooked,
    /// Was offered places from the waitlist and declined them.
    WaitlistDeclined,
    /// Was offered places from the waitlist and let the offer lapse.
    WaitlistLapsed,
    /// Waited on the waitlist and saw no offer: none came before the rehearsal ended
    /// or the fan's access token expired (they would have heard by email).
    WaitlistNoOffer,
    /// Told in line that the show was sold out (the waiting room's `sale_state`), and
    /// left the line.
    SoldOutInLine,
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
    /// When the fan last got an answer from the waiting room (a join or a poll, 2xx)
    /// that did not say the show was sold out: after the sell-out every answer is to
    /// say so (issue 18), so this tells how long the line went on hearing otherwise.
    pub last_answer_not_sold_out: Option<Duration>,
    /// Waited in line on the standing stream (for a while at least).
    pub streamed: bool,
    /// When the stream told the fan the show was sold out.
    pub told_sold_out_on_stream: Option<Duration>,
    pub ending: Ending,
    pub seats: u32,
    /// The booking the fan was told about (a 2xx with its id), and what became of it.
    pub told: Option<ToldBooking>,
    pub payment: PaymentRecord,
}

/// What a fan did and saw at checkout.
#[derive(Debug, Clone, Copy, Default)]
pub struct PaymentRecord {
    /// Checkouts answered 2xx (a new attempt after a decline is a second one).
    pub checkouts: u32,
    /// Cards the payment page declined.
    pub declined: u32,
    /// The payment page said the payment succeeded: money taken.
    pub paid: bool,
    /// Paid after the hold's end (the `pay_late` plan).
    pub late: bool,
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
    /// The booking in a 2xx answer, under `field` (`id` for a booking, `booking_id` for
    /// a payment).
    fn of(answer: &Answer, field: &str) -> Option<Self> {
        let id = answer.text(field)?.parse().ok()?;
        Some(Self { id, cancelled: false, cancel_unanswered: false })
    }
}

/// Stripe's test cards, which decide the payment page's answer.
const GOOD_CARD: &str = "4242 4242 4242 4242";
const DECLINED_CARD: &str = "4000 0000 0000 0002";

/// How a fan goes through checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checkout {
    /// Pays, then follows the payment until it is booked (or says why not).
    Pay,
    /// Opens the payment page and walks away.
    Abandon,
    /// Leaves the page open past the hold's end, then pays and follows.
    PayLate,
    /// Pays and closes the tab.
    PayAndLeave,
}

impl FanRecord {
    /// Notes a waiting room's answer, `at` the time it came.
    fn heard(&mut self, answer: &Answer, at: Duration) {
        if answer.ok() && answer.text("sale_state") != Some("sold_out") {
            self.last_answer_not_sold_out = Some(at);
        }
    }

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
            last_answer_not_sold_out: None,
            streamed: false,
            told_sold_out_on_stream: None,
            ending: Ending::Failed,
            seats: 0,
            told: None,
            payment: PaymentRecord::default(),
        }
    }
}

/// A fan let in: the access token, and the latest queue ticket (to leave with).
struct Admitted {
    token: String,
    ticket: String,
}

/// How waiting on the standing stream ended.
enum StreamWait {
    /// Admitted, or told the show sold out (`None`).
    Over(Option<Admitted>),
    /// The stream was refused or ended: polls take over.
    Poll,
}

pub struct Fan<'a> {
    pub api: &'a Api,
    pub scenario: &'a Scenario,
    pub event: Event,
    pub plan: Plan,
    /// The first card this fan tries is declined.
    pub declined_first: bool,
    /// Waits in line on the standing stream rather than polling.
    pub streams: bool,
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
        record.heard(&joined, record.join_answered);
        let Some(ticket) = joined.text("ticket").filter(|_| joined.ok()) else {
            return Ok(());
        };
        let mut waitlist_token = None;
        let Some(Admitted { token, ticket }) =
            self.wait_for_admission(ticket.to_owned(), record, &mut waitlist_token).await?
        else {
            // Told in line the show sold out, with a token for its waitlist (D2).
            if let Some(token) = waitlist_token.filter(|_| self.scenario.waitlist.enabled) {
                let (ending, seats) = self.wait_for_offer(&token, &mut record.told, &mut record.payment).await?;
                if ending != Ending::SoldOut {
                    (record.ending, record.seats) = (ending, seats);
                }
            }
            return Ok(());
        };
        self.think().await;
        (record.ending, record.seats) = self.shop(&token, &mut record.told, &mut record.payment).await?;
        if record.ending == Ending::SoldOut && self.scenario.waitlist.enabled {
            (record.ending, record.seats) = self.wait_for_offer(&token, &mut record.told, &mut record.payment).await?;
        }
        // A fan who booked is done: the booking frees their place in the room (the
        // waiting room's slot release). One who did not gives it back, as a page that
        // tells the waiting room when the fan gives up would.
        if !matches!(record.ending, Ending::Booked | Ending::Cancelled | Ending::WaitlistBooked | Ending::PaidAndLeft) {
            self.api.leave(self.event.id, &ticket).await?;
        }
        Ok(())
    }

    /// Polls as a browser tab would, each time with the latest ticket (every answer
    /// carries a fresh one, so a fan in a long line never outlives a ticket's lifetime);
    /// `None` when the fan never got in. A fan told the show sold out leaves the line,
    /// with the waitlist token the answer carried if the show has a waitlist. A fan who
    /// streams waits on the stream first, and polls only if it is refused or ends.
    async fn wait_for_admission(
        &self,
        mut ticket: String,
        record: &mut FanRecord,
        waitlist_token: &mut Option<String>,
    ) -> Result<Option<Admitted>, Error> {
        if self.streams {
            if let StreamWait::Over(admitted) = self.wait_on_stream(&mut ticket, record, waitlist_token).await? {
                return Ok(admitted);
            }
        }
        loop {
            if Instant::now() >= self.deadline {
                record.ending = Ending::NotAdmitted;
                return Ok(None);
            }
            let sent = self.started.elapsed();
            let polled = self.api.poll(self.event.id, &ticket).await?;
            record.heard(&polled, self.started.elapsed());
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
            if polled.text("sale_state") == Some("sold_out") {
                // As the waiting page would tell them: nothing left, nobody more let in.
                *waitlist_token = polled.text("waitlist_token").map(str::to_owned);
                self.api.leave(self.event.id, &ticket).await?;
                record.ending = Ending::SoldOutInLine;
                return Ok(None);
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

    /// Waits on the standing stream as the waiting page's EventSource would: each
    /// `status` event is an answer, the last of them until the access token or
    /// `sold_out` comes.
    async fn wait_on_stream(
        &self,
        ticket: &mut String,
        record: &mut FanRecord,
        waitlist_token: &mut Option<String>,
    ) -> Result<StreamWait, Error> {
        let Ok(mut stream) = self.api.standing_stream(self.event.id, ticket).await? else {
            return Ok(StreamWait::Poll);
        };
        record.streamed = true;
        // The deadline, or the stream's end: the polls take over (and see the deadline).
        while let Ok(Some(status)) = tokio::time::timeout_at(self.deadline.into(), stream.next()).await {
            // A `waiting` event left the server before it arrived: its arrival is no
            // moment the fan was known to be waiting, so fairness is judged on polls only.
            let at = self.started.elapsed();
            record.heard(&status, at);
            if let Some(fresh) = status.text("ticket") {
                *ticket = fresh.to_owned();
            }
            if let Some(token) = status.text("access_token") {
                record.admitted_after = Some(at);
                return Ok(StreamWait::Over(Some(Admitted { token: token.to_owned(), ticket: ticket.clone() })));
            }
            if status.text("sale_state") == Some("sold_out") {
                record.told_sold_out_on_stream = Some(at);
                *waitlist_token = status.text("waitlist_token").map(str::to_owned);
                self.api.leave(self.event.id, ticket).await?;
                record.ending = Ending::SoldOutInLine;
                return Ok(StreamWait::Over(None));
            }
        }
        Ok(StreamWait::Poll)
    }

    async fn shop(
        &self,
        token: &str,
        told: &mut Option<ToldBooking>,
        paid: &mut PaymentRecord,
    ) -> Result<(Ending, u32), Error> {
        let quantity = self.scenario.quantity;
        let by_quantity = |section: Option<uuid::Uuid>| json!({ "section_id": section, "quantity": quantity });
        let any_section = by_quantity(self.event.general_admission.or(self.event.reserved));
        // Late payments: reserved seats first, whose lapsed holds are resold seat by seat
        // (a refund when they went), GA otherwise (any free places will do).
        let seats_first = by_quantity(self.event.reserved.or(self.event.general_admission));
        let free = self.scenario.price_minor == 0;
        let bought = match self.plan {
            Plan::ChosenSeats => self.buy(token, None, paid).await?,
            Plan::BestAvailable => self.buy(token, Some(by_quantity(self.event.reserved)), paid).await?,
            // Free places are booked in one step; paid ones need a hold to pay for.
            Plan::GeneralAdmission if free => {
                let order = by_quantity(self.event.general_admission);
                self.attempt(|| async { self.api.book(self.event.id, token, order.clone()).await })
                    .await?
                    .map(|booking| ToldBooking::of(&booking, "id"))
            }
            Plan::GeneralAdmission => self.buy(token, Some(by_quantity(self.event.general_admission)), paid).await?,
            Plan::AbandonHold => {
                let held =
                    self.attempt(|| async { self.api.hold(self.event.id, token, any_section.clone()).await }).await?;
                return Ok(held.map_or_else(|ending| (ending, 0), |_| (Ending::AbandonedHold, 0)));
            }
            Plan::AbandonCheckout => return self.walk_out(token, any_section, Checkout::Abandon, paid).await,
            Plan::PayLate => self.hold_and_pay(token, Some(seats_first), Checkout::PayLate, paid).await?,
            Plan::PayAndLeave => return self.walk_out(token, any_section, Checkout::PayAndLeave, paid).await,
            Plan::Cancel if free => self
                .attempt(|| async { self.api.book(self.event.id, token, any_section.clone()).await })
                .await?
                .map(|booking| ToldBooking::of(&booking, "id")),
            Plan::Cancel => self.buy(token, Some(any_section), paid).await?,
        };
        let booking = match bought {
            Ok(booking) => booking,
            Err(ending) => return Ok((ending, 0)),
        };
        *told = booking;
        if self.plan != Plan::Cancel {
            let kept = if told.is_some() { quantity } else { 0 };
            return Ok((if told.is_some() { Ending::Booked } else { Ending::Failed }, kept));
        }
        self.think().await;
        let id = told.map(|t| t.id.to_string()).unwrap_or_default();
        let cancelled = self.api.cancel(self.event.id, token, &id).await;
        let ok = cancelled.as_ref().is_ok_and(Answer::ok);
        if let Some(told) = told {
            (told.cancelled, told.cancel_unanswered) = (ok, !ok);
        }
        Ok((if cancelled?.ok() { Ending::Cancelled } else { Ending::Failed }, 0))
    }

    /// Holds `order` (or seats from the seat map) and buys it: confirms a free hold,
    /// pays for a paid one. `Ok(Ok(booking))`: the fan was told of a booking (`None`
    /// when a 2xx named none, counted as failed).
    async fn buy(
        &self,
        token: &str,
        order: Option<Value>,
        paid: &mut PaymentRecord,
    ) -> Result<Result<Option<ToldBooking>, Ending>, Error> {
        if self.scenario.price_minor > 0 {
            return self.hold_and_pay(token, order, Checkout::Pay, paid).await;
        }
        let hold = match self.hold(token, order).await? {
            Ok(hold) => hold,
            Err(ending) => return Ok(Err(ending)),
        };
        self.think().await;
        let confirmed =
            self.api.confirm(self.event.id, Holder::Token(token), hold.text("id").unwrap_or_default()).await?;
        Ok(if confirmed.ok() { Ok(ToldBooking::of(&confirmed, "id")) } else { Err(Ending::Failed) })
    }

    /// The plans that leave checkout early: the fan ends as the plan says, unless
    /// something came first (sold out, a decline, the hold lapsing).
    async fn walk_out(
        &self,
        token: &str,
        order: Value,
        how: Checkout,
        paid: &mut PaymentRecord,
    ) -> Result<(Ending, u32), Error> {
        let ending = match self.hold_and_pay(token, Some(order), how, paid).await? {
            Err(ending) => ending,
            // Not reached: these plans stop before the payment is followed.
            Ok(_) => Ending::Failed,
        };
        Ok((ending, 0))
    }

    /// Holds, then checks out and pays as `how` says: the booking the fan was told of,
    /// or how it ended without one.
    async fn hold_and_pay(
        &self,
        token: &str,
        order: Option<Value>,
        how: Checkout,
        paid: &mut PaymentRecord,
    ) -> Result<Result<Option<ToldBooking>, Ending>, Error> {
        let hold = match self.hold(token, order).await? {
            Ok(hold) => hold,
            Err(ending) => return Ok(Err(ending)),
        };
        self.think().await;
        let hold = hold.text("id").unwrap_or_default().to_owned();
        self.pay(Holder::Token(token), &hold, how, paid).await
    }

    /// Joins the waitlist (every section, else each one still sold out), waits for an
    /// offer, then takes it, declines it or lets it lapse as the scenario's shares say,
    /// through the offer's link; `SoldOut` when the fan could not join.
    async fn wait_for_offer(
        &self,
        token: &str,
        told: &mut Option<ToldBooking>,
        paid: &mut PaymentRecord,
    ) -> Result<(Ending, u32), Error> {
        let sections: Vec<uuid::Uuid> =
            [self.event.reserved, self.event.general_admission].into_iter().flatten().collect();
        let choices = std::iter::once(sections.clone()).chain(sections.iter().map(|s| vec![*s]));
        let mut joined = false;
        for choice in choices {
            let request = json!({ "quantity": self.scenario.quantity, "section_ids": choice });
            let answer = self.api.join_waitlist(self.event.id, token, request).await?;
            joined = answer.ok();
            if joined || answer.code() != "not_sold_out" {
                break;
            }
        }
        if !joined {
            return Ok((Ending::SoldOut, 0));
        }
        let every = Duration::from_millis(self.scenario.poll_interval_ms.max(500));
        let entry = loop {
            if Instant::now() + every >= self.deadline {
                return Ok((Ending::WaitlistNoOffer, 0));
            }
            tokio::time::sleep(every).await;
            let entry = self.api.waitlist_entry(self.event.id, token).await?;
            match entry.text("status") {
                Some("offered") => break entry,
                Some("waiting") => {}
                _ if entry.status == 503 || entry.code() == "rate_limited" => {}
                // The token expired, or the entry ended without an offer seen.
                _ => return Ok((Ending::WaitlistNoOffer, 0)),
            }
        };
        let offer = &entry.body["offer"];
        let hold = offer["hold_id"].as_str().unwrap_or_default().to_owned();
        // A gateway without ticket keys gives no link: the token it is, while it lasts.
        let holder = offer["link"].as_str().map_or(Holder::Token(token), Holder::OfferLink);
        self.think().await;
        let draw: f64 = rand::thread_rng().gen();
        let waitlist = &self.scenario.waitlist;
        if draw < waitlist.accept_rate {
            let taken = if self.scenario.price_minor > 0 {
                self.pay(holder, &hold, Checkout::Pay, paid).await?
            } else {
                let confirmed = self.api.confirm(self.event.id, holder, &hold).await?;
                if confirmed.ok() {
                    Ok(ToldBooking::of(&confirmed, "id"))
                } else {
                    Err(Ending::Failed)
                }
            };
            return Ok(match taken {
                Ok(Some(booking)) => {
                    *told = Some(booking);
                    let places = offer_places(&entry);
                    (Ending::WaitlistBooked, places)
                }
                Ok(None) => (Ending::Failed, 0),
                Err(ending) => (ending, 0),
            });
        }
        if draw < waitlist.accept_rate + waitlist.decline_rate {
            let released = self.api.release(self.event.id, holder, &hold).await?;
            return Ok((if released.ok() { Ending::WaitlistDeclined } else { Ending::Failed }, 0));
        }
        Ok((Ending::WaitlistLapsed, 0))
    }

    /// Checks the hold out and pays on the provider's page: the card this fan tries
    /// first (declined for a share of the crowd), and after a decline a good one on a
    /// new attempt, as people do. Then follows the payment until it is settled.
    async fn pay(
        &self,
        holder: Holder<'_>,
        hold: &str,
        how: Checkout,
        paid: &mut PaymentRecord,
    ) -> Result<Result<Option<ToldBooking>, Ending>, Error> {
        let cards: &[&str] = if self.declined_first { &[DECLINED_CARD, GOOD_CARD] } else { &[GOOD_CARD] };
        for card in cards {
            let checkout = self.checkout(holder, hold).await?;
            if !checkout.ok() {
                return Ok(Err(match checkout.code() {
                    "hold_expired" => Ending::HoldExpired,
                    _ => Ending::Failed,
                }));
            }
            paid.checkouts += 1;
            let intent = checkout.text("intent_id").unwrap_or_default();
            let page = checkout.text("payment_page_url").map(str::to_owned).or_else(|| self.api.sandbox_page(intent));
            let (Some(page), Some(secret)) = (page, checkout.text("client_secret")) else {
                return Ok(Err(Ending::Failed));
            };
            self.think().await;
            match how {
                Checkout::Abandon => return Ok(Err(Ending::AbandonedCheckout)),
                Checkout::PayLate => {
                    // Back at the page a second after the hold's end; a fan whose hold
                    // ends after the rehearsal (a long checkout extension) never comes
                    // back.
                    let Some(ends) = checkout.text("hold_expires_at").and_then(until) else {
                        return Ok(Err(Ending::Failed));
                    };
                    let back = Instant::now() + ends + Duration::from_secs(1);
                    if back >= self.deadline {
                        return Ok(Err(Ending::AbandonedCheckout));
                    }
                    tokio::time::sleep_until(back.into()).await;
                    paid.late = true;
                }
                Checkout::Pay | Checkout::PayAndLeave => {}
            }
            let answer = self.api.pay(&page, secret, card).await?;
            if answer.status == 402 {
                paid.declined += 1;
                // Back in the shop, which shows the decline (the gateway asks the
                // provider), before trying again on a new attempt.
                self.think().await;
                self.api.payment(self.event.id, holder, hold).await?;
                continue;
            }
            if !(answer.ok() && answer.text("status") == Some("succeeded")) {
                return Ok(Err(Ending::Failed));
            }
            paid.paid = true;
            if how == Checkout::PayAndLeave {
                return Ok(Err(Ending::PaidAndLeft));
            }
            self.think().await;
            return self.follow(holder, hold).await;
        }
        Ok(Err(Ending::Declined))
    }

    /// Checks out, again after a `503` (the provider or the database unavailable:
    /// checking out again is safe, it resumes the same attempt), a bounded number of
    /// times.
    async fn checkout(&self, holder: Holder<'_>, hold: &str) -> Result<Answer, Error> {
        let mut answer = self.api.checkout(self.event.id, holder, hold).await?;
        for _ in 1..self.scenario.attempts.max(1) {
            if answer.status != 503 || Instant::now() >= self.deadline {
                break;
            }
            self.think().await;
            answer = self.api.checkout(self.event.id, holder, hold).await?;
        }
        Ok(answer)
    }

    /// Follows a paid hold's payment, as the page a fan is sent back to does, until it
    /// names a booking or says there will be none; bounded by `follow_secs` and the
    /// rehearsal's end.
    async fn follow(&self, holder: Holder<'_>, hold: &str) -> Result<Result<Option<ToldBooking>, Ending>, Error> {
        let until = (Instant::now() + Duration::from_secs(self.scenario.payments.follow_secs)).min(self.deadline);
        loop {
            let payment = self.api.payment(self.event.id, holder, hold).await?;
            if payment.ok() {
                if let Some(booking) = ToldBooking::of(&payment, "booking_id") {
                    return Ok(Ok(Some(booking)));
                }
                if payment.text("resolution") == Some("refunded") {
                    return Ok(Err(Ending::Refunded));
                }
            } else if payment.status != 503 {
                return Ok(Err(Ending::Failed));
            }
            if Instant::now() >= until {
                return Ok(Err(Ending::PaymentUnknown));
            }
            tokio::time::sleep(Duration::from_millis(self.scenario.poll_interval_ms)).await;
        }
    }

    /// Holds `order`, or seats picked from the seat map when there is none (picked
    /// again after someone else was faster).
    async fn hold(&self, token: &str, order: Option<Value>) -> Result<Result<Answer, Ending>, Error> {
        self.attempt(|| async {
            let request = match &order {
                Some(order) => order.clone(),
                None => match self.pick_seats().await? {
                    Some(labels) => json!({ "seats": labels }),
                    None => return Ok(Answer { status: 409, body: json!({ "error": { "code": "sold_out" } }) }),
                },
            };
            self.api.hold(self.event.id, token, request).await
        })
        .await
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

/// How many places a waitlist entry was offered: its quantity (offers are whole unless
/// the fan allowed partial ones, which these fans do not).
fn offer_places(entry: &Answer) -> u32 {
    entry.body["quantity"].as_u64().and_then(|q| u32::try_from(q).ok()).unwrap_or(0)
}

/// How long from now until `at` (RFC 3339), zero if it has passed.
fn until(at: &str) -> Option<Duration> {
    let at = chrono::DateTime::parse_from_rfc3339(at).ok()?;
    Some((at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or_default())
}
