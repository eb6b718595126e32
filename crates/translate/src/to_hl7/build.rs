//! Small builders for the HL7 model: boxes, ids, times, participants, components.

use fhir::{Choice, DateTime, Period};
use hl7v3::datatypes::{CD, II, INT, IVL_TS, PQ, ST, TS};
use hl7v3::ehr::{AgentRef, Participant, Statement, StatementComponent, StatementRef};

/// `Some(Box::new(v))`: the model's optional children are boxed.
pub(crate) fn bx<T>(v: T) -> Option<Box<T>> {
    Some(Box::new(v))
}

pub(crate) fn ii(root: impl Into<String>) -> Option<Box<II>> {
    bx(II::root(root))
}

/// A `CS` such as `statusCode code="COMPLETE"`.
pub(crate) fn cs(code: &str) -> Option<Box<CD>> {
    bx(CD::simple(code))
}

pub(crate) fn ts(value: &str) -> Option<Box<TS>> {
    bx(TS::new(value))
}

pub(crate) fn bx_ts(value: &str) -> Box<TS> {
    Box::new(TS::new(value))
}

/// A TS that is unknown (`nullFlavor`).
pub(crate) fn nf_ts(flavor: &str) -> Option<Box<TS>> {
    bx(TS {
        null_flavor: Some(flavor.into()),
        ..TS::default()
    })
}

/// An FHIR date as an HL7 timestamp: the clock time as written, to the second, no zone
/// (as GP2GP systems write them; fractions of a second are dropped).
pub(crate) fn hl7_ts(d: &DateTime) -> Option<String> {
    let mut s = d.to_hl7_ts()?;
    if let Some(dot) = s.find('.') {
        s.truncate(dot);
    }
    Some(s)
}

/// The date of a `dateTime`/`Period`/`instant` choice: (start, end).
pub(crate) fn choice_times(c: Option<&Choice>) -> (Option<String>, Option<String>) {
    match c {
        Some(c) => {
            if let Some(d) = c.as_date_time() {
                (hl7_ts(d), None)
            } else if let Some(p) = c.as_period() {
                period_times(Some(p))
            } else {
                (None, None)
            }
        }
        None => (None, None),
    }
}

pub(crate) fn period_times(p: Option<&Period>) -> (Option<String>, Option<String>) {
    match p {
        Some(p) => (
            p.start.as_ref().and_then(hl7_ts),
            p.end.as_ref().and_then(hl7_ts),
        ),
        None => (None, None),
    }
}

/// An `effectiveTime`: `center` for a point, `low`/`high` for a range, `center
/// nullFlavor="UNK"` when nothing is known.
pub(crate) fn effective(start: Option<&str>, end: Option<&str>) -> Option<Box<IVL_TS>> {
    let ivl = match (start, end) {
        (Some(s), None) => IVL_TS::center(s),
        (s, Some(e)) => IVL_TS {
            low: s.map(bx_ts),
            high: Some(bx_ts(e)),
            ..IVL_TS::default()
        },
        (None, None) => IVL_TS {
            center: nf_ts("UNK"),
            ..IVL_TS::default()
        },
    };
    bx(ivl)
}

/// `effectiveTime` with `low` only when the end is open (an ongoing course).
pub(crate) fn effective_low(start: Option<&str>, end: Option<&str>) -> Option<Box<IVL_TS>> {
    match (start, end) {
        (Some(s), None) => bx(IVL_TS {
            low: Some(bx_ts(s)),
            ..IVL_TS::default()
        }),
        _ => effective(start, end),
    }
}

/// An `availabilityTime`, unknown when there is no date.
pub(crate) fn availability(value: Option<&str>) -> Option<Box<TS>> {
    match value {
        Some(v) => ts(v),
        None => nf_ts("UNK"),
    }
}

pub(crate) fn agent_ref(id: &str) -> Option<Box<AgentRef>> {
    bx(AgentRef {
        class_code: Some("AGNT".into()),
        id: ii(id),
        ..AgentRef::default()
    })
}

/// A statement's `Participant` (`PRF` performer, `AUT` author).
pub(crate) fn participant(type_code: &str, agent: &str) -> Participant {
    Participant {
        type_code: Some(type_code.into()),
        context_control_code: Some("OP".into()),
        agent_ref: agent_ref(agent),
        ..Participant::default()
    }
}

/// A `component` holding a statement, nested (`contextConductionInd="true"`) or at the top
/// of a composition.
pub(crate) fn component(s: Statement, nested: bool) -> StatementComponent {
    StatementComponent {
        type_code: Some("COMP".into()),
        context_conduction_ind: nested.then(|| "true".into()),
        statement: Some(s),
        ..StatementComponent::default()
    }
}

pub(crate) fn statement_ref(id: &str) -> Option<Box<StatementRef>> {
    bx(StatementRef {
        class_code: Some("OBS".into()),
        mood_code: Some("EVN".into()),
        id: ii(id),
        ..StatementRef::default()
    })
}

pub(crate) fn text(t: &str) -> Option<Box<ST>> {
    bx(ST::new(t))
}

pub(crate) fn int(v: impl ToString) -> Option<Box<INT>> {
    bx(INT::new(v))
}

/// A quantity: `value` in a UCUM `unit` when there is one without spaces, else `unit="1"`
/// with the unit as written kept in a translation's original text (as the NHS adaptor
/// does).
pub(crate) fn pq(value: &str, unit: Option<&str>, ucum: Option<&str>) -> PQ {
    let mut q = PQ {
        value: Some(value.into()),
        ..PQ::default()
    };
    let clean = |u: &str| !u.is_empty() && !u.chars().any(char::is_whitespace);
    match (ucum.filter(|u| clean(u)), unit) {
        (Some(u), _) => q.unit = Some(u.into()),
        (None, Some(u)) if !u.trim().is_empty() => {
            q.unit = Some("1".into());
            q.translation.push(
                hl7v3::xml::Element::new("translation")
                    .with_attr("value", value)
                    .with_child(hl7v3::xml::Element::new("originalText").with_text(u.trim())),
            );
        }
        _ => {}
    }
    q
}

/// Joins non-empty parts with a space.
pub(crate) fn join(parts: &[String]) -> String {
    parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
