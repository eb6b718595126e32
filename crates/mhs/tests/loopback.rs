#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One message from one MHS to another over plain HTTP on loopback, and the basic
//! contracts: persisted before sending, acknowledged, delivered once to the consumer.

mod common;

use std::time::Duration;

use common::*;
use mhs::{Outbound, OutboundState};

#[tokio::test]
async fn a_message_crosses_from_one_mhs_to_the_other_and_is_delivered_once() {
    let sa = Storage::new(Backend::Sqlite, None).await;
    let sb = Storage::new(Backend::Sqlite, None).await;
    let b = start(config("B-1", None), &sb, system_clock()).await;
    let a = start(config("A-1", None), &sa, system_clock()).await;
    let to = direct(format!("http://{}/", b.inbound_addr().unwrap()), "B-1");
    let id = a
        .send(Outbound::gp2gp(
            to,
            "RCMR_IN010000UK05",
            "CONV-1",
            ehr_request(1),
        ))
        .await
        .unwrap();
    let state = a.wait_final(&id, Duration::from_secs(30)).await.unwrap();
    assert!(
        matches!(state, OutboundState::Delivered(ref d) if d.attempts == 1),
        "{state:?}"
    );
    let got = b.next_inbound().await.unwrap();
    assert_eq!(got.message_id, id);
    assert_eq!(got.conversation_id(), "CONV-1");
    assert_eq!(got.interaction_id(), "RCMR_IN010000UK05");
    assert_eq!(got.delivery, 1);
    assert_eq!(&got.payload().unwrap()[..], ehr_request(1).as_bytes());
    b.ack_inbound(&id).await.unwrap();
    assert!(b.try_next_inbound().await.unwrap().is_none());
    // The delivered message's wire copy is gone from A's payloads; B's row stays for
    // de-duplication.
    assert_eq!(sb.count("mhs_inbound").await, 1);
}

#[tokio::test]
async fn plain_http_is_refused_anywhere_but_loopback() {
    let s = Storage::new(Backend::Sqlite, None).await;
    let mut c = config("A-1", None);
    c.listen = Some("0.0.0.0:0".parse().unwrap());
    let (db, payloads) = s.open().await;
    let err = mhs::Mhs::start(c, db, payloads, system_clock())
        .await
        .unwrap_err();
    assert!(matches!(err, mhs::Error::InsecureListen { .. }), "{err}");
    assert!(err.to_string().contains("loopback"));
}

#[tokio::test]
async fn sending_the_same_message_id_twice_sends_it_once() {
    let sa = Storage::new(Backend::Sqlite, None).await;
    let sb = Storage::new(Backend::Sqlite, None).await;
    let b = start(config("B-1", None), &sb, system_clock()).await;
    let a = start(config("A-1", None), &sa, system_clock()).await;
    let to = direct(format!("http://{}/", b.inbound_addr().unwrap()), "B-1");
    let mut m = Outbound::gp2gp(to, "RCMR_IN010000UK05", "CONV-2", ehr_request(2));
    m.message_id = Some("6E2A4C2C-0000-4000-8000-000000000001".into());
    let id1 = a.send(m.clone()).await.unwrap();
    let id2 = a.send(m).await.unwrap();
    assert_eq!(id1, id2);
    a.wait_final(&id1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(sa.count("mhs_outbound").await, 1);
    assert_eq!(sb.count("mhs_inbound").await, 1);
}
