//! What the driver keeps in the payload store: the messages a sender has built but not yet
//! sent (the COPC messages wait for the requester's Continue), and what a requester has
//! received (the extract, its inline parts, every document and fragment) until the record
//! is whole.
//!
//! Keys: `gp2gp/<conversation>/out/<message id>/…` and `gp2gp/<conversation>/in/<message
//! id>/…`. Each message is a small JSON description plus its parts as raw bytes, so a
//! 100 MB attachment is never turned into JSON.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use store::PayloadStore;

use super::DriverError;
use crate::requester::ExpectedDocument;
use crate::wire::ReceivedPart;

fn out_prefix(conversation: &str, message_id: &str) -> String {
    format!("gp2gp/{}/out/{}", safe(conversation), safe(message_id))
}

fn in_prefix(conversation: &str, message_id: &str) -> String {
    format!("gp2gp/{}/in/{}", safe(conversation), safe(message_id))
}

/// Where the requester keeps document `index` of a record put together from the extract
/// `extract_message_id` (inside the extract's own copies: removed with them when the
/// transfer ends; the practice takes its copy when the record is delivered).
pub(crate) fn document_key(conversation: &str, extract_message_id: &str, index: usize) -> String {
    format!(
        "{}/documents/{index}",
        in_prefix(conversation, extract_message_id)
    )
}

/// Ids come from the network: keep only what is safe in a key.
fn safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Serialize, Deserialize)]
struct OutboundMeta {
    service: String,
    interaction_id: String,
    message_id: Option<String>,
    ref_to_message_id: Option<String>,
    attachments: Vec<AttachmentMeta>,
    external: Vec<ExternalMeta>,
}

#[derive(Serialize, Deserialize)]
struct AttachmentMeta {
    content_id: Option<String>,
    content_type: String,
    is_base64: bool,
    description: String,
    document_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ExternalMeta {
    message_id: String,
    document_id: Option<String>,
    description: String,
}

/// Removes the copies a finished transfer kept for its own crash safety: the sender's
/// built messages (`out`), or the requester's received extract, COPCs and fragments (`in`).
/// Nothing reads them once the transfer has finished with nothing left to do, and a large
/// record's copies are the bulk of a practice's disk. Best effort: a failure leaves files
/// behind (logged), never a wrong transfer. The sender's small received messages (the
/// request, acknowledgements) are kept.
pub(crate) async fn release(payloads: &PayloadStore, conversation: &str, requester: bool) {
    let prefix = format!(
        "gp2gp/{}/{}",
        safe(conversation),
        if requester { "in" } else { "out" }
    );
    let keys = match payloads.list(&prefix).await {
        Ok(k) => k,
        Err(e) => {
            tracing::debug!(error = %e, prefix, "could not list a finished transfer's copies");
            return;
        }
    };
    for key in keys {
        if let Err(e) = payloads.delete(&key).await {
            tracing::debug!(error = %e, key, "could not remove a finished transfer's copy");
        }
    }
}

/// Keeps a built message until it is time to send it.
pub(crate) async fn put_outbound(
    payloads: &PayloadStore,
    conversation: &str,
    message: &mhs::Outbound,
) -> Result<(), DriverError> {
    let id = message
        .message_id
        .as_deref()
        .ok_or_else(|| DriverError::Internal("a planned message has no message id".to_string()))?;
    let prefix = out_prefix(conversation, id);
    for (i, a) in message.attachments.iter().enumerate() {
        payloads
            .put(&format!("{prefix}/a{i}"), a.payload.clone())
            .await?;
    }
    payloads
        .put(&format!("{prefix}/payload"), message.payload.clone())
        .await?;
    let meta = OutboundMeta {
        service: message.service.clone(),
        interaction_id: message.interaction_id.clone(),
        message_id: message.message_id.clone(),
        ref_to_message_id: message.ref_to_message_id.clone(),
        attachments: message
            .attachments
            .iter()
            .map(|a| AttachmentMeta {
                content_id: a.content_id.clone(),
                content_type: a.content_type.clone(),
                is_base64: a.is_base64,
                description: a.description.clone(),
                document_id: a.document_id.clone(),
            })
            .collect(),
        external: message
            .external_attachments
            .iter()
            .map(|e| ExternalMeta {
                message_id: e.message_id.clone(),
                document_id: e.document_id.clone(),
                description: e.description.clone(),
            })
            .collect(),
    };
    // The description goes last: its presence says the message is whole.
    payloads
        .put(
            &format!("{prefix}/meta.json"),
            Bytes::from(serde_json::to_vec(&meta)?),
        )
        .await?;
    Ok(())
}

/// A built message, ready to hand to the MHS for `route`.
pub(crate) async fn get_outbound(
    payloads: &PayloadStore,
    conversation: &str,
    message_id: &str,
    route: mhs::Route,
) -> Result<mhs::Outbound, DriverError> {
    let prefix = out_prefix(conversation, message_id);
    let meta: OutboundMeta =
        serde_json::from_slice(&payloads.get(&format!("{prefix}/meta.json")).await?)?;
    let mut attachments = Vec::with_capacity(meta.attachments.len());
    for (i, a) in meta.attachments.into_iter().enumerate() {
        attachments.push(mhs::Attachment {
            content_id: a.content_id,
            content_type: a.content_type,
            is_base64: a.is_base64,
            description: a.description,
            payload: payloads.get(&format!("{prefix}/a{i}")).await?,
            document_id: a.document_id,
        });
    }
    Ok(mhs::Outbound {
        route,
        service: meta.service,
        interaction_id: meta.interaction_id,
        conversation_id: conversation.to_string(),
        message_id: meta.message_id,
        ref_to_message_id: meta.ref_to_message_id,
        payload: payloads.get(&format!("{prefix}/payload")).await?,
        attachments,
        external_attachments: meta
            .external
            .into_iter()
            .map(|e| mhs::ExternalAttachment {
                message_id: e.message_id,
                document_id: e.document_id,
                description: e.description,
            })
            .collect(),
    })
}

/// What a requester keeps of one received message.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Received {
    /// The HL7 payload (kept for the extract).
    #[serde(skip)]
    pub hl7: Bytes,
    pub interaction_id: String,
    /// For the extract: the documents its manifest says follow.
    pub documents: Vec<ExpectedDocument>,
    /// For a fragment index: its fragments in order.
    pub fragments: Option<Vec<String>>,
    /// The parts (their bytes kept beside the description, blank in it).
    pub parts: Vec<ReceivedPart>,
}

/// Keeps a received message (parts first, the description last).
pub(crate) async fn put_received(
    payloads: &PayloadStore,
    conversation: &str,
    message_id: &str,
    received: &Received,
) -> Result<(), DriverError> {
    let prefix = in_prefix(conversation, message_id);
    for (i, p) in received.parts.iter().enumerate() {
        payloads
            .put(&format!("{prefix}/p{i}"), p.bytes.clone())
            .await?;
    }
    if !received.hl7.is_empty() {
        payloads
            .put(&format!("{prefix}/hl7"), received.hl7.clone())
            .await?;
    }
    let mut described = received.clone();
    described.hl7 = Bytes::new();
    for p in &mut described.parts {
        p.bytes = Bytes::new();
    }
    payloads
        .put(
            &format!("{prefix}/meta.json"),
            Bytes::from(serde_json::to_vec(&described)?),
        )
        .await?;
    Ok(())
}

/// A received message, if it was kept whole.
pub(crate) async fn get_received(
    payloads: &PayloadStore,
    conversation: &str,
    message_id: &str,
) -> Result<Option<Received>, DriverError> {
    let prefix = in_prefix(conversation, message_id);
    let meta = match payloads.get(&format!("{prefix}/meta.json")).await {
        Ok(m) => m,
        Err(store::PayloadError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut received: Received = serde_json::from_slice(&meta)?;
    for (i, p) in received.parts.iter_mut().enumerate() {
        p.bytes = payloads.get(&format!("{prefix}/p{i}")).await?;
    }
    match payloads.get(&format!("{prefix}/hl7")).await {
        Ok(h) => received.hl7 = h,
        Err(store::PayloadError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Some(received))
}
