//! The rules the schema cannot express, checked over the tree so that every finding has a
//! position.
//!
//! Severities are chosen against what real, accepted traffic contains (the NHS's own
//! conformance corpus):
//!
//! - **NHS numbers**: not ten digits is an error; ten digits with a wrong check digit is a
//!   warning, because NHS test harnesses send `1234567890`; known test-harness values
//!   (`1234567890`, one digit repeated) get their own warning.
//! - **ODS codes**: empty or not 3–10 letters and digits is an error; lower-case letters
//!   only a warning (ODS codes are upper case, but the intent is clear).
//! - **ASIDs**: empty is an error; anything but 1–18 digits is a warning, because the
//!   NHS's own extracts carry `GP2GPTEST` as an ASID (Spine itself only issues 12-digit
//!   ASIDs, so such a message will not route on a real Spine).
//! - **References** that do not resolve are errors, except `priorStatementRef` and
//!   `priorCompositionRef` (warnings): a replacement may point at a version sent in an
//!   earlier extract.

use std::collections::{HashMap, HashSet};

use nhsid::{ASID_OID, NHS_NUMBER_OID, NhsNumberCheck, ODS_OID, ODS_SDS_OID, OdsCode};

use super::{Attachment, Rule, Severity, Sink};
use crate::datatypes::check_timestamp;
use crate::xml::{Element, Node};

/// How far past an element's `<` to look for an attribute or text it holds, to point at it
/// exactly.
const NEAR: usize = 16 * 1024;

/// Elements whose `@value` (and whose `low`/`high`/`center` children's) is an HL7
/// timestamp.
const TIME_ELEMENTS: &[&str] = &[
    "creationTime",
    "availabilityTime",
    "effectiveTime",
    "time",
    "expirationTime",
    "useablePeriod",
    "validTime",
];

const STATEMENTS: &[&str] = &[
    "CompoundStatement",
    "EhrEmpty",
    "LinkSet",
    "MedicationStatement",
    "NarrativeStatement",
    "ObservationStatement",
    "PlanStatement",
    "RegistrationStatement",
    "RequestStatement",
];

const SUPPLIES: &[&str] = &[
    "ehrSupplyAuthorise",
    "ehrSupplyPrescribe",
    "ehrSupplyDiscontinue",
    "ehrSupplyDispense",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Statement,
    Composition,
    Supply,
}

impl Act {
    fn of(local: &str) -> Option<Act> {
        if STATEMENTS.contains(&local) {
            Some(Act::Statement)
        } else if local == "ehrComposition" {
            Some(Act::Composition)
        } else if SUPPLIES.contains(&local) {
            Some(Act::Supply)
        } else {
            None
        }
    }
}

/// A reference found in the tree: what kind, to which id, where.
struct Ref {
    element: &'static str,
    key: String,
    shown: String,
    offset: u64,
}

#[derive(Default)]
struct Collected {
    /// Act ids in document order: (key, shown, element name, kind, offset).
    acts: Vec<(String, String, String, Act, u64)>,
    agents: HashSet<String>,
    refs: Vec<Ref>,
}

/// An II as a comparison key (root and extension, upper case: UUIDs compare without case)
/// and as shown to a person.
fn ii_key(e: &Element) -> Option<(String, String)> {
    let root = e.attr("root").filter(|r| !r.is_empty())?;
    let shown = match e.attr("extension") {
        Some(ext) => format!("{root} / {ext}"),
        None => root.to_string(),
    };
    let key = shown.to_ascii_uppercase();
    Some((key, shown))
}

pub(super) fn check(root: &Element, attachments: Option<&[Attachment]>, sink: &mut Sink<'_>) {
    let mut c = Collected::default();
    // An explicit stack of (element, parent): trees may be deep.
    let mut stack: Vec<(&Element, Option<&Element>)> = vec![(root, None)];
    while let Some((e, parent)) = stack.pop() {
        visit(e, parent, attachments, sink, &mut c);
        for child in e.children.iter().rev() {
            if let Node::Element(ch) = child {
                stack.push((ch, Some(e)));
            }
        }
    }
    resolve(&c, sink);
}

fn visit<'t>(
    e: &'t Element,
    parent: Option<&'t Element>,
    attachments: Option<&[Attachment]>,
    sink: &mut Sink<'_>,
    c: &mut Collected,
) {
    placeholders(e, sink);
    let local = e.local_name();
    let parent_local = parent.map(Element::local_name).unwrap_or("");

    if TIME_ELEMENTS.contains(&local)
        || (matches!(local, "low" | "high" | "center") && TIME_ELEMENTS.contains(&parent_local))
    {
        timestamp(e, sink);
    }

    if local == "id" {
        identifier(e, sink);
        if let Some((key, shown)) = ii_key(e) {
            if let Some(kind) = Act::of(parent_local) {
                c.acts
                    .push((key, shown, parent_local.to_string(), kind, e.pos.0));
            } else if parent_local == "Agent" {
                c.agents.insert(key);
            } else if let Some(element) = ref_element(parent_local) {
                c.refs.push(Ref {
                    element,
                    key,
                    shown,
                    offset: e.pos.0,
                });
            }
        } else if let Some(element) = ref_element(parent_local)
            && e.attr("nullFlavor").is_none()
        {
            sink.at(
                Some(e.pos.0),
                rule_of(element),
                Severity::Error,
                format!("<{element}> has an id without a root: give it the root (and extension) of what it refers to"),
            );
        }
    }

    if local == "referredToExternalDocument" {
        external_document(e, attachments, sink);
    }
}

/// The reference elements checked, as static names.
fn ref_element(local: &str) -> Option<&'static str> {
    Some(match local {
        "agentRef" => "agentRef",
        "statementRef" => "statementRef",
        "namedStatementRef" => "namedStatementRef",
        "justifyingStatementRef" => "justifyingStatementRef",
        "priorStatementRef" => "priorStatementRef",
        "priorCompositionRef" => "priorCompositionRef",
        "priorMedicationRef" => "priorMedicationRef",
        _ => return None,
    })
}

fn rule_of(element: &str) -> Rule {
    if element == "agentRef" {
        Rule::AgentRef
    } else {
        Rule::StatementRef
    }
}

fn resolve(c: &Collected, sink: &mut Sink<'_>) {
    // Unique ids among statements, compositions and supplies.
    let mut first: HashMap<&str, (u64, &str)> = HashMap::new();
    let mut statement_ids: HashSet<&str> = HashSet::new();
    let mut composition_ids: HashSet<&str> = HashSet::new();
    let mut supply_ids: HashSet<&str> = HashSet::new();
    for (key, shown, element, kind, offset) in &c.acts {
        match kind {
            Act::Statement => statement_ids.insert(key),
            Act::Composition => composition_ids.insert(key),
            Act::Supply => supply_ids.insert(key),
        };
        match first.get(key.as_str()) {
            Some(&(at, first_element)) => {
                let (line, col) = sink.line_col(at);
                sink.at(
                    Some(*offset),
                    Rule::UniqueId,
                    Severity::Error,
                    format!(
                        "id {shown} of this <{element}> is already the id of the <{first_element}> at {line}:{col}: every statement, composition and supply needs its own id (a new UUID)"
                    ),
                );
            }
            None => {
                first.insert(key, (*offset, element));
            }
        }
    }
    for r in &c.refs {
        let key = r.key.as_str();
        let (found, severity, target) = match r.element {
            "agentRef" => (
                c.agents.contains(key),
                Severity::Error,
                "an Agent id in the agent directory (responsibleParty/agentDirectory)",
            ),
            "priorMedicationRef" => (
                supply_ids.contains(key),
                Severity::Error,
                "the id of a medication supply (ehrSupplyAuthorise, ehrSupplyPrescribe…) in this extract",
            ),
            "priorStatementRef" => (
                statement_ids.contains(key) || composition_ids.contains(key),
                Severity::Warning,
                "a statement id in this extract (it may name a version sent in an earlier extract)",
            ),
            "priorCompositionRef" => (
                composition_ids.contains(key),
                Severity::Warning,
                "an ehrComposition id in this extract (it may name a version sent in an earlier extract)",
            ),
            _ => (
                statement_ids.contains(key) || composition_ids.contains(key),
                Severity::Error,
                "the id of a statement in this extract",
            ),
        };
        if !found {
            sink.at(
                Some(r.offset),
                rule_of(r.element),
                severity,
                format!(
                    "<{}> refers to {} but nothing in the extract has that id; it must be {target}: add what it refers to or correct the id",
                    r.element, r.shown
                ),
            );
        }
    }
}

/// `{{name}}` in an attribute or text: a template that was not filled in.
fn placeholders(e: &Element, sink: &mut Sink<'_>) {
    let mut found: Vec<String> = Vec::new();
    let mut scan = |s: &str| {
        let mut rest = s;
        while let Some(i) = rest.find("{{") {
            let after = &rest[i + 2..];
            let Some(j) = after.find("}}") else { break };
            let whole = &rest[i..i + 2 + j + 2];
            if whole.len() <= 80 && !found.iter().any(|f| f == whole) {
                found.push(whole.to_string());
            }
            rest = &after[j + 2..];
        }
    };
    for a in &e.attrs {
        scan(&a.value);
    }
    for n in &e.children {
        if let Node::Text(t) = n {
            scan(t);
        }
    }
    for p in found {
        let at = sink.find_near(e.pos.0, &p, NEAR).unwrap_or(e.pos.0);
        sink.at(
            Some(at),
            Rule::Placeholder,
            Severity::Error,
            format!("this looks like a template: replace {p} with a real value"),
        );
    }
}

fn has_placeholder(s: &str) -> bool {
    s.contains("{{")
}

fn attr_offset(e: &Element, sink: &Sink<'_>, name: &str) -> u64 {
    sink.find_near(e.pos.0, &format!("{name}="), NEAR)
        .unwrap_or(e.pos.0)
}

fn timestamp(e: &Element, sink: &mut Sink<'_>) {
    let Some(value) = e.attr("value") else { return };
    if has_placeholder(value) {
        return;
    }
    if let Err(why) = check_timestamp(value) {
        let at = attr_offset(e, sink, "value");
        // Real NHS messages write milliseconds straight after the seconds
        // (`20131025174854117`): wrong, but unambiguous, so a warning.
        let digits_end = value.find(['+', '-']).unwrap_or(value.len());
        let (digits, zone) = value.split_at(digits_end);
        if (15..=18).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && check_timestamp(&format!("{}.{}{zone}", &digits[..14], &digits[14..])).is_ok()
        {
            sink.at(
                Some(at),
                Rule::Timestamp,
                Severity::Warning,
                format!(
                    "<{}> value '{value}' has a fraction of a second without the '.': write {}.{}{zone}",
                    e.name,
                    &digits[..14],
                    &digits[14..]
                ),
            );
            return;
        }
        sink.at(
            Some(at),
            Rule::Timestamp,
            Severity::Error,
            format!(
                "<{}> is not a valid HL7 timestamp: {why}; write YYYYMMDD[HHMM[SS]] with real dates and times",
                e.name
            ),
        );
    }
}

/// Values NHS test harnesses put where an NHS number goes.
fn is_test_nhs_number(s: &str) -> bool {
    let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    digits == "1234567890"
        || digits == "0123456789"
        || (digits.len() == 10
            && digits
                .bytes()
                .all(|b| Some(&b) == digits.as_bytes().first()))
}

fn identifier(e: &Element, sink: &mut Sink<'_>) {
    let Some(root) = e.attr("root") else { return };
    if e.attr("nullFlavor").is_some() {
        return;
    }
    let ext = e.attr("extension");
    if ext.is_some_and(has_placeholder) {
        return;
    }
    let at = || e.pos.0;
    match root {
        NHS_NUMBER_OID => {
            let Some(n) = ext else {
                sink.at(
                    Some(at()),
                    Rule::NhsNumber,
                    Severity::Error,
                    "an NHS number id has no extension: put the patient's 10-digit NHS number in @extension".into(),
                );
                return;
            };
            let at = attr_offset(e, sink, "extension");
            if is_test_nhs_number(n) {
                sink.at(
                    Some(at),
                    Rule::NhsNumber,
                    Severity::Warning,
                    format!("NHS number '{n}' is a test-harness value, not a patient's NHS number: use the real NHS number of the patient"),
                );
                return;
            }
            match nhsid::check_nhs_number(n) {
                NhsNumberCheck::Valid => {}
                NhsNumberCheck::BadCheckDigit => sink.at(
                    Some(at),
                    Rule::NhsNumber,
                    Severity::Warning,
                    format!("NHS number '{n}' has a wrong check digit (modulus 11): check it was copied correctly; only test systems use such numbers"),
                ),
                NhsNumberCheck::BadShape => sink.at(
                    Some(at),
                    Rule::NhsNumber,
                    Severity::Error,
                    format!("NHS number '{n}' is not 10 digits: put the patient's 10-digit NHS number in @extension"),
                ),
            }
        }
        ODS_OID | ODS_SDS_OID => {
            let code = ext.unwrap_or("");
            let at = if ext.is_some() {
                attr_offset(e, sink, "extension")
            } else {
                at()
            };
            if code.trim().is_empty() {
                sink.at(
                    Some(at),
                    Rule::OdsCode,
                    Severity::Error,
                    "an ODS code id has no code: put the organisation's ODS code (e.g. A82038) in @extension".into(),
                );
            } else if OdsCode::parse(code).is_err() {
                if OdsCode::parse(&code.to_ascii_uppercase()).is_ok() {
                    sink.at(
                        Some(at),
                        Rule::OdsCode,
                        Severity::Warning,
                        format!("ODS code '{code}' has lower-case letters: ODS codes are upper case, write '{}'", code.to_ascii_uppercase()),
                    );
                } else {
                    sink.at(
                        Some(at),
                        Rule::OdsCode,
                        Severity::Error,
                        format!("ODS code '{code}' is not an ODS code: it must be 3 to 10 upper-case letters and digits, e.g. A82038"),
                    );
                }
            }
        }
        ASID_OID => {
            let asid = ext.unwrap_or("");
            let at = if ext.is_some() {
                attr_offset(e, sink, "extension")
            } else {
                at()
            };
            if asid.trim().is_empty() {
                sink.at(
                    Some(at),
                    Rule::Asid,
                    Severity::Error,
                    "an ASID id has no ASID: put the system's Spine ASID (12 digits, e.g. 200000000149) in @extension".into(),
                );
            } else if nhsid::Asid::parse(asid).is_err() {
                sink.at(
                    Some(at),
                    Rule::Asid,
                    Severity::Warning,
                    format!("ASID '{asid}' is not digits: Spine ASIDs are 12 digits (e.g. 200000000149); a test value like this will not route on a real Spine"),
                );
            }
        }
        _ => {}
    }
}

fn external_document(e: &Element, attachments: Option<&[Attachment]>, sink: &mut Sink<'_>) {
    let id = e
        .child("id")
        .and_then(|i| i.attr("root"))
        .filter(|r| !r.is_empty());
    if id.is_none() {
        sink.at(
            Some(e.pos.0),
            Rule::ExternalDocument,
            Severity::Error,
            "<referredToExternalDocument> has no id with a root: give it the document's id".into(),
        );
    }
    let reference = e
        .path(&["text", "reference"])
        .and_then(|r| r.attr("value"))
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let Some(reference) = reference else {
        sink.at(
            Some(e.pos.0),
            Rule::ExternalDocument,
            Severity::Error,
            "<referredToExternalDocument> has no text/reference/@value: give the file it refers to, e.g. file://localhost/<id>_<name>".into(),
        );
        return;
    };
    let Some(attachments) = attachments else {
        return;
    };
    if has_placeholder(reference) {
        return;
    }
    let filename = reference.rsplit('/').next().unwrap_or(reference);
    let norm_id = |s: &str| s.trim().trim_start_matches('_').to_ascii_uppercase();
    let doc_id = id.map(norm_id);
    let present = attachments.iter().any(|a| {
        a.filename
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case(filename))
            || (doc_id.is_some() && a.id.as_deref().map(norm_id) == doc_id)
    });
    if !present {
        let at = e
            .path(&["text", "reference"])
            .map(|r| r.pos.0)
            .unwrap_or(e.pos.0);
        sink.at(
            Some(at),
            Rule::ExternalDocument,
            Severity::Error,
            format!(
                "the extract refers to document {} ('{filename}') but the message carries no such attachment: attach it, or replace the reference with an absent-attachment placeholder",
                id.unwrap_or("without an id")
            ),
        );
    }
}

/// `RCMR_IN010000UK05` has no published schema: check the elements a sender needs.
pub(super) fn check_request(root: &Element, sink: &mut Sink<'_>) {
    const REQUEST: &[&str] = &["ControlActEvent", "subject", "EhrRequest"];
    let checks: &[(&[&str], &str, &str)] = &[
        (&["id"], "root", "the message id (a UUID)"),
        (&["creationTime"], "value", "when the message was created"),
        (
            &["interactionId"],
            "extension",
            "the interaction id RCMR_IN010000UK05",
        ),
        (
            &["communicationFunctionRcv", "device", "id"],
            "extension",
            "the receiving system's ASID",
        ),
        (
            &["communicationFunctionSnd", "device", "id"],
            "extension",
            "the sending system's ASID",
        ),
        (&["id"], "root", "the request id (a UUID)"),
        (
            &["recordTarget", "patient", "id"],
            "extension",
            "the patient's NHS number",
        ),
        (
            &["author", "AgentOrgSDS", "agentOrganizationSDS", "id"],
            "extension",
            "the requesting practice's ODS code",
        ),
        (
            &["destination", "AgentOrgSDS", "agentOrganizationSDS", "id"],
            "extension",
            "the sending practice's ODS code",
        ),
    ];
    for (i, (path, attr, what)) in checks.iter().enumerate() {
        // The first five are on the wrapper, the rest on the EhrRequest.
        let prefix: &[&str] = if i < 5 { &[] } else { REQUEST };
        let full: Vec<&str> = prefix.iter().chain(path.iter()).copied().collect();
        let mut cur = root;
        let mut missing = None;
        for (depth, name) in full.iter().enumerate() {
            match cur.child(name) {
                Some(next) => cur = next,
                None => {
                    missing = Some(depth);
                    break;
                }
            }
        }
        let problem = match missing {
            Some(_) => Some(format!("has no {}", full.join("/"))),
            None if cur.attr(attr).is_none_or(|v| v.trim().is_empty()) => {
                Some(format!("has no @{attr} on {}", full.join("/")))
            }
            None => None,
        };
        if let Some(problem) = problem {
            sink.at(
                Some(cur.pos.0),
                Rule::Required,
                Severity::Error,
                format!("the EHR request {problem}: add {what} there"),
            );
        }
    }
    // The identifiers must be of the kind their place says.
    let roots: &[(&[&str], &str, &str)] = &[
        (
            &["recordTarget", "patient", "id"],
            NHS_NUMBER_OID,
            "an NHS number",
        ),
        (
            &["author", "AgentOrgSDS", "agentOrganizationSDS", "id"],
            ODS_SDS_OID,
            "an ODS code",
        ),
        (
            &["destination", "AgentOrgSDS", "agentOrganizationSDS", "id"],
            ODS_SDS_OID,
            "an ODS code",
        ),
    ];
    let Some(request) = root.path(REQUEST) else {
        return;
    };
    for (path, oid, what) in roots {
        if let Some(id) = request.path(path)
            && let Some(r) = id.attr("root")
            && r != *oid
        {
            sink.at(
                Some(id.pos.0),
                Rule::Required,
                Severity::Error,
                format!(
                    "EhrRequest/{} has root '{r}': it must be {what}, root {oid}",
                    path.join("/")
                ),
            );
        }
    }
}
