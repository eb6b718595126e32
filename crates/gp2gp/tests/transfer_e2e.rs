//! GP2GP end to end over real HTTP: Spine (SDS, PDS and the relay) and two practices'
//! MHSs on one loopback listener, each practice's GP2GP driver running against a small
//! clinical system (`transfer_common`). A record moves from practice A to practice B:
//! small (on SQLite and on PostgreSQL), and large (skeleton, documents split into
//! fragments) across a crash of the sender. Refusals and negative acknowledgements are in
//! `transfer_nacks_e2e.rs`; the 20 MB record and fragments out of order in
//! `transfer_large_e2e.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod transfer_common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use gp2gp::requester::Integration;
use transfer_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_record_moves_and_is_filed() {
    small_record(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_record_moves_and_is_filed_on_postgres() {
    let pg = store::testing::TempPostgres::start().unwrap();
    small_record(Some(&pg)).await;
}

async fn small_record(pg: Option<&store::testing::TempPostgres>) {
    let nhs = "9465701262";
    let a = TestClinical {
        records: HashMap::from([(nhs.to_string(), corpus_bundle(nhs))]),
        document_sizes: vec![2000],
        ..TestClinical::default()
    };
    let b = TestClinical {
        auto: Some(Integration::Integrated),
        ..TestClinical::default()
    };
    let w = World::start(
        a,
        b,
        Setup {
            pg,
            ..Setup::new(nhs)
        },
    )
    .await;
    let conversation = w.b.driver.request(nhs, A).await.unwrap();
    let status = wait_finished(&w.b.driver, &conversation, Duration::from_secs(60)).await;
    assert_eq!(status.summary.phase, "integrated", "{status:#?}");
    w.filed_once(&conversation, nhs);
    // The sender hears the final acknowledgement.
    let a = w.a.as_ref().unwrap();
    let sent = wait_finished(&a.driver, &conversation, Duration::from_secs(30)).await;
    // The requester's messages, once everything is over: request out, extract in, final
    // acknowledgement out.
    let status = w.b.driver.status(&conversation).await.unwrap();
    let kinds: Vec<(&str, &str)> = status
        .messages
        .iter()
        .map(|m| (m.direction.as_str(), m.interaction_id.as_str()))
        .collect();
    assert!(kinds.contains(&("out", "RCMR_IN010000UK05")), "{kinds:?}");
    assert!(kinds.contains(&("in", "RCMR_IN030000UK06")), "{kinds:?}");
    assert!(kinds.contains(&("out", "MCCI_IN010000UK13")), "{kinds:?}");
    assert_eq!(sent.summary.phase, "integrated", "{sent:#?}");
    // The national message log has each message of the conversation once, with what it
    // acknowledges and no error.
    let request = message_id(&status, "out", REQUEST);
    let extract = message_id(&status, "in", EXTRACT);
    // The old practice acknowledges the request after sending the extract, so that
    // acknowledgement may still be on its way.
    let log = w.log_until(&conversation, |log| log.len() >= 4).await;
    assert_request_logged(&log, &request);
    assert_entry(
        logged(&log, &extract),
        EXTRACT,
        A_ASID,
        "NotProvided",
        "NONE",
    );
    assert_entry(ack_of(&log, &request), MCCI, A_ASID, &request, "NONE");
    assert_entry(ack_of(&log, &extract), MCCI, B_ASID, &extract, "NONE");
    assert_eq!(log.len(), 4, "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_record_with_split_documents_arrives_whole_even_across_a_sender_crash() {
    let nhs = "9465701262";
    // About 6 MB of structured record (over the limit: a skeleton goes) with documents.
    let mut record = translate::synthetic::synthetic_bundle(6_000_000, 7).unwrap();
    // Make it this patient's.
    let text = serde_json::to_string(&record).unwrap();
    let old = record
        .resources_of::<fhir::Patient>()
        .next()
        .and_then(|p| p.nhs_number().map(str::to_string))
        .unwrap();
    record = fhir::from_slice(text.replace(&old, nhs).as_bytes()).unwrap();
    let a = TestClinical {
        records: HashMap::from([(nhs.to_string(), record)]),
        document_sizes: vec![6_000_000, 700_000, 20_000],
        ..TestClinical::default()
    };
    let b = TestClinical {
        auto: Some(Integration::Integrated),
        ..TestClinical::default()
    };
    let mut w = world(a, b, nhs).await;
    let conversation = w.b.driver.request(nhs, A).await.unwrap();
    // Crash the sender as soon as it has started sending, then start it again.
    let start = Instant::now();
    loop {
        let s = w.b.driver.status(&conversation).await.unwrap();
        if s.summary.phase != "awaiting extract" || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.restart_a().await;
    let status = wait_finished(&w.b.driver, &conversation, Duration::from_secs(120)).await;
    assert_eq!(status.summary.phase, "integrated", "{status:#?}");
    let arrived = w.b_clinical.arrived.lock().unwrap().clone();
    assert_eq!(arrived.len(), 1, "delivered once");
    let docs = &arrived[0].documents;
    assert!(!docs.is_empty());
    for d in docs {
        let i = d.filename.len() % 3;
        assert_eq!(
            d.bytes,
            content(i, [6_000_000, 700_000, 20_000][i]),
            "{}",
            d.filename
        );
    }
    assert!(
        status
            .messages
            .iter()
            .any(|m| m.interaction_id == "COPC_IN000001UK01" && m.direction == "in"),
        "large-message parts came: {status:#?}"
    );
}
