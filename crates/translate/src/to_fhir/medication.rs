//! Medication: an HL7 `MedicationStatement` → a `Medication` (the drug, one per distinct
//! code), and for each supply:
//!
//! - `ehrSupplyAuthorise` → `MedicationRequest` intent `plan` (the authorisation, with its
//!   repeats) and a `MedicationStatement` (the course) based on it;
//! - `ehrSupplyPrescribe` → `MedicationRequest` intent `order` (an issue), based on the
//!   authorisation it fulfils;
//! - `ehrSupplyDiscontinue` → no resource of its own: it stops the authorisation it
//!   reverses (status `stopped`, end date, reason);
//! - `ehrSupplyDispense` → not in GP Connect; reported.
//!
//! Drug codes without SNOMED CT (dm+d) are degraded as medication entries.

use fhir::{
    Annotation, Choice, CodeableConcept, Coding, Dosage, Extension, Medication, MedicationRequest,
    MedicationRequestDispenseRequest, MedicationStatement, Meta, Period, Requester, systems,
};
use hl7v3::datatypes::CD;
use hl7v3::ehr::{Authorise, MedicationStatement as Hl7Med, Prescribe, Supply};

use super::observations::quantity;
use super::time::{ivl_high, ivl_point, ts_to_fhir, ts_value};
use super::{Ctx, Scope, hash_hex, ii_key, reference, text_of};
use crate::{DegradeCode, Unmapped};

fn profile(name: &str, meta: Option<Meta>) -> Option<Meta> {
    Some(Meta {
        profile: vec![format!(
            "https://fhir.nhs.uk/STU3/StructureDefinition/{name}"
        )],
        ..meta.unwrap_or_default()
    })
}

fn prescription_type(repeat: Option<u64>) -> Extension {
    let (code, display) = if repeat.unwrap_or(0) == 0 {
        ("acute", "Acute")
    } else {
        ("repeat", "Repeat")
    };
    Extension::with_value(
        systems::extension::PRESCRIPTION_TYPE,
        Choice::CodeableConcept(
            CodeableConcept::from_coding(Coding::new(systems::PRESCRIPTION_TYPE, code, display))
                .into(),
        ),
    )
}

fn notes_of(list: &[hl7v3::ehr::SupplyAnnotationHolder]) -> Vec<Annotation> {
    list.iter()
        .filter_map(|a| text_of(a.pertinent_supply_annotation.as_ref()?.text.as_deref()))
        .map(|t| Annotation {
            text: Some(t),
            ..Annotation::default()
        })
        .collect()
}

impl Ctx<'_> {
    /// The Medication for a drug code (one per distinct code and text).
    fn medication_resource(&mut self, cd: Option<&CD>, source: &str) -> String {
        let key = match cd {
            Some(c) => format!(
                "{}|{}|{}|{}",
                c.code.as_deref().unwrap_or(""),
                c.code_system.as_deref().unwrap_or(""),
                c.display_name.as_deref().unwrap_or(""),
                c.original_text().unwrap_or_default()
            ),
            None => format!("none|{source}"),
        };
        if let Some(r) = self.medications.get(&key) {
            return r.clone();
        }
        let code = self.concept(
            cd,
            DegradeCode::Medication,
            source,
            "MedicationStatement",
            Some("Unknown medication"),
        );
        let id = self.claim("Medication", format!("med-{}", hash_hex(&key)));
        let r = format!("Medication/{id}");
        self.push(
            Medication {
                id: Some(id),
                meta: profile("CareConnect-GPC-Medication-1", None),
                code: Some(code),
                ..Medication::default()
            }
            .into(),
        );
        self.medications.insert(key, r.clone());
        r
    }

    pub fn medication(&mut self, m: &Hl7Med, scope: &Scope) -> Vec<String> {
        let fallback = format!("{}#{}", scope.comp_id, self.entry_count());
        let source =
            m.id.as_deref()
                .and_then(|i| i.value())
                .unwrap_or(&fallback)
                .to_owned();
        let drug = m.consumable.iter().find_map(|c| {
            c.manufactured_product
                .as_ref()?
                .manufactured_material
                .as_ref()?
                .code
                .as_deref()
        });
        let med = self.medication_resource(drug, &source);
        let dosage: Vec<Dosage> = m
            .pertinent_information
            .iter()
            .filter_map(|p| text_of(p.pertinent_medication_dosage.as_ref()?.text.as_deref()))
            .map(|t| Dosage {
                text: Some(t),
                ..Dosage::default()
            })
            .collect();
        let author = self.author_of(&m.participant, scope, &source);
        let performer = self
            .participant(&m.participant, &["PRF", "PPRF"], &source)
            .or(author.clone());
        let meta = self.meta(m.confidentiality_code.as_deref(), scope.confidential);
        let zone = self.zone();
        let authored = ts_value(m.availability_time.as_deref())
            .or(scope.availability.as_deref())
            .and_then(|t| ts_to_fhir(t, zone));
        let asserted = scope
            .author_time
            .as_deref()
            .or(ts_value(m.availability_time.as_deref()))
            .or(self.extract_time.as_deref())
            .and_then(|t| ts_to_fhir(t, zone));
        let mut out = Vec::new();
        let mut any_supply = false;
        for supply in m.component.iter().filter_map(|c| c.supply.as_ref()) {
            any_supply = true;
            match supply {
                Supply::Authorise(a) => {
                    self.report.read("ehrSupplyAuthorise");
                    let ctx = MedCtx {
                        med: &med,
                        dosage: &dosage,
                        requester: performer.as_deref(),
                        recorder: author.as_deref(),
                        meta: meta.clone(),
                        authored: authored.clone(),
                        asserted: asserted.clone(),
                        statement: m,
                    };
                    out.extend(self.authorise(a, &ctx, scope, &source));
                }
                Supply::Prescribe(p) => {
                    self.report.read("ehrSupplyPrescribe");
                    let ctx = MedCtx {
                        med: &med,
                        dosage: &dosage,
                        requester: performer.as_deref(),
                        recorder: author.as_deref(),
                        meta: meta.clone(),
                        authored: authored.clone(),
                        asserted: asserted.clone(),
                        statement: m,
                    };
                    out.extend(self.prescribe(p, &ctx, scope, &source));
                }
                Supply::Discontinue(d) => {
                    self.report.read("ehrSupplyDiscontinue");
                    let target = d
                        .reversal_of
                        .iter()
                        .find_map(|r| r.prior_medication_ref.as_ref()?.id.as_deref())
                        .and_then(ii_key);
                    let known = target
                        .as_ref()
                        .and_then(|k| self.index.authorisations.get(k))
                        .is_some_and(|i| i.exists);
                    if !known {
                        self.unmapped(
                            d.id.as_deref(),
                            "ehrSupplyDiscontinue",
                            "it discontinues an authorisation that is not in the record, so there is no medication to stop",
                        );
                    }
                }
                Supply::Dispense(d) => {
                    self.report.read("ehrSupplyDispense");
                    self.unmapped(
                        d.id.as_deref(),
                        "ehrSupplyDispense",
                        "GP Connect's structured record has no dispensing resource",
                    );
                }
                Supply::Other(e) => {
                    self.report.unmapped.push(Unmapped {
                        source: source.clone(),
                        kind: e.local_name().to_owned(),
                        reason: "not a GP2GP supply".to_owned(),
                    });
                }
            }
        }
        if !any_supply {
            // A medication with no supply: the course alone.
            let id = self.id_for("MedicationStatement", m.id.as_deref(), &fallback);
            let st = MedicationStatement {
                id: Some(id.clone()),
                meta: profile("CareConnect-GPC-MedicationStatement-1", meta.clone()),
                identifier: self.identifiers(m.id.as_deref()),
                context: scope.encounter.as_deref().map(reference),
                status: Some(
                    if m.status_code.as_ref().and_then(|s| s.code.as_deref()) == Some("ACTIVE") {
                        "active"
                    } else {
                        "completed"
                    }
                    .to_owned(),
                ),
                medication: Some(Choice::Reference(Box::new(reference(&med)))),
                effective: super::time::ivl_to_effective(m.effective_time.as_deref(), zone),
                date_asserted: asserted.clone(),
                subject: Some(self.subject()),
                taken: Some("unk".to_owned()),
                dosage: dosage.clone(),
                ..MedicationStatement::default()
            };
            let r = format!("MedicationStatement/{id}");
            self.produced(m.id.as_deref(), &r);
            self.push(st.into());
            out.push(r);
        } else if let Some(first) = out.first().cloned() {
            self.produced(m.id.as_deref(), &first);
        }
        out
    }

    fn authorise(
        &mut self,
        a: &Authorise,
        mc: &MedCtx<'_>,
        scope: &Scope,
        source: &str,
    ) -> Vec<String> {
        let fallback = format!("{source}#auth{}", self.entry_count());
        let id = self.id_for("MedicationRequest", a.id.as_deref(), &fallback);
        let info =
            a.id.as_deref()
                .and_then(ii_key)
                .and_then(|k| self.index.authorisations.get(&k));
        let repeat = info.and_then(|i| i.repeat_number);
        let discontinue = info.and_then(|i| i.discontinue.clone());
        let discontinue = discontinue.as_deref();
        let last_issue = info.and_then(|i| i.last_issue.clone());
        let zone = self.zone();
        let status_complete =
            a.status_code.as_ref().and_then(|s| s.code.as_deref()) == Some("COMPLETE");
        let (req_status, st_status) = if discontinue.is_some() {
            ("stopped", "stopped")
        } else if status_complete {
            ("completed", "completed")
        } else {
            ("active", "active")
        };
        let start = ivl_point(a.effective_time.as_deref())
            .or(ts_value(a.availability_time.as_deref()))
            .and_then(|t| ts_to_fhir(t, zone));
        let end = ivl_high(a.effective_time.as_deref())
            .or(ivl_high(mc.statement.effective_time.as_deref()))
            .and_then(|t| ts_to_fhir(t, zone));
        let stopped_at = discontinue
            .and_then(|d| ts_value(d.availability_time.as_deref()))
            .and_then(|t| ts_to_fhir(t, zone));
        let mut extension = vec![prescription_type(repeat)];
        if let Some(d) = discontinue {
            let reason = d
                .code
                .as_deref()
                .and_then(super::codes::plain_concept)
                .or_else(|| {
                    d.pertinent_information
                        .iter()
                        .find_map(|p| {
                            text_of(p.pertinent_supply_annotation.as_ref()?.text.as_deref())
                        })
                        .map(CodeableConcept::from_text)
                })
                .unwrap_or_else(|| CodeableConcept::from_text("No information available"));
            let mut parts = vec![Extension::with_value(
                "statusReason",
                Choice::CodeableConcept(reason.into()),
            )];
            if let Some(when) = &stopped_at {
                parts.push(Extension::with_value(
                    "statusChangeDate",
                    Choice::DateTime(when.clone()),
                ));
            }
            extension.push(Extension {
                url: Some(systems::extension::MEDICATION_STATUS_REASON.to_owned()),
                extension: parts,
                ..Extension::default()
            });
        }
        let mut note = notes_of(&a.pertinent_information);
        if let Some(d) = discontinue {
            note.extend(notes_of(&d.pertinent_information));
        }
        let quantity = a.quantity.as_deref().and_then(quantity);
        let request = MedicationRequest {
            id: Some(id.clone()),
            meta: profile("CareConnect-GPC-MedicationRequest-1", mc.meta.clone()),
            extension,
            identifier: self.identifiers(a.id.as_deref()),
            status: Some(req_status.to_owned()),
            intent: Some("plan".to_owned()),
            medication: Some(Choice::Reference(Box::new(reference(mc.med)))),
            subject: Some(self.subject()),
            context: scope.encounter.as_deref().map(reference),
            authored_on: ts_value(a.availability_time.as_deref())
                .and_then(|t| ts_to_fhir(t, zone))
                .or(mc.authored.clone()),
            requester: mc.requester.map(|r| Requester {
                agent: Some(reference(r)),
                ..Requester::default()
            }),
            recorder: mc.recorder.map(reference),
            note,
            dosage_instruction: mc.dosage.to_vec(),
            dispense_request: dispense(MedicationRequestDispenseRequest {
                validity_period: (start.is_some() || end.is_some()).then(|| Period {
                    start: start.clone(),
                    end: end.clone(),
                    ..Period::default()
                }),
                number_of_repeats_allowed: repeat.filter(|n| *n > 0),
                quantity,
                ..MedicationRequestDispenseRequest::default()
            }),
            ..MedicationRequest::default()
        };
        let plan_ref = format!("MedicationRequest/{id}");
        self.produced(a.id.as_deref(), &plan_ref);
        self.push(request.into());

        let sid = self.claim(
            "MedicationStatement",
            format!("{}-MS", &id[..id.len().min(61)]),
        );
        let mut st_ext = Vec::new();
        if let Some(last) = last_issue.as_deref().and_then(|t| ts_to_fhir(t, zone)) {
            st_ext.push(Extension::with_value(
                systems::extension::MEDICATION_STATEMENT_LAST_ISSUE_DATE,
                Choice::DateTime(last),
            ));
        }
        let statement = MedicationStatement {
            id: Some(sid.clone()),
            meta: profile("CareConnect-GPC-MedicationStatement-1", mc.meta.clone()),
            extension: st_ext,
            identifier: self.identifiers(mc.statement.id.as_deref()),
            based_on: vec![reference(&plan_ref)],
            context: scope.encounter.as_deref().map(reference),
            status: Some(st_status.to_owned()),
            medication: Some(Choice::Reference(Box::new(reference(mc.med)))),
            effective: (start.is_some() || end.is_some() || stopped_at.is_some()).then(|| {
                Choice::Period(Box::new(Period {
                    start: start.clone(),
                    end: stopped_at.clone().or(end.clone()),
                    ..Period::default()
                }))
            }),
            date_asserted: mc.asserted.clone(),
            subject: Some(self.subject()),
            taken: Some("unk".to_owned()),
            dosage: mc.dosage.to_vec(),
            ..MedicationStatement::default()
        };
        let sref = format!("MedicationStatement/{sid}");
        self.push(statement.into());
        vec![sref, plan_ref]
    }

    fn prescribe(
        &mut self,
        p: &Prescribe,
        mc: &MedCtx<'_>,
        scope: &Scope,
        source: &str,
    ) -> Vec<String> {
        let fallback = format!("{source}#issue{}", self.entry_count());
        let id = self.id_for("MedicationRequest", p.id.as_deref(), &fallback);
        let zone = self.zone();
        let plan = p
            .in_fulfillment_of
            .as_ref()
            .and_then(|f| f.prior_medication_ref.as_ref())
            .and_then(|r| r.id.as_deref());
        let plan_key = plan.and_then(ii_key);
        let plan_known = plan_key
            .as_ref()
            .and_then(|k| self.index.authorisations.get(k))
            .is_some_and(|i| i.exists);
        let mut extension = Vec::new();
        let mut based_on = Vec::new();
        if let (Some(plan), true) = (plan, plan_known) {
            let repeat = plan_key
                .as_ref()
                .and_then(|k| self.index.authorisations.get(k))
                .and_then(|i| i.repeat_number);
            extension.push(prescription_type(repeat));
            if let Some(pid) = super::ii_id(plan) {
                based_on.push(reference(&format!("MedicationRequest/{pid}")));
            }
        } else if plan.is_some() {
            self.unmapped(
                p.id.as_deref(),
                "ehrSupplyPrescribe/inFulfillmentOf",
                "the issue names an authorisation that is not in the record; the issue is kept without it",
            );
        }
        let mut note = notes_of(&p.pertinent_information);
        if let Some(d) = p.code.as_deref().and_then(|c| c.display_name.as_deref())
            && !d.eq_ignore_ascii_case("NHS prescription")
        {
            note.push(Annotation {
                text: Some(format!("Prescription type: {d}")),
                ..Annotation::default()
            });
        }
        let issued = ts_value(p.availability_time.as_deref()).and_then(|t| ts_to_fhir(t, zone));
        // An issue's validity period: the statement's `effectiveTime` when it is a range,
        // else from the issue date.
        let stmt_time = mc.statement.effective_time.as_deref();
        let validity_end = ivl_high(stmt_time).and_then(|t| ts_to_fhir(t, zone));
        let validity_start = if validity_end.is_some() {
            ivl_point(stmt_time)
                .and_then(|t| ts_to_fhir(t, zone))
                .or(issued.clone())
        } else {
            issued.clone()
        };
        let request = MedicationRequest {
            id: Some(id.clone()),
            meta: profile("CareConnect-GPC-MedicationRequest-1", mc.meta.clone()),
            extension,
            identifier: self.identifiers(p.id.as_deref()),
            based_on,
            status: Some("completed".to_owned()),
            intent: Some("order".to_owned()),
            medication: Some(Choice::Reference(Box::new(reference(mc.med)))),
            subject: Some(self.subject()),
            context: scope.encounter.as_deref().map(reference),
            authored_on: issued.clone().or(mc.authored.clone()),
            requester: mc.requester.map(|r| Requester {
                agent: Some(reference(r)),
                ..Requester::default()
            }),
            recorder: mc.recorder.map(reference),
            note,
            dosage_instruction: mc.dosage.to_vec(),
            dispense_request: dispense(MedicationRequestDispenseRequest {
                validity_period: (validity_start.is_some() || validity_end.is_some()).then(|| {
                    Period {
                        start: validity_start,
                        end: validity_end,
                        ..Period::default()
                    }
                }),
                quantity: p.quantity.as_deref().and_then(quantity),
                ..MedicationRequestDispenseRequest::default()
            }),
            ..MedicationRequest::default()
        };
        let r = format!("MedicationRequest/{id}");
        self.produced(p.id.as_deref(), &r);
        self.push(request.into());
        vec![r]
    }
}

fn dispense(d: MedicationRequestDispenseRequest) -> Option<MedicationRequestDispenseRequest> {
    (d.validity_period.is_some() || d.number_of_repeats_allowed.is_some() || d.quantity.is_some())
        .then_some(d)
}

/// What every supply of one medication statement shares.
struct MedCtx<'m> {
    med: &'m str,
    dosage: &'m [Dosage],
    requester: Option<&'m str>,
    recorder: Option<&'m str>,
    meta: Option<Meta>,
    authored: Option<fhir::DateTime>,
    asserted: Option<fhir::DateTime>,
    statement: &'m Hl7Med,
}
