//! `lloyd serve` as a user runs it: start on a free port, wait for /healthz, ask SDS and
//! PDS, then stop it with SIGTERM and see it exit cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};

use common::{lloyd, start_serve};
use serde_json::{Value, json};

#[tokio::test]
async fn serve_answers_health_sds_and_pds_then_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let directory =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spine/tests/data/directory.toml");
    let config = dir.path().join("lloyd.toml");
    std::fs::write(
        &config,
        format!("[sds]\ndirectory = {:?}\n", directory.display().to_string()),
    )
    .unwrap();
    let mut command = lloyd();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("LLOYD_DATA_DIR", dir.path().join("data"))
        .env("LLOYD_MESH_MAILBOXES", "B86041OT001")
        .stderr(Stdio::null());
    // The first line on stdout says where it listens.
    let mut served = start_serve(command, "lloyd serve");
    let base = served.base.clone();
    let http = reqwest::Client::new();
    let mut healthy = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(healthy, "/healthz never answered");

    let sds = format!(
        "{base}/sds/Device?organization=https://fhir.nhs.uk/Id/ods-organization-code|B86041&identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId|urn:nhs:names:services:gp2gp:RCMR_IN010000UK05"
    );
    let bundle: Value = http.get(&sds).send().await.unwrap().json().await.unwrap();
    assert_eq!(bundle["total"], 1);
    assert_eq!(
        bundle["entry"][0]["resource"]["identifier"][0]["value"],
        "200000000359"
    );

    let patient = json!([{"nhs_number": "9000000009", "family": "Smith", "given": ["Jane"], "gender": "female",
        "birth_date": "2010-10-22", "postcode": "LS1 6AE", "gp_ods": "B86041"}]);
    let r = http
        .post(format!("{base}/pds/admin/patients"))
        .json(&patient)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .get(format!("{base}/pds/Patient/9000000009"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["generalPractitioner"][0]["identifier"]["value"], "B86041");
    let r = http
        .get(format!("{base}/pds/Patient/9000000008"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = http
        .post(format!("{base}/mesh/messageexchange/B86041OT001"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("spine_requests_total"), "{metrics}");

    let killed = Command::new("kill")
        .args(["-TERM", &served.process.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = served.process.0.wait().unwrap();
    assert!(status.success(), "lloyd serve exited with {status}");
    assert!(dir.path().join("data/lloyd.db").exists());
}
