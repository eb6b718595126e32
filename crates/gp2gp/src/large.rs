//! Large messaging: sending a record that does not fit in one Spine message, and putting
//! it back together on the other side.
//!
//! # The limits, and the numbers chosen
//!
//! Spine takes at most about 5 MB per message (the whole HTTP body: envelope, HL7 payload,
//! attachments, MIME headers), an HL7 payload of at most 5,000,000 characters, attachments
//! of at most 5,000,000 characters each *as sent* (base64 text counts as sent, with its line
//! breaks), and at most 98 inline attachments. This module keeps well inside them:
//!
//! - [`MAX_MESSAGE_BYTES`] = 5,000,000: no message planned here is bigger on the wire
//!   (the ebXML reader's own limit is 5 MiB, so a peer reading with Spine's limit takes
//!   every one).
//! - [`MAX_PART_BYTES`] = 4,500,000: the largest single thing a message carries — the
//!   extract as HL7 payload (in bytes, which is never fewer than its characters), or one
//!   attachment as sent. That leaves 500,000 bytes for the envelope (~2 KB), the COPC
//!   wrapper (~3 KB), MIME headers and the manifest, whatever the sender writes there.
//!   It is also GP2GP's own guidance: an extract over ~4.5 MB goes as a large message.
//! - [`FRAGMENT_BYTES`] = 3,288,444: the largest multiple of 57 whose base64 form, in
//!   76-character lines joined by CRLF (57 bytes per line), stays within
//!   [`MAX_PART_BYTES`] (4,499,998 characters). A multiple of 57 is a multiple of 3, so
//!   each fragment's base64 ends on a whole quantum, without padding: the fragments'
//!   base64 texts joined are exactly the document's base64. Receivers that join the texts
//!   before decoding (as the NHS adaptors do) and receivers that decode each fragment
//!   both get the document back.
//!
//! Every document travels base64-encoded (any bytes, unchanged).
//!
//! # Sending ([`plan`])
//!
//! 1. The extract: sent as it is when it is at most [`MAX_PART_BYTES`]; otherwise it is
//!    gzipped and sent as a document of its own (`Compressed=Yes`,
//!    `DomainData="X-GP2GP-Skeleton: Yes"`), and the extract that travels is a
//!    *skeleton*: the same message with the folder's compositions replaced by one
//!    composition whose narrative statement refers to that document. The compressed
//!    document, once decompressed, is the whole original `RCMR_IN030000UK06` message.
//! 2. Each document: inline in the extract's message (`cid:`) while that message stays
//!    within [`MAX_MESSAGE_BYTES`] and under 98 attachments; otherwise in a COPC message
//!    of its own (`mid:`); if even that is too big, split into [`FRAGMENT_BYTES`] chunks,
//!    one COPC each (`<indexId>_<i>.messageattachment`), plus a fragment-index COPC whose
//!    manifest lists them in order (`LargeAttachment=Yes` in the extract's manifest).
//! 3. A document whose content could not be read is replaced by a short `text/plain`
//!    "absent attachment" file under the same name and document id, so the record still
//!    moves and the receiver can see what is missing.
//!
//! [`plan`] makes every message at once, in memory; the driver plans with a [`Planner`]
//! instead — the same messages, ids and order — taking one document at a time and keeping
//! each message as it is made, so a record of four 120 MB documents is sent holding one
//! document and one fragment rather than all of them base64-encoded.
//!
//! The manifest descriptions carry the same file names as the extract's
//! `referredToExternalDocument/text/reference/@value` (`file://localhost/<name>`), and
//! the document id as the reference's `eb:id`, so the receiver matches each document to
//! its place in the record.
//!
//! # Receiving ([`assemble`])
//!
//! Everything received — the extract's HL7 and inline parts, every COPC's parts by message
//! id, every fragment index — becomes the whole extract (the decompressed original, when a
//! skeleton came) and the documents, each reassembled in index order, decoded and
//! decompressed. [`assemble`] takes everything in memory; the driver puts each document
//! together with a [`Decoder`] instead, one fragment at a time, straight into a file
//! (fragments in [`piece_order`]). Failures carry the code to NACK with: 31 when
//! something never arrived, 29 when the pieces do not make a document (bad base64 or
//! gzip, a mixture of encodings), 21 when the result is not an extract.

use std::io::{Read, Write};

use base64::Engine as _;
use bytes::Bytes;
use ebxml::AttachmentInfo;
use hl7v3::xml::{self, Element, Layout, Node};
use hl7v3::{Interaction, ReasonCode};

use crate::MessageId;
use crate::requester::ExpectedDocument;
use crate::wire::{self, Parties, ReceivedPart, SKELETON_DOMAIN_DATA};

/// The most bytes any message planned here takes on the wire (see the module docs).
pub const MAX_MESSAGE_BYTES: usize = 5_000_000;
/// The most bytes one payload or one attachment (as sent) takes (see the module docs).
pub const MAX_PART_BYTES: usize = 4_500_000;
/// The size of each fragment of a split document, before base64 (see the module docs).
pub const FRAGMENT_BYTES: usize = 3_288_444;
/// Spine's limit on inline attachments in one message.
pub const MAX_INLINE_ATTACHMENTS: usize = 98;
/// What a message takes beyond its payload and attachments, budgeted generously: the SOAP
/// envelope with header and manifest, the MIME headers and boundaries (measured: under
/// 3 KB for a COPC with one attachment).
pub const MESSAGE_OVERHEAD_BYTES: usize = 32 * 1024;
/// What each attachment adds beyond its content: its MIME headers and its manifest
/// reference (measured: under 700 bytes).
pub const ATTACHMENT_OVERHEAD_BYTES: usize = 2 * 1024;
/// The largest document (or extract) [`assemble`] will decompress or put together: a
/// bound against hostile input (receiving systems cap one attachment at 100 MB).
pub const MAX_DOCUMENT_BYTES: usize = 512 * 1024 * 1024;

const SNOMED: &str = "2.16.840.1.113883.2.1.3.2.4.15";

/// The limits a plan keeps to. [`Sizes::default`] is Spine's (the constants above); tests
/// use smaller ones to exercise splitting cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub max_message_bytes: usize,
    pub max_part_bytes: usize,
    pub fragment_bytes: usize,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            max_message_bytes: MAX_MESSAGE_BYTES,
            max_part_bytes: MAX_PART_BYTES,
            fragment_bytes: FRAGMENT_BYTES,
        }
    }
}

impl Sizes {
    /// Checks the sizes make sense together: fragments a multiple of 3 bytes that fit in
    /// a part, a part (with overheads) that fits in a message.
    pub fn check(&self) -> Result<(), LargeError> {
        let bad = |why: String| Err(LargeError::Sizes(why));
        if self.fragment_bytes == 0 || !self.fragment_bytes.is_multiple_of(3) {
            return bad(format!(
                "fragments of {} bytes: they must be a positive multiple of 3 so that their base64 joins cleanly",
                self.fragment_bytes
            ));
        }
        if base64_wire_len(self.fragment_bytes) > self.max_part_bytes {
            return bad(format!(
                "fragments of {} bytes are {} characters in base64, over the part limit of {}",
                self.fragment_bytes,
                base64_wire_len(self.fragment_bytes),
                self.max_part_bytes
            ));
        }
        if self.max_part_bytes + MESSAGE_OVERHEAD_BYTES + ATTACHMENT_OVERHEAD_BYTES
            > self.max_message_bytes
        {
            return bad(format!(
                "a part of {} bytes with its overheads does not fit in a message of {}",
                self.max_part_bytes, self.max_message_bytes
            ));
        }
        Ok(())
    }
}

/// The `Length` a manifest description gives for `n` bytes of content sent as base64: the
/// number of base64 characters, line breaks not counted. That is what the NHS senders in
/// the conformance corpus write (a compressed extract of 404,802 bytes: `Length=539736`;
/// fragments of 63 and 101 bytes: `84` and `136`, their document `220`), and what a
/// receiver that checks it will expect.
pub fn manifest_length(n: usize) -> u64 {
    (n.div_ceil(3) * 4) as u64
}

/// The characters `n` bytes take as base64 in 76-character lines joined by CRLF.
pub fn base64_wire_len(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    n.div_ceil(3) * 4 + (n.div_ceil(57) - 1) * 2
}

/// `bytes` as base64 in 76-character lines joined by CRLF (what MIME wants).
fn base64_lines(bytes: &[u8]) -> Bytes {
    const LINE_BYTES: usize = 57;
    /// Lines encoded at once: a block long enough for the encoder's fast loop (a call
    /// per 57-byte line spent most of its time in the encoder's scalar tail), small
    /// enough to stay in cache.
    const BLOCK_LINES: usize = 512;
    let mut out = Vec::with_capacity(base64_wire_len(bytes.len()));
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut text = vec![0u8; LINE_BYTES * BLOCK_LINES / 3 * 4];
    for block in bytes.chunks(LINE_BYTES * BLOCK_LINES) {
        let n = engine.encode_slice(block, &mut text).unwrap_or_default();
        // 57 bytes encode to exactly 76 characters; a shorter last line to fewer.
        for line in text[..n].chunks(LINE_BYTES / 3 * 4) {
            if !out.is_empty() {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(line);
        }
    }
    Bytes::from(out)
}

/// A document the extract refers to, to be sent with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The document's id: the `referredToExternalDocument/id/@root` of the extract, sent as
    /// the manifest reference's `eb:id`.
    pub document_id: String,
    /// The file name the extract refers to (`file://localhost/<filename>`).
    pub filename: String,
    pub content_type: String,
    /// The content; `None` when it could not be read: an "absent attachment" text file is
    /// sent in its place.
    pub content: Option<Bytes>,
}

/// Everything the sender sends for one extract.
#[derive(Debug, Clone)]
pub struct SendPlan {
    /// The extract's message id (its HL7 `id/@root`, also its ebXML MessageId).
    pub extract_id: MessageId,
    /// The extract (or skeleton), with its inline documents and `mid:` references.
    pub extract: mhs::Outbound,
    /// The COPC messages to send after the requester's Continue, in sending order (each
    /// document; each fragment index followed by its fragments), each with its
    /// `message_id` set. Empty when everything fits in the extract's message.
    pub copcs: Vec<mhs::Outbound>,
}

impl SendPlan {
    /// The message ids of [`SendPlan::copcs`], in order (what `sender::Event::Built` takes).
    pub fn copc_ids(&self) -> Vec<MessageId> {
        self.copcs
            .iter()
            .filter_map(|c| c.message_id.as_deref().map(MessageId::new))
            .collect()
    }
}

/// What went wrong planning or assembling a large message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LargeError {
    #[error("the extract cannot be sent: {0}")]
    Extract(String),
    #[error("the large-message sizes are inconsistent: {0}")]
    Sizes(String),
    #[error(
        "document {filename} (message {message_id}) never arrived: the sender must send it before the transfer can complete"
    )]
    MissingDocument {
        message_id: MessageId,
        filename: String,
    },
    #[error(
        "the fragment index of document {filename} (message {message_id}) never arrived: its fragments cannot be put in order"
    )]
    MissingIndex {
        message_id: MessageId,
        filename: String,
    },
    #[error(
        "fragment {fragment} of document {filename} (index {index}) never arrived, or the index names a message that is not one of this transfer's"
    )]
    MissingFragment {
        index: MessageId,
        fragment: MessageId,
        filename: String,
    },
    #[error("document {filename} could not be reassembled: {why}")]
    Reassembly { filename: String, why: String },
    #[error("document {filename} is over {limit} bytes once reassembled: refused as too large")]
    TooLarge { filename: String, limit: usize },
    #[error("the reassembled extract is not usable: {0}")]
    BadExtract(String),
}

impl LargeError {
    /// The GP2GP reason code: 10 when an extract cannot be planned, 31 when something
    /// never arrived, 29 when the pieces do not make a document, 30 for a document too
    /// large to take, 21 when the result is not an extract.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            LargeError::Extract(_) | LargeError::Sizes(_) => ReasonCode::FailedToGenerateExtract,
            LargeError::MissingDocument { .. }
            | LargeError::MissingIndex { .. }
            | LargeError::MissingFragment { .. } => ReasonCode::AttachmentsNotReceived,
            LargeError::Reassembly { .. } => ReasonCode::ReassemblyFailure,
            LargeError::TooLarge { .. } => ReasonCode::LargeMessageGeneralFailure,
            LargeError::BadExtract(_) => ReasonCode::ExtractNotWellFormed,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sending.

/// A document ready to go: content final (absent-attachment text, or gzipped extract).
#[derive(Debug)]
struct Prepared {
    document_id: String,
    filename: String,
    content_type: String,
    bytes: Bytes,
    compressed: bool,
    skeleton: bool,
}

impl Prepared {
    fn info(&self, large: bool) -> AttachmentInfo {
        AttachmentInfo {
            filename: Some(self.filename.clone()),
            content_type: Some(self.content_type.clone()),
            compressed: Some(self.compressed),
            large_attachment: Some(large),
            original_base64: Some(false),
            length: Some(manifest_length(self.bytes.len())),
            domain_data: self.skeleton.then(|| SKELETON_DOMAIN_DATA.to_string()),
        }
    }
}

/// The text sent in place of a document that could not be read.
pub fn absent_attachment_text(document_id: &str, filename: &str, content_type: &str) -> String {
    format!(
        "Absent attachment\r\n\r\nThe sending practice could not read this document, so its content was not sent.\r\nFile name: {filename}\r\nContent type: {content_type}\r\nDocument id: {document_id}\r\nAsk the sending practice for a copy.\r\n"
    )
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, LargeError> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 8),
        flate2::Compression::default(),
    );
    enc.write_all(data)
        .and_then(|()| enc.finish())
        .map_err(|e| LargeError::Extract(format!("compressing the extract failed: {e}")))
}

fn outbound(
    route: &mhs::Route,
    conversation_id: &str,
    interaction_id: &str,
    message_id: &str,
    payload: impl Into<Bytes>,
) -> mhs::Outbound {
    let mut o = mhs::Outbound::gp2gp(route.clone(), interaction_id, conversation_id, payload);
    o.message_id = Some(message_id.to_string());
    o
}

fn attachment(
    content_id: String,
    content_type: &str,
    bytes: &[u8],
    info: &AttachmentInfo,
    document_id: Option<String>,
) -> mhs::Attachment {
    mhs::Attachment {
        content_id: Some(content_id),
        content_type: content_type.to_string(),
        is_base64: true,
        description: info.to_string(),
        payload: base64_lines(bytes),
        document_id,
    }
}

/// Builds everything the sender sends for `extract_xml` and its `documents` with Spine's
/// sizes. See [`plan_with`].
#[allow(clippy::too_many_arguments)]
pub fn plan(
    p: &Parties,
    route: mhs::Route,
    conversation_id: &str,
    interaction_id: &str,
    extract_xml: String,
    documents: Vec<Document>,
    now_ms: i64,
    new_id: &mut dyn FnMut() -> String,
) -> Result<SendPlan, LargeError> {
    plan_with(
        p,
        route,
        conversation_id,
        interaction_id,
        extract_xml,
        documents,
        now_ms,
        new_id,
        &Sizes::default(),
    )
}

/// Builds everything the sender sends: the extract (or a skeleton, with the gzipped extract
/// as a COPC document, when the extract is over `sizes.max_part_bytes`), each document
/// inline or as a COPC, large ones split into fragments with a fragment index (see the
/// [module documentation](self)).
///
/// The extract's message id is its HL7 `id/@root`; every other id (COPC message ids,
/// Content-Ids, the skeleton's new ids) comes from `new_id`, called in a fixed order, so a
/// driver that persists its ids gets the same plan again.
///
/// This holds every message in memory at once; a sender of large documents plans with a
/// [`Planner`] instead, one document and one message at a time (the same messages, ids
/// and order).
#[allow(clippy::too_many_arguments)]
pub fn plan_with(
    p: &Parties,
    route: mhs::Route,
    conversation_id: &str,
    interaction_id: &str,
    extract_xml: String,
    documents: Vec<Document>,
    now_ms: i64,
    new_id: &mut dyn FnMut() -> String,
    sizes: &Sizes,
) -> Result<SendPlan, LargeError> {
    let (mut planner, skeleton) = Planner::start(
        p,
        route,
        conversation_id,
        interaction_id,
        extract_xml,
        now_ms,
        new_id,
        sizes,
    )?;
    let mut copcs = Vec::new();
    let mut take = |placement: Placement, new_id: &mut dyn FnMut() -> String| match placement {
        Placement::Inline => {}
        Placement::Message(m) => copcs.push(*m),
        Placement::Split(mut fragments) => {
            let mut made = Vec::new();
            while let Some(f) = fragments.next_fragment(new_id) {
                made.push(f);
            }
            copcs.push(fragments.into_index());
            copcs.extend(made);
        }
    };
    if let Some(s) = skeleton {
        take(s, new_id);
    }
    for d in documents {
        let placement = planner.place(d, new_id);
        take(placement, new_id);
    }
    let (extract_id, extract) = planner.finish();
    Ok(SendPlan {
        extract_id,
        extract,
        copcs,
    })
}

/// Plans a sender's messages one document at a time, so that a record with large
/// documents never needs more than one document and one message in memory.
///
/// [`Planner::start`] takes the extract (making the skeleton and its compressed original
/// when the extract is too large to travel as it is); [`Planner::place`] decides where
/// each document goes, in the record's order; [`Planner::finish`] gives the extract's
/// message once every document is placed (it carries the inline documents and the `mid:`
/// references to the others). Ids come from `new_id` in the same order as [`plan_with`]'s.
#[derive(Debug)]
pub struct Planner {
    parties: Parties,
    route: mhs::Route,
    conversation_id: String,
    now_ms: i64,
    sizes: Sizes,
    extract_id: MessageId,
    extract: mhs::Outbound,
    /// Bytes the extract's message takes so far (payload, overhead, inline documents).
    used: usize,
}

/// Where [`Planner::place`] put a document.
#[derive(Debug)]
pub enum Placement {
    /// In the extract's own message.
    Inline,
    /// A COPC message of its own, to be sent after the Continue.
    Message(Box<mhs::Outbound>),
    /// Too large for one message: fragments, made one at a time, then their index.
    Split(Box<Fragments>),
}

/// A document being split: [`Fragments::next_fragment`] makes each fragment's COPC in
/// order; [`Fragments::into_index`] then gives the fragment index that lists them. The
/// index is sent first, then the fragments in order ([`Fragments::index_id`] is known from
/// the start).
#[derive(Debug)]
pub struct Fragments {
    parties: Parties,
    route: mhs::Route,
    conversation_id: String,
    now_ms: i64,
    fragment_bytes: usize,
    doc: Prepared,
    index: mhs::Outbound,
    index_id: String,
    start: usize,
    made: usize,
}

impl Planner {
    /// Starts a plan: checks the extract and its sizes; when the extract is over
    /// `sizes.max_part_bytes` the skeleton replaces it and the compressed original is
    /// placed at once (returned: it always travels in COPC messages).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        p: &Parties,
        route: mhs::Route,
        conversation_id: &str,
        interaction_id: &str,
        extract_xml: String,
        now_ms: i64,
        new_id: &mut dyn FnMut() -> String,
        sizes: &Sizes,
    ) -> Result<(Planner, Option<Placement>), LargeError> {
        sizes.check()?;
        let interaction = Interaction::from_id(interaction_id)
            .filter(|i| matches!(i, Interaction::EhrExtract | Interaction::EhrExtractConfidential))
            .ok_or_else(|| {
                LargeError::Extract(format!(
                    "'{interaction_id}' is not an extract interaction (RCMR_IN030000UK06 or RCMR_IN030000UK07)"
                ))
            })?;
        let mut root = xml::parse_with(extract_xml.as_bytes(), &xml_limits(extract_xml.len()))
            .map_err(|e| LargeError::Extract(format!("it is not readable XML: {e}")))?;
        let extract_id = extract_message_id(&root, interaction)?;
        let mut compressed_original = None;
        let payload = if extract_xml.len() <= sizes.max_part_bytes {
            drop(root);
            extract_xml
        } else {
            let document_id = new_id();
            let filename = format!("{document_id}.gzip");
            let compressed = gzip(extract_xml.as_bytes())?;
            drop(extract_xml);
            let skeleton = skeleton(&mut root, &document_id, &filename, now_ms, new_id)?;
            drop(root);
            if skeleton.len() > sizes.max_part_bytes {
                return Err(LargeError::Extract(format!(
                    "even its skeleton is {} bytes, over the limit of {} (the agent directory alone is too large)",
                    skeleton.len(),
                    sizes.max_part_bytes
                )));
            }
            compressed_original = Some(Prepared {
                document_id,
                filename,
                content_type: "text/xml".into(),
                bytes: Bytes::from(compressed),
                compressed: true,
                skeleton: true,
            });
            skeleton
        };
        let used = payload.len() + MESSAGE_OVERHEAD_BYTES;
        let mut planner = Planner {
            parties: p.clone(),
            route: route.clone(),
            conversation_id: conversation_id.to_string(),
            now_ms,
            sizes: *sizes,
            extract: outbound(
                &route,
                conversation_id,
                interaction_id,
                &extract_id,
                payload,
            ),
            extract_id: MessageId::new(extract_id),
            used,
        };
        let first = compressed_original.map(|doc| planner.place_prepared(doc, new_id));
        Ok((planner, first))
    }

    /// Places the next document of the record (an unreadable one as an absent-attachment
    /// file).
    pub fn place(&mut self, d: Document, new_id: &mut dyn FnMut() -> String) -> Placement {
        let (bytes, content_type) = match d.content {
            Some(b) => (b, d.content_type),
            None => (
                Bytes::from(absent_attachment_text(
                    &d.document_id,
                    &d.filename,
                    &d.content_type,
                )),
                "text/plain".to_string(),
            ),
        };
        self.place_prepared(
            Prepared {
                document_id: d.document_id,
                filename: d.filename,
                content_type,
                bytes,
                compressed: false,
                skeleton: false,
            },
            new_id,
        )
    }

    fn place_prepared(&mut self, doc: Prepared, new_id: &mut dyn FnMut() -> String) -> Placement {
        let sizes = &self.sizes;
        let wire_len = base64_wire_len(doc.bytes.len());
        if !doc.skeleton
            && self.extract.attachments.len() < MAX_INLINE_ATTACHMENTS
            && wire_len <= sizes.max_part_bytes
            && self.used + wire_len + ATTACHMENT_OVERHEAD_BYTES <= sizes.max_message_bytes
        {
            self.used += wire_len + ATTACHMENT_OVERHEAD_BYTES;
            self.extract.attachments.push(attachment(
                format!("{}@spine.nhs.uk", new_id()),
                &doc.content_type,
                &doc.bytes,
                &doc.info(false),
                Some(doc.document_id.clone()),
            ));
            return Placement::Inline;
        }
        let copc_interaction = Interaction::CommonContent.id();
        let (p, route, conversation_id) = (&self.parties, &self.route, &self.conversation_id);
        if wire_len <= sizes.max_part_bytes {
            let id = new_id();
            let info = doc.info(false);
            let mut copc = outbound(
                route,
                conversation_id,
                copc_interaction,
                &id,
                wire::copc_attachment(p, &id, &doc.filename, self.now_ms),
            );
            copc.attachments.push(attachment(
                format!("{}@spine.nhs.uk", new_id()),
                &doc.content_type,
                &doc.bytes,
                &info,
                Some(doc.document_id.clone()),
            ));
            self.extract
                .external_attachments
                .push(mhs::ExternalAttachment {
                    message_id: id,
                    document_id: Some(doc.document_id),
                    description: info.to_string(),
                });
            return Placement::Message(Box::new(copc));
        }
        // Too big for one message: an index and its fragments.
        let index_id = new_id();
        let index = outbound(
            route,
            conversation_id,
            copc_interaction,
            &index_id,
            wire::copc_attachment(p, &index_id, &doc.filename, self.now_ms),
        );
        self.extract
            .external_attachments
            .push(mhs::ExternalAttachment {
                message_id: index_id.clone(),
                document_id: Some(doc.document_id.clone()),
                description: doc.info(true).to_string(),
            });
        Placement::Split(Box::new(Fragments {
            parties: p.clone(),
            route: route.clone(),
            conversation_id: conversation_id.clone(),
            now_ms: self.now_ms,
            fragment_bytes: sizes.fragment_bytes,
            doc,
            index,
            index_id,
            start: 0,
            made: 0,
        }))
    }

    /// The extract's message id and the extract's message, every document placed.
    pub fn finish(self) -> (MessageId, mhs::Outbound) {
        (self.extract_id, self.extract)
    }
}

impl Fragments {
    /// The message id of the fragment index.
    pub fn index_id(&self) -> &str {
        &self.index_id
    }

    /// The next fragment's COPC message, or `None` when every fragment is made.
    pub fn next_fragment(&mut self, new_id: &mut dyn FnMut() -> String) -> Option<mhs::Outbound> {
        let doc = &self.doc;
        if self.start >= doc.bytes.len() {
            return None;
        }
        let end = (self.start + self.fragment_bytes).min(doc.bytes.len());
        let chunk = &doc.bytes[self.start..end];
        let fragment_id = new_id();
        let name = format!("{}_{}.messageattachment", self.index_id, self.made);
        let info = AttachmentInfo {
            filename: Some(name.clone()),
            content_type: Some(doc.content_type.clone()),
            compressed: Some(false),
            large_attachment: Some(false),
            original_base64: Some(false),
            length: Some(manifest_length(chunk.len())),
            domain_data: None,
        };
        let mut fragment = outbound(
            &self.route,
            &self.conversation_id,
            Interaction::CommonContent.id(),
            &fragment_id,
            wire::copc_attachment(&self.parties, &fragment_id, &name, self.now_ms),
        );
        fragment.attachments.push(attachment(
            format!("{}@spine.nhs.uk", new_id()),
            &doc.content_type,
            chunk,
            &info,
            Some(doc.document_id.clone()),
        ));
        self.index
            .external_attachments
            .push(mhs::ExternalAttachment {
                message_id: fragment_id,
                document_id: Some(doc.document_id.clone()),
                description: info.to_string(),
            });
        self.start = end;
        self.made += 1;
        Some(fragment)
    }

    /// The fragment index, listing every fragment made (call once they all are).
    pub fn into_index(self) -> mhs::Outbound {
        self.index
    }
}

fn xml_limits(len: usize) -> xml::Limits {
    let mut limits = xml::Limits::default();
    limits.max_bytes = limits.max_bytes.max(len);
    limits
}

/// The HL7 message id of an extract, checking the document is the interaction claimed.
fn extract_message_id(root: &Element, interaction: Interaction) -> Result<String, LargeError> {
    if root.local_name() != interaction.id() {
        return Err(LargeError::Extract(format!(
            "the document is <{}>, not the {} it is sent as",
            root.name,
            interaction.id()
        )));
    }
    root.child("id")
        .and_then(|i| i.attr("root"))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| LargeError::Extract("the message has no id (id/@root)".into()))
}

fn child_mut<'a>(e: &'a mut Element, local: &str) -> Option<&'a mut Element> {
    e.children.iter_mut().find_map(|n| match n {
        Node::Element(c) if c.local_name() == local => Some(c),
        _ => None,
    })
}

fn path_mut<'a>(mut e: &'a mut Element, names: &[&str]) -> Option<&'a mut Element> {
    for n in names {
        e = child_mut(e, n)?;
    }
    Some(e)
}

/// The extract with its folder's compositions replaced by one composition referring to
/// the compressed original (`document_id`, `filename`).
fn skeleton(
    root: &mut Element,
    document_id: &str,
    filename: &str,
    now_ms: i64,
    new_id: &mut dyn FnMut() -> String,
) -> Result<String, LargeError> {
    let folder = path_mut(
        root,
        &[
            "ControlActEvent",
            "subject",
            "EhrExtract",
            "component",
            "ehrFolder",
        ],
    )
    .ok_or_else(|| LargeError::Extract("it has no EhrExtract/component/ehrFolder".into()))?;
    let agent = folder
        .path(&["responsibleParty", "agentDirectory"])
        .and_then(|d| {
            d.children_named("part")
                .find_map(|p| p.path(&["Agent", "id"])?.attr("root"))
        })
        .map(str::to_string);
    let at = folder
        .children
        .iter()
        .position(|n| matches!(n, Node::Element(c) if c.local_name() == "component"))
        .unwrap_or(folder.children.len());
    folder
        .children
        .retain(|n| !matches!(n, Node::Element(c) if c.local_name() == "component"));
    let now = clock::Utc::from_ms(now_ms).hl7();
    let id = |root: String| Element::new("id").with_attr("root", root);
    let agent_id = match agent {
        Some(a) => id(a),
        None => Element::new("id").with_attr("nullFlavor", "UNK"),
    };
    let statement = Element::new("NarrativeStatement")
        .with_attr("classCode", "OBS")
        .with_attr("moodCode", "EVN")
        .with_child(id(new_id()))
        .with_child(Element::new("text").with_text(format!(
            "This extract is a skeleton: the whole record is in the compressed extract {filename}."
        )))
        .with_child(Element::new("statusCode").with_attr("code", "COMPLETE"))
        .with_child(Element::new("availabilityTime").with_attr("value", now.clone()))
        .with_child(
            Element::new("reference")
                .with_attr("typeCode", "REFR")
                .with_child(
                    Element::new("referredToExternalDocument")
                        .with_attr("classCode", "DOC")
                        .with_attr("moodCode", "EVN")
                        .with_child(id(document_id.to_string()))
                        .with_child(
                            Element::new("code")
                                .with_attr("code", "24891000000101")
                                .with_attr("codeSystem", SNOMED)
                                .with_attr("displayName", "EDI messages"),
                        )
                        .with_child(
                            Element::new("text")
                                .with_attr("mediaType", "text/xml")
                                .with_child(
                                    Element::new("reference")
                                        .with_attr("value", format!("file://localhost/{filename}")),
                                ),
                        ),
                ),
        );
    let composition = Element::new("ehrComposition")
        .with_attr("classCode", "COMPOSITION")
        .with_attr("moodCode", "EVN")
        .with_child(id(new_id()))
        .with_child(
            Element::new("code")
                .with_attr("code", "196401000000100")
                .with_attr("codeSystem", SNOMED)
                .with_attr("displayName", "Non-consultation data"),
        )
        .with_child(Element::new("statusCode").with_attr("code", "COMPLETE"))
        .with_child(
            Element::new("effectiveTime")
                .with_child(Element::new("center").with_attr("value", now.clone())),
        )
        .with_child(Element::new("availabilityTime").with_attr("value", now.clone()))
        .with_child(
            Element::new("author")
                .with_attr("typeCode", "AUT")
                .with_attr("contextControlCode", "OP")
                .with_child(Element::new("time").with_attr("value", now))
                .with_child(
                    Element::new("agentRef")
                        .with_attr("classCode", "AGNT")
                        .with_child(agent_id),
                ),
        )
        .with_child(
            Element::new("component")
                .with_attr("typeCode", "COMP")
                .with_child(statement),
        );
    let component = Element::new("component")
        .with_attr("typeCode", "COMP")
        .with_child(composition);
    folder
        .children
        .insert(at.min(folder.children.len()), Node::Element(component));
    Ok(xml::to_string(root, Layout::Compact))
}

// ---------------------------------------------------------------------------------------
// Receiving.

/// A document of the record, put back together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledDocument {
    /// The document id (the manifest reference's `eb:id`), where the messages gave one.
    pub document_id: Option<String>,
    /// The file name the extract refers to it by.
    pub filename: String,
    pub content_type: String,
    /// The content, decoded and decompressed.
    pub bytes: Bytes,
}

/// A whole record, put back together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// The whole extract: the decompressed original when a skeleton came.
    pub extract_xml: String,
    /// Every document, inline ones first, then the separate ones in the manifest's order
    /// (the compressed extract behind a skeleton is not among them).
    pub documents: Vec<AssembledDocument>,
}

/// Requester side: everything received → the whole extract and its documents.
///
/// - `extract_hl7`, `extract_inline`: the extract message's HL7 payload and its `cid:`
///   parts (`wire::Incoming::Extract`'s `hl7` and `inline`);
/// - `documents`: what its manifest said would follow (`Incoming::Extract::documents`);
/// - `received(id)`: the parts of COPC message `id` as received — a whole document, a
///   fragment, or a fragment index's own inline fragments — or `None` if it never came;
/// - `fragment_index(id)`: the fragments an index listed, in order, or `None` if the
///   index never came.
///
/// Fragments are joined in the index's order (inline ones at their manifest positions),
/// then decoded (as one base64 text when they all travelled base64) and decompressed
/// when the document is `Compressed`. When a document is a skeleton's compressed extract,
/// the result replaces the skeleton: wholly when it is an `RCMR_IN030000UK06`/`07`
/// message, otherwise (a fragment of XML, as some systems send) in place of the element
/// that carries the document's id.
pub fn assemble(
    extract_hl7: &[u8],
    extract_inline: &[ReceivedPart],
    documents: &[ExpectedDocument],
    received: &dyn Fn(&MessageId) -> Option<Vec<ReceivedPart>>,
    fragment_index: &dyn Fn(&MessageId) -> Option<Vec<MessageId>>,
) -> Result<Assembled, LargeError> {
    let mut extract_xml = std::str::from_utf8(extract_hl7)
        .map_err(|e| LargeError::BadExtract(format!("the extract is not UTF-8: {e}")))?
        .to_string();
    let mut out = Vec::new();
    let mut skeleton: Option<(Vec<u8>, String, Option<String>)> = None;
    for part in extract_inline {
        let name = part
            .filename
            .clone()
            .unwrap_or_else(|| part.content_id.clone());
        let mut bytes = join(&[part], &name)?;
        if part.compressed {
            bytes = gunzip(&bytes, &name)?;
        }
        if part.is_skeleton() {
            skeleton = Some((bytes, name, part.document_id.clone()));
        } else {
            out.push(AssembledDocument {
                document_id: part.document_id.clone(),
                filename: name,
                content_type: part.content_type.clone(),
                bytes: Bytes::from(bytes),
            });
        }
    }
    for doc in documents {
        let (mut bytes, document_id) = if doc.large {
            large_document(doc, received, fragment_index)?
        } else {
            let parts = received(&doc.message_id).ok_or_else(|| LargeError::MissingDocument {
                message_id: doc.message_id.clone(),
                filename: doc.filename.clone(),
            })?;
            if parts.is_empty() {
                return Err(LargeError::MissingDocument {
                    message_id: doc.message_id.clone(),
                    filename: doc.filename.clone(),
                });
            }
            let refs: Vec<&ReceivedPart> = parts.iter().collect();
            let document_id = parts.iter().find_map(|p| p.document_id.clone());
            (join(&refs, &doc.filename)?, document_id)
        };
        if doc.compressed {
            bytes = gunzip(&bytes, &doc.filename)?;
        }
        if doc.skeleton {
            skeleton = Some((bytes, doc.filename.clone(), document_id));
        } else {
            out.push(AssembledDocument {
                document_id,
                filename: doc.filename.clone(),
                content_type: doc.content_type.clone(),
                bytes: Bytes::from(bytes),
            });
        }
    }
    if let Some((bytes, filename, document_id)) = skeleton {
        extract_xml = merge_skeleton(&extract_xml, &bytes, &filename, document_id.as_deref())?;
    }
    Ok(Assembled {
        extract_xml,
        documents: out,
    })
}

type Pieces = (Vec<u8>, Option<String>);

fn large_document(
    doc: &ExpectedDocument,
    received: &dyn Fn(&MessageId) -> Option<Vec<ReceivedPart>>,
    fragment_index: &dyn Fn(&MessageId) -> Option<Vec<MessageId>>,
) -> Result<Pieces, LargeError> {
    let fragments = fragment_index(&doc.message_id).ok_or_else(|| LargeError::MissingIndex {
        message_id: doc.message_id.clone(),
        filename: doc.filename.clone(),
    })?;
    let mut inline = received(&doc.message_id).unwrap_or_default();
    inline.sort_by_key(|p| p.position);
    let mut fetched: Vec<Vec<ReceivedPart>> = Vec::with_capacity(fragments.len());
    for f in &fragments {
        fetched.push(fragment_parts(doc, f, received(f))?);
    }
    let mut pieces: Vec<&ReceivedPart> = Vec::with_capacity(fragments.len() + inline.len());
    for piece in piece_order(&inline, fragments.len()) {
        match piece {
            Piece::Inline(i) => pieces.push(&inline[i]),
            Piece::Fragment(i) => pieces.extend(fetched[i].iter()),
        }
    }
    let document_id = inline
        .iter()
        .chain(fetched.iter().flatten())
        .find_map(|p| p.document_id.clone());
    Ok((join(&pieces, &doc.filename)?, document_id))
}

/// The parts of fragment `fragment` of a large document as received (`None`: it never
/// came), checked to carry something.
pub fn fragment_parts(
    doc: &ExpectedDocument,
    fragment: &MessageId,
    parts: Option<Vec<ReceivedPart>>,
) -> Result<Vec<ReceivedPart>, LargeError> {
    let parts = parts.ok_or_else(|| LargeError::MissingFragment {
        index: doc.message_id.clone(),
        fragment: fragment.clone(),
        filename: doc.filename.clone(),
    })?;
    if parts.is_empty() {
        return Err(LargeError::Reassembly {
            filename: doc.filename.clone(),
            why: format!("fragment {fragment} carries no attachment"),
        });
    }
    Ok(parts)
}

/// One piece of a large document, in the order the document is put together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// The fragment index message's own inline part `i` (in `position` order).
    Inline(usize),
    /// The `i`th fragment the index lists (a message of its own).
    Fragment(usize),
}

/// The order of a large document's pieces: an inline fragment sits at its manifest
/// position; the `mid:` fragments fill the other places in the index's order. `inline`
/// must be sorted by position.
pub fn piece_order(inline: &[ReceivedPart], fragments: usize) -> Vec<Piece> {
    let total = fragments + inline.len();
    let mut order = Vec::with_capacity(total);
    let (mut next_inline, mut next_fragment) = (0, 0);
    for slot in 0..total {
        let inline_due = inline.get(next_inline).is_some_and(|p| p.position <= slot);
        if inline_due || next_fragment == fragments {
            order.push(Piece::Inline(next_inline));
            next_inline += 1;
        } else {
            order.push(Piece::Fragment(next_fragment));
            next_fragment += 1;
        }
    }
    order
}

/// The content of `pieces`, in order, with their transfer encoding undone.
fn join(pieces: &[&ReceivedPart], filename: &str) -> Result<Vec<u8>, LargeError> {
    let run = |how: Joining| {
        let mut decoder = Decoder::new(filename, pieces.len(), how);
        let mut out = Vec::new();
        for p in pieces {
            out.extend_from_slice(&decoder.piece(p)?);
        }
        out.extend_from_slice(&decoder.finish()?);
        Ok(out)
    };
    run(Joining::AsOneText).or_else(|_: LargeError| run(Joining::PieceByPiece))
}

/// How a document's base64 pieces are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joining {
    /// As one text, as if the pieces' texts were joined first (what a sender that splits
    /// the base64 of the whole document expects). Try this first.
    AsOneText,
    /// Each piece on its own (senders that encode each fragment separately, with padding
    /// inside the joined text). The fallback when [`Joining::AsOneText`] fails.
    PieceByPiece,
}

/// Undoes a document's transfer encoding one piece at a time, so that a document of any
/// size is put together (into a file) holding one piece in memory. Feed the pieces in
/// order with [`Decoder::piece`], then [`Decoder::finish`]; the document is the
/// concatenation of what they return. When [`Joining::AsOneText`] fails, start again with
/// [`Joining::PieceByPiece`]: a document is what either gives, tried in that order.
#[derive(Debug)]
pub struct Decoder {
    filename: String,
    pieces: usize,
    seen: usize,
    how: Joining,
    /// Base64 characters of the joined text not yet decoded (fewer than a quantum).
    carry: Vec<u8>,
    /// Encoded bytes taken so far (for the size limit).
    taken: usize,
}

impl Decoder {
    /// A decoder for a document of `pieces` pieces called `filename` (for messages).
    pub fn new(filename: &str, pieces: usize, how: Joining) -> Decoder {
        Decoder {
            filename: filename.to_string(),
            pieces,
            seen: 0,
            how,
            carry: Vec::new(),
            taken: 0,
        }
    }

    fn reassembly(&self, why: String) -> LargeError {
        LargeError::Reassembly {
            filename: self.filename.clone(),
            why,
        }
    }

    /// The next piece's content, decoded as far as it can be yet.
    pub fn piece(&mut self, part: &ReceivedPart) -> Result<Vec<u8>, LargeError> {
        self.seen += 1;
        self.taken = self.taken.saturating_add(part.bytes.len());
        if self.taken > MAX_DOCUMENT_BYTES.saturating_mul(4) / 3 + 4 {
            return Err(LargeError::TooLarge {
                filename: self.filename.clone(),
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        if !part.base64 {
            if !self.carry.is_empty() {
                return Err(self.reassembly(format!(
                    "piece {} of {} is not base64 but follows base64 text that stops part-way through",
                    self.seen, self.pieces
                )));
            }
            return Ok(part.bytes.to_vec());
        }
        match self.how {
            Joining::PieceByPiece => wire::decode_base64(&part.bytes).map_err(|e| {
                self.reassembly(format!(
                    "piece {} of {} is not valid base64 on its own and cannot be joined with the others: {e}",
                    self.seen, self.pieces
                ))
            }),
            Joining::AsOneText => {
                if self.carry.is_empty()
                    && let Some(decoded) = decode_clean(&part.bytes, &mut self.carry)
                {
                    return Ok(decoded);
                }
                let mut text = std::mem::take(&mut self.carry);
                text.reserve(part.bytes.len());
                for run in part.bytes.split(|b| !is_base64_char(*b)) {
                    text.extend_from_slice(run);
                }
                // Whole quanta now, the rest with the next piece.
                self.carry = text.split_off(text.len() / 4 * 4);
                wire::decode_base64(&text).map_err(|e| {
                    self.reassembly(format!(
                        "the base64 of its {} pieces joined is not valid (at piece {}): {e}",
                        self.pieces, self.seen
                    ))
                })
            }
        }
    }

    /// What is left once every piece is in.
    pub fn finish(self) -> Result<Vec<u8>, LargeError> {
        if self.carry.is_empty() {
            return Ok(Vec::new());
        }
        wire::decode_base64(&self.carry).map_err(|e| {
            self.reassembly(format!(
                "the base64 of its {} pieces joined ends part-way through: {e}",
                self.pieces
            ))
        })
    }
}

/// The usual piece, clean base64 with nothing carried over from the piece before, decoded
/// where it lies instead of being copied first: its whole quanta, if they decode, with the
/// characters after them (fewer than a quantum, all base64) left in `carry`. `None`, and
/// `carry` untouched, for anything else — the caller then filters and copies as before,
/// which gives the same bytes for a piece this accepts.
fn decode_clean(text: &[u8], carry: &mut Vec<u8>) -> Option<Vec<u8>> {
    let whole = text.len() / 4 * 4;
    let rest = &text[whole..];
    if !rest.iter().all(|&b| is_base64_char(b)) {
        return None;
    }
    // The decoder refuses anything but base64 characters (line breaks included), so text
    // it decodes is text the filter would have left as it is.
    let decoded = wire::decode_base64_clean(&text[..whole])?;
    carry.extend_from_slice(rest);
    Some(decoded)
}

fn is_base64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

/// Undoes `Compressed=Yes`. Content without gzip's magic number is taken as it is: senders
/// have been seen to mark uncompressed documents compressed, and refusing them would lose
/// the record for nothing. Content that starts as gzip must be valid gzip.
pub fn gunzip(data: &[u8], filename: &str) -> Result<Vec<u8>, LargeError> {
    if !data.starts_with(&[0x1f, 0x8b]) {
        return Ok(data.to_vec());
    }
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(64 * 1024 * 1024));
    let limit = MAX_DOCUMENT_BYTES as u64;
    flate2::read::MultiGzDecoder::new(data)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| LargeError::Reassembly {
            filename: filename.to_string(),
            why: format!("it is marked Compressed=Yes but is not valid gzip: {e}"),
        })?;
    if out.len() as u64 > limit {
        return Err(LargeError::TooLarge {
            filename: filename.to_string(),
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    Ok(out)
}

/// The interaction of an extract message (`RCMR_IN030000UK06` or `…UK07`) from its root
/// element's name, without reading the rest; `None` when the root is something else.
pub fn extract_interaction(xml_text: &str) -> Option<&'static str> {
    let root_name = strip_prolog(xml_text)
        .strip_prefix('<')
        .and_then(|r| {
            r.split(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .next()
        })
        .unwrap_or_default();
    match Interaction::from_id(xml::local_name(root_name)) {
        Some(i @ (Interaction::EhrExtract | Interaction::EhrExtractConfidential)) => Some(i.id()),
        _ => None,
    }
}

fn strip_prolog(text: &str) -> &str {
    let mut t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with("<?xml")
        && let Some(end) = t.find("?>")
    {
        t = t[end + 2..].trim_start();
    }
    t
}

/// The extract once the skeleton's compressed original is put in.
pub(crate) fn merge_skeleton(
    extract: &str,
    skeleton: &[u8],
    filename: &str,
    document_id: Option<&str>,
) -> Result<String, LargeError> {
    let text = std::str::from_utf8(skeleton).map_err(|e| {
        LargeError::BadExtract(format!(
            "the compressed extract {filename} is not UTF-8: {e}"
        ))
    })?;
    let body = strip_prolog(text);
    // The whole original message (the usual case): recognised by its root element, without
    // reading it all here (whoever uses the extract reads it next).
    if extract_interaction(body).is_some() {
        return Ok(text.to_string());
    }
    let fragment = xml::parse_with(body.as_bytes(), &xml_limits(body.len())).map_err(|e| {
        LargeError::BadExtract(format!("the compressed extract {filename} is not XML: {e}"))
    })?;
    match Interaction::from_id(fragment.local_name()) {
        Some(Interaction::EhrExtract | Interaction::EhrExtractConfidential) => {
            // The original message, exactly as it was compressed.
            return Ok(text.to_string());
        }
        Some(other) => {
            return Err(LargeError::BadExtract(format!(
                "the compressed extract {filename} is a {} message, not an extract",
                other.id()
            )));
        }
        None => {}
    }
    // A piece of XML standing for one element of the skeleton.
    let mut doc = xml::parse_with(extract.as_bytes(), &xml_limits(extract.len()))
        .map_err(|e| LargeError::BadExtract(format!("the skeleton extract is not XML: {e}")))?;
    let anchor = anchor_id(&doc, filename, document_id).ok_or_else(|| {
        LargeError::BadExtract(format!(
            "the skeleton names no document {filename}: there is no place to put its content"
        ))
    })?;
    let mut replacement = Some(fragment);
    if !replace_holder(&mut doc, &anchor, &mut replacement) {
        return Err(LargeError::BadExtract(format!(
            "no element of the skeleton carries the id {anchor} of {filename}"
        )));
    }
    Ok(xml::to_string(&doc, Layout::Compact))
}

fn norm_id(s: &str) -> String {
    s.trim().trim_start_matches('_').to_ascii_uppercase()
}

/// The id the skeleton gives the compressed extract: the manifest's document id, or the id
/// of the external document whose reference names the file.
fn anchor_id(doc: &Element, filename: &str, document_id: Option<&str>) -> Option<String> {
    if let Some(id) = document_id.map(norm_id).filter(|i| !i.is_empty()) {
        return Some(id);
    }
    let file = filename.to_ascii_uppercase();
    let mut found = None;
    doc.walk(&mut |e, _| {
        if found.is_some() || e.local_name() != "referredToExternalDocument" {
            return;
        }
        let Some(id) = e.child("id").and_then(|i| i.attr("root")).map(norm_id) else {
            return;
        };
        let reference = e
            .path(&["text", "reference"])
            .and_then(|r| r.attr("value"))
            .unwrap_or_default()
            .to_ascii_uppercase();
        if (!id.is_empty() && file.starts_with(&id)) || reference.ends_with(&file) {
            found = Some(id);
        }
    });
    found
}

/// Replaces the first element (in document order, near enough) that has a child carrying
/// `anchor` as an attribute value.
fn replace_holder(e: &mut Element, anchor: &str, replacement: &mut Option<Element>) -> bool {
    for child in e.children.iter_mut() {
        let Node::Element(c) = child else { continue };
        let holds = c
            .elements()
            .any(|g| g.attrs.iter().any(|a| norm_id(&a.value) == anchor));
        if holds {
            if let Some(r) = replacement.take() {
                *child = Node::Element(r);
                return true;
            }
            return false;
        }
        if replace_holder(c, anchor, replacement) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 131 % 251) as u8).collect()
    }

    #[test]
    fn base64_lines_are_76_characters_joined_by_crlf() {
        let engine = &base64::engine::general_purpose::STANDARD;
        // Around a line, around the encoder's block of lines, and a few sizes between.
        for n in [
            0, 1, 2, 3, 56, 57, 58, 114, 29_183, 29_184, 29_185, 100_000, 1_000_001,
        ] {
            let data = bytes(n);
            let text = engine.encode(&data);
            let expected = text
                .as_bytes()
                .chunks(76)
                .collect::<Vec<_>>()
                .join(&b"\r\n"[..]);
            let got = super::base64_lines(&data);
            assert_eq!(&got[..], &expected[..], "{n} bytes");
            assert_eq!(got.len(), super::base64_wire_len(n), "{n} bytes");
        }
    }

    #[test]
    fn clean_pieces_decode_in_place_to_what_the_filter_gives() {
        let engine = &base64::engine::general_purpose::STANDARD;
        let data = bytes(10_000);
        let text = engine.encode(&data);
        // Split anywhere (not on a quantum): the carry joins the pieces.
        for cut in [1, 4, 5, 4_001, 4_003] {
            let (a, b) = text.as_bytes().split_at(cut);
            let mut carry = Vec::new();
            let mut out = super::decode_clean(a, &mut carry).unwrap();
            assert_eq!(carry.len(), cut % 4);
            let mut joined = std::mem::take(&mut carry);
            joined.extend_from_slice(b);
            out.extend(super::decode_clean(&joined, &mut carry).unwrap());
            assert!(carry.is_empty());
            assert_eq!(out, data, "cut at {cut}");
        }
        // Anything but clean base64 is left to the filter, the carry untouched.
        let mut carry = Vec::new();
        assert!(super::decode_clean(b"QUJD\r\nRUZH", &mut carry).is_none());
        assert!(super::decode_clean(b"QUJDRUZH\r\n", &mut carry).is_none());
        assert!(super::decode_clean(b"QU=DRUZH", &mut carry).is_none());
        assert!(carry.is_empty());
    }
}
