#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The SDS client against the corpus's real SDS answers, served from loopback.

mod common;
#[path = "common/sds_fake.rs"]
mod sds_fake;

use sds_fake::*;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use hl7v3::ReasonCode;
use mhs::{Error, Outbound, SdsClient, SdsConfig, SdsError};

fn client(addr: SocketAddr) -> SdsClient {
    SdsClient::new(
        SdsConfig {
            base_url: format!("http://{addr}"),
            api_key: None,
            cache_ttl: Duration::from_secs(60),
        },
        mhs::tls::http_client(None).unwrap(),
        system_clock(),
        mhs::Reliability::default(),
    )
}

#[tokio::test]
async fn the_corpus_answer_gives_address_cpa_party_key_and_asid_and_is_cached() {
    let hits = Arc::new(AtomicUsize::new(0));
    let sds = client(sds_server(hits.clone()).await);
    let d = sds
        .lookup("ABC123", ebxml::SERVICE_GP2GP, "RCMR_IN010000UK05")
        .await
        .unwrap();
    assert_eq!(d.address, "http://test/");
    assert_eq!(d.cpa_id, "4ec1563fbe8e49bb8c3c");
    assert_eq!(d.party_key, "ABC123-822104");
    assert_eq!(d.asid.as_deref(), Some("918999198993"));
    assert_eq!(
        d.reliability,
        mhs::Reliability::default(),
        "the corpus has no retry settings"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    sds.lookup("ABC123", ebxml::SERVICE_GP2GP, "RCMR_IN010000UK05")
        .await
        .unwrap();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "the second lookup is answered from the cache"
    );
}

#[test]
fn reliability_settings_are_read_from_the_extension() {
    let mut v: serde_json::Value = serde_json::from_str(&corpus("sds_response.json")).unwrap();
    let ext = v
        .pointer_mut("/entry/0/resource/extension/0/extension")
        .unwrap()
        .as_array_mut()
        .unwrap();
    ext.push(serde_json::json!({"url": "nhsMHSRetryInterval", "valueString": "PT1M30S"}));
    ext.push(serde_json::json!({"url": "nhsMHSRetries", "valueInteger": 5}));
    ext.push(serde_json::json!({"url": "nhsMHSPersistDuration", "valueString": "PT10M"}));
    let e = mhs::sds::parse_endpoint(&v, "ABC123", "x").unwrap();
    assert_eq!(e.retry_interval, Some(Duration::from_secs(90)));
    assert_eq!(e.retries, Some(5));
    assert_eq!(e.persist_duration, Some(Duration::from_secs(600)));
    assert_eq!(e.ack_requested.as_deref(), Some("never"));
}

#[tokio::test]
async fn no_result_error_and_no_address_answers_are_reason_code_24() {
    let sds = client(sds_server(Arc::default()).await);
    for (ods, check) in [
        (
            "NONE",
            (|e: &SdsError| matches!(e, SdsError::NoResult { .. })) as fn(&SdsError) -> bool,
        ),
        (
            "ERR",
            |e| matches!(e, SdsError::ErrorAnswer { status: 500, detail } if detail.contains("UNKNOWN_ERROR")),
        ),
        ("NOADDR", |e| {
            matches!(
                e,
                SdsError::Missing {
                    what: "address",
                    ..
                }
            )
        }),
    ] {
        let e = sds
            .lookup(ods, ebxml::SERVICE_GP2GP, "RCMR_IN010000UK05")
            .await
            .unwrap_err();
        assert!(check(&e), "{ods}: {e:?}");
        assert_eq!(
            Error::from(e).reason_code(),
            Some(ReasonCode::SdsLookupFailed)
        );
    }
    assert_eq!(ReasonCode::SdsLookupFailed.code(), "24");
}

#[test]
fn several_devices_are_an_error() {
    let one: serde_json::Value = serde_json::from_str(&device_bundle("1", "P")).unwrap();
    let mut two = one.clone();
    let entry = one["entry"][0].clone();
    two["entry"].as_array_mut().unwrap().push(entry);
    let e = mhs::sds::parse_device(&two, "ABC123", "x").unwrap_err();
    assert!(
        matches!(e, SdsError::SeveralResults { count: 2, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_send_routed_by_sds_to_nowhere_fails_with_24_and_persists_nothing() {
    let addr = sds_server(Arc::default()).await;
    let s = Storage::new(Backend::Sqlite, None).await;
    let mut c = config("A-1", None);
    c.sds = Some(SdsConfig {
        base_url: format!("http://{addr}"),
        api_key: None,
        cache_ttl: Duration::from_secs(60),
    });
    let a = start(c, &s, system_clock()).await;
    let m = Outbound::gp2gp(
        mhs::Route::Sds {
            ods_code: "NONE".into(),
        },
        "RCMR_IN010000UK05",
        "C",
        ehr_request(1),
    );
    let e = a.send(m).await.unwrap_err();
    assert_eq!(e.reason_code(), Some(ReasonCode::SdsLookupFailed));
    assert_eq!(s.count("mhs_outbound").await, 0);
}
