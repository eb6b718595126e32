//! The sending side: build the wire form, persist it in the outbox ([`crate::outbox`]),
//! which delivers it with retries.

use std::sync::Arc;

use bytes::Bytes;
use ebxml::{
    AttachmentInfo, Boundary, MessageData, MessageHeader, OutboundMessage, OutboundPart, Party,
};
use tracing::Instrument;

use crate::outbox::NewEntry;
use crate::{Error, Inner, Outbound, Route, db, time};

/// Builds the wire form of `message`, persists it, and wakes the sender.
pub(crate) async fn send(inner: &Arc<Inner>, message: Outbound) -> Result<String, Error> {
    if message.interaction_id.trim().is_empty() {
        return Err(Error::InvalidMessage("the interaction id is empty".into()));
    }
    if message.conversation_id.trim().is_empty() {
        return Err(Error::InvalidMessage("the conversation id is empty".into()));
    }
    let destination = match &message.route {
        Route::Direct(d) => d.clone(),
        Route::Sds { ods_code } => {
            let sds = inner.sds.as_ref().ok_or_else(|| {
                Error::Config("a message is routed by SDS but no SDS is configured".into())
            })?;
            sds.lookup(ods_code, &message.service, &message.interaction_id)
                .await?
        }
    };
    let message_id = message
        .message_id
        .clone()
        .unwrap_or_else(time::new_message_id);
    let span = tracing::info_span!("mhs.send", conversation_id = %message.conversation_id, message_id = %message_id, interaction = %message.interaction_id);
    async {
        let now = inner.clock.now_ms();
        let header = MessageHeader {
            from: Party::spine(inner.config.party_key.clone()),
            to: Party::spine(destination.party_key.clone()),
            cpa_id: destination.cpa_id.clone(),
            conversation_id: message.conversation_id.clone(),
            service: message.service.clone(),
            action: message.interaction_id.clone(),
            message_data: MessageData {
                message_id: message_id.clone(),
                timestamp: time::ebxml_timestamp(now),
                ref_to_message_id: message.ref_to_message_id.clone(),
                time_to_live: None,
            },
            duplicate_elimination: true,
        };
        let limits = inner.config.limits;
        let mut builder = OutboundMessage::builder(header)
            .reliable()
            .payload(format!("{}@spine.nhs.uk", time::new_message_id()), message.payload.clone());
        for a in &message.attachments {
            let content_id = a
                .content_id
                .clone()
                .unwrap_or_else(|| format!("{}@spine.nhs.uk", time::new_message_id()));
            let part = if a.is_base64 {
                OutboundPart::pre_encoded_base64(content_id, a.content_type.clone(), a.payload.clone())
            } else {
                OutboundPart::text(content_id, a.content_type.clone(), a.payload.clone())
            };
            let info = AttachmentInfo::parse(&a.description).unwrap_or_default();
            builder = builder.attachment(part, a.document_id.clone(), info);
        }
        for x in &message.external_attachments {
            let info = AttachmentInfo::parse(&x.description).unwrap_or_default();
            builder = builder.external_attachment(x.message_id.clone(), x.document_id.clone(), info);
        }
        let body = builder.build(&limits)?.into_body(Boundary::random())?;
        let content_type = body.content_type();
        // The body's pieces (the attachments' are slices of the caller's bytes, not copies)
        // joined into one buffer of exactly their size: one copy, no regrowing.
        let chunks = body.collect::<Result<Vec<Bytes>, _>>()?;
        let mut wire = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
        for chunk in &chunks {
            wire.extend_from_slice(chunk);
        }
        drop(chunks);
        if wire.len() as u64 > limits.max_message_bytes {
            return Err(Error::Ebxml(ebxml::Error::MessageTooLarge {
                size: wire.len() as u64,
                limit: limits.max_message_bytes,
            }));
        }
        // The bytes go under a key of their own, then the row claims the MessageId; a
        // message sent twice finds the id taken (one query for the usual case, not two).
        let key = db::payload_key(
            "out",
            &format!("{message_id}-{}", uuid::Uuid::new_v4().simple()),
        );
        inner.outbox.store_payload(&key, Bytes::from(wire)).await?;
        let inserted = inner
            .outbox
            .add(&NewEntry {
                message_id: &message_id,
                conversation_id: &message.conversation_id,
                interaction_id: &message.interaction_id,
                address: &destination.address,
                content_type: &content_type,
                payload_key: &key,
                reliability: destination.reliability,
                accepted_at: now,
            })
            .await?;
        if !inserted {
            inner.outbox.discard_payload(&key).await;
            let existing = db::outbound(&inner.db, db::OUTBOX, &message_id).await?;
            if let Some(existing) = existing
                && existing.conversation_id == message.conversation_id
                && existing.interaction_id == message.interaction_id
            {
                tracing::info!("already accepted for sending; not sent twice");
                return Ok(message_id.clone());
            }
            return Err(Error::DuplicateMessageId(message_id.clone()));
        }
        tracing::info!(to = %destination.party_key, address = %destination.address, "persisted for sending");
        inner.outbox.wake();
        Ok(message_id.clone())
    }
    .instrument(span)
    .await
}
