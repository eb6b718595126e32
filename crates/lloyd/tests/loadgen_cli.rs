//! `lloyd loadgen` run as a user runs it: the real binary moving patients between real
//! practices over loopback, checked through the summary JSON it writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::lloyd;
use serde_json::Value;

#[test]
fn a_small_load_is_moved_and_measured() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let data = dir.path().join("data");
    let out = lloyd()
        .args(["loadgen", "--transfers", "6", "--practices", "3"])
        .args(["--record-kb", "40", "--attachments", "60KB,5KB"])
        .args(["--concurrency", "4", "--timeout", "300"])
        .arg("--data")
        .arg(&data)
        .arg("--summary")
        .arg(&summary)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("lloyd loadgen: summary"), "{stdout}");
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["transfers"], 6, "{s}");
    assert_eq!(s["integrated"], 6, "{s}");
    assert_eq!(s["failed"], serde_json::json!({}), "{s}");
    assert_eq!(s["scenario"]["practices"], 3, "{s}");
    assert_eq!(s["scenario"]["record_bytes"], 40_000, "{s}");
    assert_eq!(
        s["scenario"]["attachments"],
        serde_json::json!([60_000, 5_000])
    );
    let (p50, p99, max) = (
        s["p50_ms"].as_i64().unwrap(),
        s["p99_ms"].as_i64().unwrap(),
        s["max_ms"].as_i64().unwrap(),
    );
    assert!(p50 > 0 && p99 >= p50 && max >= p99, "{s}");
    assert!(s["transfers_per_second"].as_f64().unwrap() > 0.0, "{s}");
    assert!(s["peak_rss_mb"].as_f64().unwrap() > 1.0, "{s}");
    assert!(s["cpu_seconds"].as_f64().unwrap() > 0.0, "{s}");

    // The attachments arrived whole at the new practices: each received document is
    // exactly one of the sizes sent.
    let mut received = Vec::new();
    for practice in std::fs::read_dir(data.join("practices")).unwrap() {
        let practice = practice.unwrap().path();
        let documents = practice.join("payloads/practice");
        for file in walk(&documents) {
            if file.to_string_lossy().contains("/documents/") {
                received.push(std::fs::metadata(&file).unwrap().len());
            }
        }
    }
    received.sort_unstable();
    assert_eq!(received.len(), 12, "{received:?}");
    assert!(
        received.iter().all(|&n| n == 60_000 || n == 5_000),
        "{received:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn bad_loadgen_arguments_are_usage_errors() {
    for args in [
        &["loadgen", "--practices", "1"][..],
        &["loadgen", "--attachments", "3 furlongs"],
        &["loadgen", "--concurrency", "0"],
        &["loadgen", "--record-kb", "1"],
    ] {
        let out = lloyd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}
