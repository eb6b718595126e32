//! Observation → `ObservationStatement` (uncategorised data, results); with components
//! (blood pressure) or members (a test group) → `CompoundStatement` `BATTERY`; a comment
//! note → `NarrativeStatement`. Immunization → `ObservationStatement`.

use fhir::{Choice, Immunization, Observation, ObservationReferenceRange, Quantity, systems};
use hl7v3::datatypes::{CD, II, IVL_PQ};
use hl7v3::ehr::{
    CompoundStatement, InterpretationRange, NarrativeStatement, ObservationStatement,
    ReferenceRange, Statement,
};
use hl7v3::typed::ToXml;
use hl7v3::xml::Element;

use super::Ctx;
use super::agents::agent_for_opt;
use super::allergies::annotation;
use super::build::*;
use super::codes::{Item, Snomed, concept};
use super::store::Typed;
use crate::DegradeCode;

/// SNOMED CT "Comment note": an Observation that is free text.
pub(crate) const COMMENT_NOTE: &str = "37331000000100";

pub(crate) fn is_comment(o: &Observation) -> bool {
    o.code.as_ref().is_some_and(|c| {
        c.coding
            .iter()
            .any(|k| k.code.as_deref() == Some(COMMENT_NOTE))
    })
}

/// An Observation on its own (not inside a report).
pub(crate) fn map_observation(ctx: &mut Ctx<'_>, o: &Observation) -> Vec<Statement> {
    let oid = o.id.as_deref().unwrap_or("");
    let id = ctx.res_id("Observation", oid);
    if is_comment(o) {
        return vec![narrative(ctx, o, &id)];
    }
    let members = super::diagnostics::members(ctx, o);
    if !o.component.is_empty() || !members.is_empty() {
        return vec![battery(ctx, o, &id, &members)];
    }
    vec![Statement::ObservationStatement(Box::new(
        observation_statement(ctx, o, &id),
    ))]
}

/// A comment note as a `NarrativeStatement`.
pub(crate) fn narrative(ctx: &mut Ctx<'_>, o: &Observation, id: &str) -> Statement {
    let mut parts = Vec::new();
    if let Some(c) = o.comment.as_deref() {
        parts.push(c.to_string());
    }
    if let Some(v) = value_text(o.value.as_ref()) {
        parts.push(v);
    }
    if parts.is_empty() {
        parts.push(
            o.code
                .as_ref()
                .and_then(|c| c.text_or_display())
                .unwrap_or("Comment")
                .to_string(),
        );
    }
    let (start, _) = choice_times(o.effective.as_ref());
    let issued = o.issued.as_ref().and_then(hl7_ts);
    let performer = agent_for_opt(ctx, o.performer.first());
    Statement::NarrativeStatement(Box::new(NarrativeStatement {
        class_code: Some("OBS".into()),
        mood_code: Some("EVN".into()),
        id: ii(id),
        text: text(&parts.join("\n")),
        status_code: cs("COMPLETE"),
        availability_time: availability(start.as_deref().or(issued.as_deref())),
        confidentiality_code: ctx.confidentiality(o.meta.as_ref()),
        participant: performer.iter().map(|p| participant("PRF", p)).collect(),
        ..NarrativeStatement::default()
    }))
}

/// A `BATTERY`: the observation's components (systolic, diastolic…) and members as
/// statements of their own.
pub(crate) fn battery(
    ctx: &mut Ctx<'_>,
    o: &Observation,
    id: &str,
    members: &[Typed<'_, Observation>],
) -> Statement {
    battery_at(ctx, o, id, members, 0)
}

/// How deep test groups nest inside one another before members are sent flat (a guard
/// against `has-member` cycles).
const MAX_GROUP_DEPTH: usize = 8;

fn battery_at(
    ctx: &mut Ctx<'_>,
    o: &Observation,
    id: &str,
    members: &[Typed<'_, Observation>],
    depth: usize,
) -> Statement {
    let oid = o.id.as_deref().unwrap_or("");
    let label = format!("Observation/{oid}");
    let code = concept(
        ctx,
        o.code.as_ref(),
        Snomed::Description,
        Item {
            source: &label,
            kind: "Observation",
            degrade: DegradeCode::Other,
        },
    );
    let (start, end) = choice_times(o.effective.as_ref());
    let issued = o.issued.as_ref().and_then(hl7_ts);
    let conf = ctx.confidentiality(o.meta.as_ref());
    let performer = agent_for_opt(ctx, o.performer.first());
    let mut items = Vec::new();
    for (i, c) in o.component.iter().enumerate() {
        let ccode = concept(
            ctx,
            c.code.as_ref(),
            Snomed::Description,
            Item {
                source: &format!("{label}.component[{i}]"),
                kind: "Observation.component",
                degrade: DegradeCode::Other,
            },
        );
        let mut notes = Vec::new();
        let value = value_element(c.value.as_ref(), &mut notes);
        if let Some(i) = c.interpretation.as_ref().and_then(|i| i.text_or_display()) {
            notes.push(format!("Interpretation: {i}"));
        }
        // A measurement not taken is said in words beside it (as the NHS adaptor does).
        let absent = c
            .data_absent_reason
            .as_ref()
            .and_then(|d| d.text_or_display())
            .map(|d| {
                let what = c
                    .code
                    .as_ref()
                    .and_then(|k| k.text_or_display())
                    .unwrap_or("Measurement");
                format!("{what}: measurement absent: {d}")
            });
        items.push(Statement::ObservationStatement(Box::new(
            ObservationStatement {
                class_code: Some("OBS".into()),
                mood_code: Some("EVN".into()),
                id: ii(ctx.id(&format!("{label}#component{i}"))),
                code: bx(ccode),
                status_code: cs("COMPLETE"),
                effective_time: effective(start.as_deref(), end.as_deref()),
                availability_time: availability(issued.as_deref().or(start.as_deref())),
                confidentiality_code: conf.clone(),
                value,
                interpretation_code: interpretation(c.interpretation.as_ref()),
                pertinent_information: annotation(&notes.join(" ")),
                reference_range: c
                    .reference_range
                    .iter()
                    .filter_map(reference_range)
                    .collect(),
                participant: performer.iter().map(|p| participant("PRF", p)).collect(),
                ..ObservationStatement::default()
            },
        )));
        if let Some(a) = absent {
            items.push(Statement::NarrativeStatement(Box::new(
                NarrativeStatement {
                    class_code: Some("OBS".into()),
                    mood_code: Some("EVN".into()),
                    id: ii(ctx.id(&format!("{label}#component{i}-absent"))),
                    text: text(&a),
                    status_code: cs("COMPLETE"),
                    availability_time: availability(issued.as_deref().or(start.as_deref())),
                    confidentiality_code: conf.clone(),
                    ..NarrativeStatement::default()
                },
            )));
        }
    }
    if !members.is_empty() {
        // A test group or a group of related entries: the group's own entry first (its
        // value, interpretation, ranges), then its members, each comment beside its entry.
        let self_id = ctx.id(&format!("{label}#self"));
        items.push(Statement::ObservationStatement(Box::new(
            observation_statement_with(ctx, o, &self_id, false),
        )));
        items.extend(comment_narrative(ctx, o));
    }
    for m in members {
        let mid = m.id.as_deref().unwrap_or("");
        let mid = ctx.res_id("Observation", mid);
        let nested = if depth < MAX_GROUP_DEPTH {
            super::diagnostics::members(ctx, m)
        } else {
            Vec::new()
        };
        if is_comment(m) {
            items.push(narrative(ctx, m, &mid));
        } else if !m.component.is_empty() || !nested.is_empty() {
            // A blood pressure, or a test group, inside a group is a battery of its own.
            items.push(battery_at(ctx, m, &mid, &nested, depth + 1));
        } else {
            items.push(Statement::ObservationStatement(Box::new(
                observation_statement_with(ctx, m, &mid, false),
            )));
            items.extend(comment_narrative(ctx, m));
        }
    }
    let mut notes = Vec::new();
    if members.is_empty() {
        if let Some(v) = value_text(o.value.as_ref()) {
            notes.push(format!("Value: {v}"));
        }
        if let Some(c) = o.comment.as_deref() {
            notes.push(c.to_string());
        }
        if let Some(i) = o.interpretation.as_ref().and_then(|i| i.text_or_display()) {
            notes.push(format!("Interpretation: {i}"));
        }
    }
    if !notes.is_empty() {
        items.push(Statement::NarrativeStatement(Box::new(
            NarrativeStatement {
                class_code: Some("OBS".into()),
                mood_code: Some("EVN".into()),
                id: ii(ctx.id(&format!("{label}#comment"))),
                text: text(&notes.join("\n")),
                status_code: cs("COMPLETE"),
                availability_time: availability(issued.as_deref().or(start.as_deref())),
                confidentiality_code: conf.clone(),
                ..NarrativeStatement::default()
            },
        )));
    }
    if items.is_empty() {
        // Unreachable in practice (callers check), but a BATTERY needs a component.
        items.push(Statement::ObservationStatement(Box::new(
            observation_statement(ctx, o, &ctx.id(&format!("{label}#self"))),
        )));
    }
    Statement::CompoundStatement(Box::new(CompoundStatement {
        class_code: Some("BATTERY".into()),
        mood_code: Some("EVN".into()),
        id: vec![II::root(id)],
        code: bx(code),
        status_code: cs("COMPLETE"),
        effective_time: effective(start.as_deref(), end.as_deref()),
        availability_time: availability(issued.as_deref().or(start.as_deref())),
        confidentiality_code: conf,
        component: items.into_iter().map(|s| component(s, true)).collect(),
        participant: performer.iter().map(|p| participant("PRF", p)).collect(),
        ..CompoundStatement::default()
    }))
}

/// The `ObservationStatement` for one Observation: code, time, value, interpretation,
/// reference ranges, comment.
pub(crate) fn observation_statement(
    ctx: &mut Ctx<'_>,
    o: &Observation,
    id: &str,
) -> ObservationStatement {
    observation_statement_with(ctx, o, id, true)
}

/// A result's comment as a `NarrativeStatement` of its own (as the NHS adaptor sends
/// test result comments), when it has one.
pub(crate) fn comment_narrative(ctx: &Ctx<'_>, o: &Observation) -> Option<Statement> {
    let c = o.comment.as_deref().filter(|c| !c.trim().is_empty())?;
    let oid = o.id.as_deref().unwrap_or("");
    let (start, _) = choice_times(o.effective.as_ref());
    let issued = o.issued.as_ref().and_then(hl7_ts);
    Some(Statement::NarrativeStatement(Box::new(
        NarrativeStatement {
            class_code: Some("OBS".into()),
            mood_code: Some("EVN".into()),
            id: ii(ctx.id(&format!("Observation/{oid}#comment"))),
            text: text(c),
            status_code: cs("COMPLETE"),
            availability_time: availability(issued.as_deref().or(start.as_deref())),
            confidentiality_code: ctx.confidentiality(o.meta.as_ref()),
            ..NarrativeStatement::default()
        },
    )))
}

/// Like [`observation_statement`]; `comment_inline` false leaves the comment out (the
/// caller sends it as a [`comment_narrative`]).
pub(crate) fn observation_statement_with(
    ctx: &mut Ctx<'_>,
    o: &Observation,
    id: &str,
    comment_inline: bool,
) -> ObservationStatement {
    let oid = o.id.as_deref().unwrap_or("");
    let label = format!("Observation/{oid}");
    let code = concept(
        ctx,
        o.code.as_ref(),
        Snomed::Description,
        Item {
            source: &label,
            kind: "Observation",
            degrade: DegradeCode::Other,
        },
    );
    let (start, end) = choice_times(o.effective.as_ref());
    let issued = o.issued.as_ref().and_then(hl7_ts);
    let mut notes = Vec::new();
    let value = value_element(o.value.as_ref(), &mut notes);
    if let Some(i) = o.interpretation.as_ref().and_then(|i| i.text_or_display()) {
        notes.push(format!("Interpretation: {i}"));
    }
    if let Some(d) = o
        .data_absent_reason
        .as_ref()
        .and_then(|d| d.text_or_display())
    {
        notes.push(format!("Data absent: {d}"));
    }
    if let Some(b) = o.body_site.as_ref().and_then(|b| b.text_or_display()) {
        notes.push(format!("Body site: {b}"));
    }
    if let Some(m) = o.method.as_ref().and_then(|b| b.text_or_display()) {
        notes.push(format!("Method: {m}"));
    }
    if comment_inline && let Some(c) = o.comment.as_deref() {
        notes.push(c.to_string());
    }
    let performer = agent_for_opt(ctx, o.performer.first());
    ObservationStatement {
        class_code: Some("OBS".into()),
        mood_code: Some("EVN".into()),
        id: ii(id),
        code: bx(code),
        status_code: cs("COMPLETE"),
        effective_time: effective(start.as_deref(), end.as_deref()),
        availability_time: availability(issued.as_deref().or(start.as_deref())),
        confidentiality_code: ctx.confidentiality(o.meta.as_ref()),
        value,
        interpretation_code: interpretation(o.interpretation.as_ref()),
        pertinent_information: annotation(&notes.join(" ")),
        reference_range: o
            .reference_range
            .iter()
            .filter_map(reference_range)
            .collect(),
        participant: performer.iter().map(|p| participant("PRF", p)).collect(),
        ..ObservationStatement::default()
    }
}

/// A value as an HL7 `value` (`PQ` for quantities, `CD` for coded values); others (text,
/// ranges, ratios) go to `notes`.
fn value_element(v: Option<&Choice>, notes: &mut Vec<String>) -> Option<Box<Element>> {
    let v = v?;
    if let Some(q) = v.as_quantity()
        && q.comparator.is_none()
        && let Some(value) = q.value.as_ref()
    {
        let pq = super::build::pq(value.as_str(), q.unit.as_deref(), ucum(q));
        let mut e = pq.to_element("value");
        e.attrs.push(hl7v3::xml::Attribute::new("xsi:type", "PQ"));
        return Some(Box::new(e));
    }
    if let Some(cc) = v.as_codeable_concept()
        && let Some(k) = cc
            .coding
            .iter()
            .find(|k| k.is_system(systems::SNOMED_CT) && super::codes::snomed_id(k).is_some())
    {
        let cd = super::codes::snomed_cd(k, Snomed::Description);
        let mut e = cd.to_element("value");
        e.attrs.push(hl7v3::xml::Attribute::new("xsi:type", "CD"));
        return Some(Box::new(e));
    }
    if let Some(t) = value_text(Some(v)) {
        notes.push(format!("Value: {t}"));
    }
    None
}

fn ucum(q: &Quantity) -> Option<&str> {
    if q.system.as_deref() == Some(systems::UCUM) {
        q.code.as_deref()
    } else {
        None
    }
}

/// A value in words.
pub(crate) fn value_text(v: Option<&Choice>) -> Option<String> {
    let v = v?;
    if let Some(q) = v.as_quantity() {
        return Some(quantity_text(q));
    }
    if let Some(s) = v.as_str() {
        return Some(s.to_string());
    }
    if let Some(c) = v.as_codeable_concept() {
        return c.text_or_display().map(str::to_string);
    }
    if let Some(b) = v.as_bool() {
        return Some(b.to_string());
    }
    if let Some(i) = v.as_integer() {
        return Some(i.to_string());
    }
    if let Some(r) = v.as_range() {
        return Some(format!(
            "{} to {}",
            r.low.as_ref().map(quantity_text).unwrap_or_default(),
            r.high.as_ref().map(quantity_text).unwrap_or_default()
        ));
    }
    if let Some(d) = v.as_date_time() {
        return Some(d.as_str().to_string());
    }
    if let Choice::Ratio(r) = v {
        return Some(format!(
            "{} / {}",
            r.numerator.as_ref().map(quantity_text).unwrap_or_default(),
            r.denominator
                .as_ref()
                .map(quantity_text)
                .unwrap_or_default()
        ));
    }
    if let Some(p) = v.as_period() {
        return Some(format!(
            "{} to {}",
            p.start.as_ref().map(|d| d.as_str()).unwrap_or(""),
            p.end.as_ref().map(|d| d.as_str()).unwrap_or("")
        ));
    }
    None
}

pub(crate) fn quantity_text(q: &Quantity) -> String {
    join(&[
        q.comparator.clone().unwrap_or_default(),
        q.value
            .as_ref()
            .map(|v| v.as_str().to_string())
            .unwrap_or_default(),
        q.unit
            .clone()
            .or_else(|| q.code.clone())
            .unwrap_or_default(),
    ])
}

/// HL7 v2 table 0078 interpretation → the GP2GP interpretation code.
fn interpretation(i: Option<&fhir::CodeableConcept>) -> Option<Box<CD>> {
    let code = i?
        .coding
        .iter()
        .find(|k| k.is_system("http://hl7.org/fhir/v2/0078"))?
        .code
        .as_deref()?;
    let (c, d) = match code {
        "H" | "HH" | "HU" => ("HI", "Above high reference limit"),
        "L" | "LL" | "LU" => ("LO", "Below low reference limit"),
        "A" | "AA" => ("PA", "Potentially abnormal"),
        _ => return None,
    };
    bx(CD::new(c, "2.16.840.1.113883.2.1.6.5", Some(d)))
}

fn reference_range(r: &ObservationReferenceRange) -> Option<ReferenceRange> {
    let bound = |q: Option<&Quantity>| -> Option<Box<hl7v3::datatypes::PQ>> {
        let q = q?;
        let v = q.value.as_ref()?;
        let mut pq = super::build::pq(v.as_str(), q.unit.as_deref(), ucum(q));
        // Interval bounds carry no unit translations.
        pq.translation.clear();
        if pq.unit.as_deref() == Some("1") {
            pq.unit = None;
        }
        bx(pq)
    };
    let low = bound(r.low.as_ref());
    let high = bound(r.high.as_ref());
    let text_value = r.text.clone().or_else(|| {
        (low.is_some() || high.is_some()).then(|| {
            format!(
                "Range: {} to {}",
                r.low.as_ref().map(quantity_text).unwrap_or_default(),
                r.high.as_ref().map(quantity_text).unwrap_or_default()
            )
        })
    })?;
    Some(ReferenceRange {
        type_code: Some("REFV".into()),
        reference_interpretation_range: bx(InterpretationRange {
            class_code: Some("OBS".into()),
            mood_code: Some("EVN.CRT".into()),
            text: text(&text_value),
            value: (low.is_some() || high.is_some()).then(|| {
                Box::new(IVL_PQ {
                    low,
                    high,
                    ..IVL_PQ::default()
                })
            }),
            ..InterpretationRange::default()
        }),
        ..ReferenceRange::default()
    })
}

/// Immunization → `ObservationStatement`: the vaccination procedure's code (or the
/// vaccine's), the date given, and the vaccine details in its annotation.
pub(crate) fn map_immunization(ctx: &mut Ctx<'_>, i: &Immunization) -> Statement {
    let iid = i.id.as_deref().unwrap_or("");
    let label = format!("Immunization/{iid}");
    let procedure = i
        .find_extension(fhir::systems::extension::VACCINATION_PROCEDURE)
        .and_then(|e| e.value.as_ref())
        .and_then(|v| v.as_codeable_concept());
    let code = concept(
        ctx,
        procedure.or(i.vaccine_code.as_ref()),
        Snomed::Description,
        Item {
            source: &label,
            kind: "Immunization",
            degrade: DegradeCode::Other,
        },
    );
    let date = i.date.as_ref().and_then(hl7_ts);
    let recorded = i
        .find_extension(fhir::systems::extension::DATE_RECORDED)
        .and_then(|e| e.value.as_ref())
        .and_then(|v| v.as_date_time())
        .and_then(hl7_ts);
    let mut notes = Vec::new();
    if procedure.is_some()
        && let Some(v) = i.vaccine_code.as_ref().and_then(|v| v.text_or_display())
    {
        notes.push(format!("Vaccine: {v}"));
    }
    if i.not_given == Some(true) {
        notes.push("Not given".into());
    }
    if let Some(s) = i.status.as_deref().filter(|s| *s != "completed") {
        notes.push(format!("Status: {s}"));
    }
    if let Some(l) = i.lot_number.as_deref() {
        notes.push(format!("Batch: {l}"));
    }
    if let Some(d) = i.expiration_date.as_ref() {
        notes.push(format!("Expiration: {}", d.as_str()));
    }
    if let Some(s) = i.site.as_ref().and_then(|s| s.text_or_display()) {
        notes.push(format!("Site: {s}"));
    }
    if let Some(s) = i.route.as_ref().and_then(|s| s.text_or_display()) {
        notes.push(format!("Route: {s}"));
    }
    if let Some(q) = i.dose_quantity.as_ref() {
        notes.push(format!("Quantity: {}", quantity_text(q)));
    }
    if let Some(e) = i.explanation.as_ref() {
        for r in e.reason.iter().filter_map(|r| r.text_or_display()) {
            notes.push(format!("Reason: {r}"));
        }
        for r in e
            .reason_not_given
            .iter()
            .filter_map(|r| r.text_or_display())
        {
            notes.push(format!("Reason not given: {r}"));
        }
    }
    if i.primary_source == Some(false) {
        notes.push("Reported by another source".into());
    }
    for n in i.note.iter().filter_map(|n| n.text.as_deref()) {
        notes.push(n.to_string());
    }
    let performer = agent_for_opt(ctx, i.practitioner.first().and_then(|p| p.actor.as_ref()));
    Statement::ObservationStatement(Box::new(ObservationStatement {
        class_code: Some("OBS".into()),
        mood_code: Some("EVN".into()),
        id: ii(ctx.res_id("Immunization", iid)),
        code: bx(code),
        status_code: cs("COMPLETE"),
        effective_time: effective(date.as_deref(), None),
        availability_time: availability(recorded.as_deref().or(date.as_deref())),
        confidentiality_code: ctx.confidentiality(i.meta.as_ref()),
        pertinent_information: annotation(&notes.join(" ")),
        participant: performer.iter().map(|p| participant("PRF", p)).collect(),
        ..ObservationStatement::default()
    }))
}
