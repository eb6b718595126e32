//! HL7 `CD` → FHIR `CodeableConcept`, with GP2GP's degrade rule.
//!
//! Every code and translation is kept as a coding (SNOMED CT, Read v2, CTV3 by their FHIR
//! system URLs; anything else as `urn:oid:`), the original text becomes `text`. A SNOMED CT
//! *description* id (GP2GP senders put one in `code` when the record had it) is not a
//! concept id, so it goes into the `Extension-coding-sctdescid` extension of a SNOMED
//! coding rather than into `code`. When no SNOMED CT coding results, the degrade code for
//! the kind of entry goes first and the report gets a [`Degrade`].

use fhir::{CodeableConcept, Coding, Extension, systems};
use hl7v3::datatypes::{CD, SNOMED_CT};

use crate::{Degrade, DegradeCode, SourceCode};

use super::Ctx;

/// Read codes v2 as HL7 V3 names it in England.
pub const READ_V2_OID: &str = "2.16.840.1.113883.2.1.6.2";
/// CTV3 (Read v3).
pub const CTV3_OID: &str = "2.16.840.1.113883.2.1.3.2.4.14";

/// The FHIR system URL for an HL7 code system OID.
pub fn system_url(oid: &str) -> String {
    match oid {
        SNOMED_CT => systems::SNOMED_CT.to_owned(),
        READ_V2_OID => systems::READ_V2.to_owned(),
        CTV3_OID => systems::READ_CTV3.to_owned(),
        other if other.starts_with("urn:") || other.starts_with("http") => other.to_owned(),
        other => format!("urn:oid:{other}"),
    }
}

/// What kind of SNOMED CT identifier `code` is, by its partition identifier (the two
/// digits before the check digit): concept, description, or not an SCTID at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SctIdKind {
    Concept,
    Description,
    Other,
}

pub fn sctid_kind(code: &str) -> SctIdKind {
    let b = code.as_bytes();
    if !(6..=18).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) || b[0] == b'0' {
        return SctIdKind::Other;
    }
    match (b[b.len() - 3], b[b.len() - 2]) {
        (b'0' | b'1', b'0') => SctIdKind::Concept,
        (b'0' | b'1', b'1') => SctIdKind::Description,
        _ => SctIdKind::Other,
    }
}

/// Whether a CD (or one of its translations) carries a usable SNOMED CT code.
pub fn has_snomed(cd: &CD) -> bool {
    let own = |c: &CD| {
        c.code_system.as_deref() == Some(SNOMED_CT)
            && c.code
                .as_deref()
                .is_some_and(|k| sctid_kind(k) != SctIdKind::Other)
    };
    own(cd) || cd.translation.iter().any(own)
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// One coding from a CD's own code (no translations).
fn coding_of(cd: &CD) -> Option<Coding> {
    let code = non_empty(cd.code.as_deref())?;
    let display = non_empty(cd.display_name.as_deref());
    let system = cd.code_system.as_deref().map(system_url);
    if cd.code_system.as_deref() == Some(SNOMED_CT) && sctid_kind(code) == SctIdKind::Description {
        let mut parts = vec![Extension::with_value(
            systems::SCTDESCID_DESCRIPTION_ID,
            fhir::Choice::Id(code.to_owned()),
        )];
        if let Some(d) = display {
            parts.push(Extension::with_value(
                systems::SCTDESCID_DESCRIPTION_DISPLAY,
                fhir::Choice::String(d.to_owned()),
            ));
        }
        let ext = Extension {
            url: Some(systems::EXTENSION_CODING_SCTDESCID.to_owned()),
            extension: parts,
            ..Extension::default()
        };
        let display = display
            .map(str::to_owned)
            .or_else(|| cd.original_text().filter(|t| !t.trim().is_empty()))
            .unwrap_or_else(|| format!("SNOMED CT description {code}"));
        return Some(Coding {
            extension: vec![ext],
            system,
            display: Some(display),
            ..Coding::default()
        });
    }
    Some(Coding {
        system,
        code: Some(code.to_owned()),
        display: display.map(str::to_owned),
        ..Coding::default()
    })
}

/// The codes of a CD, for the report.
pub fn source_codes(cd: &CD) -> Vec<SourceCode> {
    std::iter::once(cd)
        .chain(cd.translation.iter())
        .filter(|c| c.code.is_some() || c.display_name.is_some())
        .map(|c| SourceCode {
            system: c.code_system.clone(),
            code: c.code.clone(),
            display: c.display_name.clone(),
        })
        .collect()
}

/// The concept's text: original text, else the display name.
pub fn concept_text(cd: &CD) -> Option<String> {
    cd.original_text()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .or_else(|| non_empty(cd.display_name.as_deref()).map(str::to_owned))
}

/// A CD as a CodeableConcept, without any degrade handling (for codes that are not the
/// clinical meaning of an entry: priorities, interpretations, units).
pub fn plain_concept(cd: &CD) -> Option<CodeableConcept> {
    let mut coding: Vec<Coding> = coding_of(cd).into_iter().collect();
    coding.extend(cd.translation.iter().filter_map(coding_of));
    let text = concept_text(cd);
    (!coding.is_empty() || text.is_some()).then(|| CodeableConcept {
        coding,
        text,
        ..CodeableConcept::default()
    })
}

/// The degrade coding itself.
pub fn degrade_coding(d: DegradeCode) -> Coding {
    Coding::new(systems::SNOMED_CT, d.code(), d.display())
}

impl Ctx<'_> {
    /// A clinical code: every coding kept; degraded (with a report line) when no SNOMED CT
    /// code is present. `cd` may be absent, which degrades too.
    pub fn concept(
        &mut self,
        cd: Option<&CD>,
        degrade: DegradeCode,
        source: &str,
        kind: &str,
        fallback_text: Option<&str>,
    ) -> CodeableConcept {
        let mut cc = cd.and_then(plain_concept).unwrap_or_default();
        if cc.text.is_none() {
            cc.text = non_empty(fallback_text).map(str::to_owned);
        }
        if cd.is_some_and(has_snomed) {
            return cc;
        }
        let reason = match cd {
            None => "the entry has no code".to_owned(),
            Some(c) if c.code.is_none() && c.translation.is_empty() => {
                "the entry's code is not known at source (no code, only text)".to_owned()
            }
            Some(_) => "the entry's code is not a SNOMED CT code; the original codes and text are kept beside the degrade code".to_owned(),
        };
        self.report.degrades.push(Degrade {
            source: source.to_owned(),
            kind: kind.to_owned(),
            degrade_code: degrade,
            reason,
            original_codes: cd.map(source_codes).unwrap_or_default(),
            original_text: cc.text.clone(),
        });
        cc.coding.insert(0, degrade_coding(degrade));
        if cc.text.is_none() {
            cc.text = Some(degrade.display().to_owned());
        }
        cc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_tell_concepts_from_descriptions() {
        assert_eq!(sctid_kind("77176002"), SctIdKind::Concept);
        assert_eq!(sctid_kind("503483019"), SctIdKind::Description);
        assert_eq!(sctid_kind("1058571000006119"), SctIdKind::Description);
        assert_eq!(sctid_kind("24591000000103"), SctIdKind::Concept);
        assert_eq!(sctid_kind("196411000000103"), SctIdKind::Concept);
        assert_eq!(sctid_kind("14L..00"), SctIdKind::Other);
        assert_eq!(sctid_kind("12"), SctIdKind::Other);
    }

    #[test]
    fn description_ids_go_into_the_extension() {
        let cd = CD::new("503483019", SNOMED_CT, Some("Current smoker"));
        let cc = plain_concept(&cd).unwrap();
        let c = &cc.coding[0];
        assert_eq!(c.code, None);
        assert_eq!(c.snomed_description_id(), Some("503483019"));
        assert_eq!(c.display.as_deref(), Some("Current smoker"));
        assert!(has_snomed(&cd));
    }
}
