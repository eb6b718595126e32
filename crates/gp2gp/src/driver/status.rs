//! Where transfers stand, as the status API shows them: like the NHS adaptors'
//! `/ehr-status`, every message with its time and acknowledgement, and any error code with
//! its meaning.

use serde::Serialize;

use super::db::{self, TransferRow};
use super::{Clinical, Driver, DriverError, meaning};

/// One transfer in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferSummary {
    pub conversation_id: String,
    /// `requester` (the patient joined this practice) or `sender`.
    pub role: String,
    pub nhs_number: String,
    /// The practice at the other end.
    pub peer_ods: String,
    /// e.g. `awaiting extract`, `collecting`, `awaiting integration`, `integrated`,
    /// `rejected`, `refused`, `failed`, `internal`.
    pub phase: String,
    pub finished: bool,
    /// The reason code the transfer ended with, if any.
    pub code: Option<String>,
    /// What that code means.
    pub meaning: Option<String>,
    /// How it ended, in words.
    pub outcome: Option<String>,
    /// Unix milliseconds.
    pub started_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// One message of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStatus {
    pub message_id: String,
    /// `in` or `out`.
    pub direction: String,
    pub interaction_id: String,
    /// Unix milliseconds.
    pub at: i64,
    /// For an acknowledgement: the message it acknowledges.
    pub acknowledges: Option<String>,
    /// `AA` or `AE`.
    pub ack_type: Option<String>,
    pub code: Option<String>,
    pub meaning: Option<String>,
    pub note: String,
    /// For a message sent: where the MHS has it (`pending`, `in flight`, `delivered`,
    /// `failed`…).
    pub delivery: Option<String>,
}

/// One transfer with every message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferStatus {
    #[serde(flatten)]
    pub summary: TransferSummary,
    /// This practice.
    pub ods: String,
    /// When time next matters (a deadline), Unix milliseconds.
    pub deadline_at: Option<i64>,
    pub messages: Vec<MessageStatus>,
}

fn summary(row: &TransferRow) -> TransferSummary {
    TransferSummary {
        conversation_id: row.conversation_id.clone(),
        role: row.role.clone(),
        nhs_number: row.nhs_number.clone(),
        peer_ods: row.peer_ods.clone(),
        phase: row.phase.clone(),
        finished: row.finished_at.is_some(),
        code: row.outcome_code.clone(),
        meaning: meaning(row.outcome_code.as_deref()),
        outcome: row.outcome.clone(),
        started_at: row.started_at,
        updated_at: row.updated_at,
        finished_at: row.finished_at,
    }
}

pub(super) async fn status<C: Clinical>(
    d: &Driver<C>,
    conversation_id: &str,
) -> Result<TransferStatus, DriverError> {
    let inner = &d.inner;
    let rows = db::by_conversation(&inner.db, conversation_id).await?;
    // A practice that asked itself has both sides; the requester's is the one it started.
    let row = rows
        .iter()
        .find(|r| r.role == "requester")
        .or_else(|| rows.first())
        .ok_or_else(|| DriverError::UnknownTransfer(conversation_id.to_string()))?;
    let mut messages = Vec::new();
    for m in db::messages(&inner.db, &row.role, conversation_id).await? {
        let delivery = if m.direction == "out" {
            inner
                .mhs
                .status(&m.message_id)
                .await
                .ok()
                .map(|s| s.name().to_string())
        } else {
            None
        };
        messages.push(MessageStatus {
            meaning: meaning(m.code.as_deref()),
            message_id: m.message_id,
            direction: m.direction,
            interaction_id: m.interaction_id,
            at: m.at,
            acknowledges: m.acknowledges,
            ack_type: m.ack_type,
            code: m.code,
            note: m.note,
            delivery,
        });
    }
    Ok(TransferStatus {
        summary: summary(row),
        ods: row.ods.clone(),
        deadline_at: row.deadline_at,
        messages,
    })
}

pub(super) async fn list<C: Clinical>(
    d: &Driver<C>,
    nhs_number: Option<&str>,
    limit: i64,
) -> Result<Vec<TransferSummary>, DriverError> {
    Ok(
        db::list_transfers(&d.inner.db, nhs_number, limit.clamp(1, 10_000))
            .await?
            .iter()
            .map(summary)
            .collect(),
    )
}
