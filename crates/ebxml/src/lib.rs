//! Spine's ebXML messages: read them, write them, answer them.
//!
//! # ebXML on Spine, for a newcomer
//!
//! Every GP2GP message between two practices travels through Spine, the NHS's national
//! message relay, as one HTTP POST. The body of that POST is an *ebXML message*: a
//! `multipart/related` MIME package (the same packaging e-mail uses for attachments) whose
//! parts are, in order:
//!
//! 1. a **SOAP envelope** holding the ebXML header: who sends (`eb:From`), to whom
//!    (`eb:To`), under which agreement (`eb:CPAId`), in which conversation
//!    (`eb:ConversationId`), what it is (`eb:Service` and `eb:Action`, the HL7 interaction
//!    id), and its identity (`eb:MessageData/eb:MessageId`, `eb:Timestamp`, and for an
//!    answer `eb:RefToMessageId`). The SOAP body holds the `eb:Manifest`, the list of
//!    payloads: `cid:` for a part of this package, `mid:` for a document sent as a
//!    message of its own;
//! 2. the **HL7 V3 payload** (an EhrRequest, an EhrExtract, an acknowledgement, a COPC
//!    fragment…), as XML;
//! 3. then up to 98 **attachments**: documents as text or base64.
//!
//! GP2GP's messages are *forward-reliable*: the header asks for an acknowledgment
//! (`eb:AckRequested`) and for duplicates to be dropped (`eb:DuplicateElimination`). The
//! receiving MHS (Message Handling Server) answers on the same HTTP exchange with an
//! envelope holding `eb:Acknowledgment` — or, if it will not take the message, an
//! `eb:ErrorList` whose `eb:Error`s carry codes such as `MimeProblem` or
//! `ValueNotRecognized`, or, when it could not even read the header, a SOAP fault. The
//! sender keeps retrying until acknowledged; the receiver keeps each MessageId long
//! enough to recognise a retry.
//!
//! Spine limits each message: an HL7 payload of at most 5,000,000 characters, attachments
//! of at most 5,000,000 each, at most 98 of them, about 5 MB in all. GP2GP's "large
//! messaging" works within those limits by compressing, splitting, and sending documents
//! as separate messages; its manifests describe attachments in a little format of their
//! own (`Filename="…" ContentType=… Compressed=No …`), modelled here by
//! [`AttachmentInfo`].
//!
//! # What this crate does, and does not
//!
//! It turns bytes into types and back: [`Message`] reads a received package (from an HTTP
//! body and its `Content-Type`, a captured HTTP request, or a bare SOAP document),
//! [`Envelope`] is the typed header and manifest, [`OutboundMessage`] and
//! [`MultipartBody`] write one, and [`acknowledgment`], [`message_error`] and
//! [`SoapFault`] are the answers. It does no network or disk I/O and knows no clock:
//! timestamps and message ids come from the caller, and are kept as the text received.
//! Sending, retrying and de-duplicating belong to the transport layer above.
//!
//! # Why it is built this way
//!
//! **Lenient in, strict out.** Real senders differ: `type=text/xml` unquoted, LF line ends
//! instead of CRLF, header names in any case, namespace prefixes spelled `SOAP`, `soap` or
//! `SOAP-ENV` (some messages even use `eb:` without declaring it), timestamps of any shape,
//! attachment descriptions with stray words. The reader accepts all of those: it parses the
//! `Content-Type` by hand ([`ContentType`]) because general-purpose MIME crates refuse
//! Spine's, and it matches XML elements by local name. The writer produces one canonical
//! form: CRLF, quoted parameters, a fresh boundary, declared prefixes.
//!
//! **Bounded.** Everything read is held to [`Limits`] before it is looked at closely: the
//! message size first, then the number of parts (counting stops at one past the limit),
//! the envelope's size and nesting depth, the payload's and each attachment's size. A
//! DOCTYPE is refused outright, so no entity can be declared, let alone expanded. Each
//! failure is an [`Error`] variant that says what to do, and [`Error::error_code`] gives
//! the ebXML code to answer it with.
//!
//! **Large parts are never copied more than once.** A received message is one
//! [`bytes::Bytes`] buffer; each [`Part`] is a slice of it (sharing the allocation). Only
//! the envelope is decoded eagerly. Base64 content is decoded on request: into a new
//! buffer ([`Part::decoded`], the one copy) or straight into a writer a chunk at a time
//! ([`Part::decode_into`], no copy of the whole). On the way out, [`MultipartBody`] is a
//! pull iterator of chunks: bytes in memory are sent as slices, readers are read a
//! [`CHUNK_SIZE`] at a time and base64-encoded chunk by chunk, so a 100 MB attachment read
//! from a file goes out through a buffer of tens of kilobytes. The honest limits of this
//! design: the *reader* needs the whole HTTP body in memory (it is one buffer, and Spine's
//! messages are at most about 5 MB, so this is the simple and fast choice); and a boundary
//! cannot be checked against content that has not been read yet, so the writer relies on
//! a random 128-bit boundary that will not occur in it by chance.
//!
//! # Example
//!
//! ```
//! use ebxml::{Boundary, Limits, Message, MessageData, MessageHeader, OutboundMessage, Party};
//!
//! let header = MessageHeader {
//!     from: Party::spine("RHM-803229"),
//!     to: Party::spine("RHM-801710"),
//!     cpa_id: "S2030731A2137927".into(),
//!     conversation_id: "A023EF7E-BE27-4A70-949A-38F7865E83BC".into(),
//!     service: ebxml::SERVICE_GP2GP.into(),
//!     action: "RCMR_IN010000UK05".into(),
//!     message_data: MessageData {
//!         message_id: "FA039330-7E63-446A-8CA4-E9E0D00DA6E8".into(),
//!         timestamp: "2024-05-01T10:00:00Z".into(),
//!         ref_to_message_id: None,
//!         time_to_live: None,
//!     },
//!     duplicate_elimination: false,
//! };
//! let limits = Limits::default();
//! let outbound = OutboundMessage::builder(header)
//!     .reliable()
//!     .payload("payload@lloyd", "<RCMR_IN010000UK05 xmlns=\"urn:hl7-org:v3\"/>")
//!     .build(&limits)?;
//! let body = outbound.into_body(Boundary::random())?;
//! let content_type = body.content_type();
//! let mut wire = Vec::new();
//! body.write_to(&mut wire)?;
//!
//! let received = Message::parse(wire, &content_type, &limits)?;
//! assert_eq!(received.envelope().message_header.action, "RCMR_IN010000UK05");
//! assert!(received.envelope().ack_requested.is_some());
//! assert_eq!(&received.payload().unwrap().decoded()?[..], b"<RCMR_IN010000UK05 xmlns=\"urn:hl7-org:v3\"/>");
//! # Ok::<(), ebxml::Error>(())
//! ```

mod build;
mod envelope;
mod error;
mod headers;
mod manifest;
mod message;
mod mime;
mod writer;
mod xml;

pub use build::{
    ENVELOPE_CONTENT_ID, MessageBuilder, OutboundMessage, ReplyIds, acknowledgment, message_error,
};
pub use envelope::{
    ACTION_ACKNOWLEDGMENT, ACTION_MESSAGE_ERROR, ACTOR_NEXT_MSH, ACTOR_TO_PARTY_MSH, AckRequested,
    Acknowledgment, CODE_CONTEXT_EBXML, Envelope, ErrorDetail, ErrorList, FaultError,
    HL7_SCHEMA_LOCATION, MessageData, MessageHeader, PARTY_TYPE_SPINE, Party, Reply, SERVICE_EBXML,
    SERVICE_GP2GP, Severity, SoapFault, SyncReply,
};
pub use error::{Error, ErrorCode};
pub use headers::{ContentType, Headers, HttpHead, split_http_request};
pub use manifest::{AttachmentInfo, Description, Href, Manifest, Reference, Schema};
pub use message::{Limits, Message};
pub use mime::{Part, TransferEncoding};
pub use writer::{Boundary, CHUNK_SIZE, MultipartBody, OutboundPart, Source};
