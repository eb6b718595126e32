//! Every GP Connect bundle of the conformance corpus: reads, counts, writes
//! back unchanged, and checks strictly before and after cleaning.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fhir::{Bundle, IssueKind, Resource};
use serde_json::Value;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
}

fn bundles() -> Vec<(String, Vec<u8>)> {
    let dir = corpus().join("translation/gpconnect");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        13,
        "expected the 13 GP Connect bundles in {}",
        dir.display()
    );
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// Resource counts by type, computed from the raw JSON.
fn value_counts(v: &Value) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in v["entry"].as_array().unwrap() {
        let ty = e["resource"]["resourceType"].as_str().unwrap();
        *counts.entry(ty.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Paths of every empty string in a JSON tree, in the checker's notation.
fn empty_string_paths(v: &Value, path: &mut String, out: &mut Vec<String>) {
    let len = path.len();
    match v {
        Value::String(s) if s.is_empty() => out.push(path.clone()),
        Value::Object(m) => {
            for (k, v) in m {
                path.push('.');
                path.push_str(k);
                empty_string_paths(v, path, out);
                path.truncate(len);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push_str(&format!("[{i}]"));
                empty_string_paths(v, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The JSON tree with empty strings removed, then the objects and arrays
/// left empty (what `Bundle::clean` promises).
fn without_empty(v: &Value) -> Option<Value> {
    match v {
        Value::String(s) if s.is_empty() => None,
        Value::Null => None,
        Value::Object(m) => {
            let m: serde_json::Map<_, _> = m
                .iter()
                .filter_map(|(k, v)| without_empty(v).map(|v| (k.clone(), v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(a) => {
            let a: Vec<_> = a.iter().filter_map(without_empty).collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        v => Some(v.clone()),
    }
}

#[test]
fn every_bundle_reads_with_the_right_counts() {
    for (name, bytes) in bundles() {
        let bundle: Bundle = fhir::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        let expected = value_counts(&raw);
        let got: BTreeMap<String, usize> = bundle
            .count_by_type()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(got, expected, "{name}");
        // Every resource type in the corpus is modelled (none falls back to
        // raw JSON).
        assert!(
            bundle.resources().all(|r| !matches!(r, Resource::Other(_))),
            "{name}"
        );
        assert_eq!(bundle.r#type.as_deref(), Some("collection"), "{name}");
        assert_eq!(
            bundle.resources_of::<fhir::Patient>().count(),
            1,
            "{name}: one Patient per structured record"
        );
    }
}

#[test]
fn every_bundle_round_trips() {
    for (name, bytes) in bundles() {
        let bundle: Bundle = fhir::from_slice(&bytes).unwrap();
        let written = fhir::to_vec(&bundle).unwrap();
        // The written JSON is the input JSON (member order aside).
        let input: Value = serde_json::from_slice(&bytes).unwrap();
        let output: Value = serde_json::from_slice(&written).unwrap();
        assert!(
            input == output,
            "{name}: written JSON differs from the input"
        );
        // And reads back to the same model.
        let again: Bundle = fhir::from_slice(&written).unwrap();
        assert_eq!(again, bundle, "{name}");
    }
}

#[test]
fn decimals_keep_their_digits() {
    // The corpus writes lab values as `4.000`; a model through f64 would
    // write `4.0`.
    let mut seen = 0;
    for (name, bytes) in bundles() {
        let text = String::from_utf8(bytes.clone()).unwrap();
        let bundle: Bundle = fhir::from_slice(&bytes).unwrap();
        let written = fhir::to_string_pretty(&bundle).unwrap();
        for obs in bundle.resources_of::<fhir::Observation>() {
            if let Some(q) = obs.value.as_ref().and_then(|v| v.as_quantity())
                && let Some(d) = &q.value
            {
                let needle = format!("\"value\": {}", d.as_str());
                assert!(text.contains(&needle), "{name}: {needle} not in input");
                assert!(written.contains(&needle), "{name}: {needle} not in output");
                seen += 1;
            }
        }
    }
    assert!(seen > 100, "only {seen} quantities seen");
}

#[test]
fn strict_check_finds_the_empty_strings_and_cleaning_removes_them() {
    let mut inputs_with_empty = 0;
    for (name, bytes) in bundles() {
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        let mut expected = vec![];
        empty_string_paths(&raw, &mut "Bundle".to_owned(), &mut expected);
        expected.sort();

        let mut bundle: Bundle = fhir::from_slice(&bytes).unwrap();
        let issues = bundle.check_strict();
        let mut found: Vec<String> = issues
            .iter()
            .filter(|i| i.kind == IssueKind::EmptyString)
            .map(|i| i.path.clone())
            .collect();
        found.sort();
        assert_eq!(found, expected, "{name}");
        // Nothing else is wrong with the corpus input.
        let others: Vec<_> = issues
            .iter()
            .filter(|i| i.kind != IssueKind::EmptyString)
            .collect();
        assert!(others.is_empty(), "{name}: {others:#?}");
        if !expected.is_empty() {
            inputs_with_empty += 1;
        }

        bundle.clean();
        let issues = bundle.check_strict();
        assert!(issues.is_empty(), "{name} after cleaning: {issues:#?}");
        let cleaned: Value = serde_json::from_slice(&fhir::to_vec(&bundle).unwrap()).unwrap();
        assert!(
            Some(cleaned) == without_empty(&raw),
            "{name}: cleaning changed more than the empty strings"
        );
    }
    assert_eq!(
        inputs_with_empty, 12,
        "the corpus has empty strings in 12 of 13 bundles"
    );
}

#[test]
fn references_resolve_through_the_index() {
    for (name, bytes) in bundles() {
        let bundle: Bundle = fhir::from_slice(&bytes).unwrap();
        let index = bundle.index();
        let patient = bundle.patient().unwrap();
        // The corpus replaced real NHS numbers by this placeholder.
        assert_eq!(patient.nhs_number(), Some("1234567890"), "{name}");
        // Every List item resolves, and to the type its reference names.
        let mut items = 0;
        for list in bundle.resources_of::<fhir::List>() {
            for entry in &list.entry {
                let item = entry.item.as_ref().unwrap();
                let target = index
                    .resolve(item)
                    .unwrap_or_else(|| panic!("{name}: {:?} does not resolve", item.reference));
                let (ty, id) = item.type_and_id().unwrap();
                assert_eq!((target.resource_type(), target.id()), (ty, Some(id)));
                items += 1;
            }
        }
        assert!(items > 0, "{name}");
        // Every issue of a medication resolves to its authorisation.
        for req in bundle.resources_of::<fhir::MedicationRequest>() {
            if req.intent.as_deref() == Some("order") {
                let plan = index
                    .resolve_as::<fhir::MedicationRequest>(&req.based_on[0])
                    .unwrap();
                assert_eq!(plan.intent.as_deref(), Some("plan"), "{name}");
            }
        }
    }
}

#[test]
fn snomed_description_ids_are_reachable() {
    let mut with_descid = 0;
    let mut total = 0;
    for (_, bytes) in bundles() {
        let raw = String::from_utf8(bytes.clone()).unwrap();
        total += raw.matches("\"url\": \"descriptionId\"").count();
        let bundle: Bundle = fhir::from_slice(&bytes).unwrap();
        for cond in bundle.resources_of::<fhir::Condition>() {
            if let Some(c) = cond.code.as_ref().and_then(|c| c.snomed())
                && let Some(id) = c.snomed_description_id()
            {
                assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
                with_descid += 1;
            }
        }
    }
    assert!(total > 1000);
    assert!(with_descid > 20, "{with_descid}");
}

#[test]
fn the_access_document_binary_reads_and_round_trips() {
    let path = corpus().join("gp2gp/messages/4_-_GPC_Access_Document__response.json");
    let bytes = std::fs::read(&path).unwrap();
    let resource: Resource = fhir::from_slice(&bytes).unwrap();
    let binary = resource.downcast_ref::<fhir::Binary>().expect("a Binary");
    assert_eq!(binary.content_type.as_deref(), Some("application/msword"));
    assert!(binary.content.as_ref().unwrap().len() > 1000);
    let input: Value = serde_json::from_slice(&bytes).unwrap();
    let output: Value = serde_json::from_slice(&fhir::to_vec(&resource).unwrap()).unwrap();
    assert!(input == output);
    assert!(resource.check_strict().is_empty());
}
