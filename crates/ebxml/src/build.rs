//! Building the messages an MHS sends: a full outbound message, and the acknowledgment or
//! error message it answers a received one with.
//!
//! This crate has no clock and no source of identifiers: the caller supplies each new
//! message's `MessageId` and `Timestamp` ([`ReplyIds`]), so tests can fix them and the
//! transport can take them from its clock.

use bytes::Bytes;

use crate::envelope::{
    ACTION_ACKNOWLEDGMENT, ACTION_MESSAGE_ERROR, ACTOR_NEXT_MSH, AckRequested, Acknowledgment,
    Envelope, ErrorDetail, ErrorList, HL7_SCHEMA_LOCATION, MessageData, MessageHeader,
    SERVICE_EBXML, SyncReply,
};
use crate::manifest::{AttachmentInfo, Description, Href, Manifest, Reference, Schema};
use crate::mime::TransferEncoding;
use crate::writer::{Boundary, MultipartBody, OutboundPart, Source};
use crate::{Error, Limits};

/// The Content-Id Spine's senders give the envelope part.
pub const ENVELOPE_CONTENT_ID: &str = "ebXMLHeader@spine.nhs.uk";

/// The identity of a message about to be sent: its `MessageId` and `Timestamp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyIds {
    /// `eb:MessageId` (a UUID, upper case, by Spine's convention).
    pub message_id: String,
    /// `eb:Timestamp` (`YYYY-MM-DDThh:mm:ssZ`).
    pub timestamp: String,
}

/// The header of an answer to `received`: parties swapped, same CPA and conversation,
/// ebXML's own service, `RefToMessageId` pointing at the received message.
fn answer_header(received: &MessageHeader, ids: &ReplyIds, action: &str) -> MessageHeader {
    MessageHeader {
        from: received.to.clone(),
        to: received.from.clone(),
        cpa_id: received.cpa_id.clone(),
        conversation_id: received.conversation_id.clone(),
        service: SERVICE_EBXML.to_string(),
        action: action.to_string(),
        message_data: MessageData {
            message_id: ids.message_id.clone(),
            timestamp: ids.timestamp.clone(),
            ref_to_message_id: Some(received.message_data.message_id.clone()),
            time_to_live: None,
        },
        duplicate_elimination: false,
    }
}

/// The `eb:Acknowledgment` message a receiving MHS answers a reliable message with (in the
/// HTTP response to the same request). The `SOAP:actor` echoes the one the sender asked
/// for in `eb:AckRequested` (GP2GP's is the next MSH).
pub fn acknowledgment(received: &Envelope, ids: &ReplyIds) -> Envelope {
    let header = answer_header(&received.message_header, ids, ACTION_ACKNOWLEDGMENT);
    let actor = received
        .ack_requested
        .as_ref()
        .and_then(|a| a.actor.clone())
        .unwrap_or_else(|| ACTOR_NEXT_MSH.to_string());
    Envelope {
        acknowledgment: Some(Acknowledgment {
            timestamp: ids.timestamp.clone(),
            ref_to_message_id: received.message_header.message_data.message_id.clone(),
            from: Some(received.message_header.to.clone()),
            actor: Some(actor),
        }),
        message_header: header,
        ack_requested: None,
        sync_reply: None,
        error_list: None,
        manifest: None,
    }
}

/// The `eb:ErrorList` message (`eb:Action` `MessageError`) a receiving MHS answers with when
/// it read the header of a message but will not accept it. Build the entries with
/// [`ErrorDetail::from_error`]. When not even the header could be read, answer with a
/// [`crate::SoapFault`] instead.
pub fn message_error(
    received: &MessageHeader,
    ids: &ReplyIds,
    errors: Vec<ErrorDetail>,
) -> Envelope {
    Envelope {
        message_header: answer_header(received, ids, ACTION_MESSAGE_ERROR),
        ack_requested: None,
        sync_reply: None,
        acknowledgment: None,
        error_list: Some(ErrorList { errors }),
        manifest: None,
    }
}

/// A message ready to send: its envelope (with a manifest matching its parts) and the
/// parts after the envelope.
#[derive(Debug)]
pub struct OutboundMessage {
    envelope: Envelope,
    parts: Vec<OutboundPart>,
    limits: Limits,
}

impl OutboundMessage {
    /// Starts a message with this header. See [`MessageBuilder`].
    pub fn builder(header: MessageHeader) -> MessageBuilder {
        MessageBuilder {
            envelope: Envelope {
                message_header: header,
                ack_requested: None,
                sync_reply: None,
                acknowledgment: None,
                error_list: None,
                manifest: Some(Manifest::default()),
            },
            parts: Vec::new(),
        }
    }

    /// The envelope that will be the first part.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The body, as a stream of chunks, with this boundary (use [`Boundary::random`]).
    /// Its [`MultipartBody::content_type`] is the HTTP `Content-Type` to send.
    pub fn into_body(self, boundary: Boundary) -> Result<MultipartBody, Error> {
        let mut parts = Vec::with_capacity(self.parts.len() + 1);
        parts.push(OutboundPart::text(
            ENVELOPE_CONTENT_ID,
            "text/xml; charset=UTF-8",
            self.envelope.to_xml(),
        ));
        parts.extend(self.parts);
        Ok(MultipartBody::new(boundary, parts)?
            .with_attachment_limit(self.limits.max_attachment_chars))
    }
}

/// Builds an [`OutboundMessage`]: header, HL7 payload, attachments; the manifest is written
/// to match.
#[derive(Debug)]
pub struct MessageBuilder {
    envelope: Envelope,
    parts: Vec<OutboundPart>,
}

impl MessageBuilder {
    /// Makes the message forward-reliable, as GP2GP's are: `eb:DuplicateElimination` and
    /// `eb:AckRequested` aimed at the next MSH.
    pub fn reliable(mut self) -> Self {
        self.envelope.message_header.duplicate_elimination = true;
        self.envelope.ack_requested = Some(AckRequested {
            actor: Some(ACTOR_NEXT_MSH.to_string()),
            signed: false,
        });
        self
    }

    /// Asks for replies on the same connection (`eb:SyncReply`).
    pub fn sync_reply(mut self) -> Self {
        self.envelope.sync_reply = Some(SyncReply {
            actor: Some(ACTOR_NEXT_MSH.to_string()),
        });
        self
    }

    fn reference(&mut self, r: Reference) {
        if let Some(m) = self.envelope.manifest.as_mut() {
            m.references.push(r);
        }
    }

    /// The HL7 payload (the second part), sent as 8bit XML.
    pub fn payload(mut self, content_id: impl Into<String>, hl7: impl Into<Bytes>) -> Self {
        let content_id = content_id.into();
        self.reference(Reference {
            href: Href::Cid(content_id.clone()),
            id: None,
            schema: Some(Schema {
                location: HL7_SCHEMA_LOCATION.to_string(),
                version: Some("1.0".to_string()),
            }),
            description: Some(Description::Text("HL7 payload".to_string())),
            hl7_payload: true,
        });
        self.parts.push(OutboundPart::text(
            content_id,
            "application/xml; charset=UTF-8",
            Source::Bytes(hl7.into()),
        ));
        self
    }

    /// An inline attachment (a `cid:` reference), described for GP2GP by `info`;
    /// `document_id` becomes the reference's `eb:id`.
    pub fn attachment(
        mut self,
        part: OutboundPart,
        document_id: Option<String>,
        info: AttachmentInfo,
    ) -> Self {
        self.reference(Reference {
            href: Href::Cid(part.content_id.clone()),
            id: document_id,
            schema: None,
            description: Some(Description::Attachment(info)),
            hl7_payload: false,
        });
        self.parts.push(part);
        self
    }

    /// An attachment sent as its own message (a `mid:` reference to that MessageId).
    pub fn external_attachment(
        mut self,
        message_id: impl Into<String>,
        document_id: Option<String>,
        info: AttachmentInfo,
    ) -> Self {
        self.reference(Reference {
            href: Href::Mid(message_id.into()),
            id: document_id,
            schema: None,
            description: Some(Description::Attachment(info)),
            hl7_payload: false,
        });
        self
    }

    /// Checks the message against `limits` wherever sizes are known now (sources that are
    /// readers are checked as they stream) and finishes it.
    pub fn build(self, limits: &Limits) -> Result<OutboundMessage, Error> {
        let attachments = self.parts.len().saturating_sub(1);
        if attachments > limits.max_attachments {
            return Err(Error::TooManyAttachments {
                count: attachments,
                limit: limits.max_attachments,
            });
        }
        if let Some(OutboundPart {
            source: Source::Bytes(hl7),
            ..
        }) = self.parts.first()
        {
            let chars = match std::str::from_utf8(hl7) {
                Ok(text) => text.chars().count() as u64,
                Err(_) => hl7.len() as u64,
            };
            if chars > limits.max_payload_chars {
                return Err(Error::PayloadTooLarge {
                    chars,
                    limit: limits.max_payload_chars,
                });
            }
        }
        for (i, part) in self.parts.iter().enumerate().skip(1) {
            if let Some(size) = sent_size(part)
                && size > limits.max_attachment_chars
            {
                return Err(Error::AttachmentTooLarge {
                    index: i,
                    content_id: part.content_id.clone(),
                    size,
                    limit: limits.max_attachment_chars,
                });
            }
        }
        Ok(OutboundMessage {
            envelope: self.envelope,
            parts: self.parts,
            limits: *limits,
        })
    }
}

/// A part's size as it will travel, if known in advance.
fn sent_size(part: &OutboundPart) -> Option<u64> {
    let Source::Bytes(b) = &part.source else {
        return None;
    };
    let n = b.len() as u64;
    if part.encoding != TransferEncoding::Base64 || part.source_is_base64 {
        return Some(n);
    }
    // 76 characters per 57 bytes, lines joined by CRLF.
    let lines = n.div_ceil(57);
    Some(n.div_ceil(3) * 4 + lines.saturating_sub(1) * 2)
}
