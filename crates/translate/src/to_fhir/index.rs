//! What must be known about the whole record before any one statement is mapped, built
//! one composition at a time.
//!
//! A statement can depend on statements anywhere in the record: an authorisation on the
//! issues and discontinuations that follow it (often years later, in other
//! consultations), an observation on the `LinkSet` that folds it into a problem, a problem
//! on the statement that names it. [`Index`] gathers exactly that, and only that, so that
//! the record itself need not be held: [`Index::add_composition`] takes one composition's
//! statements, in any form that implements [`StmtNode`] — the typed model
//! ([`Statement`]) or the lighter tree the streaming reader builds without typing whole
//! statements.
//!
//! Where ids repeat, the first statement in the order below wins, as it always has:
//! compositions in document order, and within one its statements from a stack (the last
//! top-level statement first, a compound statement's children after it).

use crate::hash::{HashMap, HashSet};
use std::rc::Rc;

use hl7v3::datatypes::CD;
use hl7v3::ehr::{Discontinue, LinkSet, Statement, Supply};

use super::time::ts_value;
use super::{ii_id, ii_key};

/// The kind of the statement an id names, as the problem mapping needs to know it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StmtKind {
    Observation,
    /// A `LinkSet`, with the id of the Condition it becomes (`None` when it has no id).
    LinkSet(Option<String>),
    Other,
}

/// What a Condition takes from the statement that names its problem.
#[derive(Debug, Clone, Default)]
pub(crate) struct Named {
    /// The statement's code (for an allergy heading, the allergy's; for a medication, the
    /// drug's).
    pub code: Option<CD>,
    /// Whether it is an `ObservationStatement`.
    pub observation: bool,
    /// An observation's notes.
    pub notes: Option<String>,
}

/// What the rest of the record says about one authorisation.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthInfo {
    /// Whether the authorisation itself is in the record.
    pub exists: bool,
    pub repeat_number: Option<u64>,
    pub discontinue: Option<Rc<Discontinue>>,
    /// The latest issue's availability time.
    pub last_issue: Option<String>,
}

/// A statement as the index sees it.
pub(crate) trait StmtNode {
    /// The key its id is looked up by ([`ii_key`]).
    fn key(&self) -> Option<String>;
    fn kind(&self) -> StmtKind;
    /// A compound statement's statements, in document order.
    fn children(&self) -> impl Iterator<Item = &Self>;
    fn linkset(&self) -> Option<&LinkSet>;
    /// A medication statement's supplies, in document order.
    fn supplies(&self) -> impl Iterator<Item = &Supply>;
}

impl StmtNode for Statement {
    fn key(&self) -> Option<String> {
        self.id().and_then(ii_key)
    }

    fn kind(&self) -> StmtKind {
        match self {
            Statement::ObservationStatement(_) => StmtKind::Observation,
            Statement::LinkSet(l) => StmtKind::LinkSet(l.id.as_deref().and_then(ii_id)),
            _ => StmtKind::Other,
        }
    }

    fn children(&self) -> impl Iterator<Item = &Self> {
        let components = match self {
            Statement::CompoundStatement(c) => c.component.as_slice(),
            _ => &[],
        };
        components.iter().filter_map(|sc| sc.statement.as_ref())
    }

    fn linkset(&self) -> Option<&LinkSet> {
        match self {
            Statement::LinkSet(l) => Some(l),
            _ => None,
        }
    }

    fn supplies(&self) -> impl Iterator<Item = &Supply> {
        let components = match self {
            Statement::MedicationStatement(m) => m.component.as_slice(),
            _ => &[],
        };
        components.iter().filter_map(|c| c.supply.as_ref())
    }
}

/// The key of the statement a LinkSet's `conditionNamed` names.
pub(crate) fn named_key(l: &LinkSet) -> Option<String> {
    l.condition_named
        .as_ref()
        .and_then(|c| c.named_statement_ref.as_ref())
        .and_then(|r| r.id.as_deref())
        .and_then(ii_key)
}

/// The record-wide facts; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Every statement id (key), with the kind of its first statement.
    pub statements: HashMap<String, StmtKind>,
    /// Statements named by a LinkSet in the same composition: the Condition carries them.
    pub consumed_by_condition: HashSet<String>,
    /// LinkSet id → ids of the LinkSets that list it as a component (its parents).
    pub linkset_parents: HashMap<String, Vec<String>>,
    /// Authorisation id → what later supplies say about it.
    pub authorisations: HashMap<String, AuthInfo>,
    /// What the statements that name problems say, by key (filled by
    /// [`Index::capture_named`]).
    pub named: HashMap<String, Named>,
    /// Keys named by any LinkSet's `conditionNamed`.
    named_keys: HashSet<String>,
}

impl Index {
    /// Takes in one composition's top-level statements.
    pub fn add_composition<'n, N: StmtNode + 'n>(&mut self, top: impl Iterator<Item = &'n N>) {
        let mut in_comp = HashSet::default();
        let mut here = Vec::new();
        let mut stack: Vec<&N> = top.collect();
        while let Some(s) = stack.pop() {
            if let Some(k) = s.key() {
                if !self.statements.contains_key(&k) {
                    self.statements.insert(k.clone(), s.kind());
                }
                in_comp.insert(k);
            }
            stack.extend(s.children());
            if let Some(l) = s.linkset() {
                self.linkset(l);
                here.push(l);
            }
            self.prescan(s.supplies());
        }
        for l in here {
            if let Some(named) = named_key(l)
                && in_comp.contains(&named)
            {
                self.consumed_by_condition.insert(named);
            }
        }
    }

    fn linkset(&mut self, l: &LinkSet) {
        if let Some(named) = named_key(l) {
            self.named_keys.insert(named);
        }
        let Some(me) = l.id.as_deref().and_then(ii_key) else {
            return;
        };
        for c in &l.component {
            if let Some(child) = c
                .statement_ref
                .as_ref()
                .and_then(|r| r.id.as_deref())
                .and_then(ii_key)
            {
                self.linkset_parents
                    .entry(child)
                    .or_default()
                    .push(me.clone());
            }
        }
    }

    fn prescan<'s>(&mut self, supplies: impl Iterator<Item = &'s Supply>) {
        for supply in supplies {
            match supply {
                Supply::Authorise(a) => {
                    if let Some(k) = a.id.as_deref().and_then(ii_key) {
                        let info = self.authorisations.entry(k).or_default();
                        info.exists = true;
                        info.repeat_number = a
                            .repeat_number
                            .as_ref()
                            .and_then(|r| r.value.as_deref())
                            .and_then(|v| v.trim().trim_start_matches('+').parse().ok());
                    }
                }
                Supply::Discontinue(d) => {
                    for r in &d.reversal_of {
                        if let Some(k) = r
                            .prior_medication_ref
                            .as_ref()
                            .and_then(|p| p.id.as_deref())
                            .and_then(ii_key)
                        {
                            self.authorisations
                                .entry(k)
                                .or_default()
                                .discontinue
                                .get_or_insert_with(|| Rc::new((**d).clone()));
                        }
                    }
                }
                Supply::Prescribe(p) => {
                    let when = ts_value(p.availability_time.as_deref());
                    if let (Some(k), Some(when)) = (
                        p.in_fulfillment_of
                            .as_ref()
                            .and_then(|f| f.prior_medication_ref.as_ref())
                            .and_then(|r| r.id.as_deref())
                            .and_then(ii_key),
                        when,
                    ) {
                        let info = self.authorisations.entry(k).or_default();
                        if info.last_issue.as_deref().is_none_or(|l| l < when) {
                            info.last_issue = Some(when.to_owned());
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Once every composition is in: only the named statements that are plain
    /// observations are folded into their Condition; anything else keeps its own resource.
    pub fn finish(&mut self) {
        let statements = &self.statements;
        self.consumed_by_condition
            .retain(|k| statements.get(k) == Some(&StmtKind::Observation));
    }

    /// Keeps what Conditions need of the statements that name problems, from one
    /// composition's typed statements (call it for every composition, in order, after
    /// [`Index::finish`]).
    pub fn capture_named<'s>(&mut self, top: impl Iterator<Item = &'s Statement>) {
        if self.named.len() == self.named_keys.len() {
            return;
        }
        let mut stack: Vec<&Statement> = top.collect();
        while let Some(s) = stack.pop() {
            if let Some(k) = s.key()
                && self.named_keys.contains(&k)
                && !self.named.contains_key(&k)
            {
                let notes = match s {
                    Statement::ObservationStatement(o) => {
                        super::observations::annotations(&o.pertinent_information)
                    }
                    _ => None,
                };
                self.named.insert(
                    k,
                    Named {
                        code: super::problems::statement_code(s).cloned(),
                        observation: matches!(s, Statement::ObservationStatement(_)),
                        notes,
                    },
                );
            }
            stack.extend(s.children());
        }
    }
}
