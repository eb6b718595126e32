//! Messages a second through Spine's relay (MHS → relay → MHS, everything persisted, SQLite,
//! plain HTTP on loopback) against the same messages straight from MHS to MHS, in the same
//! run; and how fast the national message log reads back.
//!
//! `CARGO_TARGET_DIR=/work/target-relay cargo run --release -p spine --example relay_bench`
//! (`RELAY_BENCH_N=N` sets the message count, default 1,000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mhs::{Destination, Mhs, MhsConfig, Outbound, Reliability, Route};
use spine::sds::{Organisation, System};
use store::{Database, PayloadStore};

const REQUEST: &str = "urn:nhs:names:services:gp2gp:RCMR_IN010000UK05";

async fn storage(dir: &std::path::Path, name: &str) -> (Database, PayloadStore) {
    let db = Database::open(&format!("sqlite://{}/{name}.db", dir.display()))
        .await
        .unwrap();
    (db, PayloadStore::on_disk(&dir.join(name)).unwrap())
}

async fn practice(dir: &std::path::Path, party: &str, ods: &str, sds: &str) -> Mhs {
    let (db, payloads) = storage(dir, party).await;
    let mut c = MhsConfig::new(party, ods);
    c.listen = Some("127.0.0.1:0".parse().unwrap());
    c.sds = Some(mhs::SdsConfig {
        base_url: format!("{sds}/sds"),
        api_key: None,
        cache_ttl: Duration::from_secs(3600),
    });
    Mhs::start(c, db, payloads, Arc::new(clock::SystemClock))
        .await
        .unwrap()
}

fn org(ods: &str, party: &str, address: String) -> Organisation {
    Organisation {
        ods: ods.into(),
        name: ods.into(),
        supplier: Some("Lloyd".into()),
        systems: vec![System {
            asid: "200000000101".into(),
            party_key: party.into(),
            cpa_id: None,
            fqdn: None,
            address,
            interactions: vec![REQUEST.into()],
            reliability: spine::sds::Reliability::default(),
            manufacturer_ods: None,
        }],
    }
}

/// Sends `n` requests from `a` by `route(i)` and waits until `b`'s consumer has them all;
/// messages a second.
async fn run(a: &Mhs, b: &Mhs, n: usize, tag: &str, route: impl Fn() -> Route) -> f64 {
    let payload = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/gp2gp/messages/1_-_EHR_Request_RCMR_IN010000UK13__payload.xml"
    ))
    .unwrap();
    let start = Instant::now();
    for i in 0..n {
        let mut m = Outbound::gp2gp(
            route(),
            "RCMR_IN010000UK05",
            format!("{tag}-C{i}"),
            payload.clone(),
        );
        m.message_id = Some(format!("{tag}-{i:06}"));
        a.send(m).await.unwrap();
    }
    let mut got = 0;
    while got < n {
        let m = b.next_inbound().await.unwrap();
        b.ack_inbound(&m.message_id).await.unwrap();
        got += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("RELAY_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (db, payloads) = storage(dir.path(), "spine").await;
    let clock: clock::SharedClock = Arc::new(clock::SystemClock);
    let spine = spine::Spine::start(db, payloads, clock, &spine::Config::default(), &base)
        .await
        .unwrap();
    let _server = mhs::serve(listener, spine.router(), None).unwrap();
    let a = practice(dir.path(), "A82038-0000001", "A82038", &base).await;
    let b = practice(dir.path(), "B86041-0000002", "B86041", &base).await;
    let b_address = format!("http://{}/", b.inbound_addr().unwrap());
    spine
        .sds
        .directory
        .upsert_many(&[
            org(
                "A82038",
                "A82038-0000001",
                format!("http://{}/", a.inbound_addr().unwrap()),
            ),
            org("B86041", "B86041-0000002", b_address.clone()),
        ])
        .await
        .unwrap();

    let direct = || {
        Route::Direct(Destination {
            address: b_address.clone(),
            party_key: "B86041-0000002".into(),
            cpa_id: "CPA".into(),
            asid: None,
            reliability: Reliability::default(),
        })
    };
    let sds = || Route::Sds {
        ods_code: "B86041".into(),
    };
    // Warm up both paths (connections, SDS cache, SQLite pages).
    run(&a, &b, 50, "warm-direct", direct).await;
    run(&a, &b, 50, "warm-relay", sds).await;
    let straight = run(&a, &b, n, "direct", direct).await;
    let relayed = run(&a, &b, n, "relay", sds).await;
    println!("{n} EhrRequests (3.1 KB payload), SQLite, loopback HTTP:");
    println!("  MHS → MHS            {straight:8.0} msg/s");
    println!(
        "  MHS → relay → MHS    {relayed:8.0} msg/s  ({:.2}× slower)",
        straight / relayed
    );

    let log = spine.relay.as_ref().unwrap().log();
    let start = Instant::now();
    let entries = log
        .read(&spine::message_log::LogQuery::default())
        .await
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "  message log read      {:8.0} entries/s ({} entries)",
        entries.len() as f64 / secs,
        entries.len()
    );
    let one = spine::message_log::LogQuery {
        conversation_id: Some(format!("relay-C{}", n / 2)),
        since_ms: None,
    };
    let start = Instant::now();
    let found = log.read(&one).await.unwrap();
    println!(
        "  one conversation      {:8.2} ms ({} entry)",
        start.elapsed().as_secs_f64() * 1000.0,
        found.len()
    );
}
