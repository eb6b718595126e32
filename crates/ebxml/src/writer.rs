//! Writing a `multipart/related` body, streaming.
//!
//! [`MultipartBody`] is an iterator of [`Bytes`] chunks: the delimiter and headers of each
//! part, then its content in chunks of at most [`CHUNK_SIZE`] bytes (plus base64's
//! growth), then the closing delimiter. A part's content comes from a [`Source`]: bytes
//! already in memory (sent as slices of them, never copied unless they must be base64
//! encoded) or any [`Read`] (read a chunk at a time). So a 100 MB attachment read from a
//! file goes out through a buffer of a few tens of kilobytes.
//!
//! A pull-style iterator fits both ways of sending: an HTTP client body that asks for the
//! next chunk, or [`MultipartBody::write_to`] for any [`Write`].

use std::collections::VecDeque;
use std::fmt;
use std::io::{Read, Write};

use base64::Engine as _;
use bytes::Bytes;

use crate::Error;
use crate::headers::printable;
use crate::mime::{TransferEncoding, validate_boundary};

/// How much content is read or sliced per chunk.
pub const CHUNK_SIZE: usize = 57 * 1024;

/// A MIME boundary, checked against RFC 2046.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary(String);

impl Boundary {
    /// A boundary of the caller's choosing.
    pub fn new(boundary: impl Into<String>) -> Result<Boundary, Error> {
        let b = boundary.into();
        validate_boundary(&b)?;
        Ok(Boundary(b))
    }

    /// A fresh boundary: `--=_Lloyd_` and 32 hex digits from the standard library's
    /// per-process random hash keys and a counter. It is not a secret, only unlikely to
    /// occur in any part's content (which a sender cannot check in advance when the content
    /// streams).
    pub fn random() -> Boundary {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut words = [0u64; 2];
        for (i, w) in words.iter_mut().enumerate() {
            let mut h = RandomState::new().build_hasher();
            h.write_u64(n);
            h.write_usize(i);
            *w = h.finish();
        }
        Boundary(format!("--=_Lloyd_{:016x}{:016x}", words[0], words[1]))
    }

    /// The boundary text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Boundary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a part's content comes from.
pub enum Source {
    /// Bytes already in memory (shared, not copied).
    Bytes(Bytes),
    /// Anything readable; read [`CHUNK_SIZE`] bytes at a time.
    Reader(Box<dyn Read + Send>),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Bytes(b) => write!(f, "Source::Bytes({} bytes)", b.len()),
            Source::Reader(_) => f.write_str("Source::Reader(..)"),
        }
    }
}

impl From<Bytes> for Source {
    fn from(b: Bytes) -> Self {
        Source::Bytes(b)
    }
}

impl From<Vec<u8>> for Source {
    fn from(b: Vec<u8>) -> Self {
        Source::Bytes(Bytes::from(b))
    }
}

impl From<String> for Source {
    fn from(s: String) -> Self {
        Source::Bytes(Bytes::from(s))
    }
}

/// One part to write.
#[derive(Debug)]
pub struct OutboundPart {
    /// The Content-Id, without angle brackets.
    pub content_id: String,
    /// The Content-Type, e.g. `text/xml; charset=UTF-8`.
    pub content_type: String,
    /// How the content travels.
    pub encoding: TransferEncoding,
    /// The content.
    pub source: Source,
    /// `true` when the source already is base64 text (e.g. from the MHS adaptor's JSON,
    /// `is_base64: true`): it is sent as it is instead of being encoded again.
    pub source_is_base64: bool,
}

impl OutboundPart {
    /// A text part sent as `8bit` (the envelope, the HL7 payload, XML attachments).
    pub fn text(
        content_id: impl Into<String>,
        content_type: impl Into<String>,
        source: impl Into<Source>,
    ) -> Self {
        OutboundPart {
            content_id: content_id.into(),
            content_type: content_type.into(),
            encoding: TransferEncoding::EightBit,
            source: source.into(),
            source_is_base64: false,
        }
    }

    /// A binary part, base64-encoded on the way out.
    pub fn base64(
        content_id: impl Into<String>,
        content_type: impl Into<String>,
        source: impl Into<Source>,
    ) -> Self {
        OutboundPart {
            encoding: TransferEncoding::Base64,
            ..OutboundPart::text(content_id, content_type, source)
        }
    }

    /// A part whose source is base64 text already, sent as `base64` without re-encoding.
    pub fn pre_encoded_base64(
        content_id: impl Into<String>,
        content_type: impl Into<String>,
        source: impl Into<Source>,
    ) -> Self {
        OutboundPart {
            source_is_base64: true,
            ..OutboundPart::base64(content_id, content_type, source)
        }
    }

    fn check_headers(&self) -> Result<(), Error> {
        for (what, value) in [
            ("Content-Id", &self.content_id),
            ("Content-Type", &self.content_type),
        ] {
            if value.chars().any(char::is_control) {
                return Err(Error::InvalidHeaderValue {
                    what,
                    value: printable(value),
                });
            }
        }
        Ok(())
    }
}

/// Where the writer is.
enum State {
    /// Next: the delimiter and headers of the next part, or the close delimiter.
    PartStart,
    /// Streaming the current part's content.
    Content {
        source: Source,
        encode: bool,
        sent: u64,
    },
    Done,
}

/// A `multipart/related` body as a stream of chunks (see the module documentation).
pub struct MultipartBody {
    boundary: Boundary,
    parts: VecDeque<OutboundPart>,
    index: usize,
    state: State,
    /// Bounds each attachment's size as sent (see [`MultipartBody::with_attachment_limit`]).
    attachment_limit: Option<u64>,
    buf: Vec<u8>,
}

impl fmt::Debug for MultipartBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultipartBody")
            .field("boundary", &self.boundary)
            .field("parts_to_come", &self.parts.len())
            .finish_non_exhaustive()
    }
}

impl MultipartBody {
    /// A body of these parts, in order.
    pub fn new(boundary: Boundary, parts: Vec<OutboundPart>) -> Result<MultipartBody, Error> {
        for p in &parts {
            p.check_headers()?;
        }
        Ok(MultipartBody {
            boundary,
            parts: parts.into(),
            index: 0,
            state: State::PartStart,
            attachment_limit: None,
            buf: Vec::new(),
        })
    }

    /// Stops with [`Error::AttachmentTooLarge`] if any attachment (third part on) turns out
    /// bigger than `limit` as sent, for sources whose size is not known in advance.
    pub fn with_attachment_limit(mut self, limit: u64) -> Self {
        self.attachment_limit = Some(limit);
        self
    }

    /// The `Content-Type` header for this body:
    /// `multipart/related; boundary="…"; type="text/xml"; start="<first part's id>"`.
    pub fn content_type(&self) -> String {
        let mut ct = crate::ContentType::new("multipart/related")
            .with_param("boundary", self.boundary.as_str())
            .with_param("type", "text/xml");
        if let Some(first) = self.parts.front().filter(|_| self.index == 0) {
            ct = ct.with_param("start", format!("<{}>", first.content_id));
        }
        ct.to_string()
    }

    /// Writes the whole body to `out`; returns the number of bytes written.
    pub fn write_to(self, out: &mut impl Write) -> Result<u64, Error> {
        let mut n = 0u64;
        for chunk in self {
            let chunk = chunk?;
            out.write_all(&chunk)?;
            n += chunk.len() as u64;
        }
        out.flush()?;
        Ok(n)
    }

    fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return Ok(None),
                State::PartStart => {
                    let Some(part) = self.parts.pop_front() else {
                        self.state = State::Done;
                        let close = format!(
                            "{}--{}--\r\n",
                            if self.index > 0 { "\r\n" } else { "" },
                            self.boundary
                        );
                        return Ok(Some(Bytes::from(close)));
                    };
                    let head = format!(
                        "{}--{}\r\nContent-Id: <{}>\r\nContent-Type: {}\r\nContent-Transfer-Encoding: {}\r\n\r\n",
                        if self.index > 0 { "\r\n" } else { "" },
                        self.boundary,
                        part.content_id,
                        part.content_type,
                        part.encoding.as_str(),
                    );
                    self.index += 1;
                    let encode =
                        part.encoding == TransferEncoding::Base64 && !part.source_is_base64;
                    self.state = State::Content {
                        source: part.source,
                        encode,
                        sent: 0,
                    };
                    return Ok(Some(Bytes::from(head)));
                }
                State::Content {
                    mut source,
                    encode,
                    mut sent,
                } => {
                    let chunk = self.content_chunk(&mut source, encode, sent > 0)?;
                    match chunk {
                        None => self.state = State::PartStart,
                        Some(chunk) => {
                            sent += chunk.len() as u64;
                            if let Some(limit) = self.attachment_limit
                                && self.index > 2
                                && sent > limit
                            {
                                return Err(Error::AttachmentTooLarge {
                                    index: self.index - 2,
                                    content_id: "(streamed part)".to_string(),
                                    size: sent,
                                    limit,
                                });
                            }
                            self.state = State::Content {
                                source,
                                encode,
                                sent,
                            };
                            return Ok(Some(chunk));
                        }
                    }
                }
            }
        }
    }

    /// The next piece of content (encoded if it must be), or `None` when the source is
    /// used up. `continuing` says whether this part has sent content already.
    fn content_chunk(
        &mut self,
        source: &mut Source,
        encode: bool,
        continuing: bool,
    ) -> Result<Option<Bytes>, Error> {
        match source {
            Source::Bytes(b) => {
                if b.is_empty() {
                    return Ok(None);
                }
                let raw = b.split_to(CHUNK_SIZE.min(b.len()));
                Ok(Some(if encode {
                    encode_lines(&raw, continuing)
                } else {
                    raw
                }))
            }
            Source::Reader(r) => {
                self.buf.resize(CHUNK_SIZE, 0);
                let mut filled = 0;
                while filled < CHUNK_SIZE {
                    match r.read(&mut self.buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                let raw = &self.buf[..filled];
                Ok((filled > 0).then(|| {
                    if encode {
                        encode_lines(raw, continuing)
                    } else {
                        Bytes::copy_from_slice(raw)
                    }
                }))
            }
        }
    }
}

/// Base64 in lines of 76 characters separated by CRLF. [`CHUNK_SIZE`] is a multiple of
/// 57 (the bytes one line holds), so a part's chunks join into whole lines; a chunk that
/// continues a part starts with the line break that ends the previous one.
fn encode_lines(input: &[u8], continuing: bool) -> Bytes {
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut out = Vec::with_capacity(input.len().div_ceil(57) * 78);
    let mut line = [0u8; 76];
    for (i, group) in input.chunks(57).enumerate() {
        if i > 0 || continuing {
            out.extend_from_slice(b"\r\n");
        }
        // 57 bytes always encode to exactly 76 characters: the buffer cannot be too small.
        let n = engine.encode_slice(group, &mut line).unwrap_or(0);
        out.extend_from_slice(&line[..n]);
    }
    Bytes::from(out)
}

impl Iterator for MultipartBody {
    type Item = Result<Bytes, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_chunk() {
            Ok(Some(chunk)) => Some(Ok(chunk)),
            Ok(None) => None,
            Err(e) => {
                self.state = State::Done;
                Some(Err(e))
            }
        }
    }
}
