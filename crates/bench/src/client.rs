//! The gateway as seen by an organizer and by admitted fans.

use std::time::Duration;

use access_token::{AccessClaims, KeyPair, TokenSigner};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::Target;

pub struct Gateway {
    pub base: String,
    pub http: reqwest::Client,
    admin_key: String,
    signer: TokenSigner,
}

/// An answer: status code and, for errors, the error code.
pub struct Outcome {
    pub status: u16,
    pub code: String,
    pub body: Value,
}

impl Gateway {
    pub fn connect(target: &Target, connections: usize) -> anyhow::Result<Self> {
        ensure_loopback(&target.gateway)?;
        let pair = KeyPair::read_private(&target.signing_key)
            .with_context(|| format!("reading the signing key {}", target.signing_key.display()))?;
        let http =
            reqwest::Client::builder().pool_max_idle_per_host(connections).timeout(Duration::from_secs(30)).build()?;
        Ok(Self {
            base: target.gateway.trim_end_matches('/').to_owned(),
            http,
            admin_key: target.admin_key.clone(),
            signer: TokenSigner::new(&pair),
        })
    }

    /// Creates an event and returns (event id, section ids).
    pub async fn create_event(&self, body: Value) -> anyhow::Result<(Uuid, Vec<Uuid>)> {
        let response =
            self.http.post(format!("{}/v1/events", self.base)).bearer_auth(&self.admin_key).json(&body).send().await?;
        let status = response.status();
        let details: Value = response.json().await?;
        if status.as_u16() != 201 {
            bail!("creating the event failed ({status}): {details}");
        }
        let id = details["id"].as_str().context("event id")?.parse()?;
        let sections = details["sections"]
            .as_array()
            .context("sections")?
            .iter()
            .filter_map(|s| s["id"].as_str()?.parse().ok())
            .collect();
        Ok((id, sections))
    }

    /// A scanner key for the event's gates (the organizer's route).
    pub async fn scanner_key(&self, event_id: Uuid) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!("{}/v1/admin/events/{event_id}/scanner-keys", self.base))
            .bearer_auth(&self.admin_key)
            .json(&json!({ "name": "bench" }))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if status.as_u16() != 201 {
            bail!("creating a scanner key failed ({status}): {body}");
        }
        Ok(body["key"].as_str().context("key")?.to_owned())
    }

    /// Every ticket secret of a booking, read as its fan.
    pub async fn ticket_secrets(&self, event_id: Uuid, booking_id: Uuid, token: &str) -> anyhow::Result<Vec<String>> {
        let tickets = self.get(&format!("/v1/events/{event_id}/bookings/{booking_id}/tickets"), token).await?;
        if tickets.status != 200 {
            bail!("reading the tickets failed ({}): {}", tickets.status, tickets.body);
        }
        Ok(tickets.body["tickets"]
            .as_array()
            .context("tickets")?
            .iter()
            .filter_map(|t| t["secret"].as_str().map(str::to_owned))
            .collect())
    }

    /// One scan at a gate: `Outcome` 201 `valid` when this scan recorded the check-in,
    /// 409 with the result otherwise.
    pub async fn check_in(
        &self,
        event_id: Uuid,
        scanner_key: &str,
        secret: &str,
        gate: &str,
    ) -> anyhow::Result<Outcome> {
        let response = self
            .http
            .post(format!("{}/v1/events/{event_id}/checkins", self.base))
            .bearer_auth(scanner_key)
            .json(&json!({ "secret": secret, "gate": gate }))
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let result = body["result"].as_str().or_else(|| body["error"]["code"].as_str()).unwrap_or("unreadable");
        let status = match (status, result) {
            (200, "valid") => 201,
            (200, _) => 409,
            (other, _) => other,
        };
        let code = if status == 201 { "created".to_owned() } else { result.to_owned() };
        Ok(Outcome { status, code, body })
    }

    pub fn token(&self, fan: &str, event_id: Uuid) -> String {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        self.signer.sign(&AccessClaims::new(fan, event_id, now, 3600))
    }

    pub async fn book(&self, event_id: Uuid, token: &str, request: &Value) -> anyhow::Result<Outcome> {
        let url = format!("{}/v1/events/{event_id}/bookings", self.base);
        outcome(self.http.post(url).bearer_auth(token).json(request).send().await?).await
    }

    pub async fn hold(&self, event_id: Uuid, token: &str, request: &Value) -> anyhow::Result<Outcome> {
        let url = format!("{}/v1/events/{event_id}/holds", self.base);
        outcome(self.http.post(url).bearer_auth(token).json(request).send().await?).await
    }

    pub async fn release(&self, event_id: Uuid, token: &str, hold_id: &str) -> anyhow::Result<Outcome> {
        let url = format!("{}/v1/events/{event_id}/holds/{hold_id}", self.base);
        outcome(self.http.delete(url).bearer_auth(token).send().await?).await
    }

    /// A fan's POST without a body (confirm, checkout).
    pub async fn post(&self, path: &str, token: &str) -> anyhow::Result<Outcome> {
        outcome(self.http.post(format!("{}{path}", self.base)).bearer_auth(token).send().await?).await
    }

    pub async fn get(&self, path: &str, token: &str) -> anyhow::Result<Outcome> {
        outcome(self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await?).await
    }

    pub async fn section_counts(&self, event_id: Uuid) -> anyhow::Result<Value> {
        Ok(self.http.get(format!("{}/v1/events/{event_id}", self.base)).send().await?.json().await?)
    }
}

/// Refuses any URL that is not on this machine: load is only ever sent to loopback.
pub fn ensure_loopback(url: &str) -> anyhow::Result<()> {
    let authority = url.split("://").nth(1).unwrap_or_default().split('/').next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    // `[::1]:6379` keeps its brackets until here; `127.0.0.1:6379` loses its port.
    let host = match host_port.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("load is only ever sent to this machine; {url} is not a loopback address");
    }
    Ok(())
}

async fn outcome(response: reqwest::Response) -> anyhow::Result<Outcome> {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or(if status < 300 { "created" } else { "unknown" }).to_owned();
    Ok(Outcome { status, code, body })
}

/// An event body with one section.
pub fn one_section_event(name: &str, section: Value) -> Value {
    json!({ "name": name, "max_per_order": 10, "sections": [section] })
}
