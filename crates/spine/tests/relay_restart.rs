//! The relay killed mid-forward and started again on the same database: every message it
//! had acknowledged reaches the receiver's consumer exactly once — those it had not tried
//! yet, and those whose attempt was cut off after the receiver had them (sent again, and
//! dropped by the receiver as duplicates). On SQLite and on a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod relay_support;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mhs::OutboundState;
use relay_support::*;

const MESSAGES: usize = 10;
const IN_FLIGHT: usize = 4;

async fn killed_mid_forward(backend: Backend) {
    let relay_config = spine::relay::RelayConfig {
        attempt_timeout_secs: 5,
        max_in_flight: IN_FLIGHT,
        ..spine::relay::RelayConfig::default()
    };
    let mut net = Net::start(backend, relay_config.clone()).await;
    let a = net.practice(A_PARTY, A_ODS, any_port(), None).await;
    let b = net.practice(B_PARTY, B_ODS, any_port(), None).await;
    // B behind a gate that lets messages reach B but holds B's answers back.
    let gate = Gate::start(inbound_url(&b, "http")).await;
    let dir = directory(&inbound_url(&a, "http"), &gate.url(), 3);
    net.node.set_directory(&dir).await;

    let (_, payload) = ehr_request();
    let ids: Vec<String> = (0..MESSAGES).map(|i| format!("RESTART-{i:02}")).collect();
    for id in &ids {
        send(&a, B_ODS, EHR_REQUEST, "CONV-RESTART", id, payload.clone()).await;
    }
    // The relay has acknowledged every one to A...
    for id in &ids {
        let s = a.wait_final(id, Duration::from_secs(30)).await.unwrap();
        assert!(matches!(s, OutboundState::Delivered(_)), "{id}: {s:?}");
    }
    // ...and B holds the first few, whose answers have not reached the relay.
    eventually("B has answered the attempts under way", async || {
        gate.answered_by_target.load(Ordering::SeqCst) == IN_FLIGHT
    })
    .await;
    let mut states: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for id in &ids {
        let s = net.node.relay().forward_state(id).await.unwrap().unwrap();
        states.entry(s.name()).or_default().push(id);
    }
    assert_eq!(states["in_flight"].len(), IN_FLIGHT, "{states:?}");
    assert_eq!(states["pending"].len(), MESSAGES - IN_FLIGHT, "{states:?}");

    // Kill it (then let answers through), and start it again on the same database and port.
    net.node.kill();
    gate.open();
    net.restart(relay_config).await;
    let node = &net.node;
    // What was never tried goes at once...
    for id in &states["pending"] {
        forwarding(node.relay(), id, |s| {
            matches!(s, OutboundState::Delivered(_))
        })
        .await;
    }
    // ...what was cut off waits out its lease (twice the attempt timeout), then goes again.
    assert!(matches!(
        node.relay()
            .forward_state(states["in_flight"][0])
            .await
            .unwrap(),
        Some(OutboundState::InFlight(_))
    ));
    net.clock.advance(Duration::from_secs(11));
    for id in &states["in_flight"] {
        forwarding(node.relay(), id, |s| {
            matches!(s, OutboundState::Delivered(_))
        })
        .await;
    }

    // B's consumer sees each message exactly once, the first time it is handed one.
    let mut got = drain(&b).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    got.extend(drain(&b).await);
    let mut seen: Vec<&str> = got.iter().map(|m| m.message_id.as_str()).collect();
    seen.sort();
    assert_eq!(seen, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(got.iter().all(|m| m.delivery == 1));
    // On the wire, the cut-off ones went twice.
    assert_eq!(gate.requests.load(Ordering::SeqCst), MESSAGES + IN_FLIGHT);

    let log = node.log("conversationId=CONV-RESTART").await;
    assert_eq!(events(&log, "received").len(), MESSAGES);
    let retries = events(&log, "retry");
    assert_eq!(retries.len(), IN_FLIGHT, "{log:#?}");
    for r in retries {
        assert!(r["detail"].as_str().unwrap().contains("interrupted"), "{r}");
    }
    assert!(events(&log, "failed").is_empty() && events(&log, "rejected").is_empty());
}

#[tokio::test]
async fn a_relay_killed_mid_forward_delivers_each_message_once_after_restart_sqlite() {
    killed_mid_forward(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_relay_killed_mid_forward_delivers_each_message_once_after_restart_postgres() {
    killed_mid_forward(Backend::Postgres).await;
}
