//! The report's list of documents: every file an EhrExtract refers to is named there with
//! the DocumentReference attachment it stands for, so a sender knows what to send with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use hl7v3::xml::Layout;
use translate::to_hl7::{ToHl7Options, bundle_to_extract};

#[test]
fn every_referenced_file_is_listed_with_its_document_reference() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/translation/gpconnect");
    let mut with_documents = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let bundle: fhir::Bundle = fhir::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let options = ToHl7Options {
            creation_time: Some("20240131093000".into()),
            ..ToHl7Options::default()
        };
        let (msg, report) = bundle_to_extract(&bundle, &options).unwrap();
        let xml = msg.to_xml(Layout::Compact);
        let referenced: Vec<&str> = xml
            .split("file://localhost/")
            .skip(1)
            .map(|rest| &rest[..rest.find('"').unwrap()])
            .collect();
        let listed: Vec<&str> = report
            .documents
            .iter()
            .map(|d| d.filename.as_str())
            .collect();
        assert_eq!(referenced, listed, "{}", path.display());
        let references = bundle
            .resources_of::<fhir::DocumentReference>()
            .map(|d| format!("DocumentReference/{}", d.id.as_deref().unwrap_or_default()))
            .collect::<Vec<_>>();
        for d in &report.documents {
            assert!(
                references.contains(&d.source),
                "{} names {}",
                path.display(),
                d.source
            );
            assert!(!d.content_type.is_empty());
        }
        if !listed.is_empty() {
            with_documents += 1;
        }
    }
    assert!(with_documents >= 3, "the corpus has bundles with documents");
}
