//! SDS over real HTTP: the searches answer in the shapes of the real SDS FHIR API (the
//! conformance corpus), bad parameters get an OperationOutcome, and the admin endpoints
//! change the directory for good.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
const INT: &str = "https://fhir.nhs.uk/Id/nhsServiceInteractionId";
const DOCS: &str =
    "urn:nhs:names:services:gpconnect:documents:fhir:rest:search:documentreference-1";
const EHR_REQUEST: &str = "urn:nhs:names:services:gp2gp:RCMR_IN010000UK05";

async fn search(s: &Server, resource: &str, params: &[(&str, String)]) -> (u16, Value) {
    let r = s
        .http
        .get(format!("{}/sds/{resource}", s.base))
        .query(params)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(r.headers()["content-type"], "application/fhir+json");
    (status, r.json().await.unwrap())
}

fn params(ods: &str, interaction: &str) -> Vec<(&'static str, String)> {
    vec![
        ("organization", format!("{ODS}|{ods}")),
        ("identifier", format!("{INT}|{interaction}")),
    ]
}

#[tokio::test]
async fn endpoint_searches_answer_exactly_in_the_corpus_shape() {
    let s = start().await;
    let (status, bundle) = search(&s, "Endpoint", &params("A82038", DOCS)).await;
    assert_eq!(status, 200);
    // This endpoint is set up like the corpus's (no retries): the same members, nested the same.
    assert_eq!(skeleton(&bundle), skeleton(&corpus("sds_response.json")));
    let e = &bundle["entry"][0]["resource"];
    assert_eq!(e["managingOrganization"]["identifier"]["value"], "A82038");
    assert_eq!(e["identifier"][1]["value"], "A82038-822105");
    assert_eq!(
        e["extension"][1]["valueReference"]["identifier"]["value"],
        DOCS
    );
    // An empty address, as in the corpus's no-address answer.
    assert_eq!(e["address"], "");
    let parsed: fhir::Bundle = fhir::from_slice(&serde_json::to_vec(&bundle).unwrap()).unwrap();
    assert_eq!(parsed.total, Some(1));
    assert_eq!(
        parsed.entry[0].resource.as_ref().unwrap().resource_type(),
        "Endpoint"
    );

    // A GP2GP endpoint carries the whole reliability extension, and (the relay being on)
    // the relay's address: GP2GP goes MHS → Spine → MHS.
    let (_, bundle) = search(&s, "Endpoint", &params("B86041", EHR_REQUEST)).await;
    let e = &bundle["entry"][0]["resource"];
    assert_eq!(
        e["address"],
        format!("{}/reliablemessaging/forwardreliable", s.base)
    );
    let rel: Vec<&str> = e["extension"][0]["extension"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        rel,
        [
            "nhsMHSSyncReplyMode",
            "nhsMHSRetryInterval",
            "nhsMHSRetries",
            "nhsMHSPersistDuration",
            "nhsMHSDuplicateElimination",
            "nhsMHSAckRequested"
        ]
    );
    assert_eq!(e["extension"][0]["extension"][2]["valueInteger"], 2);
    assert_eq!(
        e["identifier"][2],
        json!({"system": "https://fhir.nhs.uk/Id/nhsMhsCPAId", "value": "S20001A000182"})
    );

    // By party key alone.
    let by_key = vec![
        ("identifier", format!("{INT}|{EHR_REQUEST}")),
        (
            "identifier",
            "https://fhir.nhs.uk/Id/nhsMhsPartyKey|B86041-822103".to_string(),
        ),
    ];
    let (status, bundle) = search(&s, "Endpoint", &by_key).await;
    assert_eq!(status, 200);
    assert_eq!(bundle["total"], 1);
}

#[tokio::test]
async fn without_the_relay_endpoints_answer_each_systems_own_address() {
    let config = spine::Config {
        relay: spine::relay::RelayConfig {
            enabled: false,
            ..spine::relay::RelayConfig::default()
        },
        ..spine::Config::default()
    };
    let s = start_with(config, None).await;
    let (_, bundle) = search(&s, "Endpoint", &params("B86041", EHR_REQUEST)).await;
    assert_eq!(
        bundle["entry"][0]["resource"]["address"],
        "http://127.0.0.1:8081/reliablemessaging/forwardreliable"
    );
    // Nor does the relay answer.
    assert_eq!(get(&s, "/spine/message-log").await.status(), 404);
}

async fn get(s: &Server, path: &str) -> reqwest::Response {
    s.http
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn with_the_relay_the_directory_keeps_each_systems_own_address() {
    let s = start().await;
    let org: Value = get(&s, "/sds/admin/organisations/B86041")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        org["systems"][0]["address"],
        "http://127.0.0.1:8081/reliablemessaging/forwardreliable"
    );
}

#[tokio::test]
async fn device_searches_give_the_asid_and_party_key() {
    let s = start().await;
    let (status, bundle) = search(&s, "Device", &params("B86041", EHR_REQUEST)).await;
    assert_eq!(status, 200);
    assert_eq!(bundle["type"], "searchset");
    assert_eq!(bundle["total"], 1);
    let d = &bundle["entry"][0]["resource"];
    assert_eq!(d["resourceType"], "Device");
    let ids: Vec<(&str, &str)> = d["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["system"].as_str().unwrap(), i["value"].as_str().unwrap()))
        .collect();
    assert!(ids.contains(&("https://fhir.nhs.uk/Id/nhsSpineASID", "200000000359")));
    assert!(ids.contains(&("https://fhir.nhs.uk/Id/nhsMhsPartyKey", "B86041-822103")));
    assert!(
        bundle["entry"][0]["fullUrl"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/sds/Device/", s.base))
    );
    fhir::from_slice::<fhir::Bundle>(&serde_json::to_vec(&bundle).unwrap()).unwrap();
}

#[tokio::test]
async fn nothing_matching_is_an_empty_searchset_like_the_corpus() {
    let s = start().await;
    for (ods, interaction) in [
        ("A82038", "urn:nhs:names:services:gp2gp:COPC_IN000001UK01"),
        ("Z99999", EHR_REQUEST),
    ] {
        for resource in ["Device", "Endpoint"] {
            let (status, bundle) = search(&s, resource, &params(ods, interaction)).await;
            assert_eq!(status, 200);
            assert_eq!(
                skeleton(&bundle),
                skeleton(&corpus("sds_no_result_response.json"))
            );
            assert_eq!(bundle["total"], 0);
        }
    }
}

#[tokio::test]
async fn bad_parameters_are_a_400_operation_outcome_like_the_corpus() {
    let s = start().await;
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("organization", format!("{ODS}|B86041"))],
        vec![("identifier", format!("{INT}|{EHR_REQUEST}"))],
        vec![
            ("organization", "B86041".into()),
            ("identifier", format!("{INT}|{EHR_REQUEST}")),
        ],
        vec![
            ("organization", format!("{ODS}|b86041!")),
            ("identifier", format!("{INT}|{EHR_REQUEST}")),
        ],
        vec![
            ("organization", format!("{ODS}|B86041")),
            ("identifier", format!("{INT}|")),
        ],
        vec![
            ("organization", format!("{ODS}|B86041")),
            ("identifier", format!("urn:other|{EHR_REQUEST}")),
        ],
        vec![
            ("organization", format!("{ODS}|B86041")),
            ("identifier", format!("{INT}|{EHR_REQUEST}")),
            ("colour", "red".into()),
        ],
    ];
    for (i, case) in cases.iter().enumerate() {
        let (status, outcome) = search(&s, "Device", case).await;
        assert_eq!(status, 400, "case {i}");
        assert_eq!(
            skeleton(&outcome),
            skeleton(&corpus("sds_error_response.json")),
            "case {i}"
        );
        assert_eq!(error_code(&outcome), "INVALID_SEARCH_DATA");
        let parsed: fhir::OperationOutcome =
            fhir::from_slice(&serde_json::to_vec(&outcome).unwrap()).unwrap();
        assert_eq!(parsed.issue[0].severity.as_deref(), Some("error"));
    }
}

#[tokio::test]
async fn the_admin_endpoints_add_change_and_remove_organisations() {
    let s = start().await;
    let url = format!("{}/sds/admin/organisations", s.base);
    let org = json!({"ods": "C12345", "name": "New Practice", "supplier": "Lloyd", "systems": [{
        "asid": "123456789012", "party_key": "C12345-000001", "address": "http://127.0.0.1:9/x",
        "interactions": [EHR_REQUEST]}]});
    let r = s.http.post(&url).json(&org).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = s.http.post(&url).json(&org).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let (_, bundle) = search(&s, "Device", &params("C12345", EHR_REQUEST)).await;
    assert_eq!(bundle["total"], 1);

    // Change: a second system for the same interaction (SDS then answers two).
    let mut changed = org.clone();
    changed["systems"].as_array_mut().unwrap().push(json!({"asid": "123456789013", "party_key": "C12345-000002", "interactions": [EHR_REQUEST]}));
    let r = s
        .http
        .put(format!("{url}/C12345"))
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, bundle) = search(&s, "Device", &params("C12345", EHR_REQUEST)).await;
    assert_eq!(bundle["total"], 2);
    let got: Value = s
        .http
        .get(format!("{url}/C12345"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["systems"].as_array().unwrap().len(), 2);

    // Wrong input changes nothing.
    let r = s
        .http
        .put(format!("{url}/C99999"))
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let mut bad = changed.clone();
    bad["systems"][1]["asid"] = json!("not-an-asid");
    let r = s
        .http
        .put(format!("{url}/C12345"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/fhir+json");
    let (_, bundle) = search(&s, "Device", &params("C12345", EHR_REQUEST)).await;
    assert_eq!(bundle["total"], 2);

    // Persisted: the directory in the database has it.
    assert_eq!(
        s.spine
            .sds
            .directory
            .get("C12345")
            .await
            .unwrap()
            .unwrap()
            .systems
            .len(),
        2
    );

    let r = s.http.delete(format!("{url}/C12345")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = s.http.delete(format!("{url}/C12345")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let (_, bundle) = search(&s, "Device", &params("C12345", EHR_REQUEST)).await;
    assert_eq!(bundle["total"], 0);
}
