//! Condition (a problem) → `LinkSet`: its status and significance as the code,
//! `conditionNamed` pointing at the statement that names the problem, and a component for
//! each statement linked to it. When no observation names the problem, an
//! `ObservationStatement` carrying the problem's own code is written beside the LinkSet.

use crate::hash::HashSet;

use fhir::{Condition, Reference, Resource, systems::extension};
use hl7v3::datatypes::CR;
use hl7v3::ehr::{
    CompositionComponent, ConditionNamed, LinkSet, LinkSetComponent, ObservationStatement,
    Statement,
};

use super::Ctx;
use super::agents::agent_for_opt;
use super::allergies::annotation;
use super::build::*;
use super::codes::{Item, Snomed, concept, fixed};
use crate::DegradeCode;

pub(crate) fn map_condition(ctx: &mut Ctx<'_>, c: &Condition) -> Vec<Statement> {
    let cid = c.id.as_deref().unwrap_or("");
    let label = format!("Condition/{cid}");
    let (onset, _) = choice_times(c.onset.as_ref());
    let (abatement, _) = choice_times(c.abatement.as_ref());
    let asserted = c.asserted_date.as_ref().and_then(hl7_ts);
    let conf = ctx.confidentiality(c.meta.as_ref());
    let performer = agent_for_opt(ctx, c.asserter.as_ref());

    // The statement that names the problem: the actual problem when it is an observation
    // of the Bundle, else one written here.
    let actual = c
        .find_extension(extension::ACTUAL_PROBLEM)
        .and_then(|e| e.value.as_ref())
        .and_then(|v| v.as_reference());
    let actual_obs = actual
        .and_then(|r| ctx.store.resolve(r))
        .filter(|r| matches!(**r, Resource::Observation(_)));
    let mut out = Vec::new();
    let named_id = match actual_obs {
        Some(o) => ctx.res_id("Observation", o.id().unwrap_or("")),
        None => {
            let id = ctx.id(&format!("{label}#problem"));
            let code = concept(
                ctx,
                c.code.as_ref(),
                Snomed::Description,
                Item {
                    source: &label,
                    kind: "Condition",
                    degrade: DegradeCode::Other,
                },
            );
            let mut notes: Vec<String> = c.note.iter().filter_map(|n| n.text.clone()).collect();
            if let Some(a) = actual.and_then(|r| ctx.store.resolve(r)) {
                notes.insert(0, format!("Problem recorded as {}", a.resource_type()));
            }
            out.push(Statement::ObservationStatement(Box::new(
                ObservationStatement {
                    class_code: Some("OBS".into()),
                    mood_code: Some("EVN".into()),
                    id: ii(&id),
                    code: bx(code),
                    status_code: cs("COMPLETE"),
                    effective_time: effective(onset.as_deref(), abatement.as_deref()),
                    availability_time: availability(asserted.as_deref().or(onset.as_deref())),
                    confidentiality_code: conf.clone(),
                    pertinent_information: annotation(&notes.join(" ")),
                    participant: performer.iter().map(|p| participant("PRF", p)).collect(),
                    ..ObservationStatement::default()
                },
            )));
            id
        }
    };

    // The linked statements.
    let mut links = Vec::new();
    let mut seen = HashSet::default();
    for e in c
        .extension
        .iter()
        .filter(|e| e.url.as_deref() == Some(extension::RELATED_CLINICAL_CONTENT))
    {
        let Some(r) = e.value.as_ref().and_then(|v| v.as_reference()) else {
            continue;
        };
        match link_target(ctx, r) {
            Ok(id) => {
                if id != named_id && seen.insert(id.clone()) {
                    links.push(LinkSetComponent {
                        type_code: Some("COMP".into()),
                        statement_ref: statement_ref(&id),
                        ..LinkSetComponent::default()
                    });
                }
            }
            Err(reason) => ctx.unmapped(label.clone(), "Condition link", reason),
        }
    }

    let active = c.clinical_status.as_deref().is_none_or(|s| s == "active");
    let mut code = if active {
        fixed("394774009", "Active Problem")
    } else {
        fixed("394775005", "Inactive Problem")
    };
    if let Some(sig) = c
        .find_extension(extension::PROBLEM_SIGNIFICANCE)
        .and_then(|e| e.value.as_ref())
        .and_then(|v| v.as_str())
    {
        let (q, d) = if sig.eq_ignore_ascii_case("major") {
            ("386134007", "Significant")
        } else {
            ("394847000", "Unspecified significance")
        };
        code.qualifier.push(CR {
            inverted: Some("false".into()),
            name: bx(fixed(q, d)),
            ..CR::default()
        });
        code.original_text = text(&format!(
            "{} Problem, {}",
            if active { "Active" } else { "Inactive" },
            sig.to_ascii_lowercase()
        ));
    }
    let link_set = LinkSet {
        class_code: Some("OBS".into()),
        mood_code: Some("EVN".into()),
        id: ii(ctx.res_id("Condition", cid)),
        code: bx(code),
        status_code: cs("COMPLETE"),
        effective_time: effective_low(onset.as_deref(), abatement.as_deref()),
        availability_time: availability(asserted.as_deref().or(onset.as_deref())),
        confidentiality_code: conf,
        component: links,
        condition_named: bx(ConditionNamed {
            type_code: Some("NAME".into()),
            inversion_ind: Some("true".into()),
            named_statement_ref: statement_ref(&named_id),
            ..ConditionNamed::default()
        }),
        participant: performer.iter().map(|p| participant("PRF", p)).collect(),
        ..LinkSet::default()
    };
    out.insert(0, Statement::LinkSet(Box::new(link_set)));
    out
}

/// The id of the statement a problem's related content becomes.
fn link_target(ctx: &Ctx<'_>, r: &Reference) -> Result<String, String> {
    let what = r.reference.clone().unwrap_or_default();
    let Some(res) = ctx.store.resolve(r) else {
        return Err(format!(
            "related content {what} names no resource of the Bundle"
        ));
    };
    let id = res.id().unwrap_or("");
    match &*res {
        // A course is sent as its authorisation.
        Resource::MedicationStatement(m) => m
            .based_on
            .iter()
            .find_map(|b| ctx.store.resolve_as::<fhir::MedicationRequest>(b))
            .and_then(|p| p.id.as_deref().map(|p| ctx.res_id("MedicationRequest", p)))
            .ok_or_else(|| format!("related medication {what} has no authorisation to link to")),
        Resource::Encounter(_) | Resource::List(_) => Err(format!(
            "the link to {what} is not carried: GP2GP links problems to statements, not to consultations"
        )),
        r if super::is_statement_resource(r) => Ok(ctx.res_id(r.resource_type(), id)),
        _ => Err(format!(
            "related content {what} is not a clinical statement"
        )),
    }
}

/// Removes links to statements that were not written (a resource that could not be
/// mapped), with a report line for each: a LinkSet must only point at statements in the
/// extract.
pub(crate) fn prune_links(ctx: &mut Ctx<'_>, compositions: &mut [CompositionComponent]) {
    let mut ids = HashSet::default();
    for c in compositions.iter() {
        if let Some(comp) = &c.ehr_composition {
            for sc in &comp.component {
                if let Some(s) = &sc.statement {
                    collect_ids(s, &mut ids);
                }
            }
        }
    }
    let mut dropped = Vec::new();
    for c in compositions.iter_mut() {
        if let Some(comp) = c.ehr_composition.as_mut() {
            for sc in comp.component.iter_mut() {
                if let Some(s) = sc.statement.as_mut() {
                    prune(s, &ids, &mut dropped);
                }
            }
        }
    }
    report_dropped(ctx, dropped);
}

/// A report line for each link [`prune`] dropped: (LinkSet, statement).
pub(crate) fn report_dropped(ctx: &mut Ctx<'_>, dropped: Vec<(String, String)>) {
    for (linkset, target) in dropped {
        ctx.unmapped(
            format!("LinkSet {linkset}"),
            "Condition link",
            format!("the linked statement {target} is not in the extract"),
        );
    }
}

pub(crate) fn collect_ids(s: &Statement, ids: &mut HashSet<String>) {
    let mut stack = vec![s];
    while let Some(s) = stack.pop() {
        if let Some(id) = s.id().and_then(|i| i.root.clone()) {
            ids.insert(id);
        }
        if let Statement::CompoundStatement(c) = s {
            stack.extend(c.component.iter().filter_map(|sc| sc.statement.as_ref()));
        }
    }
}

/// Drops a LinkSet's links (at any depth of `s`) to statements not in `ids`, noting each
/// in `dropped`.
pub(crate) fn prune(s: &mut Statement, ids: &HashSet<String>, dropped: &mut Vec<(String, String)>) {
    match s {
        Statement::LinkSet(l) => {
            let own =
                l.id.as_ref()
                    .and_then(|i| i.root.clone())
                    .unwrap_or_default();
            l.component.retain(|c| {
                let target = c
                    .statement_ref
                    .as_ref()
                    .and_then(|r| r.id.as_ref())
                    .and_then(|i| i.root.clone())
                    .unwrap_or_default();
                let keep = ids.contains(&target);
                if !keep {
                    dropped.push((own.clone(), target));
                }
                keep
            });
        }
        Statement::CompoundStatement(c) => {
            for sc in c.component.iter_mut() {
                if let Some(s) = sc.statement.as_mut() {
                    prune(s, ids, dropped);
                }
            }
        }
        _ => {}
    }
}
