//! The crate's output for every corpus bundle, after cleaning, is valid FHIR
//! STU3 according to an independent validator: Python `fhir.resources`
//! 8.3.0 (`fhir.resources.STU3.bundle.Bundle.model_validate`).
//!
//! `scripts/python-env` creates the venv (under `target/python-env` of the
//! workspace) on first use; it needs `python3` and access to PyPI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use fhir::Bundle;

const VALIDATE: &str = r#"
import json, sys
from fhir.resources.STU3.bundle import Bundle
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            Bundle.model_validate(json.load(f))
        print("OK", path)
    except Exception as e:
        print("INVALID", path, str(e).replace("\n", " | ")[:2000])
"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python, set up by `scripts/python-env` once per test binary
/// (tests run in parallel and must not build the venv twice at once).
fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(set_up_python).clone()
}

fn set_up_python() -> PathBuf {
    let script = workspace().join("scripts/python-env");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; it needs bash and python3",
                script.display()
            )
        });
    assert!(
        out.status.success(),
        "{} failed to set up the Python validator (python3 with venv and access to PyPI \
         are needed):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let python = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        python.exists(),
        "scripts/python-env printed {python:?}, which does not exist"
    );
    python
}

/// Runs the validator over `files`; returns the (file, message) failures.
fn validate(python: &Path, files: &[PathBuf]) -> Vec<(String, String)> {
    let out = Command::new(python)
        .arg("-c")
        .arg(VALIDATE)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the validator script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), files.len(), "one verdict per file:\n{stdout}");
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("INVALID "))
        .map(|l| {
            let (file, msg) = l.split_once(' ').unwrap_or((l, ""));
            (file.to_owned(), msg.to_owned())
        })
        .collect()
}

fn corpus_bundles() -> Vec<(String, Vec<u8>)> {
    let dir = workspace().join("../shared/conformance/translation/gpconnect");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 13);
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn cleaned_output_passes_and_raw_empty_strings_fail() {
    let python = python();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fhir-python-validator");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let mut cleaned_files = vec![];
    let mut raw_files = vec![];
    for (name, bytes) in corpus_bundles() {
        let mut bundle: Bundle = fhir::from_slice(&bytes).unwrap();
        // As read (not cleaned), written back.
        let raw = dir.join(format!("raw-{name}"));
        std::fs::write(&raw, fhir::to_vec(&bundle).unwrap()).unwrap();
        if bundle
            .check_strict()
            .iter()
            .any(|i| i.kind == fhir::IssueKind::EmptyString)
        {
            raw_files.push(raw);
        }
        bundle.clean();
        let clean = dir.join(format!("clean-{name}"));
        std::fs::write(&clean, fhir::to_vec(&bundle).unwrap()).unwrap();
        cleaned_files.push(clean);
    }

    let failures = validate(&python, &cleaned_files);
    assert!(
        failures.is_empty(),
        "cleaned output rejected by fhir.resources: {failures:#?}"
    );

    // The validator is strict where our input is lenient: every bundle with
    // an empty string is rejected until cleaned. (This keeps the test above
    // honest: a validator that accepted anything would fail here.)
    assert!(!raw_files.is_empty());
    let failures = validate(&python, &raw_files);
    assert_eq!(
        failures.len(),
        raw_files.len(),
        "uncleaned bundles should be rejected"
    );
}

#[test]
fn validator_rejects_what_check_strict_reports() {
    let python = python();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fhir-python-validator-strict");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Each of these is reported by check_strict; the independent validator
    // must agree that each is invalid.
    let cases = [
        ("missing-type", r#"{"resourceType":"Bundle"}"#),
        (
            "observation-without-code",
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":
                {"resourceType":"Observation","id":"o","status":"final"}}]}"#,
        ),
        (
            "list-without-mode",
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":
                {"resourceType":"List","status":"current"}}]}"#,
        ),
        (
            "bad-date",
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":
                {"resourceType":"Patient","birthDate":"2010-02-30"}}]}"#,
        ),
    ];
    let mut files = vec![];
    for (name, json) in cases {
        let bundle: Bundle = fhir::from_str(json).unwrap();
        assert!(
            !bundle.check_strict().is_empty(),
            "{name}: check_strict found nothing"
        );
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, fhir::to_vec(&bundle).unwrap()).unwrap();
        files.push(path);
    }
    let failures = validate(&python, &files);
    assert_eq!(failures.len(), files.len(), "{failures:#?}");
}
