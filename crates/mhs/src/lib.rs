//! Reliable ebXML messaging: Lloyd's MHS (Message Handling Server).
//!
//! # Forward-reliable messaging, for a newcomer
//!
//! GP2GP messages cross Spine one HTTP POST at a time. The network may drop a connection,
//! a server may restart, an answer may be lost after the message arrived. *Forward-
//! reliable* messaging (ebXML's "reliable messaging", as Spine uses it) makes each hop
//! safe anyway, with three promises:
//!
//! 1. **The sender persists first.** [`MhsHandle::send`] writes the message, in its final
//!    wire form, to the database and the payload store *before* anything is sent, and
//!    returns its MessageId only then. A crash after that loses nothing: the next start
//!    picks the message up.
//! 2. **The receiver acknowledges what it has persisted.** The receiving MHS answers the
//!    same HTTP exchange with an `eb:Acknowledgment` only once the message is on its disk;
//!    from then on the message is its responsibility. Until an acknowledgment arrives the
//!    sender retries, every `nhsMHSRetryInterval`, at most `nhsMHSRetries` times, within
//!    `nhsMHSPersistDuration` — the destination's reliability settings from SDS.
//! 3. **The receiver drops duplicates.** Retries mean the same message can arrive twice
//!    (the acknowledgment of the first copy may be the thing that was lost). The receiver
//!    remembers every MessageId for the persist duration; a duplicate is acknowledged
//!    again — the sender needs to hear it — but not delivered again.
//!
//! Together: every message is delivered to the next hop at least once, and handed to the
//! consumer there once.
//!
//! # An outbound message's life
//!
//! The states are types in [`state`] (each transition consumes the state it leaves, so an
//! impossible one does not compile) and rows in the `mhs_outbound` table:
//!
//! ```text
//! send() ─► Pending ─start─► InFlight ─acknowledged─► Delivered
//!                             │  │  └─rejected (ErrorList, client fault)─► Failed
//!                transient /  │  └─transient / abandoned, nothing left─► Failed
//!              abandoned, ◄───┘
//!              retries left
//!                  ▼
//!              Retrying ─start (after the interval)─► InFlight
//! ```
//!
//! - *transient*: no connection, the connection closed before the answer, no answer in
//!   `attempt_timeout`, a `SOAP:Server` fault, an HTTP 5xx without an ebXML answer;
//! - *rejected*: an `eb:ErrorList` or a `SOAP:Client` fault — the receiver read the
//!   message and will not take it, so sending it again cannot help;
//! - *abandoned*: the process running the attempt died (its lease on the row ran out);
//!   another start, or another process on the same database, takes it over.
//!
//! A row changes state only by compare-and-set on (state, attempts), so several processes
//! can share one PostgreSQL outbox without sending a message twice at once.
//! [`MhsHandle::status`] and [`MhsHandle::wait_final`] answer where a message is.
//!
//! The sending machinery is [`outbox`]: a table of messages already in wire form and the
//! worker that delivers them. The MHS has one (`mhs_outbound`); anyone who needs to pass
//! already-built messages on reliably can have their own — Spine's relay (the `spine`
//! crate) forwards what it receives through an outbox of its own table, and hears every
//! retry, delivery and failure through an [`OutboxObserver`] in the same transaction.
//!
//! # The inbound pipeline
//!
//! `POST /` on the inbound endpoint ([`MhsHandle::inbound_router`], served by [`serve`]
//! over mutual TLS):
//!
//! 1. **TLS**: the client must present a certificate signed by the configured CA, or the
//!    handshake fails (logged, counted) before any HTTP is read. The peer's
//!    [`PeerIdentity`] is in the request's extensions and stored with the message.
//! 2. **Limits**: the body is read up to `Limits::max_message_bytes` (~5 MB); more is a
//!    `SOAP:Client` fault with `MimeProblem` (HTTP 500).
//! 3. **Parse**: `ebxml::Message::parse`; a message whose header cannot be read is a SOAP
//!    fault with the code `ebxml::Error::error_code` gives (HTTP 500).
//! 4. **Validate**: `eb:To/eb:PartyId` must be this MHS's party key, CPAId, ConversationId
//!    and MessageId present, Service an NHS service, Action an interaction id, the manifest
//!    consistent with the parts; otherwise an `eb:ErrorList` message (`MessageError`,
//!    HTTP 500) naming each problem and where.
//! 5. **De-duplicate and persist**: the bytes are written to the payload store, then the
//!    `mhs_inbound` row (queued) claims the MessageId. A MessageId already in the inbox is
//!    a duplicate: acknowledged again, its copy removed, not delivered again. If storing
//!    fails the answer is a `SOAP:Server` fault, which senders retry. The message just
//!    stored is also kept in memory for a little while, so that the consumer in this
//!    process gets it without reading and parsing it again (the copy on disk is what
//!    survives a crash).
//! 6. **Acknowledge**: `eb:Acknowledgment` (HTTP 200).
//!
//! Nothing is stored for a refused message. Steps 2, 3 and 4 (bar the `eb:To` check) and
//! the answers are the building blocks in [`hop`], which a relay shares.
//!
//! # The consumer contract
//!
//! The local consumer (the GP2GP services, or a GP system through the pull API or the
//! webhook) drains the inbox: [`MhsHandle::next_inbound`] hands out the oldest waiting
//! message and *leases* it for `inbound_lease`; [`MhsHandle::ack_inbound`] marks it
//! consumed. Delivery is **at least once**: if the consumer (or the whole process) dies
//! between taking a message and acknowledging it, the lease runs out and the message is
//! handed out again, with [`InboundMessage::delivery`] counting up. The consumer must
//! therefore be **idempotent on the MessageId** (GP2GP's own rules already require
//! ignoring a duplicate request or fragment). Acknowledge only once the message's effects
//! are durable. A message is never handed to two consumers at once while its lease runs.
//! The network side is de-duplicated by the MHS, so the only repeats a consumer can see
//! are these re-deliveries.
//!
//! # Routing and limits
//!
//! [`Route::Sds`] looks the destination up in SDS ([`sds`]): address, party key, CPA id
//! and reliability settings, cached for `cache_ttl`; anything but exactly one answer is an
//! [`SdsError`], GP2GP reason code 24 ([`Error::reason_code`]). Spine's limits
//! (`ebxml::Limits`: payload ≤ 5,000,000 characters, ≤ 98 inline attachments, whole
//! message ≈ 5 MB) are enforced when sending (nothing is persisted) and when receiving.
//!
//! # The NHS MHS adaptor's REST facade
//!
//! [`MhsHandle::facade_router`]: `POST /` with `Interaction-Id`, `wait-for-response`,
//! `Correlation-Id`, `Message-Id`, `from-asid`, `ods-code` and the JSON body
//! `{payload, attachments, external_attachments}` answers 202 once the next hop
//! acknowledged, 400/415/500 otherwise; `GET /healthcheck`. Inbound messages, in the
//! adaptor's JSON shape (`{ebXML, payload, attachments, external_attachments}`,
//! [`AdaptorInbound`]), are pulled with `GET /inbound` (204 when none) and acknowledged
//! with `POST /inbound/{message_id}/ack`, or POSTed to a webhook (`MhsConfig::webhook`).
//!
//! # Observability
//!
//! Spans `mhs.send`, `mhs.attempt`, `mhs.receive`, `mhs.facade`, `mhs.webhook` carry
//! `conversation_id` and `message_id`. Counters (`metrics`): `mhs_messages_sent_total`,
//! `mhs_messages_received_total`, `mhs_messages_retried_total`,
//! `mhs_messages_failed_total`, `mhs_duplicates_total`, `mhs_messages_rejected_total`
//! (label `code`), `mhs_tls_handshakes_refused_total`.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), mhs::Error> {
//! use std::sync::Arc;
//! use mhs::{Mhs, MhsConfig, Outbound, Route};
//!
//! let db = store::Database::open("sqlite://lloyd/mhs.db").await?;
//! let payloads = store::PayloadStore::on_disk(std::path::Path::new("lloyd/payloads"))?;
//! let mut config = MhsConfig::new("A91234-9199121", "A91234");
//! config.listen = Some("127.0.0.1:7080".parse().map_err(|e| mhs::Error::Config(format!("{e}")))?);
//! let mhs = Mhs::start(config, db, payloads, Arc::new(clock::SystemClock)).await?;
//! # let route = Route::Sds { ods_code: "B86041".into() };
//! let id = mhs.send(Outbound::gp2gp(route, "RCMR_IN010000UK05", "CONVERSATION-ID", "<RCMR_IN010000UK05/>")).await?;
//! let inbound = mhs.next_inbound().await?;
//! mhs.ack_inbound(&inbound.message_id).await?;
//! # let _ = id; Ok(()) }
//! ```

mod db;
mod error;
mod facade;
pub mod hop;
mod inbound;
mod outbound;
pub mod outbox;
mod recent;
pub mod sds;
pub mod state;
mod time;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clock::SharedClock;
use store::{Database, PayloadStore};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use error::Error;
pub use inbound::{AdaptorAttachment, AdaptorExternalAttachment, AdaptorInbound, InboundMessage};
pub use outbox::{Outbox, OutboxEvent, OutboxEventKind, OutboxObserver, OutboxSettings};
pub use sds::{Destination, Reliability, SdsClient, SdsConfig, SdsError};
pub use state::OutboundState;
pub use tls::{PeerIdentity, Server, TlsConfig, serve};

/// How an MHS is set up.
#[derive(Debug, Clone)]
pub struct MhsConfig {
    /// This MHS's party key: every inbound message's `eb:To/eb:PartyId` must be it, and
    /// every outbound message's `eb:From/eb:PartyId` is it.
    pub party_key: String,
    /// The organisation (ODS code) this MHS serves.
    pub ods_code: String,
    /// This system's ASID, if known.
    pub asid: Option<String>,
    /// Where to listen for inbound ebXML (mutual TLS; plain HTTP only on loopback).
    /// `None`: don't listen; mount [`MhsHandle::inbound_router`] yourself with [`serve`].
    pub listen: Option<SocketAddr>,
    /// Where to serve the MHS adaptor's REST facade (for the GP system; loopback, or
    /// behind the same TLS). `None`: don't; mount [`MhsHandle::facade_router`] yourself.
    pub facade_listen: Option<SocketAddr>,
    /// Certificate, key and CA for mutual TLS, as a server and as a client.
    pub tls: Option<TlsConfig>,
    /// The SDS FHIR API, for routing by ODS code.
    pub sds: Option<SdsConfig>,
    /// Spine's limits, enforced on the way in and on the way out.
    pub limits: ebxml::Limits,
    /// Reliability settings where SDS gives none.
    pub reliability: Reliability,
    /// How long an inbound MessageId is remembered after the consumer took the message
    /// (de-duplication window; SDS's persist duration for the senders).
    pub inbound_persist_duration: Duration,
    /// How long the consumer may hold an inbound message before it is delivered again.
    pub inbound_lease: Duration,
    /// How long one sending attempt may wait for its answer.
    pub attempt_timeout: Duration,
    /// Sending attempts under way at once.
    pub max_in_flight: usize,
    /// Deliver inbound messages by POSTing the adaptor's JSON here (acked on 2xx) instead
    /// of waiting for the consumer to pull them.
    pub webhook: Option<String>,
    /// How long the REST facade waits for the next hop's acknowledgment before answering.
    pub facade_wait: Duration,
}

impl MhsConfig {
    /// A configuration with working defaults: no listeners, no TLS, no SDS.
    pub fn new(party_key: impl Into<String>, ods_code: impl Into<String>) -> MhsConfig {
        MhsConfig {
            party_key: party_key.into(),
            ods_code: ods_code.into(),
            asid: None,
            listen: None,
            facade_listen: None,
            tls: None,
            sds: None,
            limits: ebxml::Limits::default(),
            reliability: Reliability::default(),
            inbound_persist_duration: Duration::from_secs(24 * 3600),
            inbound_lease: Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(30),
            max_in_flight: 32,
            webhook: None,
            facade_wait: Duration::from_secs(60),
        }
    }
}

/// Where to send an outbound message.
#[derive(Debug, Clone)]
pub enum Route {
    /// Look the destination up in SDS by the receiving organisation's ODS code and the
    /// message's service and interaction.
    Sds {
        /// The receiving organisation.
        ods_code: String,
    },
    /// A destination already known.
    Direct(Destination),
}

/// An inline attachment, as the MHS adaptor's JSON gives it.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// Content-Id; one is made up when `None`.
    pub content_id: Option<String>,
    /// e.g. `application/pdf`.
    pub content_type: String,
    /// `payload` is base64 text already (sent as `base64` without encoding again).
    pub is_base64: bool,
    /// The manifest description (`Filename="…" ContentType=… …`).
    pub description: String,
    /// The content.
    pub payload: Bytes,
    /// The manifest reference's `eb:id`.
    pub document_id: Option<String>,
}

/// An attachment sent as a message of its own (a `mid:` reference).
#[derive(Debug, Clone)]
pub struct ExternalAttachment {
    /// The MessageId of the message that carries it.
    pub message_id: String,
    /// The manifest reference's `eb:id`.
    pub document_id: Option<String>,
    /// The manifest description.
    pub description: String,
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Where to.
    pub route: Route,
    /// `eb:Service` (GP2GP's: [`ebxml::SERVICE_GP2GP`]).
    pub service: String,
    /// `eb:Action`, the HL7 interaction id.
    pub interaction_id: String,
    /// `eb:ConversationId`.
    pub conversation_id: String,
    /// `eb:MessageId`; a new one when `None`. Sending the same id twice sends once.
    pub message_id: Option<String>,
    /// `eb:RefToMessageId`.
    pub ref_to_message_id: Option<String>,
    /// The HL7 payload.
    pub payload: Bytes,
    /// Inline attachments.
    pub attachments: Vec<Attachment>,
    /// Attachments sent as their own messages.
    pub external_attachments: Vec<ExternalAttachment>,
}

impl Outbound {
    /// A GP2GP message with no attachments.
    pub fn gp2gp(
        route: Route,
        interaction_id: impl Into<String>,
        conversation_id: impl Into<String>,
        payload: impl Into<Bytes>,
    ) -> Outbound {
        Outbound {
            route,
            service: ebxml::SERVICE_GP2GP.to_string(),
            interaction_id: interaction_id.into(),
            conversation_id: conversation_id.into(),
            message_id: None,
            ref_to_message_id: None,
            payload: payload.into(),
            attachments: Vec::new(),
            external_attachments: Vec::new(),
        }
    }
}

/// What the MHS shares between its tasks, routers and handles.
pub(crate) struct Inner {
    pub config: MhsConfig,
    pub db: Database,
    pub payloads: PayloadStore,
    pub clock: SharedClock,
    pub http: tls::HttpClient,
    pub sds: Option<SdsClient>,
    pub outbox: Outbox,
    pub inbox_wake: Notify,
    /// Inbound messages just stored, handed to the consumer without reading them back
    /// and parsing them again.
    pub recent_inbound: recent::Recent<ebxml::Message>,
    pub stop: watch::Sender<bool>,
}

/// A handle on a running MHS: cheap to clone; what handlers, consumers and services use.
#[derive(Clone)]
pub struct MhsHandle {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for MhsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MhsHandle")
            .field("party_key", &self.inner.config.party_key)
            .finish_non_exhaustive()
    }
}

/// A running MHS: its background tasks and listeners. Dropping it stops them (abruptly,
/// like a crash: everything persisted carries on when it is started again on the same
/// database); [`Mhs::shutdown`] stops them in order.
pub struct Mhs {
    handle: MhsHandle,
    tasks: Vec<JoinHandle<()>>,
    inbound_server: Option<Server>,
    facade_server: Option<Server>,
}

impl std::fmt::Debug for Mhs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mhs")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for Mhs {
    type Target = MhsHandle;
    fn deref(&self) -> &MhsHandle {
        &self.handle
    }
}

impl Mhs {
    /// Starts an MHS: applies its migrations, starts the sender (which picks up whatever an
    /// earlier run left unsent), the inbox housekeeping, the webhook delivery if
    /// configured, and the listeners if configured.
    pub async fn start(
        config: MhsConfig,
        db: Database,
        payloads: PayloadStore,
        clock: SharedClock,
    ) -> Result<Mhs, Error> {
        if config.party_key.trim().is_empty() {
            return Err(Error::Config("the party key is empty".into()));
        }
        if config.max_in_flight == 0 {
            return Err(Error::Config("max_in_flight must be at least 1".into()));
        }
        for addr in [config.listen, config.facade_listen].into_iter().flatten() {
            tls::check_listen(addr, config.tls.is_some())?;
        }
        db.migrate(db::SERVICE, db::MIGRATIONS).await?;
        let http = tls::http_client(config.tls.as_ref())?;
        let sds = config
            .sds
            .clone()
            .map(|s| SdsClient::new(s, http.clone(), clock.clone(), config.reliability));
        let outbox = Outbox::new(
            OutboxSettings {
                table: db::OUTBOX,
                metric_prefix: "mhs",
                attempt_timeout: config.attempt_timeout,
                max_in_flight: config.max_in_flight,
                limits: config.limits,
            },
            db.clone(),
            payloads.clone(),
            clock.clone(),
            http.clone(),
            None,
        )?;
        let (stop, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            config,
            db,
            payloads,
            clock,
            http,
            sds,
            outbox,
            inbox_wake: Notify::new(),
            recent_inbound: recent::Recent::default(),
            stop,
        });
        let handle = MhsHandle { inner };
        let mut tasks = vec![
            tokio::spawn(
                handle
                    .inner
                    .outbox
                    .clone()
                    .run(handle.inner.stop.subscribe()),
            ),
            tokio::spawn(inbound::housekeeping(handle.inner.clone())),
        ];
        if let Some(url) = handle.inner.config.webhook.clone() {
            tasks.push(tokio::spawn(inbound::webhook(handle.clone(), url)));
        }
        let server_tls = match &handle.inner.config.tls {
            Some(t) => Some(t.server_config()?),
            None => None,
        };
        let mut mhs = Mhs {
            handle,
            tasks,
            inbound_server: None,
            facade_server: None,
        };
        if let Some(addr) = mhs.handle.inner.config.listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Bind { addr, source })?;
            mhs.inbound_server = Some(serve(
                listener,
                mhs.handle.inbound_router(),
                server_tls.clone(),
            )?);
        }
        if let Some(addr) = mhs.handle.inner.config.facade_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Bind { addr, source })?;
            mhs.facade_server = Some(serve(listener, mhs.handle.facade_router(), server_tls)?);
        }
        Ok(mhs)
    }

    /// A handle to share with handlers and consumers.
    pub fn handle(&self) -> MhsHandle {
        self.handle.clone()
    }

    /// Where the inbound ebXML endpoint listens, if it does.
    pub fn inbound_addr(&self) -> Option<SocketAddr> {
        self.inbound_server.as_ref().map(Server::local_addr)
    }

    /// Where the REST facade listens, if it does.
    pub fn facade_addr(&self) -> Option<SocketAddr> {
        self.facade_server.as_ref().map(Server::local_addr)
    }

    /// Stops listening, then stops the background tasks. Messages not yet acknowledged
    /// stay in the database and are sent by the next start.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.inbound_server.take() {
            s.shutdown().await;
        }
        if let Some(s) = self.facade_server.take() {
            s.shutdown().await;
        }
        let _ = self.handle.inner.stop.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for Mhs {
    fn drop(&mut self) {
        let _ = self.handle.inner.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl MhsHandle {
    /// This MHS's configuration.
    pub fn config(&self) -> &MhsConfig {
        &self.inner.config
    }

    /// The SDS client, if SDS is configured.
    pub fn sds(&self) -> Option<&SdsClient> {
        self.inner.sds.as_ref()
    }

    /// Persists `message` for sending and returns its MessageId once it is on disk; the
    /// sender then delivers it (retrying per the destination's reliability settings).
    /// Errors here mean nothing was persisted: an SDS failure (GP2GP code 24, see
    /// [`Error::reason_code`]), a message over Spine's limits, a database failure.
    pub async fn send(&self, message: Outbound) -> Result<String, Error> {
        outbound::send(&self.inner, message).await
    }

    /// Where an outbound message is.
    pub async fn status(&self, message_id: &str) -> Result<OutboundState, Error> {
        self.inner
            .outbox
            .state(message_id)
            .await?
            .ok_or_else(|| Error::UnknownMessage(message_id.to_string()))
    }

    /// Waits until an outbound message is delivered or has failed, or `timeout` (clock
    /// time) passes; returns its state then.
    pub async fn wait_final(
        &self,
        message_id: &str,
        timeout: Duration,
    ) -> Result<OutboundState, Error> {
        self.inner.outbox.wait_final(message_id, timeout).await
    }

    /// The next inbound message for the local consumer, waiting for one. It is leased to
    /// the caller for `inbound_lease`: call [`MhsHandle::ack_inbound`] once it is safely
    /// handled, or it is delivered again (see the crate documentation's contract).
    pub async fn next_inbound(&self) -> Result<InboundMessage, Error> {
        inbound::next(&self.inner).await
    }

    /// The next inbound message if one is ready now.
    pub async fn try_next_inbound(&self) -> Result<Option<InboundMessage>, Error> {
        inbound::try_next(&self.inner).await
    }

    /// The consumer has handled the message: it will not be delivered again. Acking an
    /// already-acked message is harmless.
    pub async fn ack_inbound(&self, message_id: &str) -> Result<(), Error> {
        inbound::ack(&self.inner, message_id).await
    }

    /// The consumer cannot handle the message now: deliver it again (at once).
    pub async fn release_inbound(&self, message_id: &str) -> Result<(), Error> {
        db::release_inbound(&self.inner.db, message_id).await?;
        self.inner.inbox_wake.notify_one();
        Ok(())
    }

    /// The inbound ebXML endpoint (`POST /`), for [`serve`] over mutual TLS.
    pub fn inbound_router(&self) -> axum::Router {
        inbound::router(self.clone())
    }

    /// The MHS adaptor's REST facade (`POST /`, `GET /healthcheck`) and the inbound pull
    /// API (`GET /inbound`, `POST /inbound/{message_id}/ack`), for the GP system.
    pub fn facade_router(&self) -> axum::Router {
        facade::router(self.clone())
    }
}
