//! Throughput and CPU per message of the MHS (persistence on, SQLite, plain HTTP on
//! loopback between two instances) against a plain HTTP POST of the same bytes to a
//! handler that only reads them, in the same run.
//!
//! `CARGO_TARGET_DIR=/work/target-mhs cargo run --release -p mhs --example mhs_bench`
//! (`MHS_BENCH_SMALL=N MHS_BENCH_LARGE=N` set the message counts).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mhs::{Destination, Mhs, MhsConfig, Outbound, OutboundState, Reliability, Route};
use store::{Database, PayloadStore};

/// CPU seconds (user + system) this process has used, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn payload(size: usize) -> String {
    let open = "<RCMR_IN030000UK06 xmlns=\"urn:hl7-org:v3\">";
    let close = "</RCMR_IN030000UK06>";
    format!(
        "{open}{}{close}",
        "x".repeat(size - open.len() - close.len())
    )
}

async fn start(dir: &std::path::Path, party: &str) -> Mhs {
    let db = Database::open(&format!("sqlite://{}/{party}.db", dir.display()))
        .await
        .unwrap();
    let payloads = PayloadStore::on_disk(&dir.join(party)).unwrap();
    let mut c = MhsConfig::new(party, "BENCH");
    c.listen = Some("127.0.0.1:0".parse().unwrap());
    Mhs::start(c, db, payloads, Arc::new(clock::SystemClock))
        .await
        .unwrap()
}

struct Row {
    rate: f64,
    cpu_ms: f64,
}

async fn via_mhs(size: usize, n: usize) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path(), "B-1").await;
    let a = start(dir.path(), "A-1").await;
    let route = Route::Direct(Destination {
        address: format!("http://{}/", b.inbound_addr().unwrap()),
        party_key: "B-1".into(),
        cpa_id: "CPA".into(),
        asid: None,
        reliability: Reliability::default(),
    });
    let body = Bytes::from(payload(size));
    let consumer = {
        let b = b.handle();
        tokio::spawn(async move {
            for _ in 0..n {
                let m = b.next_inbound().await.unwrap();
                b.ack_inbound(&m.message_id).await.unwrap();
            }
        })
    };
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let m = Outbound::gp2gp(
            route.clone(),
            "RCMR_IN030000UK06",
            format!("C{i}"),
            body.clone(),
        );
        ids.push(a.send(m).await.unwrap());
    }
    for id in &ids {
        let s = a.wait_final(id, Duration::from_secs(600)).await.unwrap();
        assert!(matches!(s, OutboundState::Delivered(_)), "{s:?}");
    }
    consumer.await.unwrap();
    let (t, c) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    Row {
        rate: n as f64 / t,
        cpu_ms: c * 1000.0 / n as f64,
    }
}

async fn plain_post(size: usize, n: usize) -> Row {
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::post(|b: Bytes| async move { b.len().to_string() }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = mhs::tls::http_client(None).unwrap();
    let body = Bytes::from(payload(size));
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let client = client.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let r = http::Request::post(format!("http://{addr}/"))
                .header("content-type", "application/octet-stream")
                .body(Full::new(body))
                .unwrap();
            let resp = client.request(r).await.unwrap();
            let _ = resp.into_body().collect().await.unwrap();
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (t, c) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    Row {
        rate: n as f64 / t,
        cpu_ms: c * 1000.0 / n as f64,
    }
}

#[tokio::main]
async fn main() {
    let count = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let cases = [
        ("5 KB", 5 * 1024, count("MHS_BENCH_SMALL", 2000)),
        ("4 MB", 4 * 1024 * 1024, count("MHS_BENCH_LARGE", 40)),
    ];
    println!(
        "| message | count | MHS msg/s | MHS CPU ms/msg | plain POST msg/s | plain CPU ms/msg | throughput ratio (plain/MHS) | CPU ratio (MHS/plain) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, size, n) in cases {
        let plain = plain_post(size, n).await;
        let mhs = via_mhs(size, n).await;
        println!(
            "| {name} | {n} | {:.0} | {:.2} | {:.0} | {:.2} | {:.1}× | {:.1}× |",
            mhs.rate,
            mhs.cpu_ms,
            plain.rate,
            plain.cpu_ms,
            plain.rate / mhs.rate,
            mhs.cpu_ms / plain.cpu_ms
        );
    }
}
