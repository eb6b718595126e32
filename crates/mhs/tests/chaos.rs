#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Two MHSs over mutual TLS exchange 1,000 messages through a relay that drops
//! connections (before and after forwarding), delays, and sends requests twice, while each
//! side is restarted on its own database. Every message must reach the consumer exactly
//! once, and none may be lost. Run on SQLite and on a real PostgreSQL.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use mhs::{Mhs, MhsConfig, Outbound, OutboundState, TlsConfig};
use tokio::sync::watch;

const MESSAGES: usize = 1_000;

#[derive(Default)]
struct Faults {
    requests: AtomicU64,
    dropped_before: AtomicU64,
    dropped_after: AtomicU64,
    duplicated: AtomicU64,
    delayed: AtomicU64,
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ceb9fe1a85ec53);
    x ^ (x >> 33)
}

/// An unreliable relay: terminates mutual TLS from A (with its own certificate from the
/// same CA, as Spine's relay does) and forwards to B over mutual TLS.
async fn relay(tls: TlsConfig, target: SocketAddr, faults: Arc<Faults>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config().unwrap());
    let client = mhs::tls::http_client(Some(&tls)).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let client = client.clone();
            let faults = faults.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let client = client.clone();
                        let faults = faults.clone();
                        async move {
                            let n = faults.requests.fetch_add(1, Ordering::SeqCst);
                            let dice = mix(n) % 100;
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map_err(io)?.to_bytes();
                            let forward = || {
                                let mut r = http::Request::post(format!(
                                    "https://localhost:{}/",
                                    target.port()
                                ));
                                for (k, v) in parts.headers.iter() {
                                    if k == http::header::CONTENT_TYPE {
                                        r = r.header(k, v);
                                    }
                                }
                                client.request(r.body(Full::new(body.clone())).unwrap())
                            };
                            let fail = || {
                                Err::<http::Response<Full<Bytes>>, std::io::Error>(
                                    std::io::Error::other("fault: connection closed"),
                                )
                            };
                            if dice < 8 {
                                faults.dropped_before.fetch_add(1, Ordering::SeqCst);
                                return fail();
                            }
                            if dice < 16 {
                                faults.delayed.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(20 + mix(n + 7) % 150))
                                    .await;
                            }
                            if (16..24).contains(&dice) {
                                faults.duplicated.fetch_add(1, Ordering::SeqCst);
                                if let Ok(r) = forward().await {
                                    let _ = r.into_body().collect().await;
                                }
                            }
                            let response = forward().await.map_err(io)?;
                            let (rparts, rbody) = response.into_parts();
                            let rbody = rbody.collect().await.map_err(io)?.to_bytes();
                            if (24..32).contains(&dice) {
                                // B has the message and has answered; A never hears it.
                                faults.dropped_after.fetch_add(1, Ordering::SeqCst);
                                return fail();
                            }
                            Ok(http::Response::from_parts(rparts, Full::new(rbody)))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

type Seen = Arc<Mutex<HashMap<String, usize>>>;

/// The local consumer on B: records each message, then acknowledges it.
fn consume(b: &Mhs, seen: Seen) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, mut stopped) = watch::channel(false);
    let h = b.handle();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                m = h.next_inbound() => {
                    let Ok(m) = m else { return };
                    *seen.lock().unwrap().entry(m.message_id.clone()).or_default() += 1;
                    h.ack_inbound(&m.message_id).await.unwrap();
                }
                _ = stopped.changed() => return,
            }
        }
    });
    (stop, task)
}

fn mhs_config(party: &str, tls: TlsConfig, listen: SocketAddr) -> MhsConfig {
    let mut c = config(party, Some(tls));
    c.listen = Some(listen);
    c.attempt_timeout = Duration::from_secs(2);
    c.inbound_lease = Duration::from_secs(3);
    c.max_in_flight = 16;
    c
}

async fn exchange(backend: Backend) {
    let pg = match backend {
        Backend::Postgres => Some(store::testing::TempPostgres::start().unwrap()),
        Backend::Sqlite => None,
    };
    let ca = TestCa::new("Test Spine CA");
    let (tls_a, tls_b, tls_relay) = (
        ca.issue("a.mhs.test"),
        ca.issue("b.mhs.test"),
        ca.issue("relay.spine.test"),
    );
    let sa = Storage::new(backend, pg.as_ref()).await;
    let sb = Storage::new(backend, pg.as_ref()).await;

    let b = start(
        mhs_config("B-1", tls_b.clone(), "127.0.0.1:0".parse().unwrap()),
        &sb,
        system_clock(),
    )
    .await;
    let b_addr = b.inbound_addr().unwrap();
    let faults = Arc::new(Faults::default());
    let relay_addr = relay(tls_relay, b_addr, faults.clone()).await;
    let mut a = start(
        mhs_config("A-1", tls_a.clone(), "127.0.0.1:0".parse().unwrap()),
        &sa,
        system_clock(),
    )
    .await;
    let route = direct(format!("https://localhost:{}/", relay_addr.port()), "B-1");

    let seen: Seen = Arc::default();
    let (mut stop_consumer, mut consumer) = consume(&b, seen.clone());
    let mut b = Some(b);
    let mut ids = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        if i == MESSAGES * 2 / 5 {
            // Restart B: the consumer stops, B stops, B starts again on its database.
            let _ = stop_consumer.send(true);
            consumer.await.unwrap();
            b.take().unwrap().shutdown().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let nb = start(
                mhs_config("B-1", tls_b.clone(), b_addr),
                &sb,
                system_clock(),
            )
            .await;
            (stop_consumer, consumer) = consume(&nb, seen.clone());
            b = Some(nb);
        }
        if i == MESSAGES * 7 / 10 {
            // A crashes (dropped with attempts in flight) and starts again.
            drop(a);
            a = start(
                mhs_config("A-1", tls_a.clone(), "127.0.0.1:0".parse().unwrap()),
                &sa,
                system_clock(),
            )
            .await;
        }
        let id = a
            .send(Outbound::gp2gp(
                route.clone(),
                "COPC_IN000001UK01",
                format!("CONV-{}", i % 37),
                ehr_request(i),
            ))
            .await
            .unwrap();
        ids.push(id);
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    for id in &ids {
        let state = a.wait_final(id, Duration::from_secs(120)).await.unwrap();
        assert!(
            matches!(state, OutboundState::Delivered(_)),
            "{id}: {state:?}"
        );
    }
    // Every message reaches the consumer (liveness bound only: it fails, never flakes
    // on speed).
    for _ in 0..600 {
        if seen.lock().unwrap().len() >= MESSAGES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.lock().unwrap().clone();
    let missing: Vec<_> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} messages never reached the consumer, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(seen.len(), MESSAGES);
    // The faults really happened.
    for (what, n) in [
        ("dropped before", &faults.dropped_before),
        ("dropped after", &faults.dropped_after),
        ("duplicated", &faults.duplicated),
        ("delayed", &faults.delayed),
    ] {
        assert!(n.load(Ordering::SeqCst) > 10, "too few faults: {what}");
    }
    assert_eq!(sb.count("mhs_inbound").await, MESSAGES as i64);
    let _ = stop_consumer.send(true);
    let _ = consumer.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_survive_drops_delays_duplicates_and_restarts_on_sqlite() {
    exchange(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_survive_drops_delays_duplicates_and_restarts_on_postgres() {
    exchange(Backend::Postgres).await;
}
