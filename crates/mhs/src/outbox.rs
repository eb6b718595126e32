//! The durable outbox: messages already in wire form, delivered to the next hop with
//! retries, surviving restarts.
//!
//! [`MhsHandle::send`](crate::MhsHandle::send) builds a message and puts it here; a relay
//! (Spine's, in the `spine` crate) puts here the bytes it received, unchanged, to pass
//! them on. Either way the outbox owns one table (made with [`outbox_table!`](crate::outbox_table)),
//! one row a message, and a worker ([`Outbox::run`]) that:
//!
//! - takes each due row by compare-and-set on (state, attempts), with a lease of twice the
//!   attempt timeout, so several processes can share one table without sending a message
//!   twice at once, and a row whose process died is taken over when its lease runs out;
//! - POSTs the stored bytes to the row's address and reads the answer: an `eb:Acknowledgment` of this MessageId delivers it; an
//!   `eb:ErrorList` or a `SOAP:Client` fault rejects it (sending the same bytes again
//!   cannot help); anything else is transient, retried every `retry_interval`, at most
//!   `retries` times, within `persist_duration` (the destination's reliability settings);
//! - tells an [`OutboxObserver`], if there is one, of every retry, delivery, rejection and
//!   giving up — *inside the transaction that records it*, so an observer's own records
//!   (Spine's message log) are never out of step with the outbox.
//!
//! The states and their transitions are the types of [`crate::state`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clock::SharedClock;
use ebxml::Reply;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use store::sqlx::AnyConnection;
use store::{Database, PayloadStore};
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::db::{self, OutboundRow};
use crate::recent::Recent;
use crate::state::{AfterFailure, InFlight, OutboundState};
use crate::tls::HttpClient;
use crate::{Error, Reliability};

/// The `CREATE TABLE` (and index) statements of an outbox table named `$table`, in SQL
/// both engines accept, for a service's [`store::Migration`]. Every outbox table has these
/// columns; [`Outbox`] reads and writes nothing else.
///
/// ```
/// const SCHEMA: &str = mhs::outbox_table!("relay_outbound");
/// assert!(SCHEMA.starts_with("CREATE TABLE relay_outbound ("));
/// ```
#[macro_export]
macro_rules! outbox_table {
    ($table:literal) => {
        concat!(
            "CREATE TABLE ",
            $table,
            " (
            message_id TEXT PRIMARY KEY,
            conversation_id TEXT NOT NULL,
            interaction_id TEXT NOT NULL,
            address TEXT NOT NULL,
            content_type TEXT NOT NULL,
            payload_key TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts BIGINT NOT NULL,
            retries BIGINT NOT NULL,
            retry_interval_ms BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            next_attempt_at BIGINT NOT NULL,
            lease_until BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            reason TEXT);
        CREATE INDEX ",
            $table,
            "_due ON ",
            $table,
            " (state, next_attempt_at)"
        )
    };
}

/// How an outbox is set up.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// Its table, made by [`outbox_table!`](crate::outbox_table) in the owner's migration.
    /// Letters, digits and `_` only.
    pub table: &'static str,
    /// The first word of its counters: `{prefix}_messages_sent_total`,
    /// `{prefix}_messages_retried_total`, `{prefix}_messages_failed_total`.
    pub metric_prefix: &'static str,
    /// How long one attempt may wait for its answer.
    pub attempt_timeout: Duration,
    /// Attempts under way at once.
    pub max_in_flight: usize,
    /// Spine's limits, for reading answers.
    pub limits: ebxml::Limits,
}

/// A message to put in the outbox. Its bytes must already be in the payload store under
/// `payload_key` (see [`Outbox::store_payload`]).
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    /// `eb:MessageId`: the row's key (a second entry with the same id is refused).
    pub message_id: &'a str,
    /// `eb:ConversationId`, for logs.
    pub conversation_id: &'a str,
    /// `eb:Action`, for logs.
    pub interaction_id: &'a str,
    /// Where to POST it.
    pub address: &'a str,
    /// The HTTP `Content-Type` to send it with.
    pub content_type: &'a str,
    /// Where its bytes are.
    pub payload_key: &'a str,
    /// How hard to try.
    pub reliability: Reliability,
    /// When it was accepted (Unix ms): the persist duration counts from here.
    pub accepted_at: i64,
}

/// What happened to an outbox message, as an [`OutboxObserver`] hears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxEventKind {
    /// Attempt `attempt` (2 or more) is starting because the one before failed.
    Retry {
        /// The attempt starting.
        attempt: u32,
        /// Why the one before failed.
        last_error: String,
    },
    /// The next hop acknowledged it. Final.
    Delivered {
        /// Attempts it took.
        attempts: u32,
    },
    /// The next hop refused it (an `eb:ErrorList`, a client fault). Final.
    Rejected {
        /// Attempts made.
        attempts: u32,
        /// The next hop's words.
        reason: String,
    },
    /// No acknowledgment within the retries or the persist duration. Final.
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// Why, with the last error.
        reason: String,
    },
}

/// One event of an outbox message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Its MessageId.
    pub message_id: String,
    /// Its ConversationId.
    pub conversation_id: String,
    /// Its interaction id.
    pub interaction_id: String,
    /// Where it is being sent.
    pub address: String,
    /// When (Unix ms, the outbox's clock).
    pub at: i64,
    /// What happened.
    pub kind: OutboxEventKind,
}

/// Hears every retry, delivery, rejection and giving up of an outbox's messages, in the
/// transaction that records the change of state: what it writes through `conn` commits
/// with the change, or not at all (and the change is then made again later).
pub trait OutboxObserver: Send + Sync + 'static {
    /// Records `event`.
    fn record<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        event: &'a OutboxEvent,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

/// A durable outbox and its sender; cheap to clone. See the module documentation.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<OutboxInner>,
}

struct OutboxInner {
    settings: OutboxSettings,
    observer: Option<Arc<dyn OutboxObserver>>,
    db: Database,
    payloads: PayloadStore,
    clock: SharedClock,
    http: HttpClient,
    wake: Notify,
    /// What this process stored and is about to send: sent without reading it back.
    recent: Recent,
    /// Message ids whose state became final.
    finals: broadcast::Sender<String>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("table", &self.inner.settings.table)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// An outbox on `settings.table` in `db` (the table must exist), sending with `http`.
    /// Nothing is sent until [`Outbox::run`] runs.
    pub fn new(
        settings: OutboxSettings,
        db: Database,
        payloads: PayloadStore,
        clock: SharedClock,
        http: HttpClient,
        observer: Option<Arc<dyn OutboxObserver>>,
    ) -> Result<Outbox, Error> {
        let t = settings.table;
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Error::Config(format!(
                "the outbox table name {t:?} is not a plain SQL name"
            )));
        }
        if settings.max_in_flight == 0 {
            return Err(Error::Config("max_in_flight must be at least 1".into()));
        }
        let (finals, _) = broadcast::channel(1024);
        Ok(Outbox {
            inner: Arc::new(OutboxInner {
                settings,
                db,
                payloads,
                clock,
                http,
                observer,
                wake: Notify::new(),
                recent: Recent::default(),
                finals,
            }),
        })
    }

    /// Keeps a message's bytes under `key` in the payload store, before its entry is added.
    /// (This process's worker then sends the same bytes without reading them back.)
    pub async fn store_payload(&self, key: &str, body: Bytes) -> Result<(), Error> {
        self.inner.payloads.put(key, body.clone()).await?;
        let size = body.len();
        self.inner.recent.keep(key, body, size);
        Ok(())
    }

    /// Removes bytes stored for an entry that was not added after all.
    pub async fn discard_payload(&self, key: &str) {
        self.inner.recent.forget(key);
        if let Err(e) = self.inner.payloads.delete(key).await {
            tracing::debug!(error = %e, key, "could not remove an unused payload");
        }
    }

    /// Adds an entry (state pending); `false` if one with this MessageId is already there.
    /// Call [`Outbox::wake`] once it is committed.
    pub async fn add(&self, entry: &NewEntry<'_>) -> Result<bool, Error> {
        db::insert_outbound(self.inner.db.pool(), self.inner.settings.table, entry).await
    }

    /// [`Outbox::add`] inside the caller's transaction, so that the entry and the caller's
    /// own records commit together. Call [`Outbox::wake`] after the commit.
    pub async fn add_in(
        &self,
        conn: &mut AnyConnection,
        entry: &NewEntry<'_>,
    ) -> Result<bool, Error> {
        db::insert_outbound(conn, self.inner.settings.table, entry).await
    }

    /// Tells the sender there is something new to send.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Where a message is, if the outbox has it.
    pub async fn state(&self, message_id: &str) -> Result<Option<OutboundState>, Error> {
        Ok(
            db::outbound(&self.inner.db, self.inner.settings.table, message_id)
                .await?
                .map(|r| r.state()),
        )
    }

    /// Waits until a message is delivered or has failed, or `timeout` (clock time) passes;
    /// returns its state then.
    pub async fn wait_final(
        &self,
        message_id: &str,
        timeout: Duration,
    ) -> Result<OutboundState, Error> {
        let inner = &self.inner;
        let mut finals = inner.finals.subscribe();
        let deadline = inner
            .clock
            .now_ms()
            .saturating_add(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX));
        loop {
            let state = self
                .state(message_id)
                .await?
                .ok_or_else(|| Error::UnknownMessage(message_id.to_string()))?;
            if state.is_final() || inner.clock.now_ms() >= deadline {
                return Ok(state);
            }
            tokio::select! {
                r = finals.recv() => match r {
                    Ok(id) if id != message_id => continue,
                    _ => {}
                },
                _ = inner.clock.sleep_until(deadline) => {}
            }
        }
    }

    /// Final entries (delivered or failed) last changed before `before`: forgotten, with
    /// any bytes still stored. Returns how many.
    pub async fn purge_final(&self, before: i64) -> Result<u64, Error> {
        let inner = &self.inner;
        let keys = db::final_outbound_keys(&inner.db, inner.settings.table, before).await?;
        for key in &keys {
            inner.recent.forget(key);
            if let Err(e) = inner.payloads.delete(key).await {
                tracing::debug!(error = %e, key, "could not remove a finished message's payload");
            }
        }
        db::delete_final_outbound(&inner.db, inner.settings.table, before).await
    }

    /// Sends whatever is due until `stop` turns true (or its sender is dropped). Run it as
    /// a task; a second run on the same table (another process) shares the work safely.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let inner = self.inner;
        let mut attempts = JoinSet::new();
        loop {
            while attempts.try_join_next().is_some() {}
            let now = inner.clock.now_ms();
            let free = inner.settings.max_in_flight.saturating_sub(attempts.len());
            let mut failed_query = false;
            if free > 0 {
                match db::due_outbound(&inner.db, inner.settings.table, now, free as i64).await {
                    Ok(rows) => {
                        for row in rows {
                            if let Some(claimed) = claim(&inner, row, now).await {
                                attempts.spawn(attempt(inner.clone(), claimed));
                            }
                        }
                    }
                    Err(e) => {
                        failed_query = true;
                        tracing::warn!(error = %e, table = inner.settings.table, "cannot read the outbox; trying again shortly");
                    }
                }
            }
            let wake = if failed_query {
                Some(now + 1_000)
            } else if attempts.len() >= inner.settings.max_in_flight {
                None
            } else {
                db::next_outbound_wake(&inner.db, inner.settings.table)
                    .await
                    .unwrap_or(Some(now + 1_000))
            };
            let clock = inner.clock.clone();
            tokio::select! {
                _ = inner.wake.notified() => {}
                Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
                _ = async {
                    match wake {
                        Some(t) if t > now => clock.sleep_until(t).await,
                        Some(_) => tokio::task::yield_now().await,
                        None => std::future::pending::<()>().await,
                    }
                } => {}
                r = stop.changed() => if r.is_err() || *stop.borrow() { break },
            }
        }
    }
}

impl OutboxInner {
    fn counter(&self, what: &str) -> metrics::Counter {
        metrics::counter!(format!("{}_{what}", self.settings.metric_prefix))
    }

    /// Moves a row from the state it was read in to `to` (compare-and-set), telling the
    /// observer of `event` in the same transaction.
    async fn transition(
        &self,
        row: &OutboundRow,
        to: &OutboundState,
        lease_until: i64,
        now: i64,
        event: Option<OutboxEventKind>,
    ) -> Result<bool, Error> {
        let table = self.settings.table;
        let (Some(observer), Some(kind)) = (&self.observer, event) else {
            return db::transition(self.db.pool(), table, row, to, lease_until, now).await;
        };
        let mut tx = self.db.pool().begin().await?;
        if !db::transition(&mut *tx, table, row, to, lease_until, now).await? {
            return Ok(false);
        }
        let event = OutboxEvent {
            message_id: row.message_id.clone(),
            conversation_id: row.conversation_id.clone(),
            interaction_id: row.interaction_id.clone(),
            address: row.address.clone(),
            at: now,
            kind,
        };
        observer.record(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Takes a due row for this process (the state moves to in-flight with a lease), or
/// records that it has run out of attempts.
async fn claim(inner: &Arc<OutboxInner>, row: OutboundRow, now: i64) -> Option<OutboundRow> {
    let policy = row.policy();
    let (flight, last_error) = match row.state() {
        OutboundState::Pending(p) => (p.start(), None),
        OutboundState::Retrying(r) => {
            let error = r.last_error.clone();
            (r.start(), Some(error))
        }
        OutboundState::InFlight(f) => match f.abandoned(now, &policy) {
            AfterFailure::Retry(r) => {
                let error = r.last_error.clone();
                (r.start(), Some(error))
            }
            AfterFailure::GiveUp(failed) => {
                let to = OutboundState::Failed(failed);
                finish(inner, &row, &to, now, false).await;
                return None;
            }
        },
        OutboundState::Delivered(_) | OutboundState::Failed(_) => return None,
    };
    let timeout = i64::try_from(inner.settings.attempt_timeout.as_millis()).unwrap_or(i64::MAX);
    let lease = now.saturating_add(timeout.saturating_mul(2));
    let attempt = flight.attempt;
    let event = last_error.map(|last_error| OutboxEventKind::Retry {
        attempt,
        last_error,
    });
    match inner
        .transition(&row, &OutboundState::InFlight(flight), lease, now, event)
        .await
    {
        Ok(true) => Some(OutboundRow {
            state: "in_flight".into(),
            attempts: i64::from(attempt),
            ..row
        }),
        Ok(false) => None,
        Err(e) => {
            tracing::warn!(error = %e, message_id = %row.message_id, "cannot claim a message to send");
            None
        }
    }
}

/// Records a final or retry state, counts it, and tells waiters. `rejected`: the next hop
/// refused the message (rather than never acknowledging it).
async fn finish(
    inner: &Arc<OutboxInner>,
    row: &OutboundRow,
    to: &OutboundState,
    now: i64,
    rejected: bool,
) {
    let event = match to {
        OutboundState::Delivered(d) => Some(OutboxEventKind::Delivered {
            attempts: d.attempts,
        }),
        OutboundState::Failed(f) if rejected => Some(OutboxEventKind::Rejected {
            attempts: f.attempts,
            reason: f.reason.clone(),
        }),
        OutboundState::Failed(f) => Some(OutboxEventKind::GaveUp {
            attempts: f.attempts,
            reason: f.reason.clone(),
        }),
        _ => None,
    };
    match inner.transition(row, to, 0, now, event).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot record the outcome of a sending attempt; it will be retried");
            return;
        }
    }
    match to {
        OutboundState::Delivered(d) => {
            inner.counter("messages_sent_total").increment(1);
            tracing::info!(
                attempts = d.attempts,
                "delivered: the next MHS acknowledged it"
            );
            inner.recent.forget(&row.payload_key);
            if let Err(e) = inner.payloads.delete(&row.payload_key).await {
                tracing::debug!(error = %e, "could not remove a delivered message's payload");
            }
        }
        OutboundState::Failed(f) => {
            inner.counter("messages_failed_total").increment(1);
            tracing::error!(reason = %f.reason, attempts = f.attempts, "failed: giving up on this message");
        }
        OutboundState::Retrying(r) => {
            tracing::warn!(error = %r.last_error, attempts = r.attempts, next_attempt_at = r.next_attempt_at, "not acknowledged; will retry");
            inner.wake.notify_one();
            return;
        }
        _ => return,
    }
    let _ = inner.finals.send(row.message_id.clone());
}

/// How one attempt ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Acknowledged,
    Transient(String),
    Rejected(String),
}

async fn attempt(inner: Arc<OutboxInner>, row: OutboundRow) {
    let span = tracing::info_span!("mhs.attempt", outbox = inner.settings.table, conversation_id = %row.conversation_id, message_id = %row.message_id, interaction = %row.interaction_id, attempt = row.attempts);
    async {
        if row.attempts > 1 {
            inner.counter("messages_retried_total").increment(1);
        }
        let stored = match inner.recent.take(&row.payload_key) {
            Some(body) => Ok(body),
            None => inner.payloads.get(&row.payload_key).await,
        };
        let outcome = match stored {
            Ok(body) => post(&inner, &row, body).await,
            Err(e) => Outcome::Rejected(format!("the stored message cannot be read: {e}")),
        };
        let now = inner.clock.now_ms();
        let flight = InFlight {
            attempt: row.attempts_u32(),
        };
        let rejected = matches!(outcome, Outcome::Rejected(_));
        let to = match outcome {
            Outcome::Acknowledged => OutboundState::Delivered(flight.acknowledged(now)),
            Outcome::Rejected(reason) => OutboundState::Failed(flight.rejected(reason)),
            Outcome::Transient(error) => match flight.transient(error, now, &row.policy()) {
                AfterFailure::Retry(r) => OutboundState::Retrying(r),
                AfterFailure::GiveUp(f) => OutboundState::Failed(f),
            },
        };
        finish(&inner, &row, &to, now, rejected).await;
    }
    .instrument(span)
    .await
}

async fn post(inner: &Arc<OutboxInner>, row: &OutboundRow, body: Bytes) -> Outcome {
    let request = http::Request::post(&row.address)
        .header(http::header::CONTENT_TYPE, &row.content_type)
        .body(Full::new(body));
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Rejected(format!("the address {} is not usable: {e}", row.address));
        }
    };
    let timeout = inner.settings.attempt_timeout;
    let exchange = async {
        let response = inner.http.request(request).await.map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        })?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), 1024 * 1024)
            .collect()
            .await
            .map_err(|e| format!("the answer could not be read: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    let (status, body) = tokio::select! {
        r = exchange => match r {
            Ok(x) => x,
            Err(e) => return Outcome::Transient(format!("no answer from {}: {e}", row.address)),
        },
        _ = inner.clock.sleep(timeout) => {
            return Outcome::Transient(format!("no answer from {} within {timeout:?}", row.address));
        }
    };
    classify(status, &body, &row.message_id, &inner.settings.limits)
}

/// What an answer means for the message it answers: acknowledged, rejected for good, or
/// worth another try.
pub(crate) fn classify(
    status: http::StatusCode,
    body: &[u8],
    message_id: &str,
    limits: &ebxml::Limits,
) -> Outcome {
    match Reply::parse(body, limits) {
        Ok(Reply::Envelope(env)) => {
            if let Some(ack) = &env.acknowledgment {
                if ack.ref_to_message_id.trim() == message_id {
                    return Outcome::Acknowledged;
                }
                return Outcome::Transient(format!(
                    "the acknowledgment refers to {}, not to this message",
                    ack.ref_to_message_id
                ));
            }
            if let Some(list) = &env.error_list {
                let words: Vec<String> = list
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.code, e.description.clone().unwrap_or_default()))
                    .collect();
                let transient = status == http::StatusCode::SERVICE_UNAVAILABLE
                    || list.errors.iter().all(|e| {
                        e.code == ebxml::ErrorCode::DeliveryFailure
                            && e.severity == ebxml::Severity::Warning
                    });
                let text = format!(
                    "the receiving MHS answered with errors: {}",
                    words.join("; ")
                );
                return if transient {
                    Outcome::Transient(text)
                } else {
                    Outcome::Rejected(text)
                };
            }
            Outcome::Transient(format!(
                "HTTP {status}: the answer was neither an acknowledgment nor an error list"
            ))
        }
        Ok(Reply::Fault(fault)) => {
            let words: Vec<String> = fault
                .errors
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.error_code,
                        e.description.clone().unwrap_or_default()
                    )
                })
                .collect();
            let text = format!(
                "the receiving MHS answered with a SOAP fault ({}: {}) {}",
                fault.fault_code,
                fault.fault_string,
                words.join("; ")
            );
            if fault.fault_code.to_ascii_lowercase().contains("server") {
                Outcome::Transient(text)
            } else {
                Outcome::Rejected(text)
            }
        }
        Err(_) => {
            let code = status.as_u16();
            if (400..500).contains(&code) && code != 408 && code != 429 {
                Outcome::Rejected(format!("HTTP {status} from the receiving MHS"))
            } else {
                Outcome::Transient(format!("HTTP {status} without a readable acknowledgment"))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use ebxml::{MessageData, MessageHeader, OutboundMessage, Party};

    fn header(id: &str) -> ebxml::Envelope {
        let h = MessageHeader {
            from: Party::spine("A-1"),
            to: Party::spine("B-2"),
            cpa_id: "CPA".into(),
            conversation_id: "C".into(),
            service: ebxml::SERVICE_GP2GP.into(),
            action: "RCMR_IN010000UK05".into(),
            message_data: MessageData {
                message_id: id.into(),
                timestamp: "t".into(),
                ref_to_message_id: None,
                time_to_live: None,
            },
            duplicate_elimination: true,
        };
        OutboundMessage::builder(h)
            .reliable()
            .build(&ebxml::Limits::default())
            .unwrap()
            .envelope()
            .clone()
    }

    fn ids() -> ebxml::ReplyIds {
        ebxml::ReplyIds {
            message_id: "R".into(),
            timestamp: "t".into(),
        }
    }

    /// What an answer with `status` and `body` means for message `id`, in a word.
    fn verdict(status: u16, body: &[u8], id: &str) -> String {
        let status = http::StatusCode::from_u16(status).unwrap();
        match classify(status, body, id, &ebxml::Limits::default()) {
            Outcome::Acknowledged => "acknowledged".into(),
            Outcome::Transient(why) => format!("transient: {why}"),
            Outcome::Rejected(why) => format!("rejected: {why}"),
        }
    }

    #[test]
    fn an_acknowledgment_of_this_message_delivers_it() {
        let ack = ebxml::acknowledgment(&header("M1"), &ids()).to_xml();
        assert_eq!(verdict(200, ack.as_bytes(), "M1"), "acknowledged");
        assert!(verdict(200, ack.as_bytes(), "M2").starts_with("transient"));
    }

    #[test]
    fn an_error_list_rejects_and_a_server_fault_is_retried() {
        let detail = ebxml::ErrorDetail {
            code: ebxml::ErrorCode::ValueNotRecognized,
            severity: ebxml::Severity::Error,
            code_context: ebxml::CODE_CONTEXT_EBXML.into(),
            location: None,
            description: Some("wrong To".into()),
        };
        let env = ebxml::message_error(&header("M1").message_header, &ids(), vec![detail]).to_xml();
        let v = verdict(500, env.as_bytes(), "M1");
        assert!(v.starts_with("rejected") && v.contains("wrong To"), "{v}");
        let mut fault = ebxml::SoapFault::from_error(&ebxml::Error::NoParts);
        assert!(verdict(500, fault.to_xml().as_bytes(), "M1").starts_with("rejected"));
        fault.fault_code = "SOAP:Server".into();
        assert!(verdict(500, fault.to_xml().as_bytes(), "M1").starts_with("transient"));
        assert!(verdict(502, b"", "M1").starts_with("transient"));
        assert!(verdict(404, b"nope", "M1").starts_with("rejected"));
    }
}
