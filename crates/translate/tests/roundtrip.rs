//! FHIR → HL7 → FHIR keeps every clinical item: on the 13 GP Connect bundles of the
//! corpus, and (property tests) on generated records of any seed and size.
//!
//! "Every clinical item" is counted the same way on both sides: resources by type
//! (`AllergyIntolerance`, `Condition`, medication requests by intent, `Observation`s …),
//! every SNOMED CT code (coding codes and description ids) and every date.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod to_fhir_support;

use proptest::prelude::*;
use to_fhir_support::{Items, corpus, items};
use translate::synthetic::synthetic_bundle;
use translate::to_fhir::{ToFhirOptions, extract_to_bundle};
use translate::to_hl7::{ToHl7Options, bundle_to_extract};

fn hl7_options() -> ToHl7Options {
    ToHl7Options {
        creation_time: Some("20240101120000".to_owned()),
        ..ToHl7Options::default()
    }
}

/// FHIR → HL7 → (written, read again) → FHIR.
fn round_trip(bundle: &fhir::Bundle) -> (fhir::Bundle, translate::Report, translate::Report) {
    let (msg, to_hl7) = bundle_to_extract(bundle, &hl7_options()).unwrap();
    // Through the wire format, as a receiver would see it.
    let xml = msg.to_xml(hl7v3::xml::Layout::Compact);
    let msg = hl7v3::Message::parse(xml.as_bytes()).unwrap();
    let (back, to_fhir) = extract_to_bundle(&msg, &ToFhirOptions::default()).unwrap();
    (back, to_hl7, to_fhir)
}

/// What was lost between `before` and `after`, in words (empty when nothing was):
/// resources by type, SNOMED CT codings (kept when their concept id or description id
/// is still there, or when the sender reported them degraded), dates of clinical
/// elements.
fn losses(before: &Items, after: &Items, to_hl7: &translate::Report) -> Vec<String> {
    let mut out = Vec::new();
    let unmapped_hl7 = to_hl7.unmapped.len();
    for (k, n) in &before.counts {
        let have = after.counts.get(k).copied().unwrap_or(0);
        if have < *n {
            out.push(format!(
                "{k}: {n} before, {have} after ({unmapped_hl7} unmapped by to_hl7)"
            ));
        }
    }
    let degraded: std::collections::HashSet<&str> = to_hl7
        .degrades
        .iter()
        .flat_map(|d| d.original_codes.iter().filter_map(|c| c.code.as_deref()))
        .collect();
    for ids in &before.codings {
        if ids.iter().any(|i| degraded.contains(i.as_str())) {
            continue;
        }
        if !ids.iter().any(|i| after.codes.contains(i)) {
            out.push(format!("SNOMED CT coding {ids:?} lost"));
        }
    }
    for d in &before.clinical_dates {
        if !after.dates.contains(d) {
            out.push(format!("date {d} lost"));
        }
    }
    out
}

#[test]
fn corpus_bundles_keep_every_clinical_item_through_hl7_and_back() {
    let mut failures = Vec::new();
    for (name, bytes) in corpus("translation/gpconnect", "json") {
        let mut bundle: fhir::Bundle = fhir::from_slice(&bytes).unwrap();
        bundle.clean();
        let (back, to_hl7, to_fhir) = round_trip(&bundle);
        let before = items(&bundle);
        let after = items(&back);
        for l in losses(&before, &after, &to_hl7) {
            failures.push(format!("{name}: {l}"));
        }
        for u in &to_fhir.unmapped {
            failures.push(format!("{name}: to_fhir unmapped {u:?}"));
        }
        let issues = back.check_strict();
        for i in issues.iter().take(5) {
            failures.push(format!("{name}: check_strict after round trip: {i:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} losses:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn hl7_to_fhir_to_hl7_to_fhir_is_stable() {
    // Once in our own shape, a second round trip changes no clinical item.
    for (name, bytes) in corpus("translation/ehr-extract", "xml").into_iter().take(5) {
        let msg = hl7v3::Message::parse(&bytes).unwrap();
        let (first, _) = extract_to_bundle(&msg, &ToFhirOptions::default()).unwrap();
        let (second, to_hl7, _) = round_trip(&first);
        let l = losses(&items(&first), &items(&second), &to_hl7);
        assert!(l.is_empty(), "{name}: {l:#?}");
    }
}

/// A SNOMED CT coding that carries only a description id (GP2GP senders put the
/// description id in `code`; `to_fhir` keeps it in the `Extension-coding-sctdescid`
/// extension, as it is not a concept id) should survive FHIR → HL7 → FHIR too: `to_hl7`
/// sends the description id when a SNOMED CT coding has no `code`.
#[test]
fn description_ids_survive_a_second_round_trip() {
    for (name, bytes) in corpus("translation/ehr-extract", "xml").into_iter().take(5) {
        let msg = hl7v3::Message::parse(&bytes).unwrap();
        let (first, _) = extract_to_bundle(&msg, &ToFhirOptions::default()).unwrap();
        let (second, _, _) = round_trip(&first);
        let before = items(&first);
        let after = items(&second);
        let lost: Vec<_> = before
            .description_only
            .iter()
            .filter(|d| !after.codes.contains(*d))
            .collect();
        assert!(lost.is_empty(), "{name}: {lost:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn generated_records_keep_every_clinical_item(seed in any::<u64>(), kb in 20usize..400) {
        let bundle = synthetic_bundle(kb * 1000, seed).unwrap();
        let (back, to_hl7, to_fhir) = round_trip(&bundle);
        let before = items(&bundle);
        let l = losses(&before, &items(&back), &to_hl7);
        prop_assert!(l.is_empty(), "seed {}: {:#?}", seed, l);
        prop_assert!(to_fhir.unmapped.is_empty(), "{:#?}", to_fhir.unmapped);
        prop_assert!(back.check_strict().is_empty());
    }
}
