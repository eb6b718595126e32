//! Compositions: consultations (Encounter + its Lists → TOPIC → CATEGORY → statements),
//! and one composition for each clinical item recorded outside a consultation.

use fhir::{CodeableConcept, Encounter, List, Reference, Resource, systems};
use hl7v3::datatypes::CD;
use hl7v3::ehr::{
    Author, CompositionComponent, CompoundStatement, EhrComposition, LocatedEntity, Location,
    NarrativeStatement, Participant2, Place, Statement, StatementComponent,
};
use hl7v3::xml::Element;

use super::agents::{agent_for, agent_for_opt};
use super::build::*;
use super::codes::{Snomed, fixed, fixed_with_text, snomed_cd};
use super::{Ctx, is_statement_type, is_structural_type, map_resource};

/// SNOMED CT code of a consultation List.
pub(crate) const CONSULTATION_LIST: &str = "325851000000107";
/// SNOMED CT code of a topic List.
const TOPIC_LIST: &str = "25851000000105";
/// SNOMED CT code of a category (heading) List.
const CATEGORY_LIST: &str = "24781000000107";

pub(crate) fn list_has_code(l: &List, code: &str) -> bool {
    l.code
        .as_ref()
        .is_some_and(|c| c.coding.iter().any(|k| k.code.as_deref() == Some(code)))
}

/// Every Encounter with its consultation List becomes an `ehrComposition`.
pub(crate) fn map_consultations<'a>(
    ctx: &mut Ctx<'a>,
    emit: &mut dyn FnMut(&mut Ctx<'a>, CompositionComponent),
) {
    for pos in ctx.store.positions_of::<Encounter>() {
        let Some(enc) = ctx.store.get_as::<Encounter>(pos) else {
            continue;
        };
        let Some(eid) = enc.id.as_deref() else {
            ctx.unmapped(
                "Encounter".into(),
                "Encounter",
                "the Encounter has no id, so no List can refer to it",
            );
            continue;
        };
        let label = format!("Encounter/{eid}");
        let consultation = ctx
            .lookups
            .consultations
            .get(&label)
            .and_then(|&p| ctx.store.get_as::<List>(p));
        let mut components = Vec::new();
        if let Some(list) = consultation {
            for entry in &list.entry {
                let Some(target) = entry.item.as_ref().and_then(|r| ctx.store.resolve(r)) else {
                    unresolved(
                        ctx,
                        &format!("List/{}", list.id.as_deref().unwrap_or("")),
                        entry.item.as_ref(),
                    );
                    continue;
                };
                match &*target {
                    Resource::List(topic) if list_has_code(topic, TOPIC_LIST) => {
                        if let Some(s) = map_topic(ctx, topic, &enc) {
                            components.push(component(s, false));
                        }
                    }
                    other => {
                        // A consultation list that holds items directly: they still belong
                        // to the consultation.
                        for s in map_resource(ctx, other) {
                            components.push(component(s, false));
                        }
                    }
                }
            }
        }
        if components.is_empty() {
            // GP2GP needs at least one statement in a composition: an empty consultation
            // (its content withheld or not recorded) is sent with a note saying so, so
            // that the consultation and its date are not lost.
            let (start, _) = period_times(enc.period.as_ref());
            let note = Statement::NarrativeStatement(Box::new(NarrativeStatement {
                class_code: Some("OBS".into()),
                mood_code: Some("EVN".into()),
                id: ii(ctx.id(&format!("{label}#empty"))),
                text: text("The consultation has no recorded content."),
                status_code: cs("COMPLETE"),
                availability_time: availability(start.as_deref()),
                confidentiality_code: ctx.confidentiality(enc.meta.as_ref()),
                ..NarrativeStatement::default()
            }));
            components.push(component(note, false));
        }
        let c = encounter_composition(ctx, &enc, components);
        emit(ctx, c);
    }
}

fn unresolved(ctx: &mut Ctx<'_>, list: &str, item: Option<&Reference>) {
    let what = item
        .and_then(|r| r.reference.clone().or_else(|| r.display.clone()))
        .unwrap_or_else(|| "(nothing)".into());
    ctx.unmapped(
        list.to_string(),
        "List",
        format!("entry {what} names no resource of the Bundle"),
    );
}

/// A topic List → `CompoundStatement` `TOPIC`: its category Lists as `CATEGORY`s, and the
/// items it holds directly in a `CATEGORY` "Other category".
fn map_topic(ctx: &mut Ctx<'_>, topic: &List, enc: &Encounter) -> Option<Statement> {
    let topic_label = format!("List/{}", topic.id.as_deref().unwrap_or(""));
    let mut children = Vec::new();
    let mut loose = Vec::new();
    for entry in &topic.entry {
        let Some(target) = entry.item.as_ref().and_then(|r| ctx.store.resolve(r)) else {
            unresolved(ctx, &topic_label, entry.item.as_ref());
            continue;
        };
        match &*target {
            Resource::List(cat) if list_has_code(cat, CATEGORY_LIST) => {
                let mut items = Vec::new();
                for e in &cat.entry {
                    match e.item.as_ref().and_then(|r| ctx.store.resolve(r)) {
                        Some(r) => items.extend(map_resource(ctx, &r)),
                        None => unresolved(
                            ctx,
                            &format!("List/{}", cat.id.as_deref().unwrap_or("")),
                            e.item.as_ref(),
                        ),
                    }
                }
                if items.is_empty() {
                    continue;
                }
                let code = fixed_with_text("394841004", "Other category", cat.title.as_deref());
                let key = format!("List/{}", cat.id.as_deref().unwrap_or(""));
                children.push(compound(ctx, &key, "CATEGORY", code, enc, items));
            }
            other => loose.extend(map_resource(ctx, other)),
        }
    }
    if !loose.is_empty() {
        let key = format!("{topic_label}#uncategorised");
        children.push(compound(
            ctx,
            &key,
            "CATEGORY",
            fixed("394841004", "Other category"),
            enc,
            loose,
        ));
    }
    if children.is_empty() {
        return None;
    }
    let code = topic_code(ctx, topic);
    Some(compound(ctx, &topic_label, "TOPIC", code, enc, children))
}

/// A topic's code: the SNOMED CT code of its related problem, else "Unspecified problem";
/// its title as original text.
fn topic_code(ctx: &Ctx<'_>, topic: &List) -> CD {
    let problem = topic
        .find_extension(fhir::systems::extension::RELATED_PROBLEM_HEADER)
        .and_then(|e| {
            fhir::Extension::find(&e.extension, "target")
                .and_then(|t| t.value.as_ref())
                .and_then(|v| v.as_reference())
        })
        .and_then(|r| ctx.store.resolve_as::<fhir::Condition>(r));
    let problem_code: Option<&CodeableConcept> = problem.as_ref().and_then(|c| c.code.as_ref());
    let snomed = problem_code.and_then(|c| {
        c.coding
            .iter()
            .find(|k| k.is_system(systems::SNOMED_CT) && super::codes::snomed_id(k).is_some())
    });
    match snomed {
        Some(k) => {
            let mut cd = snomed_cd(k, Snomed::Description);
            if let Some(t) = topic.title.as_deref().filter(|t| !t.trim().is_empty()) {
                cd.original_text = Some(Box::new(hl7v3::datatypes::ST::new(t)));
            }
            cd
        }
        None => fixed_with_text("394776006", "Unspecified problem", topic.title.as_deref()),
    }
}

fn compound(
    ctx: &Ctx<'_>,
    key: &str,
    class: &str,
    code: CD,
    enc: &Encounter,
    items: Vec<Statement>,
) -> Statement {
    let (start, _) = period_times(enc.period.as_ref());
    Statement::CompoundStatement(Box::new(CompoundStatement {
        class_code: Some(class.into()),
        mood_code: Some("EVN".into()),
        id: vec![hl7v3::datatypes::II::root(ctx.id(key))],
        code: bx(code),
        status_code: cs("COMPLETE"),
        effective_time: effective(start.as_deref(), None),
        availability_time: availability(start.as_deref()),
        confidentiality_code: ctx.confidentiality(enc.meta.as_ref()),
        component: items
            .into_iter()
            .map(|s| component(s, true))
            .collect::<Vec<StatementComponent>>(),
        ..CompoundStatement::default()
    }))
}

fn encounter_composition(
    ctx: &mut Ctx<'_>,
    enc: &Encounter,
    components: Vec<StatementComponent>,
) -> CompositionComponent {
    let eid = enc.id.as_deref().unwrap_or("");
    let (start, end) = period_times(enc.period.as_ref());
    let by_type = |code: &str| {
        enc.participant.iter().find(|p| {
            p.r#type
                .iter()
                .any(|t| t.coding.iter().any(|k| k.code.as_deref() == Some(code)))
        })
    };
    let recorder = by_type("REC").and_then(|p| p.individual.as_ref());
    let performer = by_type("PPRF").and_then(|p| p.individual.as_ref());
    let author = agent_for(ctx, recorder.or(performer));
    let performer = agent_for_opt(ctx, performer).or_else(|| agent_for_opt(ctx, recorder));
    let code = match enc.r#type.first() {
        Some(t) => match t
            .coding
            .iter()
            .find(|k| k.is_system(systems::SNOMED_CT) && super::codes::snomed_id(k).is_some())
        {
            Some(k) => {
                let mut cd = snomed_cd(k, Snomed::Description);
                if let Some(text) = t.text.as_deref() {
                    cd.original_text = Some(Box::new(hl7v3::datatypes::ST::new(text)));
                }
                cd
            }
            None => fixed_with_text("24591000000103", "Other report", t.text_or_display()),
        },
        None => fixed("24591000000103", "Other report"),
    };
    let location = enc
        .location
        .first()
        .and_then(|l| l.location.as_ref())
        .and_then(|r| ctx.store.resolve_as::<fhir::Location>(r))
        .and_then(|l| l.name.as_deref().map(location));
    let recorded = enc
        .find_extension(
            "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-RecordedDate-1",
        )
        .and_then(|e| e.value.as_ref())
        .and_then(|v| v.as_date_time())
        .and_then(hl7_ts);
    composition(
        ctx,
        CompositionParts {
            key: format!("Encounter/{eid}"),
            code,
            start,
            end,
            author,
            author_time: recorded,
            performer,
            location,
            confidentiality: ctx.confidentiality(enc.meta.as_ref()),
            components,
        },
    )
}

fn location(name: &str) -> Box<Location> {
    Box::new(Location {
        type_code: Some("LOC".into()),
        located_entity: bx(LocatedEntity {
            class_code: Some("LOCE".into()),
            code: bx(fixed("394730007", "Healthcare related organisation")),
            located_place: bx(Place {
                class_code: Some("PLC".into()),
                determiner_code: Some("INSTANCE".into()),
                name: Some(Box::new(Element::new("name").with_text(name))),
                ..Place::default()
            }),
            ..LocatedEntity::default()
        }),
        ..Location::default()
    })
}

pub(crate) struct CompositionParts {
    pub key: String,
    pub code: CD,
    pub start: Option<String>,
    pub end: Option<String>,
    pub author: String,
    pub author_time: Option<String>,
    pub performer: Option<String>,
    pub location: Option<Box<Location>>,
    pub confidentiality: Option<Box<CD>>,
    pub components: Vec<StatementComponent>,
}

pub(crate) fn composition(ctx: &Ctx<'_>, p: CompositionParts) -> CompositionComponent {
    let start = p.start.as_deref();
    CompositionComponent {
        type_code: Some("COMP".into()),
        ehr_composition: bx(EhrComposition {
            class_code: Some("COMPOSITION".into()),
            mood_code: Some("EVN".into()),
            id: ii(ctx.id(&format!("composition/{}", p.key))),
            code: bx(p.code),
            status_code: cs("COMPLETE"),
            effective_time: effective(start, p.end.as_deref()),
            availability_time: availability(start),
            confidentiality_code: p.confidentiality,
            author: bx(Author {
                type_code: Some("AUT".into()),
                context_control_code: Some("OP".into()),
                time: availability(p.author_time.as_deref().or(start)),
                agent_ref: agent_ref(&p.author),
                ..Author::default()
            }),
            location: p.location,
            participant2: p
                .performer
                .iter()
                .map(|a| Participant2 {
                    type_code: Some("PRF".into()),
                    context_control_code: Some("OP".into()),
                    agent_ref: agent_ref(a),
                    ..Participant2::default()
                })
                .collect(),
            component: p.components,
            ..EhrComposition::default()
        }),
        ..CompositionComponent::default()
    }
}

/// Every clinical resource not mapped inside a consultation (or inside another statement)
/// gets a composition of its own, in Bundle order.
pub(crate) fn map_non_consultation<'a>(
    ctx: &mut Ctx<'a>,
    emit: &mut dyn FnMut(&mut Ctx<'a>, CompositionComponent),
) {
    // What is left to map, for a helper parsing ahead.
    let mut label = String::new();
    ctx.store.plan_ahead(|| {
        ctx.store
            .positions()
            .into_iter()
            .filter(|&p| {
                ctx.store.resource_type(p).is_some_and(is_statement_type)
                    && ctx.store.label_into(p, &mut label)
                    && !ctx.consumed.contains(label.as_str())
            })
            .collect()
    });
    for pos in ctx.store.positions() {
        let Some(ty) = ctx.store.resource_type(pos) else {
            continue;
        };
        ctx.store.label_into(pos, &mut label);
        if !is_statement_type(ty) {
            if !is_structural_type(ty) {
                let ty = ty.to_owned();
                ctx.unmapped(
                    label.clone(),
                    &ty,
                    "this resource type has no place in a GP2GP EhrExtract",
                );
            }
            continue;
        }
        if ctx.consumed.contains(label.as_str()) {
            continue;
        }
        let Some(r) = ctx.store.get(pos) else {
            continue;
        };
        let r = &*r;
        let statements = map_resource(ctx, r);
        if statements.is_empty() {
            continue;
        }
        let code = non_consultation_code(r);
        let (start, availability) = times_of(&statements[0]);
        let author_ref = author_of(r);
        let author = agent_for(ctx, author_ref);
        let performer = agent_for_opt(ctx, author_ref);
        let components = statements
            .into_iter()
            .map(|s| component(s, false))
            .collect();
        let c = composition(
            ctx,
            CompositionParts {
                key: r.label(),
                code,
                start: start.clone().or_else(|| availability.clone()),
                end: None,
                author,
                author_time: availability.or(start),
                performer,
                location: None,
                confidentiality: ctx.confidentiality(r.meta()),
                components,
            },
        );
        emit(ctx, c);
    }
}

/// A statement's start time and availability time.
fn times_of(s: &Statement) -> (Option<String>, Option<String>) {
    let (eff, avail) = match s {
        Statement::CompoundStatement(c) => {
            (c.effective_time.as_deref(), c.availability_time.as_deref())
        }
        Statement::LinkSet(c) => (c.effective_time.as_deref(), c.availability_time.as_deref()),
        Statement::MedicationStatement(c) => {
            (c.effective_time.as_deref(), c.availability_time.as_deref())
        }
        Statement::NarrativeStatement(c) => (None, c.availability_time.as_deref()),
        Statement::ObservationStatement(c) => {
            (c.effective_time.as_deref(), c.availability_time.as_deref())
        }
        Statement::PlanStatement(c) => {
            (c.effective_time.as_deref(), c.availability_time.as_deref())
        }
        Statement::RequestStatement(c) => {
            (c.effective_time.as_deref(), c.availability_time.as_deref())
        }
        _ => (None, None),
    };
    (
        eff.and_then(|e| e.start()).map(str::to_string),
        avail.and_then(|a| a.value.clone()),
    )
}

/// Who recorded or performed a resource, for its composition's author.
pub(crate) fn author_of(r: &Resource) -> Option<&Reference> {
    match r {
        Resource::Observation(o) => o.performer.first(),
        Resource::Condition(c) => c.asserter.as_ref(),
        Resource::AllergyIntolerance(a) => a.recorder.as_ref().or(a.asserter.as_ref()),
        Resource::MedicationRequest(m) => m
            .recorder
            .as_ref()
            .or(m.requester.as_ref().and_then(|q| q.agent.as_ref())),
        Resource::MedicationStatement(m) => m.information_source.as_ref(),
        Resource::Immunization(i) => i.practitioner.first().and_then(|p| p.actor.as_ref()),
        Resource::DiagnosticReport(d) => d.performer.first().and_then(|p| p.actor.as_ref()),
        Resource::ReferralRequest(q) => q.requester.as_ref().and_then(|x| x.agent.as_ref()),
        Resource::ProcedureRequest(q) => q.requester.as_ref().and_then(|x| x.agent.as_ref()),
        Resource::DocumentReference(d) => d.author.first(),
        _ => None,
    }
}

/// A record with no clinical content still needs one composition.
pub(crate) fn empty_record_composition(ctx: &mut Ctx<'_>, time: &str) -> CompositionComponent {
    let note = Statement::NarrativeStatement(Box::new(hl7v3::ehr::NarrativeStatement {
        class_code: Some("OBS".into()),
        mood_code: Some("EVN".into()),
        id: ii(ctx.id("empty-record-note")),
        text: text("The sending practice's record for this patient holds no clinical entries."),
        status_code: cs("COMPLETE"),
        availability_time: ts(time),
        ..Default::default()
    }));
    let author = ctx.default_agent.clone();
    composition(
        ctx,
        CompositionParts {
            key: "empty-record".into(),
            code: fixed("196401000000100", "Non-consultation data"),
            start: Some(time.to_string()),
            end: None,
            author,
            author_time: Some(time.to_string()),
            performer: None,
            location: None,
            confidentiality: None,
            components: vec![component(note, false)],
        },
    )
}

/// The code of the composition around a resource recorded outside a consultation, as the
/// NHS sending adaptor codes them.
fn non_consultation_code(r: &Resource) -> CD {
    let transaction = || fixed("109341000000100", "GP to GP communication transaction");
    match r {
        Resource::MedicationRequest(_) | Resource::MedicationStatement(_) => {
            fixed("196391000000103", "Non-consultation medication data")
        }
        Resource::Condition(_) | Resource::DiagnosticReport(_) => transaction(),
        Resource::Observation(o)
            if super::observations::is_comment(o) || !o.component.is_empty() =>
        {
            transaction()
        }
        _ => fixed("196401000000100", "Non-consultation data"),
    }
}
