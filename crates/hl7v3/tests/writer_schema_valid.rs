//! The writer's output is schema-valid: every corpus message that validates still
//! validates after read → write (compact and indented).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use hl7v3::Message;
use hl7v3::validate::{Options, Schemas, validate};
use hl7v3::xml::Layout;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
}

/// Every bare HL7 document and MHS JSON payload in the corpus, as (name, bytes).
fn documents() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in [
        "translation/ehr-extract",
        "gp2gp/messages",
        "gp2gp/large-message",
    ] {
        let mut paths: Vec<_> = std::fs::read_dir(corpus().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for p in paths {
            let name = format!("{dir}/{}", p.file_name().unwrap().to_string_lossy());
            let bytes = std::fs::read(&p).unwrap();
            if name.ends_with(".json") {
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                if let Some(payload) = v.get("payload").and_then(|p| p.as_str())
                    && payload.trim_start().starts_with('<')
                {
                    out.push((format!("{name}#payload"), payload.as_bytes().to_vec()));
                }
            } else if (name.contains("payload")
                || name.contains("_body_")
                || name.ends_with(".xml"))
                && !name.contains("ebXML")
            {
                out.push((name, bytes));
            }
        }
    }
    out
}

#[test]
fn written_messages_stay_schema_valid() {
    let schemas = Schemas::new(corpus().join("schemas")).unwrap();
    let options = Options::default();
    let mut checked = 0;
    let mut extracts = 0;
    for (name, bytes) in documents() {
        let before = validate(&bytes, Some(&schemas), &options);
        if !before.valid || before.interaction.and_then(|i| i.schema_file()).is_none() {
            continue;
        }
        let msg = Message::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        for layout in [Layout::Compact, Layout::Indented] {
            let written = msg.to_xml(layout);
            let after = validate(written.as_bytes(), Some(&schemas), &options);
            let errors: Vec<String> = after.errors().map(|f| f.to_string()).collect();
            assert!(after.valid, "{name} written {layout:?}: {errors:#?}");
            // The same rule warnings, no more, no fewer.
            let rules = |r: &hl7v3::validate::Report| {
                let mut v: Vec<_> = r.findings.iter().map(|f| (f.rule, f.severity)).collect();
                v.sort();
                v
            };
            assert_eq!(rules(&before), rules(&after), "{name} written {layout:?}");
        }
        checked += 1;
        if name.starts_with("translation/") {
            extracts += 1;
        }
    }
    // The 13 extracts, the acks, the COPC messages and the large-message payloads.
    assert_eq!(extracts, 13);
    assert!(
        checked >= 20,
        "only {checked} documents were schema-valid to begin with"
    );
}
