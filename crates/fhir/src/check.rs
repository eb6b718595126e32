//! Strict checking: what would make written JSON invalid FHIR STU3.

use std::fmt::{self, Write};

/// One problem found by [`Bundle::check_strict`](crate::Bundle::check_strict)
/// or [`Resource::check_strict`](crate::Resource::check_strict).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Where the problem is, as a path of JSON member names and array
    /// indexes from the checked value, e.g.
    /// `Bundle.entry[12].resource.code.coding[0].display`.
    pub path: String,
    /// The resource the problem is in, as `Type/id` (or just `Type` when it
    /// has no id), if any.
    pub resource: Option<String>,
    /// What is wrong.
    pub kind: IssueKind,
}

/// What is wrong, with what to do about it in the message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssueKind {
    /// A string that is empty. FHIR forbids empty values; drop the element
    /// (see [`Bundle::clean`](crate::Bundle::clean)).
    EmptyString,
    /// An object or array with nothing in it.
    EmptyElement,
    /// A JSON `null`, which FHIR does not use.
    Null,
    /// A required element is missing (minimum cardinality 1 in STU3).
    Missing(&'static str),
    /// A constraint of STU3 (or of GP Connect) is broken; the text says which.
    Invariant(&'static str),
    /// A `date`, `dateTime` or `instant` that does not parse.
    InvalidDateTime(String),
    /// A date-time that parses leniently but is not valid STU3: a time
    /// without seconds or without a time zone.
    LenientDateTime(String),
    /// A `decimal` that is not a number.
    InvalidDecimal(String),
    /// A `decimal` written as a JSON string.
    QuotedDecimal(String),
    /// A resource `id` that does not match `[A-Za-z0-9\-\.]{1,64}`.
    InvalidId(String),
    /// A reference that names no resource in the Bundle.
    UnresolvedReference(String),
    /// Two entries with the same `Type/id` (or the same `fullUrl`).
    DuplicateResource(String),
}

impl fmt::Display for IssueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IssueKind::EmptyString => {
                f.write_str("empty string; FHIR values must not be empty: omit the element")
            }
            IssueKind::EmptyElement => f.write_str(
                "element with no content; FHIR elements must have a value or children: omit it",
            ),
            IssueKind::Null => f.write_str("null; FHIR JSON does not use null: omit the element"),
            IssueKind::Missing(name) => write!(
                f,
                "required element `{name}` is missing; STU3 requires it here: supply it"
            ),
            IssueKind::Invariant(text) => f.write_str(text),
            IssueKind::InvalidDateTime(t) => write!(
                f,
                "{t:?} is not a FHIR date or dateTime; write YYYY, YYYY-MM, YYYY-MM-DD or \
                 YYYY-MM-DDThh:mm:ss with a time zone"
            ),
            IssueKind::LenientDateTime(t) => write!(
                f,
                "{t:?} has a time without seconds or without a time zone, which STU3 does \
                 not allow; add them (GP2GP times are UK local time)"
            ),
            IssueKind::InvalidDecimal(t) => write!(f, "{t:?} is not a decimal number"),
            IssueKind::QuotedDecimal(t) => write!(
                f,
                "decimal {t:?} is written as a string; write it as a JSON number \
                 (Bundle::clean does this)"
            ),
            IssueKind::InvalidId(t) => write!(
                f,
                "resource id {t:?} is not 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'"
            ),
            IssueKind::UnresolvedReference(r) => write!(
                f,
                "reference {r:?} names no resource in this Bundle; add the resource \
                 or fix the reference"
            ),
            IssueKind::DuplicateResource(r) => write!(
                f,
                "{r} appears in more than one entry; each resource must appear once"
            ),
        }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.resource {
            Some(r) => write!(f, "{} (in {r}): {}", self.path, self.kind),
            None => write!(f, "{}: {}", self.path, self.kind),
        }
    }
}

/// A reference found while checking, to be resolved against the Bundle.
pub(crate) struct FoundReference {
    pub(crate) path: String,
    pub(crate) resource: Option<String>,
    pub(crate) reference: String,
}

/// Walks a model, keeping the JSON path, and collects issues and references.
pub(crate) struct Checker {
    path: String,
    resource: Option<String>,
    pub(crate) issues: Vec<Issue>,
    pub(crate) references: Vec<FoundReference>,
}

impl Checker {
    pub(crate) fn new(root: &str) -> Checker {
        Checker {
            path: root.to_owned(),
            resource: None,
            issues: vec![],
            references: vec![],
        }
    }

    fn at(&mut self, push: impl FnOnce(&mut String), f: impl FnOnce(&mut Checker)) {
        let len = self.path.len();
        push(&mut self.path);
        f(self);
        self.path.truncate(len);
    }

    pub(crate) fn at_field(&mut self, name: &str, f: impl FnOnce(&mut Checker)) {
        self.at(
            |p| {
                p.push('.');
                p.push_str(name);
            },
            f,
        );
    }

    pub(crate) fn at_key(&mut self, key: &str, f: impl FnOnce(&mut Checker)) {
        self.at_field(key, f);
    }

    pub(crate) fn at_choice(&mut self, name: &str, ty: &str, f: impl FnOnce(&mut Checker)) {
        self.at(
            |p| {
                p.push('.');
                p.push_str(name);
                p.push_str(ty);
            },
            f,
        );
    }

    pub(crate) fn at_index(&mut self, i: usize, f: impl FnOnce(&mut Checker)) {
        self.at(
            |p| {
                let _ = write!(p, "[{i}]");
            },
            f,
        );
    }

    /// Runs `f` with `label` (`Type/id`) as the current resource.
    pub(crate) fn in_resource(&mut self, label: String, f: impl FnOnce(&mut Checker)) {
        let outer = self.resource.replace(label);
        f(self);
        self.resource = outer;
    }

    pub(crate) fn issue(&mut self, kind: IssueKind) {
        self.issues.push(Issue {
            path: self.path.clone(),
            resource: self.resource.clone(),
            kind,
        });
    }

    /// Reports `name` missing unless `present`.
    pub(crate) fn require(&mut self, present: bool, name: &'static str) {
        if !present {
            self.issue(IssueKind::Missing(name));
        }
    }

    pub(crate) fn reference(&mut self, reference: &str) {
        self.references.push(FoundReference {
            path: self.path.clone(),
            resource: self.resource.clone(),
            reference: reference.to_owned(),
        });
    }
}

/// Whether `id` is a valid FHIR resource id.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}
