//! Header lines: MIME part headers, the `Content-Type` value, and the head of a captured
//! HTTP request.
//!
//! Spine's senders are not uniform. Some quote the `type` parameter, some do not
//! (`type=text/xml`); some end lines with CRLF, some with a bare LF; header names come in any
//! case. The general-purpose `mime` crate refuses some of these, so the `Content-Type` value
//! is parsed here, by hand, leniently. Writing is strict: CRLF, every parameter quoted.

use std::fmt;

use crate::Error;

/// A parsed `Content-Type` value: the media type and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    /// `type/subtype`, lower-cased (media types are case-insensitive).
    pub media_type: String,
    /// Parameters in the order written; names lower-cased, values unquoted.
    pub params: Vec<(String, String)>,
}

impl ContentType {
    /// A content type with no parameters.
    pub fn new(media_type: &str) -> Self {
        ContentType {
            media_type: media_type.to_ascii_lowercase(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter (builder style).
    pub fn with_param(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Reads a `Content-Type` header value, leniently: parameters may be quoted or not,
    /// names are matched without regard to case, stray semicolons and parameters without
    /// `=` are skipped.
    pub fn parse(value: &str) -> Result<ContentType, Error> {
        let malformed = |reason: &str| Error::MalformedContentType {
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let mut pieces = split_params(value).into_iter();
        let media_type = pieces
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let Some((ty, sub)) = media_type.split_once('/') else {
            return Err(malformed(
                "the media type has no `/` (expected e.g. `multipart/related`)",
            ));
        };
        if ty.is_empty() || sub.is_empty() || media_type.contains(char::is_whitespace) {
            return Err(malformed(
                "the media type is not of the form `type/subtype`",
            ));
        }
        let mut params = Vec::new();
        for piece in pieces {
            let Some((name, raw)) = piece.split_once('=') else {
                continue;
            };
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            params.push((name, unquote(raw.trim())));
        }
        Ok(ContentType { media_type, params })
    }

    /// The value of a parameter, by name in any case.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `boundary` parameter of a multipart type.
    pub fn boundary(&self) -> Option<&str> {
        self.param("boundary")
    }

    /// Whether this is `multipart/related` (what Spine's ebXML messages are).
    pub fn is_multipart(&self) -> bool {
        self.media_type.starts_with("multipart/")
    }

    /// Whether this is an XML type (`text/xml`, `application/xml`, `…+xml`).
    pub fn is_xml(&self) -> bool {
        self.media_type == "text/xml"
            || self.media_type == "application/xml"
            || self.media_type.ends_with("+xml")
    }
}

/// Written strictly: `type/subtype; name="value"; …`, every value quoted.
impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.media_type)?;
        for (name, value) in &self.params {
            write!(f, "; {name}=\"")?;
            for c in value.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        Ok(())
    }
}

/// Splits a header value on `;`, leaving semicolons inside quotes alone.
fn split_params(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

/// Removes surrounding quotes and backslash escapes; an unquoted token is returned as is.
fn unquote(raw: &str) -> String {
    let Some(inner) = raw.strip_prefix('"') else {
        return raw.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            // The closing quote; anything after it is ignored.
            '"' => break,
            c => out.push(c),
        }
    }
    out
}

/// A block of header lines (`Name: value`), as found at the start of a MIME part or after
/// an HTTP request line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// Parses header lines separated by CRLF or LF. Folded lines (starting with a space or
    /// tab) continue the previous field. A line without a colon is an error.
    pub fn parse(block: &[u8]) -> Result<Headers, String> {
        let text = std::str::from_utf8(block).map_err(|e| {
            format!(
                "the header bytes are not UTF-8 (at byte {})",
                e.valid_up_to()
            )
        })?;
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                match fields.last_mut() {
                    Some((_, value)) => {
                        value.push(' ');
                        value.push_str(line.trim());
                    }
                    None => return Err("the first header line is a continuation line".into()),
                }
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(format!(
                    "the header line `{}` has no colon",
                    printable(line)
                ));
            };
            let name = name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!(
                    "the header line `{}` has no valid name",
                    printable(line)
                ));
            }
            fields.push((name.to_string(), value.trim().to_string()));
        }
        Ok(Headers { fields })
    }

    /// The first value of a header, by name in any case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All fields, in order, names as written.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// A line for an error message: control characters escaped, long lines cut.
pub(crate) fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(120).flat_map(char::escape_debug).collect();
    if s.chars().count() > 120 {
        out.push('…');
    }
    out
}

/// Finds the end of a header block: the first empty line. Returns the length of the block
/// (without the empty line) and where what follows starts. An input that starts with an
/// empty line has an empty block.
pub(crate) fn split_head(input: &[u8]) -> Option<(usize, usize)> {
    if input.starts_with(b"\r\n") {
        return Some((0, 2));
    }
    if input.starts_with(b"\n") {
        return Some((0, 1));
    }
    for nl in memchr::memchr_iter(b'\n', input) {
        let rest = &input[nl + 1..];
        if rest.starts_with(b"\r\n") {
            return Some((nl + 1, nl + 3));
        }
        if rest.starts_with(b"\n") {
            return Some((nl + 1, nl + 2));
        }
    }
    None
}

/// The head of a captured HTTP request: its request line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHead {
    /// The method (`POST`).
    pub method: String,
    /// The request target (`/reliablemessaging/reliablerequest`).
    pub target: String,
    /// The headers.
    pub headers: Headers,
}

/// Whether the input starts with an HTTP request line (`METHOD target HTTP/1.x`).
pub(crate) fn looks_like_http_request(input: &[u8]) -> bool {
    let line_end = memchr::memchr(b'\n', input)
        .unwrap_or(input.len())
        .min(8192);
    let Ok(line) = std::str::from_utf8(&input[..line_end]) else {
        return false;
    };
    let mut words = line.trim_end().split(' ');
    let method = words.next().unwrap_or("");
    let _target = words.next();
    let version = words.next().unwrap_or("");
    !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_uppercase())
        && version.starts_with("HTTP/")
}

/// Splits a captured HTTP request into its head and the range of its body. A
/// `Content-Length` shorter than what follows cuts the body; `Transfer-Encoding: chunked`
/// is refused (de-chunk it first).
pub fn split_http_request(input: &[u8]) -> Result<(HttpHead, std::ops::Range<usize>), Error> {
    let bad = |reason: String| Error::MalformedHttpRequest { reason };
    let line_end = memchr::memchr(b'\n', input)
        .ok_or_else(|| bad("there is no line break after the request line".into()))?;
    let line = std::str::from_utf8(&input[..line_end])
        .map_err(|_| bad("the request line is not UTF-8".into()))?;
    let mut words = line.trim_end().split(' ');
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return Err(bad(format!(
            "the request line `{}` is not `METHOD target HTTP/1.1`",
            printable(line)
        )));
    };
    if !version.starts_with("HTTP/") {
        return Err(bad(format!(
            "the request line `{}` does not end in an HTTP version",
            printable(line)
        )));
    }
    let after_line = line_end + 1;
    let (head_len, body_start) = split_head(&input[after_line..])
        .ok_or_else(|| bad("the headers never end (no empty line before the body)".into()))?;
    let headers = Headers::parse(&input[after_line..after_line + head_len]).map_err(bad)?;
    if headers
        .get("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        return Err(bad(
            "the body is sent with chunked transfer coding; de-chunk the capture first".into(),
        ));
    }
    let body_start = after_line + body_start;
    let mut body_end = input.len();
    if let Some(len) = headers.get("content-length") {
        let len: usize = len.trim().parse().map_err(|_| {
            bad(format!(
                "Content-Length `{}` is not a number",
                printable(len)
            ))
        })?;
        body_end = body_end.min(body_start.saturating_add(len));
    }
    Ok((
        HttpHead {
            method: method.to_string(),
            target: target.to_string(),
            headers,
        },
        body_start..body_end,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn content_type_unquoted_and_quoted() {
        let ct = ContentType::parse(
            r#"Multipart/Related; boundary="--=_MIME-Boundary"; type=text/xml; start=ebXMLHeader@spine.nhs.uk"#,
        )
        .unwrap();
        assert_eq!(ct.media_type, "multipart/related");
        assert_eq!(ct.boundary(), Some("--=_MIME-Boundary"));
        assert_eq!(ct.param("TYPE"), Some("text/xml"));
        assert_eq!(ct.param("start"), Some("ebXMLHeader@spine.nhs.uk"));
        assert_eq!(
            ct.to_string(),
            r#"multipart/related; boundary="--=_MIME-Boundary"; type="text/xml"; start="ebXMLHeader@spine.nhs.uk""#
        );
        assert_eq!(ContentType::parse(&ct.to_string()).unwrap(), ct);
    }

    #[test]
    fn content_type_semicolon_inside_quotes_and_escapes() {
        let ct = ContentType::parse(r#"multipart/related; boundary="a;b\"c";;"#).unwrap();
        assert_eq!(ct.boundary(), Some("a;b\"c"));
        assert_eq!(ContentType::parse(&ct.to_string()).unwrap(), ct);
    }

    #[test]
    fn content_type_without_slash_is_an_error() {
        assert!(matches!(
            ContentType::parse("multipart"),
            Err(Error::MalformedContentType { .. })
        ));
        assert!(matches!(
            ContentType::parse(""),
            Err(Error::MalformedContentType { .. })
        ));
    }

    #[test]
    fn headers_fold_and_any_case() {
        let h = Headers::parse(b"content-ID: <a@b>\r\nCONTENT-TYPE: text/xml;\n charset=UTF-8\r\n")
            .unwrap();
        assert_eq!(h.get("Content-Id"), Some("<a@b>"));
        assert_eq!(h.get("content-type"), Some("text/xml; charset=UTF-8"));
        assert!(Headers::parse(b"no colon here").is_err());
    }

    #[test]
    fn head_split_crlf_and_lf() {
        assert_eq!(split_head(b"A: b\r\n\r\nbody"), Some((6, 8)));
        assert_eq!(split_head(b"A: b\n\nbody"), Some((5, 6)));
        assert_eq!(split_head(b"\r\nbody"), Some((0, 2)));
        assert_eq!(split_head(b"A: b\r\n"), None);
    }

    #[test]
    fn http_request_split_respects_content_length() {
        let req = b"POST /reliablemessaging/reliablerequest HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbodyEXTRA";
        let (head, range) = split_http_request(req).unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.target, "/reliablemessaging/reliablerequest");
        assert_eq!(&req[range], b"body");
        let chunked = b"POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n4\nbody\n0\n\n";
        assert!(matches!(
            split_http_request(chunked),
            Err(Error::MalformedHttpRequest { .. })
        ));
        assert!(looks_like_http_request(b"POST / HTTP/1.1\r\n"));
        assert!(!looks_like_http_request(b"----=_MIME-Boundary\r\n"));
    }
}
