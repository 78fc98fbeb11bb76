//! Checkout: the fan starts paying for a hold and follows the payment; the provider's
//! webhooks report verdicts; the organizer sees late payments that needed a refund.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use sales::checkout::{Applied, PaymentView};
use sales::model::AttentionPayment;
use service_kit::extract::{Json, Path, Query};
use service_kit::openapi::{AdminKeyRefused, RateLimited};
use service_kit::ErrorBody;

use crate::auth::{Admin, HoldFan, HoldFanRefused};
use crate::error::{Error, Result};
use crate::metrics;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkout))
        .routes(routes!(payment))
        .routes(routes!(webhook))
        .routes(routes!(needing_attention))
}

/// A payment attempt, and where the fan pays it.
#[derive(Serialize, ToSchema)]
struct CheckoutAnswer {
    #[serde(flatten)]
    payment: PaymentView,
    /// The provider's hosted payment page for this attempt (the sandbox's locally); none
    /// with a provider whose form the fan app embeds (Stripe.js and `client_secret`).
    payment_page_url: Option<String>,
}

/// Starts paying for a hold, or resumes the attempt already live (two checkouts at once
/// start one attempt). The first checkout extends the hold to cover the payment window.
/// After a decline, checking out again starts a new attempt while the hold lives.
#[utoipa::path(
    post,
    path = "/v1/events/{event_id}/holds/{hold_id}/checkout",
    operation_id = "checkout_hold",
    tag = "checkout",
    params(("event_id" = Uuid, Path), ("hold_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The live payment attempt: pay it at `payment_page_url` or with `client_secret`", body = CheckoutAnswer),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody),
        (status = 404, description = "`hold_not_found`", body = ErrorBody),
        (status = 409, description = "`hold_not_active`: confirmed or released", body = ErrorBody),
        (status = 410, description = "`hold_expired`", body = ErrorBody),
        (status = 422, description = "`nothing_to_pay`: a free hold (confirm it)", body = ErrorBody),
        (status = 502, description = "`payment_provider_refused`", body = ErrorBody),
        (status = 503, description = "`payment_provider_unavailable`, `unavailable` or `outcome_unknown` (checking out again is safe)", body = ErrorBody),
        HoldFanRefused, RateLimited,
    ),
    security(("access_token" = []), ("offer_link" = [])),
)]
#[tracing::instrument(skip_all, fields(event_id = %scope.event_id, %hold_id))]
async fn checkout(
    State(state): State<AppState>,
    HoldFan(scope): HoldFan,
    Path((_, hold_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<CheckoutAnswer>> {
    let result = state.sales.checkout(&scope, hold_id).await.map_err(Error::from);
    metrics::order_outcome("checkout", &result);
    Ok(Json(answer(&state, result?)))
}

/// The hold's payment: the attempt that paid, else the newest. A pending attempt is
/// first checked with the provider, so a fan back from the payment page sees the
/// outcome (and the booking) even before the provider's webhook arrives.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/holds/{hold_id}/payment",
    operation_id = "show_payment",
    tag = "checkout",
    params(("event_id" = Uuid, Path), ("hold_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The payment attempt", body = CheckoutAnswer),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody),
        (status = 404, description = "`hold_not_found`, or `payment_not_found`: no checkout yet", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
        HoldFanRefused, RateLimited,
    ),
    security(("access_token" = []), ("offer_link" = [])),
)]
#[tracing::instrument(skip_all, fields(event_id = %scope.event_id, %hold_id))]
async fn payment(
    State(state): State<AppState>,
    HoldFan(scope): HoldFan,
    Path((_, hold_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<CheckoutAnswer>> {
    let payment = state.sales.payment_status(&scope, hold_id).await?;
    Ok(Json(answer(&state, payment)))
}

fn answer(state: &AppState, payment: PaymentView) -> CheckoutAnswer {
    let page = match (&payment.intent_id, &payment.client_secret, payment.status) {
        (Some(intent), Some(secret), sales::states::PaymentStatus::Pending | sales::states::PaymentStatus::Failed) => {
            state.payments.payment_page(intent, secret)
        }
        _ => None,
    };
    CheckoutAnswer { payment, payment_page_url: page }
}

#[derive(Serialize, ToSchema)]
struct WebhookAnswer {
    received: bool,
    /// `applied`, `already_applied` or `ignored`.
    outcome: &'static str,
}

/// A Stripe event as the webhook reads it: what it needs of one (Stripe sends more).
struct ProviderEventBody;

impl utoipa::PartialSchema for ProviderEventBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::{ObjectBuilder, Type};
        let text = || ObjectBuilder::new().schema_type(Type::String);
        let object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("A PaymentIntent for `payment_intent.*`, a Refund for `refund.*`"));
        let data = ObjectBuilder::new().schema_type(Type::Object).property("object", object).required("object");
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("id", text())
            .required("id")
            .property(
                "type",
                text().description(Some(
                    "Types other than `payment_intent.*` and `refund.*` are acknowledged and ignored",
                )),
            )
            .required("type")
            .property("data", data)
            .required("data")
            .into()
    }
}

impl utoipa::ToSchema for ProviderEventBody {}

/// The payment provider's webhook (Stripe's format). The `Stripe-Signature` header is
/// verified against every configured secret, in constant time, within the tolerance;
/// each provider event is applied once. Every final business outcome, including "seen
/// before" and "refunded because the seats were gone", answers 200; only a failure a
/// retry can cure (the database unavailable) answers 5xx.
#[utoipa::path(
    post,
    path = "/v1/payments/webhooks",
    operation_id = "payment_webhook",
    tag = "checkout",
    params(("Stripe-Signature" = String, Header, description = "`t=<unix seconds>,v1=<hex HMAC-SHA256>`")),
    request_body(content = ProviderEventBody, content_type = "application/json", description = "A Stripe event, as sent"),
    responses(
        (status = 200, description = "Applied, applied before, or not ours", body = WebhookAnswer),
        (status = 400, description = "`invalid_signature` (missing, malformed, stale, future or wrong) or `invalid_event`", body = ErrorBody),
        (status = 422, description = "`invalid_text`: the event carries a text PostgreSQL cannot store (a NUL); not applied", body = ErrorBody),
        (status = 503, description = "`unavailable`: the provider retries", body = ErrorBody),
        RateLimited,
    ),
)]
#[tracing::instrument(skip_all)]
async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Json<WebhookAnswer>> {
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    if let Err(refused) = stripe_client::verify_signature(
        &body,
        signature,
        &state.payments.webhook_secrets,
        std::time::Duration::from_secs(state.payments.webhook_tolerance_secs),
        now,
    ) {
        ::metrics::counter!(metrics::WEBHOOK_SIGNATURE_FAILURES).increment(1);
        return Err(Error::InvalidSignature(refused.to_string()));
    }
    let event = stripe_client::parse_event(&body).map_err(|e| Error::InvalidEvent(e.to_string()))?;
    let outcome = match state.sales.apply_provider_event(event).await? {
        Applied::Applied => "applied",
        Applied::AlreadyApplied => "already_applied",
        Applied::Ignored => "ignored",
    };
    ::metrics::counter!(metrics::WEBHOOKS_APPLIED, "outcome" => outcome).increment(1);
    Ok(Json(WebhookAnswer { received: true, outcome }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AttentionQuery {
    /// Only `needs_attention` for now: late payments refunded because their seats were
    /// gone, and refunds the provider failed.
    #[param(pattern = "^needs_attention$")]
    state: String,
    event_id: Option<Uuid>,
}

/// Payments the organizer should look at: late payments that were refunded in full
/// because their hold had lapsed and its seats were sold to someone else.
#[utoipa::path(
    get,
    path = "/v1/admin/payments",
    operation_id = "payments_needing_attention",
    tag = "organizer",
    params(AttentionQuery),
    responses(
        (status = 200, description = "Newest first, at most 500", body = [AttentionPayment]),
        (status = 400, description = "`bad_request`: an unreadable query", body = ErrorBody),
        (status = 422, description = "`unknown_state`: a state other than `needs_attention`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip_all)]
async fn needing_attention(
    _: Admin,
    State(state): State<AppState>,
    Query(query): Query<AttentionQuery>,
) -> Result<Json<Vec<AttentionPayment>>> {
    if query.state != "needs_attention" {
        return Err(service_kit::Invalid::new("unknown_state", "state must be needs_attention").into());
    }
    Ok(Json(state.sales.payments_needing_attention(query.event_id).await?))
}
