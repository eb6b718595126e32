//! `lloyd demo`, `lloyd serve` with practices, and `lloyd transfer`, run as a user runs them:
//! the real binary, real HTTP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::{lloyd, start_serve};
use serde_json::Value;

#[test]
fn the_demo_moves_records_and_writes_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let out = lloyd()
        .args([
            "demo",
            "--once",
            "--listen",
            "127.0.0.1:0",
            "--practices",
            "3",
        ])
        .args([
            "--patients",
            "2",
            "--transfers",
            "4",
            "--large",
            "1",
            "--timeout",
            "300",
        ])
        .arg("--data")
        .arg(dir.path().join("data"))
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
    assert!(stdout.contains("lloyd demo: summary"), "{stdout}");
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["transfers"], 4);
    assert_eq!(s["integrated"], 4, "{s}");
    assert_eq!(s["failed"], serde_json::json!({}), "{s}");
    let (p50, p99) = (s["p50_ms"].as_i64().unwrap(), s["p99_ms"].as_i64().unwrap());
    assert!(p50 > 0 && p99 >= p50, "{s}");
}

#[test]
fn bad_demo_arguments_are_usage_errors() {
    let out = lloyd().args(["demo", "--practices", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 2"));
    let out = lloyd()
        .args([
            "demo",
            "--practices",
            "2",
            "--patients",
            "1",
            "--transfers",
            "3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_demo_practices_and_transfer_follows_one_move() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The demo writes a population (and moves nobody).
    let out = lloyd()
        .args([
            "demo",
            "--once",
            "--listen",
            "127.0.0.1:0",
            "--practices",
            "2",
        ])
        .args(["--patients", "2", "--transfers", "0", "--large", "0"])
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.path().join("lloyd.toml");
    std::fs::write(&config, "[practices]\nauto_integrate = true\n").unwrap();
    let mut command = lloyd();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("LLOYD_DATA_DIR", &data)
        .stderr(Stdio::null());
    let served = start_serve(command, "lloyd serve");
    let base = served.base.clone();

    // The practices come up (they ask SDS who they are first).
    let http = reqwest::Client::new();
    let mut practices = Value::Null;
    for _ in 0..100 {
        let r = http.get(format!("{base}/practices")).send().await.unwrap();
        if r.status().is_success() {
            practices = r.json().await.unwrap();
            if practices["practices"]
                .as_array()
                .is_some_and(|p| p.len() == 2)
            {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let list = practices["practices"].as_array().unwrap();
    let (from, to) = (
        list[0]["ods"].as_str().unwrap(),
        list[1]["ods"].as_str().unwrap(),
    );
    let patients: Value = http
        .get(format!("{base}/practices/{from}/patients"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nhs = patients["patients"][0]["nhs_number"]
        .as_str()
        .unwrap()
        .to_string();

    // A bad NHS number is a usage error.
    let out = lloyd()
        .args([
            "transfer",
            "--nhs-number",
            "1234567891",
            "--to",
            to,
            "--server",
            &base,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // The move, followed to the end.
    let out = tokio::task::spawn_blocking({
        let (base, to, nhs) = (base.clone(), to.to_string(), nhs.clone());
        move || {
            lloyd()
                .args([
                    "transfer",
                    "--nhs-number",
                    &nhs,
                    "--to",
                    &to,
                    "--server",
                    &base,
                ])
                .args(["--timeout", "120"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("RCMR_IN030000UK06"), "{stdout}");
    assert!(stdout.contains("integrated"), "{stdout}");

    // The record is at the new practice now, and the national log saw the conversation.
    let transfers: Value = http
        .get(format!("{base}/practices/{to}/transfers?nhsNumber={nhs}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conversation = transfers["transfers"][0]["conversationId"]
        .as_str()
        .unwrap();
    let log = http
        .get(format!(
            "{base}/spine/message-log?conversationId={conversation}"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        log.contains("RCMR_IN010000UK05") && log.contains("MCCI_IN010000UK13"),
        "{log}"
    );

    // Moving them to where they already are is refused.
    let out = lloyd()
        .args([
            "transfer",
            "--nhs-number",
            &nhs,
            "--to",
            to,
            "--server",
            &base,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already registered"));
}
