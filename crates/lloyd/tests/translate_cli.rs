//! `lloyd translate` end to end on corpus files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{corpus, lloyd};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lloyd-translate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn a_bundle_becomes_a_valid_extract_on_stdout_with_a_report() {
    let bundle = corpus().join("translation/gpconnect/9465699918_Magre_full_20210119.json");
    let report = scratch("magre.report.json");
    let out = lloyd()
        .args(["translate", "--to", "hl7"])
        .arg(&bundle)
        .args(["--to-ods", "B86041", "--from-asid", "200000000359"])
        .args([
            "--to-asid",
            "200000000360",
            "--creation-time",
            "20240131093000",
        ])
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let xml = succeeded(&out);
    assert!(xml.starts_with(b"<?xml"));
    let msg = hl7v3::Message::parse(&xml).unwrap();
    assert_eq!(msg.interaction_id(), "RCMR_IN030000UK06");
    assert_eq!(msg.to_asid(), Some("200000000360"));
    assert_eq!(msg.from_asid(), Some("200000000359"));
    let extract = msg.ehr_extract().unwrap();
    let source: fhir::Bundle = fhir::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    let patient = source.resources_of::<fhir::Patient>().next().unwrap();
    assert_eq!(extract.nhs_number(), patient.nhs_number());
    assert!(extract.statements().len() > 100);
    // It validates, schema and rules.
    let schemas = hl7v3::validate::Schemas::new(corpus().join("schemas")).unwrap();
    let r = hl7v3::validate::validate(&xml, Some(&schemas), &Default::default());
    assert!(r.valid, "{:?}", r.findings);
    // The report is JSON with counts in and out.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["input"]["Patient"], 1);
    assert!(report["output"]["ObservationStatement"].as_u64().unwrap() > 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("items read"), "{stderr}");
}

#[test]
fn the_same_bundle_gives_the_same_extract() {
    let bundle = corpus().join("translation/gpconnect/9465700193_Birdi_full_20210119.json");
    let run = || {
        lloyd()
            .args([
                "translate",
                "--to",
                "hl7",
                "--creation-time",
                "20240131093000",
            ])
            .arg(&bundle)
            .output()
            .unwrap()
            .stdout
    };
    let a = run();
    assert!(!a.is_empty());
    assert_eq!(a, run());
}

#[test]
fn bad_json_is_refused_naming_the_file_and_the_place() {
    let bad = scratch("bad.json");
    std::fs::write(
        &bad,
        r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"p","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":9465698490}]}}]}"#,
    )
    .unwrap();
    let out = lloyd()
        .args(["translate", "--to", "hl7"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.json"), "{err}");
    assert!(err.contains("entry[0].resource"), "{err}");
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn a_bundle_without_a_patient_is_refused() {
    let empty = scratch("empty.json");
    std::fs::write(&empty, r#"{"resourceType":"Bundle","type":"collection"}"#).unwrap();
    let out = lloyd()
        .args([
            "translate",
            "--to",
            "hl7",
            "--creation-time",
            "20240131093000",
        ])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no Patient"), "{err}");
}

#[test]
fn an_extract_becomes_a_fhir_bundle() {
    let extract = corpus().join("translation/ehr-extract/9465700193_Birdi_full_20210119.xml");
    let out = translated(&["--to", "fhir"], &extract);
    let bundle: fhir::Bundle = fhir::from_slice(&out).unwrap();
    assert!(bundle.resources_of::<fhir::Patient>().next().is_some());
}

#[test]
fn a_file_that_is_not_xml_is_refused_for_fhir() {
    let bad = scratch("bad.xml");
    std::fs::write(
        &bad,
        "<RCMR_IN030000UK06><id root=\"x\"></RCMR_IN030000UK06>",
    )
    .unwrap();
    let out = lloyd()
        .args(["translate", "--to", "fhir"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.xml") && err.contains("line 1"), "{err}");
}

/// Runs `lloyd translate` and returns its standard output, checking it succeeded.
fn translated(args: &[&str], file: &Path) -> Vec<u8> {
    let out = lloyd()
        .arg("translate")
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    succeeded(&out)
}

/// Standard output, once the run is seen to have succeeded.
fn succeeded(out: &std::process::Output) -> Vec<u8> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    out.stdout.clone()
}

#[test]
fn the_output_is_the_whole_record_translation_byte_for_byte_each_way() {
    // FHIR → HL7: what bundle_to_extract and Message::to_xml write, then a newline.
    let bundle = corpus().join("translation/gpconnect/9465698490_Daniels_full_20210119.json");
    let got = translated(
        &[
            "--to",
            "hl7",
            "--creation-time",
            "20240131093000",
            "--to-ods",
            "B86041",
            "--from-asid",
            "200000000359",
        ],
        &bundle,
    );
    let parsed: fhir::Bundle = fhir::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    let options = translate::to_hl7::ToHl7Options {
        creation_time: Some("20240131093000".into()),
        to_ods: Some("B86041".into()),
        from_asid: Some("200000000359".into()),
        ..Default::default()
    };
    let (message, _) = translate::to_hl7::bundle_to_extract(&parsed, &options).unwrap();
    let mut want = message.to_xml(hl7v3::xml::Layout::Compact).into_bytes();
    want.push(b'\n');
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the extracts differ");

    // HL7 → FHIR: what extract_to_bundle and fhir::to_vec write, then a newline.
    let extract = corpus().join("translation/ehr-extract/9465698490_Daniels_full_20210119.xml");
    let got = translated(&["--to", "fhir"], &extract);
    let message = hl7v3::Message::parse(&std::fs::read(&extract).unwrap()).unwrap();
    let (bundle, _) = translate::to_fhir::extract_to_bundle(&message, &Default::default()).unwrap();
    let mut want = fhir::to_vec(&bundle).unwrap();
    want.push(b'\n');
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the bundles differ");
}
