//! CodeableConcept → CD, with translations and degrades.

use fhir::{CodeableConcept, Coding, systems};
use hl7v3::datatypes::{CD, SNOMED_CT, ST};

use super::Ctx;
use crate::{Degrade, DegradeCode, SourceCode};

/// The HL7 OID of a FHIR code system, for the systems GP Connect records use.
pub(crate) fn hl7_code_system(system: &str) -> Option<&'static str> {
    Some(match system {
        systems::SNOMED_CT => SNOMED_CT,
        systems::READ_V2 => "2.16.840.1.113883.2.1.6.2",
        systems::READ_CTV3 => "2.16.840.1.113883.2.1.3.2.4.14",
        systems::EGTON_CODES => "2.16.840.1.113883.2.1.6.3",
        systems::EMIS_DRUG_CODES => "2.16.840.1.113883.2.1.6.9",
        _ => return None,
    })
}

/// Which SNOMED CT id goes into `code`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Snomed {
    /// The description id from `Extension-coding-sctdescid` when there is one (clinical
    /// codes, as the NHS adaptor sends them).
    Description,
    /// The concept id (medicines: dm+d concepts).
    Concept,
}

/// What the degrade line says the item is.
pub(crate) struct Item<'a> {
    pub source: &'a str,
    pub kind: &'a str,
    pub degrade: DegradeCode,
}

/// The CD for a concept. With no SNOMED CT coding, the degrade code of `item`, the
/// original text and codes kept, and a degrade in the report.
pub(crate) fn concept(
    ctx: &mut Ctx<'_>,
    cc: Option<&CodeableConcept>,
    which: Snomed,
    item: Item<'_>,
) -> CD {
    let snomed = cc.and_then(|c| {
        c.coding
            .iter()
            .find(|k| k.is_system(systems::SNOMED_CT) && snomed_id(k).is_some())
    });
    let mut cd = match snomed {
        Some(coding) => snomed_cd(coding, which),
        None => {
            let d = item.degrade;
            let cd = CD::new(d.code(), SNOMED_CT, Some(d.display()));
            let original_text = cc.and_then(|c| c.text_or_display()).map(str::to_string);
            ctx.report.degrades.push(Degrade {
                source: item.source.to_string(),
                kind: item.kind.to_string(),
                degrade_code: d,
                reason: if cc.is_none_or(|c| c.coding.is_empty()) {
                    "the entry has no code, only text".into()
                } else {
                    "the entry has no SNOMED CT code; GP2GP carries SNOMED CT, so its original codes travel as translations".into()
                },
                original_codes: cc
                    .map(|c| {
                        c.coding
                            .iter()
                            .map(|k| SourceCode {
                                system: k.system.clone(),
                                code: k.code.clone(),
                                display: k.display.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                original_text,
            });
            cd
        }
    };
    if let Some(c) = cc {
        let text = c.text.as_deref().filter(|t| !t.trim().is_empty()).or(
            // A degraded code keeps what the user saw.
            if snomed.is_none() {
                c.coding.iter().find_map(|k| k.display.as_deref())
            } else {
                None
            },
        );
        if let Some(t) = text {
            cd.original_text = Some(Box::new(ST::new(t)));
        }
        for k in &c.coding {
            if snomed.is_some_and(|s| std::ptr::eq(s, k)) {
                continue;
            }
            if let Some(t) = translation(k) {
                cd.translation.push(t);
            }
        }
    }
    cd
}

/// The id a SNOMED CT coding can be sent with: its concept id, else the description id
/// of its `Extension-coding-sctdescid` (GP2GP carries description ids in `code` too).
pub(crate) fn snomed_id(coding: &Coding) -> Option<&str> {
    let non_empty = |s: &str| !s.trim().is_empty();
    coding
        .code
        .as_deref()
        .filter(|c| non_empty(c))
        .or_else(|| coding.snomed_description_id().filter(|d| non_empty(d)))
}

/// A SNOMED CT coding as a CD.
pub(crate) fn snomed_cd(coding: &Coding, which: Snomed) -> CD {
    let concept_id = coding.code.as_deref().filter(|c| !c.trim().is_empty());
    let description_id = coding
        .snomed_description_id()
        .filter(|d| !d.trim().is_empty());
    let code = match which {
        Snomed::Description => description_id.or(concept_id),
        Snomed::Concept => concept_id.or(description_id),
    }
    .unwrap_or_default();
    let display = coding
        .snomed_description_display()
        .or(coding.display.as_deref());
    CD::new(code.trim(), SNOMED_CT, display)
}

/// A non-SNOMED coding as a translation, when its system has an HL7 OID.
fn translation(k: &Coding) -> Option<CD> {
    let system = hl7_code_system(k.system.as_deref()?)?;
    let code = k.code.as_deref()?.trim();
    if code.is_empty() {
        return None;
    }
    Some(CD::new(code, system, k.display.as_deref()))
}

/// A fixed SNOMED CT code.
pub(crate) fn fixed(code: &str, display: &str) -> CD {
    CD::new(code, SNOMED_CT, Some(display))
}

/// A fixed SNOMED CT code with original text.
pub(crate) fn fixed_with_text(code: &str, display: &str, text: Option<&str>) -> CD {
    let mut cd = fixed(code, display);
    if let Some(t) = text.filter(|t| !t.trim().is_empty()) {
        cd.original_text = Some(Box::new(ST::new(t)));
    }
    cd
}

/// A code that is unknown, keeping its text (`nullFlavor="UNK"`).
pub(crate) fn unknown_with_text(text: &str) -> CD {
    CD {
        null_flavor: Some("UNK".into()),
        original_text: Some(Box::new(ST::new(text))),
        ..CD::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhir::Extension;

    /// A SNOMED CT coding with only a description id (in `Extension-coding-sctdescid`).
    fn description_only(id: &str) -> Coding {
        Coding {
            system: Some(systems::SNOMED_CT.to_owned()),
            display: Some("Neutrophil count".to_owned()),
            extension: vec![Extension {
                url: Some(systems::EXTENSION_CODING_SCTDESCID.to_owned()),
                extension: vec![Extension::with_value(
                    systems::SCTDESCID_DESCRIPTION_ID,
                    fhir::Choice::Id(id.to_owned()),
                )],
                ..Extension::default()
            }],
            ..Coding::default()
        }
    }

    #[test]
    fn a_description_id_alone_is_sent_as_the_code() {
        let k = description_only("2583941000000114");
        assert_eq!(snomed_id(&k), Some("2583941000000114"));
        for which in [Snomed::Description, Snomed::Concept] {
            let cd = snomed_cd(&k, which);
            assert_eq!(cd.code.as_deref(), Some("2583941000000114"));
            assert_eq!(cd.code_system.as_deref(), Some(SNOMED_CT));
        }
        let mut no_id = description_only(" ");
        no_id.display = None;
        assert_eq!(snomed_id(&no_id), None);
    }
}
