//! `ObservationStatement` → `Observation` (or `Immunization` for a vaccination),
//! `NarrativeStatement` → `Observation` (comment note), blood pressure batteries →
//! `Observation` with components.

use fhir::{
    Annotation, Choice, CodeableConcept, Coding, Decimal, Extension, Immunization,
    ImmunizationPractitioner, Meta, Observation, ObservationComponent, ObservationReferenceRange,
    Quantity, Range, systems,
};
use hl7v3::datatypes::{ANY, PQ, as_cd, as_ivl_pq, as_pq, xsi_type};
use hl7v3::ehr::{
    AnnotationHolder, CompoundStatement, NarrativeStatement, ObservationStatement, Statement,
};

use super::codes::{concept_text, plain_concept};
use super::consultation::narrative_text;
use super::time::{ivl_point, ivl_to_effective, ts_to_fhir, ts_to_instant, ts_value};
use super::{Ctx, Scope, reference, text_of};
use crate::DegradeCode;

pub const COMMENT_NOTE: (&str, &str) = ("37331000000100", "Comment note");

/// Blood pressure batteries (SNOMED CT): O/E blood pressure reading, lying, standing,
/// sitting, blood pressure, arterial pressure, average home and ambulatory readings.
pub fn is_blood_pressure(code: &str) -> bool {
    matches!(
        code,
        "163020007"
            | "163033001"
            | "163034007"
            | "163035008"
            | "75367002"
            | "386534000"
            | "386536003"
            | "413606001"
            | "314446007"
            | "314439004"
            | "314449000"
            | "314462004"
            | "246508008"
    )
}

/// Vaccination procedures seen in GP2GP records, by concept id.
const IMMUNISATION_CODES: &[&str] = &[
    "170370000",
    "170371001",
    "170372008",
    "170433008",
    "170431005",
    "247631000000101",
    "247641000000105",
    "314414007",
    "314415008",
    "414259000",
    "415507003",
    "415712004",
    "428975001",
    "822851000000102",
    "86198006",
    "33879002",
    "127785005",
    "1324681000000101",
    "1324691000000104",
];

/// Whether a code names a vaccination given: a known vaccination concept, or a SNOMED CT
/// term that says vaccination/immunisation without saying it was not given.
pub fn is_immunisation(cd: Option<&hl7v3::datatypes::CD>) -> bool {
    let Some(cd) = cd else { return false };
    let codes = std::iter::once(cd).chain(cd.translation.iter());
    if codes.clone().any(|c| {
        c.code
            .as_deref()
            .is_some_and(|k| IMMUNISATION_CODES.contains(&k))
    }) {
        return true;
    }
    if !super::codes::has_snomed(cd) {
        return false;
    }
    let mut text = String::new();
    for c in codes {
        if let Some(d) = &c.display_name {
            text.push_str(d);
            text.push(' ');
        }
    }
    if let Some(t) = cd.original_text() {
        text.push_str(&t);
    }
    let text = text.to_ascii_lowercase();
    let says = ["vaccination", "immunisation", "immunization", "booster"]
        .iter()
        .any(|w| text.contains(w));
    let negated = [
        "declin",
        "not ",
        "contraindicat",
        "refus",
        "due",
        "advis",
        "invit",
        "consent",
        "no ",
        "reaction",
        "adverse",
        "allerg",
        "status",
        "offered",
        "requested",
    ]
    .iter()
    .any(|w| text.contains(w));
    says && !negated
}

/// Annotations as one text (each on its own line).
pub fn annotations(list: &[AnnotationHolder]) -> Option<String> {
    let parts: Vec<String> = list
        .iter()
        .filter_map(|a| text_of(a.pertinent_annotation.as_ref()?.text.as_deref()))
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

fn decimal(v: &str) -> Option<Decimal> {
    let v = v.trim();
    let v = v.strip_prefix('+').unwrap_or(v);
    Decimal::parse(v).ok()
}

/// An HL7 `PQ` as a FHIR Quantity. GP2GP writes unit `1` with the unit's text in
/// `translation/originalText`; a real UCUM unit is kept as UCUM.
pub fn quantity(pq: &PQ) -> Option<Quantity> {
    let value = pq.value.as_deref().and_then(decimal);
    let text_unit = pq.translation.iter().find_map(|t| {
        let u = t.child("originalText")?.text();
        let u = u.trim();
        (!u.is_empty()).then(|| u.to_owned())
    });
    let unit = pq.unit.as_deref().map(str::trim).filter(|u| !u.is_empty());
    let mut q = Quantity {
        value,
        ..Quantity::default()
    };
    match (unit, text_unit) {
        (Some("1") | None, Some(t)) => q.unit = Some(t),
        (Some(u), t) => {
            q.unit = Some(t.unwrap_or_else(|| u.to_owned()));
            q.system = Some(systems::UCUM.to_owned());
            q.code = Some(u.to_owned());
        }
        (None, None) => {}
    }
    (q.value.is_some() || q.unit.is_some()).then_some(q)
}

/// An HL7 polymorphic value as FHIR `value[x]`; what cannot be typed comes back as text.
pub fn value(v: &ANY, zone: super::TimeZone) -> (Option<Choice>, Option<String>) {
    match xsi_type(v) {
        Some("PQ") => match as_pq(v).as_ref().and_then(quantity) {
            Some(q) => (Some(Choice::Quantity(Box::new(q))), None),
            None => (None, None),
        },
        Some("CD" | "CE" | "CV" | "CS") => (
            as_cd(v)
                .as_ref()
                .and_then(plain_concept)
                .map(|c| Choice::CodeableConcept(c.into())),
            None,
        ),
        Some("IVL_PQ") => {
            let r = as_ivl_pq(v).map(|r| Range {
                low: r.low.as_deref().and_then(quantity),
                high: r.high.as_deref().and_then(quantity),
                ..Range::default()
            });
            match r {
                Some(r) if r.low.is_some() || r.high.is_some() => {
                    (Some(Choice::Range(Box::new(r))), None)
                }
                _ => (None, None),
            }
        }
        Some("INT" | "REAL") => match v.attr("value").and_then(decimal) {
            Some(d) => (
                Some(Choice::Quantity(Box::new(Quantity {
                    value: Some(d),
                    ..Quantity::default()
                }))),
                None,
            ),
            None => (None, None),
        },
        Some("TS") => (
            v.attr("value")
                .and_then(|t| ts_to_fhir(t, zone))
                .map(Choice::DateTime),
            None,
        ),
        Some("BL") => (
            v.attr("value").and_then(|b| match b {
                "true" => Some(Choice::Boolean(true)),
                "false" => Some(Choice::Boolean(false)),
                _ => None,
            }),
            None,
        ),
        _ => {
            let t = v.text();
            let t = t.trim();
            if t.is_empty() {
                (None, None)
            } else if matches!(xsi_type(v), Some("ST" | "ED") | None) {
                (Some(Choice::String(t.to_owned())), None)
            } else {
                (None, Some(t.to_owned()))
            }
        }
    }
}

fn join(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}\n{b}")),
        (a, b) => a.or(b),
    }
}

fn profile(name: &str, meta: Option<Meta>) -> Option<Meta> {
    Some(Meta {
        profile: vec![format!(
            "https://fhir.nhs.uk/STU3/StructureDefinition/{name}"
        )],
        ..meta.unwrap_or_default()
    })
}

impl Ctx<'_> {
    /// The text an id is derived from when a statement has none (made only then).
    fn fallback_id<'s>(&self, scope: &'s Scope) -> impl std::fmt::Display + use<'s> {
        struct Fallback<'s>(&'s str, usize);
        impl std::fmt::Display for Fallback<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}#{}", self.0, self.1)
            }
        }
        Fallback(&scope.comp_id, self.entry_count())
    }

    /// One ObservationStatement.
    pub fn observation(&mut self, o: &ObservationStatement, scope: &Scope) -> Option<String> {
        if is_immunisation(o.code.as_deref()) {
            return self.immunization(o, scope);
        }
        let fallback = self.fallback_id(scope);
        let id = self.id_for("Observation", o.id.as_deref(), &fallback);
        let source =
            o.id.as_deref()
                .and_then(|i| i.value())
                .map_or_else(|| fallback.to_string(), str::to_owned);
        let code = self.concept(
            o.code.as_deref(),
            DegradeCode::Other,
            &source,
            "ObservationStatement",
            None,
        );
        let zone = self.zone();
        let effective = ivl_to_effective(o.effective_time.as_deref(), zone).or_else(|| {
            ts_value(o.availability_time.as_deref())
                .and_then(|t| ts_to_fhir(t, zone))
                .map(Choice::DateTime)
        });
        let (value, value_text) = o
            .value
            .as_deref()
            .map(|v| value(v, zone))
            .unwrap_or((None, None));
        let comment = join(annotations(&o.pertinent_information), value_text);
        let performer = self.performer_of(&o.participant, scope, &source);
        let reference_range = o
            .reference_range
            .iter()
            .filter_map(|r| {
                let range = r.reference_interpretation_range.as_ref()?;
                let rr = ObservationReferenceRange {
                    text: text_of(range.text.as_deref()),
                    low: range
                        .value
                        .as_ref()
                        .and_then(|v| v.low.as_deref())
                        .and_then(quantity),
                    high: range
                        .value
                        .as_ref()
                        .and_then(|v| v.high.as_deref())
                        .and_then(quantity),
                    ..ObservationReferenceRange::default()
                };
                (rr.text.is_some() || rr.low.is_some() || rr.high.is_some()).then_some(rr)
            })
            .collect();
        let obs = Observation {
            id: Some(id.clone()),
            meta: profile(
                "CareConnect-GPC-Observation-1",
                self.meta(o.confidentiality_code.as_deref(), scope.confidential),
            ),
            identifier: self.identifiers(o.id.as_deref()),
            status: Some("final".to_owned()),
            code: Some(code),
            subject: Some(self.subject()),
            context: scope.encounter.as_deref().map(reference),
            effective,
            issued: ts_value(o.availability_time.as_deref()).and_then(|t| ts_to_instant(t, zone)),
            performer: performer.as_deref().map(reference).into_iter().collect(),
            value,
            interpretation: o.interpretation_code.as_deref().and_then(plain_concept),
            comment,
            reference_range,
            ..Observation::default()
        };
        let r = format!("Observation/{id}");
        self.produced(o.id.as_deref(), &r);
        self.push(obs.into());
        Some(r)
    }

    fn immunization(&mut self, o: &ObservationStatement, scope: &Scope) -> Option<String> {
        let fallback = self.fallback_id(scope);
        let id = self.id_for("Immunization", o.id.as_deref(), &fallback);
        let source =
            o.id.as_deref()
                .and_then(|i| i.value())
                .map_or_else(|| fallback.to_string(), str::to_owned);
        let procedure = self.concept(
            o.code.as_deref(),
            DegradeCode::Other,
            &source,
            "ObservationStatement",
            None,
        );
        let zone = self.zone();
        let date = ivl_point(o.effective_time.as_deref())
            .or(ts_value(o.availability_time.as_deref()))
            .and_then(|t| ts_to_fhir(t, zone));
        let mut note: Vec<Annotation> = annotations(&o.pertinent_information)
            .map(|t| Annotation {
                text: Some(t),
                ..Annotation::default()
            })
            .into_iter()
            .collect();
        if let Some(end) = super::time::ivl_high(o.effective_time.as_deref()) {
            note.push(Annotation {
                text: Some(format!("End Date: {end}")),
                ..Annotation::default()
            });
        }
        if let Some(v) = o.value.as_deref() {
            let (val, text) = value(v, zone);
            let t = match val {
                Some(Choice::Quantity(q)) => q
                    .value
                    .as_ref()
                    .map(|d| format!("Value: {} {}", d.as_str(), q.unit.as_deref().unwrap_or(""))),
                Some(Choice::CodeableConcept(c)) => {
                    c.text_or_display().map(|t| format!("Value: {t}"))
                }
                Some(Choice::String(s)) => Some(format!("Value: {s}")),
                _ => text,
            };
            if let Some(t) = t {
                note.push(Annotation {
                    text: Some(t.trim().to_owned()),
                    ..Annotation::default()
                });
            }
        }
        let mut extension = vec![Extension::with_value(
            systems::extension::VACCINATION_PROCEDURE,
            Choice::CodeableConcept(procedure.into()),
        )];
        if let Some(recorded) = ts_value(o.availability_time.as_deref())
            .or(scope.availability.as_deref())
            .and_then(|t| ts_to_fhir(t, zone))
        {
            extension.push(Extension::with_value(
                systems::extension::DATE_RECORDED,
                Choice::DateTime(recorded),
            ));
        }
        let performer = self.performer_of(&o.participant, scope, &source);
        let imm = Immunization {
            id: Some(id.clone()),
            meta: profile(
                "CareConnect-GPC-Immunization-1",
                self.meta(o.confidentiality_code.as_deref(), scope.confidential),
            ),
            extension,
            identifier: self.identifiers(o.id.as_deref()),
            status: Some("completed".to_owned()),
            not_given: Some(false),
            vaccine_code: Some(CodeableConcept::from_coding(Coding::new(
                "http://hl7.org/fhir/v3/NullFlavor",
                "UNK",
                "unknown",
            ))),
            patient: Some(self.subject()),
            encounter: scope.encounter.as_deref().map(reference),
            date,
            primary_source: Some(false),
            practitioner: performer
                .map(|p| ImmunizationPractitioner {
                    actor: Some(reference(&p)),
                    ..ImmunizationPractitioner::default()
                })
                .into_iter()
                .collect(),
            note,
            ..Immunization::default()
        };
        let r = format!("Immunization/{id}");
        self.produced(o.id.as_deref(), &r);
        self.push(imm.into());
        Some(r)
    }

    /// A NarrativeStatement (free text) → an Observation coded "Comment note".
    pub fn narrative(&mut self, n: &NarrativeStatement, scope: &Scope) -> Option<String> {
        let fallback = self.fallback_id(scope);
        let id = self.id_for("Observation", n.id.as_deref(), &fallback);
        let source =
            n.id.as_deref()
                .and_then(|i| i.value())
                .map_or_else(|| fallback.to_string(), str::to_owned);
        let zone = self.zone();
        let when = ts_value(n.availability_time.as_deref())
            .or(scope.availability.as_deref())
            .or(scope.author_time.as_deref());
        let performer = self.performer_of(&n.participant, scope, &source);
        let obs = Observation {
            id: Some(id.clone()),
            meta: profile(
                "CareConnect-GPC-Observation-1",
                self.meta(n.confidentiality_code.as_deref(), scope.confidential),
            ),
            identifier: self.identifiers(n.id.as_deref()),
            status: Some("final".to_owned()),
            code: Some(CodeableConcept::from_coding(Coding::new(
                systems::SNOMED_CT,
                COMMENT_NOTE.0,
                COMMENT_NOTE.1,
            ))),
            subject: Some(self.subject()),
            context: scope.encounter.as_deref().map(reference),
            effective: when.and_then(|t| ts_to_fhir(t, zone)).map(Choice::DateTime),
            issued: ts_value(n.availability_time.as_deref()).and_then(|t| ts_to_instant(t, zone)),
            performer: performer.as_deref().map(reference).into_iter().collect(),
            comment: narrative_text(n),
            ..Observation::default()
        };
        let r = format!("Observation/{id}");
        self.produced(n.id.as_deref(), &r);
        self.push(obs.into());
        Some(r)
    }

    /// A blood pressure battery → one Observation with a component per reading; narrative
    /// parts become its comment. Anything else inside falls back to a plain group.
    pub fn blood_pressure(&mut self, c: &CompoundStatement, scope: &Scope) -> Option<String> {
        let simple = c.component.iter().all(|sc| {
            matches!(
                sc.statement,
                Some(Statement::ObservationStatement(_) | Statement::NarrativeStatement(_))
            )
        });
        if !simple {
            return self.group(c, scope).into_iter().next();
        }
        let fallback = self.fallback_id(scope);
        let id = self.id_for("Observation", c.id.first(), &fallback);
        let source =
            c.id.first()
                .and_then(|i| i.value())
                .map_or_else(|| fallback.to_string(), str::to_owned);
        let code = self.concept(
            c.code.as_deref(),
            DegradeCode::Other,
            &source,
            "CompoundStatement",
            None,
        );
        let zone = self.zone();
        let mut components = Vec::new();
        let mut comments = Vec::new();
        let mut first_child_time = None;
        for s in c.component.iter().filter_map(|sc| sc.statement.as_ref()) {
            self.read_statement(s);
            match s {
                Statement::ObservationStatement(o) => {
                    let src =
                        o.id.as_deref()
                            .and_then(|i| i.value())
                            .unwrap_or(&source)
                            .to_owned();
                    let code = self.concept(
                        o.code.as_deref(),
                        DegradeCode::Other,
                        &src,
                        "ObservationStatement",
                        None,
                    );
                    let (value, text) = o
                        .value
                        .as_deref()
                        .map(|v| value(v, zone))
                        .unwrap_or((None, None));
                    if first_child_time.is_none() {
                        first_child_time =
                            ivl_point(o.effective_time.as_deref()).map(str::to_owned);
                    }
                    if let Some(t) = join(annotations(&o.pertinent_information), text) {
                        let name = o.code.as_deref().and_then(concept_text).unwrap_or_default();
                        comments.push(format!("{name}: {t}"));
                    }
                    // A component's value is a Quantity, CodeableConcept, string, Range…
                    let value = value.filter(|v| !matches!(v, Choice::Boolean(_)));
                    components.push(ObservationComponent {
                        code: Some(code),
                        value,
                        interpretation: o.interpretation_code.as_deref().and_then(plain_concept),
                        ..ObservationComponent::default()
                    });
                    if let Some(k) = o.id.as_deref().and_then(super::ii_key) {
                        self.produced
                            .entry(k)
                            .or_insert_with(|| format!("Observation/{id}"));
                    }
                }
                Statement::NarrativeStatement(n) => {
                    if let Some(t) = narrative_text(n) {
                        comments.push(t);
                    }
                    if let Some(k) = n.id.as_deref().and_then(super::ii_key) {
                        self.produced
                            .entry(k)
                            .or_insert_with(|| format!("Observation/{id}"));
                    }
                }
                _ => {}
            }
        }
        let effective = ivl_to_effective(c.effective_time.as_deref(), zone)
            .or_else(|| {
                first_child_time
                    .as_deref()
                    .and_then(|t| ts_to_fhir(t, zone))
                    .map(Choice::DateTime)
            })
            .or_else(|| {
                ts_value(c.availability_time.as_deref())
                    .and_then(|t| ts_to_fhir(t, zone))
                    .map(Choice::DateTime)
            });
        let performer = self.performer_of(&c.participant, scope, &source);
        let obs = Observation {
            id: Some(id.clone()),
            meta: profile(
                "CareConnect-GPC-Observation-1",
                self.meta(c.confidentiality_code.as_deref(), scope.confidential),
            ),
            identifier: self.identifiers(c.id.first()),
            status: Some("final".to_owned()),
            code: Some(code),
            subject: Some(self.subject()),
            context: scope.encounter.as_deref().map(reference),
            effective,
            issued: ts_value(c.availability_time.as_deref()).and_then(|t| ts_to_instant(t, zone)),
            performer: performer.as_deref().map(reference).into_iter().collect(),
            comment: (!comments.is_empty()).then(|| comments.join("\n")),
            component: components,
            ..Observation::default()
        };
        let r = format!("Observation/{id}");
        self.produced(c.id.first(), &r);
        self.push(obs.into());
        Some(r)
    }
}
