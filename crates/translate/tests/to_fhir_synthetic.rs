//! The synthetic record generator: schema-valid HL7, deterministic, and it translates to a
//! strictly valid Bundle that keeps what it holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod to_fhir_support;

use hl7v3::validate::{Options, Schemas, validate};
use translate::synthetic::{synthetic_extract, synthetic_extract_xml};
use translate::to_fhir::{ToFhirOptions, extract_to_bundle};

#[test]
fn synthetic_extracts_are_schema_valid() {
    let schemas = Schemas::new(to_fhir_support::conformance().join("schemas")).unwrap();
    for seed in 0..3 {
        let xml = synthetic_extract_xml(150_000, seed);
        let report = validate(xml.as_bytes(), Some(&schemas), &Options::default());
        let errors: Vec<String> = report.errors().take(10).map(|f| f.to_string()).collect();
        assert!(report.valid, "seed {seed}: {errors:#?}");
    }
}

#[test]
fn synthetic_extracts_translate_to_valid_bundles() {
    let mut bundles = Vec::new();
    for seed in 0..4 {
        let msg = synthetic_extract(600_000, seed).unwrap();
        let (bundle, report) = extract_to_bundle(&msg, &ToFhirOptions::default()).unwrap();
        assert!(
            bundle.check_strict().is_empty(),
            "{:#?}",
            &bundle.check_strict()[..3.min(bundle.check_strict().len())]
        );
        assert!(report.unmapped.is_empty(), "{:#?}", report.unmapped);
        let counts = bundle.count_by_type();
        for ty in [
            "AllergyIntolerance",
            "Condition",
            "DiagnosticReport",
            "DocumentReference",
            "Encounter",
            "MedicationRequest",
            "MedicationStatement",
            "Observation",
            "Specimen",
        ] {
            assert!(
                counts.get(ty).copied().unwrap_or(0) > 0,
                "seed {seed}: no {ty}: {counts:?}"
            );
        }
        bundles.push((format!("synthetic-{seed}.json"), bundle));
    }
    let failures = to_fhir_support::python_validate("to-fhir-synthetic", &bundles);
    assert!(failures.is_empty(), "{failures:#?}");
}
