//! Reading a `multipart/related` body into parts, without copying it.
//!
//! The body arrives as one [`Bytes`] buffer (an HTTP server hands it over that way). Each
//! part's headers are parsed into small strings, but its content stays where it is: a
//! [`Part`] holds a [`Bytes`] slice of the input, which shares the input's allocation. A
//! base64 part is decoded only when asked, either into a fresh buffer
//! ([`Part::decoded`]) or straight into a writer ([`Part::decode_into`]), a chunk at a time.

use std::io::Write;

use base64::Engine as _;
use bytes::Bytes;

use crate::Error;
use crate::headers::{Headers, printable, split_head};

/// How a part's content is encoded as it travels (`Content-Transfer-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferEncoding {
    /// `7bit`: ASCII text lines.
    SevenBit,
    /// `8bit`: text lines in any octets (what Spine uses for XML).
    EightBit,
    /// `binary`: any octets.
    Binary,
    /// `base64`: binary content as base64 text.
    Base64,
}

impl TransferEncoding {
    /// The name as written in the header.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferEncoding::SevenBit => "7bit",
            TransferEncoding::EightBit => "8bit",
            TransferEncoding::Binary => "binary",
            TransferEncoding::Base64 => "base64",
        }
    }

    /// Reads a header value (any case); `None` for encodings this crate does not decode.
    pub fn parse(value: &str) -> Option<TransferEncoding> {
        match value.trim().to_ascii_lowercase().as_str() {
            "7bit" => Some(TransferEncoding::SevenBit),
            "8bit" => Some(TransferEncoding::EightBit),
            "binary" => Some(TransferEncoding::Binary),
            "base64" => Some(TransferEncoding::Base64),
            _ => None,
        }
    }
}

/// One part of a multipart message, its content still as it travelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    index: usize,
    headers: Headers,
    content_id: Option<String>,
    content_type: Option<String>,
    encoding: TransferEncoding,
    body: Bytes,
}

impl Part {
    /// A part made from parsed pieces (used for a bare SOAP envelope, which is a message
    /// of one part with no MIME headers of its own).
    pub(crate) fn whole(body: Bytes, content_type: Option<String>) -> Part {
        Part {
            index: 0,
            headers: Headers::default(),
            content_id: None,
            content_type,
            encoding: TransferEncoding::EightBit,
            body,
        }
    }

    /// The part's position in the message, from 0 (the SOAP envelope).
    pub fn index(&self) -> usize {
        self.index
    }

    /// All of the part's headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The `Content-Id`, without its angle brackets.
    pub fn content_id(&self) -> Option<&str> {
        self.content_id.as_deref()
    }

    /// The `Content-Type` header as written, if any (MIME's default is `text/plain`).
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The `Content-Transfer-Encoding` (`8bit` when absent is what Spine means).
    pub fn transfer_encoding(&self) -> TransferEncoding {
        self.encoding
    }

    /// The content exactly as it travelled (still base64 for a base64 part). A slice of the
    /// message's buffer: no copy.
    pub fn raw(&self) -> &Bytes {
        &self.body
    }

    /// The decoded content. For every encoding but base64 this is the raw slice (no copy);
    /// for base64 it is a new buffer of the decoded bytes.
    pub fn decoded(&self) -> Result<Bytes, Error> {
        match self.encoding {
            TransferEncoding::Base64 => {
                // Exact: one quick pass counts, so the buffer is never regrown or oversized.
                let mut out = Vec::with_capacity(self.decoded_len() as usize);
                self.decode_into(&mut out)?;
                Ok(Bytes::from(out))
            }
            _ => Ok(self.body.clone()),
        }
    }

    /// Writes the decoded content into `out`, a bounded chunk at a time (line breaks and
    /// other whitespace inside base64 are skipped). Returns the number of bytes written.
    pub fn decode_into(&self, out: &mut impl Write) -> Result<u64, Error> {
        if self.encoding != TransferEncoding::Base64 {
            out.write_all(&self.body)?;
            return Ok(self.body.len() as u64);
        }
        const CHUNK: usize = 64 * 1024;
        let mut text = Vec::with_capacity(CHUNK);
        let mut bin = vec![0u8; CHUNK / 4 * 3];
        let mut written = 0u64;
        let mut flush = |text: &mut Vec<u8>, out: &mut dyn Write| -> Result<(), Error> {
            let n = base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
                .decode_slice(&text[..], &mut bin)
                .map_err(|e| Error::InvalidBase64 {
                    index: self.index,
                    reason: e.to_string(),
                })?;
            out.write_all(&bin[..n])?;
            written += n as u64;
            text.clear();
            Ok(())
        };
        for &b in self.body.iter() {
            if b.is_ascii_whitespace() {
                continue;
            }
            text.push(b);
            if text.len() == CHUNK {
                flush(&mut text, out)?;
            }
        }
        if !text.is_empty() {
            flush(&mut text, out)?;
        }
        Ok(written)
    }

    /// The number of decoded bytes, computed without decoding (for base64: the characters
    /// that are not whitespace, less padding, times three quarters).
    pub fn decoded_len(&self) -> u64 {
        if self.encoding != TransferEncoding::Base64 {
            return self.body.len() as u64;
        }
        // Every base64 character that is not padding carries six bits.
        let chars = self
            .body
            .iter()
            .filter(|&&b| b != b'=' && !b.is_ascii_whitespace())
            .count() as u64;
        chars * 3 / 4
    }
}

/// Splits a multipart body on its boundary. `max_parts` bounds the work: reading stops with
/// [`Error::TooManyAttachments`] as soon as one part more than that is found.
pub(crate) fn split_multipart(
    body: &Bytes,
    boundary: &str,
    max_parts: usize,
) -> Result<Vec<Part>, Error> {
    validate_boundary(boundary)?;
    let delimiter = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    let input: &[u8] = body;

    // Each delimiter must stand at the start of a line and be followed by `--` (the close
    // delimiter), optional spaces and a line break, or the end of input.
    let find_delimiter = |from: usize| -> Option<usize> {
        let mut at = from;
        while let Some(rel) = finder.find(&input[at..]) {
            let pos = at + rel;
            let line_start = pos == 0 || input[pos - 1] == b'\n';
            let after = &input[pos + delimiter.len()..];
            let padding = after
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
            let well_ended = after.starts_with(b"--")
                || matches!(after.get(padding), None | Some(b'\r') | Some(b'\n'));
            if line_start && well_ended {
                return Some(pos);
            }
            at = pos + 1;
        }
        None
    };

    let Some(mut pos) = find_delimiter(0) else {
        return Err(Error::BoundaryNotFound {
            boundary: boundary.to_string(),
        });
    };
    let mut parts = Vec::new();
    loop {
        let after = pos + delimiter.len();
        if input[after..].starts_with(b"--") {
            break;
        }
        // Skip transport padding and the line break after the delimiter.
        let Some(nl) = memchr::memchr(b'\n', &input[after..]) else {
            return Err(Error::UnterminatedMultipart {
                boundary: boundary.to_string(),
            });
        };
        let start = after + nl + 1;
        let Some(next) = find_delimiter(start) else {
            return Err(Error::UnterminatedMultipart {
                boundary: boundary.to_string(),
            });
        };
        // The line break before the next delimiter belongs to the delimiter.
        let mut end = next;
        if end > start && input[end - 1] == b'\n' {
            end -= 1;
            if end > start && input[end - 1] == b'\r' {
                end -= 1;
            }
        }
        if parts.len() == max_parts {
            return Err(Error::TooManyAttachments {
                count: max_parts.saturating_sub(1),
                limit: max_parts.saturating_sub(2),
            });
        }
        parts.push(parse_part(body, parts.len(), start, end.max(start))?);
        pos = next;
    }
    if parts.is_empty() {
        return Err(Error::NoParts);
    }
    Ok(parts)
}

fn parse_part(body: &Bytes, index: usize, start: usize, end: usize) -> Result<Part, Error> {
    let raw = &body[start..end];
    let (head_len, content_start) = split_head(raw).ok_or_else(|| Error::MalformedPartHeaders {
        index,
        reason: "the headers never end (there is no empty line before the content)".into(),
    })?;
    let headers = Headers::parse(&raw[..head_len])
        .map_err(|reason| Error::MalformedPartHeaders { index, reason })?;
    let encoding = match headers.get("content-transfer-encoding") {
        None => TransferEncoding::EightBit,
        Some(value) => {
            TransferEncoding::parse(value).ok_or_else(|| Error::UnsupportedTransferEncoding {
                index,
                encoding: printable(value),
            })?
        }
    };
    let content_id = headers.get("content-id").map(strip_angle_brackets);
    let content_type = headers.get("content-type").map(str::to_string);
    Ok(Part {
        index,
        content_id,
        content_type,
        encoding,
        body: body.slice(start + content_start..end),
        headers,
    })
}

/// `<id@host>` → `id@host`.
pub(crate) fn strip_angle_brackets(value: &str) -> String {
    let v = value.trim();
    v.strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or(v)
        .to_string()
}

/// Checks a boundary against RFC 2046: 1 to 70 characters from its set, not ending in a
/// space.
pub(crate) fn validate_boundary(boundary: &str) -> Result<(), Error> {
    let ok = !boundary.is_empty()
        && boundary.len() <= 70
        && !boundary.ends_with(' ')
        && boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidBoundary {
            boundary: printable(boundary),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn split(s: &str) -> Result<Vec<Part>, Error> {
        split_multipart(&Bytes::copy_from_slice(s.as_bytes()), "B", 99)
    }

    #[test]
    fn parts_are_found_with_crlf_and_lf() {
        for nl in ["\r\n", "\n"] {
            let text = format!(
                "preamble{nl}--B{nl}Content-Id: <one>{nl}{nl}first{nl}--B  {nl}content-transfer-encoding: BASE64{nl}{nl}aGVs{nl}bG8={nl}--B--{nl}epilogue"
            );
            let parts = split(&text).unwrap();
            assert_eq!(parts.len(), 2);
            assert_eq!(parts[0].content_id(), Some("one"));
            assert_eq!(&parts[0].raw()[..], b"first");
            assert_eq!(&parts[1].decoded().unwrap()[..], b"hello");
            assert_eq!(parts[1].decoded_len(), 5);
        }
    }

    #[test]
    fn delimiter_inside_a_line_is_content() {
        let parts = split("--B\r\n\r\nx--B y\r\n--Bnot\r\n--B--").unwrap();
        assert_eq!(&parts[0].raw()[..], b"x--B y\r\n--Bnot");
    }

    #[test]
    fn structural_errors() {
        assert!(matches!(
            split("no delimiter"),
            Err(Error::BoundaryNotFound { .. })
        ));
        assert!(matches!(
            split("--B\r\n\r\ncut short"),
            Err(Error::UnterminatedMultipart { .. })
        ));
        assert!(matches!(split("--B--\r\n"), Err(Error::NoParts)));
        assert!(matches!(
            split("--B\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nx\r\n--B--"),
            Err(Error::UnsupportedTransferEncoding { index: 0, .. })
        ));
        assert!(matches!(
            split("--B\r\nbroken header\r\n\r\nx\r\n--B--"),
            Err(Error::MalformedPartHeaders { index: 0, .. })
        ));
        let bad64 = split("--B\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@@\r\n--B--").unwrap();
        assert!(matches!(
            bad64[0].decoded(),
            Err(Error::InvalidBase64 { index: 0, .. })
        ));
        assert!(matches!(
            validate_boundary(""),
            Err(Error::InvalidBoundary { .. })
        ));
        assert!(matches!(
            validate_boundary("a\r\nb"),
            Err(Error::InvalidBoundary { .. })
        ));
    }

    #[test]
    fn too_many_parts_stops_early() {
        let mut s = String::new();
        for _ in 0..5 {
            s.push_str("--B\r\n\r\nx\r\n");
        }
        s.push_str("--B--");
        let err = split_multipart(&Bytes::from(s), "B", 4).unwrap_err();
        assert!(
            matches!(err, Error::TooManyAttachments { count: 3, limit: 2 }),
            "{err:?}"
        );
    }
}
