//! Test results: `CompoundStatement` `CLUSTER` 16488004 (laboratory reporting) →
//! `DiagnosticReport`, its specimen clusters (123038009) → `Specimen`, test group
//! batteries and clusters → `Observation`s related by `has-member`, result comments →
//! comment-note `Observation`s.

use fhir::{
    Annotation, Choice, CodeableConcept, Coding, DiagnosticReport, Identifier, Meta, Observation,
    ObservationRelated, Resource, Specimen, SpecimenCollection, systems,
};
use hl7v3::ehr::{CompoundStatement, Statement};

use super::time::{ivl_point, ivl_to_effective, ts_to_fhir, ts_to_instant, ts_value};
use super::{Ctx, Scope, reference, text_of};
use crate::DegradeCode;

/// laboratory reporting
pub const LAB_REPORT: &str = "16488004";
/// specimen (specimen)
pub const SPECIMEN: &str = "123038009";
/// The OID of laboratory report (requester) ids.
const LAB_REPORT_ID_ROOT: &str = "2.16.840.1.113883.2.1.4.5.5";

fn code_of(c: &CompoundStatement) -> Option<&str> {
    c.code.as_ref()?.code.as_deref()
}

impl Ctx<'_> {
    /// A laboratory report.
    pub fn lab_report(&mut self, c: &CompoundStatement, scope: &Scope) -> Vec<String> {
        let fallback = format!("{}#{}", scope.comp_id, self.entry_count());
        let id = self.id_for("DiagnosticReport", c.id.first(), &fallback);
        let zone = self.zone();
        let mut specimens = Vec::new();
        let mut results = Vec::new();
        let mut others = Vec::new();
        for s in c.component.iter().filter_map(|sc| sc.statement.as_ref()) {
            match s {
                Statement::CompoundStatement(sp) if code_of(sp) == Some(SPECIMEN) => {
                    self.read_statement(s);
                    let (sref, inner) = self.specimen(sp, scope);
                    specimens.push(sref);
                    results.extend(inner);
                }
                _ => {
                    for r in self.statement(s, scope) {
                        if r.starts_with("Observation/") {
                            results.push(r);
                        } else {
                            others.push(r);
                        }
                    }
                }
            }
        }
        let mut identifier = self.identifiers(c.id.first());
        for extra in c.id.iter().skip(1) {
            if extra.root.as_deref() == Some(LAB_REPORT_ID_ROOT)
                && let Some(e) = extra.extension.as_deref().filter(|e| !e.trim().is_empty())
            {
                identifier.push(Identifier::new(format!("urn:oid:{LAB_REPORT_ID_ROOT}"), e));
            }
        }
        let source =
            c.id.first()
                .and_then(|i| i.value())
                .unwrap_or(&fallback)
                .to_owned();
        let performer = self.participant(&c.participant, &["AUT", "PRF"], &source);
        let report = DiagnosticReport {
            id: Some(id.clone()),
            meta: Some(Meta {
                profile: vec![
                    "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-DiagnosticReport-1"
                        .to_owned(),
                ],
                ..self.meta(c.confidentiality_code.as_deref(), scope.confidential).unwrap_or_default()
            }),
            identifier,
            status: Some("unknown".to_owned()),
            code: Some(CodeableConcept {
                coding: vec![Coding::new(systems::SNOMED_CT, "721981007", "Diagnostic studies report")],
                text: c.code.as_deref().and_then(super::codes::concept_text),
                ..CodeableConcept::default()
            }),
            subject: Some(self.subject()),
            context: scope.encounter.as_deref().map(reference),
            effective: ivl_to_effective(c.effective_time.as_deref(), zone),
            issued: ts_value(c.availability_time.as_deref())
                .or(scope.author_time.as_deref())
                .and_then(|t| ts_to_instant(t, zone)),
            performer: performer
                .map(|p| fhir::DiagnosticReportPerformer {
                    actor: Some(reference(&p)),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            specimen: specimens.iter().map(|s| reference(s)).collect(),
            result: results.iter().map(|r| reference(r)).collect(),
            ..DiagnosticReport::default()
        };
        let r = format!("DiagnosticReport/{id}");
        self.produced(c.id.first(), &r);
        self.push(report.into());
        let mut out = vec![r];
        out.extend(others);
        out
    }

    /// A specimen cluster: the Specimen, and the results under it (returned) with their
    /// `specimen` set.
    fn specimen(&mut self, c: &CompoundStatement, scope: &Scope) -> (String, Vec<String>) {
        let fallback = format!("{}#{}", scope.comp_id, self.entry_count());
        let id = self.id_for("Specimen", c.id.first(), &fallback);
        let sref = format!("Specimen/{id}");
        let zone = self.zone();
        let start = self.entries.len();
        let mut results = Vec::new();
        let mut notes = Vec::new();
        for s in c.component.iter().filter_map(|sc| sc.statement.as_ref()) {
            for r in self.statement(s, scope) {
                if r.starts_with("Observation/") {
                    results.push(r);
                }
            }
            if let Statement::NarrativeStatement(n) = s
                && let Some(t) = text_of(n.text.as_deref())
            {
                notes.push(t);
            }
        }
        for e in &mut self.entries[start..] {
            if let Some(Resource::Observation(o)) = &mut e.resource
                && o.specimen.is_none()
            {
                o.specimen = Some(reference(&sref));
            }
        }
        let role = c.specimen.first().and_then(|s| s.specimen_role.as_deref());
        let accession = role
            .and_then(|r| r.id.get(1).or(r.id.first()))
            .and_then(|i| i.extension.as_deref())
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| Identifier {
                value: Some(e.to_owned()),
                ..Identifier::default()
            });
        let kind = role
            .and_then(|r| r.specimen_specimen_material.as_deref())
            .and_then(|m| text_of(m.desc.as_deref()))
            .map(CodeableConcept::from_text);
        let collected = role
            .and_then(|r| ivl_point(r.effective_time.as_deref()))
            .and_then(|t| ts_to_fhir(t, zone));
        let specimen = Specimen {
            id: Some(id),
            meta: Some(Meta {
                profile: vec![
                    "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Specimen-1"
                        .to_owned(),
                ],
                ..self
                    .meta(c.confidentiality_code.as_deref(), scope.confidential)
                    .unwrap_or_default()
            }),
            identifier: self.identifiers(c.id.first()),
            accession_identifier: accession,
            r#type: kind,
            subject: Some(self.subject()),
            received_time: ts_value(c.availability_time.as_deref())
                .and_then(|t| ts_to_fhir(t, zone)),
            collection: collected.map(|d| SpecimenCollection {
                collected: Some(Choice::DateTime(d)),
                ..SpecimenCollection::default()
            }),
            note: notes
                .into_iter()
                .map(|t| Annotation {
                    text: Some(t),
                    ..Annotation::default()
                })
                .collect(),
            ..Specimen::default()
        };
        self.produced(c.id.first(), &sref);
        self.push(specimen.into());
        (sref, results)
    }

    /// A test group (BATTERY) or result cluster (CLUSTER): an Observation for the group,
    /// `has-member` its results; the results themselves are mapped as usual.
    pub fn group(&mut self, c: &CompoundStatement, scope: &Scope) -> Vec<String> {
        let fallback = format!("{}#{}", scope.comp_id, self.entry_count());
        let id = self.id_for("Observation", c.id.first(), &fallback);
        let source =
            c.id.first()
                .and_then(|i| i.value())
                .unwrap_or(&fallback)
                .to_owned();
        let code = self.concept(
            c.code.as_deref(),
            DegradeCode::Other,
            &source,
            "CompoundStatement",
            None,
        );
        let zone = self.zone();
        let mut members = Vec::new();
        let mut others = Vec::new();
        for s in c.component.iter().filter_map(|sc| sc.statement.as_ref()) {
            for r in self.statement(s, scope) {
                if r.starts_with("Observation/") {
                    members.push(r);
                } else {
                    others.push(r);
                }
            }
        }
        let performer = self.performer_of(&c.participant, scope, &source);
        let effective = ivl_to_effective(c.effective_time.as_deref(), zone).or_else(|| {
            ts_value(c.availability_time.as_deref())
                .and_then(|t| ts_to_fhir(t, zone))
                .map(Choice::DateTime)
        });
        let obs = Observation {
            id: Some(id.clone()),
            meta: Some(Meta {
                profile: vec![
                    "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Observation-1"
                        .to_owned(),
                ],
                ..self
                    .meta(c.confidentiality_code.as_deref(), scope.confidential)
                    .unwrap_or_default()
            }),
            identifier: self.identifiers(c.id.first()),
            status: Some("final".to_owned()),
            code: Some(code),
            subject: Some(self.subject()),
            context: scope.encounter.as_deref().map(reference),
            effective,
            issued: ts_value(c.availability_time.as_deref()).and_then(|t| ts_to_instant(t, zone)),
            performer: performer.as_deref().map(reference).into_iter().collect(),
            related: members
                .iter()
                .map(|m| ObservationRelated {
                    r#type: Some("has-member".to_owned()),
                    target: Some(reference(m)),
                    ..ObservationRelated::default()
                })
                .collect(),
            ..Observation::default()
        };
        let r = format!("Observation/{id}");
        self.produced(c.id.first(), &r);
        self.push(obs.into());
        let mut out = vec![r];
        out.extend(others);
        out
    }
}
