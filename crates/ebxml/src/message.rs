//! A whole received message: the envelope, read, and its MIME parts, not yet decoded.

use bytes::Bytes;

use crate::Error;
use crate::envelope::Envelope;
use crate::headers::{self, ContentType, Headers};
use crate::manifest::Href;
use crate::mime::{self, Part};

/// The bounds a reader holds a message to. [`Limits::default`] is Spine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole message (the HTTP body), in bytes. Spine's is about 5 MB; the default is
    /// 5 MiB so that a payload at its limit still fits with its envelope.
    pub max_message_bytes: u64,
    /// The HL7 payload (the second part), in characters: Spine's limit is 5,000,000.
    pub max_payload_chars: u64,
    /// Each inline attachment, in characters as sent (base64 text counts as sent): Spine's
    /// limit is 5,000,000.
    pub max_attachment_chars: u64,
    /// Inline attachments (MIME parts after the payload): Spine's limit is 98.
    pub max_attachments: usize,
    /// The SOAP envelope, in bytes (it is a few kilobytes in practice).
    pub max_envelope_bytes: usize,
    /// How deep the envelope's elements may nest.
    pub max_xml_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 5 * 1024 * 1024,
            max_payload_chars: 5_000_000,
            max_attachment_chars: 5_000_000,
            max_attachments: 98,
            max_envelope_bytes: 1024 * 1024,
            max_xml_depth: 64,
        }
    }
}

/// A received ebXML message.
///
/// The envelope is read into its typed model when the message is parsed. The other parts
/// stay as slices of the input buffer ([`Part::raw`]) until someone asks for their
/// content ([`Part::decoded`], [`Part::decode_into`]).
#[derive(Debug, Clone)]
pub struct Message {
    envelope: Envelope,
    parts: Vec<Part>,
}

impl Message {
    /// Reads an HTTP body, given its `Content-Type` header. `multipart/related` is split on
    /// its boundary; `text/xml` (or any XML type) is taken as a bare SOAP envelope, a
    /// message of one part.
    pub fn parse(
        body: impl Into<Bytes>,
        content_type: &str,
        limits: &Limits,
    ) -> Result<Message, Error> {
        let body = body.into();
        check_size(&body, limits)?;
        let ct = ContentType::parse(content_type)?;
        if ct.is_multipart() {
            let boundary = ct.boundary().ok_or(Error::MissingBoundary)?;
            let parts =
                mime::split_multipart(&body, boundary, limits.max_attachments.saturating_add(2))?;
            Message::from_parts(parts, limits)
        } else if ct.is_xml() {
            let envelope = Envelope::parse(&body, limits)?;
            Ok(Message {
                envelope,
                parts: vec![Part::whole(body, Some(content_type.to_string()))],
            })
        } else {
            Err(Error::UnsupportedMediaType {
                media_type: ct.media_type,
            })
        }
    }

    /// Reads a captured HTTP request: request line, headers (with the `Content-Type`), an
    /// empty line, and the body.
    pub fn parse_http_request(
        request: impl Into<Bytes>,
        limits: &Limits,
    ) -> Result<Message, Error> {
        let request = request.into();
        check_size(&request, limits)?;
        let (head, range) = headers::split_http_request(&request)?;
        let content_type = head
            .headers
            .get("content-type")
            .ok_or(Error::MissingContentType)?
            .to_string();
        Message::parse(request.slice(range), &content_type, limits)
    }

    /// Reads whatever a capture holds, by looking at how it starts:
    ///
    /// - an HTTP request line → [`Message::parse_http_request`];
    /// - `<` → a bare SOAP envelope;
    /// - `--boundary` → a MIME body without its headers (the boundary is taken from that
    ///   first line);
    /// - header lines → a MIME body with its own headers (`Content-Type` among them).
    pub fn parse_any(input: impl Into<Bytes>, limits: &Limits) -> Result<Message, Error> {
        let input = input.into();
        check_size(&input, limits)?;
        let start = input
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(input.len());
        let rest = &input[start..];
        if headers::looks_like_http_request(rest) {
            return Message::parse_http_request(input.slice(start..), limits);
        }
        if rest.starts_with(b"<") {
            return Message::parse(input.slice(start..), "text/xml", limits);
        }
        if let Some(line) = rest.strip_prefix(b"--") {
            let end = line
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
                .unwrap_or(line.len());
            let boundary = std::str::from_utf8(&line[..end])
                .map_err(|_| Error::InvalidBoundary {
                    boundary: String::from_utf8_lossy(&line[..end]).into_owned(),
                })?
                .trim_end();
            let content_type =
                ContentType::new("multipart/related").with_param("boundary", boundary);
            return Message::parse(input.slice(start..), &content_type.to_string(), limits);
        }
        let (head_len, body_start) = headers::split_head(rest).ok_or(Error::MissingContentType)?;
        let head = Headers::parse(&rest[..head_len])
            .map_err(|reason| Error::MalformedPartHeaders { index: 0, reason })?;
        let content_type = head
            .get("content-type")
            .ok_or(Error::MissingContentType)?
            .to_string();
        Message::parse(input.slice(start + body_start..), &content_type, limits)
    }

    fn from_parts(parts: Vec<Part>, limits: &Limits) -> Result<Message, Error> {
        let envelope_part = parts.first().ok_or(Error::NoParts)?;
        let envelope_xml = envelope_part.decoded()?;
        let envelope = Envelope::parse(&envelope_xml, limits)?;
        if let Some(payload) = parts.get(1) {
            let chars = payload_chars(payload)?;
            if chars > limits.max_payload_chars {
                return Err(Error::PayloadTooLarge {
                    chars,
                    limit: limits.max_payload_chars,
                });
            }
        }
        for (i, part) in parts.iter().skip(2).enumerate() {
            let size = part.raw().len() as u64;
            if size > limits.max_attachment_chars {
                return Err(Error::AttachmentTooLarge {
                    index: i + 1,
                    content_id: part.content_id().unwrap_or("(no Content-Id)").to_string(),
                    size,
                    limit: limits.max_attachment_chars,
                });
            }
        }
        Ok(Message { envelope, parts })
    }

    /// The SOAP envelope, read.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Every MIME part in order, the envelope's first. A bare SOAP message has one.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The HL7 payload: the second part.
    pub fn payload(&self) -> Option<&Part> {
        self.parts.get(1)
    }

    /// The inline attachments: the parts after the payload.
    pub fn attachments(&self) -> &[Part] {
        self.parts.get(2..).unwrap_or(&[])
    }

    /// The part with this Content-Id (compared without angle brackets, ignoring case).
    pub fn part_by_content_id(&self, content_id: &str) -> Option<&Part> {
        let wanted = mime::strip_angle_brackets(content_id);
        self.parts.iter().find(|p| {
            p.content_id()
                .is_some_and(|id| id.eq_ignore_ascii_case(&wanted))
        })
    }

    /// Checks that every `cid:` reference in the manifest names a part of this message.
    ///
    /// Not done by [`Message::parse`], because senders in the wild disagree about
    /// Content-Ids of the HL7 payload; a receiver that wants to refuse an incomplete
    /// message calls this and answers with the error's code ([`crate::ErrorCode::Inconsistent`]).
    pub fn check_references(&self) -> Result<(), Error> {
        let Some(manifest) = &self.envelope.manifest else {
            return Ok(());
        };
        for r in &manifest.references {
            if let Href::Cid(id) = &r.href
                && self.part_by_content_id(id).is_none()
            {
                return Err(Error::UnresolvedReference {
                    href: r.href.to_string(),
                });
            }
        }
        Ok(())
    }
}

fn check_size(input: &Bytes, limits: &Limits) -> Result<(), Error> {
    let size = input.len() as u64;
    if size > limits.max_message_bytes {
        return Err(Error::MessageTooLarge {
            size,
            limit: limits.max_message_bytes,
        });
    }
    Ok(())
}

/// Characters in the payload: UTF-8 characters (bytes, for content that is not UTF-8). A
/// base64 payload is measured in decoded bytes, without decoding it.
fn payload_chars(part: &Part) -> Result<u64, Error> {
    if part.transfer_encoding() == mime::TransferEncoding::Base64 {
        return Ok(part.decoded_len());
    }
    let raw = part.raw();
    Ok(match std::str::from_utf8(raw) {
        Ok(text) => text.chars().count() as u64,
        Err(_) => raw.len() as u64,
    })
}
