#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Retries, giving up, and consumer leases, with time moved by hand.

mod common;

use std::sync::Arc;
use std::time::Duration;

use clock::ManualClock;
use common::*;
use mhs::state::{Failed, Retrying};
use mhs::{Destination, Outbound, OutboundState, Reliability, Route};

async fn until(h: &mhs::Mhs, id: &str, pred: impl Fn(&OutboundState) -> bool) -> OutboundState {
    for _ in 0..1000 {
        let s = h.status(id).await.unwrap();
        if pred(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "state never reached; last {:?}",
        h.status(id).await.unwrap()
    );
}

#[tokio::test]
async fn an_unreachable_destination_is_retried_per_sds_then_failed_with_a_reason() {
    let clock = ManualClock::new(1_700_000_000_000);
    let s = Storage::new(Backend::Sqlite, None).await;
    let a = start(config("A-1", None), &s, Arc::new(clock.clone())).await;
    // A port nobody listens on.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let route = Route::Direct(Destination {
        address: format!("http://{dead}/"),
        party_key: "B-1".into(),
        cpa_id: "CPA".into(),
        asid: None,
        reliability: Reliability {
            retry_interval: Duration::from_secs(60),
            retries: 2,
            persist_duration: Duration::from_secs(3600),
        },
    });
    let id = a
        .send(Outbound::gp2gp(
            route,
            "RCMR_IN010000UK05",
            "C",
            ehr_request(1),
        ))
        .await
        .unwrap();
    let s1 = until(&a, &id, |s| {
        matches!(s, OutboundState::Retrying(Retrying { attempts: 1, .. }))
    })
    .await;
    let OutboundState::Retrying(r) = s1 else {
        unreachable!()
    };
    assert_eq!(r.next_attempt_at, 1_700_000_000_000 + 60_000);
    assert!(r.last_error.contains("no answer"), "{}", r.last_error);
    // Not retried before the interval passes.
    clock.advance(Duration::from_secs(59));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(
        a.status(&id).await.unwrap(),
        OutboundState::Retrying(Retrying { attempts: 1, .. })
    ));
    clock.advance(Duration::from_secs(1));
    until(&a, &id, |s| {
        matches!(s, OutboundState::Retrying(Retrying { attempts: 2, .. }))
    })
    .await;
    clock.advance(Duration::from_secs(60));
    let last = until(&a, &id, OutboundState::is_final).await;
    let OutboundState::Failed(Failed { reason, attempts }) = last else {
        panic!("{last:?}")
    };
    assert_eq!(attempts, 3);
    assert!(reason.contains("after 3 attempts"), "{reason}");
}

#[tokio::test]
async fn a_message_the_consumer_never_acknowledged_is_delivered_again_even_after_a_restart() {
    let clock = ManualClock::new(1_700_000_000_000);
    let sb = Storage::new(Backend::Sqlite, None).await;
    let mut cb = config("B-1", None);
    cb.inbound_lease = Duration::from_secs(30);
    let b = start(cb.clone(), &sb, Arc::new(clock.clone())).await;
    let client = mhs::tls::http_client(None).unwrap();
    let (ct, wire) = wire_message("B-1", "M-LEASE");
    let url = format!("http://{}/", b.inbound_addr().unwrap());
    let (status, _, _) = http_call(
        &client,
        http::Method::POST,
        &url,
        &[("content-type", &ct)],
        wire,
    )
    .await
    .unwrap();
    assert_eq!(status, http::StatusCode::OK);
    let first = b.next_inbound().await.unwrap();
    assert_eq!((first.message_id.as_str(), first.delivery), ("M-LEASE", 1));
    // The consumer crashes before acknowledging; so does B.
    drop(b);
    let b = start(cb, &sb, Arc::new(clock.clone())).await;
    assert!(
        b.try_next_inbound().await.unwrap().is_none(),
        "leased: not handed out twice at once"
    );
    clock.advance(Duration::from_secs(31));
    let again = b.next_inbound().await.unwrap();
    assert_eq!((again.message_id.as_str(), again.delivery), ("M-LEASE", 2));
    b.ack_inbound("M-LEASE").await.unwrap();
    clock.advance(Duration::from_secs(31));
    assert!(
        b.try_next_inbound().await.unwrap().is_none(),
        "acknowledged: never again"
    );
}
