#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What an MHS refuses, and how: each refusal answered with the right ebXML error (or,
//! for a stranger's certificate, no TLS session at all), logged, and nothing stored.

mod common;

use common::*;
use ebxml::{ErrorCode, Reply};
use http::{Method, StatusCode};

struct Fixture {
    storage: Storage,
    _b: mhs::Mhs,
    url: String,
    ca_pem: String,
    client: mhs::tls::HttpClient,
    logs: LogBuffer,
}

async fn fixture() -> Fixture {
    let logs = LogBuffer::default();
    let ca = TestCa::new("Spine CA");
    let storage = Storage::new(Backend::Sqlite, None).await;
    let b = start(
        config("B-1", Some(ca.issue("b.test"))),
        &storage,
        system_clock(),
    )
    .await;
    let url = format!("https://localhost:{}/", b.inbound_addr().unwrap().port());
    let client = mhs::tls::http_client(Some(&ca.issue("a.test"))).unwrap();
    Fixture {
        storage,
        _b: b,
        url,
        ca_pem: ca.pem.clone(),
        client,
        logs,
    }
}

async fn assert_nothing_stored(f: &Fixture) {
    assert_eq!(f.storage.count("mhs_inbound").await, 0);
    assert_eq!(f.storage.payload_files(), 0);
}

fn fault_code(body: &[u8]) -> String {
    match Reply::parse(body, &ebxml::Limits::default()).unwrap() {
        Reply::Fault(f) => f.errors[0].error_code.clone(),
        Reply::Envelope(e) => panic!("expected a SOAP fault, got {e:?}"),
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_gets_no_session_and_nothing_is_stored() {
    let f = fixture().await;
    let _log = f.logs.install();
    let stranger = TestCa::new("Other CA");
    let mut tls = stranger.issue("intruder.test");
    // The intruder trusts our server, but its own certificate is signed by a CA this MHS
    // does not trust.
    tls.ca_pem = f.ca_pem.clone();
    let client = mhs::tls::http_client(Some(&tls)).unwrap();
    let (ct, wire) = wire_message("B-1", "M-STRANGER");
    let result = http_call(
        &client,
        Method::POST,
        &f.url,
        &[("content-type", &ct)],
        wire,
    )
    .await;
    assert!(
        result.is_err(),
        "a stranger's certificate was accepted: {result:?}"
    );
    assert!(
        f.logs.text().contains("TLS handshake refused"),
        "{}",
        f.logs.text()
    );
    assert_nothing_stored(&f).await;
    // The trusted sender does get through, so the refusal was about the certificate.
    let (ct, wire) = wire_message("B-1", "M-FRIEND");
    let (status, _, _) = http_call(
        &f.client,
        Method::POST,
        &f.url,
        &[("content-type", &ct)],
        wire,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(f.storage.count("mhs_inbound").await, 1);
}

#[tokio::test]
async fn a_message_for_another_party_gets_an_error_list() {
    let f = fixture().await;
    let _log = f.logs.install();
    let (ct, wire) = wire_message("X-9", "M-WRONG-TO");
    let (status, _, body) = http_call(
        &f.client,
        Method::POST,
        &f.url,
        &[("content-type", &ct)],
        wire,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let Reply::Envelope(env) = Reply::parse(&body, &ebxml::Limits::default()).unwrap() else {
        panic!("expected an ebXML error message");
    };
    assert_eq!(env.message_header.action, ebxml::ACTION_MESSAGE_ERROR);
    assert_eq!(
        env.message_header.message_data.ref_to_message_id.as_deref(),
        Some("M-WRONG-TO")
    );
    let errors = env.error_list.unwrap().errors;
    assert_eq!(errors[0].code, ErrorCode::ValueNotRecognized);
    assert!(errors[0].location.as_deref().unwrap().contains("eb:To"));
    assert!(
        f.logs.text().contains("rejected an inbound message"),
        "{}",
        f.logs.text()
    );
    assert_nothing_stored(&f).await;
}

#[tokio::test]
async fn an_oversized_message_gets_a_mime_problem_fault() {
    let f = fixture().await;
    let _log = f.logs.install();
    let (ct, mut wire) = wire_message("B-1", "M-BIG");
    wire.splice(0..0, std::iter::repeat_n(b' ', 6 * 1024 * 1024));
    let (status, _, body) = http_call(
        &f.client,
        Method::POST,
        &f.url,
        &[("content-type", &ct)],
        wire,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(fault_code(&body), ErrorCode::MimeProblem.as_str());
    assert!(String::from_utf8_lossy(&body).contains("over the limit"));
    assert!(f.logs.text().contains("MimeProblem"), "{}", f.logs.text());
    assert_nothing_stored(&f).await;
}

#[tokio::test]
async fn a_malformed_envelope_gets_an_xml_fault() {
    let f = fixture().await;
    let _log = f.logs.install();
    let body = "<SOAP:Envelope xmlns:SOAP=\"http://schemas.xmlsoap.org/soap/envelope/\"><SOAP:Header><broken";
    let (status, _, answer) = http_call(
        &f.client,
        Method::POST,
        &f.url,
        &[("content-type", "text/xml")],
        body,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(fault_code(&answer), ErrorCode::OtherXml.as_str());
    assert!(f.logs.text().contains("OtherXml"), "{}", f.logs.text());
    assert_nothing_stored(&f).await;
}

#[tokio::test]
async fn a_duplicate_is_acknowledged_again_but_delivered_once() {
    let f = fixture().await;
    let (ct, wire) = wire_message("B-1", "M-TWICE");
    for _ in 0..2 {
        let (status, _, body) = http_call(
            &f.client,
            Method::POST,
            &f.url,
            &[("content-type", &ct)],
            wire.clone(),
        )
        .await
        .unwrap();
        assert_eq!(status, StatusCode::OK);
        let Reply::Envelope(env) = Reply::parse(&body, &ebxml::Limits::default()).unwrap() else {
            panic!()
        };
        assert_eq!(env.acknowledgment.unwrap().ref_to_message_id, "M-TWICE");
    }
    assert_eq!(f.storage.count("mhs_inbound").await, 1);
    let first = f._b.try_next_inbound().await.unwrap().unwrap();
    assert_eq!(first.message_id, "M-TWICE");
    assert!(f._b.try_next_inbound().await.unwrap().is_none());
}
