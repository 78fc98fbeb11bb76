//! The waiting room as seen by an organizer and by fans: setup through reqwest,
//! measured requests through lean connections (see `http1`).

use std::time::Duration;

use anyhow::bail;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::client::{ensure_loopback, Outcome};
use crate::http1::{Answer, Connection};

pub struct Waitroom {
    base: String,
    /// The management listener's base URL, for `/metrics`.
    management: String,
    http: reqwest::Client,
    admin_key: String,
}

/// A waiting fan's ticket and place in line.
pub struct Ticket {
    pub ticket: String,
    pub position: u64,
}

impl Waitroom {
    pub fn connect(base: &str, management: &str, admin_key: &str, connections: usize) -> anyhow::Result<Self> {
        ensure_loopback(base)?;
        ensure_loopback(management)?;
        let http =
            reqwest::Client::builder().pool_max_idle_per_host(connections).timeout(Duration::from_secs(30)).build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            management: management.trim_end_matches('/').to_owned(),
            http,
            admin_key: admin_key.to_owned(),
        })
    }

    /// The waiting room's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Configures `event_id` paused: fans may join and poll, but the admitter never
    /// takes anyone out of line, so the queue stays as deep as the benchmark made it.
    pub async fn configure_paused(&self, event_id: Uuid) -> anyhow::Result<()> {
        self.configure(
            event_id,
            json!({ "admit_rate": 1, "max_active": 1, "token_lifetime_secs": 60, "state": "paused" }),
        )
        .await
    }

    /// Opens `event_id` at `admit_rate` fans a second, with room for every fan it can
    /// admit in the benchmark, so nothing but the rate holds admission back.
    pub async fn configure_admitting(&self, event_id: Uuid, admit_rate: f64) -> anyhow::Result<()> {
        let body = json!({ "admit_rate": admit_rate, "max_active": 10_000_000, "token_lifetime_secs": 3600, "state": "running" });
        self.configure(event_id, body).await
    }

    async fn configure(&self, event_id: Uuid, settings: Value) -> anyhow::Result<()> {
        let response = self
            .http
            .put(format!("{}/v1/admin/events/{event_id}/waitroom", self.base))
            .bearer_auth(&self.admin_key)
            .json(&settings)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            bail!("configuring the waiting room failed ({status}): {}", response.text().await.unwrap_or_default());
        }
        Ok(())
    }

    /// The waiting room's Prometheus metrics, as text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(self.http.get(format!("{}/metrics", self.management)).send().await?.error_for_status()?.text().await?)
    }

    /// Lean connections for the measured requests, one per simulated client.
    pub async fn connections(&self, count: usize) -> anyhow::Result<Vec<Mutex<Connection>>> {
        let mut connections = Vec::with_capacity(count);
        for _ in 0..count {
            connections.push(Mutex::new(Connection::open(&self.base).await?));
        }
        Ok(connections)
    }

    /// Puts `fan_id` in line (or finds them there) and answers their ticket. Setup, so
    /// through reqwest.
    pub async fn join_for_ticket(&self, event_id: Uuid, fan_id: &str) -> anyhow::Result<Ticket> {
        let url = format!("{}/v1/events/{event_id}/queue", self.base);
        let response = self.http.post(url).json(&json!({ "fan_id": fan_id })).send().await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match (status, body["ticket"].as_str()) {
            (200 | 201, Some(ticket)) => {
                Ok(Ticket { ticket: ticket.to_owned(), position: body["position"].as_u64().unwrap_or(0) })
            }
            _ => bail!("joining as {fan_id} answered {status} {body}"),
        }
    }

    /// The ticket of a fan already in line: joining again is idempotent and answers
    /// with the fan's ticket and unchanged place. Setup, so through reqwest.
    pub async fn ticket_of(&self, event_id: Uuid, fan_id: &str) -> anyhow::Result<Ticket> {
        let url = format!("{}/v1/events/{event_id}/queue", self.base);
        let response = self.http.post(url).json(&json!({ "fan_id": fan_id })).send().await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match (status, body["ticket"].as_str(), body["position"].as_u64()) {
            (200, Some(ticket), Some(position)) => Ok(Ticket { ticket: ticket.to_owned(), position }),
            (403, _, _) => bail!(
                "the waiting room refuses fan ids chosen by the bench ({body}); start it with \
                 BOXOFFICE__DEVELOPMENT=true, as scripts/bench-waitroom does"
            ),
            _ => bail!("fan {fan_id} should already be waiting; the join answered {status} {body}"),
        }
    }
}

/// Joins as `fan_id` (letters, digits, '-', '_' and '.' only, so it needs no escaping).
pub async fn join(connection: &mut Connection, event_id: Uuid, fan_id: &str) -> anyhow::Result<Outcome> {
    let body = format!(r#"{{"fan_id":"{fan_id}"}}"#);
    outcome(connection.post_json(&format!("/v1/events/{event_id}/queue"), &body).await?)
}

pub async fn poll(connection: &mut Connection, event_id: Uuid, ticket: &str) -> anyhow::Result<Outcome> {
    outcome(connection.get(&format!("/v1/events/{event_id}/queue/{ticket}")).await?)
}

/// The code is the fan's status (`waiting`, ...) or the error code.
fn outcome(answer: Answer) -> anyhow::Result<Outcome> {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().or(body["status"].as_str()).unwrap_or("unknown").to_owned();
    Ok(Outcome { status: answer.status, code, body })
}
