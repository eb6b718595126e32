//! Allergies: a `CompoundStatement` `CATEGORY` coded 14L..00 (H/O: drug allergy) or
//! SN53.00 (allergy, unspecified) around an `ObservationStatement` → `AllergyIntolerance`
//! (category medication or environment). The allergen is the observation's coded value,
//! else its code; without a SNOMED CT code it is degraded as a drug or non-drug allergy.
//! An end date, or a note saying "Resolved", makes it resolved.

use fhir::{AllergyIntolerance, Annotation, Choice, Meta};
use hl7v3::datatypes::as_cd;
use hl7v3::ehr::{CompoundStatement, Statement};

use super::observations::annotations;
use super::time::{ivl_high, ivl_point, ts_to_fhir, ts_value};
use super::{Ctx, Scope, reference};
use crate::DegradeCode;

impl Ctx<'_> {
    pub fn allergy(&mut self, c: &CompoundStatement, scope: &Scope) -> Vec<String> {
        let drug = c.code.as_ref().and_then(|k| k.code.as_deref()) == Some("14L..00");
        let mut out = Vec::new();
        for s in c.component.iter().filter_map(|sc| sc.statement.as_ref()) {
            let Statement::ObservationStatement(o) = s else {
                // Anything else in an allergy heading is mapped in its own right.
                out.extend(self.statement(s, scope));
                continue;
            };
            self.read_statement(s);
            let fallback = format!("{}#{}", scope.comp_id, self.entry_count());
            let hl7_id = o.id.as_deref().or(c.id.first());
            let id = self.id_for("AllergyIntolerance", hl7_id, &fallback);
            let source = hl7_id
                .and_then(|i| i.value())
                .unwrap_or(&fallback)
                .to_owned();
            let degrade = if drug {
                DegradeCode::DrugAllergy
            } else {
                DegradeCode::NonDrugAllergy
            };
            let value_cd = o.value.as_deref().and_then(as_cd);
            let cd = value_cd
                .as_ref()
                .filter(|v| super::codes::has_snomed(v))
                .or(o.code.as_deref());
            let code = self.concept(cd, degrade, &source, "AllergyIntolerance", None);
            let zone = self.zone();
            let eff = o.effective_time.as_deref().or(c.effective_time.as_deref());
            let notes = annotations(&o.pertinent_information);
            let resolved = ivl_high(eff).is_some()
                || notes
                    .as_deref()
                    .is_some_and(|n| n.to_ascii_lowercase().contains("status: resolved"));
            let mut note: Vec<Annotation> = notes
                .map(|t| Annotation {
                    text: Some(t),
                    ..Annotation::default()
                })
                .into_iter()
                .collect();
            if let Some(end) = ivl_high(eff) {
                note.push(Annotation {
                    text: Some(format!("End Date: {end}")),
                    ..Annotation::default()
                });
            }
            let recorder = self.author_of(&o.participant, scope, &source);
            let asserter = self.participant(&o.participant, &["PRF", "PPRF"], &source);
            let allergy = AllergyIntolerance {
                id: Some(id.clone()),
                meta: Some(Meta {
                    profile: vec![
                        "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-AllergyIntolerance-1"
                            .to_owned(),
                    ],
                    ..self
                        .meta(
                            o.confidentiality_code.as_deref().or(c.confidentiality_code.as_deref()),
                            scope.confidential,
                        )
                        .unwrap_or_default()
                }),
                extension: scope
                    .encounter
                    .as_deref()
                    .map(|e| {
                        fhir::Extension::with_value(
                            fhir::systems::extension::ENCOUNTER_ASSOCIATED_ENCOUNTER,
                            Choice::Reference(Box::new(reference(e))),
                        )
                    })
                    .into_iter()
                    .collect(),
                identifier: self.identifiers(hl7_id),
                clinical_status: Some(if resolved { "resolved" } else { "active" }.to_owned()),
                verification_status: Some("unconfirmed".to_owned()),
                category: vec![if drug { "medication" } else { "environment" }.to_owned()],
                code: Some(code),
                patient: Some(self.subject()),
                onset: ivl_point(eff).and_then(|t| ts_to_fhir(t, zone)).map(Choice::DateTime),
                asserted_date: ts_value(o.availability_time.as_deref())
                    .or(ts_value(c.availability_time.as_deref()))
                    .and_then(|t| ts_to_fhir(t, zone)),
                recorder: recorder.as_deref().map(reference),
                asserter: asserter.as_deref().map(reference),
                note,
                ..AllergyIntolerance::default()
            };
            let r = format!("AllergyIntolerance/{id}");
            self.produced(o.id.as_deref(), &r);
            self.produced(c.id.first(), &r);
            self.push(allergy.into());
            out.push(r);
        }
        out
    }
}
