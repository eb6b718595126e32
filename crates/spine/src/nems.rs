//! NEMS, the National Events Management Service: change-of-GP events, pushed and pulled.
//!
//! When PDS records a change of registered practice it hands NEMS a
//! [`crate::pds::RegistrationChange`]; NEMS stores it once (by event id)
//! as a `pds-change-of-gp-1` event — a FHIR message Bundle with a `MessageHeader`, the
//! `Patient` after the change and an `EpisodeOfCare`:
//! - a suspension (left, registered nowhere else): the Patient has no `generalPractitioner`
//!   and the EpisodeOfCare at the previous practice is `finished`;
//! - a (re-)registration: the Patient's `generalPractitioner` is the new practice and the
//!   EpisodeOfCare there is `active`.
//!
//! Events can arrive out of order, so the Bundle's and the Patient's `meta.lastUpdated` carry
//! the time of the change: a consumer drops an event older than the last it applied.
//!
//! Consumers either subscribe — `POST /Subscription` with a FHIR Subscription whose
//! `criteria` names the event and optionally a practice (`Organization.identifier`) or
//! patient (`Patient.identifier`), and whose `channel.endpoint` is a callback URL; each
//! matching event is POSTed there (`application/fhir+json`), retried on failure with a
//! doubling interval on the clock up to `max_attempts` — or pull: `GET /events?after=N`
//! answers a searchset of events in order with a `next` link.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::sqlx::{self, Row};
use store::{Database, Migration};

use crate::error::{Error, Result};
use crate::pds::{NHS_NUMBER_SYSTEM, RegistrationChange};
use crate::sds::ODS_SYSTEM;

/// The event code of a change of GP.
pub const CHANGE_OF_GP: &str = "pds-change-of-gp-1";
/// The code system of NEMS event types.
pub const EVENT_TYPE_SYSTEM: &str = "https://fhir.nhs.uk/STU3/CodeSystem/EventType-1";

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "events, subscriptions and deliveries",
    sqlite: "CREATE TABLE nems_events (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, nhs_number TEXT NOT NULL,
                previous_gp TEXT, new_gp TEXT, bundle TEXT NOT NULL, last_updated BIGINT NOT NULL, created_ms BIGINT NOT NULL);
             CREATE TABLE nems_subscriptions (
                id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, ods TEXT, nhs_number TEXT, criteria TEXT NOT NULL,
                created_ms BIGINT NOT NULL);
             CREATE TABLE nems_deliveries (
                event_seq BIGINT NOT NULL, subscription_id TEXT NOT NULL, status TEXT NOT NULL,
                attempts BIGINT NOT NULL, next_ms BIGINT NOT NULL, last_error TEXT,
                PRIMARY KEY (event_seq, subscription_id));
             CREATE INDEX nems_deliveries_due ON nems_deliveries (status, next_ms)",
    postgres: "CREATE TABLE nems_events (
                seq BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, nhs_number TEXT NOT NULL,
                previous_gp TEXT, new_gp TEXT, bundle TEXT NOT NULL, last_updated BIGINT NOT NULL, created_ms BIGINT NOT NULL);
             CREATE TABLE nems_subscriptions (
                id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, ods TEXT, nhs_number TEXT, criteria TEXT NOT NULL,
                created_ms BIGINT NOT NULL);
             CREATE TABLE nems_deliveries (
                event_seq BIGINT NOT NULL, subscription_id TEXT NOT NULL, status TEXT NOT NULL,
                attempts BIGINT NOT NULL, next_ms BIGINT NOT NULL, last_error TEXT,
                PRIMARY KEY (event_seq, subscription_id));
             CREATE INDEX nems_deliveries_due ON nems_deliveries (status, next_ms)",
}];

/// `[nems]` configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NemsConfig {
    /// Seconds before the first retry of a failed delivery; each further retry waits twice
    /// as long (at most an hour).
    #[serde(default = "default_retry")]
    pub retry_interval_secs: u64,
    /// Delivery attempts before an event is given up for a subscriber (it stays pullable).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_retry() -> u64 {
    60
}

fn default_attempts() -> u32 {
    10
}

impl Default for NemsConfig {
    fn default() -> NemsConfig {
        NemsConfig {
            retry_interval_secs: default_retry(),
            max_attempts: default_attempts(),
        }
    }
}

/// A subscription: who wants which events, at which URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    /// Its id.
    pub id: String,
    /// The callback URL events are POSTed to.
    pub endpoint: String,
    /// Only events at (to or from) this practice, if set.
    pub ods: Option<String>,
    /// Only events about this patient, if set.
    pub nhs_number: Option<String>,
    /// The criteria as the subscriber wrote them.
    pub criteria: String,
}

impl Subscription {
    fn to_fhir(&self) -> Value {
        json!({
            "resourceType": "Subscription",
            "id": self.id,
            "status": "active",
            "reason": "Lloyd NEMS subscription",
            "criteria": self.criteria,
            "channel": {"type": "rest-hook", "endpoint": self.endpoint, "payload": "application/fhir+json"},
        })
    }
}

/// What NEMS needs: its tables, the clock, and a client for callbacks.
#[derive(Debug, Clone)]
pub struct NemsState {
    db: Database,
    clock: clock::SharedClock,
    config: NemsConfig,
    base_url: Arc<str>,
    client: reqwest::Client,
    wake: Arc<tokio::sync::Notify>,
}

impl NemsState {
    /// NEMS in `db`, its tables created or brought up to date. `base_url` is its public URL.
    pub async fn open(
        db: Database,
        clock: clock::SharedClock,
        config: NemsConfig,
        base_url: &str,
    ) -> Result<NemsState> {
        db.migrate("nems", MIGRATIONS).await?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the NEMS callback client: {e}")))?;
        Ok(NemsState {
            db,
            clock,
            config,
            base_url: Arc::from(base_url),
            client,
            wake: Arc::default(),
        })
    }

    /// Stores an event for a change (once per event id) and queues it for every matching
    /// subscriber. Returns the event's sequence number.
    pub async fn publish(&self, change: &RegistrationChange) -> Result<i64> {
        let now = self.clock.now_ms();
        let bundle = event_bundle(change, &self.base_url);
        let text = serde_json::to_string(&bundle).map_err(|e| Error::Corrupt(e.to_string()))?;
        let mut tx = self.db.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO nems_events (event_id, nhs_number, previous_gp, new_gp, bundle, last_updated, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(change.event_id.clone())
        .bind(change.nhs_number.clone())
        .bind(change.previous_gp.clone())
        .bind(change.new_gp.clone())
        .bind(text)
        .bind(change.last_updated)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let seq: i64 = sqlx::query("SELECT seq FROM nems_events WHERE event_id = $1")
            .bind(change.event_id.clone())
            .fetch_one(&mut *tx)
            .await?
            .try_get("seq")?;
        if inserted == 1 {
            sqlx::query(
                "INSERT INTO nems_deliveries (event_seq, subscription_id, status, attempts, next_ms)
                 SELECT $1, id, 'pending', 0, $2 FROM nems_subscriptions
                 WHERE (ods IS NULL OR ods = $3 OR ods = $4) AND (nhs_number IS NULL OR nhs_number = $5)",
            )
            .bind(seq)
            .bind(now)
            .bind(change.previous_gp.clone().unwrap_or_default())
            .bind(change.new_gp.clone().unwrap_or_default())
            .bind(change.nhs_number.clone())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if inserted == 1 {
            metrics::counter!("nems_events_published_total").increment(1);
            tracing::info!(seq, nhs = %change.nhs_number, "NEMS change-of-GP event published");
        }
        self.wake.notify_one();
        Ok(seq)
    }

    /// Adds a subscription.
    pub async fn subscribe(&self, sub: &Subscription) -> Result<()> {
        sqlx::query("INSERT INTO nems_subscriptions (id, endpoint, ods, nhs_number, criteria, created_ms) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(sub.id.clone())
            .bind(sub.endpoint.clone())
            .bind(sub.ods.clone())
            .bind(sub.nhs_number.clone())
            .bind(sub.criteria.clone())
            .bind(self.clock.now_ms())
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// A subscription by id.
    pub async fn subscription(&self, id: &str) -> Result<Option<Subscription>> {
        let row = sqlx::query(
            "SELECT id, endpoint, ods, nhs_number, criteria FROM nems_subscriptions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| {
            Ok(Subscription {
                id: r.try_get("id")?,
                endpoint: r.try_get("endpoint")?,
                ods: r.try_get("ods")?,
                nhs_number: r.try_get("nhs_number")?,
                criteria: r.try_get("criteria")?,
            })
        })
        .transpose()
    }

    /// Removes a subscription and its undelivered events. Returns whether it was there.
    pub async fn unsubscribe(&self, id: &str) -> Result<bool> {
        let mut tx = self.db.pool().begin().await?;
        sqlx::query(
            "DELETE FROM nems_deliveries WHERE subscription_id = $1 AND status = 'pending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query("DELETE FROM nems_subscriptions WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n.rows_affected() > 0)
    }

    /// Events after sequence number `after`, oldest first, at most `limit`.
    pub async fn events(&self, after: i64, limit: i64) -> Result<Vec<(i64, Value)>> {
        let rows =
            sqlx::query("SELECT seq, bundle FROM nems_events WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(after)
                .bind(limit)
                .fetch_all(self.db.pool())
                .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get("bundle")?;
                let v = serde_json::from_str(&text)
                    .map_err(|e| Error::Corrupt(format!("a NEMS event: {e}")))?;
                Ok((r.try_get("seq")?, v))
            })
            .collect()
    }

    /// Attempts every delivery that is due; returns when the next one falls due, if any.
    pub async fn deliver_due(&self) -> Result<Option<i64>> {
        let now = self.clock.now_ms();
        let rows = sqlx::query(
            "SELECT d.event_seq, d.subscription_id, d.attempts, s.endpoint, e.bundle
             FROM nems_deliveries d
             JOIN nems_subscriptions s ON s.id = d.subscription_id
             JOIN nems_events e ON e.seq = d.event_seq
             WHERE d.status = 'pending' AND d.next_ms <= $1
             ORDER BY d.event_seq LIMIT 100",
        )
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        for r in &rows {
            let seq: i64 = r.try_get("event_seq")?;
            let sub: String = r.try_get("subscription_id")?;
            let attempts: i64 = r.try_get::<i64, _>("attempts")? + 1;
            let endpoint: String = r.try_get("endpoint")?;
            let bundle: String = r.try_get("bundle")?;
            let outcome = self
                .client
                .post(&endpoint)
                .header(header::CONTENT_TYPE, "application/fhir+json")
                .body(bundle)
                .send()
                .await;
            let failure = match outcome {
                Ok(resp) if resp.status().is_success() => None,
                Ok(resp) => Some(format!("the subscriber answered {}", resp.status())),
                Err(e) => Some(format!("cannot reach the subscriber: {e}")),
            };
            match failure {
                None => {
                    metrics::counter!("nems_deliveries_total", "outcome" => "delivered")
                        .increment(1);
                    sqlx::query("UPDATE nems_deliveries SET status = 'delivered', attempts = $1, last_error = NULL WHERE event_seq = $2 AND subscription_id = $3")
                        .bind(attempts).bind(seq).bind(sub.clone())
                        .execute(self.db.pool()).await?;
                }
                Some(error) => {
                    let give_up = attempts >= i64::from(self.config.max_attempts);
                    let backoff = self
                        .config
                        .retry_interval_secs
                        .saturating_mul(1 << (attempts - 1).clamp(0, 16))
                        .min(3600);
                    let next =
                        now.saturating_add(i64::try_from(backoff * 1000).unwrap_or(i64::MAX));
                    tracing::warn!(seq, subscription = %sub, attempts, give_up, %error, "NEMS delivery failed");
                    metrics::counter!("nems_deliveries_total", "outcome" => if give_up { "failed" } else { "retry" }).increment(1);
                    sqlx::query("UPDATE nems_deliveries SET status = $1, attempts = $2, next_ms = $3, last_error = $4 WHERE event_seq = $5 AND subscription_id = $6")
                        .bind(if give_up { "failed" } else { "pending" })
                        .bind(attempts).bind(next).bind(error).bind(seq).bind(sub.clone())
                        .execute(self.db.pool()).await?;
                }
            }
        }
        let next =
            sqlx::query("SELECT MIN(next_ms) AS n FROM nems_deliveries WHERE status = 'pending'")
                .fetch_one(self.db.pool())
                .await?;
        Ok(next.try_get::<Option<i64>, _>("n")?)
    }

    /// The state of one delivery: (`pending`|`delivered`|`failed`, attempts).
    pub async fn delivery(
        &self,
        event_seq: i64,
        subscription_id: &str,
    ) -> Result<Option<(String, i64)>> {
        let row = sqlx::query("SELECT status, attempts FROM nems_deliveries WHERE event_seq = $1 AND subscription_id = $2")
            .bind(event_seq)
            .bind(subscription_id)
            .fetch_optional(self.db.pool())
            .await?;
        row.map(|r| Ok((r.try_get("status")?, r.try_get("attempts")?)))
            .transpose()
    }

    /// Runs deliveries in the background: when an event is published, and when a retry
    /// falls due on the clock.
    pub fn spawn_delivery(&self) {
        let state = self.clone();
        tokio::spawn(async move {
            loop {
                let next = match state.deliver_due().await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::error!(error = %e, "NEMS delivery round failed");
                        Some(state.clock.now_ms() + 5_000)
                    }
                };
                match next {
                    Some(at) => tokio::select! {
                        _ = state.wake.notified() => {}
                        _ = state.clock.sleep_until(at) => {}
                    },
                    None => state.wake.notified().await,
                }
            }
        });
    }
}

impl crate::pds::RegistrationListener for NemsState {
    fn registration_changed<'a>(
        &'a self,
        change: &'a RegistrationChange,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move { self.publish(change).await.map(|_| ()) })
    }
}

fn ods_reference(ods: &str) -> Value {
    json!({"identifier": {"system": ODS_SYSTEM, "value": ods}})
}

/// The `pds-change-of-gp-1` message Bundle for a change.
pub fn event_bundle(change: &RegistrationChange, base_url: &str) -> Value {
    let when = crate::time::instant(change.last_updated);
    let id = |what: &str| {
        uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_URL,
            format!("{}/{what}", change.event_id).as_bytes(),
        )
        .to_string()
    };
    let (header_id, patient_id, episode_id) = (id("header"), id("patient"), id("episode"));
    let episode = match (&change.new_gp, &change.previous_gp) {
        (Some(gp), _) => json!({
            "resourceType": "EpisodeOfCare", "id": episode_id, "status": "active",
            "managingOrganization": ods_reference(gp),
            "patient": {"reference": format!("urn:uuid:{patient_id}")},
            "period": {"start": when},
        }),
        (None, previous) => {
            let mut e = json!({
                "resourceType": "EpisodeOfCare", "id": episode_id, "status": "finished",
                "patient": {"reference": format!("urn:uuid:{patient_id}")},
                "period": {"end": when},
            });
            if let Some(p) = previous {
                e["managingOrganization"] = ods_reference(p);
            }
            e
        }
    };
    let mut patient = change.patient.clone();
    patient["id"] = json!(patient_id);
    json!({
        "resourceType": "Bundle",
        "id": change.event_id,
        "meta": {"lastUpdated": when},
        "type": "message",
        "entry": [
            {"fullUrl": format!("urn:uuid:{header_id}"), "resource": {
                "resourceType": "MessageHeader", "id": header_id,
                "event": {"system": EVENT_TYPE_SYSTEM, "code": CHANGE_OF_GP, "display": "PDS Change of GP"},
                "timestamp": when,
                "source": {"name": "PDS", "endpoint": base_url.replace("/nems", "/pds")},
                "focus": [{"reference": format!("urn:uuid:{patient_id}")}],
            }},
            {"fullUrl": format!("urn:uuid:{patient_id}"), "resource": patient},
            {"fullUrl": format!("urn:uuid:{episode_id}"), "resource": episode},
        ],
    })
}

/// The NEMS service.
pub fn router(state: NemsState) -> Router {
    Router::new()
        .route("/Subscription", post(create_subscription))
        .route(
            "/Subscription/{id}",
            get(read_subscription).delete(delete_subscription),
        )
        .route("/events", get(pull))
        .with_state(state)
}

fn parse_subscription(body: &[u8]) -> Result<Subscription> {
    let bad = |m: String| Error::bad_request("INVALID_RESOURCE", m);
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the Subscription is not JSON: {e}")))?;
    if v["resourceType"] != "Subscription" {
        return Err(bad("the body must be a FHIR Subscription".into()));
    }
    let endpoint = v["channel"]["endpoint"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(bad(
            "channel.endpoint must be an http(s) callback URL".into()
        ));
    }
    let criteria = v["criteria"].as_str().unwrap_or_default().to_string();
    let query = criteria
        .strip_prefix("/Bundle?")
        .or_else(|| criteria.strip_prefix("Bundle?"))
        .ok_or_else(|| {
            bad(format!(
                "criteria must be /Bundle?type=message&MessageDefinition.event={CHANGE_OF_GP}…"
            ))
        })?;
    let mut sub = Subscription {
        id: uuid::Uuid::new_v4().to_string(),
        endpoint,
        ods: None,
        nhs_number: None,
        criteria: criteria.clone(),
    };
    let mut event = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = value.replace("%7C", "|").replace("%7c", "|");
        match name {
            "MessageDefinition.event" if value == CHANGE_OF_GP => event = true,
            "MessageDefinition.event" => {
                return Err(bad(format!(
                    "event '{value}' is not published here: only {CHANGE_OF_GP}"
                )));
            }
            "Organization.identifier" => {
                let code = value
                    .strip_prefix(&format!("{ODS_SYSTEM}|"))
                    .unwrap_or(&value);
                nhsid::OdsCode::parse(code)
                    .map_err(|_| bad(format!("'{code}' is not an ODS code")))?;
                sub.ods = Some(code.to_string());
            }
            "Patient.identifier" => {
                let nhs = value
                    .strip_prefix(&format!("{NHS_NUMBER_SYSTEM}|"))
                    .unwrap_or(&value);
                nhsid::NhsNumber::parse(nhs)
                    .map_err(|e| bad(format!("Patient.identifier: {e}")))?;
                sub.nhs_number = Some(nhs.to_string());
            }
            "type" | "serviceType" | "subscriptionRuleType" | "Patient.age" => {}
            other => return Err(bad(format!("unknown criterion '{other}'"))),
        }
    }
    if !event {
        return Err(bad(format!(
            "criteria must name MessageDefinition.event={CHANGE_OF_GP}"
        )));
    }
    Ok(sub)
}

async fn create_subscription(
    State(state): State<NemsState>,
    body: axum::body::Bytes,
) -> Result<Response> {
    let sub = parse_subscription(&body)?;
    state.subscribe(&sub).await?;
    tracing::info!(id = %sub.id, endpoint = %sub.endpoint, "NEMS subscription created");
    let mut response = crate::fhir_json(StatusCode::CREATED, &sub.to_fhir());
    if let Ok(loc) = HeaderValue::from_str(&format!("{}/Subscription/{}", state.base_url, sub.id)) {
        response.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(response)
}

async fn read_subscription(
    State(state): State<NemsState>,
    Path(id): Path<String>,
) -> Result<Response> {
    let sub = state
        .subscription(&id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no subscription {id}")))?;
    Ok(crate::fhir_json(StatusCode::OK, &sub.to_fhir()))
}

async fn delete_subscription(
    State(state): State<NemsState>,
    Path(id): Path<String>,
) -> Result<Response> {
    if state.unsubscribe(&id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Error::NotFound(format!("no subscription {id}")))
    }
}

#[derive(Debug, Deserialize)]
struct PullQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

async fn pull(State(state): State<NemsState>, Query(q): Query<PullQuery>) -> Result<Response> {
    if !(1..=1000).contains(&q.limit) || q.after < 0 {
        return Err(Error::bad_request(
            "INVALID_PARAMETER",
            "limit must be 1 to 1000 and after at least 0",
        ));
    }
    let events = state.events(q.after, q.limit).await?;
    let last = events.last().map_or(q.after, |(seq, _)| *seq);
    let entry: Vec<Value> = events
        .into_iter()
        .map(|(seq, bundle)| json!({"fullUrl": format!("{}/events/{seq}", state.base_url), "resource": bundle, "search": {"mode": "match"}}))
        .collect();
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entry.len(),
        "link": [{"relation": "next", "url": format!("{}/events?after={last}&limit={}", state.base_url, q.limit)}],
        "entry": entry,
    });
    Ok(crate::fhir_json(StatusCode::OK, &bundle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(criteria: &str, endpoint: &str) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"resourceType": "Subscription", "criteria": criteria,
            "channel": {"type": "rest-hook", "endpoint": endpoint}}),
        )
        .unwrap()
    }

    #[test]
    fn subscriptions_name_the_event_and_optionally_a_practice_or_patient() {
        let ok = format!(
            "/Bundle?type=message&MessageDefinition.event={CHANGE_OF_GP}&Organization.identifier={ODS_SYSTEM}|B86041"
        );
        let s = parse_subscription(&body(&ok, "http://127.0.0.1:9/cb")).unwrap();
        assert_eq!(s.ods.as_deref(), Some("B86041"));
        assert!(parse_subscription(&body(&ok, "ftp://x")).is_err());
        assert!(parse_subscription(&body("/Bundle?type=message", "http://x")).is_err());
        assert!(
            parse_subscription(&body(
                "/Bundle?MessageDefinition.event=pds-death-notification-1",
                "http://x"
            ))
            .is_err()
        );
        let bad_nhs =
            format!("/Bundle?MessageDefinition.event={CHANGE_OF_GP}&Patient.identifier=1234567890");
        assert!(parse_subscription(&body(&bad_nhs, "http://x")).is_err());
    }
}
