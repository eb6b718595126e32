//! Large GP2GP transfers end to end over real HTTP through Spine's relay: a 20 MB record
//! whose biggest attachment is split into fragments, with every message of the
//! conversation in the national message log; and fragments delivered out of order, before
//! their index and twice, by an interposer between the relay and the new practice's MHS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod transfer_common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use gp2gp::driver::{Driver, TransferStatus};
use transfer_common::interposer::{Interposer, Meddle};
use transfer_common::*;

/// The documents that arrived are, byte for byte, the ones the old practice holds.
fn assert_same_documents(
    arrived: &[gp2gp::large::AssembledDocument],
    sent: &HashMap<String, Bytes>,
) {
    let mut got: Vec<&Bytes> = arrived.iter().map(|d| &d.bytes).collect();
    let mut want: Vec<&Bytes> = sent.values().collect();
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len(), "documents arrived");
    for (g, w) in got.iter().zip(&want) {
        assert!(
            g == w,
            "a document of {} bytes arrived as {} different bytes",
            w.len(),
            g.len()
        );
    }
}

/// The new practice's view of the transfer once it has finished, acknowledged every part
/// it received, and heard the old practice acknowledge its request. The acknowledgements
/// of the last parts may go out just after the record is filed, and the old practice
/// acknowledges the request only after its last fragment, so that acknowledgement may
/// arrive after the record is filed too.
async fn wait_settled(
    driver: &Driver<Sys>,
    conversation: &str,
    within: Duration,
) -> TransferStatus {
    wait_phase(driver, conversation, within, |s| {
        let acked = |id: &str, direction: &str| {
            s.messages
                .iter()
                .any(|m| m.direction == direction && m.acknowledges.as_deref() == Some(id))
        };
        s.summary.finished
            && s.messages
                .iter()
                .filter(|m| m.direction == "in" && m.interaction_id == COPC)
                .all(|m| acked(&m.message_id, "out"))
            && s.messages
                .iter()
                .filter(|m| m.direction == "out" && m.interaction_id == REQUEST)
                .all(|m| acked(&m.message_id, "in"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mb_record_arrives_whole_and_every_message_is_in_the_national_log() {
    let nhs = nhs_number(1);
    // About 5 MB of structured record as FHIR (over the limit: a compressed extract behind a
    // skeleton) and three attachments: 10.5 MB (split into fragments with an index),
    // 3.2 MB and 1.5 MB.
    let sizes = [10_500_000, 3_200_000, 1_500_000];
    let (record, documents) = synthetic_record(&nhs, 7_000_000, 20, &sizes);
    let record_bytes = serde_json::to_vec(&record).unwrap().len();
    let total = record_bytes + sizes.iter().sum::<u64>() as usize;
    assert!(total >= 20_000_000, "a 20 MB transfer: {total} bytes");
    let a = TestClinical {
        records: HashMap::from([(nhs.clone(), record)]),
        documents: documents.clone(),
        ..TestClinical::default()
    };
    let w = World::start(a, TestClinical::filing(), Setup::new(&nhs)).await;
    let conversation = w.b.driver.request(&nhs, A).await.unwrap();
    let status = wait_settled(&w.b.driver, &conversation, Duration::from_secs(240)).await;
    assert_eq!(end(&status), ("integrated", None), "{status:#?}");
    let sent = wait_finished(w.a(), &conversation, Duration::from_secs(60)).await;
    assert_eq!(end(&sent), ("integrated", None), "{sent:#?}");

    // The practice has the record as FHIR, once, with its documents byte for byte.
    let arrived = w.filed_once(&conversation, &nhs);
    assert!(arrived.bundle.entry.len() > 1_000, "the whole record");
    assert_same_documents(&arrived.documents, &documents);

    // It came as large messages: a fragment index and its fragments, each acknowledged.
    let copcs_in: Vec<_> = status
        .messages
        .iter()
        .filter(|m| m.direction == "in" && m.interaction_id == COPC)
        .collect();
    let index = copcs_in
        .iter()
        .find(|m| m.note.starts_with("fragment index of"))
        .unwrap_or_else(|| panic!("a fragment index: {status:#?}"));
    assert!(index.note.contains("of 4 fragments"), "{}", index.note);
    // The index, four fragments, the compressed extract and one attachment too big to go
    // inline beside another.
    assert!(copcs_in.len() >= 6, "{copcs_in:#?}");

    // The national log: every message the new practice sent or received is there once as
    // received, from the right system, acknowledging the right message, with no error.
    let request = message_id(&status, "out", REQUEST);
    let extract = message_id(&status, "in", EXTRACT);
    let log = w.log(&conversation).await;
    let mut ids = HashSet::new();
    for m in &status.messages {
        ids.insert(m.message_id.to_uppercase());
        let e = logged(&log, &m.message_id);
        let from = if m.direction == "out" { B_ASID } else { A_ASID };
        let reference = match (m.direction.as_str(), m.interaction_id.as_str()) {
            (_, MCCI) => m.acknowledges.clone().unwrap(),
            ("out", COPC) => extract.clone(),
            _ => "NotProvided".into(),
        };
        assert_entry(e, &m.interaction_id, from, &reference, "NONE");
    }
    let received: Vec<_> = log
        .iter()
        .filter(|e| e.event == spine::message_log::LogEvent::Received)
        .collect();
    let mut seen = HashSet::new();
    let extra: Vec<_> = received
        .iter()
        .filter(|e| !ids.contains(&e.guid.to_uppercase()) || !seen.insert(e.guid.to_uppercase()))
        .collect();
    assert!(
        extra.is_empty(),
        "nothing else was logged, but these were: {extra:#?}\nthe new practice's view: {status:#?}\nthe whole log: {log:#?}"
    );
    // Request, extract, Continue, the parts, one acknowledgement of each part, the
    // acknowledgement of the request, the final acknowledgement.
    assert_eq!(ids.len(), 3 + 2 * copcs_in.len() + 2, "{status:#?}");
    assert_entry(ack_of(&log, &request), MCCI, A_ASID, &request, "NONE");
    assert_entry(ack_of(&log, &extract), MCCI, B_ASID, &extract, "NONE");
    for c in &copcs_in {
        assert_entry(
            ack_of(&log, &c.message_id),
            MCCI,
            B_ASID,
            &c.message_id,
            "NONE",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_out_of_order_before_their_index_and_twice_make_one_whole_record() {
    let nhs = nhs_number(2);
    // A 7 MB attachment (an index and three fragments), a 3 MB one that goes inline in
    // the extract, and a 1 MB one that no longer fits there (its own COPC).
    let (record, documents) =
        synthetic_record(&nhs, 100_000, 21, &[7_000_000, 3_000_000, 1_000_000]);
    let a = TestClinical {
        records: HashMap::from([(nhs.clone(), record)]),
        documents: documents.clone(),
        ..TestClinical::default()
    };
    let interposer = Interposer::start(HashMap::from([(nhs.clone(), Meddle::Reorder)])).await;
    let setup = Setup {
        b_address: Some(interposer.url.clone()),
        ..Setup::new(&nhs)
    };
    let w = World::start(a, TestClinical::filing(), setup).await;
    interposer.pass_to(w.b_mhs_url());
    let conversation = w.b.driver.request(&nhs, A).await.unwrap();
    let status = wait_settled(&w.b.driver, &conversation, Duration::from_secs(120)).await;
    assert_eq!(end(&status), ("integrated", None), "{status:#?}");
    let sent = wait_finished(w.a(), &conversation, Duration::from_secs(60)).await;
    assert_eq!(end(&sent), ("integrated", None), "{sent:#?}");
    let arrived = w.filed_once(&conversation, &nhs);
    assert_same_documents(&arrived.documents, &documents);

    // What the interposer did: the fragments last first, then their index, a fragment
    // again, the whole document twice; the MHS took every delivery.
    let deliveries: Vec<_> = interposer
        .deliveries()
        .into_iter()
        .filter(|d| d.conversation_id == conversation)
        .collect();
    assert!(
        deliveries.iter().all(|d| d.status == 200),
        "{deliveries:#?}"
    );
    let copcs: Vec<&str> = deliveries
        .iter()
        .map(|d| d.message_id.as_str())
        .filter(|id| {
            status.messages.iter().any(|m| {
                m.interaction_id == COPC
                    && m.direction == "in"
                    && m.message_id.eq_ignore_ascii_case(id)
            })
        })
        .collect();
    let index_id = status
        .messages
        .iter()
        .find(|m| m.note.starts_with("fragment index of 3"))
        .map(|m| m.message_id.clone())
        .unwrap_or_else(|| panic!("{status:#?}"));
    let index_at = copcs
        .iter()
        .position(|id| id.eq_ignore_ascii_case(&index_id))
        .unwrap();
    assert_eq!(index_at, 3, "three fragments before their index: {copcs:?}");
    assert_eq!(
        copcs.len(),
        7,
        "index, three fragments, one document; two of them twice: {copcs:?}"
    );
    let distinct: HashSet<String> = copcs.iter().map(|c| c.to_uppercase()).collect();
    assert_eq!(distinct.len(), 5, "{copcs:?}");
    // Each part is taken in, and acknowledged, once.
    for id in &distinct {
        let taken = status
            .messages
            .iter()
            .filter(|m| m.direction == "in" && m.message_id.eq_ignore_ascii_case(id))
            .count();
        assert_eq!(taken, 1, "{id}: {status:#?}");
        let acks = status
            .messages
            .iter()
            .filter(|m| {
                m.direction == "out"
                    && m.acknowledges
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(id))
            })
            .count();
        assert_eq!(acks, 1, "{id} acknowledged once: {status:#?}");
    }
}
