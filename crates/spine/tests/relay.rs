//! The Spine relay over real HTTP: two real MHSs whose SDS is this Spine exchange a GP2GP
//! conversation through `/reliablemessaging/forwardreliable`; the national message log
//! holds every message with the right ids, references, error codes, ASIDs and suppliers,
//! and the story of each hop — retries while the receiver is down, a rejection, a
//! failure, a sender's duplicate, a refused address — and the relay forwards over mutual
//! TLS with its own certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod relay_support;

use std::time::Duration;

use mhs::OutboundState;
use mhs::state::{Delivered, Failed, Retrying};
use relay_support::*;
use serde_json::Value;

fn quick_relay() -> spine::relay::RelayConfig {
    spine::relay::RelayConfig {
        attempt_timeout_secs: 5,
        ..spine::relay::RelayConfig::default()
    }
}

fn delivered(s: &OutboundState) -> bool {
    matches!(s, OutboundState::Delivered(_))
}

fn kinds(log: &[Value]) -> Vec<&str> {
    log.iter().map(|e| e["event"].as_str().unwrap()).collect()
}

/// The national fields of an entry, in the order SPINE.md lists them (after the time).
fn national(e: &Value) -> [&str; 8] {
    [
        "interactionID",
        "messageSender",
        "messageRecipient",
        "messageRef",
        "jdiEvent",
        "fromSystem",
        "toSystem",
        "conversationID",
    ]
    .map(|f| {
        e[f].as_str()
            .unwrap_or_else(|| panic!("{f} missing in {e}"))
    })
}

async fn conversation(backend: Backend) {
    let net = Net::start(backend, quick_relay()).await;
    let a = net.practice(A_PARTY, A_ODS, any_port(), None).await;
    let b = net.practice(B_PARTY, B_ODS, any_port(), None).await;
    let dir = directory(&inbound_url(&a, "http"), &inbound_url(&b, "http"), 3);
    net.node.set_directory(&dir).await;
    let relay = net.node.relay();
    let conv = "A023EF7E-BE27-4A70-949A-38F7865E83BC";

    // A asks B for the record: through the relay, acknowledged by the relay.
    let (req_id, req) = ehr_request();
    send(&a, B_ODS, EHR_REQUEST, conv, &req_id, req.clone()).await;
    let state = a
        .wait_final(&req_id, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(delivered(&state), "{state:?}");
    forwarding(relay, &req_id, delivered).await;
    let got = take(&b, 1).await;
    assert_eq!(got.len(), 1);
    let h = &got[0].message.envelope().message_header;
    // The original message: same id, parties, action; the payload intact.
    assert_eq!(h.message_data.message_id, req_id);
    assert_eq!((h.from.id.as_str(), h.to.id.as_str()), (A_PARTY, B_PARTY));
    assert_eq!(h.action, EHR_REQUEST);
    assert_eq!(got[0].payload().unwrap(), req.as_bytes());

    // B sends the extract back; A acks it negatively (AE, reason 99).
    let (ext_id, ext) = ehr_extract();
    send(&b, A_ODS, EHR_EXTRACT, conv, &ext_id, ext.clone()).await;
    let at_a = take(&a, 1).await;
    assert_eq!(at_a[0].message_id, ext_id);
    assert_eq!(at_a[0].payload().unwrap(), ext.as_bytes());
    let (ack_id, ack) = ack_ae(&ext_id);
    send(&a, B_ODS, ACK, conv, &ack_id, ack).await;
    assert_eq!(take(&b, 1).await[0].message_id, ack_id);
    for id in [&ext_id, &ack_id] {
        forwarding(relay, id, delivered).await;
    }

    // The log: the three messages, in order, with the national fields right.
    let log = net.node.log(&format!("conversationId={conv}")).await;
    assert_eq!(kinds(&log), ["received"; 3], "{log:#?}");
    let guids: Vec<&str> = log.iter().map(|e| e["GUID"].as_str().unwrap()).collect();
    assert_eq!(guids, [req_id.as_str(), ext_id.as_str(), ack_id.as_str()]);
    #[rustfmt::skip]
    let expected = [
        [EHR_REQUEST, A_ASID, B_ASID, "NotProvided", "NONE", "EMIS", "TPP", conv],
        [EHR_EXTRACT, B_ASID, A_ASID, "NotProvided", "NONE", "TPP", "EMIS", conv],
        [ACK, A_ASID, B_ASID, ext_id.as_str(), "99", "EMIS", "TPP", conv],
    ];
    for (e, want) in log.iter().zip(expected) {
        assert_eq!(national(e), want, "{e}");
        assert!(e.get("detail").is_none(), "{e}");
    }
    assert_eq!(log[0]["time"], "2024-05-01T09:30:00.000Z");
    // Nothing else in the whole log, and `since` after the conversation finds nothing.
    assert_eq!(net.node.log("").await, log);
    assert!(
        net.node
            .log("since=2024-05-01T09:30:00.001Z")
            .await
            .is_empty()
    );
    assert_eq!(net.node.log("since=2024-05-01").await.len(), 3);
    // Read in pages, the log gives the same entries once each, in the same order.
    let (q, log_store) = (spine::message_log::LogQuery::default(), relay.log());
    let (first, after) = log_store.page(&q, None, 2).await.unwrap();
    let (second, after) = log_store.page(&q, after, 2).await.unwrap();
    assert!(log_store.page(&q, after, 2).await.unwrap().0.is_empty());
    let paged: Vec<Value> = first
        .iter()
        .chain(&second)
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert_eq!(paged, log);
}

#[tokio::test]
async fn a_conversation_crosses_the_relay_both_ways_and_every_message_is_logged_sqlite() {
    conversation(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_conversation_crosses_the_relay_both_ways_and_every_message_is_logged_postgres() {
    conversation(Backend::Postgres).await;
}

fn retrying(attempts: u32) -> impl Fn(&OutboundState) -> bool {
    move |s| matches!(s, OutboundState::Retrying(Retrying { attempts: n, .. }) if *n == attempts)
}

#[tokio::test]
async fn a_receiver_down_is_retried_per_sds_and_logged_then_gets_the_message_once() {
    let net = Net::start(Backend::Sqlite, quick_relay()).await;
    let (b_addr, dead) = (free_addr().await, free_addr().await);
    let a = net.practice(A_PARTY, A_ODS, any_port(), None).await;
    let mut orgs = directory(&inbound_url(&a, "http"), &format!("http://{b_addr}/"), 3);
    // C never comes up, and allows one retry only.
    let c_address = format!("http://{dead}/");
    let c = org(
        "C81001",
        "Vision",
        "200000000777",
        "C81001-100001",
        &c_address,
        &[EHR_REQUEST],
        reliability(1),
    );
    orgs.push(c);
    net.node.set_directory(&orgs).await;
    let relay = net.node.relay();

    let (id, req) = ehr_request();
    send(&a, B_ODS, EHR_REQUEST, "CONV-DOWN", &id, req.clone()).await;
    send(&a, "C81001", EHR_REQUEST, "CONV-DEAD", "C-REQUEST-1", req).await;
    // The relay has both (A is done with them) but cannot reach B or C.
    for m in [&id, "C-REQUEST-1"] {
        let s = a.wait_final(m, Duration::from_secs(30)).await.unwrap();
        assert!(delivered(&s), "{s:?}");
        forwarding(relay, m, retrying(1)).await;
    }
    // Not before the interval.
    net.clock.advance(Duration::from_secs(59));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(retrying(1)(
        &relay.forward_state(&id).await.unwrap().unwrap()
    ));
    net.clock.advance(Duration::from_secs(1));
    forwarding(relay, &id, retrying(2)).await;
    // C: one retry was all it had.
    let failed = forwarding(relay, "C-REQUEST-1", OutboundState::is_final).await;
    assert!(
        matches!(&failed, OutboundState::Failed(Failed { attempts: 2, reason }) if reason.contains("after 2 attempts")),
        "{failed:?}"
    );
    net.clock.advance(Duration::from_secs(60));
    forwarding(relay, &id, retrying(3)).await;
    // B comes up; the next retry delivers.
    let b = net.practice(B_PARTY, B_ODS, b_addr, None).await;
    net.clock.advance(Duration::from_secs(60));
    let done = forwarding(relay, &id, OutboundState::is_final).await;
    assert!(
        matches!(
            done,
            OutboundState::Delivered(Delivered { attempts: 4, .. })
        ),
        "{done:?}"
    );
    let got = drain(&b).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].message_id.as_str(), got[0].delivery),
        (id.as_str(), 1)
    );

    let log = net.node.log("conversationId=CONV-DOWN").await;
    assert_eq!(
        kinds(&log),
        ["received", "retry", "retry", "retry"],
        "{log:#?}"
    );
    assert_eq!(log[0]["jdiEvent"], "NONE");
    for (n, e) in log[1..].iter().enumerate() {
        assert_eq!(e["GUID"], id.as_str());
        // A retry repeats the message's facts, with Spine's error code.
        let (mut want, got) = (national(&log[0]), national(e));
        want[4] = "20";
        assert_eq!(got, want, "{e}");
        let detail = e["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("attempt {}", n + 2)), "{detail}");
        assert!(detail.contains(&b_addr.to_string()), "{detail}");
    }
    assert_eq!(log[1]["time"], "2024-05-01T09:31:00.000Z");
    let dead_log = net.node.log("conversationId=CONV-DEAD").await;
    assert_eq!(kinds(&dead_log), ["received", "retry", "failed"]);
    let f = &dead_log[2];
    assert_eq!(
        (f["jdiEvent"].as_str(), f["toSystem"].as_str()),
        (Some("20"), Some("Vision"))
    );
    assert_eq!(
        f["messageRecipient"], B_ASID,
        "the payload names its recipient"
    );
    assert!(
        f["detail"].as_str().unwrap().contains("not delivered"),
        "{f}"
    );
}

#[tokio::test]
async fn the_relay_forwards_over_mutual_tls_with_its_own_certificate() {
    let ids = identities(&["relay.spine.test", "b86041.test"]);
    let files = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = files.path().join(name);
        std::fs::write(&p, text).unwrap();
        Some(p)
    };
    let config = spine::relay::RelayConfig {
        tls_cert: file("relay.pem", &ids[0].cert_chain_pem),
        tls_key: file("relay.key", &ids[0].key_pem),
        tls_ca: file("ca.pem", &ids[0].ca_pem),
        ..quick_relay()
    };
    let net = Net::start(Backend::Sqlite, config).await;
    let a = net.practice(A_PARTY, A_ODS, any_port(), None).await;
    let b = net
        .practice(B_PARTY, B_ODS, any_port(), Some(ids[1].clone()))
        .await;
    let dir = directory(&inbound_url(&a, "http"), &inbound_url(&b, "https"), 3);
    net.node.set_directory(&dir).await;
    let (id, req) = ehr_request();
    send(&a, B_ODS, EHR_REQUEST, "CONV-TLS", &id, req).await;
    forwarding(net.node.relay(), &id, delivered).await;
    // B knows who handed it over: the relay, by its certificate.
    let peer = take(&b, 1).await[0].peer.clone().unwrap_or_default();
    assert!(peer.contains("relay.spine.test"), "{peer}");
}

#[tokio::test]
async fn a_receiver_that_refuses_the_message_is_logged_and_not_asked_again() {
    let net = Net::start(Backend::Sqlite, quick_relay()).await;
    let a = net.practice(A_PARTY, A_ODS, any_port(), None).await;
    // B's MHS was set up with another party key than SDS says: it refuses the message.
    let b = net.practice("B86041-999999", B_ODS, any_port(), None).await;
    let dir = directory(&inbound_url(&a, "http"), &inbound_url(&b, "http"), 3);
    net.node.set_directory(&dir).await;
    let (id, req) = ehr_request();
    send(&a, B_ODS, EHR_REQUEST, "CONV-REJECT", &id, req).await;
    let s = forwarding(net.node.relay(), &id, OutboundState::is_final).await;
    assert!(
        matches!(&s, OutboundState::Failed(Failed { attempts: 1, reason }) if reason.contains("ValueNotRecognized")),
        "{s:?}"
    );
    // Time passes: no retry.
    net.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(drain(&b).await.is_empty());
    let log = net.node.log("conversationId=CONV-REJECT").await;
    assert_eq!(kinds(&log), ["received", "rejected"]);
    assert_eq!(
        (log[1]["jdiEvent"].as_str(), log[1]["GUID"].as_str()),
        (Some("20"), Some(id.as_str()))
    );
    let detail = log[1]["detail"].as_str().unwrap();
    assert!(
        detail.contains("refused") && detail.contains("B86041-999999"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_senders_duplicate_is_acknowledged_again_and_not_forwarded_twice() {
    let net = Net::start(Backend::Sqlite, quick_relay()).await;
    let b = net.practice(B_PARTY, B_ODS, any_port(), None).await;
    let dir = directory("http://127.0.0.1:9/", &inbound_url(&b, "http"), 3);
    net.node.set_directory(&dir).await;
    let (_, payload) = ehr_request();
    let (ct, body) = wire(B_PARTY, "DUP-1", "CONV-DUP", EHR_REQUEST, &payload);
    for _ in 0..3 {
        let (status, reply) = post_to_relay(&net.node, &ct, body.clone()).await;
        assert_eq!(status, 200);
        let ebxml::Reply::Envelope(env) = reply else {
            panic!("not an acknowledgment: {reply:?}")
        };
        assert_eq!(env.acknowledgment.unwrap().ref_to_message_id, "DUP-1");
    }
    forwarding(net.node.relay(), "DUP-1", delivered).await;
    let mut got = take(&b, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    got.extend(drain(&b).await);
    assert_eq!(got.len(), 1);
    let log = net.node.log("conversationId=CONV-DUP").await;
    assert_eq!(kinds(&log), ["received", "duplicate", "duplicate"]);
    assert!(
        log.iter()
            .all(|e| e["jdiEvent"] == "NONE" && e["GUID"] == "DUP-1")
    );
}

/// Posts a message for `to` and returns the relay's `eb:Error`s.
async fn refused(node: &SpineNode, to: &str, id: &str, payload: &str) -> Vec<ebxml::ErrorDetail> {
    let (ct, body) = wire(to, id, "CONV-X", EHR_REQUEST, payload);
    let (status, reply) = post_to_relay(node, &ct, body).await;
    assert_eq!(status, 500);
    match reply {
        ebxml::Reply::Envelope(env) => env.error_list.unwrap().errors,
        other => panic!("not an error list: {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_party_or_unreadable_message_is_refused_with_a_reason_and_logged() {
    let net = Net::start(Backend::Sqlite, quick_relay()).await;
    net.node
        .set_directory(&directory("http://127.0.0.1:9/", "", 3))
        .await;
    let (_, payload) = ehr_request();

    // A party SDS does not know; one that does not receive the interaction; one with no
    // address.
    let e = refused(&net.node, "X99999-000001", "UNKNOWN-1", &payload).await;
    assert_eq!(e[0].code, ebxml::ErrorCode::ValueNotRecognized);
    assert_eq!(
        e[0].location.as_deref(),
        Some("eb:MessageHeader/eb:To/eb:PartyId")
    );
    assert!(
        e[0].description
            .as_deref()
            .unwrap()
            .contains("X99999-000001 is not in SDS")
    );
    let e = refused(&net.node, A_PARTY, "UNKNOWN-2", &payload).await;
    assert_eq!(e[0].location.as_deref(), Some("eb:MessageHeader/eb:Action"));
    let e = refused(&net.node, B_PARTY, "UNKNOWN-3", &payload).await;
    assert!(
        e[0].description
            .as_deref()
            .unwrap()
            .contains("no MHS address")
    );
    let log = net.node.log("conversationId=CONV-X").await;
    assert_eq!(kinds(&log), ["refused"; 3]);
    for e in &log {
        assert_eq!(e["jdiEvent"], "24", "{e}");
        assert_eq!(e["messageSender"], A_ASID, "from the payload: {e}");
    }
    assert!(
        log[1]["detail"]
            .as_str()
            .unwrap()
            .contains("does not receive")
    );
    assert!(
        net.node
            .relay()
            .forward_state("UNKNOWN-1")
            .await
            .unwrap()
            .is_none()
    );

    // Not ebXML at all: a SOAP fault, and a refused entry with what is known.
    let r = reqwest::Client::new()
        .post(format!(
            "{}/reliablemessaging/forwardreliable",
            net.node.base
        ))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let text = r.bytes().await.unwrap();
    let reply = ebxml::Reply::parse(&text, &ebxml::Limits::default()).unwrap();
    assert!(matches!(reply, ebxml::Reply::Fault(_)), "{reply:?}");
    let all = net.node.log("").await;
    let last = all.last().unwrap();
    assert_eq!(kinds(std::slice::from_ref(last)), ["refused"]);
    assert_eq!(
        (last["jdiEvent"].as_str(), last["conversationID"].as_str()),
        (Some("20"), Some("Unknown"))
    );
}

#[tokio::test]
async fn the_log_refuses_bad_parameters_with_an_operation_outcome() {
    let net = Net::start(Backend::Sqlite, quick_relay()).await;
    for q in [
        "since=yesterday",
        "conversationId=",
        "colour=red",
        "since=2024-02-30",
    ] {
        let r = reqwest::get(format!("{}/spine/message-log?{q}", net.node.base))
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{q}");
        assert_eq!(r.headers()["content-type"], "application/fhir+json");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["resourceType"], "OperationOutcome");
        let code = &v["issue"][0]["details"]["coding"][0]["code"];
        assert_eq!(code, "INVALID_SEARCH_DATA");
    }
    assert!(net.node.log("").await.is_empty());
}
