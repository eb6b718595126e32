#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
//! A fake SDS serving the corpus answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Query, State};
use axum::response::IntoResponse;

pub fn corpus(name: &str) -> String {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/gp2gp/sds/"
    );
    std::fs::read_to_string(format!("{p}{name}")).unwrap()
}

pub fn device_bundle(asid: &str, party_key: &str) -> String {
    serde_json::json!({
        "resourceType": "Bundle", "type": "searchset", "total": 1,
        "entry": [{"resource": {
            "resourceType": "Device",
            "identifier": [
                {"system": "https://fhir.nhs.uk/Id/nhsSpineASID", "value": asid},
                {"system": "https://fhir.nhs.uk/Id/nhsMhsPartyKey", "value": party_key}
            ]
        }}]
    })
    .to_string()
}

/// Serves, per ODS code: ABC123 → the corpus's answer; NONE → no result; ERR → the
/// corpus's error; NOADDR → an endpoint without an address.
pub async fn sds_server(hits: Arc<AtomicUsize>) -> SocketAddr {
    async fn answer(
        State((hits, resource)): State<(Arc<AtomicUsize>, &'static str)>,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> axum::response::Response {
        hits.fetch_add(1, Ordering::SeqCst);
        let org = q.get("organization").cloned().unwrap_or_default();
        let ods = org.rsplit('|').next().unwrap_or_default().to_string();
        assert!(
            q.get("identifier")
                .unwrap()
                .starts_with("https://fhir.nhs.uk/Id/nhsServiceInteractionId|")
        );
        let json = |s: String| ([("content-type", "application/fhir+json")], s).into_response();
        match (ods.as_str(), resource) {
            ("ERR", _) => (
                http::StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "application/fhir+json")],
                corpus("sds_error_response.json"),
            )
                .into_response(),
            ("NONE", _) => json(corpus("sds_no_result_response.json")),
            (_, "Device") => json(device_bundle("918999198993", "ABC123-822104")),
            ("NOADDR", _) => json(corpus("sds_no_address_response.json")),
            _ => json(corpus("sds_response.json")),
        }
    }
    let app = axum::Router::new()
        .route(
            "/Device",
            axum::routing::get(answer).with_state((hits.clone(), "Device")),
        )
        .route(
            "/Endpoint",
            axum::routing::get(answer).with_state((hits, "Endpoint")),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}
