//! The hosted payment page: `GET /pay/{intent}?client_secret=…&return_url=…` shows a card
//! form; `POST /pay/{intent}` (form `client_secret`, `card_number`, `return_url`) pays the
//! intent with Stripe's test cards deciding the outcome. It answers HTML, or JSON when
//! asked with `Accept: application/json` (the intent, or Stripe's `card_error` on a
//! decline). A browser that paid with a `return_url` is sent back there as Stripe's
//! redirect flows send it: `303` to the URL with `payment_intent` and `redirect_status`
//! added to its query.
//!
//! The client secret is the only credential, as with Stripe.js: no API key here, and no
//! API faults either (they are for API calls).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxumState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use reqwest::Url;
use serde_json::{json, Value};

use crate::api::ApiError;
use crate::state::{self, IntentStatus, PaymentError, PaymentIntent, RequestInfo};
use crate::Shared;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new().route("/pay/{id}", get(show).post(pay))
}

/// What a card number does, as Stripe's test cards do; any other number is declined.
pub fn card_outcome(number: &str) -> Result<(), PaymentError> {
    let digits: String = number.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    let decline = |code, decline_code, message| Err(PaymentError { kind: "card_error", code, decline_code, message });
    match digits.as_str() {
        "4242424242424242" | "4000056655665556" | "5555555555554444" => Ok(()),
        "4000000000009995" => decline("card_declined", Some("insufficient_funds"), "Your card has insufficient funds."),
        "4000000000009987" => decline("card_declined", Some("lost_card"), "Your card has been declined."),
        "4000000000000069" => decline("expired_card", None, "Your card has expired."),
        "4000000000000127" => decline("incorrect_cvc", None, "Your card's security code is incorrect."),
        d if d.len() < 12 || d.len() > 19 || !d.bytes().all(|b| b.is_ascii_digit()) => {
            decline("incorrect_number", None, "Your card number is incorrect.")
        }
        _ => decline("card_declined", Some("generic_decline"), "Your card was declined."),
    }
}

async fn show(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut secret = String::new();
    let mut return_url = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "client_secret" => secret = value.into_owned(),
            "return_url" => return_url = Some(value.into_owned()),
            _ => {}
        }
    }
    let return_url = match parse_return_url(return_url) {
        Ok(url) => url,
        Err(error) => return refuse(false, error),
    };
    let state = shared.lock();
    let Some(intent) = state.intents.get(&id).filter(|i| constant_time_eq(&i.client_secret, &secret)) else {
        return page(StatusCode::NOT_FOUND, "Payment not found", "<p>This payment link is not valid.</p>");
    };
    let body = match intent.status {
        IntentStatus::Succeeded => format!(
            "<p role=\"status\">This payment has already succeeded.</p>{}",
            back_link(return_url.as_ref(), &intent.id, "succeeded", "Back to the shop")
        ),
        IntentStatus::Canceled => format!(
            "<p role=\"status\">This payment was canceled.</p>{}",
            back_link(return_url.as_ref(), &intent.id, "failed", "Back to the shop")
        ),
        IntentStatus::RequiresPaymentMethod => {
            let error = intent.last_payment_error.as_ref().map(|e| e.message);
            card_form(intent, return_url.as_ref(), error)
        }
    };
    page(StatusCode::OK, &format!("Pay {}", amount(intent)), &body)
}

/// The card form, after the last decline's message if any; a fan who came with a
/// `return_url` may also go back without paying (`redirect_status=failed`, as Stripe says
/// of a payment that did not succeed).
fn card_form(intent: &PaymentIntent, return_url: Option<&Url>, error: Option<&str>) -> String {
    let error = error.map(|message| format!("<p role=\"alert\">{}</p>", escape(message))).unwrap_or_default();
    let return_field = return_url
        .map(|url| format!("<input type=\"hidden\" name=\"return_url\" value=\"{}\">", escape(url.as_str())))
        .unwrap_or_default();
    format!(
        "{error}<form method=\"post\" action=\"/pay/{id}\">\
         <input type=\"hidden\" name=\"client_secret\" value=\"{secret}\">{return_field}\
         <label for=\"card_number\">Card number</label>\
         <input id=\"card_number\" name=\"card_number\" inputmode=\"numeric\" autocomplete=\"cc-number\" \
         required placeholder=\"4242 4242 4242 4242\">\
         <button type=\"submit\">Pay {amount}</button></form>\
         <p>Test cards: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is declined, \
         4000 0000 0000 9995 has insufficient funds.</p>{back}",
        id = escape(&intent.id),
        secret = escape(&intent.client_secret),
        amount = escape(&amount(intent)),
        back = back_link(return_url, &intent.id, "failed", "Back to the shop without paying"),
    )
}

fn amount(intent: &PaymentIntent) -> String {
    format!("{}.{:02} {}", intent.amount / 100, intent.amount % 100, intent.currency.to_uppercase())
}

async fn pay(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let wants_json =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/json"));
    let mut secret = String::new();
    let mut card = String::new();
    let mut return_url = None;
    for (key, value) in form_urlencoded::parse(&body) {
        match key.as_ref() {
            "client_secret" => secret = value.into_owned(),
            "card_number" => card = value.into_owned(),
            "return_url" => return_url = Some(value.into_owned()),
            _ => {}
        }
    }
    // Refused before anything is paid, so a fan is never charged without a way back.
    let return_url = match parse_return_url(return_url) {
        Ok(url) => url,
        Err(error) => return refuse(wants_json, error),
    };
    let mut state = shared.lock();
    let Some(intent) = state.intents.get_mut(&id) else {
        return refuse(wants_json, ApiError::invalid("resource_missing", format!("No such payment_intent: '{id}'")));
    };
    if !constant_time_eq(&intent.client_secret, &secret) {
        let mut e = ApiError::invalid("client_secret_mismatch", "The client secret does not match this PaymentIntent.");
        e.status = StatusCode::FORBIDDEN;
        return refuse(wants_json, e);
    }
    match intent.status {
        // Paying again changes nothing and tells no one.
        IntentStatus::Succeeded => {
            if let (false, Some(url)) = (wants_json, &return_url) {
                return redirect_back(url, &id, "succeeded");
            }
            let body = to_json(&*intent);
            return answer(
                wants_json,
                StatusCode::OK,
                body,
                "Payment succeeded",
                "<p role=\"status\">This payment has already succeeded.</p>",
            );
        }
        IntentStatus::Canceled => {
            return refuse(
                wants_json,
                ApiError::invalid(
                    "payment_intent_unexpected_state",
                    "This PaymentIntent was canceled and cannot be paid.",
                ),
            )
        }
        IntentStatus::RequiresPaymentMethod => {}
    }
    match card_outcome(&card) {
        Ok(()) => {
            intent.status = IntentStatus::Succeeded;
            intent.amount_received = intent.amount;
            intent.last_payment_error = None;
            intent.latest_charge = Some(state::new_id("ch"));
            let body = to_json(&*intent);
            state.emit("payment_intent.succeeded", body.clone(), RequestInfo::default());
            if let (false, Some(url)) = (wants_json, &return_url) {
                return redirect_back(url, &id, "succeeded");
            }
            answer(
                wants_json,
                StatusCode::OK,
                body,
                "Payment succeeded",
                "<p role=\"status\">Thank you: your payment succeeded.</p>",
            )
        }
        Err(error) => {
            let message = error.message;
            let (code, decline_code) = (error.code, error.decline_code);
            intent.last_payment_error = Some(error);
            let html = card_form(intent, return_url.as_ref(), Some(message));
            let body = to_json(&*intent);
            state.emit("payment_intent.payment_failed", body.clone(), RequestInfo::default());
            let mut error = json!({ "type": "card_error", "code": code, "message": message, "payment_intent": body });
            if let Some(decline_code) = decline_code {
                error["decline_code"] = json!(decline_code);
            }
            answer(wants_json, StatusCode::PAYMENT_REQUIRED, json!({ "error": error }), "Payment declined", &html)
        }
    }
}

/// The `return_url` a page was given, if any: an absolute http or https URL, since the
/// fan's browser is sent there (anything else, `javascript:` say, is refused).
fn parse_return_url(raw: Option<String>) -> Result<Option<Url>, ApiError> {
    let Some(raw) = raw.filter(|raw| !raw.is_empty()) else {
        return Ok(None);
    };
    let refused = |message: &str| {
        let mut error = ApiError::invalid("url_invalid", message);
        error.param = Some("return_url".to_owned());
        error
    };
    let url = Url::parse(&raw).map_err(|_| refused("The return_url is not a valid absolute URL."))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refused("The return_url must be an http or https URL."));
    }
    Ok(Some(url))
}

/// `url` with `payment_intent` and `redirect_status` added to whatever query it has.
fn return_target(url: &Url, intent_id: &str, redirect_status: &str) -> Url {
    let mut target = url.clone();
    target.query_pairs_mut().append_pair("payment_intent", intent_id).append_pair("redirect_status", redirect_status);
    target
}

fn redirect_back(url: &Url, intent_id: &str, redirect_status: &str) -> Response {
    let target = return_target(url, intent_id, redirect_status);
    (StatusCode::SEE_OTHER, [(header::LOCATION, target.as_str())], ()).into_response()
}

fn back_link(url: Option<&Url>, intent_id: &str, redirect_status: &str, text: &str) -> String {
    url.map(|url| {
        let target = return_target(url, intent_id, redirect_status);
        format!("<p><a href=\"{}\">{}</a></p>", escape(target.as_str()), escape(text))
    })
    .unwrap_or_default()
}

fn to_json<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

fn answer(wants_json: bool, status: StatusCode, body: Value, title: &str, html: &str) -> Response {
    if wants_json {
        (status, Json(body)).into_response()
    } else {
        page(status, title, html)
    }
}

fn refuse(wants_json: bool, error: ApiError) -> Response {
    if wants_json {
        error.into_response()
    } else {
        page(error.status, "Payment not possible", &format!("<p role=\"alert\">{}</p>", escape(&error.message)))
    }
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · payments sandbox</title></head>\
         <body><main><h1>{title}</h1>{body}<p><small>boxoffice payments sandbox: no real money moves.</small></p></main></body></html>",
        title = escape(title)
    );
    (status, Html(html)).into_response()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_test_cards_decide_the_outcome_spaces_ignored() {
        assert!(card_outcome("4242 4242 4242 4242").is_ok());
        assert_eq!(card_outcome("4000000000000002").err().map(|e| e.decline_code), Some(Some("generic_decline")));
        assert_eq!(card_outcome("4000 0000 0000 9995").err().map(|e| e.decline_code), Some(Some("insufficient_funds")));
        assert_eq!(card_outcome("").err().map(|e| e.code), Some("incorrect_number"));
        assert_eq!(card_outcome("4242é").err().map(|e| e.code), Some("incorrect_number"));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
