//! Translating a patient's record between GP Connect's FHIR and GP2GP's HL7 V3.
//!
//! A GP2GP sender reads the record from its clinical system as GP Connect structured FHIR
//! (`$gpc.migratestructuredrecord`: one STU3 `Bundle`) and must send it as an `EhrExtract`;
//! a receiver gets an `EhrExtract` and must hand its clinical system FHIR again. The two
//! models do not line up one to one — a FHIR `Condition` becomes a `LinkSet` plus the
//! statement that names the problem, a consultation's `Encounter` and its `List`s become an
//! `ehrComposition` with `CompoundStatement` topics and categories, an
//! `AllergyIntolerance` becomes a `CompoundStatement` around an `ObservationStatement`.
//! Where meaning cannot be carried (a code with no SNOMED CT equivalent, say) the record
//! keeps the original text and codes and is marked with a GP2GP *degrade* code.
//!
//! Degrades are the biggest complaint about GP2GP. So every translation here returns a
//! [`Report`] beside its output: counts of what went in and what came out, every degrade
//! with its reason and the original code, and every item that could not be mapped and why.
//! Nothing disappears without a line in the report.
//!
//! - [`to_hl7`]: FHIR `Bundle` → `RCMR_IN030000UK06` (or `UK07` when the record holds
//!   confidential items).
//! - [`to_fhir`]: `EhrExtract` → FHIR `Bundle`.
//!
//! Records run to hundreds of megabytes, and the typed models of both sides take several
//! times the size of their text. So each direction also streams: from the input's bytes to
//! an `io::Write`, holding the input and a small index rather than both models —
//! [`to_fhir::extract_to_writer`] writes the same bytes as [`to_fhir::extract_to_bundle`]
//! followed by `fhir::to_vec`, with the same report. `lloyd translate` uses these.
//!
//! Like the format crates, this one does no I/O and reads no clock: whatever varies (ids,
//! the time of creation, the addresses of both practices) comes in through the options.

use std::collections::BTreeMap;

use serde::Serialize;

mod hash;
mod sink;
pub mod synthetic;
pub mod to_fhir;
pub mod to_hl7;

/// The GP2GP degrade codes (SNOMED CT concepts), one per kind of entry, used when a
/// clinical code cannot be carried and only its text and original codes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum DegradeCode {
    /// 196461000000101 — transfer-degraded drug allergy.
    DrugAllergy,
    /// 196471000000108 — transfer-degraded non-drug allergy.
    NonDrugAllergy,
    /// 196421000000109 — transfer-degraded medication entry.
    Medication,
    /// 196451000000104 — transfer-degraded plan.
    Plan,
    /// 196431000000106 — transfer-degraded referral.
    Referral,
    /// 196441000000102 — transfer-degraded request.
    Request,
    /// 196411000000103 — transfer-degraded record entry (anything else).
    Other,
}

impl DegradeCode {
    pub const ALL: [DegradeCode; 7] = [
        DegradeCode::DrugAllergy,
        DegradeCode::NonDrugAllergy,
        DegradeCode::Medication,
        DegradeCode::Plan,
        DegradeCode::Referral,
        DegradeCode::Request,
        DegradeCode::Other,
    ];

    /// The SNOMED CT concept id.
    pub fn code(self) -> &'static str {
        match self {
            DegradeCode::DrugAllergy => "196461000000101",
            DegradeCode::NonDrugAllergy => "196471000000108",
            DegradeCode::Medication => "196421000000109",
            DegradeCode::Plan => "196451000000104",
            DegradeCode::Referral => "196431000000106",
            DegradeCode::Request => "196441000000102",
            DegradeCode::Other => "196411000000103",
        }
    }

    /// The concept's display text.
    pub fn display(self) -> &'static str {
        match self {
            DegradeCode::DrugAllergy => "Transfer-degraded drug allergy",
            DegradeCode::NonDrugAllergy => "Transfer-degraded non-drug allergy",
            DegradeCode::Medication => "Transfer-degraded medication entry",
            DegradeCode::Plan => "Transfer-degraded plan",
            DegradeCode::Referral => "Transfer-degraded referral",
            DegradeCode::Request => "Transfer-degraded request",
            DegradeCode::Other => "Transfer-degraded record entry",
        }
    }

    /// Reads a concept id back.
    pub fn from_code(code: &str) -> Option<DegradeCode> {
        DegradeCode::ALL.into_iter().find(|d| d.code() == code)
    }
}

/// A code as it was in the source, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceCode {
    /// The code system (a FHIR system URL or an HL7 OID, as the source wrote it).
    pub system: Option<String>,
    pub code: Option<String>,
    pub display: Option<String>,
}

/// One clinical item whose coded meaning could not be carried over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Degrade {
    /// Where it came from: `Condition/1A2B…` on the FHIR side, a statement's id on HL7's.
    pub source: String,
    /// What kind of item it is, as the source names it (`AllergyIntolerance`,
    /// `ObservationStatement`).
    pub kind: String,
    pub degrade_code: DegradeCode,
    /// Why, in words a clinician would understand.
    pub reason: String,
    /// The codes the item had.
    pub original_codes: Vec<SourceCode>,
    /// Its original text, kept in the output.
    pub original_text: Option<String>,
}

/// One item that could not be translated at all, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unmapped {
    pub source: String,
    pub kind: String,
    pub reason: String,
}

/// What a translation did: counts in and out, every degrade, everything not mapped.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Report {
    /// Items read, by FHIR resource type or HL7 statement kind.
    pub input: BTreeMap<String, usize>,
    /// Items written, by HL7 statement kind or FHIR resource type.
    pub output: BTreeMap<String, usize>,
    pub degrades: Vec<Degrade>,
    pub unmapped: Vec<Unmapped>,
    /// The documents the EhrExtract refers to by file name (FHIR → HL7 only): which
    /// attachment of which `DocumentReference` each file is, so that a sender can send the
    /// content alongside.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<DocumentFile>,
}

/// A file an EhrExtract refers to (`referenceToExternalDocument`, `file://localhost/NAME`)
/// and the FHIR attachment it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentFile {
    /// `DocumentReference/{id}`.
    pub source: String,
    /// Which of the DocumentReference's `content` entries.
    pub content_index: usize,
    /// The file name the extract uses.
    pub filename: String,
    pub content_type: String,
    /// The attachment's `url`, where the content can be read.
    pub url: Option<String>,
    /// The attachment's `title`.
    pub title: Option<String>,
    /// The attachment's `size`, if given.
    pub size: Option<u64>,
}

impl Report {
    /// Counts one item read.
    pub fn read(&mut self, kind: &str) {
        count(&mut self.input, kind);
    }

    /// Counts one item written.
    pub fn wrote(&mut self, kind: &str) {
        count(&mut self.output, kind);
    }

    /// Whether the record went across with nothing degraded and nothing left behind.
    pub fn is_clean(&self) -> bool {
        self.degrades.is_empty() && self.unmapped.is_empty()
    }
}

/// Adds one to `kind`'s count (the kind's name is copied only the first time).
fn count(counts: &mut BTreeMap<String, usize>, kind: &str) {
    match counts.get_mut(kind) {
        Some(n) => *n += 1,
        None => {
            counts.insert(kind.to_owned(), 1);
        }
    }
}

/// Why a translation could not be done at all (as opposed to an item it could not map,
/// which goes into the [`Report`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error(
        "the Bundle has no Patient resource: a GP Connect structured record must have one; check this is a $gpc.migratestructuredrecord answer"
    )]
    NoPatient,
    #[error(
        "the patient has no NHS number (identifier system https://fhir.nhs.uk/Id/nhs-number): GP2GP cannot send a record without one"
    )]
    NoNhsNumber,
    #[error(
        "the message is not an EhrExtract (it is {0}); only RCMR_IN030000UK06 and RCMR_IN030000UK07 carry a record"
    )]
    NotAnExtract(String),
    #[error("the EhrExtract has no ehrFolder: there is no record in it to translate")]
    NoFolder,
    #[error("{0}")]
    Invalid(String),
    /// The input could not be read (not well-formed XML or JSON, or not the expected
    /// shape); the text says where.
    #[error("the input could not be read: {0}")]
    Read(String),
    /// The output could not be written (a full disk, a closed pipe).
    #[error("the translation could not be written out ({0}); check where the output goes")]
    Write(String),
}

impl From<std::io::Error> for TranslateError {
    fn from(e: std::io::Error) -> TranslateError {
        TranslateError::Write(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degrade_codes_read_back_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for d in DegradeCode::ALL {
            assert_eq!(DegradeCode::from_code(d.code()), Some(d));
            assert!(seen.insert(d.code()));
            assert!(d.display().starts_with("Transfer-degraded"));
        }
        assert_eq!(DegradeCode::from_code("22298006"), None);
    }

    #[test]
    fn a_report_counts_and_knows_when_it_is_clean() {
        let mut r = Report::default();
        r.read("Condition");
        r.read("Condition");
        r.wrote("LinkSet");
        assert_eq!(r.input["Condition"], 2);
        assert_eq!(r.output["LinkSet"], 1);
        assert!(r.is_clean());
        r.unmapped.push(Unmapped {
            source: "Observation/1".into(),
            kind: "Observation".into(),
            reason: "no code".into(),
        });
        assert!(!r.is_clean());
    }
}
