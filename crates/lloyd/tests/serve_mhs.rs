//! The message handler as a GP system uses it, through the binary: two `lloyd serve`
//! processes, each with an `[mhs]`; a GP-system-style POST to practice A's MHS adaptor
//! facade travels as a reliable ebXML message to practice B's handler (routed by SDS,
//! through the Spine relay of the process serving SDS, which logs it) and is pulled from
//! B's facade in the adaptor's inbound JSON shape, exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Served, free_port, lloyd, start_serve};
use serde_json::{Value, json};

/// Starts `lloyd serve` with these environment overrides; returns it and its base URL.
fn serve(data: &std::path::Path, env: &[(&str, String)]) -> Served {
    let mut cmd = lloyd();
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("LLOYD_DATA_DIR", data)
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    start_serve(cmd, "lloyd serve")
}

#[tokio::test]
async fn a_gp_system_message_crosses_from_a_to_b_through_two_lloyd_processes() {
    let dir = tempfile::tempdir().unwrap();
    let (a_in, a_facade, b_in, b_facade) = (free_port(), free_port(), free_port(), free_port());
    let directory = dir.path().join("directory.toml");
    let org = |ods: &str, asid: &str, key: &str, port: u16| {
        format!(
            "[[organisations]]\nods = \"{ods}\"\nname = \"{ods} surgery\"\nsupplier = \"Lloyd\"\n\n\
             [[organisations.systems]]\nasid = \"{asid}\"\nparty_key = \"{key}\"\ncpa_id = \"S{asid}\"\n\
             fqdn = \"127.0.0.1\"\naddress = \"http://127.0.0.1:{port}/\"\n\
             interactions = [\"urn:nhs:names:services:gp2gp:RCMR_IN010000UK05\"]\n\n"
        )
    };
    std::fs::write(
        &directory,
        org("A82038", "200000000101", "A82038-0000001", a_in)
            + &org("B86041", "200000000202", "B86041-0000002", b_in),
    )
    .unwrap();

    let a_served = serve(
        &dir.path().join("a"),
        &[
            ("LLOYD_SDS_DIRECTORY", directory.display().to_string()),
            ("LLOYD_MHS_PARTY_KEY", "A82038-0000001".into()),
            ("LLOYD_MHS_LISTEN", format!("127.0.0.1:{a_in}")),
            ("LLOYD_MHS_FACADE_LISTEN", format!("127.0.0.1:{a_facade}")),
        ],
    );
    let a_base = a_served.base.clone();
    let _b = serve(
        &dir.path().join("b"),
        &[
            ("LLOYD_MHS_PARTY_KEY", "B86041-0000002".into()),
            ("LLOYD_MHS_LISTEN", format!("127.0.0.1:{b_in}")),
            ("LLOYD_MHS_FACADE_LISTEN", format!("127.0.0.1:{b_facade}")),
            // B routes by A's SDS: one directory for the country.
            ("LLOYD_MHS_SDS_URL", format!("{a_base}/sds")),
        ],
    );

    let http = reqwest::Client::new();
    for url in [
        format!("http://127.0.0.1:{a_facade}/healthcheck"),
        format!("http://127.0.0.1:{b_facade}/healthcheck"),
    ] {
        let mut up = false;
        for _ in 0..100 {
            if http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(up, "{url} never answered");
    }

    let payload = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/gp2gp/messages/1_-_EHR_Request_RCMR_IN010000UK13__payload.xml"
    ))
    .unwrap();
    let conversation = "7A4D2D3E-7F0B-4C34-9D5E-3E1B2B6A9C11";
    let message = "C0FFEE00-1111-4222-8333-944455556666";
    let r = http
        .post(format!("http://127.0.0.1:{a_facade}/"))
        .header("Interaction-Id", "RCMR_IN010000UK05")
        .header("wait-for-response", "false")
        .header("Correlation-Id", conversation)
        .header("Message-Id", message)
        .header("from-asid", "200000000101")
        .header("ods-code", "B86041")
        .json(&json!({ "payload": payload }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());

    // B's GP system pulls it, in the adaptor's inbound shape.
    let mut inbound: Option<Value> = None;
    for _ in 0..100 {
        let r = http
            .get(format!("http://127.0.0.1:{b_facade}/inbound"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            inbound = Some(r.json().await.unwrap());
            break;
        }
        assert_eq!(r.status(), 204);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let inbound = inbound.expect("the message never reached B");
    assert_eq!(inbound["payload"].as_str().unwrap().trim(), payload.trim());
    let ebxml = inbound["ebXML"].as_str().unwrap();
    assert!(ebxml.contains(conversation), "{ebxml}");
    assert!(
        ebxml.contains("B86041-0000002") && ebxml.contains("A82038-0000001"),
        "{ebxml}"
    );
    assert!(ebxml.contains("RCMR_IN010000UK05"), "{ebxml}");
    // It went MHS → Spine → MHS: the relay of the process serving SDS logged it.
    let url = format!("{a_base}/spine/message-log?conversationId={conversation}");
    let log = http.get(url).send().await.unwrap();
    assert_eq!(log.status(), 200);
    let log = log.text().await.unwrap();
    let entries: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 1, "{log}");
    assert_eq!(entries[0]["GUID"], message);
    assert_eq!(entries[0]["event"], "received");
    assert_eq!(entries[0]["toSystem"], "Lloyd");

    // Acknowledged, it is gone: delivered exactly once.
    let r = http
        .post(format!("http://127.0.0.1:{b_facade}/inbound/{message}/ack"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "ack: {}", r.status());
    let r = http
        .get(format!("http://127.0.0.1:{b_facade}/inbound"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[test]
fn a_handler_on_a_public_address_without_certificates_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = lloyd()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("LLOYD_DATA_DIR", dir.path())
        .env("LLOYD_MHS_PARTY_KEY", "A82038-0000001")
        .env("LLOYD_MHS_LISTEN", "0.0.0.0:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("message handler"), "{err}");
}
