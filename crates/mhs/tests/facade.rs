#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The MHS adaptor's REST facade: a GP system's POST becomes a Spine ebXML message at the
//! peer (routed by SDS), and inbound messages come out in the adaptor's JSON shape.

mod common;
#[path = "common/sds_fake.rs"]
mod sds_fake;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use http::{Method, StatusCode};

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn a_gp_system_post_reaches_the_peer_as_ebxml_and_comes_out_in_the_adaptor_shape() {
    // B is the receiving practice's MHS; SDS says ABC123's MHS is at B's address.
    let sb = Storage::new(Backend::Sqlite, None).await;
    let mut cb = config("ABC123-822104", None);
    cb.facade_listen = Some("127.0.0.1:0".parse().unwrap());
    let b = start(cb, &sb, system_clock()).await;
    let b_url = format!("http://{}/", b.inbound_addr().unwrap());

    // A fake SDS: the corpus Endpoint, with its address pointed at B.
    let mut endpoint: serde_json::Value =
        serde_json::from_str(&sds_fake::corpus("sds_response.json")).unwrap();
    endpoint["entry"][0]["resource"]["address"] = serde_json::Value::String(b_url);
    let endpoint = endpoint.to_string();
    let device = sds_fake::device_bundle("918999198993", "ABC123-822104");
    let app = axum::Router::new()
        .route("/Device", axum::routing::get(move || async move { device }))
        .route(
            "/Endpoint",
            axum::routing::get(move || async move { endpoint }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sds_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let sa = Storage::new(Backend::Sqlite, None).await;
    let mut ca = config("A-1", None);
    ca.facade_listen = Some("127.0.0.1:0".parse().unwrap());
    ca.facade_wait = Duration::from_secs(30);
    ca.sds = Some(mhs::SdsConfig {
        base_url: format!("http://{sds_addr}"),
        api_key: None,
        cache_ttl: Duration::from_secs(60),
    });
    let a = start(ca, &sa, system_clock()).await;
    let facade = format!("http://{}", a.facade_addr().unwrap());
    let client = mhs::tls::http_client(None).unwrap();

    let (status, _, _) = http_call(
        &client,
        Method::GET,
        &format!("{facade}/healthcheck"),
        &[],
        "",
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK);

    let body = serde_json::json!({
        "payload": ehr_request(7),
        "attachments": [{
            "content_type": "text/plain", "is_base64": false,
            "description": "Filename=\"note.txt\" ContentType=text/plain Compressed=No LargeAttachment=No OriginalBase64=No Length=5",
            "payload": "hello", "document_id": "_DOC1"
        }],
        "external_attachments": [{
            "message_id": "11111111-2222-4333-8444-555555555555", "document_id": "_DOC2",
            "description": "Filename=\"big.pdf\" ContentType=application/pdf Compressed=No LargeAttachment=Yes OriginalBase64=No Length=9000000"
        }]
    })
    .to_string();
    let headers = [
        ("content-type", "application/json"),
        ("Interaction-Id", "RCMR_IN030000UK06"),
        ("wait-for-response", "false"),
        ("Correlation-Id", "5BB5F8A4-0C3D-4C68-8F0B-9A1C2D3E4F50"),
        ("Message-Id", "0F6B3D1E-7C2A-4E8B-9D5F-1A2B3C4D5E6F"),
        ("from-asid", "200000000359"),
        ("ods-code", "ABC123"),
    ];
    let (status, _, text) = http_call(
        &client,
        Method::POST,
        &format!("{facade}/"),
        &headers,
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&text)
    );

    // At the peer: a Spine ebXML message with the GP system's ids.
    let (status, h, json) = http_call(
        &client,
        Method::GET,
        &format!("http://{}/inbound", b.facade_addr().unwrap()),
        &[],
        "",
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        h.get("Message-Id").unwrap(),
        "0F6B3D1E-7C2A-4E8B-9D5F-1A2B3C4D5E6F"
    );
    let got: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let env = ebxml::Envelope::parse(
        got["ebXML"].as_str().unwrap().as_bytes(),
        &ebxml::Limits::default(),
    )
    .unwrap();
    assert_eq!(env.message_header.action, "RCMR_IN030000UK06");
    assert_eq!(
        env.message_header.conversation_id,
        "5BB5F8A4-0C3D-4C68-8F0B-9A1C2D3E4F50"
    );
    assert_eq!(
        env.message_header.message_data.message_id,
        "0F6B3D1E-7C2A-4E8B-9D5F-1A2B3C4D5E6F"
    );
    assert_eq!(env.message_header.cpa_id, "4ec1563fbe8e49bb8c3c");
    assert_eq!(env.message_header.to.id, "ABC123-822104");
    assert!(env.ack_requested.is_some() && env.message_header.duplicate_elimination);
    assert_eq!(got["payload"], ehr_request(7));
    assert_eq!(got["attachments"][0]["payload"], "hello");
    assert_eq!(
        got["external_attachments"][0]["message_id"],
        "11111111-2222-4333-8444-555555555555"
    );

    // The same field names as the adaptor's own inbound JSON.
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/gp2gp/large-message/"
    );
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{p}decoded-large-attachments__index-message-with-cid__copc_index.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(keys(&got), keys(&reference));
    assert_eq!(
        keys(&got["attachments"][0]),
        keys(&reference["attachments"][0])
    );
    assert_eq!(
        keys(&got["external_attachments"][0]),
        keys(&reference["external_attachments"][0])
    );
    assert_eq!(got["external_attachments"][0]["title"], "\"big.pdf\"");

    // Acknowledged by the consumer: gone from the queue.
    let (status, _, _) = http_call(
        &client,
        Method::POST,
        &format!(
            "http://{}/inbound/0F6B3D1E-7C2A-4E8B-9D5F-1A2B3C4D5E6F/ack",
            b.facade_addr().unwrap()
        ),
        &[],
        "",
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = http_call(
        &client,
        Method::GET,
        &format!("http://{}/inbound", b.facade_addr().unwrap()),
        &[],
        "",
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::NO_CONTENT);

    // The adaptor's refusals.
    let (status, _, _) = http_call(
        &client,
        Method::POST,
        &format!("{facade}/"),
        &headers[..1],
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "no Interaction-Id");
    let mut plain = headers;
    plain[0] = ("content-type", "text/plain");
    let (status, _, _) = http_call(&client, Method::POST, &format!("{facade}/"), &plain, body)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = serde_json::json!({"payload": "x".repeat(5_000_001)}).to_string();
    let mut fresh = headers;
    fresh[4] = ("Message-Id", "0F6B3D1E-7C2A-4E8B-9D5F-000000000002");
    let (status, _, text) = http_call(&client, Method::POST, &format!("{facade}/"), &fresh, big)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&text).contains("5000000"),
        "{}",
        String::from_utf8_lossy(&text)
    );
}
