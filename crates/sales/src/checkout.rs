//! Checkout: paying for a hold, and what the provider's verdicts do to it.
//!
//! The rule: no booking of a paid place without a succeeded payment, a payment applied
//! to exactly one booking, and a payment's success never costing anyone a seat or
//! booking one twice.
//!
//! - [`Sales::checkout`] starts (or resumes) the hold's payment attempt: the provider's
//!   intent first, keyed by the new attempt's id, then the attempt written with it in
//!   one statement that also extends the hold. No transaction or lock is held while the
//!   provider is asked; a request dropped in between leaves an intent nobody was shown,
//!   so nobody pays it. (Attempts written `created` before their intent, as earlier
//!   versions did, are completed with the same key by the next checkout or the
//!   reconciliation job.)
//! - [`Sales::apply_provider_event`] applies a verified webhook in one transaction,
//!   once per provider event id. A succeeded payment books its hold; if the hold has
//!   lapsed, the late-payment resolver re-takes its seats when they are still free, and
//!   otherwise refunds the payment in full and flags it for the organizer.
//! - [`Sales::sync_payments`] asks the provider about a hold's pending attempts and
//!   applies the answers through the same code, for a fan back from the payment page
//!   before the webhook, and for reconciliation.
//! - Refunds are recorded first, then executed ([`Sales::execute_refund`]) with the
//!   refund's id as the provider's idempotency key, and retried until confirmed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{Error, Result, What};
use crate::model::{AttentionPayment, AttentionReason, Price};
use crate::outbox::{self, Message};
use crate::payment_provider::{Intent, IntentStatus, NewIntent, NewRefund, ProviderEvent, ProviderEventKind};
use crate::payment_provider::{Refund, RefundStatus as ProviderRefundStatus};
use crate::scope::FanScope;
use crate::states::{HoldStatus, PaymentResolution, PaymentStatus, RefundReason, SectionKind};
use crate::store::inventory::{self, Taker, Written};
use crate::store::payments::{self, HoldState, PaymentRow};
use crate::store::{events, holds, refunds};
use crate::Sales;

/// Metadata keys our intents and refunds carry, so a webhook finds its row even before
/// the intent's id was recorded.
const PAYMENT_ID: &str = "payment_id";
const REFUND_ID: &str = "refund_id";

/// A payment attempt as the fan sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    pub payment_id: Uuid,
    pub hold_id: Uuid,
    pub status: PaymentStatus,
    pub amount: Price,
    /// For the provider's payment form (Stripe.js, or the sandbox's page).
    pub client_secret: Option<String>,
    pub intent_id: Option<String>,
    /// The provider's reason for the last decline.
    pub failure_code: Option<String>,
    /// The booking this payment paid for, once it has.
    pub booking_id: Option<Uuid>,
    pub resolution: Option<PaymentResolution>,
    /// Until when the hold's seats wait for this payment.
    pub hold_expires_at: DateTime<Utc>,
    pub hold_status: HoldStatus,
}

/// What one reconciliation pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Attempts left unsettled past the window, asked about (or given their intent).
    pub attempts_checked: u64,
    /// Refunds whose retry was due, asked for again.
    pub refunds_retried: u64,
    /// Succeeded payments found without a booking or refund, and resolved.
    pub payments_resolved: u64,
    /// Bookings of cancelled events that raced the cancellation, cancelled and refunded.
    pub bookings_cancelled: u64,
}

/// What applying a provider event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The event changed something (or confirmed what we knew).
    Applied,
    /// This event id was applied before.
    AlreadyApplied,
    /// Not ours, or not a type we act on.
    Ignored,
}

impl Sales {
    /// Starts paying for the fan's hold, or resumes the attempt already live. The first
    /// checkout of a hold extends it to cover the payment window.
    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, %hold_id))]
    pub async fn checkout(&self, scope: &FanScope, hold_id: Uuid) -> Result<PaymentView> {
        let rules = self.event_rules(scope.event_id).await?;
        if rules.cancelled {
            return Err(Error::EventCancelled);
        }
        let (hold, attempts) = self.hold_and_attempts(scope, hold_id).await?;
        ensure_payable(&hold)?;
        // A payment that already succeeded is the hold's answer (no second charge); a
        // live attempt is resumed (one made before attempts were started with their
        // intent may still lack it).
        if let Some(attempt) = attempts.into_iter().find(|p| p.succeeded_at.is_some() || p.is_live()) {
            let payment = match attempt.status {
                PaymentStatus::Created => self.create_intent(attempt).await?,
                _ => attempt,
            };
            return Ok(view(payment, hold.expires_at, HoldStatus::Active));
        }
        // The intent first, keyed by the attempt's id, then the attempt with it: one write.
        // An intent whose attempt is never written (the request dropped, the hold lapsed,
        // or a concurrent checkout's attempt written first) was never shown to anyone, so
        // nobody can pay it.
        let attempt_id = Uuid::now_v7();
        let intent = self
            .provider
            .create_intent(new_intent(attempt_id, scope.event_id, hold_id, hold.total_minor, &rules.currency))
            .await?;
        let (extension, max_lifetime) = (self.settings.checkout_extension.as_secs_f64(), self.hold_max_lifetime_secs());
        let (fan, amount_minor, currency) = (scope.clone(), hold.total_minor, rules.currency.clone());
        let started = self
            .db
            .write(move |conn| {
                Box::pin(async move {
                    let attempt = payments::NewAttempt {
                        id: attempt_id,
                        amount_minor,
                        currency: &currency,
                        intent_id: &intent.id,
                        client_secret: intent.client_secret.as_deref(),
                    };
                    payments::start_checkout(conn, &fan, hold_id, attempt, extension, max_lifetime).await
                })
            })
            .await?
            .ok_or(Error::NotFound(What::Hold))?;
        ensure_payable(&started.hold)?;
        let payment = match started.payment {
            Some(payment) => payment,
            // Another checkout of this hold started its attempt while this one waited for
            // the hold: that attempt is the fan's.
            None => shown_attempt(self.hold_and_attempts(scope, hold_id).await?.1)?,
        };
        Ok(view(payment, started.hold.expires_at, HoldStatus::Active))
    }

    /// Asks the provider for the attempt's intent (again, with the same key: it answers
    /// with the intent it created the first time) and records it.
    async fn create_intent(&self, mut payment: PaymentRow) -> Result<PaymentRow> {
        let intent = self
            .provider
            .create_intent(new_intent(
                payment.id,
                payment.event_id,
                payment.hold_id,
                payment.amount_minor,
                &payment.currency,
            ))
            .await?;
        let (payment_id, intent_id, secret) = (payment.id, intent.id.clone(), intent.client_secret.clone());
        self.db
            .write(move |conn| {
                Box::pin(async move { payments::record_intent(conn, payment_id, &intent_id, secret.as_deref()).await })
            })
            .await?;
        payment.status = PaymentStatus::Pending;
        payment.intent_id = Some(intent.id);
        payment.client_secret = intent.client_secret;
        Ok(payment)
    }

    /// The hold's latest payment attempt, after asking the provider about any still
    /// pending (so a fan back from the payment page sees the outcome before the webhook).
    /// Once the webhook has been applied, this is one read and no call to the provider.
    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, %hold_id))]
    pub async fn payment_status(&self, scope: &FanScope, hold_id: Uuid) -> Result<PaymentView> {
        let (hold, attempts) = self.hold_and_attempts(scope, hold_id).await?;
        let (hold, attempts) = match self.ask_provider_about(&attempts).await? {
            true => self.hold_and_attempts(scope, hold_id).await?,
            false => (hold, attempts),
        };
        let shown = shown_attempt(attempts)?;
        let status = match hold.status {
            HoldStatus::Active if hold.expired => HoldStatus::Expired,
            status => status,
        };
        Ok(view(shown, hold.expires_at, status))
    }

    /// Asks the provider about the hold's attempts still pending and applies what it
    /// says, as a webhook would. A provider that cannot be reached leaves them pending.
    pub async fn sync_payments(&self, scope: &FanScope, hold_id: Uuid) -> Result<()> {
        let (_, attempts) = self.hold_and_attempts(scope, hold_id).await?;
        self.ask_provider_about(&attempts).await?;
        Ok(())
    }

    /// The fan's hold and its payment attempts, newest first.
    async fn hold_and_attempts(&self, scope: &FanScope, hold_id: Uuid) -> Result<(HoldState, Vec<PaymentRow>)> {
        let fan = scope.clone();
        self.db
            .read(move |conn| {
                Box::pin(
                    async move { payments::of_hold(conn, &fan, hold_id).await?.ok_or(Error::NotFound(What::Hold)) },
                )
            })
            .await
    }

    /// Asks the provider about each pending attempt not asked about within the check
    /// interval, and applies what changed. Returns whether anything was applied.
    async fn ask_provider_about(&self, attempts: &[PaymentRow]) -> Result<bool> {
        let mut applied = false;
        for payment in attempts.iter().filter(|p| p.status == PaymentStatus::Pending) {
            let Some(intent_id) = payment.intent_id.as_deref() else { continue };
            if self.provider_checks.check(&payment.id).is_err() {
                // Asked a moment ago: the webhook, or a later question, brings the news.
                continue;
            }
            match self.provider.retrieve_intent(intent_id).await {
                Ok(intent) if changes_a_payment(&intent) => {
                    self.apply_intent_now(payment.id, intent).await?;
                    applied = true;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, payment_id = %payment.id, "could not ask the provider"),
            }
        }
        Ok(applied)
    }

    /// Applies what the provider says of an intent, outside any webhook.
    async fn apply_intent_now(&self, payment_id: Uuid, intent: Intent) -> Result<()> {
        let refund = self
            .db
            .transaction(move |tx| {
                Box::pin(async move {
                    let Some(payment) = payments::lock(tx, Some(payment_id), &intent.id).await? else {
                        return Ok(None);
                    };
                    apply_intent(tx, payment, &intent).await
                })
            })
            .await?;
        if let Some(refund_id) = refund {
            self.execute_refund(refund_id).await?;
        }
        Ok(())
    }

    /// Applies a verified provider webhook, once per provider event id, in one
    /// transaction. A refund it starts is then executed at once (and retried by the
    /// reconciliation job if the provider cannot be reached now).
    #[tracing::instrument(skip_all, fields(provider_event = %event.id))]
    pub async fn apply_provider_event(&self, event: ProviderEvent) -> Result<Applied> {
        if let ProviderEventKind::Intent(intent) = &event.kind {
            if !changes_a_payment(intent) {
                // `payment_intent.created`, `.processing`, `.requires_action`: nothing to
                // apply and nothing to deduplicate, so no transaction is spent on them.
                return Ok(Applied::Ignored);
            }
        }
        let (applied, refund) = self
            .db
            .transaction(move |tx| {
                Box::pin(async move {
                    match &event.kind {
                        ProviderEventKind::Intent(intent) => {
                            let payment_hint = metadata_id(&intent.metadata, PAYMENT_ID);
                            match payments::claim_intent_event(tx, &event.id, payment_hint, &intent.id).await? {
                                (false, _) => Ok::<_, Error>((Applied::AlreadyApplied, None)),
                                (true, None) => Ok((Applied::Ignored, None)),
                                (true, Some(payment)) => {
                                    Ok((Applied::Applied, apply_intent(tx, payment, intent).await?))
                                }
                            }
                        }
                        ProviderEventKind::Refund(refund) => {
                            if !payments::claim_provider_event(tx, &event.id, "refund", None).await? {
                                return Ok((Applied::AlreadyApplied, None));
                            }
                            Ok((apply_refund(tx, refund).await?, None))
                        }
                        ProviderEventKind::Other(kind) => {
                            if !payments::claim_provider_event(tx, &event.id, kind, None).await? {
                                return Ok((Applied::AlreadyApplied, None));
                            }
                            Ok((Applied::Ignored, None))
                        }
                    }
                })
            })
            .await?;
        if let Some(refund_id) = refund {
            if let Err(e) = self.execute_refund(refund_id).await {
                tracing::warn!(error = %e, %refund_id, "refund not executed yet; the reconciliation job retries it");
            }
        }
        Ok(applied)
    }

    /// Asks the provider to refund, with the refund's id as the idempotency key, and
    /// records the answer. A provider that cannot be reached, or refuses, leaves the
    /// refund pending, to be retried after the backoff. Once the provider has the
    /// refund (its id is recorded) it is asked what became of it instead: creating it
    /// again with the same key would only replay the first answer, and a refund pending
    /// at the provider settles later (`refund.updated`, or this check after the backoff
    /// when that webhook is lost).
    #[tracing::instrument(skip(self))]
    pub async fn execute_refund(&self, refund_id: Uuid) -> Result<()> {
        let refund = self
            .db
            .read(move |conn| Box::pin(async move { refunds::find(conn, refund_id).await }))
            .await?
            .ok_or(Error::NotFound(What::Refund))?;
        if refund.status != crate::states::RefundStatus::Pending {
            return Ok(());
        }
        let Some(intent_id) = refund.intent_id.clone() else { return Ok(()) };
        let answer = match &refund.provider_refund_id {
            Some(provider_refund_id) => self.provider.retrieve_refund(provider_refund_id).await,
            None => {
                self.provider
                    .create_refund(NewRefund {
                        payment_intent: intent_id,
                        amount_minor: refund.amount_minor,
                        idempotency_key: refund.id.to_string(),
                        metadata: BTreeMap::from([
                            (REFUND_ID.to_owned(), refund.id.to_string()),
                            (PAYMENT_ID.to_owned(), refund.payment_id.to_string()),
                        ]),
                    })
                    .await
            }
        };
        let backoff = self.refund_backoff(refund.attempts);
        self.db
            .transaction(move |tx| {
                Box::pin(async move {
                    match answer {
                        Ok(provider_refund) => {
                            apply_refund_for(tx, refund_id, &provider_refund).await?;
                            if let ProviderRefundStatus::Pending | ProviderRefundStatus::RequiresAction =
                                provider_refund.status
                            {
                                let status = format!("{:?} at the provider", provider_refund.status);
                                refunds::retry_later(tx, refund_id, &status, backoff).await?;
                            }
                        }
                        Err(e) => refunds::retry_later(tx, refund_id, &e.to_string(), backoff).await?,
                    }
                    Ok(())
                })
            })
            .await
    }

    /// The reconciliation pass (run by the scheduler, safe on several replicas):
    /// - attempts `created` or `pending` for longer than `unsettled_after` are asked
    ///   about at the provider, and what it says is applied as a webhook would be (a lost
    ///   webhook books the fan all the same); an attempt whose hold has lapsed and that
    ///   was never paid is canceled, so the set of attempts to watch stays bounded (a
    ///   payment arriving later still applies, as a late payment);
    /// - refunds whose retry is due are asked for again;
    /// - succeeded payments without a booking or refund are resolved;
    /// - cancelled events with bookings or holds left (orders that raced the
    ///   cancellation) are wound down.
    ///
    /// At most `batch` of each per pass.
    #[tracing::instrument(skip(self))]
    pub async fn reconcile(&self, unsettled_after: std::time::Duration, batch: i64) -> Result<Reconciled> {
        let mut done = Reconciled::default();
        let after = unsettled_after.as_secs_f64();
        let claimed = self
            .db
            .write(move |conn| Box::pin(async move { payments::claim_unsettled(conn, after, batch).await }))
            .await?;
        for payment in claimed {
            done.attempts_checked += 1;
            if let Err(e) = self.settle(payment).await {
                tracing::warn!(error = %e, "could not settle a payment attempt; retrying at the next pass");
            }
        }
        let refunds =
            self.db.write(move |conn| Box::pin(async move { refunds::claim_due(conn, batch, 60.0).await })).await?;
        for refund_id in refunds {
            done.refunds_retried += 1;
            if let Err(e) = self.execute_refund(refund_id).await {
                tracing::warn!(error = %e, %refund_id, "refund retry failed; retrying after its backoff");
            }
        }
        let cancelled_events = self
            .db
            .read(move |conn| Box::pin(async move { events::cancelled_with_sales_left(conn, 10).await }))
            .await?;
        for event_id in cancelled_events {
            done.bookings_cancelled += self.wind_down(event_id).await?.bookings_cancelled;
        }
        for _ in 0..batch {
            let resolved = self
                .db
                .transaction(move |tx| {
                    Box::pin(async move {
                        let Some(payment) = payments::lock_unresolved(tx).await? else { return Ok(None) };
                        Ok::<_, Error>(Some(resolve_success(tx, &payment).await?))
                    })
                })
                .await?;
            match resolved {
                None => break,
                Some(refund) => {
                    done.payments_resolved += 1;
                    if let Some(refund_id) = refund {
                        if let Err(e) = self.execute_refund(refund_id).await {
                            tracing::warn!(error = %e, %refund_id, "refund not executed yet; retried later");
                        }
                    }
                }
            }
        }
        Ok(done)
    }

    /// One unsettled attempt: give it its intent, or ask the provider what became of it.
    async fn settle(&self, payment: PaymentRow) -> Result<()> {
        let hold_id = payment.hold_id;
        let live = self.db.read(move |conn| Box::pin(async move { holds::is_live(conn, hold_id).await })).await?;
        let intent = match (&payment.intent_id, payment.status) {
            (_, PaymentStatus::Created) if live => {
                self.create_intent(payment).await?;
                return Ok(());
            }
            (Some(intent_id), _) => Some(self.provider.retrieve_intent(intent_id).await?),
            (None, _) => None,
        };
        let payment_id = payment.id;
        match intent {
            Some(intent) if matches!(intent.status, IntentStatus::Succeeded | IntentStatus::Canceled) || live => {
                self.apply_intent_now(payment_id, intent).await
            }
            Some(intent) if intent.status == IntentStatus::Processing => Ok(()),
            _ => {
                self.db
                    .write(move |conn| Box::pin(async move { payments::mark_canceled(conn, payment_id).await }))
                    .await
            }
        }
    }

    /// Late payments refunded because their seats were gone, newest first.
    #[tracing::instrument(skip(self))]
    pub async fn payments_needing_attention(&self, event_id: Option<Uuid>) -> Result<Vec<AttentionPayment>> {
        let rows = self
            .db
            .read(move |conn| Box::pin(async move { payments::needing_attention(conn, event_id, 500).await }))
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.payment, row.refund_failure))
            .map(|(p, refund_failure)| AttentionPayment {
                reason: match refund_failure {
                    Some(_) => AttentionReason::RefundFailed,
                    None => AttentionReason::LatePaymentRefunded,
                },
                refund_failure,
                payment_id: p.id,
                event_id: p.event_id,
                hold_id: p.hold_id,
                fan_id: p.fan_id.clone(),
                amount: price(&p, p.amount_minor),
                refunded: price(&p, p.refunded_minor),
                status: p.status,
                resolution: p.resolution,
                created_at: p.created_at,
                succeeded_at: p.succeeded_at,
            })
            .collect())
    }

    /// How long to wait before retrying a refund that failed `attempts` times: doubling
    /// from the configured first wait, up to the configured longest.
    fn refund_backoff(&self, attempts: i32) -> f64 {
        let first = self.settings.refund_retry_first.as_secs_f64();
        let longest = self.settings.refund_retry_max.as_secs_f64();
        (first * 2f64.powi(attempts.clamp(0, 30))).min(longest)
    }
}

/// Whether [`apply_intent`] would change a payment because of this intent: a success,
/// a cancellation, or a decline.
fn changes_a_payment(intent: &Intent) -> bool {
    match intent.status {
        IntentStatus::Succeeded | IntentStatus::Canceled => true,
        IntentStatus::RequiresPaymentMethod => intent.last_payment_error.is_some(),
        _ => false,
    }
}

/// Applies the provider's view of an intent to its (locked) payment. Returns a refund
/// to execute after the commit, if applying it started one.
async fn apply_intent(tx: &mut PgConnection, payment: PaymentRow, intent: &Intent) -> Result<Option<Uuid>> {
    if intent.amount_minor != payment.amount_minor || !intent.currency.eq_ignore_ascii_case(&payment.currency) {
        tracing::error!(payment_id = %payment.id, intent = %intent.id, "intent amount differs from the payment's; ignored");
        return Ok(None);
    }
    match intent.status {
        IntentStatus::Succeeded => {
            if payment.succeeded_at.is_some() {
                // Applied before (the payment is locked, so this is certain): a redelivery.
                return Ok(None);
            }
            let message = Message::PaymentSucceeded(outbox::PaymentSucceeded {
                event_id: payment.event_id,
                payment_id: payment.id,
                hold_id: payment.hold_id,
                fan_id: payment.fan_id.clone(),
                intent_id: intent.id.clone(),
                amount: price(&payment, payment.amount_minor),
            });
            payments::mark_succeeded(tx, payment.id, &intent.id, message).await?;
            resolve_success(tx, &payment).await
        }
        IntentStatus::Canceled => {
            payments::mark_canceled(tx, payment.id).await?;
            Ok(None)
        }
        IntentStatus::RequiresPaymentMethod if changes_a_payment(intent) => {
            payments::mark_failed(tx, payment.id, intent.last_payment_error.as_deref()).await?;
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// A payment has just succeeded: book its hold, or re-take its seats if the hold has
/// lapsed, or else refund it. Returns the refund to execute, if one was started.
pub(crate) async fn resolve_success(tx: &mut PgConnection, payment: &PaymentRow) -> Result<Option<Uuid>> {
    let scope = FanScope { event_id: payment.event_id, fan_id: payment.fan_id.clone() };
    let paid = holds::lock_with_seats(tx, &scope, payment.hold_id).await?.ok_or(Error::NotFound(What::Hold))?;
    if paid.event_cancelled {
        // Nothing is sold for a cancelled event, however late the money comes.
        return refund_unbooked(tx, payment, RefundReason::EventCancelled, false).await;
    }
    let (hold, held) = (paid.hold, paid.seat_ids);
    if hold.status == HoldStatus::Confirmed {
        // Another attempt paid for this hold first: this money is for nothing.
        return refund_unbooked(tx, payment, RefundReason::DuplicatePayment, false).await;
    }
    let live = hold.status == HoldStatus::Active && !hold.expired;
    if !live {
        // Booking a lapsed hold is a new order for the fan's limit (its places stopped
        // counting when it lapsed), and the database would refuse one over it by
        // aborting this transaction. Ask first, seats locked before the fan's lock as
        // every order takes them; over the limit, the money goes back as for seats gone.
        inventory::lock_seats(tx, &held).await?;
        let allowance = events::fan_allowance(tx, payment.event_id, &payment.fan_id).await?;
        if allowance.is_some_and(|remaining| (remaining as usize) < held.len()) {
            return refund_unbooked(tx, payment, RefundReason::LatePayment, true).await;
        }
    }
    let booking_id = Uuid::now_v7();
    let mut written =
        crate::store::bookings::write_held(tx, &scope, booking_id, hold.id, &held, Some(payment.id)).await?;
    if let (Written::Refused(_), Some(section_id)) = (&written, general_admission_section(tx, &held).await?) {
        // General admission: any places of the same section are as good, at the same price.
        if let Ok(places) = inventory::take_next(tx, section_id, held.len() as u32, Taker::Order).await {
            let ids: Vec<i64> = places.iter().map(|p| p.seat_id).collect();
            written =
                crate::store::bookings::write_held(tx, &scope, booking_id, hold.id, &ids, Some(payment.id)).await?;
        }
    }
    match written {
        Written::Done { .. } => {
            let resolution = if live { PaymentResolution::Booked } else { PaymentResolution::LateBooked };
            payments::resolve_booked(tx, payment.id, hold.id, resolution, booking_id).await?;
            Ok(None)
        }
        Written::Refused(_) => refund_unbooked(tx, payment, RefundReason::LatePayment, true).await,
    }
}

/// The section of `seats` if they are all general-admission places of one section.
async fn general_admission_section(tx: &mut PgConnection, seats: &[i64]) -> Result<Option<Uuid>> {
    let sections: Vec<(Uuid, SectionKind)> = sqlx::query_as(
        "SELECT DISTINCT sec.id, sec.kind FROM seats s JOIN sections sec ON sec.id = s.section_id WHERE s.id = ANY($1)",
    )
    .bind(seats)
    .fetch_all(tx)
    .await?;
    Ok(match sections.as_slice() {
        [(id, SectionKind::GeneralAdmission)] => Some(*id),
        _ => None,
    })
}

/// Refunds a succeeded payment that bought nothing, in full.
async fn refund_unbooked(
    tx: &mut PgConnection,
    payment: &PaymentRow,
    reason: RefundReason,
    needs_attention: bool,
) -> Result<Option<Uuid>> {
    let refund_id = refunds::create(tx, Uuid::now_v7(), payment.id, None, reason, payment.amount_minor).await?;
    payments::resolve(tx, payment.id, PaymentResolution::Refunded, None, needs_attention).await?;
    if let (Some(refund_id), true) = (refund_id, needs_attention) {
        outbox_enqueue(
            tx,
            Message::LatePaymentNeedsAttention(outbox::LatePaymentNeedsAttention {
                event_id: payment.event_id,
                payment_id: payment.id,
                hold_id: payment.hold_id,
                fan_id: payment.fan_id.clone(),
                amount: price(payment, payment.amount_minor),
                refund_id,
                reason: "the hold had lapsed and its seats were taken: refunded in full".into(),
            }),
        )
        .await?;
    }
    Ok(refund_id)
}

/// Applies the provider's view of a refund reported by a webhook.
async fn apply_refund(tx: &mut PgConnection, refund: &Refund) -> Result<Applied> {
    let Some(row) = refunds::lock(tx, metadata_id(&refund.metadata, REFUND_ID), &refund.id).await? else {
        return Ok(Applied::Ignored);
    };
    apply_refund_for(tx, row.id, refund).await?;
    Ok(Applied::Applied)
}

/// Records what the provider says of our refund `refund_id`.
async fn apply_refund_for(tx: &mut PgConnection, refund_id: Uuid, refund: &Refund) -> Result<()> {
    match refund.status {
        ProviderRefundStatus::Succeeded => {
            if refunds::mark_succeeded(tx, refund_id, &refund.id).await? {
                let refunded = refund_message(tx, refund_id).await?;
                outbox_enqueue(tx, Message::PaymentRefunded(refunded)).await?;
            }
        }
        ProviderRefundStatus::Failed | ProviderRefundStatus::Canceled => {
            let status = if refund.status == ProviderRefundStatus::Failed { "failed" } else { "canceled" };
            let failure = format!("{status}: {}", refund.failure_reason.as_deref().unwrap_or("no reason given"));
            if refunds::mark_failed(tx, refund_id, &refund.id, &failure).await? {
                let refund = refund_message(tx, refund_id).await?;
                tracing::warn!(
                    %refund_id, payment_id = %refund.payment_id, %failure,
                    "a refund failed: the organizer must return the money another way"
                );
                outbox_enqueue(tx, Message::RefundFailed(outbox::RefundFailed { refund, failure })).await?;
            }
        }
        ProviderRefundStatus::Pending | ProviderRefundStatus::RequiresAction => {
            refunds::record_provider_id(tx, refund_id, &refund.id).await?
        }
    }
    Ok(())
}

/// The refund `refund_id` as its outbox messages name it.
async fn refund_message(tx: &mut PgConnection, refund_id: Uuid) -> Result<outbox::PaymentRefunded> {
    let row = refunds::find(tx, refund_id).await?.ok_or(Error::NotFound(What::Refund))?;
    Ok(outbox::PaymentRefunded {
        event_id: row.event_id,
        refund_id,
        payment_id: row.payment_id,
        booking_id: row.booking_id,
        reason: row.reason,
        amount: Price { amount_minor: row.amount_minor, currency: row.currency },
    })
}

async fn outbox_enqueue(tx: &mut PgConnection, message: Message) -> Result<()> {
    crate::store::outbox::enqueue(tx, &[message]).await
}

fn metadata_id(metadata: &BTreeMap<String, String>, key: &str) -> Option<Uuid> {
    metadata.get(key).and_then(|id| Uuid::parse_str(id).ok())
}

fn price(payment: &PaymentRow, amount_minor: i64) -> Price {
    Price { amount_minor, currency: payment.currency.clone() }
}

/// Refuses a checkout of a hold that is not active, has lapsed, or costs nothing.
fn ensure_payable(hold: &HoldState) -> Result<()> {
    match hold.status {
        HoldStatus::Confirmed => return Err(Error::HoldNotActive(HoldStatus::Confirmed)),
        HoldStatus::Released => return Err(Error::HoldNotActive(HoldStatus::Released)),
        HoldStatus::Expired => return Err(Error::HoldExpired),
        HoldStatus::Active if hold.expired => return Err(Error::HoldExpired),
        HoldStatus::Active => {}
    }
    if hold.total_minor == 0 {
        return Err(crate::domain::Invalid::new("nothing_to_pay", "this hold costs nothing: confirm it instead").into());
    }
    Ok(())
}

/// The intent of the attempt `payment_id`, keyed by it (so asking again answers with the
/// same intent), its metadata naming our rows.
fn new_intent(payment_id: Uuid, event_id: Uuid, hold_id: Uuid, amount_minor: i64, currency: &str) -> NewIntent {
    NewIntent {
        amount_minor,
        currency: currency.to_owned(),
        idempotency_key: payment_id.to_string(),
        description: format!("boxoffice hold {hold_id}"),
        metadata: BTreeMap::from([
            (PAYMENT_ID.to_owned(), payment_id.to_string()),
            ("hold_id".to_owned(), hold_id.to_string()),
            ("event_id".to_owned(), event_id.to_string()),
        ]),
    }
}

/// The attempt a fan is shown: the one that paid, if one did; else the newest.
fn shown_attempt(attempts: Vec<PaymentRow>) -> Result<PaymentRow> {
    let paid = attempts.iter().position(|p| p.succeeded_at.is_some());
    attempts.into_iter().nth(paid.unwrap_or(0)).ok_or(Error::NotFound(What::Payment))
}

fn view(payment: PaymentRow, hold_expires_at: DateTime<Utc>, hold_status: HoldStatus) -> PaymentView {
    PaymentView {
        payment_id: payment.id,
        hold_id: payment.hold_id,
        status: payment.status,
        amount: Price { amount_minor: payment.amount_minor, currency: payment.currency },
        client_secret: payment.client_secret,
        intent_id: payment.intent_id,
        failure_code: payment.failure_code,
        booking_id: payment.booking_id,
        resolution: payment.resolution,
        hold_expires_at,
        hold_status,
    }
}
