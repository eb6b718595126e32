//! A simulated practice's clinical system as the GP2GP driver sees it: the
//! [`gp2gp::driver::Clinical`] side, over the `practice` crate.

use bytes::Bytes;
use gp2gp::driver::{Arrival, Clinical};
use gp2gp::requester::Integration;
use practice::{Decision, Delivery, InboxStatus, Practice};
use store::PayloadStore;

/// Who the GP2GP system is in the practice's audit trail.
pub const GP2GP_USER: &str = "system:gp2gp";

/// One practice's clinical system.
#[derive(Debug, Clone)]
pub struct PracticeSystem {
    pub practice: Practice,
    pub payloads: PayloadStore,
}

fn integration(decision: Decision) -> Integration {
    match decision {
        Decision::Integrated => Integration::Integrated,
        Decision::FiledAsAttachment => Integration::FiledAsAttachment,
        Decision::WrongPatient => Integration::WrongPatient,
        Decision::FailedToIntegrate => Integration::FailedToIntegrate,
    }
}

/// Where the content of a document of a patient's own record is kept: attachment
/// `index` of `DocumentReference/{document_id}`.
pub fn record_document_key(ods: &str, nhs_number: &str, document_id: &str, index: usize) -> String {
    format!(
        "practice/{ods}/records/{nhs_number}/documents/{}-{index}",
        safe(document_id)
    )
}

fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where a received document is kept for the practice.
pub fn document_key(ods: &str, conversation_id: &str, filename: &str) -> String {
    format!(
        "practice/{ods}/documents/{conversation_id}/{}",
        safe(filename)
    )
}

impl Clinical for PracticeSystem {
    async fn same_system(&self, ods: &str) -> bool {
        // Every simulated practice runs its own clinical system with its own record store,
        // so no move between two of them is an internal transfer.
        ods.eq_ignore_ascii_case(self.practice.ods())
    }

    async fn is_registered(&self, nhs_number: &str) -> Result<bool, String> {
        self.practice
            .patient(nhs_number)
            .await
            .map(|p| p.is_some())
            .map_err(|e| e.to_string())
    }

    async fn read_record(&self, nhs_number: &str, conversation_id: &str) -> Result<Bytes, String> {
        self.practice
            .read_record_json(
                nhs_number,
                GP2GP_USER,
                &format!("GP2GP transfer {conversation_id} to the patient's new practice"),
            )
            .await
            .map_err(|e| e.to_string())
    }

    async fn read_document(
        &self,
        nhs_number: &str,
        document: &translate::DocumentFile,
        conversation_id: &str,
    ) -> Result<Bytes, String> {
        let id = document
            .source
            .strip_prefix("DocumentReference/")
            .unwrap_or(&document.source);
        // A seeded patient's attachments are made from the record's plan (the read audited
        // there); a patient without a plan had them stored with the record (`lloyd demo`).
        // Every read is for `conversation_id`, which the record read before it named in the
        // audit trail.
        let _ = conversation_id;
        match self
            .practice
            .read_document(nhs_number, id, GP2GP_USER)
            .await
        {
            Ok(read) => return Ok(read.bytes),
            Err(practice::PracticeError::UnknownDocument { .. }) => {}
            Err(e) => return Err(e.to_string()),
        }
        let key = record_document_key(self.practice.ods(), nhs_number, id, document.content_index);
        self.payloads.get(&key).await.map_err(|e| e.to_string())
    }

    async fn deliver(&self, arrival: Arrival) -> Result<Option<Integration>, String> {
        let ods = self.practice.ods().to_string();
        // The driver put each document together in the payload store this practice shares
        // with it: the practice's copy is a hard link, however large the document.
        for doc in &arrival.documents {
            self.payloads
                .copy(
                    &doc.key,
                    &document_key(&ods, &arrival.conversation_id, &doc.filename),
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        let report = serde_json::to_value(&arrival.report).map_err(|e| e.to_string())?;
        let item = self
            .practice
            .deliver(Delivery {
                conversation_id: arrival.conversation_id.clone(),
                record: arrival.record,
                report,
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(match item.status {
            InboxStatus::Pending => None,
            InboxStatus::Accepted | InboxStatus::Rejected => item.decision.map(integration),
        })
    }

    async fn decision(&self, conversation_id: &str) -> Result<Option<Integration>, String> {
        let item = self
            .practice
            .inbox_item(conversation_id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(item.and_then(|i| i.decision).map(integration))
    }
}
