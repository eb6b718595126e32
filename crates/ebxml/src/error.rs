//! The one error type of this crate, and the ebXML error codes a receiver answers with.

use std::fmt;

/// Everything that can go wrong reading or writing an ebXML message.
///
/// Each message is a sentence meant for the person who has to do something about it: the
/// operator of a sending system, or a developer looking at a captured request. Every
/// variant also knows which ebXML error code a receiving MHS should put in the
/// `eb:ErrorList` it answers with: see [`Error::error_code`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- Spine's limits -------------------------------------------------------------
    /// The whole message is bigger than the receiver accepts.
    #[error(
        "the message is {size} bytes, over the limit of {limit} bytes; send large documents as \
         separate COPC fragments (`mid:` references) instead of inline attachments"
    )]
    MessageTooLarge {
        /// The size seen (or the size reached when reading stopped).
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The HL7 payload (the second MIME part) has more characters than Spine allows.
    #[error(
        "the HL7 payload has {chars} characters, over Spine's limit of {limit}; compress the \
         extract and send it as an attachment (GP2GP large messaging)"
    )]
    PayloadTooLarge {
        /// Characters in the payload.
        chars: u64,
        /// The limit in force.
        limit: u64,
    },
    /// One inline attachment is bigger than Spine allows.
    #[error(
        "attachment {index} ({content_id}) is {size} characters as sent, over Spine's limit of \
         {limit}; split it into fragments sent as separate COPC messages"
    )]
    AttachmentTooLarge {
        /// The attachment's position among the attachments, from 1.
        index: usize,
        /// Its Content-Id (without angle brackets), or `(no Content-Id)`.
        content_id: String,
        /// Its size as it travels (base64 text counts as sent, not decoded).
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// More inline attachments than Spine allows in one message.
    #[error(
        "the message has {count} inline attachments, over Spine's limit of {limit} (99 MIME \
         parts with the envelope and the HL7 payload); send the rest as separate messages"
    )]
    TooManyAttachments {
        /// Attachments seen (reading stops counting at one past the limit).
        count: usize,
        /// The limit in force.
        limit: usize,
    },

    // ---- HTTP and MIME --------------------------------------------------------------
    /// A captured HTTP request could not be split into its head and body.
    #[error("the HTTP request is malformed: {reason}")]
    MalformedHttpRequest {
        /// What was wrong.
        reason: String,
    },
    /// There was no `Content-Type` header where one was needed.
    #[error(
        "there is no Content-Type header; an ebXML message needs `multipart/related; \
         boundary=...` (or `text/xml` for a bare SOAP envelope)"
    )]
    MissingContentType,
    /// A `Content-Type` header could not be read at all.
    #[error("the Content-Type header `{value}` cannot be read: {reason}")]
    MalformedContentType {
        /// The header value as received.
        value: String,
        /// What was wrong.
        reason: String,
    },
    /// The message is neither `multipart/related` nor a bare XML envelope.
    #[error(
        "the Content-Type is `{media_type}`; Spine's ebXML messages are `multipart/related` \
         (or `text/xml` for a bare SOAP envelope)"
    )]
    UnsupportedMediaType {
        /// The media type received.
        media_type: String,
    },
    /// `multipart/related` without a `boundary` parameter.
    #[error("the multipart Content-Type has no `boundary` parameter, so the parts cannot be found")]
    MissingBoundary,
    /// A boundary that RFC 2046 does not allow (empty, too long, or with bad characters).
    #[error(
        "the MIME boundary `{boundary}` is not valid (1 to 70 characters from RFC 2046's set, \
         not ending in a space)"
    )]
    InvalidBoundary {
        /// The boundary as given.
        boundary: String,
    },
    /// The body never contains the boundary's delimiter line.
    #[error(
        "the body never contains the MIME boundary `{boundary}`; check the Content-Type header matches the body"
    )]
    BoundaryNotFound {
        /// The boundary looked for.
        boundary: String,
    },
    /// The body ends before the closing delimiter (`--boundary--`).
    #[error(
        "the multipart body ends without its closing delimiter `--{boundary}--`; the message \
         was probably cut short in transit and should be sent again"
    )]
    UnterminatedMultipart {
        /// The boundary.
        boundary: String,
    },
    /// A multipart body with no parts at all.
    #[error("the multipart body has no parts; the first part must be the SOAP envelope")]
    NoParts,
    /// The headers of one MIME part could not be read.
    #[error("the headers of MIME part {index} are malformed: {reason}")]
    MalformedPartHeaders {
        /// The part's position, from 0 (the envelope).
        index: usize,
        /// What was wrong.
        reason: String,
    },
    /// A part uses a Content-Transfer-Encoding this crate does not decode.
    #[error(
        "MIME part {index} uses Content-Transfer-Encoding `{encoding}`; Spine allows 7bit, 8bit, \
         binary and base64"
    )]
    UnsupportedTransferEncoding {
        /// The part's position, from 0.
        index: usize,
        /// The encoding named.
        encoding: String,
    },
    /// A base64 part whose text is not base64.
    #[error("MIME part {index} claims base64 but cannot be decoded: {reason}")]
    InvalidBase64 {
        /// The part's position, from 0.
        index: usize,
        /// What the decoder said.
        reason: String,
    },
    /// A `cid:` reference in the manifest names no part of the message.
    #[error(
        "the manifest refers to `{href}` but no MIME part has that Content-Id; the message is \
         incomplete or its Content-Ids do not match the manifest"
    )]
    UnresolvedReference {
        /// The href as written in the manifest.
        href: String,
    },

    // ---- the SOAP envelope ----------------------------------------------------------
    /// The envelope is bigger than the envelope limit (it should be a few kilobytes).
    #[error("the SOAP envelope is {size} bytes, over the limit of {limit} bytes")]
    EnvelopeTooLarge {
        /// The envelope's size.
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The envelope is not UTF-8.
    #[error("the SOAP envelope is not UTF-8 (the first bad byte is at offset {offset})")]
    EnvelopeNotUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The envelope is not well-formed XML.
    #[error("the SOAP envelope is not well-formed XML (near byte {offset}): {reason}")]
    MalformedXml {
        /// What the XML reader said.
        reason: String,
        /// Byte offset where it stopped.
        offset: u64,
    },
    /// The envelope has a DOCTYPE, which could declare entities: refused outright.
    #[error("the SOAP envelope has a DOCTYPE declaration, which is not allowed in ebXML messages")]
    DoctypeForbidden,
    /// The envelope's elements nest deeper than the limit.
    #[error("the SOAP envelope nests elements deeper than {limit} levels")]
    XmlTooDeep {
        /// The depth limit.
        limit: usize,
    },
    /// The root element is not a SOAP `Envelope`.
    #[error("the first part's root element is `{root}`, not a SOAP `Envelope`")]
    NotSoapEnvelope {
        /// The root element's name as written.
        root: String,
    },
    /// A required element is missing or empty.
    #[error("the ebXML header has no `{element}` (or it is empty); it is required")]
    MissingElement {
        /// The element, with the conventional prefix (e.g. `eb:CPAId`).
        element: &'static str,
    },
    /// An element holds a value this crate does not recognise.
    #[error("`{element}` holds `{value}`, which is not a recognised value")]
    UnrecognisedValue {
        /// The element or attribute, e.g. `eb:Error/@eb:severity`.
        element: &'static str,
        /// The value found.
        value: String,
    },
    /// A manifest reference's `xlink:href` is neither `cid:` nor `mid:`.
    #[error(
        "the manifest reference `{href}` is neither `cid:` (a part of this message) nor `mid:` \
         (another message)"
    )]
    InvalidHref {
        /// The href as written.
        href: String,
    },

    // ---- writing --------------------------------------------------------------------
    /// Writing failed because the destination or a part's source failed.
    #[error("writing the message failed: {0}")]
    Io(#[from] std::io::Error),
    /// A value that will be written into a MIME header holds a line break or other control
    /// character, which would break the message's structure.
    #[error(
        "the {what} `{value}` holds a control character and cannot be written into a MIME header"
    )]
    InvalidHeaderValue {
        /// Which value (e.g. "Content-Id").
        what: &'static str,
        /// The value, with control characters escaped.
        value: String,
    },
}

impl Error {
    /// The ebXML error code (ebMS 2.0 §4.2.3.4.1) a receiving MHS should answer with when it
    /// rejects a message for this reason.
    ///
    /// The mapping follows what each code means in the standard: structure and size of the
    /// MIME package are `MimeProblem`; XML that cannot be read is `OtherXml`; anything that
    /// smells of an attack on the parser (a DOCTYPE, absurd nesting) is `SecurityFailure`;
    /// required header elements that are absent or hold unknown values are
    /// `ValueNotRecognized`; a manifest that disagrees with the parts is `Inconsistent`.
    pub fn error_code(&self) -> ErrorCode {
        use Error::*;
        match self {
            MessageTooLarge { .. }
            | PayloadTooLarge { .. }
            | AttachmentTooLarge { .. }
            | TooManyAttachments { .. }
            | MalformedHttpRequest { .. }
            | MissingContentType
            | MalformedContentType { .. }
            | UnsupportedMediaType { .. }
            | MissingBoundary
            | InvalidBoundary { .. }
            | BoundaryNotFound { .. }
            | UnterminatedMultipart { .. }
            | NoParts
            | MalformedPartHeaders { .. }
            | UnsupportedTransferEncoding { .. }
            | InvalidBase64 { .. }
            | InvalidHeaderValue { .. } => ErrorCode::MimeProblem,
            UnresolvedReference { .. } => ErrorCode::Inconsistent,
            EnvelopeTooLarge { .. } | EnvelopeNotUtf8 { .. } | MalformedXml { .. } => {
                ErrorCode::OtherXml
            }
            DoctypeForbidden | XmlTooDeep { .. } => ErrorCode::SecurityFailure,
            NotSoapEnvelope { .. }
            | MissingElement { .. }
            | UnrecognisedValue { .. }
            | InvalidHref { .. } => ErrorCode::ValueNotRecognized,
            Io(_) => ErrorCode::Unknown,
        }
    }
}

/// The error codes of an ebXML `eb:Error` (`eb:errorCode`), as ebMS 2.0 spells them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Element content or attribute value not recognised.
    ValueNotRecognized,
    /// Element or attribute not supported.
    NotSupported,
    /// Element content or attribute value inconsistent with other elements or attributes.
    Inconsistent,
    /// Other error in an element content or attribute value.
    OtherXml,
    /// The message could not be delivered.
    DeliveryFailure,
    /// The message's `TimeToLive` passed before it could be delivered.
    TimeToLiveExpired,
    /// Validation of signatures or checks of authentication or authorisation failed.
    SecurityFailure,
    /// A URI could not be resolved, or the MIME package is broken.
    MimeProblem,
    /// An error not covered by the codes above.
    Unknown,
    /// A code outside ebMS 2.0's list, kept as received (Spine has been seen to send its own).
    Other(String),
}

impl ErrorCode {
    /// The code as it is written in `eb:errorCode`.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::ValueNotRecognized => "ValueNotRecognized",
            ErrorCode::NotSupported => "NotSupported",
            ErrorCode::Inconsistent => "Inconsistent",
            ErrorCode::OtherXml => "OtherXml",
            ErrorCode::DeliveryFailure => "DeliveryFailure",
            ErrorCode::TimeToLiveExpired => "TimeToLiveExpired",
            ErrorCode::SecurityFailure => "SecurityFailure",
            ErrorCode::MimeProblem => "MimeProblem",
            ErrorCode::Unknown => "Unknown",
            ErrorCode::Other(s) => s,
        }
    }

    /// Reads a code as written; anything outside the standard list is kept as
    /// [`ErrorCode::Other`].
    pub fn parse(s: &str) -> ErrorCode {
        match s.trim() {
            "ValueNotRecognized" => ErrorCode::ValueNotRecognized,
            "NotSupported" => ErrorCode::NotSupported,
            "Inconsistent" => ErrorCode::Inconsistent,
            "OtherXml" => ErrorCode::OtherXml,
            "DeliveryFailure" => ErrorCode::DeliveryFailure,
            "TimeToLiveExpired" => ErrorCode::TimeToLiveExpired,
            "SecurityFailure" => ErrorCode::SecurityFailure,
            "MimeProblem" => ErrorCode::MimeProblem,
            "Unknown" => ErrorCode::Unknown,
            other => ErrorCode::Other(other.to_string()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
