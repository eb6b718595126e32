//! DiagnosticReport → `CompoundStatement` `CLUSTER` ("laboratory reporting"): the report's
//! comments and conclusion as `NarrativeStatement`s, then one `CLUSTER` per specimen
//! (with its `specimen`) holding that specimen's results; results with no specimen follow.
//! A test group is a `BATTERY` of its results; a single result is a `CLUSTER` of its
//! `ObservationStatement` and its comments.

use crate::hash::HashSet;

use fhir::{DiagnosticReport, Observation, Specimen};
use hl7v3::datatypes::{II, IVL_TS};
use hl7v3::ehr::{
    CompoundStatement, NarrativeStatement, SpecimenMaterial, SpecimenRole, Statement,
};

use super::Ctx;
use super::agents::agent_for_opt;
use super::build::*;
use super::codes::{fixed, fixed_with_text};
use super::observations::{
    battery, comment_narrative, is_comment, narrative, observation_statement_with,
};
use super::prescan::{derived_refs, member_refs};
use super::store::Typed;

/// A specimen (or none, for results without one) and the results taken from it.
type SpecimenResults<'a> = (Option<Typed<'a, Specimen>>, Vec<Typed<'a, Observation>>);

/// The `Type/id` a comment is derived from.
fn derived_from(ctx: &Ctx<'_>, o: &Observation) -> Option<String> {
    derived_refs(o).find_map(|r| ctx.store.resolve_label(r))
}

/// The members of a test group.
pub(crate) fn members<'a>(ctx: &Ctx<'a>, o: &Observation) -> Vec<Typed<'a, Observation>> {
    member_refs(o)
        .filter_map(|t| ctx.store.resolve_as::<Observation>(t))
        .collect()
}

pub(crate) fn map_report<'a>(ctx: &mut Ctx<'a>, d: &DiagnosticReport) -> Statement {
    let did = d.id.as_deref().unwrap_or("");
    let label = format!("DiagnosticReport/{did}");
    let issued = d.issued.as_ref().and_then(hl7_ts);
    let (start, end) = choice_times(d.effective.as_ref());
    let conf = ctx.confidentiality(d.meta.as_ref());
    let performer = agent_for_opt(ctx, d.performer.first().and_then(|p| p.actor.as_ref()));

    let results: Vec<Typed<'a, Observation>> = d
        .result
        .iter()
        .filter_map(|r| ctx.store.resolve_as::<Observation>(r))
        .collect();
    for r in &d.result {
        if ctx.store.resolve_as::<Observation>(r).is_none() {
            ctx.unmapped(
                label.clone(),
                "DiagnosticReport.result",
                format!(
                    "result {} names no Observation of the Bundle",
                    r.reference.as_deref().unwrap_or("(none)")
                ),
            );
        }
    }
    let result_labels: HashSet<String> = results
        .iter()
        .map(|o| format!("Observation/{}", o.id.as_deref().unwrap_or("")))
        .collect();
    // Comments about a result (derived from it), to go beside it.
    let comments_on = |ctx: &Ctx<'a>, target: &str| -> Vec<Typed<'a, Observation>> {
        ctx.lookups
            .comments
            .get(target)
            .into_iter()
            .flatten()
            .filter_map(|&p| ctx.store.get_as::<Observation>(p))
            .collect()
    };

    let mut items: Vec<Statement> = Vec::new();
    // Report-level text: the conclusion, comments that are results of the report itself.
    let mut report_text = Vec::new();
    if let Some(c) = d.conclusion.as_deref() {
        report_text.push(format!("Conclusion: {c}"));
    }
    for c in d.coded_diagnosis.iter().filter_map(|c| c.text_or_display()) {
        report_text.push(format!("Diagnosis: {c}"));
    }
    if let Some(acc) = d
        .identifier
        .iter()
        .find(|i| i.system.as_deref().is_some_and(|s| !s.contains("EMISWeb")))
        .and_then(|i| i.value.as_deref())
    {
        report_text.push(format!("Report id: {acc}"));
    }
    if let Some(s) = d.status.as_deref() {
        report_text.push(format!("Status: {s}"));
    }
    for (i, t) in report_text.iter().enumerate() {
        items.push(Statement::NarrativeStatement(Box::new(
            NarrativeStatement {
                class_code: Some("OBS".into()),
                mood_code: Some("EVN".into()),
                id: ii(ctx.id(&format!("{label}#text{i}"))),
                text: text(t),
                status_code: cs("COMPLETE"),
                availability_time: availability(issued.as_deref()),
                confidentiality_code: conf.clone(),
                ..NarrativeStatement::default()
            },
        )));
    }
    // Which results belong to which specimen; comments that are results of the report
    // itself (not derived from another result) go first.
    let mut by_specimen: Vec<SpecimenResults<'a>> = d
        .specimen
        .iter()
        .filter_map(|s| ctx.store.resolve_as::<Specimen>(s))
        .map(|s| (Some(s), Vec::new()))
        .collect();
    let mut loose = Vec::new();
    // Members of groups that are themselves results of this report.
    let grouped: HashSet<usize> = results
        .iter()
        .flat_map(|g| members(ctx, g))
        .map(|m| m.pos())
        .collect();
    for o in &results {
        // A member of a group that is itself a result of this report is sent in the group.
        if grouped.contains(&o.pos()) {
            continue;
        }
        if is_comment(o) {
            let target = derived_from(ctx, o);
            if target.as_ref().is_some_and(|t| result_labels.contains(t)) {
                continue; // sent beside its result
            }
            let oid = ctx.res_id("Observation", o.id.as_deref().unwrap_or(""));
            items.push(narrative(ctx, o, &oid));
            continue;
        }
        let spec = o.specimen.as_ref().and_then(|s| ctx.store.resolve_pos(s));
        match spec.and_then(|s| {
            by_specimen
                .iter()
                .position(|(x, _)| x.as_ref().is_some_and(|x| x.pos() == s))
        }) {
            Some(i) => by_specimen[i].1.push(o.clone()),
            None => loose.push(o.clone()),
        }
    }
    for (spec, obs) in by_specimen {
        let Some(spec) = spec else { continue };
        let mut inner = Vec::new();
        if let Some(n) = specimen_note(ctx, &spec, issued.as_deref()) {
            inner.push(n);
        }
        for o in obs {
            let comments = comments_on(
                ctx,
                &format!("Observation/{}", o.id.as_deref().unwrap_or("")),
            );
            inner.push(result(ctx, &o, &comments));
        }
        if inner.is_empty() {
            inner.push(Statement::NarrativeStatement(Box::new(
                NarrativeStatement {
                    class_code: Some("OBS".into()),
                    mood_code: Some("EVN".into()),
                    id: ii(ctx.id(&format!(
                        "Specimen/{}#none",
                        spec.id.as_deref().unwrap_or("")
                    ))),
                    text: text("No results recorded for this specimen."),
                    status_code: cs("COMPLETE"),
                    availability_time: availability(issued.as_deref()),
                    ..NarrativeStatement::default()
                },
            )));
        }
        items.push(specimen_cluster(ctx, &spec, issued.as_deref(), inner));
    }
    for o in loose {
        let c = comments_on(
            ctx,
            &format!("Observation/{}", o.id.as_deref().unwrap_or("")),
        );
        items.push(result(ctx, &o, &c));
    }
    if items.is_empty() {
        items.push(Statement::NarrativeStatement(Box::new(
            NarrativeStatement {
                class_code: Some("OBS".into()),
                mood_code: Some("EVN".into()),
                id: ii(ctx.id(&format!("{label}#empty"))),
                text: text("The report has no results."),
                status_code: cs("COMPLETE"),
                availability_time: availability(issued.as_deref()),
                ..NarrativeStatement::default()
            },
        )));
    }
    let report_name = d.code.as_ref().and_then(|c| c.text_or_display());
    Statement::CompoundStatement(Box::new(CompoundStatement {
        class_code: Some("CLUSTER".into()),
        mood_code: Some("EVN".into()),
        id: vec![II::root(ctx.res_id("DiagnosticReport", did))],
        code: bx(fixed_with_text(
            "16488004",
            "laboratory reporting",
            report_name,
        )),
        status_code: cs("COMPLETE"),
        effective_time: effective(start.as_deref().or(issued.as_deref()), end.as_deref()),
        availability_time: availability(issued.as_deref().or(start.as_deref())),
        confidentiality_code: conf,
        component: items.into_iter().map(|s| component(s, true)).collect(),
        participant: performer.iter().map(|p| participant("PRF", p)).collect(),
        ..CompoundStatement::default()
    }))
}

/// One result: a group → `BATTERY`; a single result → `CLUSTER` of the observation and
/// its comments.
fn result(
    ctx: &mut Ctx<'_>,
    o: &Typed<'_, Observation>,
    comments: &[Typed<'_, Observation>],
) -> Statement {
    let oid = o.id.as_deref().unwrap_or("");
    let id = ctx.res_id("Observation", oid);
    let mut m = members(ctx, o);
    for c in comments {
        if !m.iter().any(|x| x.pos() == c.pos()) {
            m.push(c.clone());
        }
    }
    let group = !members(ctx, o).is_empty() || !o.component.is_empty();
    if group {
        return battery(ctx, o, &id, &m);
    }
    let obs =
        observation_statement_with(ctx, o, &ctx.id(&format!("Observation/{oid}#result")), false);
    let mut items = vec![Statement::ObservationStatement(Box::new(obs.clone()))];
    items.extend(comment_narrative(ctx, o));
    for c in comments {
        let cid = ctx.res_id("Observation", c.id.as_deref().unwrap_or(""));
        items.push(narrative(ctx, c, &cid));
    }
    Statement::CompoundStatement(Box::new(CompoundStatement {
        class_code: Some("CLUSTER".into()),
        mood_code: Some("EVN".into()),
        id: vec![II::root(id)],
        code: obs.code.clone(),
        status_code: cs("COMPLETE"),
        effective_time: obs.effective_time.clone(),
        availability_time: obs.availability_time.clone(),
        confidentiality_code: obs.confidentiality_code.clone(),
        component: items.into_iter().map(|s| component(s, true)).collect(),
        ..CompoundStatement::default()
    }))
}

/// What a specimen's record says beyond its type and date, as text.
fn specimen_note(ctx: &Ctx<'_>, s: &Specimen, issued: Option<&str>) -> Option<Statement> {
    let mut parts = Vec::new();
    if let Some(a) = s
        .accession_identifier
        .as_ref()
        .and_then(|a| a.value.as_deref())
    {
        parts.push(format!("Accession id: {a}"));
    }
    if let Some(r) = s.received_time.as_ref() {
        parts.push(format!("Received: {}", r.as_str()));
    }
    if let Some(c) = s.collection.as_ref() {
        if let Some(q) = c.quantity.as_ref() {
            parts.push(format!(
                "Quantity: {}",
                super::observations::quantity_text(q)
            ));
        }
        if let Some(b) = c.body_site.as_ref().and_then(|b| b.text_or_display()) {
            parts.push(format!("Body site: {b}"));
        }
        if let Some(f) = c
            .find_extension(fhir::systems::extension::FASTING_STATUS)
            .and_then(|e| e.value.as_ref())
            .and_then(|v| {
                v.as_codeable_concept()
                    .and_then(|c| c.text_or_display())
                    .map(str::to_string)
                    .or_else(|| v.as_str().map(str::to_string))
            })
        {
            parts.push(format!("Fasting status: {f}"));
        }
    }
    for n in s.note.iter().filter_map(|n| n.text.as_deref()) {
        parts.push(n.to_string());
    }
    if parts.is_empty() {
        return None;
    }
    Some(Statement::NarrativeStatement(Box::new(
        NarrativeStatement {
            class_code: Some("OBS".into()),
            mood_code: Some("EVN".into()),
            id: ii(ctx.id(&format!("Specimen/{}#note", s.id.as_deref().unwrap_or("")))),
            text: text(&parts.join("\n")),
            status_code: cs("COMPLETE"),
            availability_time: availability(issued),
            confidentiality_code: ctx.confidentiality(s.meta.as_ref()),
            ..NarrativeStatement::default()
        },
    )))
}

fn specimen_cluster(
    ctx: &Ctx<'_>,
    s: &Specimen,
    issued: Option<&str>,
    inner: Vec<Statement>,
) -> Statement {
    let sid = s.id.as_deref().unwrap_or("");
    let (collected, _) = choice_times(s.collection.as_ref().and_then(|c| c.collected.as_ref()));
    let material = s
        .r#type
        .as_ref()
        .and_then(|t| t.text_or_display())
        .unwrap_or("Unknown specimen type");
    Statement::CompoundStatement(Box::new(CompoundStatement {
        class_code: Some("CLUSTER".into()),
        mood_code: Some("EVN".into()),
        id: vec![II::root(ctx.id(&format!("Specimen/{sid}#cluster")))],
        code: bx(fixed("123038009", "specimen (specimen)")),
        status_code: cs("COMPLETE"),
        effective_time: effective(collected.as_deref(), None),
        availability_time: availability(issued.or(collected.as_deref())),
        confidentiality_code: ctx.confidentiality(s.meta.as_ref()),
        specimen: vec![hl7v3::ehr::Specimen {
            type_code: Some("SPC".into()),
            specimen_role: bx(SpecimenRole {
                class_code: Some("SPEC".into()),
                id: vec![II::root(ctx.res_id("Specimen", sid))],
                effective_time: collected.as_deref().map(|c| Box::new(IVL_TS::center(c))),
                specimen_specimen_material: bx(SpecimenMaterial {
                    class_code: Some("MAT".into()),
                    determiner_code: Some("INSTANCE".into()),
                    desc: text(material),
                    ..SpecimenMaterial::default()
                }),
                ..SpecimenRole::default()
            }),
            ..hl7v3::ehr::Specimen::default()
        }],
        component: inner.into_iter().map(|s| component(s, true)).collect(),
        ..CompoundStatement::default()
    }))
}
