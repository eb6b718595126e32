//! Medication: each MedicationRequest becomes a `MedicationStatement`, as the NHS sending
//! adaptor does. An authorisation (`intent` plan) carries an `ehrSupplyAuthorise` (and an
//! `ehrSupplyDiscontinue` when it was stopped); an issue (`intent` order) an
//! `ehrSupplyPrescribe` pointing at its authorisation. The FHIR MedicationStatement of the
//! course supplies the prescribing agency, dosage and notes; the Medication the drug code
//! (its dm+d concept id, degrade "medication" when it has none).

use fhir::{
    Choice, CodeableConcept, Extension, Medication, MedicationRequest, MedicationStatement,
    systems::extension,
};
use hl7v3::datatypes::{CD, PQ};
use hl7v3::ehr::{
    Authorise, Consumable, Discontinue, ManufacturedProduct, Material, MedicationDosageHolder,
    MedicationRef, MedicationRefHolder, MedicationStatement as HlMedicationStatement, Prescribe,
    Statement, Supply, SupplyAnnotationHolder, SupplyComponent, TextAct,
};

use super::Ctx;
use super::agents::agent_for;
use super::build::*;
use super::codes::{Item, Snomed, concept, fixed, unknown_with_text};
use super::store::Typed;
use crate::DegradeCode;

/// The course (FHIR MedicationStatement) an authorisation belongs to.
fn course_of<'a>(
    ctx: &Ctx<'a>,
    plan: &MedicationRequest,
) -> Option<Typed<'a, MedicationStatement>> {
    let pid = plan.id.as_deref()?;
    let &pos = ctx.lookups.courses.get(pid)?;
    ctx.store.get_as(pos)
}

/// The authorisation an issue was made under.
fn plan_of<'a>(ctx: &Ctx<'a>, order: &MedicationRequest) -> Option<Typed<'a, MedicationRequest>> {
    order
        .based_on
        .iter()
        .find_map(|b| ctx.store.resolve_as::<MedicationRequest>(b))
}

/// The drug: the code of the Medication referred to, or the code given in place.
fn medication_concept(ctx: &Ctx<'_>, m: Option<&Choice>) -> Option<CodeableConcept> {
    let m = m?;
    if let Some(r) = m.as_reference() {
        return ctx.store.resolve_as::<Medication>(r)?.code.clone();
    }
    m.as_codeable_concept().cloned()
}

pub(crate) fn map_medication_request(ctx: &mut Ctx<'_>, m: &MedicationRequest) -> Vec<Statement> {
    let mid = m.id.as_deref().unwrap_or("");
    let label = format!("MedicationRequest/{mid}");
    let is_plan = m.intent.as_deref() != Some("order");
    let plan_handle = if is_plan { None } else { plan_of(ctx, m) };
    let plan: Option<&MedicationRequest> = if is_plan {
        Some(m)
    } else {
        plan_handle.as_deref()
    };
    let course = plan.and_then(|p| course_of(ctx, p));
    let course = course.as_deref();

    let drug = medication_concept(ctx, m.medication.as_ref());
    let drug_code = concept(
        ctx,
        drug.as_ref(),
        Snomed::Concept,
        Item {
            source: &label,
            kind: "MedicationRequest",
            degrade: DegradeCode::Medication,
        },
    );
    let (start, end) = period_times(
        m.dispense_request
            .as_ref()
            .and_then(|d| d.validity_period.as_ref()),
    );
    let authored = m.authored_on.as_ref().and_then(hl7_ts);
    let start = start.or_else(|| authored.clone());
    let active = m.status.as_deref() == Some("active");
    let supply_type = supply_type(course);
    let quantity = quantity(m);

    let mut notes = Vec::new();
    if let Some(d) = m
        .dispense_request
        .as_ref()
        .and_then(|d| d.expected_supply_duration.as_ref())
    {
        notes.push(format!(
            "Expected Supply Duration: {}",
            super::observations::quantity_text(d)
        ));
    }
    if let Some(t) = ext_concept_text(&m.extension, extension::PRESCRIPTION_TYPE) {
        notes.push(format!("Prescription type: {t}"));
    }
    for n in m.note.iter().filter_map(|n| n.text.as_deref()) {
        notes.push(n.to_string());
    }
    if is_plan && let Some(c) = course {
        for n in c.note.iter().filter_map(|n| n.text.as_deref()) {
            notes.push(n.to_string());
        }
        if let Some(d) = c
            .find_extension(extension::MEDICATION_STATEMENT_LAST_ISSUE_DATE)
            .and_then(|e| e.value.as_ref())
            .and_then(|v| v.as_date_time())
        {
            notes.push(format!("Last issue date: {}", d.as_str()));
        }
    }
    for p in m
        .dosage_instruction
        .iter()
        .filter_map(|d| d.patient_instruction.as_deref())
    {
        notes.push(format!("Patient instruction: {p}"));
    }
    let supply_notes: Vec<SupplyAnnotationHolder> = notes.iter().map(|n| supply_note(n)).collect();

    let author = agent_for(
        ctx,
        m.recorder
            .as_ref()
            .or(m.requester.as_ref().and_then(|r| r.agent.as_ref())),
    );
    let conf = ctx.confidentiality(m.meta.as_ref());
    let authorise_id = |ctx: &Ctx<'_>, p: &MedicationRequest| {
        ctx.id(&format!(
            "MedicationRequest/{}#authorise",
            p.id.as_deref().unwrap_or("")
        ))
    };

    let mut components = Vec::new();
    if is_plan {
        let repeats = repeat_number(m);
        components.push(SupplyComponent {
            type_code: Some("COMP".into()),
            supply: Some(Supply::Authorise(Box::new(Authorise {
                class_code: Some("SPLY".into()),
                mood_code: Some("INT".into()),
                id: ii(authorise_id(ctx, m)),
                code: bx(supply_type.clone()),
                status_code: cs(if active { "ACTIVE" } else { "COMPLETE" }),
                effective_time: effective_low(start.as_deref(), end.as_deref()),
                availability_time: availability(authored.as_deref().or(start.as_deref())),
                repeat_number: repeats.and_then(int),
                quantity: bx(quantity.clone()),
                predecessor: m
                    .prior_prescription
                    .as_ref()
                    .and_then(|p| ctx.store.resolve_as::<MedicationRequest>(p))
                    .map(|p| medication_ref_holder("SUCC", "INT", &authorise_id(ctx, &p)))
                    .into_iter()
                    .collect(),
                pertinent_information: supply_notes.clone(),
                ..Authorise::default()
            }))),
            ..SupplyComponent::default()
        });
        if matches!(m.status.as_deref(), Some("stopped" | "cancelled")) {
            let reason = status_reason(m);
            let date = status_change_date(m)
                .or_else(|| end.clone())
                .or_else(|| start.clone());
            let reason_text = reason.clone().unwrap_or_else(|| "Stopped".into());
            components.push(SupplyComponent {
                type_code: Some("COMP".into()),
                supply: Some(Supply::Discontinue(Box::new(Discontinue {
                    class_code: Some("SPLY".into()),
                    mood_code: Some("RQO".into()),
                    id: ii(ctx.id(&format!("{label}#discontinue"))),
                    code: bx(unknown_with_text(&reason_text)),
                    status_code: cs("COMPLETE"),
                    availability_time: availability(date.as_deref()),
                    reversal_of: vec![medication_ref_holder("REV", "ORD", &authorise_id(ctx, m))],
                    pertinent_information: vec![supply_note(&reason_text)],
                    ..Discontinue::default()
                }))),
                ..SupplyComponent::default()
            });
        }
    } else {
        components.push(SupplyComponent {
            type_code: Some("COMP".into()),
            supply: Some(Supply::Prescribe(Box::new(Prescribe {
                class_code: Some("SPLY".into()),
                mood_code: Some("RQO".into()),
                id: ii(ctx.id(&format!("{label}#prescribe"))),
                code: bx(supply_type),
                status_code: cs("COMPLETE"),
                // The issue date is `authoredOn`; the validity period travels in the
                // statement's `effectiveTime`.
                availability_time: availability(authored.as_deref().or(start.as_deref())),
                quantity: bx(quantity),
                in_fulfillment_of: plan
                    .map(|p| Box::new(medication_ref_holder("FLFS", "INT", &authorise_id(ctx, p)))),
                pertinent_information: supply_notes,
                ..Prescribe::default()
            }))),
            ..SupplyComponent::default()
        });
    }

    let dosage: Vec<String> = m
        .dosage_instruction
        .iter()
        .filter_map(|d| d.text.clone())
        .chain(
            course
                .filter(|_| m.dosage_instruction.iter().all(|d| d.text.is_none()))
                .into_iter()
                .flat_map(|c| c.dosage.iter().filter_map(|d| d.text.clone())),
        )
        .collect();

    vec![Statement::MedicationStatement(Box::new(
        HlMedicationStatement {
            class_code: Some("SBADM".into()),
            mood_code: Some(if is_plan { "INT" } else { "ORD" }.into()),
            id: ii(ctx.res_id("MedicationRequest", mid)),
            status_code: cs(if active && is_plan {
                "ACTIVE"
            } else {
                "COMPLETE"
            }),
            effective_time: if is_plan {
                effective_low(start.as_deref(), end.as_deref())
            } else {
                effective(start.as_deref(), end.as_deref())
            },
            availability_time: availability(authored.as_deref().or(start.as_deref())),
            confidentiality_code: conf,
            consumable: vec![consumable(drug_code)],
            component: components,
            pertinent_information: dosage_holder(&dosage.join(" ")),
            participant: vec![participant("AUT", &author)],
            ..HlMedicationStatement::default()
        },
    ))]
}

/// A FHIR MedicationStatement whose authorisation is not in the Bundle: sent as an
/// authorisation of its own, so the course is not lost.
pub(crate) fn map_orphan_statement(ctx: &mut Ctx<'_>, s: &MedicationStatement) -> Vec<Statement> {
    let sid = s.id.as_deref().unwrap_or("");
    let label = format!("MedicationStatement/{sid}");
    let drug = medication_concept(ctx, s.medication.as_ref());
    let drug_code = concept(
        ctx,
        drug.as_ref(),
        Snomed::Concept,
        Item {
            source: &label,
            kind: "MedicationStatement",
            degrade: DegradeCode::Medication,
        },
    );
    let (start, end) = choice_times(s.effective.as_ref());
    let asserted = s.date_asserted.as_ref().and_then(hl7_ts);
    let active = s.status.as_deref() == Some("active");
    let notes: Vec<SupplyAnnotationHolder> = s
        .note
        .iter()
        .filter_map(|n| n.text.as_deref())
        .map(supply_note)
        .collect();
    let author = agent_for(ctx, s.information_source.as_ref());
    let dosage: Vec<String> = s.dosage.iter().filter_map(|d| d.text.clone()).collect();
    let authorise = Authorise {
        class_code: Some("SPLY".into()),
        mood_code: Some("INT".into()),
        id: ii(ctx.id(&format!("{label}#authorise"))),
        code: bx(supply_type(Some(s))),
        status_code: cs(if active { "ACTIVE" } else { "COMPLETE" }),
        effective_time: effective_low(start.as_deref(), end.as_deref()),
        availability_time: availability(asserted.as_deref().or(start.as_deref())),
        quantity: bx(PQ {
            null_flavor: Some("UNK".into()),
            ..PQ::default()
        }),
        pertinent_information: notes,
        ..Authorise::default()
    };
    vec![Statement::MedicationStatement(Box::new(
        HlMedicationStatement {
            class_code: Some("SBADM".into()),
            mood_code: Some("INT".into()),
            id: ii(ctx.res_id("MedicationStatement", sid)),
            status_code: cs(if active { "ACTIVE" } else { "COMPLETE" }),
            effective_time: effective_low(start.as_deref(), end.as_deref()),
            availability_time: availability(asserted.as_deref().or(start.as_deref())),
            confidentiality_code: ctx.confidentiality(s.meta.as_ref()),
            consumable: vec![consumable(drug_code)],
            component: vec![SupplyComponent {
                type_code: Some("COMP".into()),
                supply: Some(Supply::Authorise(Box::new(authorise))),
                ..SupplyComponent::default()
            }],
            pertinent_information: dosage_holder(&dosage.join(" ")),
            participant: vec![participant("AUT", &author)],
            ..HlMedicationStatement::default()
        },
    ))]
}

fn consumable(code: CD) -> Consumable {
    Consumable {
        type_code: Some("CSM".into()),
        manufactured_product: bx(ManufacturedProduct {
            class_code: Some("MANU".into()),
            manufactured_material: bx(Material {
                class_code: Some("MMAT".into()),
                determiner_code: Some("KIND".into()),
                code: bx(code),
                ..Material::default()
            }),
            ..ManufacturedProduct::default()
        }),
        ..Consumable::default()
    }
}

fn dosage_holder(text: &str) -> Vec<MedicationDosageHolder> {
    let t = text.trim();
    vec![MedicationDosageHolder {
        type_code: Some("PERT".into()),
        pertinent_medication_dosage: bx(TextAct {
            class_code: Some("SBADM".into()),
            mood_code: Some("RMD".into()),
            text: super::build::text(if t.is_empty() {
                "No information available"
            } else {
                t
            }),
            ..TextAct::default()
        }),
        ..MedicationDosageHolder::default()
    }]
}

fn supply_note(text: &str) -> SupplyAnnotationHolder {
    SupplyAnnotationHolder {
        type_code: Some("PERT".into()),
        pertinent_supply_annotation: bx(TextAct {
            class_code: Some("OBS".into()),
            mood_code: Some("EVN".into()),
            text: super::build::text(text),
            ..TextAct::default()
        }),
        ..SupplyAnnotationHolder::default()
    }
}

fn medication_ref_holder(type_code: &str, mood: &str, id: &str) -> MedicationRefHolder {
    MedicationRefHolder {
        type_code: Some(type_code.into()),
        prior_medication_ref: bx(MedicationRef {
            class_code: Some("SBADM".into()),
            mood_code: Some(mood.into()),
            id: ii(id),
            ..MedicationRef::default()
        }),
        ..MedicationRefHolder::default()
    }
}

/// The supply type from the course's prescribing agency: an NHS prescription unless
/// another organisation prescribed it.
fn supply_type(course: Option<&MedicationStatement>) -> CD {
    let agency = course
        .and_then(|c| c.find_extension(extension::PRESCRIBING_AGENCY))
        .and_then(|e| e.value.as_ref())
        .and_then(|v| v.as_codeable_concept())
        .and_then(|c| c.coding.first())
        .and_then(|k| k.code.as_deref());
    match agency {
        Some("prescribed-by-another-organisation") => {
            fixed("394828003", "Prescription by another organisation")
        }
        _ => fixed("394823007", "NHS Prescription"),
    }
}

/// The quantity supplied, with its unit as written kept as a translation.
fn quantity(m: &MedicationRequest) -> PQ {
    match m
        .dispense_request
        .as_ref()
        .and_then(|d| d.quantity.as_ref())
        .and_then(|q| Some((q.value.as_ref()?, q)))
    {
        Some((v, q)) => pq(v.as_str(), q.unit.as_deref().or(Some("unit")), None),
        None => PQ {
            null_flavor: Some("UNK".into()),
            ..PQ::default()
        },
    }
}

/// The number of issues an authorisation allows.
fn repeat_number(m: &MedicationRequest) -> Option<u64> {
    let from_ext = m
        .find_extension(extension::MEDICATION_REPEAT_INFORMATION)
        .and_then(|e| Extension::find(&e.extension, "numberOfRepeatPrescriptionsAllowed"))
        .and_then(|e| e.value.as_ref())
        .and_then(|v| v.as_integer())
        .and_then(|i| u64::try_from(i).ok());
    from_ext.or_else(|| {
        m.dispense_request
            .as_ref()
            .and_then(|d| d.number_of_repeats_allowed)
    })
}

fn status_reason(m: &MedicationRequest) -> Option<String> {
    let e = m.find_extension(extension::MEDICATION_STATUS_REASON)?;
    let reason = Extension::find(&e.extension, "statusReason")?
        .value
        .as_ref()?;
    reason
        .as_codeable_concept()
        .and_then(|c| c.text_or_display())
        .or_else(|| reason.as_str())
        .map(str::to_string)
}

fn status_change_date(m: &MedicationRequest) -> Option<String> {
    let e = m.find_extension(extension::MEDICATION_STATUS_REASON)?;
    Extension::find(&e.extension, "statusChangeDate")?
        .value
        .as_ref()?
        .as_date_time()
        .and_then(hl7_ts)
}

fn ext_concept_text(exts: &[Extension], url: &str) -> Option<String> {
    Extension::find(exts, url)?
        .value
        .as_ref()?
        .as_codeable_concept()?
        .text_or_display()
        .map(str::to_string)
}
