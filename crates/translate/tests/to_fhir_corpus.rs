//! Every EhrExtract of the conformance corpus → a GP Connect Bundle that keeps every
//! clinical statement (counts by kind, every SNOMED CT code, every statement date), is
//! strictly valid by `check_strict` and by the independent Python validator, and is the
//! same when translated twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod to_fhir_support;

use std::collections::{BTreeMap, HashSet};

use hl7v3::datatypes::{CD, SNOMED_CT, as_cd};
use hl7v3::ehr::{EhrExtract, Statement, Supply};
use to_fhir_support::{corpus, date_digits, items, python_validate};
use translate::to_fhir::{ToFhirOptions, extract_to_bundle};

fn translate(bytes: &[u8]) -> (hl7v3::Message, fhir::Bundle, translate::Report) {
    let msg = hl7v3::Message::parse(bytes).unwrap();
    let (b, r) = extract_to_bundle(&msg, &ToFhirOptions::default()).unwrap();
    (msg, b, r)
}

fn snomed_codes(cd: Option<&CD>, out: &mut HashSet<String>) {
    let Some(cd) = cd else { return };
    for c in std::iter::once(cd).chain(cd.translation.iter()) {
        if c.code_system.as_deref() == Some(SNOMED_CT)
            && let Some(k) = &c.code
        {
            out.insert(k.clone());
        }
    }
}

fn is_allergy(c: &hl7v3::ehr::CompoundStatement) -> bool {
    c.class_code.as_deref() == Some("CATEGORY")
        && matches!(
            c.code.as_ref().and_then(|k| k.code.as_deref()),
            Some("14L..00" | "SN53.00")
        )
}

fn code(c: &hl7v3::ehr::CompoundStatement) -> &str {
    c.code
        .as_ref()
        .and_then(|k| k.code.as_deref())
        .unwrap_or("")
}

const BP: &[&str] = &[
    "163020007",
    "163033001",
    "163034007",
    "163035008",
    "75367002",
];

/// What the Bundle must hold, worked out from the extract independently of the mapper.
#[derive(Debug, Default)]
struct Expected {
    counts: BTreeMap<&'static str, usize>,
    /// Observation + Immunization (the mapper decides which, by code).
    observations_or_immunizations: usize,
    codes: HashSet<String>,
    dates: Vec<(String, String)>,
}

fn expected(x: &EhrExtract) -> Expected {
    let mut e = Expected::default();
    let bump = |e: &mut Expected, k: &'static str| *e.counts.entry(k).or_default() += 1;
    // Observations named by a problem in the same composition are folded into it.
    let mut folded = HashSet::new();
    let mut bp_children = HashSet::new();
    for comp in x
        .folder()
        .unwrap()
        .component
        .iter()
        .filter_map(|c| c.ehr_composition.as_deref())
    {
        // Non-consultation containers make no Encounter; their code is structure only.
        if !matches!(
            comp.code.as_ref().and_then(|c| c.code.as_deref()),
            Some("196401000000100" | "196391000000103")
        ) {
            snomed_codes(comp.code.as_deref(), &mut e.codes);
        }
        let mut ids = HashSet::new();
        let mut named = Vec::new();
        let mut stack: Vec<&Statement> = comp
            .component
            .iter()
            .filter_map(|c| c.statement.as_ref())
            .collect();
        while let Some(s) = stack.pop() {
            if let Some(id) = s.id().and_then(|i| i.root.clone()) {
                ids.insert((
                    id.to_ascii_uppercase(),
                    matches!(s, Statement::ObservationStatement(_)),
                ));
            }
            match s {
                Statement::CompoundStatement(c) => {
                    if BP.contains(&code(c)) && c.class_code.as_deref() == Some("BATTERY") {
                        for sc in &c.component {
                            if let Some(ch) = &sc.statement
                                && let Some(id) = ch.id().and_then(|i| i.root.clone())
                            {
                                bp_children.insert(id.to_ascii_uppercase());
                            }
                        }
                    }
                    stack.extend(c.component.iter().filter_map(|sc| sc.statement.as_ref()));
                }
                Statement::LinkSet(l) => {
                    if let Some(n) = l
                        .condition_named
                        .as_ref()
                        .and_then(|c| c.named_statement_ref.as_ref())
                        .and_then(|r| r.id.as_ref())
                        .and_then(|i| i.root.clone())
                    {
                        named.push(n.to_ascii_uppercase());
                    }
                }
                _ => {}
            }
        }
        for n in named {
            if ids.contains(&(n.clone(), true)) {
                folded.insert(n);
            }
        }
    }
    for s in x.statements() {
        let id = s
            .id()
            .and_then(|i| i.root.clone())
            .unwrap_or_default()
            .to_ascii_uppercase();
        let date = |e: &mut Expected,
                    ivl: Option<&hl7v3::datatypes::IVL_TS>,
                    avail: Option<&hl7v3::datatypes::TS>| {
            let d = ivl
                .and_then(|i| i.start())
                .or(avail.and_then(|a| a.value.as_deref()));
            if let Some(d) = d.and_then(date_digits) {
                e.dates.push((id.clone(), d));
            }
        };
        match s {
            Statement::ObservationStatement(o) => {
                snomed_codes(o.code.as_deref(), &mut e.codes);
                if let Some(v) = o.value.as_deref().and_then(as_cd) {
                    snomed_codes(Some(&v), &mut e.codes);
                }
                date(
                    &mut e,
                    o.effective_time.as_deref(),
                    o.availability_time.as_deref(),
                );
                if !folded.contains(&id) && !bp_children.contains(&id) {
                    e.observations_or_immunizations += 1;
                }
            }
            Statement::NarrativeStatement(n) => {
                if n.reference
                    .iter()
                    .any(|r| r.referred_to_external_document.is_some())
                {
                    bump(&mut e, "DocumentReference");
                    for r in &n.reference {
                        if let Some(d) = &r.referred_to_external_document {
                            snomed_codes(d.code.as_deref(), &mut e.codes);
                        }
                    }
                } else if !bp_children.contains(&id) {
                    e.observations_or_immunizations += 1;
                }
                date(&mut e, None, n.availability_time.as_deref());
            }
            Statement::PlanStatement(p) => {
                bump(&mut e, "ProcedureRequest");
                snomed_codes(p.code.as_deref(), &mut e.codes);
                date(
                    &mut e,
                    p.effective_time.as_deref(),
                    p.availability_time.as_deref(),
                );
            }
            Statement::RequestStatement(r) => {
                bump(&mut e, "ReferralRequest");
                snomed_codes(r.code.as_deref(), &mut e.codes);
                date(
                    &mut e,
                    r.effective_time.as_deref(),
                    r.availability_time.as_deref(),
                );
            }
            Statement::LinkSet(l) => {
                bump(&mut e, "Condition");
                date(
                    &mut e,
                    l.effective_time.as_deref(),
                    l.availability_time.as_deref(),
                );
            }
            Statement::MedicationStatement(m) => {
                for c in &m.consumable {
                    let cd = c
                        .manufactured_product
                        .as_ref()
                        .and_then(|p| p.manufactured_material.as_ref())
                        .and_then(|m| m.code.as_deref());
                    snomed_codes(cd, &mut e.codes);
                }
                for s in m.component.iter().filter_map(|c| c.supply.as_ref()) {
                    match s {
                        Supply::Authorise(a) => {
                            bump(&mut e, "MedicationRequest:plan");
                            bump(&mut e, "MedicationStatement");
                            if let Some(d) = a
                                .availability_time
                                .as_ref()
                                .and_then(|t| t.value.as_deref())
                                .and_then(date_digits)
                            {
                                e.dates.push((id.clone(), d));
                            }
                        }
                        Supply::Prescribe(p) => {
                            bump(&mut e, "MedicationRequest:order");
                            if let Some(d) = p
                                .availability_time
                                .as_ref()
                                .and_then(|t| t.value.as_deref())
                                .and_then(date_digits)
                            {
                                e.dates.push((id.clone(), d));
                            }
                        }
                        _ => {}
                    }
                }
            }
            Statement::CompoundStatement(c) => {
                date(
                    &mut e,
                    c.effective_time.as_deref(),
                    c.availability_time.as_deref(),
                );
                match (c.class_code.as_deref(), code(c)) {
                    _ if is_allergy(c) => {
                        // The allergy's observation becomes the AllergyIntolerance.
                        let n = c
                            .component
                            .iter()
                            .filter(|sc| {
                                matches!(sc.statement, Some(Statement::ObservationStatement(_)))
                            })
                            .count();
                        *e.counts.entry("AllergyIntolerance").or_default() += n;
                    }
                    (_, "16488004") => bump(&mut e, "DiagnosticReport"),
                    (_, "123038009") => bump(&mut e, "Specimen"),
                    (Some("BATTERY" | "CLUSTER"), k) => {
                        snomed_codes(c.code.as_deref(), &mut e.codes);
                        let _ = k;
                        e.observations_or_immunizations += 1;
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    // Allergy observations were counted as observations above; take them back out.
    for s in x.statements() {
        if let Statement::CompoundStatement(c) = s
            && is_allergy(c)
        {
            let n = c
                .component
                .iter()
                .filter(|sc| matches!(sc.statement, Some(Statement::ObservationStatement(_))))
                .count();
            e.observations_or_immunizations -= n;
        }
    }
    e
}

#[test]
fn every_corpus_extract_keeps_every_clinical_statement() {
    let files = corpus("translation/ehr-extract", "xml");
    assert_eq!(files.len(), 13);
    let mut failures = Vec::new();
    for (name, bytes) in &files {
        let (msg, bundle, report) = translate(bytes);
        let x = msg.ehr_extract().unwrap();
        let want = expected(x);
        let got = items(&bundle);
        for (k, n) in &want.counts {
            let have = got.counts.get(*k).copied().unwrap_or(0);
            if have != *n {
                failures.push(format!("{name}: {k}: expected {n}, got {have}"));
            }
        }
        let obs = got.counts.get("Observation").copied().unwrap_or(0)
            + got.counts.get("Immunization").copied().unwrap_or(0);
        if obs != want.observations_or_immunizations {
            failures.push(format!(
                "{name}: Observation+Immunization: expected {}, got {obs}",
                want.observations_or_immunizations
            ));
        }
        for c in &want.codes {
            if !got.codes.contains(c) {
                failures.push(format!("{name}: SNOMED CT code {c} missing"));
            }
        }
        for (id, d) in &want.dates {
            if !got.dates.contains(d) {
                failures.push(format!("{name}: date {d} of statement {id} missing"));
            }
        }
        // The report accounts for every statement read.
        let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
        for s in x.statements() {
            let k = match s {
                Statement::CompoundStatement(_) => "CompoundStatement",
                Statement::LinkSet(_) => "LinkSet",
                Statement::MedicationStatement(_) => "MedicationStatement",
                Statement::NarrativeStatement(_) => "NarrativeStatement",
                Statement::ObservationStatement(_) => "ObservationStatement",
                Statement::PlanStatement(_) => "PlanStatement",
                Statement::RequestStatement(_) => "RequestStatement",
                Statement::RegistrationStatement(_) => "RegistrationStatement",
                Statement::EhrEmpty(_) => "EhrEmpty",
                Statement::Other(_) => "Other",
            };
            *by_kind.entry(k.to_owned()).or_default() += 1;
        }
        for (k, n) in &by_kind {
            let r = report.input.get(k).copied().unwrap_or(0);
            if r != *n {
                failures.push(format!("{name}: report read {r} {k}, the extract has {n}"));
            }
        }
        for u in &report.unmapped {
            failures.push(format!("{name}: unmapped {u:?}"));
        }
        let issues = bundle.check_strict();
        for i in issues.iter().take(10) {
            failures.push(format!("{name}: check_strict: {i:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_bundles_pass_the_python_validator() {
    let bundles: Vec<(String, fhir::Bundle)> = corpus("translation/ehr-extract", "xml")
        .into_iter()
        .map(|(name, bytes)| (name.replace(".xml", ".json"), translate(&bytes).1))
        .collect();
    let failures = python_validate("to-fhir-corpus", &bundles);
    assert!(
        failures.is_empty(),
        "rejected by fhir.resources: {failures:#?}"
    );
}

#[test]
fn translating_twice_gives_the_same_bundle() {
    for (_, bytes) in corpus("translation/ehr-extract", "xml").iter().take(4) {
        let (_, a, ra) = translate(bytes);
        let (_, b, rb) = translate(bytes);
        assert_eq!(fhir::to_vec(&a).unwrap(), fhir::to_vec(&b).unwrap());
        assert_eq!(ra, rb);
    }
}

#[test]
fn degrades_are_reported_and_coded() {
    // Every degraded item in the corpus output carries its degrade code first, with the
    // original text kept.
    for (name, bytes) in corpus("translation/ehr-extract", "xml") {
        let (_, bundle, report) = translate(&bytes);
        let json = String::from_utf8(fhir::to_vec(&bundle).unwrap()).unwrap();
        for d in &report.degrades {
            assert!(json.contains(d.degrade_code.code()), "{name}: {d:?}");
        }
    }
}
