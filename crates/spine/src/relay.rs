//! The message relay: the Spine MHS hop every GP2GP message takes, and the national
//! message log it writes.
//!
//! # Where it sits
//!
//! On live Spine, GP2GP traffic goes MHS → Spine → MHS: a practice's message handler never
//! posts straight to another practice's, it posts to Spine, which passes the message on.
//! Lloyd does the same. With the relay on (the default), the SDS Endpoint API answers
//! the relay's URL, `{base_url}/reliablemessaging/forwardreliable`, as the `address` of
//! every forward-reliable GP2GP interaction, while the directory keeps each system's own
//! MHS address — the one the relay forwards to (see [`crate::sds`]). A sending MHS looks
//! the destination up as usual, gets the destination's party key, CPA id and reliability
//! settings, and the relay's address.
//!
//! # One message through the relay
//!
//! `POST /reliablemessaging/forwardreliable` with an ebXML message, exactly as one MHS
//! posts to another:
//!
//! 1. **Read and check** it as an MHS would ([`mhs::hop`]): size limit, MIME, the header
//!    (CPAId, ConversationId, MessageId, service, action, manifest). Unreadable: a SOAP
//!    fault; incomplete: an `eb:ErrorList`.
//! 2. **Route** it by `eb:To/eb:PartyId`: the party must be a system in the SDS directory
//!    ([`sds::Directory::by_party_key`]) that receives `{service}:{action}` and has an
//!    address of its own. Otherwise an `eb:ErrorList` (`ValueNotRecognized` at
//!    `eb:To/eb:PartyId` or `eb:Action`, `DeliveryFailure` for a missing address) saying
//!    which, and a `refused` log entry with `jdiEvent` 24.
//! 3. **Persist, de-duplicating on MessageId**: the bytes go to the payload store, and in
//!    one transaction the message joins the relay's outbox (`relay_outbound`, keyed by
//!    MessageId) and its `received` entry is written to the log. A MessageId already in
//!    the outbox is a duplicate: acknowledged again (the sender needs to hear it), logged as
//!    `duplicate`, not forwarded again. If storing fails, a `SOAP:Server` fault asks the
//!    sender to try again later.
//! 4. **Acknowledge**: `eb:Acknowledgment` on the same exchange. From here the message is
//!    Spine's responsibility.
//! 5. **Forward** the original bytes — same MessageId, From, To, manifest and parts, same
//!    `Content-Type` — to the receiving system's own MHS address, with the receiving
//!    system's reliability settings from SDS (`retry_interval`, `retries`,
//!    `persist_duration`), by [`mhs::Outbox`]: its worker retries what is not
//!    acknowledged, stops at an `eb:ErrorList` or client fault, and takes over, after a
//!    restart, whatever was under way (a message whose attempt was cut off is tried
//!    again; the receiving MHS drops the duplicate, so its consumer sees it once). Every
//!    retry, rejection and giving up is logged in the same transaction as the outbox's
//!    change of state. Over HTTPS the relay presents its certificate (mutual TLS,
//!    [`RelayConfig`]'s `tls_*`).
//!
//! The log's fields and events are described in [`crate::message_log`]; it is read with
//! `GET /spine/message-log?conversationId=…&since=…`, JSON lines (`application/x-ndjson`)
//! in time order; a bad parameter is a 400 `OperationOutcome`.
//!
//! # Counters
//!
//! `spine_relay_messages_received_total`, `spine_relay_duplicates_total`,
//! `spine_relay_messages_refused_total{code}` (the ebXML error code), and the outbox's
//! `spine_relay_messages_sent_total` (forwarded and acknowledged),
//! `spine_relay_messages_retried_total`, `spine_relay_messages_failed_total`; requests in
//! `spine_requests_total{service="relay"}`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ebxml::{ErrorCode, ErrorDetail, MessageHeader};
use mhs::hop;
use mhs::outbox::NewEntry as OutboxEntry;
use mhs::{Outbox, OutboxEvent, OutboxEventKind, OutboxObserver, OutboxSettings};
use serde::{Deserialize, Serialize};
use store::sqlx::AnyConnection;
use store::{Database, Migration, PayloadStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::message_log::{
    self, Cursor, LogEvent, LogQuery, MessageFacts, MessageLog, NO_EVENT, NOT_PROVIDED, SDS_ERROR,
    SPINE_ERROR, UNKNOWN,
};
use crate::sds::{self, Directory, Organisation, System};

/// Where the relay receives: `{base_url}` + this.
pub const PATH: &str = "/reliablemessaging/forwardreliable";
/// Where the national message log is read.
pub const LOG_PATH: &str = "/spine/message-log";
/// The relay's outbox table.
const OUTBOX_TABLE: &str = "relay_outbound";
/// Entries per page when the log is streamed.
const PAGE: i64 = 1_000;

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "the relay's outbox",
        sqlite: mhs::outbox_table!("relay_outbound"),
        postgres: mhs::outbox_table!("relay_outbound"),
    },
    Migration {
        version: 2,
        description: "the national message log",
        sqlite: message_log::MIGRATION_SQLITE,
        postgres: message_log::MIGRATION_POSTGRES,
    },
];

/// `[relay]`: the message relay and its log. On unless `enabled = false`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Run the relay (and answer its URL as the address of GP2GP endpoints in SDS).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long one forwarding attempt may wait for the receiving MHS's answer.
    #[serde(default = "default_attempt_timeout")]
    pub attempt_timeout_secs: u64,
    /// Forwarding attempts under way at once.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// How long a forwarded (or failed) message's id is remembered, to recognise a
    /// sender's retransmission as a duplicate. Longer than any sender's persist duration.
    #[serde(default = "default_remember_hours")]
    pub remember_hours: u64,
    /// The relay's certificate chain (PEM), presented when forwarding over HTTPS.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// The CA (PEM) receiving MHSs' certificates must be signed by.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
}

fn yes() -> bool {
    true
}
fn default_attempt_timeout() -> u64 {
    30
}
fn default_max_in_flight() -> usize {
    32
}
fn default_remember_hours() -> u64 {
    24
}

impl Default for RelayConfig {
    fn default() -> RelayConfig {
        RelayConfig {
            enabled: true,
            attempt_timeout_secs: default_attempt_timeout(),
            max_in_flight: default_max_in_flight(),
            remember_hours: default_remember_hours(),
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
        }
    }
}

impl RelayConfig {
    /// The mutual-TLS identity, when all three files are given; an error names what is
    /// missing or unreadable.
    pub fn tls(&self) -> Result<Option<mhs::TlsConfig>> {
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p)
                .map_err(|e| Error::Config(format!("[relay] cannot read {}: {e}", p.display())))
        };
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(mhs::TlsConfig {
                cert_chain_pem: read(cert)?,
                key_pem: read(key)?,
                ca_pem: read(ca)?,
            })),
            _ => Err(Error::Config(
                "[relay] mutual TLS needs all three of tls_cert, tls_key and tls_ca".into(),
            )),
        }
    }
}

/// The running relay: its forwarding worker and housekeeping. Dropping it stops them at
/// once, like a crash (everything persisted carries on when a relay starts again on the
/// same database); [`Relay::shutdown`] stops them in order.
pub struct Relay {
    handle: RelayHandle,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("url", &self.handle.inner.url)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for Relay {
    type Target = RelayHandle;
    fn deref(&self) -> &RelayHandle {
        &self.handle
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What the relay's handlers share; cheap to clone.
#[derive(Clone)]
pub struct RelayHandle {
    inner: Arc<RelayInner>,
}

impl std::fmt::Debug for RelayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayHandle")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

struct RelayInner {
    db: Database,
    clock: clock::SharedClock,
    directory: Directory,
    outbox: Outbox,
    log: MessageLog,
    limits: ebxml::Limits,
    url: String,
}

impl Relay {
    /// Starts the relay on `db` (creating its tables): the forwarding worker picks up
    /// whatever an earlier run left undelivered. `directory` routes by party key;
    /// `base_url` is the server's public address (`http://127.0.0.1:8080`).
    pub async fn start(
        db: Database,
        payloads: PayloadStore,
        clock: clock::SharedClock,
        directory: Directory,
        config: &RelayConfig,
        base_url: &str,
    ) -> Result<Relay> {
        db.migrate("relay", MIGRATIONS).await?;
        let tls = config.tls()?;
        let http = mhs::tls::http_client(tls.as_ref())?;
        let limits = ebxml::Limits::default();
        let outbox = Outbox::new(
            OutboxSettings {
                table: OUTBOX_TABLE,
                metric_prefix: "spine_relay",
                attempt_timeout: Duration::from_secs(config.attempt_timeout_secs.max(1)),
                max_in_flight: config.max_in_flight,
                limits,
            },
            db.clone(),
            payloads,
            clock.clone(),
            http,
            Some(Arc::new(LogObserver)),
        )?;
        let (stop, _) = watch::channel(false);
        let remember = Duration::from_secs(config.remember_hours.saturating_mul(3600));
        let handle = RelayHandle {
            inner: Arc::new(RelayInner {
                log: MessageLog::new(db.clone()),
                db,
                clock,
                directory,
                outbox,
                limits,
                url: format!("{}{PATH}", base_url.trim_end_matches('/')),
            }),
        };
        let tasks = vec![
            tokio::spawn(handle.inner.outbox.clone().run(stop.subscribe())),
            tokio::spawn(housekeeping(handle.clone(), remember, stop.subscribe())),
        ];
        tracing::info!(url = %handle.inner.url, "Spine relay started");
        Ok(Relay {
            handle,
            stop,
            tasks,
        })
    }

    /// A handle for handlers and tests.
    pub fn handle(&self) -> RelayHandle {
        self.handle.clone()
    }

    /// Stops the worker and housekeeping, waiting for them. Undelivered messages stay in
    /// the database and are forwarded by the next start.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

/// Forgets finished messages once they are older than the de-duplication window.
async fn housekeeping(h: RelayHandle, remember: Duration, mut stop: watch::Receiver<bool>) {
    let window = i64::try_from(remember.as_millis()).unwrap_or(i64::MAX);
    loop {
        let before = h.inner.clock.now_ms().saturating_sub(window);
        match h.inner.outbox.purge_final(before).await {
            Ok(n) if n > 0 => tracing::debug!(forgotten = n, "relayed message ids forgotten"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot purge the relay's outbox"),
        }
        tokio::select! {
            _ = h.inner.clock.sleep(Duration::from_secs(600)) => {}
            _ = stop.changed() => return,
        }
    }
}

impl RelayHandle {
    /// The relay's URL, as SDS answers it.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The national message log.
    pub fn log(&self) -> &MessageLog {
        &self.inner.log
    }

    /// Where forwarding a message stands, if the relay has it.
    pub async fn forward_state(&self, message_id: &str) -> Result<Option<mhs::OutboundState>> {
        Ok(self.inner.outbox.state(message_id).await?)
    }

    /// Waits until a message is forwarded or has failed, or `timeout` of clock time
    /// passes; its state then.
    pub async fn wait_forwarded(
        &self,
        message_id: &str,
        timeout: Duration,
    ) -> Result<mhs::OutboundState> {
        Ok(self.inner.outbox.wait_final(message_id, timeout).await?)
    }

    /// `POST /reliablemessaging/forwardreliable` and `GET /spine/message-log`.
    pub fn router(&self) -> Router {
        Router::new()
            .route(PATH, post(receive))
            .route(LOG_PATH, get(read_log))
            .with_state(self.clone())
    }
}

/// Whom a message goes to, and who sent it, as SDS knows them.
struct Route {
    to_org: Organisation,
    to_system: System,
    from_org: Option<Organisation>,
    from_system: Option<System>,
}

/// Why a message cannot be routed.
enum Unroutable {
    /// SDS does not know where it goes: refused (GP2GP code 24).
    Refused(ErrorDetail),
    /// The directory could not be read: the sender should try again.
    Store(Error),
}

fn system_of(org: &Organisation, party_key: &str) -> Option<System> {
    org.systems
        .iter()
        .find(|s| s.party_key == party_key)
        .cloned()
}

async fn route(directory: &Directory, h: &MessageHeader) -> Result<Route, Unroutable> {
    let to = h.to.id.trim();
    let to_org = directory
        .by_party_key(to)
        .await
        .map_err(Unroutable::Store)?;
    let Some((to_org, to_system)) = to_org.and_then(|o| system_of(&o, to).map(|s| (o, s))) else {
        return Err(Unroutable::Refused(hop::invalid(
            ErrorCode::ValueNotRecognized,
            "eb:MessageHeader/eb:To/eb:PartyId",
            format!(
                "party key {to} is not in SDS: Spine cannot route the message; use the nhsMhsPartyKey of the receiving organisation's Endpoint"
            ),
        )));
    };
    let interaction = format!("{}:{}", h.service, h.action);
    if !to_system.interactions.contains(&interaction) {
        return Err(Unroutable::Refused(hop::invalid(
            ErrorCode::ValueNotRecognized,
            "eb:MessageHeader/eb:Action",
            format!(
                "party key {to} ({}) does not receive {interaction} according to SDS",
                to_org.ods
            ),
        )));
    }
    if to_system.address.trim().is_empty() {
        return Err(Unroutable::Refused(hop::invalid(
            ErrorCode::DeliveryFailure,
            "eb:MessageHeader/eb:To/eb:PartyId",
            format!(
                "party key {to} ({}) has no MHS address in SDS: Spine cannot deliver to it",
                to_org.ods
            ),
        )));
    }
    let from = h.from.id.trim();
    let from_org = directory
        .by_party_key(from)
        .await
        .map_err(Unroutable::Store)?;
    let from_system = from_org.as_ref().and_then(|o| system_of(o, from));
    Ok(Route {
        to_org,
        to_system,
        from_org,
        from_system,
    })
}

/// What the HL7 payload says about a message, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
struct Hl7Facts {
    from_asid: Option<String>,
    to_asid: Option<String>,
    message_ref: Option<String>,
    /// The reason code of a negative acknowledgement (`99` when it gives none).
    negative_reason: Option<String>,
}

fn hl7_facts(message: &ebxml::Message) -> Hl7Facts {
    let Some(bytes) = message.payload().and_then(|p| p.decoded().ok()) else {
        return Hl7Facts::default();
    };
    let Ok(m) = hl7v3::Message::parse(&bytes) else {
        return Hl7Facts::default();
    };
    let own = |s: Option<&str>| {
        s.map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let negative = matches!(m.ack_type(), Some("AE" | "AR"));
    Hl7Facts {
        from_asid: own(m.from_asid()),
        to_asid: own(m.to_asid()),
        message_ref: own(m.acknowledged_message_id()),
        negative_reason: negative.then(|| own(m.reason_code()).unwrap_or_else(|| "99".to_string())),
    }
}

fn or_unknown(v: Option<String>) -> String {
    v.unwrap_or_else(|| UNKNOWN.to_string())
}

/// The log's facts about a message routed by `route` (or not routed, when `None`).
fn facts(message: &ebxml::Message, hl7: Hl7Facts, route: Option<&Route>) -> MessageFacts {
    let h = &message.envelope().message_header;
    let supplier = |o: Option<&Organisation>| o.and_then(|o| o.supplier.clone());
    MessageFacts {
        conversation_id: h.conversation_id.trim().to_string(),
        guid: h.message_data.message_id.trim().to_string(),
        interaction_id: h.action.trim().to_string(),
        message_sender: or_unknown(
            hl7.from_asid
                .or_else(|| route?.from_system.as_ref().map(|s| s.asid.clone())),
        ),
        message_recipient: or_unknown(
            hl7.to_asid
                .or_else(|| route.map(|r| r.to_system.asid.clone())),
        ),
        message_ref: hl7.message_ref.unwrap_or_else(|| NOT_PROVIDED.to_string()),
        from_system: or_unknown(supplier(route.and_then(|r| r.from_org.as_ref()))),
        to_system: or_unknown(supplier(route.map(|r| &r.to_org))),
    }
}

/// The facts of a message whose header could not be read.
fn unreadable_facts() -> MessageFacts {
    MessageFacts {
        conversation_id: UNKNOWN.into(),
        guid: UNKNOWN.into(),
        interaction_id: UNKNOWN.into(),
        message_sender: UNKNOWN.into(),
        message_recipient: UNKNOWN.into(),
        message_ref: NOT_PROVIDED.into(),
        from_system: UNKNOWN.into(),
        to_system: UNKNOWN.into(),
    }
}

/// The receiving system's reliability settings, as the outbox wants them; a setting SDS
/// leaves out (or writes unreadably) takes the MHS default.
fn reliability(r: &sds::Reliability) -> mhs::Reliability {
    let d = mhs::Reliability::default();
    let duration = |v: &Option<String>| v.as_deref().and_then(mhs::sds::parse_duration);
    mhs::Reliability {
        retry_interval: duration(&r.retry_interval).unwrap_or(d.retry_interval),
        retries: r.retries.unwrap_or(d.retries),
        persist_duration: duration(&r.persist_duration).unwrap_or(d.persist_duration),
    }
}

fn words(errors: &[ErrorDetail]) -> String {
    errors
        .iter()
        .map(|e| {
            format!(
                "{} at {}: {}",
                e.code,
                e.location.as_deref().unwrap_or("-"),
                e.description.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

async fn receive(State(h): State<RelayHandle>, headers: HeaderMap, body: Body) -> Response {
    let span = tracing::info_span!(
        "spine.relay",
        conversation_id = tracing::field::Empty,
        message_id = tracing::field::Empty,
        interaction = tracing::field::Empty,
    );
    h.receive(headers, body).instrument(span).await
}

impl RelayHandle {
    /// Writes a `refused` entry and counts it; a log that cannot be written is only traced
    /// (the answer to the sender matters more).
    async fn refuse(&self, facts: &MessageFacts, jdi: &str, code: &ErrorCode, detail: &str) {
        metrics::counter!("spine_relay_messages_refused_total", "code" => code.to_string())
            .increment(1);
        tracing::warn!(%code, detail, "refused a message");
        self.append(facts, jdi, LogEvent::Refused, Some(detail))
            .await;
    }

    async fn append(&self, facts: &MessageFacts, jdi: &str, event: LogEvent, detail: Option<&str>) {
        let entry = message_log::NewEntry {
            time_ms: self.inner.clock.now_ms(),
            facts,
            jdi_event: jdi,
            event,
            detail,
        };
        if let Err(e) = message_log::append(self.inner.db.pool(), &entry).await {
            tracing::error!(error = %e, %event, "cannot write the message log");
        }
    }

    async fn receive(&self, headers: HeaderMap, body: Body) -> Response {
        let inner = &self.inner;
        let received = match hop::read_message(&headers, body, &inner.limits).await {
            Ok(r) => r,
            Err(e) => {
                let detail = format!("the message cannot be read: {e}");
                self.refuse(&unreadable_facts(), SPINE_ERROR, &e.error_code(), &detail)
                    .await;
                return hop::fault(&e);
            }
        };
        let message = &received.message;
        let header = &message.envelope().message_header;
        let span = tracing::Span::current();
        span.record("conversation_id", header.conversation_id.as_str());
        span.record("message_id", header.message_data.message_id.as_str());
        span.record("interaction", header.action.as_str());
        let ids = || hop::reply_ids(inner.clock.now_ms());

        let errors = hop::check_header(message);
        if let Some(first) = errors.first() {
            let f = facts(message, hl7_facts(message), None);
            self.refuse(&f, SPINE_ERROR, &first.code, &words(&errors))
                .await;
            return hop::error_list(header, &ids(), errors);
        }
        let route = match route(&inner.directory, header).await {
            Ok(r) => r,
            Err(Unroutable::Refused(error)) => {
                let f = facts(message, hl7_facts(message), None);
                self.refuse(
                    &f,
                    SDS_ERROR,
                    &error.code,
                    &words(std::slice::from_ref(&error)),
                )
                .await;
                return hop::error_list(header, &ids(), vec![error]);
            }
            Err(Unroutable::Store(e)) => {
                tracing::error!(error = %e, "cannot read SDS to route a message; the sender will retry");
                return hop::server_fault("Spine cannot read its directory just now");
            }
        };
        let hl7 = hl7_facts(message);
        let jdi = hl7
            .negative_reason
            .clone()
            .unwrap_or_else(|| NO_EVENT.to_string());
        let facts = facts(message, hl7, Some(&route));
        match self.persist(&received, &route, &facts, &jdi).await {
            Ok(true) => {
                metrics::counter!("spine_relay_messages_received_total").increment(1);
                tracing::info!(to = %route.to_system.party_key, address = %route.to_system.address, "accepted for forwarding");
                inner.outbox.wake();
            }
            Ok(false) => {
                metrics::counter!("spine_relay_duplicates_total").increment(1);
                tracing::info!("duplicate: acknowledged again, not forwarded again");
                self.append(&facts, NO_EVENT, LogEvent::Duplicate, None)
                    .await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot store a message; the sender will retry");
                return hop::server_fault(&format!("Spine could not store the message: {e}"));
            }
        }
        hop::acknowledge(message.envelope(), &ids())
    }

    /// Stores the bytes, then adds the message to the outbox and writes its `received`
    /// entry in one transaction; `false` if the outbox already has its MessageId.
    async fn persist(
        &self,
        received: &hop::Received,
        route: &Route,
        facts: &MessageFacts,
        jdi: &str,
    ) -> Result<bool> {
        let inner = &self.inner;
        let key = format!("relay/{}", uuid::Uuid::new_v4().simple());
        inner
            .outbox
            .store_payload(&key, received.body.clone())
            .await?;
        let now = inner.clock.now_ms();
        let added = async {
            let mut tx = inner.db.pool().begin().await?;
            let entry = OutboxEntry {
                message_id: &facts.guid,
                conversation_id: &facts.conversation_id,
                interaction_id: &facts.interaction_id,
                address: route.to_system.address.trim(),
                content_type: &received.content_type,
                payload_key: &key,
                reliability: reliability(&route.to_system.reliability),
                accepted_at: now,
            };
            if !inner.outbox.add_in(&mut tx, &entry).await? {
                return Ok(false);
            }
            let log = message_log::NewEntry {
                time_ms: now,
                facts,
                jdi_event: jdi,
                event: LogEvent::Received,
                detail: None,
            };
            message_log::append(&mut *tx, &log).await?;
            tx.commit().await?;
            Ok::<bool, Error>(true)
        }
        .await;
        if !matches!(added, Ok(true)) {
            inner.outbox.discard_payload(&key).await;
        }
        added
    }
}

/// Writes the outbox's retries, rejections and failures to the log.
struct LogObserver;

impl OutboxObserver for LogObserver {
    fn record<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        event: &'a OutboxEvent,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), mhs::Error>> + Send + 'a>> {
        Box::pin(async move {
            let to = &event.address;
            let (kind, detail) = match &event.kind {
                OutboxEventKind::Delivered { .. } => return Ok(()),
                OutboxEventKind::Retry {
                    attempt,
                    last_error,
                } => (
                    LogEvent::Retry,
                    format!("forwarding attempt {attempt} to {to}; the one before: {last_error}"),
                ),
                OutboxEventKind::Rejected { reason, .. } => (
                    LogEvent::Rejected,
                    format!("the MHS at {to} refused the message: {reason}"),
                ),
                OutboxEventKind::GaveUp { reason, .. } => {
                    (LogEvent::Failed, format!("not delivered to {to}: {reason}"))
                }
            };
            let written = message_log::append_about(
                conn,
                &event.message_id,
                event.at,
                SPINE_ERROR,
                kind,
                &detail,
            )
            .await?;
            if !written {
                // No `received` entry to repeat (a database edited by hand): what the
                // outbox knows.
                let facts = MessageFacts {
                    conversation_id: event.conversation_id.clone(),
                    guid: event.message_id.clone(),
                    interaction_id: event.interaction_id.clone(),
                    ..unreadable_facts()
                };
                let entry = message_log::NewEntry {
                    time_ms: event.at,
                    facts: &facts,
                    jdi_event: SPINE_ERROR,
                    event: kind,
                    detail: Some(&detail),
                };
                message_log::append(&mut *conn, &entry).await?;
            }
            Ok(())
        })
    }
}

fn ndjson(entries: &[message_log::LogEntry]) -> Bytes {
    let mut out = Vec::with_capacity(entries.len() * 320);
    for e in entries {
        if serde_json::to_writer(&mut out, e).is_ok() {
            out.push(b'\n');
        }
    }
    Bytes::from(out)
}

/// The next piece of a streamed log answer.
enum Next {
    Chunk(Bytes, Option<Cursor>),
    After(Cursor),
    Done,
}

async fn read_log(
    State(h): State<RelayHandle>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let query = LogQuery::from_params(&params)?;
    let log = h.inner.log.clone();
    // The first page before answering, so that a failing database is a proper 500.
    let (first, cursor) = log.page(&query, None, PAGE).await?;
    let start = Next::Chunk(ndjson(&first), cursor);
    let stream = futures::stream::unfold(start, move |next| {
        let log = log.clone();
        let query = query.clone();
        async move {
            match next {
                Next::Done => None,
                Next::Chunk(bytes, cursor) => {
                    Some((Ok(bytes), cursor.map_or(Next::Done, Next::After)))
                }
                Next::After(after) => match log.page(&query, Some(after), PAGE).await {
                    Ok((entries, Some(c))) => Some((Ok(ndjson(&entries)), Next::After(c))),
                    Ok((_, None)) => None,
                    Err(e) => {
                        tracing::error!(error = %e, "the message log could not be read to the end");
                        Some((Err(e), Next::Done))
                    }
                },
            }
        }
    });
    let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reliability_comes_from_sds_with_mhs_defaults_for_gaps() {
        let r = reliability(&sds::Reliability {
            retry_interval: Some("PT30S".into()),
            retries: Some(5),
            persist_duration: None,
            ..sds::Reliability::default()
        });
        assert_eq!(r.retry_interval, Duration::from_secs(30));
        assert_eq!(r.retries, 5);
        assert_eq!(
            r.persist_duration,
            mhs::Reliability::default().persist_duration
        );
        let r = reliability(&sds::Reliability {
            retry_interval: Some("soon".into()),
            retries: None,
            ..sds::Reliability::default()
        });
        assert_eq!(r.retry_interval, mhs::Reliability::default().retry_interval);
        assert_eq!(r.retries, mhs::Reliability::default().retries);
    }

    #[test]
    fn the_config_refuses_half_a_tls_identity() {
        let c = RelayConfig {
            tls_cert: Some("cert.pem".into()),
            ..RelayConfig::default()
        };
        assert!(matches!(c.tls(), Err(Error::Config(m)) if m.contains("all three")));
        assert!(RelayConfig::default().tls().unwrap().is_none());
        let c: RelayConfig = toml::from_str("enabled = false").unwrap();
        assert!(!c.enabled);
        assert_eq!(c.remember_hours, 24);
        assert!(toml::from_str::<RelayConfig>("enable = false").is_err());
    }
}
