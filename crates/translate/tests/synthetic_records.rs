//! Synthetic records for a simulated population: every one, whatever its seed, size,
//! patient or practice, is a strictly valid GP Connect Bundle that translates to an
//! EhrExtract valid against the real schemas, and the same inputs give the same bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod to_fhir_support;

use hl7v3::validate::{Options, Schemas, validate};
use translate::synthetic::{
    Demographics, DocumentKind, PracticeProfile, RecordPlan, document_bytes, record_bundle,
};
use translate::to_hl7::{ToHl7Options, bundle_to_extract};

fn practice(i: u64) -> PracticeProfile {
    PracticeProfile {
        ods: format!("Y{:05}", 10_000 + i * 37),
        name: format!("Canal & Mill <{i}> Surgery"),
        address_lines: vec![format!("{} Station Road", 1 + i), "Hebden Bridge".into()],
        postcode: "HX7 8AD".into(),
        phone: "01422 555 0101".into(),
    }
}

fn patient(i: u64) -> Demographics {
    let stem = 999_100_000 + i as u32 * 7;
    let nhs = (stem..)
        .find_map(nhsid::NhsNumber::from_stem)
        .unwrap()
        .to_string();
    Demographics {
        nhs_number: nhs,
        family: Some(["O'Brien", "Nwosu", "Larsen", "Ahmed"][i as usize % 4].into()),
        given: Some(["Bríd", "Tobi", "Freya", "Zain"][i as usize % 4].into()),
        prefix: Some(["Ms", "Mr", "Miss", "Mr"][i as usize % 4].into()),
        gender: Some(["female", "male", "female", "male"][i as usize % 4].into()),
        birth_date: Some(format!("{}-0{}-1{}", 1930 + i * 4, 1 + i % 9, i % 10)),
        address_lines: vec!["7 Weaver's Row".into(), "Todmorden".into()],
        postcode: Some("OL14 5QQ".into()),
    }
}

/// Twenty records across the size range, each to FHIR and back to a schema-valid extract.
#[test]
fn twenty_records_across_sizes_translate_to_schema_valid_extracts() {
    let schemas = Schemas::new(to_fhir_support::conformance().join("schemas")).unwrap();
    let sizes = [
        20_000u64, 35_000, 60_000, 90_000, 120_000, 150_000, 180_000, 200_000, 230_000, 260_000,
        300_000, 400_000, 550_000, 750_000, 1_000_000, 1_400_000, 2_000_000, 3_000_000, 4_500_000,
        6_000_000,
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (i, &bytes) in sizes.iter().enumerate() {
        let i = i as u64;
        let mut plan = RecordPlan::typical(1000 + i, Some(40), i.is_multiple_of(3));
        plan.bytes = bytes;
        let (practice, patient) = (practice(i % 3), patient(i));
        let bundle = record_bundle(&practice, &patient, &plan).unwrap();
        let issues = bundle.check_strict();
        assert!(
            issues.is_empty(),
            "record {i}: {:#?}",
            &issues[..issues.len().min(3)]
        );
        for ty in bundle.count_by_type().keys() {
            seen.insert(ty.to_string());
        }
        // What the practice shows is who PDS says the patient is.
        let p = bundle.patient().unwrap();
        assert_eq!(p.nhs_number(), Some(patient.nhs_number.as_str()));
        assert_eq!(p.name[0].family, patient.family);
        assert_eq!(
            p.birth_date.as_ref().map(|d| d.as_str().to_string()),
            patient.birth_date
        );
        let docs: Vec<&fhir::DocumentReference> = bundle.resources_of().collect();
        assert_eq!(docs.len(), plan.documents.len(), "record {i}");
        for d in docs {
            let a = d.content[0].attachment.as_ref().unwrap();
            let planned = plan
                .planned_documents()
                .into_iter()
                .find(|p| Some(&p.id) == d.id.as_ref())
                .unwrap();
            assert_eq!(a.size, Some(planned.bytes));
            assert_eq!(a.content_type.as_deref(), Some(planned.kind.content_type()));
        }

        let options = ToHl7Options {
            creation_time: Some("20250102090000".into()),
            ..ToHl7Options::default()
        };
        let (msg, report) = bundle_to_extract(&bundle, &options).unwrap();
        assert!(
            report.unmapped.is_empty(),
            "record {i}: {:#?}",
            report.unmapped
        );
        let xml = msg.to_xml(hl7v3::xml::Layout::Compact);
        let result = validate(xml.as_bytes(), Some(&schemas), &Options::default());
        let errors: Vec<String> = result.errors().take(5).map(|f| f.to_string()).collect();
        assert!(result.valid, "record {i} ({bytes} bytes): {errors:#?}");
        eprintln!(
            "record {i}: planned {bytes}, extract sent {} ({:.2}×), bundle {} bytes",
            xml.len(),
            xml.len() as f64 / bytes as f64,
            fhir::to_vec(&bundle).unwrap().len()
        );
    }
    for ty in [
        "AllergyIntolerance",
        "Condition",
        "DiagnosticReport",
        "DocumentReference",
        "Encounter",
        "Immunization",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "ProcedureRequest",
        "ReferralRequest",
        "Specimen",
    ] {
        assert!(seen.contains(ty), "no {ty} in any record: {seen:?}");
    }
}

#[test]
fn records_with_demographics_and_documents_are_strictly_valid_fhir() {
    // The independent validator (Python's fhir.resources), over what `complete` adds:
    // names, addresses, the practice's telephone, attachment sizes.
    let bundles: Vec<(String, fhir::Bundle)> = (0..3)
        .map(|i| {
            let plan = RecordPlan::typical(500 + i, Some(30 + 20 * i as u32), true);
            let b = record_bundle(&practice(i), &patient(i), &plan).unwrap();
            (format!("seeded-{i}.json"), b)
        })
        .collect();
    let failures = to_fhir_support::python_validate("synthetic-seeded", &bundles);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_same_plan_gives_the_same_bundle_byte_for_byte() {
    let plan = RecordPlan::typical(77, Some(67), true);
    let a = fhir::to_vec(&record_bundle(&practice(1), &patient(2), &plan).unwrap()).unwrap();
    let b = fhir::to_vec(&record_bundle(&practice(1), &patient(2), &plan).unwrap()).unwrap();
    assert_eq!(a, b);
    let other = RecordPlan { seed: 78, ..plan };
    let c = fhir::to_vec(&record_bundle(&practice(1), &patient(2), &other).unwrap()).unwrap();
    assert_ne!(a, c);
}

#[test]
fn a_practices_records_name_the_same_clinicians() {
    let ids = |seed| {
        let plan = RecordPlan::sized(seed, 30_000);
        let b = record_bundle(&practice(4), &patient(seed), &plan).unwrap();
        let mut v: Vec<String> = b
            .resources_of::<fhir::Practitioner>()
            .filter_map(|p| p.id.clone())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(1), ids(2));
    let other = record_bundle(&practice(5), &patient(1), &RecordPlan::sized(1, 30_000)).unwrap();
    let theirs: Vec<String> = other
        .resources_of::<fhir::Practitioner>()
        .filter_map(|p| p.id.clone())
        .collect();
    assert!(theirs.iter().all(|t| !ids(1).contains(t)));
}

#[test]
fn a_planned_document_reads_back_as_its_kind() {
    let plan = RecordPlan::typical(3, Some(80), true);
    for d in plan.planned_documents() {
        let (_, bytes) = document_bytes(&plan, &patient(0), &d.id).unwrap();
        match d.kind {
            DocumentKind::Pdf => assert!(bytes.starts_with(b"%PDF-")),
            DocumentKind::Png => assert!(bytes.starts_with(b"\x89PNG")),
        }
        assert_eq!(bytes.len() as u64, d.bytes);
    }
}
