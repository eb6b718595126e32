//! Shared by the to_fhir and round-trip tests: the corpus, the independent Python FHIR
//! validator, and what "every clinical item kept" means in numbers.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn conformance() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `(file name, bytes)` of every file with extension `ext` in a corpus folder, sorted.
pub fn corpus(folder: &str, ext: &str) -> Vec<(String, Vec<u8>)> {
    let dir = conformance().join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
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

const VALIDATE: &str = r#"
import json, sys
from fhir.resources.STU3.bundle import Bundle
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            Bundle.model_validate(json.load(f))
        print("OK", path)
    except Exception as e:
        print("INVALID", path, str(e).replace("\n", " | ")[:3000])
"#;

/// The venv's python (`scripts/python-env` builds it once).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let script = workspace().join("scripts/python-env");
            let out = Command::new("bash").arg(&script).output().unwrap();
            assert!(
                out.status.success(),
                "{} failed (python3 with venv and access to PyPI are needed):\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8(out.stdout).unwrap();
            PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
        })
        .clone()
}

/// Validates Bundles with `fhir.resources` (STU3); returns the failures.
pub fn python_validate(name: &str, bundles: &[(String, fhir::Bundle)]) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for (file, b) in bundles {
        let p = dir.join(file);
        std::fs::write(&p, fhir::to_vec(b).unwrap()).unwrap();
        files.push(p);
    }
    let out = Command::new(python())
        .arg("-c")
        .arg(VALIDATE)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "validator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), files.len(), "{stdout}");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("INVALID "))
        .map(|l| {
            let (f, m) = l.split_once(' ').unwrap_or((l, ""));
            (f.to_owned(), m.to_owned())
        })
        .collect()
}

/// The clinical items of a FHIR Bundle: resource counts by type (Lists, Encounters and
/// directory resources aside), every SNOMED CT code (coding codes and description ids),
/// and every date (as an HL7-style digit string, to the precision written).
#[derive(Debug, Default)]
pub struct Items {
    pub counts: BTreeMap<String, usize>,
    pub codes: std::collections::BTreeSet<String>,
    pub dates: std::collections::BTreeSet<String>,
    /// Each SNOMED CT coding that has a concept id: its ids (concept, description).
    pub codings: Vec<Vec<String>>,
    /// Description ids of SNOMED CT codings that carry no concept id.
    pub description_only: std::collections::BTreeSet<String>,
    /// Dates of clinical elements only (effective, onset, asserted, authored, issued…).
    pub clinical_dates: std::collections::BTreeSet<String>,
}

const CLINICAL_DATE_KEYS: &[&str] = &[
    "effectiveDateTime",
    "onsetDateTime",
    "abatementDateTime",
    "assertedDate",
    "authoredOn",
    "collectedDateTime",
    "occurrenceDateTime",
    "created",
    "start",
    "end",
];

pub const CLINICAL: &[&str] = &[
    "AllergyIntolerance",
    "Condition",
    "DiagnosticReport",
    "DocumentReference",
    "Immunization",
    "Medication",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "ProcedureRequest",
    "ReferralRequest",
    "Specimen",
];

/// Normalises an HL7 TS or a FHIR date to digits, dropping the zone; times to seconds.
pub fn date_digits(s: &str) -> Option<String> {
    let s = s.trim();
    if s.contains('-') && s.len() >= 7 || s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) {
        let d = fhir::DateTime::new(s);
        if d.is_valid() {
            return d.to_hl7_ts().map(|t| pad(&t));
        }
        return None;
    }
    let body: String = s
        .split(['+', '-'])
        .next()
        .unwrap_or("")
        .split('.')
        .next()
        .unwrap_or("")
        .to_owned();
    (body.len() >= 4 && body.bytes().all(|b| b.is_ascii_digit())).then(|| pad(&body))
}

fn pad(t: &str) -> String {
    let t = t.split('.').next().unwrap_or(t);
    if t.len() >= 10 && t.len() < 14 {
        format!("{t:0<14}")
    } else {
        t.to_owned()
    }
}

pub fn items(bundle: &fhir::Bundle) -> Items {
    let mut it = Items::default();
    for r in bundle.resources() {
        if CLINICAL.contains(&r.resource_type()) {
            *it.counts.entry(r.resource_type().to_owned()).or_default() += 1;
        }
        if let fhir::Resource::MedicationRequest(m) = r {
            let k = format!("MedicationRequest:{}", m.intent.as_deref().unwrap_or("?"));
            *it.counts.entry(k).or_default() += 1;
        }
    }
    let json: serde_json::Value = serde_json::from_slice(&fhir::to_vec(bundle).unwrap()).unwrap();
    walk(&json, &mut it);
    it
}

fn walk(v: &serde_json::Value, it: &mut Items) {
    match v {
        serde_json::Value::Object(m) => {
            let is_snomed =
                m.get("system").and_then(|s| s.as_str()) == Some(fhir::systems::SNOMED_CT);
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("code", serde_json::Value::String(c)) if is_snomed => {
                        it.codes.insert(c.clone());
                    }
                    ("valueId", serde_json::Value::String(c)) => {
                        it.codes.insert(c.clone());
                    }
                    (key, serde_json::Value::String(s)) => {
                        if looks_like_date(s)
                            && let Some(d) = date_digits(s)
                        {
                            if CLINICAL_DATE_KEYS.contains(&key) {
                                it.clinical_dates.insert(d.clone());
                            }
                            it.dates.insert(d);
                        }
                    }
                    _ => walk(x, it),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, it)),
        _ => {}
    }
}

fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 4
        && b[..4].iter().all(u8::is_ascii_digit)
        && (b.len() == 4 || b.get(4) == Some(&b'-'))
}
