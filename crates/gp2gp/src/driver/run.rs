//! The driver at work: starting transfers, taking inbound messages, carrying out actions,
//! and the ticker.

use std::sync::Arc;
use std::time::Duration;

use hl7v3::ReasonCode;
use mhs::Route;
use tracing::{Instrument, info, info_span, warn};

use super::db::{self, MessageRow, TransferRow, Write};
use super::stored::{self, Received};
use super::{Clinical, Driver, DriverError, Machine, Pending, Role, derived_id};
use crate::large;
use crate::wire::{self, Incoming, Parties};
use crate::{MessageId, requester, sender};

const MCCI: &str = "MCCI_IN010000UK13";
const COPC: &str = "COPC_IN000001UK01";
const EHR_REQUEST: &str = "RCMR_IN010000UK05";
const EHR_EXTRACT: &str = "RCMR_IN030000UK06";

/// An event for one of the machines, or a failure decided by the driver itself.
#[derive(Debug, Clone)]
enum Follow {
    Requester(requester::Event),
    Sender(sender::Event),
    /// The requester's transfer failed before anything came back (e.g. SDS: 24).
    RequesterFailed {
        code: ReasonCode,
        reason: String,
    },
}

/// What a state, its transfer row and the actions it asks for look like once decided.
struct Decided {
    machine: Machine,
    pending: Vec<Pending>,
}

impl<C: Clinical> Driver<C> {
    fn lock(&self, conversation_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = match self.inner.locks.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        if locks.len() > 10_000 {
            // Forget locks nobody holds (the map would otherwise grow with every transfer).
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks
            .entry(conversation_id.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone()
    }

    fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    fn changed(&self, conversation_id: &str) {
        let _ = self.inner.changes.send(conversation_id.to_string());
    }
}

// ---------------------------------------------------------------------------------------
// Rows and states

fn machine_of(row: &TransferRow) -> Result<Machine, DriverError> {
    Ok(serde_json::from_str(&row.state)?)
}

fn pending_of(row: &TransferRow) -> Result<Vec<Pending>, DriverError> {
    Ok(serde_json::from_str(&row.pending)?)
}

/// The two ends of a transfer as stored with it (and, for a sender, the id the extract
/// must name as the request it fulfils).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Ends {
    #[serde(flatten)]
    parties: Parties,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ehr_request_id: Option<String>,
}

fn ends_of(row: &TransferRow) -> Result<Ends, DriverError> {
    Ok(serde_json::from_str(&row.parties)?)
}

fn parties_of(row: &TransferRow) -> Result<Parties, DriverError> {
    Ok(ends_of(row)?.parties)
}

/// How a state shows: its phase, whether it is over, the outcome and its code, and when
/// time next matters.
pub(super) struct Shown {
    pub phase: &'static str,
    pub finished: bool,
    pub outcome: Option<String>,
    pub code: Option<String>,
    pub deadline: Option<i64>,
}

pub(super) fn show(machine: &Machine) -> Shown {
    use requester::State as R;
    use sender::State as S;
    let open = |phase, deadline| Shown {
        phase,
        finished: false,
        outcome: None,
        code: None,
        deadline,
    };
    let done = |phase, outcome: String, code: Option<ReasonCode>| Shown {
        phase,
        finished: true,
        outcome: Some(outcome),
        code: code.map(|c| c.code().to_string()),
        deadline: None,
    };
    match machine {
        Machine::Internal => done(
            "internal",
            "internal transfer: both practices use the same clinical system, nothing was sent"
                .into(),
            None,
        ),
        Machine::Requester(s) => match s {
            R::AwaitingExtract { deadline_ms, .. } => open("awaiting extract", Some(*deadline_ms)),
            R::Collecting(c) => open("collecting", Some(c.deadline_ms)),
            R::AwaitingIntegration { .. } => open("awaiting integration", None),
            R::Done(o) => match o {
                requester::Outcome::Integrated(how) => {
                    done("integrated", format!("integrated ({how:?})"), how.code())
                }
                requester::Outcome::Rejected(how) => {
                    done("rejected", format!("rejected ({how:?})"), how.code())
                }
                requester::Outcome::Failed { code, reason } => {
                    done("failed", reason.clone(), Some(*code))
                }
                requester::Outcome::NoExtract => done(
                    "failed",
                    "no extract arrived before the deadline".into(),
                    Some(ReasonCode::LargeMessageTimeout),
                ),
            },
        },
        Machine::Sender(s) => match s {
            S::Checking { .. } => open("checking", None),
            S::Building { .. } => open("building", None),
            S::AwaitingContinue { deadline_ms, .. } => {
                open("awaiting continue", Some(*deadline_ms))
            }
            S::SendingFragments { deadline_ms, .. } => {
                open("sending fragments", Some(*deadline_ms))
            }
            S::AwaitingFinalAck { deadline_ms, .. } => {
                open("awaiting final ack", Some(*deadline_ms))
            }
            S::Done(o) => match o {
                sender::Outcome::Integrated { code } => {
                    done("integrated", "the requester filed the record".into(), *code)
                }
                sender::Outcome::Rejected { code } => done(
                    "rejected",
                    format!(
                        "the requester did not file the record: {}",
                        code.description()
                    ),
                    Some(*code),
                ),
                sender::Outcome::Refused { code } => done(
                    "refused",
                    format!("the request was refused: {}", code.description()),
                    Some(*code),
                ),
                sender::Outcome::Failed { code, reason } => {
                    done("failed", reason.clone(), Some(*code))
                }
            },
        },
    }
}

/// The next version of `row` holding `decided`.
fn next_row(row: &TransferRow, decided: &Decided, now: i64) -> Result<TransferRow, DriverError> {
    let shown = show(&decided.machine);
    let mut next = row.clone();
    next.state = serde_json::to_string(&decided.machine)?;
    next.pending = serde_json::to_string(&decided.pending)?;
    next.phase = shown.phase.to_string();
    next.outcome = shown.outcome;
    next.outcome_code = shown.code;
    next.updated_at = now;
    next.finished_at = match (row.finished_at, shown.finished) {
        (Some(t), _) => Some(t),
        (None, true) => Some(now),
        (None, false) => None,
    };
    next.deadline_at = shown.deadline;
    next.version = row.version + 1;
    Ok(next)
}

#[allow(clippy::too_many_arguments)]
fn new_row(
    role: Role,
    conversation_id: &str,
    ods: &str,
    ends: &Ends,
    peer_ods: &str,
    nhs_number: &str,
    decided: &Decided,
    now: i64,
) -> Result<TransferRow, DriverError> {
    let blank = TransferRow {
        role: role.as_str().to_string(),
        conversation_id: conversation_id.to_string(),
        ods: ods.to_string(),
        peer_ods: peer_ods.to_string(),
        nhs_number: nhs_number.to_string(),
        parties: serde_json::to_string(ends)?,
        state: String::new(),
        phase: String::new(),
        pending: String::new(),
        outcome: None,
        outcome_code: None,
        started_at: now,
        updated_at: now,
        finished_at: None,
        deadline_at: None,
        version: 0,
    };
    let mut row = next_row(&blank, decided, now)?;
    row.version = 1;
    Ok(row)
}

/// Applies an event to a machine: the new state and its actions, or the refusal.
fn step(machine: Machine, follow: Follow) -> Result<(Machine, Vec<Pending>), String> {
    match (machine, follow) {
        (Machine::Requester(s), Follow::Requester(e)) => match s.step(e) {
            Ok((s, actions)) => Ok((
                Machine::Requester(s),
                actions.into_iter().map(Pending::Requester).collect(),
            )),
            Err((_, refusal)) => Err(refusal.to_string()),
        },
        (Machine::Sender(s), Follow::Sender(e)) => match s.step(e) {
            Ok((s, actions)) => Ok((
                Machine::Sender(s),
                actions.into_iter().map(Pending::Sender).collect(),
            )),
            Err((_, refusal)) => Err(refusal.to_string()),
        },
        (Machine::Requester(requester::State::Done(o)), Follow::RequesterFailed { .. }) => {
            Ok((Machine::Requester(requester::State::Done(o)), vec![]))
        }
        (Machine::Requester(_), Follow::RequesterFailed { code, reason }) => Ok((
            Machine::Requester(requester::State::Done(requester::Outcome::Failed {
                code,
                reason,
            })),
            vec![],
        )),
        (m, f) => Err(format!(
            "{f:?} does not apply to this transfer ({})",
            show(&m).phase
        )),
    }
}

/// The outcome of applying an event.
enum Applied {
    Changed,
    Refused(String),
    NoTransfer,
}

/// Applies an event to a stored transfer (retrying if another worker moved it on) and
/// records `messages` with it.
async fn apply<C: Clinical>(
    d: &Driver<C>,
    role: Role,
    conversation_id: &str,
    follow: Follow,
    messages: &[MessageRow],
) -> Result<Applied, DriverError> {
    for _ in 0..10 {
        let Some(row) = db::get(&d.inner.db, role.as_str(), conversation_id).await? else {
            db::record_messages(&d.inner.db, messages).await?;
            return Ok(Applied::NoTransfer);
        };
        let machine = machine_of(&row)?;
        let mut pending = pending_of(&row)?;
        match step(machine, follow.clone()) {
            Ok((machine, actions)) => {
                pending.extend(actions);
                let next = next_row(&row, &Decided { machine, pending }, d.now())?;
                let written = db::write(
                    &d.inner.db,
                    Write::Update {
                        row: &next,
                        expected_version: row.version,
                    },
                    messages,
                )
                .await?;
                if written {
                    finished_metrics(&row, &next);
                    if next.finished_at.is_some() && pending_of(&next)?.is_empty() {
                        stored::release(
                            &d.inner.payloads,
                            conversation_id,
                            role == Role::Requester,
                        )
                        .await;
                    }
                    d.changed(conversation_id);
                    return Ok(Applied::Changed);
                }
            }
            Err(refusal) => {
                db::record_messages(&d.inner.db, messages).await?;
                return Ok(Applied::Refused(refusal));
            }
        }
    }
    Err(DriverError::Internal(format!(
        "transfer {conversation_id} kept changing under this worker; the message will be handled again"
    )))
}

fn finished_metrics(before: &TransferRow, after: &TransferRow) {
    if before.finished_at.is_none()
        && let Some(end) = after.finished_at
    {
        metrics::counter!("gp2gp_transfers_finished_total",
            "role" => after.role.clone(), "phase" => after.phase.clone())
        .increment(1);
        let seconds = (end - after.started_at).max(0) as f64 / 1000.0;
        metrics::histogram!("gp2gp_transfer_seconds", "role" => after.role.clone()).record(seconds);
    }
}

fn message_row(
    role: Role,
    conversation_id: &str,
    message_id: &str,
    direction: &str,
    interaction_id: &str,
    at: i64,
    note: impl Into<String>,
) -> MessageRow {
    MessageRow {
        role: role.as_str().to_string(),
        conversation_id: conversation_id.to_string(),
        message_id: message_id.to_string(),
        direction: direction.to_string(),
        interaction_id: interaction_id.to_string(),
        at,
        acknowledges: None,
        ack_type: None,
        code: None,
        note: note.into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn ack_row(
    role: Role,
    conversation_id: &str,
    message_id: &str,
    direction: &str,
    acknowledges: &str,
    code: Option<ReasonCode>,
    at: i64,
    note: impl Into<String>,
) -> MessageRow {
    let mut row = message_row(role, conversation_id, message_id, direction, MCCI, at, note);
    row.acknowledges = Some(acknowledges.to_string());
    row.ack_type = Some(if code.is_some() { "AE" } else { "AA" }.to_string());
    row.code = code.map(|c| c.code().to_string());
    row
}

// ---------------------------------------------------------------------------------------
// Starting a transfer

pub(super) async fn request<C: Clinical>(
    d: &Driver<C>,
    nhs_number: &str,
    sender_ods: &str,
) -> Result<String, DriverError> {
    let nhs = nhsid::NhsNumber::parse(nhs_number)
        .map_err(|e| DriverError::BadNhsNumber(nhs_number.to_string(), e))?
        .as_string();
    let sender_ods = nhsid::OdsCode::parse(sender_ods)
        .map_err(|e| DriverError::BadOds(sender_ods.to_string(), e))?
        .as_str()
        .to_string();
    let config = &d.inner.config;
    let conversation_id = uuid::Uuid::new_v4().to_string().to_uppercase();
    let request_id = uuid::Uuid::new_v4().to_string().to_uppercase();
    let now = d.now();
    let span = info_span!("gp2gp.request", conversation_id = %conversation_id, nhs = %nhs);
    async {
        let mut parties = Parties {
            requester_ods: config.ods.clone(),
            requester_asid: config.asid.clone(),
            sender_ods: sender_ods.clone(),
            sender_asid: String::new(),
        };
        let mut pending = Vec::new();
        let machine = if d.inner.clinical.same_system(&sender_ods).await {
            Machine::Internal
        } else {
            match eligibility(d, &sender_ods).await {
                Ok((asid, wait)) => {
                    parties.sender_asid = asid;
                    pending.push(Pending::SendRequest {
                        request_id: request_id.clone(),
                    });
                    Machine::Requester(requester::State::new(
                        MessageId::new(request_id.clone()),
                        now.saturating_add(wait),
                    ))
                }
                Err((code, reason)) => {
                    Machine::Requester(requester::State::Done(requester::Outcome::Failed {
                        code,
                        reason,
                    }))
                }
            }
        };
        let ends = Ends {
            parties,
            ehr_request_id: Some(request_id.clone()),
        };
        let row = new_row(
            Role::Requester,
            &conversation_id,
            &config.ods,
            &ends,
            &sender_ods,
            &nhs,
            &Decided { machine, pending },
            now,
        )?;
        db::write(&d.inner.db, Write::Insert(&row), &[]).await?;
        metrics::counter!("gp2gp_transfers_started_total", "role" => "requester").increment(1);
        finished_metrics(
            &TransferRow {
                finished_at: None,
                ..row.clone()
            },
            &row,
        );
        info!(phase = row.phase, "transfer started");
        d.changed(&conversation_id);
        let driver = d.clone();
        let conv = conversation_id.clone();
        tokio::spawn(async move {
            if let Err(e) = run_pending(&driver, Role::Requester, &conv).await {
                warn!(conversation_id = %conv, error = %e, "will retry on the next tick");
            }
        });
        Ok(conversation_id.clone())
    }
    .instrument(span)
    .await
}

/// Whether the old practice can be asked (both in SDS for GP2GP), and how long to wait for
/// its extract. Errors carry the reason code the transfer fails with.
async fn eligibility<C: Clinical>(
    d: &Driver<C>,
    sender_ods: &str,
) -> Result<(String, i64), (ReasonCode, String)> {
    let config = &d.inner.config;
    let default_wait = ms(config.default_extract_wait);
    let Some(sds) = d.inner.mhs.sds() else {
        // No directory configured: nothing to check against.
        return Ok((String::new(), default_wait));
    };
    let theirs = sds
        .lookup(sender_ods, ebxml::SERVICE_GP2GP, EHR_REQUEST)
        .await
        .map_err(|e| {
            (
                ReasonCode::SdsLookupFailed,
                format!("the old practice {sender_ods} cannot be asked by GP2GP: {e}"),
            )
        })?;
    let ours = sds
        .lookup(&config.ods, ebxml::SERVICE_GP2GP, EHR_EXTRACT)
        .await
        .map_err(|e| {
            (
                ReasonCode::SdsLookupFailed,
                format!(
                    "this practice ({}) is not set up in SDS to receive GP2GP extracts: {e}",
                    config.ods
                ),
            )
        })?;
    Ok((
        theirs.asid.unwrap_or_default(),
        ms(ours.reliability.persist_duration).max(default_wait),
    ))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------
// Inbound messages

pub(super) async fn inbound_loop<C: Clinical>(d: Driver<C>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(d.inner.config.workers.max(1)));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match d.inner.mhs.next_inbound().await {
            Ok(message) => {
                let driver = d.clone();
                tokio::spawn(async move {
                    let id = message.message_id.clone();
                    if let Err(e) = handle_inbound(&driver, message).await {
                        warn!(message_id = %id, error = %e,
                            "inbound GP2GP message not handled; the MHS will hand it over again");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                warn!(error = %e, "cannot read the MHS inbox; trying again in a second");
                drop(permit);
                d.inner.clock.sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

pub(super) async fn handle_inbound<C: Clinical>(
    d: &Driver<C>,
    message: mhs::InboundMessage,
) -> Result<(), DriverError> {
    let conversation_id = message.conversation_id().to_string();
    let span = info_span!("gp2gp.receive", conversation_id = %conversation_id,
        message_id = %message.message_id, interaction = %message.interaction_id());
    async {
        let lock = d.lock(&conversation_id);
        let guard = lock.lock().await;
        let roles = match wire::read(&message.message) {
            Ok(incoming) => on_incoming(d, &conversation_id, &message, incoming).await?,
            Err(e) => on_unreadable(d, &conversation_id, &message, &e).await?,
        };
        drop(guard);
        d.inner.mhs.ack_inbound(&message.message_id).await?;
        for role in roles {
            if let Err(e) = run_pending(d, role, &conversation_id).await {
                warn!(error = %e, "actions left for the next tick");
            }
        }
        Ok(())
    }
    .instrument(span)
    .await
}

/// Takes in one readable message; the roles whose actions are now due.
async fn on_incoming<C: Clinical>(
    d: &Driver<C>,
    conv: &str,
    message: &mhs::InboundMessage,
    incoming: Incoming,
) -> Result<Vec<Role>, DriverError> {
    let inner = &d.inner;
    let now = d.now();
    let id = message.message_id.as_str();
    let interaction = message.interaction_id().to_string();
    match incoming {
        Incoming::Request {
            request_id,
            ehr_request_id,
            nhs_number,
            parties,
        } => {
            let role = Role::Sender;
            let row = message_row(role, conv, id, "in", &interaction, now, "EhrRequest");
            if db::get(&inner.db, role.as_str(), conv).await?.is_some() {
                let mut dup = row;
                dup.note = "duplicate EhrRequest: ignored".into();
                db::record_messages(&inner.db, &[dup]).await?;
                return Ok(vec![role]);
            }
            let (state, actions) = sender::State::new(request_id);
            let mut pending: Vec<Pending> = actions.into_iter().map(Pending::Sender).collect();
            pending.push(Pending::Check);
            let requester_ods = parties.requester_ods.clone();
            let ends = Ends {
                parties,
                ehr_request_id: Some(ehr_request_id),
            };
            let transfer = new_row(
                role,
                conv,
                &inner.config.ods,
                &ends,
                &requester_ods,
                &nhs_number,
                &Decided {
                    machine: Machine::Sender(state),
                    pending,
                },
                now,
            )?;
            if db::write(&inner.db, Write::Insert(&transfer), &[row]).await? {
                metrics::counter!("gp2gp_transfers_started_total", "role" => "sender").increment(1);
                d.changed(conv);
            }
            Ok(vec![role])
        }
        Incoming::Extract {
            message_id,
            interaction_id,
            hl7,
            documents,
            inline,
            parties,
            nhs_number,
            ..
        } => {
            let role = Role::Requester;
            if db::has_message(&inner.db, role.as_str(), id, "in").await? {
                return Ok(vec![role]);
            }
            let note = if documents.is_empty() {
                "EhrExtract".to_string()
            } else {
                format!("EhrExtract; {} documents follow", documents.len())
            };
            let row = message_row(role, conv, id, "in", &interaction_id, now, note);
            let Some(transfer) = db::get(&inner.db, role.as_str(), conv).await? else {
                // Nobody here asked for this record: 09.
                let mut unasked = row;
                unasked.note = "EhrExtract without a request: answered with 09".into();
                db::record_messages(&inner.db, &[unasked]).await?;
                let ack_id = derived_id(conv, &format!("nack/{id}"));
                let payload = wire::ack(
                    &ack_id,
                    message_id.as_str(),
                    Some(ReasonCode::ExtractWithoutRequest),
                    &inner.config.asid,
                    &parties.sender_asid,
                    now,
                );
                send_ack(
                    d,
                    Role::Requester,
                    conv,
                    &parties.sender_ods,
                    &ack_id,
                    message_id.as_str(),
                    Some(ReasonCode::ExtractWithoutRequest),
                    payload,
                )
                .await?;
                return Ok(vec![]);
            };
            // Another patient's record: refused as the wrong patient (28), never filed.
            if let Some(theirs) = nhs_number.as_deref().map(str::trim)
                && !theirs.is_empty()
                && theirs != transfer.nhs_number
            {
                let reason = format!(
                    "the extract is the record of patient {theirs}, not of {} whose record was asked for",
                    transfer.nhs_number
                );
                let mut wrong = row;
                wrong.note = format!("{reason}: refused with 28");
                let event = requester::Event::BadExtract {
                    message_id: message_id.clone(),
                    code: ReasonCode::NonAbaWrongPatient,
                    reason,
                };
                if let Applied::Refused(why) =
                    apply(d, role, conv, Follow::Requester(event), &[wrong]).await?
                {
                    info!(%why, "extract for another patient refused");
                    let parties = parties_of(&transfer)?;
                    let code = ReasonCode::NonAbaWrongPatient;
                    queue_nack(d, conv, &parties, message_id.as_str(), code).await?;
                }
                return Ok(vec![role]);
            }
            let received = Received {
                hl7,
                interaction_id,
                documents: documents.clone(),
                fragments: None,
                parts: inline,
            };
            stored::put_received(&inner.payloads, conv, id, &received).await?;
            let deadline = now.saturating_add(collection_wait(d, documents.len()).await);
            let event = requester::Event::Extract {
                message_id: message_id.clone(),
                documents,
                deadline_ms: deadline,
            };
            match apply(d, role, conv, Follow::Requester(event), &[row]).await? {
                Applied::Refused(why) => {
                    info!(%why, "extract refused");
                    // A second extract for a transfer that has one: 12.
                    let parties = parties_of(&transfer)?;
                    queue_nack(
                        d,
                        conv,
                        &parties,
                        message_id.as_str(),
                        ReasonCode::DuplicateExtract,
                    )
                    .await?;
                }
                Applied::Changed | Applied::NoTransfer => {}
            }
            Ok(vec![role])
        }
        Incoming::Continue {
            message_id: _,
            extract_message_id: _,
        } => {
            let role = Role::Sender;
            if db::has_message(&inner.db, role.as_str(), id, "in").await? {
                return Ok(vec![role]);
            }
            let row = message_row(role, conv, id, "in", &interaction, now, "Continue");
            if let Applied::Refused(why) = apply(
                d,
                role,
                conv,
                Follow::Sender(sender::Event::Continue),
                &[row],
            )
            .await?
            {
                info!(%why, "Continue ignored");
            }
            Ok(vec![role])
        }
        Incoming::Copc { message_id, parts } => {
            let role = Role::Requester;
            if db::has_message(&inner.db, role.as_str(), id, "in").await? {
                return Ok(vec![role]);
            }
            let note = format!("large-message part ({} parts)", parts.len());
            let row = message_row(role, conv, id, "in", &interaction, now, note);
            let received = Received {
                interaction_id: interaction.clone(),
                parts,
                ..Received::default()
            };
            stored::put_received(&inner.payloads, conv, id, &received).await?;
            let event = requester::Event::Copc {
                message_id: message_id.clone(),
            };
            copc_applied(d, conv, message_id.as_str(), event, row).await
        }
        Incoming::FragmentIndex {
            message_id,
            fragments,
            parts,
        } => {
            let role = Role::Requester;
            if db::has_message(&inner.db, role.as_str(), id, "in").await? {
                return Ok(vec![role]);
            }
            let note = format!("fragment index of {} fragments", fragments.len());
            let row = message_row(role, conv, id, "in", &interaction, now, note);
            let received = Received {
                interaction_id: interaction.clone(),
                fragments: Some(fragments.iter().map(|f| f.as_str().to_string()).collect()),
                parts,
                ..Received::default()
            };
            stored::put_received(&inner.payloads, conv, id, &received).await?;
            let event = requester::Event::FragmentIndex {
                message_id: message_id.clone(),
                fragments,
            };
            copc_applied(d, conv, message_id.as_str(), event, row).await
        }
        Incoming::Ack {
            message_id: _,
            acked_message_id,
            ack_type,
            code,
            ..
        } => {
            let positive = ack_type == wire::AckType::AA;
            on_ack(d, conv, id, acked_message_id.as_str(), positive, code).await
        }
    }
}

async fn copc_applied<C: Clinical>(
    d: &Driver<C>,
    conv: &str,
    message_id: &str,
    event: requester::Event,
    row: MessageRow,
) -> Result<Vec<Role>, DriverError> {
    match apply(d, Role::Requester, conv, Follow::Requester(event), &[row]).await? {
        Applied::Refused(why) => {
            info!(%why, "large-message part refused");
            if let Some(t) = db::get(&d.inner.db, Role::Requester.as_str(), conv).await? {
                let parties = parties_of(&t)?;
                queue_nack(
                    d,
                    conv,
                    &parties,
                    message_id,
                    ReasonCode::LargeMessageGeneralFailure,
                )
                .await?;
            }
        }
        Applied::NoTransfer => info!("large-message part for no transfer here: dropped"),
        Applied::Changed => {}
    }
    Ok(vec![Role::Requester])
}

/// An acknowledgement: of the requester's request, or of the sender's extract or COPCs.
async fn on_ack<C: Clinical>(
    d: &Driver<C>,
    conv: &str,
    id: &str,
    acked: &str,
    positive: bool,
    code: Option<ReasonCode>,
) -> Result<Vec<Role>, DriverError> {
    let inner = &d.inner;
    let now = d.now();
    let code_if_negative = if positive {
        None
    } else {
        Some(code.unwrap_or(ReasonCode::Unexpected))
    };
    // The sender's side, when the acknowledged message is one it sent.
    if let Some(row) = db::get(&inner.db, Role::Sender.as_str(), conv).await?
        && let Machine::Sender(state) = machine_of(&row)?
    {
        let (extract_id, copcs): (Option<&MessageId>, Vec<&MessageId>) = match &state {
            sender::State::AwaitingContinue {
                extract_id, copcs, ..
            } => (Some(extract_id), copcs.iter().collect()),
            sender::State::SendingFragments {
                extract_id,
                unacked,
                ..
            } => (Some(extract_id), unacked.iter().collect()),
            sender::State::AwaitingFinalAck { extract_id, .. } => (Some(extract_id), vec![]),
            _ => (None, vec![]),
        };
        let event = if extract_id.is_some_and(|e| e.as_str() == acked) {
            Some(sender::Event::FinalAck {
                code: code_if_negative,
            })
        } else if copcs.iter().any(|c| c.as_str() == acked) {
            Some(match code_if_negative {
                None => sender::Event::CopcAcked {
                    message_id: MessageId::new(acked),
                },
                Some(code) => sender::Event::CopcNacked {
                    message_id: MessageId::new(acked),
                    code,
                },
            })
        } else {
            None
        };
        if let Some(event) = event {
            if db::has_message(&inner.db, Role::Sender.as_str(), id, "in").await? {
                return Ok(vec![Role::Sender]);
            }
            let row = ack_row(
                Role::Sender,
                conv,
                id,
                "in",
                acked,
                code_if_negative,
                now,
                "",
            );
            if let Applied::Refused(why) =
                apply(d, Role::Sender, conv, Follow::Sender(event), &[row]).await?
            {
                info!(%why, "acknowledgement ignored");
            }
            return Ok(vec![Role::Sender]);
        }
    }
    // The requester's side: the sender's answer to the request.
    if db::get(&inner.db, Role::Requester.as_str(), conv)
        .await?
        .is_some()
    {
        if db::has_message(&inner.db, Role::Requester.as_str(), id, "in").await? {
            return Ok(vec![Role::Requester]);
        }
        let row = ack_row(
            Role::Requester,
            conv,
            id,
            "in",
            acked,
            code_if_negative,
            now,
            "",
        );
        match code_if_negative {
            None => db::record_messages(&inner.db, &[row]).await?,
            Some(code) => {
                let event = requester::Event::RequestRefused { code };
                if let Applied::Refused(why) =
                    apply(d, Role::Requester, conv, Follow::Requester(event), &[row]).await?
                {
                    info!(%why, "negative acknowledgement ignored");
                }
            }
        }
        return Ok(vec![Role::Requester]);
    }
    let row = ack_row(
        Role::Sender,
        conv,
        id,
        "in",
        acked,
        code_if_negative,
        now,
        "acknowledgement of a message this practice did not send: ignored",
    );
    db::record_messages(&inner.db, &[row]).await?;
    Ok(vec![])
}

/// A message that could not be read as GP2GP.
async fn on_unreadable<C: Clinical>(
    d: &Driver<C>,
    conv: &str,
    message: &mhs::InboundMessage,
    error: &wire::WireError,
) -> Result<Vec<Role>, DriverError> {
    let inner = &d.inner;
    let now = d.now();
    let interaction = message.interaction_id().to_string();
    warn!(error = %error, "unreadable GP2GP message");
    let code = error.reason_code();
    if interaction.starts_with("RCMR_IN030000")
        && db::get(&inner.db, Role::Requester.as_str(), conv)
            .await?
            .is_some()
    {
        let row = message_row(
            Role::Requester,
            conv,
            &message.message_id,
            "in",
            &interaction,
            now,
            format!("unreadable extract: {error}"),
        );
        let event = requester::Event::BadExtract {
            message_id: MessageId::new(message.message_id.clone()),
            code,
            reason: format!("the extract could not be read: {error}"),
        };
        if let Applied::Refused(why) =
            apply(d, Role::Requester, conv, Follow::Requester(event), &[row]).await?
        {
            info!(%why, "unreadable extract refused");
            if let Some(t) = db::get(&inner.db, Role::Requester.as_str(), conv).await? {
                let parties = parties_of(&t)?;
                queue_nack(d, conv, &parties, &message.message_id, code).await?;
            }
        }
        return Ok(vec![Role::Requester]);
    }
    // A large-message part for a transfer this practice requested is the requester's.
    let requested = if interaction == COPC {
        db::get(&inner.db, Role::Requester.as_str(), conv).await?
    } else {
        None
    };
    let role = if requested.is_some() {
        Role::Requester
    } else if interaction == EHR_REQUEST || interaction == COPC {
        Role::Sender
    } else {
        Role::Requester
    };
    let row = message_row(
        role,
        conv,
        &message.message_id,
        "in",
        &interaction,
        now,
        format!("unreadable ({}): {error}", code.code()),
    );
    db::record_messages(&inner.db, &[row]).await?;
    // Refused with its code (30), so the sender knows; the transfer waits on for a good one.
    if let Some(transfer) = requested {
        let parties = parties_of(&transfer)?;
        queue_nack(d, conv, &parties, &message.message_id, code).await?;
    }
    Ok(vec![])
}

/// How long a requester waits for the rest of a large record: the extract's persist
/// duration plus one COPC persist duration per message still to come (GP2GP.md).
async fn collection_wait<C: Clinical>(d: &Driver<C>, copcs: usize) -> i64 {
    let config = &d.inner.config;
    let (mut extract, mut copc) = (config.default_extract_wait, config.default_copc_wait);
    if let Some(sds) = d.inner.mhs.sds() {
        if let Ok(dest) = sds
            .lookup(&config.ods, ebxml::SERVICE_GP2GP, EHR_EXTRACT)
            .await
        {
            extract = dest.reliability.persist_duration;
        }
        if let Ok(dest) = sds.lookup(&config.ods, ebxml::SERVICE_GP2GP, COPC).await {
            copc = dest.reliability.persist_duration;
        }
    }
    ms(extract).saturating_add(ms(copc).saturating_mul(i64::try_from(copcs).unwrap_or(i64::MAX)))
}

/// Adds a NACK to a requester transfer's pending actions (for messages the machine
/// refused: it changes no state).
async fn queue_nack<C: Clinical>(
    d: &Driver<C>,
    conv: &str,
    parties: &Parties,
    message_id: &str,
    code: ReasonCode,
) -> Result<(), DriverError> {
    let ack_id = derived_id(conv, &format!("nack/{message_id}"));
    let payload = wire::ack(
        &ack_id,
        message_id,
        Some(code),
        &parties.requester_asid,
        &parties.sender_asid,
        d.now(),
    );
    send_ack(
        d,
        Role::Requester,
        conv,
        &parties.sender_ods,
        &ack_id,
        message_id,
        Some(code),
        payload,
    )
    .await
}

/// Sends an acknowledgement at once and records it.
#[allow(clippy::too_many_arguments)]
async fn send_ack<C: Clinical>(
    d: &Driver<C>,
    role: Role,
    conv: &str,
    to_ods: &str,
    ack_id: &str,
    acked: &str,
    code: Option<ReasonCode>,
    payload: String,
) -> Result<(), DriverError> {
    let mut out = mhs::Outbound::gp2gp(
        Route::Sds {
            ods_code: to_ods.to_string(),
        },
        MCCI,
        conv,
        payload,
    );
    out.message_id = Some(ack_id.to_string());
    out.ref_to_message_id = Some(acked.to_string());
    d.inner.mhs.send(out).await?;
    let row = ack_row(role, conv, ack_id, "out", acked, code, d.now(), "");
    db::record_messages(&d.inner.db, &[row]).await
}

// ---------------------------------------------------------------------------------------
// Carrying out actions

/// Carries out a transfer's pending actions, one at a time, each followed by a versioned
/// write that removes it (and applies what it led to).
pub(super) async fn run_pending<C: Clinical>(
    d: &Driver<C>,
    role: Role,
    conv: &str,
) -> Result<(), DriverError> {
    let lock = d.lock(conv);
    let _guard = lock.lock().await;
    loop {
        let Some(row) = db::get(&d.inner.db, role.as_str(), conv).await? else {
            return Ok(());
        };
        let mut pending = pending_of(&row)?;
        if pending.is_empty() {
            return Ok(());
        }
        let action = pending.remove(0);
        let (follow, messages) = match execute(d, &row, &action).await {
            Ok(done) => done,
            Err(e) if unroutable(&e) && acknowledgement(&action).is_some() => {
                // SDS has no route to the peer for it, and retrying cannot make one: the
                // acknowledgement is given up (and shown so), not retried on every tick.
                warn!(error = %e, "acknowledgement cannot be routed: given up");
                let row = acknowledgement(&action).map(|(purpose, acked, code)| {
                    let id = derived_id(conv, &format!("{purpose}/{}", acked.as_str()));
                    let note = format!("not sent: {e}");
                    ack_row(role, conv, &id, "out", acked.as_str(), code, d.now(), note)
                });
                (None, row.into_iter().collect())
            }
            Err(e) => return Err(e),
        };
        let machine = machine_of(&row)?;
        let (machine, more) = match follow {
            None => (machine, vec![]),
            Some(f) => match step(machine.clone(), f) {
                Ok(next) => next,
                Err(refusal) => {
                    info!(%refusal, "result of an action did not apply");
                    (machine, vec![])
                }
            },
        };
        pending.extend(more);
        let next = next_row(&row, &Decided { machine, pending }, d.now())?;
        let written = db::write(
            &d.inner.db,
            Write::Update {
                row: &next,
                expected_version: row.version,
            },
            &messages,
        )
        .await?;
        if written {
            finished_metrics(&row, &next);
            if next.finished_at.is_some() && pending_of(&next)?.is_empty() {
                stored::release(&d.inner.payloads, conv, role == Role::Requester).await;
            }
            d.changed(conv);
        }
    }
}

/// Whether sending failed because SDS has no route (or several) for the message: no
/// retry can help.
fn unroutable(e: &DriverError) -> bool {
    matches!(
        e,
        DriverError::Mhs(mhs::Error::Sds(
            mhs::SdsError::NoResult { .. } | mhs::SdsError::SeveralResults { .. }
        ))
    )
}

/// For an action that sends an acknowledgement: its purpose (what its id is derived
/// from), the message it acknowledges and its code.
fn acknowledgement(action: &Pending) -> Option<(&'static str, &MessageId, Option<ReasonCode>)> {
    match action {
        Pending::Sender(sender::Action::AckRequest { request_id, code }) => {
            Some(("request-ack", request_id, *code))
        }
        Pending::Requester(requester::Action::AckCopc { message_id }) => {
            Some(("ack", message_id, None))
        }
        Pending::Requester(requester::Action::Nack { message_id, code }) => {
            Some(("nack", message_id, Some(*code)))
        }
        Pending::Requester(requester::Action::FinalAck {
            extract_message_id,
            code,
        }) => Some(("final-ack", extract_message_id, *code)),
        _ => None,
    }
}

/// Carries out one action: what it leads to, and the messages it sent.
async fn execute<C: Clinical>(
    d: &Driver<C>,
    row: &TransferRow,
    action: &Pending,
) -> Result<(Option<Follow>, Vec<MessageRow>), DriverError> {
    let inner = &d.inner;
    let conv = row.conversation_id.as_str();
    let parties = parties_of(row)?;
    let now = d.now();
    let peer = Route::Sds {
        ods_code: row.peer_ods.clone(),
    };
    let role = Role::parse(&row.role).unwrap_or(Role::Requester);
    let ack = |purpose: &str, acked: &MessageId, code: Option<ReasonCode>, from: &str, to: &str| {
        let id = derived_id(conv, &format!("{purpose}/{}", acked.as_str()));
        let payload = wire::ack(&id, acked.as_str(), code, from, to, now);
        let mut out = mhs::Outbound::gp2gp(peer.clone(), MCCI, conv, payload);
        out.message_id = Some(id.clone());
        out.ref_to_message_id = Some(acked.as_str().to_string());
        (id, out)
    };
    match action {
        Pending::SendRequest { request_id } => {
            let payload = wire::ehr_request(&parties, request_id, &row.nhs_number, now);
            let mut out = mhs::Outbound::gp2gp(peer.clone(), EHR_REQUEST, conv, payload);
            out.message_id = Some(request_id.clone());
            match inner.mhs.send(out).await {
                Ok(_) => Ok((
                    None,
                    vec![message_row(
                        role,
                        conv,
                        request_id,
                        "out",
                        EHR_REQUEST,
                        now,
                        "EhrRequest",
                    )],
                )),
                Err(e) => match e.reason_code() {
                    Some(code) => Ok((
                        Some(Follow::RequesterFailed {
                            code,
                            reason: format!("the request could not be sent: {e}"),
                        }),
                        vec![],
                    )),
                    None => Err(e.into()),
                },
            }
        }
        Pending::Check => Ok((Some(Follow::Sender(check(d, row, &parties).await?)), vec![])),
        Pending::Requester(a) => {
            let (ours, theirs) = (
                parties.requester_asid.as_str(),
                parties.sender_asid.as_str(),
            );
            match a {
                requester::Action::AckCopc { message_id } => {
                    let (id, out) = ack("ack", message_id, None, ours, theirs);
                    inner.mhs.send(out).await?;
                    let r = ack_row(role, conv, &id, "out", message_id.as_str(), None, now, "");
                    Ok((None, vec![r]))
                }
                requester::Action::Nack { message_id, code } => {
                    let (id, out) = ack("nack", message_id, Some(*code), ours, theirs);
                    inner.mhs.send(out).await?;
                    let r = ack_row(
                        role,
                        conv,
                        &id,
                        "out",
                        message_id.as_str(),
                        Some(*code),
                        now,
                        "",
                    );
                    Ok((None, vec![r]))
                }
                requester::Action::SendContinue { extract_message_id } => {
                    let id = derived_id(conv, "continue");
                    let payload =
                        wire::continue_message(&parties, &id, extract_message_id.as_str(), now);
                    let mut out = mhs::Outbound::gp2gp(peer.clone(), COPC, conv, payload);
                    out.message_id = Some(id.clone());
                    out.ref_to_message_id = Some(extract_message_id.as_str().to_string());
                    inner.mhs.send(out).await?;
                    Ok((
                        None,
                        vec![message_row(role, conv, &id, "out", COPC, now, "Continue")],
                    ))
                }
                requester::Action::Assemble { extract_message_id } => {
                    let event = assemble(d, row, extract_message_id).await?;
                    Ok((Some(Follow::Requester(event)), vec![]))
                }
                requester::Action::FinalAck {
                    extract_message_id,
                    code,
                } => {
                    let (id, out) = ack("final-ack", extract_message_id, *code, ours, theirs);
                    inner.mhs.send(out).await?;
                    let note = match code {
                        None => "final acknowledgement: filed".to_string(),
                        Some(c) => format!("final acknowledgement: {}", c.description()),
                    };
                    let r = ack_row(
                        role,
                        conv,
                        &id,
                        "out",
                        extract_message_id.as_str(),
                        *code,
                        now,
                        note,
                    );
                    Ok((None, vec![r]))
                }
            }
        }
        Pending::Sender(a) => {
            let (ours, theirs) = (
                parties.sender_asid.as_str(),
                parties.requester_asid.as_str(),
            );
            match a {
                sender::Action::Build => {
                    Ok((Some(Follow::Sender(build(d, row, &parties).await?)), vec![]))
                }
                sender::Action::SendExtract { extract_id } => {
                    let out = stored::get_outbound(
                        &inner.payloads,
                        conv,
                        extract_id.as_str(),
                        peer.clone(),
                    )
                    .await?;
                    let interaction = out.interaction_id.clone();
                    let note = format!(
                        "EhrExtract ({} bytes, {} attachments inline, {} to follow)",
                        out.payload.len(),
                        out.attachments.len(),
                        out.external_attachments.len()
                    );
                    inner.mhs.send(out).await?;
                    Ok((
                        None,
                        vec![message_row(
                            role,
                            conv,
                            extract_id.as_str(),
                            "out",
                            &interaction,
                            now,
                            note,
                        )],
                    ))
                }
                sender::Action::SendCopcs { message_ids } => {
                    let mut rows = Vec::with_capacity(message_ids.len());
                    for id in message_ids {
                        let out =
                            stored::get_outbound(&inner.payloads, conv, id.as_str(), peer.clone())
                                .await?;
                        let note = format!(
                            "large-message part ({} bytes)",
                            out.attachments
                                .iter()
                                .map(|a| a.payload.len())
                                .sum::<usize>()
                        );
                        inner.mhs.send(out).await?;
                        rows.push(message_row(role, conv, id.as_str(), "out", COPC, now, note));
                    }
                    Ok((None, rows))
                }
                sender::Action::AckRequest { request_id, code } => {
                    let (id, out) = ack("request-ack", request_id, *code, ours, theirs);
                    inner.mhs.send(out).await?;
                    let note = match code {
                        None => "request acknowledged".to_string(),
                        Some(c) => format!("request refused: {}", c.description()),
                    };
                    let r = ack_row(
                        role,
                        conv,
                        &id,
                        "out",
                        request_id.as_str(),
                        *code,
                        now,
                        note,
                    );
                    Ok((None, vec![r]))
                }
            }
        }
    }
}

/// The sender's checks of a request: it names this practice (18), the patient is
/// registered here (06) and, on PDS, registered with the requester (19), and SDS can route
/// the extract to the requester (24).
async fn check<C: Clinical>(
    d: &Driver<C>,
    row: &TransferRow,
    parties: &Parties,
) -> Result<sender::Event, DriverError> {
    let inner = &d.inner;
    if parties.sender_ods != inner.config.ods {
        return Ok(sender::Event::CheckFailed {
            code: ReasonCode::RequestNotWellFormed,
        });
    }
    let registered = inner
        .clinical
        .is_registered(&row.nhs_number)
        .await
        .map_err(DriverError::Internal)?;
    if !registered {
        return Ok(sender::Event::CheckFailed {
            code: ReasonCode::PatientNotAtSurgery,
        });
    }
    if let Some(pds) = &inner.config.pds_url {
        let url = format!("{}/Patient/{}", pds.trim_end_matches('/'), row.nhs_number);
        let answer = inner
            .http
            .get(&url)
            .header("X-Request-ID", uuid::Uuid::new_v4().to_string())
            .send()
            .await
            .map_err(|e| DriverError::Internal(format!("PDS at {url}: {e}")))?;
        if answer.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(sender::Event::CheckFailed {
                code: ReasonCode::PatientNotAtSurgery,
            });
        }
        if !answer.status().is_success() {
            return Err(DriverError::Internal(format!(
                "PDS at {url} answered {}",
                answer.status()
            )));
        }
        let patient: serde_json::Value = answer
            .json()
            .await
            .map_err(|e| DriverError::Internal(format!("PDS at {url}: {e}")))?;
        let gp = patient["generalPractitioner"]
            .as_array()
            .and_then(|gps| gps.first())
            .and_then(|gp| gp["identifier"]["value"].as_str())
            .unwrap_or_default();
        if !gp.eq_ignore_ascii_case(&parties.requester_ods) {
            return Ok(sender::Event::CheckFailed {
                code: ReasonCode::NotCurrentProvider,
            });
        }
    }
    // The requester must be in SDS for the extract, or it could never be sent: 24.
    if let Some(sds) = inner.mhs.sds() {
        match sds
            .lookup(&parties.requester_ods, ebxml::SERVICE_GP2GP, EHR_EXTRACT)
            .await
        {
            Ok(_) => {}
            Err(mhs::SdsError::NoResult { .. } | mhs::SdsError::SeveralResults { .. }) => {
                return Ok(sender::Event::CheckFailed {
                    code: ReasonCode::SdsLookupFailed,
                });
            }
            Err(e) => return Err(DriverError::Mhs(mhs::Error::Sds(e))),
        }
    }
    Ok(sender::Event::CheckPassed)
}

/// The sender builds the extract: reads the record, translates it, reads its documents,
/// plans the messages and keeps them until they are sent.
async fn build<C: Clinical>(
    d: &Driver<C>,
    row: &TransferRow,
    parties: &Parties,
) -> Result<sender::Event, DriverError> {
    let inner = &d.inner;
    let conv = row.conversation_id.as_str();
    let now = d.now();
    let Machine::Sender(state) = machine_of(row)? else {
        return Err(DriverError::Internal("not a sender transfer".into()));
    };
    let request_id = ends_of(row)?
        .ehr_request_id
        .or_else(|| state.request_id().map(|r| r.as_str().to_string()))
        .unwrap_or_default();
    let failed = |reason: String| sender::Event::BuildFailed { reason };
    let record = match inner.clinical.read_record(&row.nhs_number, conv).await {
        Ok(r) => r,
        Err(e) => return Ok(failed(format!("the record could not be read: {e}"))),
    };
    let extract_id = derived_id(conv, "out/0");
    let options = translate::to_hl7::ToHl7Options {
        from_ods: Some(parties.sender_ods.clone()),
        to_ods: Some(parties.requester_ods.clone()),
        from_asid: Some(parties.sender_asid.clone()).filter(|a| !a.is_empty()),
        to_asid: Some(parties.requester_asid.clone()).filter(|a| !a.is_empty()),
        creation_time: Some(clock::Utc::from_ms(now).hl7()),
        message_id: Some(extract_id.clone()),
        request_id: Some(request_id).filter(|r| !r.is_empty()),
    };
    // Translation is CPU work: off the async threads. It streams: the record's JSON in,
    // the extract's XML out, neither held as a model.
    let translated = tokio::task::spawn_blocking(move || {
        let mut xml = Vec::with_capacity(record.len());
        let report = translate::to_hl7::bundle_to_writer(&record, &mut xml, &options)
            .map_err(|e| e.to_string())?;
        drop(record);
        let xml = String::from_utf8(xml).map_err(|e| format!("it is not UTF-8: {e}"))?;
        let interaction = large::extract_interaction(&xml)
            .ok_or_else(|| "it did not give an EhrExtract message".to_string())?;
        Ok::<_, String>((interaction, xml, report))
    })
    .await
    .map_err(|e| DriverError::Internal(format!("translation stopped: {e}")))?;
    let (interaction, xml, report) = match translated {
        Ok(x) => x,
        Err(e) => return Ok(failed(format!("the record could not be translated: {e}"))),
    };
    let mut n = 0usize;
    let mut new_id = || {
        let id = derived_id(conv, &format!("out/{}", n + 1));
        n += 1;
        id
    };
    let route = Route::Sds {
        ods_code: parties.requester_ods.clone(),
    };
    // One document at a time: read, planned and each of its messages kept as soon as it is
    // made, so a record of large documents never sits in memory whole.
    let (mut planner, skeleton) = match large::Planner::start(
        parties,
        route,
        conv,
        interaction,
        xml,
        now,
        &mut new_id,
        &large::Sizes::default(),
    ) {
        Ok(p) => p,
        Err(e) => {
            return Ok(failed(format!(
                "the extract could not be packed for sending: {e}"
            )));
        }
    };
    let mut copcs = Vec::new();
    if let Some(placement) = skeleton {
        keep_placement(&inner.payloads, conv, placement, &mut new_id, &mut copcs).await?;
    }
    for file in &report.documents {
        let content = match inner
            .clinical
            .read_document(&row.nhs_number, file, conv)
            .await
        {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                warn!(file = %file.filename, error = %e, "document unreadable: an absent-attachment file goes instead");
                None
            }
        };
        let document = large::Document {
            document_id: file
                .filename
                .split('_')
                .next()
                .unwrap_or(&file.filename)
                .to_string(),
            filename: file.filename.clone(),
            content_type: file.content_type.clone(),
            content,
        };
        let placement = planner.place(document, &mut new_id);
        keep_placement(&inner.payloads, conv, placement, &mut new_id, &mut copcs).await?;
    }
    // The extract last: it names every document, and a rebuild after a crash makes the
    // same messages again under the same ids.
    let (extract_id, extract) = planner.finish();
    stored::put_outbound(&inner.payloads, conv, &extract).await?;
    Ok(sender::Event::Built {
        extract_id,
        copcs,
        now_ms: now,
    })
}

/// Keeps the messages of one placed document (nothing for an inline one: it goes with the
/// extract), adding their ids to `copcs` in sending order (a fragment index before its
/// fragments, though it is kept after them: it lists them).
async fn keep_placement(
    payloads: &store::PayloadStore,
    conv: &str,
    placement: large::Placement,
    new_id: &mut (dyn FnMut() -> String + Send),
    copcs: &mut Vec<MessageId>,
) -> Result<(), DriverError> {
    match placement {
        large::Placement::Inline => {}
        large::Placement::Message(message) => {
            stored::put_outbound(payloads, conv, &message).await?;
            copcs.extend(message.message_id.as_deref().map(MessageId::new));
        }
        large::Placement::Split(mut fragments) => {
            copcs.push(MessageId::new(fragments.index_id()));
            while let Some(fragment) = fragments.next_fragment(new_id) {
                stored::put_outbound(payloads, conv, &fragment).await?;
                copcs.extend(fragment.message_id.as_deref().map(MessageId::new));
            }
            stored::put_outbound(payloads, conv, &fragments.into_index()).await?;
        }
    }
    Ok(())
}

/// The requester puts the record together, translates it and hands it to the inbox.
async fn assemble<C: Clinical>(
    d: &Driver<C>,
    row: &TransferRow,
    extract_message_id: &MessageId,
) -> Result<requester::Event, DriverError> {
    let inner = &d.inner;
    let conv = row.conversation_id.as_str();
    let failed =
        |code: ReasonCode, reason: String| requester::Event::ProcessingFailed { code, reason };
    let Some(extract) =
        stored::get_received(&inner.payloads, conv, extract_message_id.as_str()).await?
    else {
        return Ok(failed(
            ReasonCode::ExtractNotWellFormed,
            "the extract was not kept; it cannot be read".into(),
        ));
    };
    let assembled =
        match super::assembly::assemble(&inner.payloads, conv, extract_message_id, &extract).await?
        {
            Ok(a) => a,
            Err(e) => return Ok(failed(e.reason_code(), e.to_string())),
        };
    let xml = assembled.extract_xml;
    // Translated as a stream (the XML in, the JSON out, no model of either held whole).
    let translated = tokio::task::spawn_blocking(move || {
        let mut json = Vec::with_capacity(xml.len());
        translate::to_fhir::extract_to_writer(
            xml.as_bytes(),
            &mut json,
            &translate::to_fhir::ToFhirOptions::default(),
        )
        .map(|report| (bytes::Bytes::from(json), report))
        .map_err(|e| format!("the extract could not be translated: {e}"))
    })
    .await
    .map_err(|e| DriverError::Internal(format!("translation stopped: {e}")))?;
    let (record, report) = match translated {
        Ok(x) => x,
        Err(reason) => return Ok(failed(ReasonCode::ExtractNotWellFormed, reason)),
    };
    let arrival = super::Arrival {
        conversation_id: conv.to_string(),
        nhs_number: row.nhs_number.clone(),
        from_ods: row.peer_ods.clone(),
        interaction_id: extract.interaction_id.clone(),
        record,
        report,
        documents: assembled.documents,
        payloads: inner.payloads.clone(),
    };
    match inner.clinical.deliver(arrival).await {
        Ok(Some(how)) => Ok(requester::Event::Integration(how)),
        // Waiting for a person: the ticker asks for the decision. A tick changes nothing now.
        Ok(None) => Ok(requester::Event::Tick { now_ms: d.now() }),
        Err(e) => Err(DriverError::Internal(format!(
            "the record could not be put in the integration inbox: {e}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// The ticker

pub(super) async fn tick_loop<C: Clinical>(d: Driver<C>) {
    // First, whatever an earlier run left half done.
    if let Err(e) = resume(&d).await {
        warn!(error = %e, "resuming unfinished transfers failed; the ticker tries again");
    }
    loop {
        d.inner.clock.sleep(d.inner.config.tick).await;
        if let Err(e) = tick_once(&d).await {
            warn!(error = %e, "tick failed");
        }
    }
}

async fn resume<C: Clinical>(d: &Driver<C>) -> Result<(), DriverError> {
    let mut rows = db::due(&d.inner.db, d.now()).await?;
    rows.extend(db::finished_with_pending(&d.inner.db).await?);
    for row in rows {
        if row.pending != "[]"
            && let Some(role) = Role::parse(&row.role)
            && let Err(e) = run_pending(d, role, &row.conversation_id).await
        {
            warn!(conversation_id = %row.conversation_id, error = %e, "could not resume yet");
        }
    }
    Ok(())
}

pub(super) async fn tick_once<C: Clinical>(d: &Driver<C>) -> Result<(), DriverError> {
    let now = d.now();
    let tick = ms(d.inner.config.tick);
    let mut rows = db::due(&d.inner.db, now).await?;
    rows.extend(db::finished_with_pending(&d.inner.db).await?);
    for row in rows {
        let Some(role) = Role::parse(&row.role) else {
            continue;
        };
        let conv = row.conversation_id.clone();
        // Someone is working on it in this process: leave it to them.
        if d.lock(&conv).try_lock().is_err() {
            continue;
        }
        let result = if row.pending != "[]" {
            // Left over from a failure: try again, but not in a tight loop.
            if now - row.updated_at < 2 * tick {
                continue;
            }
            run_pending(d, role, &conv).await
        } else if row.deadline_at.is_some_and(|t| t <= now) {
            let follow = match role {
                Role::Requester => Follow::Requester(requester::Event::Tick { now_ms: now }),
                Role::Sender => Follow::Sender(sender::Event::Tick { now_ms: now }),
            };
            match apply(d, role, &conv, follow, &[]).await {
                Ok(_) => run_pending(d, role, &conv).await,
                Err(e) => Err(e),
            }
        } else if row.phase == "awaiting integration" {
            match d.inner.clinical.decision(&conv).await {
                Ok(Some(how)) => {
                    let follow = Follow::Requester(requester::Event::Integration(how));
                    match apply(d, role, &conv, follow, &[]).await {
                        Ok(_) => run_pending(d, role, &conv).await,
                        Err(e) => Err(e),
                    }
                }
                Ok(None) => Ok(()),
                Err(e) => Err(DriverError::Internal(e)),
            }
        } else {
            Ok(())
        };
        if let Err(e) = result {
            warn!(conversation_id = %conv, error = %e, "tick: will try again");
        }
    }
    Ok(())
}
