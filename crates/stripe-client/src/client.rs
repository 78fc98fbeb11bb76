//! The client: form-encoded requests with `Authorization: Bearer`, an `Idempotency-Key`
//! on every POST, every call bounded by the configured timeouts.

use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::{Method, StatusCode};
use sales::payment_provider::{Intent, NewIntent, NewRefund, PaymentProvider, ProviderError, Refund};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::wire::{ErrorEnvelope, PaymentIntentObject, RefundObject};

/// Where the provider is and how long a call may take.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// `https://api.stripe.com` for Stripe; the sandbox's URL locally. No trailing `/v1`.
    pub base_url: String,
    /// `sk_…`.
    pub secret_key: SecretString,
    /// One call, from sending to the last byte of the answer.
    pub request_timeout: Duration,
    /// Establishing the connection (included in `request_timeout`).
    pub connect_timeout: Duration,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the Stripe HTTP client: {0}")]
pub struct BuildError(String);

/// A Stripe-compatible [`PaymentProvider`].
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base_url: String,
    secret_key: SecretString,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl StripeClient {
    pub fn new(config: StripeConfig) -> Result<Self, BuildError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            // Stripe never redirects an API call; one that does is not Stripe.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BuildError(e.to_string()))?;
        Ok(Self { http, base_url: config.base_url.trim_end_matches('/').to_owned(), secret_key: config.secret_key })
    }

    /// Cancels an intent that was never paid (`POST /v1/payment_intents/{id}/cancel`).
    pub async fn cancel_intent(&self, id: &str, idempotency_key: &str) -> Result<Intent, ProviderError> {
        let path = format!("/v1/payment_intents/{}/cancel", encode_path(id));
        let object: PaymentIntentObject = self.call(Method::POST, &path, Vec::new(), Some(idempotency_key)).await?;
        Ok(object.into())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        form: Vec<(String, String)>,
        idempotency_key: Option<&str>,
    ) -> Result<T, ProviderError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.http.request(method.clone(), &url).bearer_auth(self.secret_key.expose_secret());
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if method == Method::POST {
            let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(&form).finish();
            request = request.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body);
        }
        // The client's timeout covers sending and the whole body; read it before
        // deciding, so a 5xx is not mistaken for a refusal.
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unavailable)?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                // The call may have taken effect: retrying under the same key is right.
                ProviderError::Unavailable(format!("unreadable answer to {method} {path}: {e}"))
            });
        }
        let error = serde_json::from_slice::<ErrorEnvelope>(&body).ok().map(|e| e.error);
        let message = error.as_ref().and_then(|e| e.message.clone()).unwrap_or_else(|| format!("HTTP {status}"));
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(ProviderError::Unavailable(format!("{method} {path} answered {status}: {message}")));
        }
        let code = error
            .and_then(|e| e.decline_code.or(e.code).or(e.kind))
            .unwrap_or_else(|| format!("http_{}", status.as_u16()));
        Err(ProviderError::Refused { code, message })
    }
}

fn unavailable(e: reqwest::Error) -> ProviderError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // Not the error's text: it names the URL, and ours is enough to act on.
    ProviderError::Unavailable(what.to_owned())
}

/// An id as one path segment: ids are `[A-Za-z0-9_]`, anything else is escaped so a
/// strange id can never reach another route.
fn encode_path(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

impl PaymentProvider for StripeClient {
    fn create_intent(&self, intent: NewIntent) -> BoxFuture<'_, Result<Intent, ProviderError>> {
        Box::pin(async move {
            let mut form = vec![
                ("amount".to_owned(), intent.amount_minor.to_string()),
                ("currency".to_owned(), intent.currency.to_ascii_lowercase()),
            ];
            if !intent.description.is_empty() {
                form.push(("description".to_owned(), intent.description));
            }
            form.extend(intent.metadata.into_iter().map(|(k, v)| (format!("metadata[{k}]"), v)));
            let object: PaymentIntentObject =
                self.call(Method::POST, "/v1/payment_intents", form, Some(&intent.idempotency_key)).await?;
            Ok(object.into())
        })
    }

    fn retrieve_intent<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Intent, ProviderError>> {
        Box::pin(async move {
            let path = format!("/v1/payment_intents/{}", encode_path(id));
            let object: PaymentIntentObject = self.call(Method::GET, &path, Vec::new(), None).await?;
            Ok(object.into())
        })
    }

    fn create_refund(&self, refund: NewRefund) -> BoxFuture<'_, Result<Refund, ProviderError>> {
        Box::pin(async move {
            let mut form = vec![
                ("payment_intent".to_owned(), refund.payment_intent),
                ("amount".to_owned(), refund.amount_minor.to_string()),
            ];
            form.extend(refund.metadata.into_iter().map(|(k, v)| (format!("metadata[{k}]"), v)));
            let object: RefundObject =
                self.call(Method::POST, "/v1/refunds", form, Some(&refund.idempotency_key)).await?;
            Ok(object.into())
        })
    }

    fn retrieve_refund<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Refund, ProviderError>> {
        Box::pin(async move {
            let path = format!("/v1/refunds/{}", encode_path(id));
            let object: RefundObject = self.call(Method::GET, &path, Vec::new(), None).await?;
            Ok(object.into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert_eq!(encode_path("pi_123"), "pi_123");
        assert_eq!(encode_path("../refunds"), "..%2Frefunds");
    }
}
