//! The tokenizer under every reader of this crate: a hand-written pull scanner over a
//! whole document in memory.
//!
//! The document is checked once, up front — size limit, UTF-8 (SIMD), no control
//! characters — and from then on it is a `&str` that the scanner slices without checking
//! anything twice. Each call to [`EventReader::next_event`] reads one step of the document
//! and hands it out as an [`Ev`]: a start tag (its attributes already scanned, checked
//! against the [`Limits`] and kept as spans of the input), a piece of text (borrowed from
//! the input unless a reference or a carriage return had to be replaced), a comment, an end
//! tag (checked against the start tag it closes), or the end of the input.
//!
//! What is refused, and where:
//!
//! - a DOCTYPE declaration ([`XmlError::Doctype`]) — never read past;
//! - any entity reference but the five XML predefines and numeric character references
//!   that name an XML character ([`XmlError::Entity`]);
//! - nesting past `max_depth`, more than `max_attributes` on one element, names longer than
//!   `max_name_len`;
//! - malformed markup: a `<` that starts nothing, unquoted or unclosed attribute values, a
//!   `<` inside one, a repeated attribute, an end tag that does not match, `--` inside a
//!   comment, an unclosed comment, CDATA section or processing instruction.
//!
//! Names are checked against XML's name characters for ASCII (letters, digits, `_`, `:`,
//! `-`, `.`, not starting with a digit, `-` or `.`); any non-ASCII character is accepted in a
//! name, as XML 1.0 (fifth edition) nearly does.

use std::borrow::Cow;

use crate::xml::{Limits, Node, XmlError};

/// One step of a document, as the readers above this module see it: references are
/// already resolved to text, CDATA is text, the declaration and processing instructions
/// are gone, and a DOCTYPE is an error.
pub enum Ev<'a> {
    /// A start tag; `true` when it is also the end (`<x/>`); the byte offset of its `<`.
    Start(StartTag<'a>, bool, u64),
    /// A piece of text (adjacent pieces may follow: text, then a CDATA section).
    Text(Cow<'a, str>),
    Comment(String),
    End,
    Eof,
}

/// A start tag as read: its qualified name and the raw text of its attribute list.
#[derive(Debug, Clone, Copy)]
pub struct StartTag<'a> {
    name: &'a str,
    attrs: &'a str,
    /// Where this tag's attributes start in the document (identifies the tag whose
    /// attributes the reader holds scanned).
    at: usize,
}

impl<'a> StartTag<'a> {
    /// The qualified name as written: `hl7:id`, `ObservationStatement`.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The attribute list as written, between the name and `>` (or `/>`).
    pub fn attributes_raw(&self) -> &'a str {
        self.attrs
    }
}

/// One attribute of the current start tag: spans of the input.
#[derive(Clone, Copy)]
struct AttrSpan<'a> {
    name: &'a str,
    value: &'a str,
    /// The value holds `&`, tab, CR or LF: it must be unescaped and normalised.
    raw: bool,
}

/// A hardened pull reader over a whole document in memory: it enforces the [`Limits`],
/// refuses DOCTYPE and unknown entities, and hands out [`Ev`]s. The tree reader and the
/// typed model's direct reader (see [`crate::typed`]) both read through it.
pub struct EventReader<'a> {
    text: &'a str,
    pos: usize,
    limits: Limits,
    /// Bytes before `text` in the input (a byte-order mark), added to every offset.
    bom: u64,
    /// Names of the open elements, outermost first, each with whether it has had an
    /// element child yet.
    open: Vec<(&'a str, bool)>,
    /// The last event handed out was a piece of text (a text run or a CDATA section).
    after_text: bool,
    /// The attributes of the last start tag read (reused: no allocation per tag).
    attrs: Vec<AttrSpan<'a>>,
    /// `StartTag::at` of the tag whose attributes are in `attrs`.
    attrs_of: usize,
    /// The tree reader's children of the elements being read (see `EventReader::element`).
    pub(crate) nodes: Vec<Node>,
}

// Byte classes for the scanner.
const NAME: u8 = 1; // may appear in a name
const NAME_START: u8 = 2; // may start a name
const SPACE: u8 = 4; // XML whitespace
const VALUE_STOP: u8 = 8; // ends the plain run of an attribute value: quotes, <, &, tab, CR, LF

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut k = 0;
        // Bytes of non-ASCII characters are left out: a name holding one is checked
        // character by character (see `name_end_unicode`).
        if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            k |= NAME | NAME_START;
        }
        if c.is_ascii_digit() || c == b'-' || c == b'.' {
            k |= NAME;
        }
        if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            k |= SPACE;
        }
        if matches!(c, b'"' | b'\'' | b'<' | b'&' | b'\t' | b'\r' | b'\n') {
            k |= VALUE_STOP;
        }
        t[b] = k;
        b += 1;
    }
    t
}

static CLASS: [u8; 256] = classes();

fn is(b: u8, class: u8) -> bool {
    CLASS[b as usize] & class != 0
}

/// The position of the first character XML does not allow anywhere (§2.2): a control
/// character other than tab, LF and CR, or one of the non-characters U+FFFE and U+FFFF.
/// Checked a block at a time so that the compiler can vectorise the common case.
fn find_forbidden(bytes: &[u8]) -> Option<usize> {
    const BLOCK: usize = 256;
    let control = |b: u8| b < 0x20 && b != b'\t' && b != b'\n' && b != b'\r';
    // U+FFFE and U+FFFF are EF BF BE and EF BF BF.
    let forbidden = |i: usize| match bytes.get(i) {
        Some(&b) if control(b) => true,
        Some(0xEF) => matches!(bytes.get(i + 1..i + 3), Some([0xBF, 0xBE | 0xBF])),
        _ => false,
    };
    let mut blocks = bytes.chunks_exact(BLOCK);
    let mut base = 0;
    for block in &mut blocks {
        let suspect = block.iter().fold(false, |acc, &b| {
            acc | ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r')) | (b == 0xEF)
        });
        if suspect && let Some(at) = (base..base + BLOCK).find(|&i| forbidden(i)) {
            return Some(at);
        }
        base += BLOCK;
    }
    (base..bytes.len()).find(|&i| forbidden(i))
}

/// Where the name starting at `at` ends; `at` itself when no name starts there.
#[inline]
fn name_end(text: &str, at: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = match bytes.get(at) {
        Some(&b) if is(b, NAME_START) => at + 1,
        Some(&b) if b >= 0x80 => at,
        _ => return at,
    };
    let rest = bytes.get(i..).unwrap_or_default();
    i += rest
        .iter()
        .position(|&b| !is(b, NAME))
        .unwrap_or(rest.len());
    match bytes.get(i) {
        Some(&b) if b >= 0x80 => name_end_unicode(text, at, i),
        _ => i,
    }
}

/// [`name_end`] past a non-ASCII character at `i`: XML 1.0 (fifth edition) §2.3 decides
/// which characters may start a name (at `at`) and which may continue one.
#[cold]
#[inline(never)]
fn name_end_unicode(text: &str, at: usize, mut i: usize) -> usize {
    for c in text.get(i..).unwrap_or_default().chars() {
        let ok = if i == at {
            is_name_start_char(c)
        } else {
            is_name_char(c)
        };
        if !ok {
            break;
        }
        i += c.len_utf8();
    }
    i
}

fn is_name_start_char(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c,
            '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Eight bytes from `at`, as one word.
#[inline]
fn word(bytes: &[u8], at: usize) -> Option<u64> {
    let eight: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(eight))
}

/// Skips XML whitespace from `i`, eight bytes at a time.
///
/// The document has been checked for control characters, so every byte up to U+0020 is
/// one of XML's four whitespace characters (space, tab, LF, CR), and the first byte of a
/// word above 0x20 ends the run: `(b & 0x7F) + 0x5F` sets the high bit for 0x21..=0x7F,
/// `| b` for the bytes of non-ASCII characters, and no byte carries into the next.
#[inline]
fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const ADD: u64 = 0x5F5F_5F5F_5F5F_5F5F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(w) = word(bytes, i) {
        let above = (((w & LOW7) + ADD) | w) & HIGH;
        if above != 0 {
            return i + (above.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b > b' ' {
            break;
        }
        i += 1;
    }
    i
}

/// Where the plain run of an attribute value starting at `i` ends: at its first quote
/// character, `<`, `&`, tab, LF or CR — or a little earlier, at `#`, `$` or `%`, which the
/// word-at-a-time test stops at too (the caller's slow path reads on from there).
///
/// Per byte of a word, with the document's control characters already refused:
/// below 0x20 (tab, LF, CR), within 0x22..=0x27 (`"` `#` `$` `%` `&` `'`), or `<`.
#[inline]
fn plain_value_end(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(w) = word(bytes, i) {
        let low = w & LOW7;
        // High bit set where the byte is below 0x20 (only the lowest such byte is
        // certain; nothing above it matters).
        let control = w.wrapping_sub(ONES * 0x20) & !w;
        // Exact per byte: 0x21 < b < 0x28 among ASCII bytes.
        let quoting = (ONES * (127 + 0x28) - low) & !w & (low + ONES * (127 - 0x21));
        let lt = w ^ (ONES * u64::from(b'<'));
        let lt = lt.wrapping_sub(ONES) & !lt;
        let stop = (control | quoting | lt) & HIGH;
        if stop != 0 {
            return i + (stop.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let rest = bytes.get(i..).unwrap_or_default();
    i + rest
        .iter()
        .position(|&b| is(b, VALUE_STOP))
        .unwrap_or(rest.len())
}

impl<'a> EventReader<'a> {
    /// Checks the whole input (size, UTF-8, control characters) and starts reading it.
    pub fn new(input: &'a [u8], limits: &Limits) -> Result<Self, XmlError> {
        if input.len() > limits.max_bytes {
            return Err(XmlError::TooLarge {
                size: input.len() as u64,
                limit: limits.max_bytes,
            });
        }
        // simdutf8's fast check first; on failure, std's slower one says where.
        let text = match simdutf8::basic::from_utf8(input) {
            Ok(text) => text,
            Err(_) => std::str::from_utf8(input).map_err(|e| XmlError::Utf8 {
                offset: e.valid_up_to() as u64,
            })?,
        };
        // XML 1.0 allows no control characters but tab, line feed and carriage return
        // (§2.2), not even escaped: a NUL is never part of a message.
        if let Some(at) = find_forbidden(input) {
            let message = match text.get(at..).and_then(|t| t.chars().next()) {
                Some(c @ ('\u{fffe}' | '\u{ffff}')) => format!(
                    "non-character U+{:04X} at byte {at}: XML does not allow it anywhere",
                    u32::from(c)
                ),
                _ => format!(
                    "control character U+{:04X} at byte {at}: XML does not allow it anywhere",
                    input.get(at).copied().unwrap_or_default()
                ),
            };
            return Err(XmlError::Syntax {
                message,
                offset: at as u64,
            });
        }
        // A byte-order mark is allowed before the declaration.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let bom = (input.len() - text.len()) as u64;
        Ok(EventReader {
            text,
            pos: 0,
            limits: *limits,
            bom,
            open: Vec::with_capacity(32),
            after_text: false,
            attrs: Vec::with_capacity(16),
            attrs_of: usize::MAX,
            nodes: Vec::new(),
        })
    }

    /// The byte offset reached.
    pub fn position(&self) -> u64 {
        self.pos as u64 + self.bom
    }

    fn offset(&self, at: usize) -> u64 {
        at as u64 + self.bom
    }

    fn syntax(&self, at: usize, message: String) -> XmlError {
        XmlError::Syntax {
            message,
            offset: self.offset(at),
        }
    }

    /// The next step of the document.
    pub fn next_event(&mut self) -> Result<Ev<'a>, XmlError> {
        let bytes = self.text.as_bytes();
        loop {
            let at = self.pos;
            let Some(&first) = bytes.get(at) else {
                return Ok(Ev::Eof);
            };
            if first != b'<' {
                // Indentation before a start tag, or before the end tag of an element
                // that has element children, is dropped by every reader above (and only
                // when no text piece came just before, which it would belong to): it is
                // skipped here, before it costs an event.
                match self.text_run(at)? {
                    Some(ev) => return Ok(ev),
                    None => continue,
                }
            }
            match bytes.get(at + 1) {
                Some(b'/') => return self.end_tag(at),
                Some(b'!') => {
                    let rest = &bytes[at..];
                    if rest.starts_with(b"<!--") {
                        return self.comment(at);
                    }
                    if rest.starts_with(b"<![CDATA[") {
                        return self.cdata(at);
                    }
                    if rest.starts_with(b"<!DOCTYPE") {
                        return Err(XmlError::Doctype {
                            offset: self.offset(at),
                        });
                    }
                    return Err(self.syntax(
                        at,
                        "'<!' starts neither a comment nor a CDATA section".into(),
                    ));
                }
                // The XML declaration or a processing instruction: checked, then skipped.
                Some(b'?') => self.processing_instruction(at)?,
                _ => return self.start_tag(at),
            }
        }
    }

    /// Text up to the next `<`, references resolved and line ends normalised; `None` when
    /// the text is only indentation that every reader would drop (see [`Self::next_event`]).
    fn text_run(&mut self, at: usize) -> Result<Option<Ev<'a>>, XmlError> {
        let bytes = self.text.as_bytes();
        let i = skip_space(bytes, at);
        if bytes.get(i) == Some(&b'<') && !self.after_text {
            let skip = match bytes.get(i + 1) {
                Some(&b) => {
                    is(b, NAME_START) || (b == b'/' && self.open.last().is_some_and(|o| o.1))
                }
                None => false,
            };
            if skip {
                self.pos = i;
                return Ok(None);
            }
        }
        let end = memchr::memchr(b'<', &bytes[i..]).map_or(bytes.len(), |n| i + n);
        self.pos = end;
        self.after_text = true;
        let raw = &self.text[at..end];
        // Plain text (the usual case) is handed out as it is.
        if memchr::memchr3(b'&', b'\r', b'>', &bytes[i..end]).is_none()
            && !bytes[at..i].contains(&b'\r')
        {
            return Ok(Some(Ev::Text(Cow::Borrowed(raw))));
        }
        if let Some(n) = memchr::memmem::find(raw.as_bytes(), b"]]>") {
            return Err(self.syntax(
                at + n,
                "']]>' in text: it ends nothing here (write ]]&gt;)".into(),
            ));
        }
        // Outside the root element text is never resolved: it may only be whitespace, and
        // the readers above say so when it is not.
        if self.open.is_empty() || memchr::memchr2(b'&', b'\r', raw.as_bytes()).is_none() {
            return Ok(Some(Ev::Text(Cow::Borrowed(raw))));
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        let mut base = at;
        while let Some(i) = rest.find(['&', '\r']) {
            out.push_str(&rest[..i]);
            if rest.as_bytes()[i] == b'\r' {
                // CR LF and a lone CR both become LF (XML 1.0 §2.11).
                out.push('\n');
                let skip = if rest.as_bytes().get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
                base += i + skip;
                continue;
            }
            let after = &rest[i + 1..];
            let Some(semi) = after.find(';') else {
                return Err(self.syntax(
                    base + i,
                    "an '&' in text that starts no reference (write &amp;)".into(),
                ));
            };
            let name = &after[..semi];
            let ch = resolve_reference(name).ok_or_else(|| XmlError::Entity {
                name: name.to_string(),
                offset: self.offset(base + i),
            })?;
            out.push(ch);
            rest = &after[semi + 1..];
            base += i + 1 + semi + 1;
        }
        out.push_str(rest);
        Ok(Some(Ev::Text(Cow::Owned(out))))
    }

    /// A processing instruction at `at` (`<?target …?>`), or the XML declaration when it
    /// opens the document: checked, and skipped.
    fn processing_instruction(&mut self, at: usize) -> Result<(), XmlError> {
        let text = self.text;
        let bytes = text.as_bytes();
        let target_end = name_end(text, at + 2);
        let target = &text[at + 2..target_end];
        if target.is_empty() {
            return Err(self.syntax(at, "'<?' is not followed by a target name".into()));
        }
        let Some(close) = memchr::memmem::find(&bytes[target_end..], b"?>").map(|n| target_end + n)
        else {
            return Err(self.syntax(
                at,
                format!("the processing instruction <?{target} is not closed with '?>'"),
            ));
        };
        if close != target_end && !bytes.get(target_end).is_some_and(|&b| is(b, SPACE)) {
            return Err(self.syntax(
                at,
                format!("the processing instruction <?{target} needs a space after its name"),
            ));
        }
        if target.eq_ignore_ascii_case("xml") {
            if target != "xml" || at != 0 {
                return Err(self.syntax(
                    at,
                    "an XML declaration ('<?xml …?>') may only open the document, and the \
                     name 'xml' is reserved for it"
                        .into(),
                ));
            }
            if let Err(what) = check_declaration(&text[target_end..close]) {
                return Err(self.syntax(at, format!("the XML declaration is malformed: {what}")));
            }
        }
        self.pos = close + 2;
        Ok(())
    }

    fn comment(&mut self, at: usize) -> Result<Ev<'a>, XmlError> {
        let bytes = self.text.as_bytes();
        let from = at + 4;
        let Some(n) = memchr::memmem::find(&bytes[from..], b"--") else {
            return Err(self.syntax(at, "a comment is not closed with '-->'".into()));
        };
        if bytes.get(from + n + 2) != Some(&b'>') {
            return Err(self.syntax(
                from + n,
                "'--' inside a comment (XML allows it only in the closing '-->')".into(),
            ));
        }
        self.pos = from + n + 3;
        self.after_text = false;
        Ok(Ev::Comment(self.text[from..from + n].to_owned()))
    }

    fn cdata(&mut self, at: usize) -> Result<Ev<'a>, XmlError> {
        if self.open.is_empty() {
            return Err(self.syntax(at, "a CDATA section outside the root element".into()));
        }
        let bytes = self.text.as_bytes();
        let from = at + 9;
        let Some(n) = memchr::memmem::find(&bytes[from..], b"]]>") else {
            return Err(self.syntax(at, "a CDATA section is not closed with ']]>'".into()));
        };
        self.pos = from + n + 3;
        self.after_text = true;
        let raw = &self.text[from..from + n];
        Ok(Ev::Text(if raw.contains('\r') {
            Cow::Owned(normalize_line_ends(raw))
        } else {
            Cow::Borrowed(raw)
        }))
    }

    fn check_name_len(&self, len: usize, at: usize) -> Result<(), XmlError> {
        if len > self.limits.max_name_len {
            return Err(XmlError::NameTooLong {
                limit: self.limits.max_name_len,
                offset: self.offset(at),
            });
        }
        Ok(())
    }

    fn end_tag(&mut self, at: usize) -> Result<Ev<'a>, XmlError> {
        let bytes = self.text.as_bytes();
        // The usual case: exactly the name of the open element, then '>'.
        if let Some(&(open, _)) = self.open.last() {
            let after = at + 2 + open.len();
            if bytes.get(at + 2..after) == Some(open.as_bytes()) && bytes.get(after) == Some(&b'>')
            {
                self.open.pop();
                self.pos = after + 1;
                self.after_text = false;
                return Ok(Ev::End);
            }
        }
        self.end_tag_slow(at)
    }

    /// An end tag with space before its `>`, or one that is wrong.
    #[cold]
    #[inline(never)]
    fn end_tag_slow(&mut self, at: usize) -> Result<Ev<'a>, XmlError> {
        let bytes = self.text.as_bytes();
        let name_end = name_end(self.text, at + 2);
        let name = &self.text[at + 2..name_end];
        if name.is_empty() {
            return Err(self.syntax(at, "'</' is not followed by an element name".into()));
        }
        let close = skip_space(bytes, name_end);
        match bytes.get(close) {
            Some(b'>') => {}
            Some(_) => {
                return Err(self.syntax(at, format!("the end tag </{name}> is malformed")));
            }
            None => {
                return Err(self.syntax(
                    at,
                    format!("the document ends inside the end tag </{name}>: it looks truncated"),
                ));
            }
        }
        match self.open.last() {
            Some(&(open, _)) if open == name => {
                self.open.pop();
            }
            Some(&(open, _)) => {
                return Err(self.syntax(at, format!("</{name}> does not close <{open}>")));
            }
            // At the top level: the callers say what is wrong with that.
            None => {}
        }
        self.pos = close + 1;
        self.after_text = false;
        Ok(Ev::End)
    }

    fn start_tag(&mut self, at: usize) -> Result<Ev<'a>, XmlError> {
        let text = self.text;
        let bytes = text.as_bytes();
        let name_end = name_end(self.text, at + 1);
        if name_end == at + 1 {
            return Err(self.syntax(
                at,
                "a '<' that starts no element, comment or section (write &lt; in text)".into(),
            ));
        }
        let name = &text[at + 1..name_end];
        self.check_name_len(name.len(), at)?;
        if self.open.len() >= self.limits.max_depth {
            return Err(XmlError::TooDeep {
                limit: self.limits.max_depth,
                offset: self.offset(at),
            });
        }
        self.attrs.clear();
        self.attrs_of = name_end;
        let mut i = name_end;
        let empty = loop {
            let j = skip_space(bytes, i);
            match bytes.get(j) {
                Some(b'>') => {
                    i = j;
                    break false;
                }
                Some(b'/') if bytes.get(j + 1) == Some(&b'>') => {
                    i = j;
                    break true;
                }
                Some(&b) if j > i && (is(b, NAME_START) || b >= 0x80) => {
                    i = self.attribute(at, j)?
                }
                _ => return Err(self.bad_start_tag(at, i, j)),
            }
        };
        self.pos = if empty { i + 2 } else { i + 1 };
        if let Some(parent) = self.open.last_mut() {
            parent.1 = true;
        }
        if !empty {
            self.open.push((name, false));
        }
        self.after_text = false;
        let tag = StartTag {
            name,
            attrs: &text[name_end..i],
            at: name_end,
        };
        Ok(Ev::Start(tag, empty, self.offset(at)))
    }

    /// What is wrong with the start tag at `tag`, where an attribute or its end was
    /// expected at `j` (after whitespace from `i`).
    #[cold]
    #[inline(never)]
    fn bad_start_tag(&self, tag: usize, i: usize, j: usize) -> XmlError {
        let bytes = self.text.as_bytes();
        let name = &self.text[tag + 1..name_end(self.text, tag + 1)];
        let message = match bytes.get(j) {
            None => format!("the document ends inside the start tag <{name}>: it looks truncated"),
            Some(_) if j == i && name_end(self.text, j) > j => {
                format!("attributes of <{name}> must be separated by whitespace")
            }
            Some(_) => format!("a malformed attribute name in <{name}>"),
        };
        self.syntax(tag, message)
    }

    /// One attribute whose name starts at `i` in the start tag at `tag`; returns where it
    /// ends (its closing quote).
    #[inline]
    fn attribute(&mut self, tag: usize, i: usize) -> Result<usize, XmlError> {
        let text = self.text;
        let bytes = text.as_bytes();
        let key_end = name_end(self.text, i);
        if key_end == i {
            return Err(self.bad_start_tag(tag, i, i));
        }
        // The usual case: `name="value"`; anything else goes the slow way.
        let (value_start, quote) = match (bytes.get(key_end), bytes.get(key_end + 1)) {
            (Some(b'='), Some(&q @ (b'"' | b'\''))) => (key_end + 2, q),
            _ => self.attribute_eq(tag, i, key_end)?,
        };
        let mut k = plain_value_end(bytes, value_start);
        let mut raw = false;
        if bytes.get(k) != Some(&quote) {
            (k, raw) = self.attribute_value(tag, i, key_end, k, quote)?;
        }
        let key = &text[i..key_end];
        if self.attrs.len() >= self.limits.max_attributes {
            return Err(XmlError::TooManyAttributes {
                limit: self.limits.max_attributes,
                offset: self.offset(tag),
            });
        }
        self.check_name_len(key.len(), tag)?;
        if self.attrs.iter().any(|a| a.name == key) {
            return Err(self.attribute_error(tag, i, key_end, "appears twice on"));
        }
        self.attrs.push(AttrSpan {
            name: key,
            value: &text[value_start..k],
            raw,
        });
        Ok(k + 1)
    }

    /// An attribute with space around its `=`, or a malformed one: where its value starts,
    /// and its quote.
    #[cold]
    #[inline(never)]
    fn attribute_eq(&self, tag: usize, i: usize, key_end: usize) -> Result<(usize, u8), XmlError> {
        let bytes = self.text.as_bytes();
        let j = skip_space(bytes, key_end);
        if bytes.get(j) != Some(&b'=') {
            return Err(self.attribute_error(tag, i, key_end, "has no '=\"value\"' on"));
        }
        let j = skip_space(bytes, j + 1);
        match bytes.get(j) {
            Some(&q @ (b'"' | b'\'')) => Ok((j + 1, q)),
            _ => Err(self.attribute_error(tag, i, key_end, "is not quoted on")),
        }
    }

    /// The rest of a value whose plain run stopped at `k` before its closing quote: it
    /// holds the other quote, references or whitespace to normalise, or it is malformed.
    /// Returns the closing quote's position and whether the value must be unescaped.
    #[cold]
    #[inline(never)]
    fn attribute_value(
        &self,
        tag: usize,
        i: usize,
        key_end: usize,
        mut k: usize,
        quote: u8,
    ) -> Result<(usize, bool), XmlError> {
        let bytes = self.text.as_bytes();
        let mut raw = false;
        loop {
            match bytes.get(k) {
                Some(&b) if b == quote => return Ok((k, raw)),
                Some(b'<') => {
                    return Err(self.attribute_error(tag, i, key_end, "holds '<' (write &lt;) on"));
                }
                Some(b'"' | b'\'') => {}
                Some(b'&') => {
                    raw = true;
                    k = self.reference_end(tag, k)?;
                }
                Some(&b) if is(b, VALUE_STOP) => raw = true,
                Some(_) => {}
                None => return Err(self.attribute_error(tag, i, key_end, "is not closed on")),
            }
            k += 1;
        }
    }

    /// Checks the reference at `amp` in the attribute value of the tag at `tag`: returns
    /// the position of its `;`.
    fn reference_end(&self, tag: usize, amp: usize) -> Result<usize, XmlError> {
        let bytes = self.text.as_bytes();
        let after = bytes.get(amp + 1..).unwrap_or_default();
        let Some(semi) = memchr::memchr3(b';', b'"', b'\'', after).filter(|&n| after[n] == b';')
        else {
            return Err(self.syntax(
                tag,
                "an '&' in an attribute value that starts no reference (write &amp;)".into(),
            ));
        };
        let name = &self.text[amp + 1..amp + 1 + semi];
        match resolve_reference(name) {
            Some(_) => Ok(amp + 1 + semi),
            None => Err(XmlError::Entity {
                name: name.to_string(),
                offset: self.offset(tag),
            }),
        }
    }

    #[cold]
    #[inline(never)]
    fn attribute_error(&self, tag: usize, i: usize, key_end: usize, what: &str) -> XmlError {
        let element = &self.text[tag + 1..name_end(self.text, tag + 1)];
        let key = &self.text[i..key_end];
        self.syntax(tag, format!("attribute '{key}' {what} <{element}>"))
    }

    /// Calls `f(name, value)` for each attribute of a start tag, unescaped and normalised,
    /// in document order. The tag's attributes were scanned and checked against the limits
    /// when it was read.
    pub fn for_each_attribute(
        &mut self,
        start: &StartTag<'_>,
        offset: u64,
        mut f: impl FnMut(&str, String),
    ) -> Result<(), XmlError> {
        if self.attrs_of != start.at {
            self.rescan(start)?;
        }
        for a in &self.attrs {
            let value = if a.raw {
                unescape_attr(a.value, offset)?
            } else {
                a.value.to_owned()
            };
            f(a.name, value);
        }
        Ok(())
    }

    /// How many attributes a start tag has.
    pub fn attribute_count(&mut self, start: &StartTag<'_>) -> Result<usize, XmlError> {
        if self.attrs_of != start.at {
            self.rescan(start)?;
        }
        Ok(self.attrs.len())
    }

    /// Scans the attributes of a start tag that is not the last one read (a caller kept a
    /// tag while reading on). The tag was read from this document: only its place is used.
    fn rescan(&mut self, start: &StartTag<'_>) -> Result<(), XmlError> {
        let end = start.at + start.attrs.len();
        let tag = start.at - start.name.len() - 1;
        self.attrs.clear();
        self.attrs_of = start.at;
        let bytes = self.text.as_bytes();
        let mut i = start.at;
        loop {
            let j = skip_space(bytes, i);
            if j >= end {
                return Ok(());
            }
            match bytes.get(j) {
                Some(&b) if j > i && (is(b, NAME_START) || b >= 0x80) => {
                    i = self.attribute(tag, j)?
                }
                _ => return Err(self.bad_start_tag(tag, i, j)),
            }
        }
    }
}

/// Checks the body of an XML declaration (XML 1.0 §2.8): `version`, then optionally
/// `encoding` and `standalone`, in that order, each `name = "value"` after whitespace.
fn check_declaration(body: &str) -> Result<(), String> {
    let mut rest = body;
    let mut pseudo = |name: &str| -> Option<&str> {
        let after_space = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        if after_space.len() == rest.len() {
            return None;
        }
        let after_eq = after_space
            .strip_prefix(name)?
            .trim_start_matches([' ', '\t', '\r', '\n'])
            .strip_prefix('=')?
            .trim_start_matches([' ', '\t', '\r', '\n']);
        let quote = after_eq.chars().next().filter(|&q| q == '"' || q == '\'')?;
        let value_and_rest = &after_eq[1..];
        let end = value_and_rest.find(quote)?;
        rest = &value_and_rest[end + 1..];
        Some(&value_and_rest[..end])
    };
    let version = pseudo("version").ok_or("it has no version=\"1.0\"")?;
    // XML says `1.` and digits; like libxml2, a bare `1.` is taken for 1.0.
    let ok_version = version
        .strip_prefix("1.")
        .is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit()));
    if !ok_version {
        return Err(format!("version '{version}' is not 1.x"));
    }
    if let Some(encoding) = pseudo("encoding") {
        let ok = encoding
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && encoding
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(format!("'{encoding}' is not an encoding name"));
        }
    }
    if let Some(standalone) = pseudo("standalone")
        && !matches!(standalone, "yes" | "no")
    {
        return Err(format!("standalone='{standalone}' is neither yes nor no"));
    }
    if !rest.trim_start_matches([' ', '\t', '\r', '\n']).is_empty() {
        return Err(format!("'{}' is not part of it", rest.trim()));
    }
    Ok(())
}

/// CR LF and lone CR become LF (XML 1.0 §2.11).
fn normalize_line_ends(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\r') {
        out.push_str(&rest[..i]);
        out.push('\n');
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('\n') {
            rest = r;
        }
    }
    out.push_str(rest);
    out
}

/// The character a reference names: one of the five XML predefines, or a numeric
/// reference to a character XML allows (§2.2: not NUL, no other control character but
/// tab, LF and CR, not U+FFFE or U+FFFF).
pub(crate) fn resolve_reference(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            // Digits only: `from_str_radix` would take a sign too.
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix('x') {
                Some(hex) if hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    u32::from_str_radix(hex, 16).ok()?
                }
                None if num.bytes().all(|b| b.is_ascii_digit()) => num.parse().ok()?,
                _ => return None,
            };
            char::from_u32(code).filter(|&c| {
                (c >= ' ' || matches!(c, '\t' | '\n' | '\r'))
                    && !matches!(c, '\u{fffe}' | '\u{ffff}')
            })
        }
    }
}

/// Unescapes an attribute value and applies XML's attribute-value normalisation (tab, CR
/// and LF become spaces), refusing any entity that is not predefined.
pub(crate) fn unescape_attr(raw: &str, offset: u64) -> Result<String, XmlError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find(['&', '\t', '\r', '\n']) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        if c == b'&' {
            let after = &rest[i + 1..];
            let end = after.find(';').ok_or_else(|| XmlError::Syntax {
                message: "an '&' in an attribute value that starts no reference (write &amp;)"
                    .into(),
                offset,
            })?;
            let name = &after[..end];
            let ch = resolve_reference(name).ok_or_else(|| XmlError::Entity {
                name: name.to_string(),
                offset,
            })?;
            out.push(ch);
            rest = &after[end + 1..];
        } else {
            // "\r\n" normalises to a single space, like a lone CR or LF.
            out.push(' ');
            rest = if c == b'\r' && rest.as_bytes().get(i + 1) == Some(&b'\n') {
                &rest[i + 2..]
            } else {
                &rest[i + 1..]
            };
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_characters_are_found_in_any_block() {
        let mut doc = vec![b'a'; 200];
        assert_eq!(find_forbidden(&doc), None);
        doc[3] = b'\t';
        doc[70] = b'\n';
        doc[130] = b'\r';
        // U+FFFD, the last character before the two non-characters, is allowed.
        doc[100..103].copy_from_slice("\u{fffd}".as_bytes());
        assert_eq!(find_forbidden(&doc), None);
        for at in [0, 63, 64, 127, 190, 199] {
            let mut bad = doc.clone();
            bad[at] = 0x1f;
            assert_eq!(find_forbidden(&bad), Some(at), "at {at}");
        }
        for at in [0, 62, 63, 150, 197] {
            for nonchar in ["\u{fffe}", "\u{ffff}"] {
                let mut bad = doc.clone();
                bad[at..at + 3].copy_from_slice(nonchar.as_bytes());
                assert_eq!(find_forbidden(&bad), Some(at), "{nonchar:?} at {at}");
            }
        }
    }

    #[test]
    fn plain_values_stop_where_the_slow_path_must_look() {
        // Every byte value at every place of a word and a bit: the word-at-a-time test
        // stops at every byte the plain run must stop at, and at nothing but those and
        // the three it adds.
        let must = |b: u8| is(b, VALUE_STOP);
        let may = |b: u8| must(b) || matches!(b, b'#' | b'$' | b'%');
        for b in (0x09..=0xFFu8).filter(|&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r')) {
            for at in 0..12 {
                let mut doc = vec![b'a'; 12];
                doc[at] = b;
                let end = plain_value_end(&doc, 0);
                if must(b) {
                    assert_eq!(end, at, "byte {b:#x} at {at}");
                } else if may(b) {
                    assert!(end == at || end == 12, "byte {b:#x} at {at}: {end}");
                } else {
                    assert_eq!(end, 12, "byte {b:#x} at {at}");
                }
            }
        }
        let value = b"2.16.840.1.113883.2.1.3.2.4.15\" x";
        assert_eq!(plain_value_end(value, 0), 30);
        assert_eq!(plain_value_end(b"a&amp;b\"", 0), 1);
        assert_eq!(plain_value_end(b"\"", 0), 0);
    }

    #[test]
    fn whitespace_runs_end_at_the_first_other_byte() {
        for text in [
            "",
            " ",
            "x",
            "\n    <a>",
            "\r\n\t \t<",
            "                  é",
            "  \u{a0}",
            "\n\n\n\n\n\n\n\n\n!",
        ] {
            let expected = text.len() - text.trim_start_matches([' ', '\t', '\r', '\n']).len();
            for from in 0..=expected {
                assert_eq!(
                    skip_space(text.as_bytes(), from),
                    expected,
                    "{text:?} from {from}"
                );
            }
        }
        // Every byte value, at every place in a word.
        for b in 0x21..=0xFFu8 {
            for at in 0..12 {
                let mut doc = vec![b' '; 12];
                doc[at] = b;
                assert_eq!(skip_space(&doc, 0), at, "byte {b:#x} at {at}");
            }
        }
    }

    #[test]
    fn names_follow_xml_for_non_ascii_characters_too() {
        let end = |s: &str| name_end(s, 0);
        assert_eq!(end("café>"), "café".len());
        assert_eq!(end("名前 x"), "名前".len());
        assert_eq!(
            end("a\u{B7}b/"),
            "a\u{B7}b".len(),
            "a middle dot may continue a name"
        );
        assert_eq!(end("\u{B7}a"), 0, "but not start one");
        assert_eq!(
            end("a\u{D7}b"),
            1,
            "a multiplication sign is no name character"
        );
        assert_eq!(end("1a"), 0);
    }

    #[test]
    fn declarations_are_checked() {
        for ok in [
            " version=\"1.0\"",
            " version='1.0' encoding='UTF-8'",
            " version = \"1.0\" encoding=\"utf-8\" standalone=\"no\" ",
            " version=\"1.1\"",
        ] {
            assert_eq!(check_declaration(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            " encoding=\"UTF-8\"",
            " version=1.0",
            " version=\"2.0\"",
            " version=\"1\"",
            " version=\"1.0a\"",
            " version=\"1.0\"encoding=\"UTF-8\"",
            " version=\"1.0\" encoding=\"8BIT\"",
            " version=\"1.0\" standalone=\"maybe\"",
            " version=\"1.0\" standalone=\"no\" encoding=\"UTF-8\"",
            " version=\"1.0\" junk",
        ] {
            assert!(check_declaration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_characters_xml_allows_can_be_referenced() {
        assert_eq!(resolve_reference("#233"), Some('é'));
        assert_eq!(resolve_reference("#x9"), Some('\t'));
        for bad in [
            "#0", "#1", "#x1F", "#xFFFE", "#xFFFF", "#xD800", "#x110000", "nbsp", "#", "#x",
        ] {
            assert_eq!(resolve_reference(bad), None, "{bad}");
        }
    }
}
