//! Is this a valid GP2GP message? The schema, and the rules the schema cannot express.
//!
//! [`validate`] takes the bytes of one HL7 V3 document and returns a [`Report`]: the
//! interaction it is, every [`Finding`] (each with a line and column, a stable rule id, a
//! severity and a sentence saying what is wrong and what to do), and whether it is valid.
//! It never panics and never fails: whatever the input, the answer is a report.
//!
//! The checks, in order:
//!
//! 1. **XML** (rule `xml`): the hardened reader ([`crate::xml::parse_with`]) reads the
//!    document within its [`Limits`]. A DOCTYPE, an entity, invalid UTF-8, a truncated
//!    document is a finding, and nothing else runs.
//! 2. **Schema** (rule `schema`): when [`Schemas`] are given, the document is validated
//!    against its interaction's HL7 V3 MIM schema by libxml2. `RCMR_IN010000UK05` (the
//!    request) has no published schema; its required elements are checked structurally
//!    instead (rule `required`), with or without schemas.
//! 3. **Rules** over the tree: identifiers (`nhs-number`, `ods-code`, `asid`), ids unique
//!    within an extract (`unique-id`), references that resolve (`agent-ref`,
//!    `statement-ref`), external documents (`external-document`), timestamps
//!    (`timestamp`), and template leftovers (`placeholder`).
//!
//! Positions are 1-based lines and columns (columns count characters) in the bytes that
//! were given. A caller that cut the document out of something bigger (an MHS JSON
//! `payload`) should say that the lines are lines of that document.

mod rules;
mod schema;

use std::fmt;

pub use schema::{SchemaError, Schemas};

use crate::message::Interaction;
use crate::xml::{self, Limits, LineIndex};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing; the message is still valid (unless [`Options::strict`]).
    Warning,
    /// The message is invalid.
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which check a finding comes from. The ids ([`Rule::as_str`]) are stable: tools may
/// match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// `xml`: not well-formed, or refused by the hardened reader (DOCTYPE, entities,
    /// limits, UTF-8, truncation).
    Xml,
    /// `interaction`: the root element is not a GP2GP interaction, or `interactionId`
    /// disagrees with it.
    Interaction,
    /// `schema`: the HL7 V3 MIM schema says no.
    Schema,
    /// `required`: a required element is missing (the request, which has no schema).
    Required,
    /// `nhs-number`: an NHS number that is malformed, has a wrong check digit, or is a
    /// test-harness placeholder.
    NhsNumber,
    /// `ods-code`: an ODS organisation code that is malformed.
    OdsCode,
    /// `asid`: an ASID that is empty or not digits.
    Asid,
    /// `unique-id`: two acts of one extract share an id.
    UniqueId,
    /// `agent-ref`: an `agentRef` that names no agent of the agent directory.
    AgentRef,
    /// `statement-ref`: a reference to a statement, composition or supply that is not in
    /// the extract.
    StatementRef,
    /// `external-document`: an attachment reference that is malformed, or names a
    /// document the message does not carry.
    ExternalDocument,
    /// `timestamp`: an HL7 timestamp that is not well formed.
    Timestamp,
    /// `placeholder`: `{{…}}` left from a template.
    Placeholder,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Xml => "xml",
            Rule::Interaction => "interaction",
            Rule::Schema => "schema",
            Rule::Required => "required",
            Rule::NhsNumber => "nhs-number",
            Rule::OdsCode => "ods-code",
            Rule::Asid => "asid",
            Rule::UniqueId => "unique-id",
            Rule::AgentRef => "agent-ref",
            Rule::StatementRef => "statement-ref",
            Rule::ExternalDocument => "external-document",
            Rule::Timestamp => "timestamp",
            Rule::Placeholder => "placeholder",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing found wrong (or worth a warning) in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// 1-based line; 0 when the finding concerns the whole document (e.g. it is too large).
    pub line: usize,
    /// 1-based column in characters; 0 with `line` 0.
    pub column: usize,
    pub rule: Rule,
    pub severity: Severity,
    /// What is wrong and what to do about it, as a sentence.
    pub message: String,
}

impl fmt::Display for Finding {
    /// `LINE:COL severity rule: message`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} {} {}: {}",
            self.line, self.column, self.severity, self.rule, self.message
        )
    }
}

/// A document attached to a message, as far as the caller knows it: from an MHS JSON
/// `attachments` / `external_attachments` entry or an ebXML manifest reference.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attachment {
    /// The document id (`document_id`, the manifest's `eb:id`), where known.
    pub id: Option<String>,
    /// `Filename="…"` of the description, where known.
    pub filename: Option<String>,
    /// `ContentType=…` of the description (or the MHS `content_type`).
    pub content_type: Option<String>,
    /// `Length=…` of the description, in bytes.
    pub length: Option<u64>,
}

impl Attachment {
    /// Reads a GP2GP manifest description, `Filename="…" ContentType=… Compressed=No
    /// LargeAttachment=No OriginalBase64=No [Length=…] [DomainData=…]`, leniently: what
    /// is missing or unreadable stays `None`.
    pub fn from_description(id: Option<&str>, description: &str) -> Attachment {
        Attachment {
            id: id.map(str::to_owned).filter(|s| !s.is_empty()),
            filename: description_field(description, "Filename"),
            content_type: description_field(description, "ContentType"),
            length: description_field(description, "Length").and_then(|l| l.parse().ok()),
        }
    }
}

/// The value of `Key=value` or `Key="value"` in a manifest description.
pub fn description_field(description: &str, key: &str) -> Option<String> {
    let mut rest = description;
    while let Some(i) = rest.find(key) {
        let before_ok = i == 0
            || rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_whitespace() || c == '"');
        let after = &rest[i + key.len()..];
        if before_ok && let Some(v) = after.strip_prefix('=') {
            let value = match v.strip_prefix('"') {
                Some(q) => q.split('"').next().unwrap_or(""),
                None => v.split_whitespace().next().unwrap_or(""),
            };
            return (!value.is_empty()).then(|| value.to_string());
        }
        rest = after;
    }
    None
}

/// How to validate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Warnings count as errors for [`Report::valid`].
    pub strict: bool,
    /// The documents the message carries, when the caller knows them: every external
    /// document the extract references must be among them. `None` skips that check.
    pub attachments: Option<Vec<Attachment>>,
    /// Limits for the reader.
    pub limits: Limits,
    /// At most this many findings are kept (the rest are counted in
    /// [`Report::findings_left_off`]), so that a badly broken document gives a short,
    /// readable report.
    pub max_findings: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            strict: false,
            attachments: None,
            limits: Limits::default(),
            max_findings: 1000,
        }
    }
}

/// The outcome of [`validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The interaction, from the root element, when it is one of GP2GP's.
    pub interaction: Option<Interaction>,
    /// Findings in document order (XML, then schema, then rule findings at equal
    /// positions).
    pub findings: Vec<Finding>,
    /// Findings found beyond [`Options::max_findings`], not kept.
    pub findings_left_off: usize,
    /// No error findings (and, when strict, no warnings either).
    pub valid: bool,
}

impl Report {
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
    }
}

/// Collects findings with positions.
pub(crate) struct Sink<'a> {
    index: LineIndex<'a>,
    text: &'a [u8],
    findings: Vec<Finding>,
}

impl<'a> Sink<'a> {
    fn new(text: &'a [u8]) -> Self {
        Sink {
            index: LineIndex::new(text),
            text,
            findings: Vec::new(),
        }
    }

    pub(crate) fn line_col(&self, offset: u64) -> (usize, usize) {
        self.index.line_col(offset)
    }

    /// A finding at a byte offset (`None`: the whole document).
    pub(crate) fn at(
        &mut self,
        offset: Option<u64>,
        rule: Rule,
        severity: Severity,
        message: String,
    ) {
        let (line, column) = match offset {
            Some(o) => self.index.line_col(o),
            None => (0, 0),
        };
        self.push(line, column, rule, severity, message);
    }

    pub(crate) fn push(
        &mut self,
        line: usize,
        column: usize,
        rule: Rule,
        severity: Severity,
        message: String,
    ) {
        self.findings.push(Finding {
            line,
            column,
            rule,
            severity,
            message,
        });
    }

    /// The offset of `needle` at or after `from`, where it is within `window` bytes (to
    /// point at an attribute inside a start tag rather than at the tag's `<`).
    pub(crate) fn find_near(&self, from: u64, needle: &str, window: usize) -> Option<u64> {
        let start = usize::try_from(from).ok()?;
        let end = start.saturating_add(window).min(self.text.len());
        let hay = self.text.get(start..end)?;
        let n = needle.as_bytes();
        if n.is_empty() || n.len() > hay.len() {
            return None;
        }
        hay.windows(n.len())
            .position(|w| w == n)
            .map(|i| from + i as u64)
    }
}

/// Validates one HL7 V3 document. See the [module documentation](self) for what is
/// checked. Never panics; memory is bounded by `options.limits` (plus libxml2's own
/// document copy when schemas are given).
pub fn validate(input: &[u8], schemas: Option<&Schemas>, options: &Options) -> Report {
    let mut sink = Sink::new(input);
    let root = match xml::parse_with(input, &options.limits) {
        Ok(root) => root,
        Err(e) => {
            sink.at(e.offset(), Rule::Xml, Severity::Error, xml_message(&e));
            return finish(None, sink, options);
        }
    };
    let interaction = Interaction::from_id(root.local_name());
    match interaction {
        None => sink.at(
            Some(root.pos.0),
            Rule::Interaction,
            Severity::Error,
            format!(
                "the root element <{}> is not a GP2GP interaction: expected RCMR_IN010000UK05, RCMR_IN030000UK06, RCMR_IN030000UK07, MCCI_IN010000UK13 or COPC_IN000001UK01",
                root.name
            ),
        ),
        Some(i) => {
            if let Some(ii) = root.child("interactionId")
                && let Some(ext) = ii.attr("extension")
                && ext != i.id()
                && !ext.contains("{{")
            {
                sink.at(
                    Some(ii.pos.0),
                    Rule::Interaction,
                    Severity::Error,
                    format!(
                        "interactionId says '{ext}' but the root element is <{}>: make them the same interaction",
                        root.name
                    ),
                );
            }
            if let Some(s) = schemas
                && i.schema_file().is_some()
            {
                schema::check(s, i, input, &root, &mut sink);
            }
            if i == Interaction::EhrRequest {
                rules::check_request(&root, &mut sink);
            }
        }
    }
    rules::check(&root, options.attachments.as_deref(), &mut sink);
    finish(interaction, sink, options)
}

fn finish(interaction: Option<Interaction>, sink: Sink<'_>, options: &Options) -> Report {
    let mut findings = sink.findings;
    // Stable: at one position, XML and schema findings stay before rule findings.
    findings.sort_by_key(|f| (f.line, f.column));
    let valid = !findings.iter().any(|f| {
        f.severity == Severity::Error || (options.strict && f.severity == Severity::Warning)
    });
    let findings_left_off = findings.len().saturating_sub(options.max_findings);
    findings.truncate(options.max_findings);
    Report {
        interaction,
        findings,
        findings_left_off,
        valid,
    }
}

fn xml_message(e: &xml::XmlError) -> String {
    let what = e.to_string();
    let fix = match e {
        xml::XmlError::Doctype { .. } | xml::XmlError::Entity { .. } => {
            "remove it: GP2GP messages are plain XML"
        }
        xml::XmlError::Truncated { .. } => "the document is incomplete: send or save it whole",
        xml::XmlError::Utf8 { .. } => "save the document as UTF-8",
        xml::XmlError::TooLarge { .. }
        | xml::XmlError::TooDeep { .. }
        | xml::XmlError::TooManyAttributes { .. }
        | xml::XmlError::NameTooLong { .. } => {
            "no real GP2GP message comes near this limit: check the document is what you meant"
        }
        _ => "fix the XML so that it is well-formed",
    };
    format!("{what}; {fix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_fields_are_read_leniently() {
        let a = Attachment::from_description(
            Some("X"),
            "Filename=\"A_b c.txt\" ContentType=text/plain Compressed=No LargeAttachment=No OriginalBase64=No Length=36504",
        );
        assert_eq!(a.filename.as_deref(), Some("A_b c.txt"));
        assert_eq!(a.content_type.as_deref(), Some("text/plain"));
        assert_eq!(a.length, Some(36504));
        assert_eq!(a.id.as_deref(), Some("X"));
        let none = Attachment::from_description(None, "garbage Length=abc");
        assert_eq!(none, Attachment::default());
    }

    #[test]
    fn never_panics_on_odd_input() {
        for input in [
            &b""[..],
            b"<",
            b"\xff\xfe",
            b"<a/>",
            b"<RCMR_IN010000UK05/>",
            b"<MCCI_IN010000UK13><interactionId extension=\"X\"/></MCCI_IN010000UK13>",
        ] {
            let r = validate(input, None, &Options::default());
            assert!(!r.valid, "{:?}", String::from_utf8_lossy(input));
        }
    }
}
