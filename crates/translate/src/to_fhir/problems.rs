//! Problems: `LinkSet` → `Condition`.
//!
//! The problem's code is the code of the statement `conditionNamed` points at; when that
//! statement is an observation in the same composition it is folded into the Condition
//! (its notes become the Condition's notes), otherwise it keeps its own resource and the
//! Condition points at it (`ActualProblem`). Every `component/statementRef` becomes a
//! `RelatedClinicalContent` extension pointing at the resource that statement became; a
//! LinkSet linked to another LinkSet gives `RelatedProblemHeader` child/parent links.
//! Active (394774009) / inactive (394775005) come from the LinkSet's code; significance
//! (major when qualified 386134007) from its qualifier.

use fhir::{Annotation, Choice, CodeableConcept, Coding, Condition, Extension, Meta, systems};
use hl7v3::ehr::{LinkSet, Statement};

use super::index::{StmtKind, named_key};
use super::time::{ivl_high, ivl_point, ts_to_fhir};
use super::{Ctx, Scope, ii_key, reference};
use crate::{DegradeCode, Unmapped};

const ACTIVE: &str = "394774009";
const INACTIVE: &str = "394775005";
const SIGNIFICANT: &str = "386134007";

pub(crate) fn statement_code(s: &Statement) -> Option<&hl7v3::datatypes::CD> {
    match s {
        Statement::ObservationStatement(o) => o.code.as_deref(),
        Statement::PlanStatement(p) => p.code.as_deref(),
        Statement::RequestStatement(r) => r.code.as_deref(),
        Statement::CompoundStatement(c) => {
            // An allergy heading: the allergy's own code.
            if super::consultation::is_allergy_category(c) {
                c.component.iter().find_map(|sc| match &sc.statement {
                    Some(Statement::ObservationStatement(o)) => o.code.as_deref(),
                    _ => None,
                })
            } else {
                c.code.as_deref()
            }
        }
        Statement::MedicationStatement(m) => m.consumable.iter().find_map(|c| {
            c.manufactured_product
                .as_ref()?
                .manufactured_material
                .as_ref()?
                .code
                .as_deref()
        }),
        _ => None,
    }
}

impl Ctx<'_> {
    pub(super) fn conditions(&mut self) {
        let linksets = std::mem::take(&mut self.linksets);
        for (l, scope) in &linksets {
            self.condition(l, scope);
        }
        drop(linksets);
    }

    fn target(&mut self, key: &str, source: &str, what: &str) -> Option<String> {
        if let Some(r) = self.produced.get(key) {
            return Some(r.clone());
        }
        // A LinkSet: its Condition.
        if let Some(StmtKind::LinkSet(id)) = self.index.statements.get(key) {
            return id.as_ref().map(|i| format!("Condition/{i}"));
        }
        self.report.unmapped.push(Unmapped {
            source: source.to_owned(),
            kind: format!("LinkSet/{what}"),
            reason: format!(
                "the problem links to statement {key}, which is not in the record (or was not mapped); the link was left out"
            ),
        });
        None
    }

    fn condition(&mut self, l: &LinkSet, scope: &Scope) {
        let fallback = format!("{}#linkset{}", scope.comp_id, self.entry_count());
        let ii = l.id.as_deref();
        let id = self.id_for("Condition", ii, &fallback);
        let source = ii.and_then(|i| i.value()).unwrap_or(&fallback).to_owned();
        let zone = self.zone();

        let named_key = named_key(l);
        let named = named_key
            .as_ref()
            .and_then(|k| self.index.named.get(k))
            .cloned();
        let consumed = named_key
            .as_ref()
            .is_some_and(|k| self.index.consumed_by_condition.contains(k));

        let mut note = Vec::new();
        let status_code = l.code.as_ref().and_then(|c| c.code.as_deref());
        let clinical_status = match status_code {
            Some(INACTIVE) => "inactive",
            Some(ACTIVE) => "active",
            _ => {
                note.push("Defaulted status to active : Unknown status at source".to_owned());
                "active"
            }
        };
        let major = l.code.as_ref().is_some_and(|c| {
            c.qualifier
                .iter()
                .any(|q| q.name.as_ref().and_then(|n| n.code.as_deref()) == Some(SIGNIFICANT))
        });
        let code = self.concept(
            named.as_ref().and_then(|n| n.code.as_ref()),
            DegradeCode::Other,
            &source,
            "LinkSet",
            l.code.as_ref().and_then(|c| c.original_text()).as_deref(),
        );
        if let Some(n) = &named
            && n.observation
            && consumed
            && let Some(t) = n.notes.clone()
        {
            note.push(t);
        }
        if let Some(t) = l.code.as_ref().and_then(|c| c.original_text()) {
            let t = t.trim();
            if !t.is_empty() {
                note.push(t.to_owned());
            }
        }

        let mut extension = vec![Extension::with_value(
            systems::extension::PROBLEM_SIGNIFICANCE,
            Choice::Code(if major { "major" } else { "minor" }.to_owned()),
        )];
        if let Some(k) = &named_key
            && !consumed
            && let Some(r) = self.target(k, &source, "conditionNamed")
        {
            extension.push(Extension::with_value(
                systems::extension::ACTUAL_PROBLEM,
                Choice::Reference(Box::new(reference(&r))),
            ));
        }
        for c in &l.component {
            let Some(k) = c
                .statement_ref
                .as_ref()
                .and_then(|r| r.id.as_deref())
                .and_then(ii_key)
            else {
                continue;
            };
            let is_linkset = matches!(self.index.statements.get(&k), Some(StmtKind::LinkSet(_)));
            let Some(r) = self.target(&k, &source, "component") else {
                continue;
            };
            if is_linkset {
                extension.push(related_problem("child", &r));
            } else if r != format!("Condition/{id}") {
                extension.push(Extension::with_value(
                    systems::extension::RELATED_CLINICAL_CONTENT,
                    Choice::Reference(Box::new(reference(&r))),
                ));
            }
        }
        if let Some(me) = ii.and_then(ii_key)
            && let Some(parents) = self.index.linkset_parents.get(&me).cloned()
        {
            for p in parents {
                if let Some(StmtKind::LinkSet(Some(pid))) = self.index.statements.get(&p) {
                    extension.push(related_problem("parent", &format!("Condition/{pid}")));
                }
            }
        }

        let asserted = scope
            .author_time
            .as_deref()
            .or(self.extract_time.as_deref())
            .and_then(|t| ts_to_fhir(t, zone));
        let onset = ivl_point(l.effective_time.as_deref())
            .or(super::time::ts_value(l.availability_time.as_deref()))
            .and_then(|t| ts_to_fhir(t, zone));
        let abatement = ivl_high(l.effective_time.as_deref()).and_then(|t| ts_to_fhir(t, zone));
        let asserter = self
            .participant(&l.participant, &["PRF", "PPRF", "AUT"], &source)
            .or(scope.performer.clone())
            .or(scope.author.clone());
        let condition = Condition {
            id: Some(id.clone()),
            meta: Some(Meta {
                profile: vec![
                    "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-ProblemHeader-Condition-1"
                        .to_owned(),
                ],
                ..self.meta(l.confidentiality_code.as_deref(), scope.confidential).unwrap_or_default()
            }),
            extension,
            identifier: self.identifiers(ii),
            clinical_status: Some(clinical_status.to_owned()),
            category: vec![CodeableConcept::from_coding(Coding::new(
                systems::CONDITION_CATEGORY,
                "problem-list-item",
                "Problem List Item",
            ))],
            code: Some(code),
            subject: Some(self.subject()),
            context: scope.encounter.as_deref().map(reference),
            onset: onset.map(Choice::DateTime),
            abatement: abatement.map(Choice::DateTime),
            asserted_date: asserted,
            asserter: asserter.as_deref().map(reference),
            note: note
                .into_iter()
                .map(|t| Annotation {
                    text: Some(t),
                    ..Annotation::default()
                })
                .collect(),
            ..Condition::default()
        };
        let r = format!("Condition/{id}");
        self.produced(ii, &r);
        if consumed && let Some(k) = named_key {
            self.produced.entry(k).or_insert(r.clone());
        }
        self.push(condition.into());
    }
}

fn related_problem(kind: &str, target: &str) -> Extension {
    Extension {
        url: Some(systems::extension::RELATED_PROBLEM_HEADER.to_owned()),
        extension: vec![
            Extension::with_value("type", Choice::Code(kind.to_owned())),
            Extension::with_value("target", Choice::Reference(Box::new(reference(target)))),
        ],
        ..Extension::default()
    }
}
