//! AllergyIntolerance → `CompoundStatement` around an `ObservationStatement`.
//!
//! As the NHS sending adaptor does: the compound is a `CATEGORY` coded with the Read v2
//! allergy heading (`14L..00` "H/O: drug allergy" or `SN53.00` "Allergy, non-drug"), the
//! observation carries the allergy's code (degrade code drug / non-drug allergy when it
//! has no SNOMED CT code), its status, reactions and notes in its annotation.

use fhir::AllergyIntolerance;
use hl7v3::datatypes::{CD, II};
use hl7v3::ehr::{AnnotationHolder, CompoundStatement, ObservationStatement, Statement, TextAct};

use super::Ctx;
use super::agents::{agent_for, agent_for_opt};
use super::build::*;
use super::codes::{Item, Snomed, concept};
use crate::DegradeCode;

/// Read v2 (the HL7 OID of Read codes version 2).
const READ_V2: &str = "2.16.840.1.113883.2.1.6.2";

/// Whether the allergy is to a medicine.
fn is_drug(a: &AllergyIntolerance) -> bool {
    a.category.iter().any(|c| c == "medication")
}

pub(crate) fn map_allergy(ctx: &mut Ctx<'_>, a: &AllergyIntolerance) -> Statement {
    let aid = a.id.as_deref().unwrap_or("");
    let label = format!("AllergyIntolerance/{aid}");
    let drug = is_drug(a);
    let code = concept(
        ctx,
        a.code.as_ref(),
        Snomed::Description,
        Item {
            source: &label,
            kind: "AllergyIntolerance",
            degrade: if drug {
                DegradeCode::DrugAllergy
            } else {
                DegradeCode::NonDrugAllergy
            },
        },
    );
    let (onset, _) = super::build::choice_times(a.onset.as_ref());
    let asserted = a.asserted_date.as_ref().and_then(hl7_ts);
    let start = onset.clone().or_else(|| asserted.clone());
    let end = if a.clinical_status.as_deref() == Some("resolved") {
        a.last_occurrence.as_ref().and_then(hl7_ts)
    } else {
        None
    };
    let availability_time = availability(asserted.as_deref().or(start.as_deref()));
    let effective_time = effective(start.as_deref(), end.as_deref());

    let mut notes = Vec::new();
    if let Some(s) = a.clinical_status.as_deref() {
        notes.push(format!("Status: {}", capitalise(s)));
    }
    if let Some(t) = a.r#type.as_deref() {
        notes.push(format!("Type: {}", capitalise(t)));
    }
    if let Some(c) = a.criticality.as_deref() {
        notes.push(format!("Criticality: {c}"));
    }
    if let Some(d) = a.last_occurrence.as_ref() {
        notes.push(format!("Last occurred: {}", d.as_str()));
    }
    for (i, r) in a.reaction.iter().enumerate() {
        let mut parts = vec![format!("Reaction {}:", i + 1)];
        if let Some(d) = r.description.as_deref() {
            parts.push(d.to_string());
        }
        let manifestations: Vec<&str> = r
            .manifestation
            .iter()
            .filter_map(|m| m.text_or_display())
            .collect();
        if !manifestations.is_empty() {
            parts.push(format!("Manifestation: {}", manifestations.join(", ")));
        }
        if let Some(s) = r.severity.as_deref() {
            parts.push(format!("Severity: {s}"));
        }
        if let Some(e) = r.exposure_route.as_ref().and_then(|e| e.text_or_display()) {
            parts.push(format!("Exposure route: {e}"));
        }
        if let Some(sub) = r.substance.as_ref().and_then(|e| e.text_or_display()) {
            parts.push(format!("Substance: {sub}"));
        }
        for n in r.note.iter().filter_map(|n| n.text.as_deref()) {
            parts.push(format!("Note: {n}"));
        }
        notes.push(join(&parts));
    }
    for n in a.note.iter().filter_map(|n| n.text.as_deref()) {
        notes.push(n.to_string());
    }

    let mut participants = Vec::new();
    let recorder = a.recorder.as_ref().or(a.asserter.as_ref());
    participants.push(participant("AUT", &agent_for(ctx, recorder)));
    if let Some(p) = agent_for_opt(ctx, a.asserter.as_ref().or(a.recorder.as_ref())) {
        participants.push(participant("PRF", &p));
    }
    let conf = ctx.confidentiality(a.meta.as_ref());

    let observation = ObservationStatement {
        class_code: Some("OBS".into()),
        mood_code: Some("EVN".into()),
        id: ii(ctx.id(&format!("{label}#observation"))),
        code: bx(code),
        status_code: cs("COMPLETE"),
        effective_time: effective_time.clone(),
        availability_time: availability_time.clone(),
        confidentiality_code: conf.clone(),
        pertinent_information: annotation(&notes.join(" ")),
        participant: participants,
        ..ObservationStatement::default()
    };
    let category = if drug {
        CD::new("14L..00", READ_V2, Some("H/O: drug allergy"))
    } else {
        CD::new("SN53.00", READ_V2, Some("Allergy, non-drug"))
    };
    Statement::CompoundStatement(Box::new(CompoundStatement {
        class_code: Some("CATEGORY".into()),
        mood_code: Some("EVN".into()),
        id: vec![II::root(ctx.res_id("AllergyIntolerance", aid))],
        code: bx(category),
        status_code: cs("COMPLETE"),
        effective_time,
        availability_time,
        confidentiality_code: conf,
        component: vec![component(
            Statement::ObservationStatement(Box::new(observation)),
            true,
        )],
        ..CompoundStatement::default()
    }))
}

/// One annotation (`pertinentInformation` numbered 1) with this text, none when empty.
pub(crate) fn annotation(text: &str) -> Vec<AnnotationHolder> {
    let t = text.trim();
    if t.is_empty() {
        return Vec::new();
    }
    vec![AnnotationHolder {
        type_code: Some("PERT".into()),
        sequence_number: int("+1"),
        pertinent_annotation: bx(TextAct {
            class_code: Some("OBS".into()),
            mood_code: Some("EVN".into()),
            text: super::build::text(t),
            ..TextAct::default()
        }),
        ..AnnotationHolder::default()
    }]
}

pub(crate) fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
