//! `ehrComposition` → `Encounter` with its consultation, topic and category `List`s; and
//! the dispatch of each statement to its clinical area.
//!
//! A composition coded "Non-consultation data" (196401000000100) or "Non-consultation
//! medication data" (196391000000103) is only a container: its statements become
//! uncategorised resources without an Encounter. Any other composition is a consultation:
//! an Encounter, a consultation List (325851000000107) whose entries are topic Lists
//! (25851000000105) — one per `TOPIC` compound statement, plus one for the statements
//! directly in the composition — whose entries are category Lists (24781000000107, from
//! `CATEGORY` compound statements) or the resources themselves.

use fhir::{
    CodeableConcept, Coding, Encounter, EncounterLocation, EncounterParticipant, List, ListEntry,
    Location, Meta, Period, systems,
};
use hl7v3::ehr::{CompoundStatement, EhrComposition, Statement};

use super::codes::plain_concept;
use super::time::{ivl_point, ts_to_fhir, ts_value};
use super::{Ctx, Scope, hash_hex, is_nopat, reference, text_of};
use crate::Unmapped;

/// Compositions that only group data outside any consultation.
const NON_CONSULTATION: [&str; 2] = ["196401000000100", "196391000000103"];

pub const CONSULTATION_LIST: (&str, &str) = ("325851000000107", "Consultation encounter type");
pub const TOPIC_LIST: (&str, &str) = ("25851000000105", "Topic (EHR)");
pub const CATEGORY_LIST: (&str, &str) = ("24781000000107", "Category (EHR)");

fn list_code(c: (&str, &str)) -> CodeableConcept {
    CodeableConcept::from_coding(Coding::new(systems::SNOMED_CT, c.0, c.1))
}

/// The name of a statement's class, as the report counts it.
pub fn statement_kind(s: &Statement) -> &str {
    match s {
        Statement::CompoundStatement(_) => "CompoundStatement",
        Statement::EhrEmpty(_) => "EhrEmpty",
        Statement::LinkSet(_) => "LinkSet",
        Statement::MedicationStatement(_) => "MedicationStatement",
        Statement::NarrativeStatement(_) => "NarrativeStatement",
        Statement::ObservationStatement(_) => "ObservationStatement",
        Statement::PlanStatement(_) => "PlanStatement",
        Statement::RegistrationStatement(_) => "RegistrationStatement",
        Statement::RequestStatement(_) => "RequestStatement",
        Statement::Other(e) => e.local_name(),
    }
}

/// Allergy categories (Read v2): drug allergy, non-drug allergy.
pub fn is_allergy_category(c: &CompoundStatement) -> bool {
    c.class_code.as_deref() == Some("CATEGORY")
        && c.code
            .as_ref()
            .and_then(|c| c.code.as_deref())
            .is_some_and(|k| k == "14L..00" || k == "SN53.00")
        && c.component
            .iter()
            .any(|sc| matches!(sc.statement, Some(Statement::ObservationStatement(_))))
}

impl Ctx<'_> {
    /// Counts one statement read.
    pub fn read_statement(&mut self, s: &Statement) {
        let kind = statement_kind(s).to_owned();
        self.report.read(&kind);
    }

    pub(super) fn composition(&mut self, comp: &EhrComposition, index: usize) {
        self.report.read("ehrComposition");
        let comp_key = comp
            .id
            .as_deref()
            .and_then(|i| i.value())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("ehrComposition[{index}]"));
        let author = comp
            .author
            .as_ref()
            .and_then(|a| a.agent_ref.as_ref())
            .and_then(|r| r.id.as_deref());
        let author = self.agent(author, &comp_key).filter(|r| !r.is_empty());
        let performer = comp
            .participant2
            .iter()
            .filter(|p| matches!(p.type_code.as_deref(), Some("PRF" | "PPRF")))
            .find_map(|p| p.agent_ref.as_ref().and_then(|r| r.id.as_deref()));
        let performer = self.agent(performer, &comp_key).filter(|r| !r.is_empty());
        let confidential = is_nopat(comp.confidentiality_code.as_deref());
        let code = comp.code.as_ref().and_then(|c| c.code.as_deref());
        let consultation = !code.is_some_and(|c| NON_CONSULTATION.contains(&c));

        let mut scope = Scope {
            encounter: None,
            comp_id: comp_key.clone(),
            author_time: comp
                .author
                .as_ref()
                .and_then(|a| ts_value(a.time.as_deref()))
                .map(str::to_owned),
            availability: ts_value(comp.availability_time.as_deref()).map(str::to_owned),
            author: author.clone(),
            performer: performer.clone(),
            confidential,
        };

        let encounter_id = consultation.then(|| {
            let id = self.id_for("Encounter", comp.id.as_deref(), &comp_key);
            scope.encounter = Some(format!("Encounter/{id}"));
            id
        });

        // Statements, grouped as the consultation Lists will show them.
        let mut direct = Vec::new();
        let mut topics = Vec::new();
        for sc in &comp.component {
            let Some(s) = &sc.statement else { continue };
            match s {
                Statement::CompoundStatement(c)
                    if consultation && c.class_code.as_deref() == Some("TOPIC") =>
                {
                    self.read_statement(s);
                    let entries = self.children(c, &scope);
                    let title = c.code.as_deref().and_then(super::codes::concept_text);
                    if let Some(t) =
                        self.group_list(c.id.first(), title, TOPIC_LIST, entries, &scope)
                    {
                        topics.push(t);
                    }
                }
                _ => direct.extend(self.statement(s, &scope)),
            }
        }

        let Some(encounter_id) = encounter_id else {
            return;
        };
        if !direct.is_empty() {
            let fallback = format!("{comp_key}-topic");
            let title = comp.code.as_deref().and_then(super::codes::concept_text);
            let id = self.id_for("List", None, &fallback);
            let list = self.list(id, title, TOPIC_LIST, direct, &scope);
            topics.insert(0, list);
        }

        let location = comp
            .location
            .as_ref()
            .and_then(|l| l.located_entity.as_ref())
            .and_then(|e| e.located_place.as_ref())
            .and_then(|p| p.name.as_ref())
            .map(|n| n.text().trim().to_owned())
            .filter(|n| !n.is_empty())
            .map(|name| {
                let id = format!("loc-{}", hash_hex(&name));
                if self.locations.insert(id.clone()) {
                    let id = self.claim("Location", id.clone());
                    self.push(
                        Location {
                            id: Some(id.clone()),
                            name: Some(name),
                            ..Location::default()
                        }
                        .into(),
                    );
                }
                format!("Location/{id}")
            });

        let mut participant = Vec::new();
        if let Some(a) = &author {
            participant.push(EncounterParticipant {
                r#type: vec![CodeableConcept::from_coding(Coding::new(
                    systems::PARTICIPANT_TYPE,
                    "REC",
                    "recorder",
                ))],
                individual: Some(reference(a)),
                ..EncounterParticipant::default()
            });
        }
        if let Some(p) = &performer {
            participant.push(EncounterParticipant {
                r#type: vec![CodeableConcept::from_coding(Coding::new(
                    systems::V3_PARTICIPATION_TYPE,
                    "PPRF",
                    "primary performer",
                ))],
                individual: Some(reference(p)),
                ..EncounterParticipant::default()
            });
        }
        let zone = self.zone();
        let eff = comp.effective_time.as_deref();
        let start = ivl_point(eff)
            .or(scope.availability.as_deref())
            .and_then(|t| ts_to_fhir(t, zone));
        let end = super::time::ivl_high(eff).and_then(|t| ts_to_fhir(t, zone));
        let period = (start.is_some() || end.is_some()).then(|| Period {
            start,
            end,
            ..Period::default()
        });
        let type_ = comp.code.as_deref().and_then(plain_concept);
        let title = type_
            .as_ref()
            .and_then(|t| t.text_or_display())
            .map(str::to_owned);
        let encounter = Encounter {
            id: Some(encounter_id.clone()),
            meta: Some(Meta {
                profile: vec![
                    "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Encounter-1"
                        .to_owned(),
                ],
                ..self
                    .meta(comp.confidentiality_code.as_deref(), false)
                    .unwrap_or_default()
            }),
            identifier: self.identifiers(comp.id.as_deref()),
            status: Some("finished".to_owned()),
            r#type: type_.into_iter().collect(),
            subject: Some(self.subject()),
            participant,
            period,
            location: location
                .map(|l| EncounterLocation {
                    location: Some(reference(&l)),
                    ..EncounterLocation::default()
                })
                .into_iter()
                .collect(),
            service_provider: self.source_org.as_deref().map(reference),
            ..Encounter::default()
        };
        let enc_ref = format!("Encounter/{encounter_id}");
        self.produced(comp.id.as_deref(), &enc_ref);
        self.push(encounter.into());

        let cons_id = self.claim(
            "List",
            format!(
                "{}-consultation",
                &encounter_id[..encounter_id.len().min(48)]
            ),
        );
        let list = self.list(cons_id, title, CONSULTATION_LIST, topics, &scope);
        let _ = list;
    }

    /// Maps the statements inside a compound statement; returns the references to list.
    pub fn children(&mut self, c: &CompoundStatement, scope: &Scope) -> Vec<String> {
        let mut out = Vec::new();
        for sc in &c.component {
            if let Some(s) = &sc.statement {
                out.extend(self.statement(s, scope));
            }
        }
        out
    }

    /// A List of `entries` (references); returns `List/…`.
    pub fn list(
        &mut self,
        id: String,
        title: Option<String>,
        code: (&str, &str),
        entries: Vec<String>,
        scope: &Scope,
    ) -> String {
        let zone = self.zone();
        let date = scope
            .author_time
            .as_deref()
            .or(scope.availability.as_deref())
            .and_then(|t| ts_to_fhir(t, zone));
        let list = List {
            id: Some(id.clone()),
            meta: Some(Meta {
                profile: vec![
                    "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-List-1"
                        .to_owned(),
                ],
                ..Meta::default()
            }),
            status: Some("current".to_owned()),
            mode: Some("snapshot".to_owned()),
            title: title.or_else(|| Some(code.1.to_owned())),
            code: Some(list_code(code)),
            subject: Some(self.subject()),
            encounter: scope.encounter.as_deref().map(reference),
            date,
            entry: entries
                .iter()
                .map(|e| ListEntry {
                    item: Some(reference(e)),
                    ..ListEntry::default()
                })
                .collect(),
            empty_reason: entries.is_empty().then(|| {
                CodeableConcept::from_coding(Coding::new(
                    "http://hl7.org/fhir/list-empty-reason",
                    "nilknown",
                    "Nil Known",
                ))
            }),
            ..List::default()
        };
        self.push(list.into());
        format!("List/{id}")
    }

    /// A topic or category List from a compound statement.
    pub fn group_list(
        &mut self,
        ii: Option<&hl7v3::datatypes::II>,
        title: Option<String>,
        code: (&str, &str),
        entries: Vec<String>,
        scope: &Scope,
    ) -> Option<String> {
        let fallback = format!("{}-{}-{}", scope.comp_id, code.0, entries.len());
        let id = self.id_for("List", ii, &fallback);
        let r = self.list(id, title, code, entries, scope);
        self.produced(ii, &r);
        Some(r)
    }

    /// Maps one statement (and what it contains); returns the references of the resources
    /// that stand for it at this level.
    pub fn statement(&mut self, s: &Statement, scope: &Scope) -> Vec<String> {
        self.read_statement(s);
        match s {
            Statement::ObservationStatement(o) => {
                let consumed =
                    o.id.as_deref()
                        .and_then(super::ii_key)
                        .is_some_and(|k| self.index.consumed_by_condition.contains(&k));
                if consumed {
                    return Vec::new();
                }
                self.observation(o, scope).into_iter().collect()
            }
            Statement::NarrativeStatement(n) => {
                if n.reference
                    .iter()
                    .any(|r| r.referred_to_external_document.is_some())
                {
                    self.document(n, scope).into_iter().collect()
                } else {
                    self.narrative(n, scope).into_iter().collect()
                }
            }
            Statement::PlanStatement(p) => self.plan(p, scope).into_iter().collect(),
            Statement::RequestStatement(r) => self.referral(r, scope).into_iter().collect(),
            Statement::MedicationStatement(m) => self.medication(m, scope),
            Statement::LinkSet(l) => {
                self.linksets.push(((**l).clone(), scope.clone()));
                Vec::new()
            }
            Statement::CompoundStatement(c) => self.compound(c, scope),
            Statement::RegistrationStatement(r) => {
                self.unmapped(
                    r.id.as_deref(),
                    "RegistrationStatement",
                    "GP Connect has no resource for a registration event; the patient's registration is held by PDS",
                );
                Vec::new()
            }
            Statement::EhrEmpty(e) => {
                self.unmapped(
                    e.id.as_deref(),
                    "EhrEmpty",
                    "a placeholder for an entry deleted or withheld at source: there is nothing to carry",
                );
                Vec::new()
            }
            Statement::Other(e) => {
                self.report.unmapped.push(Unmapped {
                    source: scope.comp_id.clone(),
                    kind: e.local_name().to_owned(),
                    reason: "not a GP2GP clinical statement".to_owned(),
                });
                Vec::new()
            }
        }
    }

    pub fn unmapped(&mut self, ii: Option<&hl7v3::datatypes::II>, kind: &str, reason: &str) {
        self.report.unmapped.push(Unmapped {
            source: ii.and_then(|i| i.value()).unwrap_or("(no id)").to_owned(),
            kind: kind.to_owned(),
            reason: reason.to_owned(),
        });
    }

    fn compound(&mut self, c: &CompoundStatement, scope: &Scope) -> Vec<String> {
        if is_allergy_category(c) {
            return self.allergy(c, scope);
        }
        let code = c.code.as_ref().and_then(|k| k.code.as_deref());
        match (c.class_code.as_deref(), code) {
            (_, Some(super::results::LAB_REPORT)) => self.lab_report(c, scope),
            (Some("BATTERY"), Some(k)) if super::observations::is_blood_pressure(k) => {
                self.blood_pressure(c, scope).into_iter().collect()
            }
            (Some("TOPIC" | "CATEGORY"), _) => {
                let entries = self.children(c, scope);
                let title = c.code.as_deref().and_then(super::codes::concept_text);
                let code = if c.class_code.as_deref() == Some("TOPIC") {
                    TOPIC_LIST
                } else {
                    CATEGORY_LIST
                };
                if scope.encounter.is_none() {
                    // Outside a consultation a heading has no List to sit in: its
                    // statements stand on their own.
                    self.unmapped(
                        c.id.first(),
                        "CompoundStatement",
                        "a heading outside a consultation: its statements were mapped, the heading itself has no place in GP Connect",
                    );
                    return entries;
                }
                self.group_list(c.id.first(), title, code, entries, scope)
                    .into_iter()
                    .collect()
            }
            _ => self.group(c, scope),
        }
    }
}

/// Text of a narrative's `text`.
pub fn narrative_text(n: &hl7v3::ehr::NarrativeStatement) -> Option<String> {
    text_of(n.text.as_deref())
}
