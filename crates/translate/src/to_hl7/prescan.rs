//! What the mapping must know about the whole Bundle before it maps any one resource,
//! gathered in one pass over the resources ([`Prescan::observe`], each resource once, in
//! Bundle order) and settled once every entry is known ([`Prescan::finish`]):
//!
//! - whether anything is confidential (the message is then `UK07`);
//! - the course (FHIR `MedicationStatement`) of each authorisation, and the courses carried
//!   by an authorisation of the Bundle;
//! - the consultation `List` of each `Encounter`;
//! - comment notes by the result they are derived from;
//! - what reports and test groups carry inside them (results, their members, specimens,
//!   comments on results), so that it is not also sent on its own.
//!
//! Only references and ids are kept, so that the streaming translation need not hold the
//! resources themselves.

use crate::hash::{HashMap, HashSet};

use fhir::{Observation, Reference};

use super::facts::{Facts, Kind};
use super::store::Store;

/// Lookups built once, so that mapping one resource never scans the whole Bundle. Values
/// are positions in the Bundle.
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    /// The course (FHIR MedicationStatement) of each authorisation, by MedicationRequest
    /// id: the first statement based on it.
    pub courses: HashMap<String, usize>,
    /// The consultation List of each Encounter, by `Encounter/id`: the first List with the
    /// consultation code whose `encounter` names it.
    pub consultations: HashMap<String, usize>,
    /// Comments derived from a result, by the result's `Type/id`, in Bundle order.
    pub comments: HashMap<String, Vec<usize>>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Prescan {
    /// Whether any resource carries a `NOPAT` label.
    pub confidential: bool,
    courses: HashMap<String, usize>,
    /// MedicationStatements with an id, with what they are based on.
    statements: Vec<(String, Vec<String>)>,
    /// Lists with the consultation code: position and `encounter`.
    consultation_lists: Vec<(usize, String)>,
    /// The members of each test group (`related` `has-member`, or untyped), by position.
    members: HashMap<usize, Vec<String>>,
    /// Positions of the Observations with members, in order.
    groups: Vec<usize>,
    /// Comment notes: position, and what they are `derived-from`.
    comments: Vec<(usize, Vec<String>)>,
    /// Each DiagnosticReport's results and specimens.
    reports: Vec<Vec<String>>,
}

/// The references to an Observation's members, as `diagnostics::members` reads them.
pub(crate) fn member_refs(o: &Observation) -> impl Iterator<Item = &Reference> {
    o.related
        .iter()
        .filter(|r| r.r#type.as_deref().is_none_or(|t| t == "has-member"))
        .filter_map(|r| r.target.as_ref())
}

/// The references an Observation is `derived-from`, in order.
pub(crate) fn derived_refs(o: &Observation) -> impl Iterator<Item = &Reference> {
    o.related
        .iter()
        .filter(|r| r.r#type.as_deref() == Some("derived-from"))
        .filter_map(|r| r.target.as_ref())
}

impl Prescan {
    /// Takes in the resource at `pos`.
    pub fn observe(&mut self, pos: usize, facts: Facts) {
        if facts.nopat {
            self.confidential = true;
        }
        match facts.kind {
            Kind::MedicationStatement { based_on } => {
                for (t, i) in based_on.iter().filter_map(|b| fhir::split_reference(b)) {
                    if t == "MedicationRequest" {
                        self.courses.entry(i.to_owned()).or_insert(pos);
                    }
                }
                if let Some(id) = facts.id {
                    self.statements.push((id, based_on));
                }
            }
            Kind::ConsultationList { encounter } => {
                if let Some(e) = encounter {
                    self.consultation_lists.push((pos, e));
                }
            }
            Kind::Observation {
                members,
                comment,
                derived,
            } => {
                if !members.is_empty() {
                    self.members.insert(pos, members);
                    self.groups.push(pos);
                }
                if comment {
                    self.comments.push((pos, derived));
                }
            }
            Kind::DiagnosticReport { refs } => self.reports.push(refs),
            Kind::Other => {}
        }
    }

    /// Settles the lookups and what is carried inside other resources (`Type/id`s), once
    /// every entry is in `store`.
    pub fn finish(self, store: &Store<'_>) -> (Lookups, Vec<String>) {
        let resolve = |r: &str| {
            store
                .position(r)
                .filter(|&p| store.resource_type(p).is_some())
        };
        let label = |r: &str| resolve(r).and_then(|p| store.label(p));
        let mut consultations = HashMap::default();
        for (pos, encounter) in &self.consultation_lists {
            if let Some(l) = label(encounter) {
                consultations.entry(l).or_insert(*pos);
            }
        }
        let derived_from = |refs: &[String]| refs.iter().find_map(|r| label(r));
        let mut comments: HashMap<String, Vec<usize>> = HashMap::default();
        for (pos, refs) in &self.comments {
            if let Some(t) = derived_from(refs) {
                comments.entry(t).or_default().push(*pos);
            }
        }

        // What reports and test groups carry.
        let members = |pos: usize| -> Vec<String> {
            self.members
                .get(&pos)
                .into_iter()
                .flatten()
                .filter_map(|t| resolve(t))
                .filter(|&m| store.resource_type(m) == Some("Observation"))
                .map(|m| format!("Observation/{}", store.id(m).unwrap_or("")))
                .collect()
        };
        let mut claimed: HashSet<String> = HashSet::default();
        let mut result_ids: HashSet<String> = HashSet::default();
        for refs in &self.reports {
            for r in refs {
                let Some(pos) = resolve(r) else {
                    continue;
                };
                let Some(label) = store.label(pos) else {
                    continue;
                };
                claimed.insert(label.clone());
                if store.resource_type(pos) == Some("Observation") {
                    result_ids.insert(label);
                    for m in members(pos) {
                        claimed.insert(m.clone());
                        result_ids.insert(m);
                    }
                }
            }
        }
        // Members of test groups outside reports.
        for &pos in &self.groups {
            claimed.extend(members(pos));
        }
        // Comments derived from a result that is sent inside a report.
        for (pos, refs) in &self.comments {
            if derived_from(refs).is_some_and(|t| result_ids.contains(&t)) {
                claimed.insert(format!("Observation/{}", store.id(*pos).unwrap_or("")));
            }
        }
        // FHIR MedicationStatements whose authorisation is in the Bundle are carried by it.
        for (id, based_on) in &self.statements {
            if based_on.iter().any(|b| {
                resolve(b).is_some_and(|p| store.resource_type(p) == Some("MedicationRequest"))
            }) {
                claimed.insert(format!("MedicationStatement/{id}"));
            }
        }
        (
            Lookups {
                courses: self.courses,
                consultations,
                comments,
            },
            claimed.into_iter().collect(),
        )
    }
}
