//! The driver: runs the [`crate::requester`] and [`crate::sender`]
//! machines for one practice, over its MHS, against its clinical system.
//!
//! # How a step is made safe
//!
//! Every change follows one pattern, which is what lets a transfer survive `kill -9` at any
//! point:
//!
//! 1. **Keep what arrived.** An inbound message's parts go to the payload store first
//!    (writing them twice is harmless).
//! 2. **Decide and persist, together.** The machine takes the event; the new state, the
//!    actions it asks for (the *pending* list) and the message that caused it are written
//!    in one transaction, guarded by the row's version.
//! 3. **Tell the MHS.** Only now is the inbound message acknowledged to the MHS. If the
//!    process dies before this, the MHS hands the message over again; the driver sees its
//!    id already recorded and does not apply it twice.
//! 4. **Act, one action at a time.** Each pending action is carried out and then removed
//!    from the list in a new versioned write (with the state the action's result leads
//!    to). A crash in between means the action runs again on restart, so every action is
//!    idempotent: outbound messages get ids derived from the conversation and their purpose
//!    (the MHS sends an id once), the record is handed to the inbox keyed by conversation,
//!    the extract is built deterministically and kept before its Continue comes.
//!
//! A ticker does what time asks: deadlines (the requester's SDS-derived wait, the sender's
//! eight days), the practice's decisions on records in its inbox, and any pending actions
//! a previous run left undone.
//!
//! # What the practice provides
//!
//! [`Clinical`] is the GP system's side: whether a patient is registered, their record in
//! GP Connect's migrate shape and its documents, the integration inbox and its decisions.
//!
//! # Memory
//!
//! A record's documents can come to hundreds of megabytes, so nothing holds them all. The
//! sender reads, plans and keeps its documents one at a time ([`crate::large::Planner`]:
//! one document and one base64 fragment in memory); the requester puts each document
//! together a fragment at a time straight into the payload store, and hands the practice
//! its key ([`ArrivedDocument`]); the record itself is translated as a stream both ways
//! (the Bundle's JSON to the extract's XML and back, no model of either held whole). Both
//! ends of a 500 MB transfer (a 20 MB record, four 120 MB documents) in one process peak
//! at about 250 MB resident (docs/PERFORMANCE.md).

mod assembly;
mod db;
mod run;
mod status;
mod stored;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clock::SharedClock;
use hl7v3::ReasonCode;
use mhs::MhsHandle;
use serde::{Deserialize, Serialize};
use store::{Database, PayloadStore};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use db::MIGRATIONS;
pub use status::{MessageStatus, TransferStatus, TransferSummary};

use crate::requester::Integration;
use crate::{requester, sender};

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("{0} is not a valid NHS number: {1}")]
    BadNhsNumber(String, nhsid::IdError),
    #[error("{0} is not a valid ODS code: {1}")]
    BadOds(String, nhsid::IdError),
    #[error("no transfer {0} at this practice")]
    UnknownTransfer(String),
    #[error("patient {0} has no earlier transfer to resend")]
    NothingToResend(String),
    #[error("transfer {0} is still under way: wait for it to finish before sending again")]
    StillRunning(String),
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    #[error("database: {0}")]
    Sql(#[from] store::sqlx::Error),
    #[error("payload storage: {0}")]
    Payload(#[from] store::PayloadError),
    #[error("messaging: {0}")]
    Mhs(#[from] mhs::Error),
    #[error("stored transfer state could not be read: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Internal(String),
}

/// The practice whose transfers this driver runs.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// The practice's ODS code.
    pub ods: String,
    /// Its GP2GP system's ASID.
    pub asid: String,
    /// PDS's FHIR base URL (e.g. `http://127.0.0.1:8080/pds`), for the sender's check that
    /// the requester is the patient's current practice (19). `None`: that check is skipped.
    pub pds_url: Option<String>,
    /// How often the ticker looks at deadlines, decisions and unfinished actions.
    pub tick: Duration,
    /// How long a requester waits for the extract when SDS gives no persist duration.
    pub default_extract_wait: Duration,
    /// How long a requester waits per COPC message when SDS gives no persist duration.
    pub default_copc_wait: Duration,
    /// Inbound messages handled at once.
    pub workers: usize,
}

impl DriverConfig {
    /// Working defaults for a practice.
    pub fn new(ods: impl Into<String>, asid: impl Into<String>) -> DriverConfig {
        DriverConfig {
            ods: ods.into(),
            asid: asid.into(),
            pds_url: None,
            tick: Duration::from_secs(1),
            default_extract_wait: Duration::from_secs(4 * 3600 + 10 * 60),
            default_copc_wait: Duration::from_secs(7 * 3600),
            workers: 8,
        }
    }
}

/// A record that has arrived whole, translated, for the practice's integration inbox.
///
/// Its documents are not in memory: each was put together in the driver's payload store
/// ([`ArrivedDocument::key`]), where it stays until the transfer ends. Keep a copy there
/// before returning from [`Clinical::deliver`] ([`store::PayloadStore::copy`] is a hard
/// link on disk), or read it with [`Arrival::read_document`].
#[derive(Debug, Clone)]
pub struct Arrival {
    pub conversation_id: String,
    pub nhs_number: String,
    /// The sending practice.
    pub from_ods: String,
    /// `RCMR_IN030000UK06`, or `…UK07` for a record with confidentiality codes.
    pub interaction_id: String,
    /// The record as GP Connect FHIR: the structured Bundle's JSON (translated as a
    /// stream, never held as a model: parse it, or read what is needed of it, as wanted).
    pub record: Bytes,
    /// What the translation did (degrades, unmapped items).
    pub report: translate::Report,
    /// The documents that came with it (file name as the record refers to it), inline
    /// ones first, then the others in the manifest's order.
    pub documents: Vec<ArrivedDocument>,
    /// The driver's payload store, which holds the documents.
    pub payloads: PayloadStore,
}

/// A document of an arrived record, put together in the driver's payload store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrivedDocument {
    /// The document id (the manifest reference's `eb:id`), where the messages gave one.
    pub document_id: Option<String>,
    /// The file name the extract refers to it by.
    pub filename: String,
    pub content_type: String,
    /// Where its content is in [`Arrival::payloads`] (decoded and decompressed).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Arrival {
    /// The whole content of one of the record's documents (in memory: for small ones;
    /// copy large ones with [`store::PayloadStore::copy`] or read them in ranges).
    pub async fn read_document(&self, document: &ArrivedDocument) -> Result<Bytes, DriverError> {
        Ok(self.payloads.get(&document.key).await?)
    }
}

/// The GP clinical system's side of a transfer. Implementations must be idempotent where
/// noted: the driver may call again after a crash.
pub trait Clinical: Send + Sync + 'static {
    /// Whether the practice `ods` runs on this same clinical system with one record store
    /// (then a move between the two is an internal transfer and nothing is sent).
    fn same_system(&self, ods: &str) -> impl Future<Output = bool> + Send;

    /// Whether the patient is registered here (the sender's check; 06 when not).
    fn is_registered(&self, nhs_number: &str) -> impl Future<Output = Result<bool, String>> + Send;

    /// The patient's record in GP Connect's migrate shape: the structured Bundle's JSON
    /// (translated as a stream: the driver never parses it whole). An audited read by the
    /// GP2GP system for `conversation_id`.
    fn read_record(
        &self,
        nhs_number: &str,
        conversation_id: &str,
    ) -> impl Future<Output = Result<Bytes, String>> + Send;

    /// The content of one document the record refers to. An error means it cannot be
    /// read; an absent-attachment file is sent in its place.
    fn read_document(
        &self,
        nhs_number: &str,
        document: &translate::DocumentFile,
        conversation_id: &str,
    ) -> impl Future<Output = Result<Bytes, String>> + Send;

    /// Puts an arrived record in the integration inbox (idempotent on the conversation).
    /// `Some` when the practice's auto-integration rules decided at once.
    fn deliver(
        &self,
        arrival: Arrival,
    ) -> impl Future<Output = Result<Option<Integration>, String>> + Send;

    /// The practice's decision on a record in its inbox, once made.
    fn decision(
        &self,
        conversation_id: &str,
    ) -> impl Future<Output = Result<Option<Integration>, String>> + Send;
}

/// Which side of a transfer this practice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Requester,
    Sender,
}

impl Role {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::Sender => "sender",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "requester" => Some(Role::Requester),
            "sender" => Some(Role::Sender),
            _ => None,
        }
    }
}

/// An action persisted with a state, to be carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Pending {
    /// The requester's EhrRequest.
    SendRequest {
        request_id: String,
    },
    /// The sender's checks of a request.
    Check,
    Requester(requester::Action),
    Sender(sender::Action),
}

/// What a transfer row holds as its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Machine {
    Requester(requester::State),
    Sender(sender::State),
    /// Both practices on one clinical system: nothing to send.
    Internal,
}

/// The GP2GP service of one practice. Cheap to clone.
pub struct Driver<C: Clinical> {
    inner: Arc<Inner<C>>,
}

impl<C: Clinical> Clone for Driver<C> {
    fn clone(&self) -> Self {
        Driver {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Clinical> std::fmt::Debug for Driver<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("ods", &self.inner.config.ods)
            .finish_non_exhaustive()
    }
}

struct Inner<C> {
    config: DriverConfig,
    db: Database,
    payloads: PayloadStore,
    clock: SharedClock,
    mhs: MhsHandle,
    clinical: C,
    http: reqwest::Client,
    /// One lock per conversation in this process: a conversation's events are applied one
    /// at a time (the version check covers other processes).
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Conversation ids whose transfer changed.
    changes: broadcast::Sender<String>,
}

/// A running driver: its inbound consumer and ticker. Dropping it stops them abruptly
/// (like a crash; a restart on the same database carries on).
pub struct Running<C: Clinical> {
    pub driver: Driver<C>,
    tasks: Vec<JoinHandle<()>>,
}

impl<C: Clinical> Drop for Running<C> {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl<C: Clinical> Driver<C> {
    /// Applies the driver's migrations and makes a driver (nothing runs yet: see
    /// [`Driver::start`]).
    pub async fn open(
        config: DriverConfig,
        db: Database,
        payloads: PayloadStore,
        clock: SharedClock,
        mhs: MhsHandle,
        clinical: C,
    ) -> Result<Driver<C>, DriverError> {
        nhsid::OdsCode::parse(&config.ods)
            .map_err(|e| DriverError::BadOds(config.ods.clone(), e))?;
        db.migrate(db::SERVICE, db::MIGRATIONS).await?;
        let (changes, _) = broadcast::channel(4096);
        Ok(Driver {
            inner: Arc::new(Inner {
                config,
                db,
                payloads,
                clock,
                mhs,
                clinical,
                http: reqwest::Client::new(),
                locks: Mutex::new(HashMap::new()),
                changes,
            }),
        })
    }

    /// Starts the inbound consumer and the ticker, first resuming whatever an earlier run
    /// left undone.
    pub fn start(self) -> Running<C> {
        let inbound = tokio::spawn(run::inbound_loop(self.clone()));
        let ticker = tokio::spawn(run::tick_loop(self.clone()));
        Running {
            driver: self,
            tasks: vec![inbound, ticker],
        }
    }

    /// The practice's ODS code.
    pub fn ods(&self) -> &str {
        &self.inner.config.ods
    }

    /// The clinical system this driver serves.
    pub fn clinical(&self) -> &C {
        &self.inner.clinical
    }

    /// Conversation ids as their transfers change.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.inner.changes.subscribe()
    }

    /// Asks `sender_ods` for the record of `nhs_number` (the patient has just registered
    /// here). Returns the new conversation id; the transfer then runs by itself. An
    /// ineligible transfer (the old practice not in SDS for GP2GP: 24) is recorded as
    /// failed rather than refused, so it shows in the status API.
    pub async fn request(&self, nhs_number: &str, sender_ods: &str) -> Result<String, DriverError> {
        run::request(self, nhs_number, sender_ods).await
    }

    /// Starts a new transfer for a patient whose last one (as requester) failed.
    pub async fn resend(&self, nhs_number: &str) -> Result<String, DriverError> {
        let rows = db::list_transfers(&self.inner.db, Some(nhs_number), 50).await?;
        let last = rows
            .iter()
            .find(|r| r.role == Role::Requester.as_str())
            .ok_or_else(|| DriverError::NothingToResend(nhs_number.to_string()))?;
        if last.finished_at.is_none() {
            return Err(DriverError::StillRunning(last.conversation_id.clone()));
        }
        self.request(nhs_number, &last.peer_ods.clone()).await
    }

    /// Where one transfer stands, with every message.
    pub async fn status(&self, conversation_id: &str) -> Result<TransferStatus, DriverError> {
        status::status(self, conversation_id).await
    }

    /// Transfers, newest first (optionally one patient's).
    pub async fn transfers(
        &self,
        nhs_number: Option<&str>,
        limit: i64,
    ) -> Result<Vec<TransferSummary>, DriverError> {
        status::list(self, nhs_number, limit).await
    }

    /// Counts of transfers by role and phase.
    pub async fn counts(&self) -> Result<Vec<(String, String, i64)>, DriverError> {
        db::counts(&self.inner.db).await
    }

    /// Handles one inbound message now (what the consumer loop does for each). For tests
    /// and for callers that drive the MHS inbox themselves.
    pub async fn handle(&self, message: mhs::InboundMessage) -> Result<(), DriverError> {
        run::handle_inbound(self, message).await
    }

    /// Looks at deadlines, decisions and unfinished actions once (what the ticker does).
    pub async fn tick(&self) -> Result<(), DriverError> {
        run::tick_once(self).await
    }
}

/// A message id derived from the conversation and the message's purpose: the same purpose
/// gives the same id after a restart, and the MHS sends an id only once.
fn derived_id(conversation_id: &str, purpose: &str) -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6c6c_6f79_6447_5032_4750_6964_7321_0001);
    uuid::Uuid::new_v5(
        &NAMESPACE,
        format!("{conversation_id}/{purpose}").as_bytes(),
    )
    .to_string()
    .to_uppercase()
}

/// The plain-English meaning of a reason code given as text.
fn meaning(code: Option<&str>) -> Option<String> {
    code.and_then(ReasonCode::from_code)
        .map(|c| c.description().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = derived_id("C1", "ack/M1");
        assert_eq!(a, derived_id("C1", "ack/M1"));
        assert_ne!(a, derived_id("C1", "ack/M2"));
        assert_ne!(a, derived_id("C2", "ack/M1"));
        assert_eq!(a, a.to_uppercase());
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn pending_actions_survive_storage() {
        let pending = vec![
            Pending::SendRequest {
                request_id: "R".into(),
            },
            Pending::Requester(requester::Action::FinalAck {
                extract_message_id: crate::MessageId::new("E"),
                code: Some(ReasonCode::FailedToIntegrate),
            }),
            Pending::Sender(sender::Action::SendCopcs {
                message_ids: vec![crate::MessageId::new("C1")],
            }),
        ];
        let text = serde_json::to_string(&pending).unwrap();
        let back: Vec<Pending> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, pending);
    }
}
