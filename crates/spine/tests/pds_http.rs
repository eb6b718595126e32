//! PDS over real HTTP: read with an ETag, trace, patch the registration with If-Match, and
//! every refusal answered with the documented status and an OperationOutcome — and nothing
//! written by a refused update.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use spine::pds::PatientRecord;

const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

pub fn patient(nhs: &str, family: &str, gp: Option<&str>) -> PatientRecord {
    PatientRecord {
        nhs_number: nhs.into(),
        family: family.into(),
        given: vec!["Jane".into(), "Ann".into()],
        gender: "female".into(),
        birth_date: "2010-10-22".into(),
        address_lines: vec!["1 Trevelyan Square".into(), "Leeds".into()],
        postcode: Some("LS1 6AE".into()),
        gp_ods: gp.map(str::to_string),
        managing_ods: None,
        deceased: None,
        restricted: false,
        superseded_by: None,
    }
}

/// Valid NHS numbers: 9000000009, 9000000017, 9000000025, 9000000033, 9000000041, 9000000068.
async fn seeded() -> Server {
    let s = start().await;
    let mut restricted = patient("9000000025", "Sensitive", Some("B86041"));
    restricted.restricted = true;
    let mut deceased = patient("9000000033", "Gone", Some("B86041"));
    deceased.deceased = Some("2024-01-02T10:00:00+00:00".into());
    let mut old = patient("9000000041", "Smith", None);
    old.superseded_by = Some("9000000009".into());
    s.spine
        .pds
        .store
        .insert_many(&[
            patient("9000000009", "Smith", Some("B86041")),
            patient("9000000017", "Smythe", Some("A82038")),
            restricted,
            deceased,
            old,
        ])
        .await
        .unwrap();
    s
}

async fn get(s: &Server, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = s
        .http
        .get(format!("{}/pds/{path}", s.base))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap())
}

async fn patch(
    s: &Server,
    nhs: &str,
    if_match: Option<&str>,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = s
        .http
        .patch(format!("{}/pds/Patient/{nhs}", s.base))
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(body).unwrap());
    if let Some(m) = if_match {
        req = req.header("if-match", m);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap())
}

fn gp_patch(ods: &str) -> Value {
    json!([{"op": "replace", "path": "/generalPractitioner", "value": [{"identifier": {"system": ODS, "value": ods}}]}])
}

fn outcome(v: &Value) -> &str {
    fhir::from_slice::<fhir::OperationOutcome>(&serde_json::to_vec(v).unwrap()).unwrap();
    error_code(v)
}

#[tokio::test]
async fn a_patient_reads_with_an_etag_and_parses_as_fhir() {
    let s = seeded().await;
    let (status, headers, p) = get(&s, "Patient/9000000009").await;
    assert_eq!(status, 200);
    assert_eq!(headers["etag"], "W/\"1\"");
    assert_eq!(headers["content-type"], "application/fhir+json");
    let parsed: fhir::Patient = fhir::from_slice(&serde_json::to_vec(&p).unwrap()).unwrap();
    assert_eq!(parsed.nhs_number(), Some("9000000009"));
    assert_eq!(
        parsed.general_practitioner[0]
            .identifier
            .as_ref()
            .unwrap()
            .value
            .as_deref(),
        Some("B86041")
    );
    assert_eq!(parsed.address[0].postal_code.as_deref(), Some("LS1 6AE"));
    assert_eq!(p["meta"]["versionId"], "1");
    assert_eq!(p["meta"]["lastUpdated"], "2024-05-01T09:30:00.000Z");
    assert_eq!(p["meta"]["security"][0]["code"], "U");
}

#[tokio::test]
async fn wrong_numbers_are_400_unknown_ones_404_superseded_ones_point_to_the_current() {
    let s = seeded().await;
    for bad in ["9000000008", "900000000", "abcdefghij"] {
        let (status, _, v) = get(&s, &format!("Patient/{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(outcome(&v), "INVALID_RESOURCE_ID");
    }
    let (status, _, v) = get(&s, "Patient/9000000068").await;
    assert_eq!(status, 404);
    assert_eq!(outcome(&v), "RESOURCE_NOT_FOUND");
    let (status, headers, v) = get(&s, "Patient/9000000041").await;
    assert_eq!(status, 200);
    assert_eq!(v["id"], "9000000009");
    assert_eq!(
        headers["content-location"],
        format!("{}/pds/Patient/9000000009", s.base).as_str()
    );
}

#[tokio::test]
async fn restricted_patients_hide_address_and_practice_and_deceased_ones_say_so() {
    let s = seeded().await;
    let (_, _, p) = get(&s, "Patient/9000000025").await;
    assert_eq!(p["meta"]["security"][0]["code"], "R");
    assert!(p.get("address").is_none());
    assert!(p.get("generalPractitioner").is_none());
    let (_, _, p) = get(&s, "Patient/9000000033").await;
    assert_eq!(p["deceasedDateTime"], "2024-01-02T10:00:00+00:00");
    // A deceased patient cannot be registered anywhere new.
    let (status, _, v) = patch(&s, "9000000033", Some("W/\"1\""), &gp_patch("A82038")).await;
    assert_eq!(status, 400);
    assert_eq!(outcome(&v), "INVALID_UPDATE");
}

#[tokio::test]
async fn a_trace_finds_by_demographics_and_refuses_thin_searches() {
    let s = seeded().await;
    let (status, _, b) = get(
        &s,
        "Patient?family=smith&birthdate=eq2010-10-22&gender=female",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(b["type"], "searchset");
    // The superseded record is not a match; the current one is.
    assert_eq!(b["total"], 1);
    assert_eq!(b["entry"][0]["resource"]["id"], "9000000009");
    fhir::from_slice::<fhir::Bundle>(&serde_json::to_vec(&b).unwrap()).unwrap();
    let (_, _, b) = get(&s, "Patient?family=Sm*&address-postalcode=ls16ae").await;
    assert_eq!(b["total"], 2);
    let (_, _, b) = get(&s, "Patient?family=Smith&given=ann").await;
    assert_eq!(b["total"], 1);
    let (_, _, b) = get(&s, "Patient?family=Jones&birthdate=2010-10-22").await;
    assert_eq!(b["total"], 0);
    for thin in [
        "Patient?family=Smith",
        "Patient?gender=female&given=Jane",
        "Patient?family=Smith&birthdate=22-10-2010",
        "Patient?family=Smith&gender=female&shoe=9",
    ] {
        let (status, _, v) = get(&s, thin).await;
        assert_eq!(status, 400, "{thin}");
        assert_eq!(outcome(&v), "INVALID_SEARCH_DATA");
    }
    let (status, _, v) = get(&s, "Patient?family=Sm*&birthdate=2010-10-22&_max-results=1").await;
    assert_eq!(status, 400);
    assert_eq!(outcome(&v), "TOO_MANY_MATCHES");
}

#[tokio::test]
async fn a_patch_changes_the_registration_and_the_etag() {
    let s = seeded().await;
    s.clock.advance(std::time::Duration::from_secs(60));
    let (status, headers, p) = patch(&s, "9000000009", Some("W/\"1\""), &gp_patch("A82038")).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(headers["etag"], "W/\"2\"");
    assert_eq!(p["generalPractitioner"][0]["identifier"]["value"], "A82038");
    assert_eq!(p["meta"]["lastUpdated"], "2024-05-01T09:31:00.000Z");
    // PDS's {"patches": [...]} form, setting the managing organisation.
    let body = json!({"patches": [{"op": "add", "path": "/managingOrganization", "value": {"identifier": {"system": ODS, "value": "X26"}}}]});
    let (status, headers, p) = patch(&s, "9000000009", Some("W/\"2\""), &body).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(headers["etag"], "W/\"3\"");
    assert_eq!(p["managingOrganization"]["identifier"]["value"], "X26");
    // A suspension: no practice.
    let body = json!([{"op": "remove", "path": "/generalPractitioner"}]);
    let (status, _, p) = patch(&s, "9000000009", Some("W/\"3\""), &body).await;
    assert_eq!(status, 200);
    assert!(p.get("generalPractitioner").is_none());
}

#[tokio::test]
async fn refused_patches_get_their_status_and_write_nothing() {
    let s = seeded().await;
    let before = s.spine.pds.store.get("9000000009").await.unwrap().unwrap();
    let cases: Vec<(Option<&str>, Value, u16, &str)> = vec![
        // Stale or missing ETag.
        (
            Some("W/\"7\""),
            gp_patch("A82038"),
            412,
            "PRECONDITION_FAILED",
        ),
        (None, gp_patch("A82038"), 412, "PRECONDITION_FAILED"),
        // Changes nothing.
        (Some("W/\"1\""), gp_patch("B86041"), 400, "INVALID_UPDATE"),
        // Malformed patches.
        (
            Some("W/\"1\""),
            json!({"op": "replace"}),
            400,
            "INVALID_UPDATE",
        ),
        (Some("W/\"1\""), json!([]), 400, "INVALID_UPDATE"),
        (
            Some("W/\"1\""),
            json!([{"op": "explode", "path": "/gender"}]),
            400,
            "INVALID_UPDATE",
        ),
        // Touches something other than the registration.
        (
            Some("W/\"1\""),
            json!([{"op": "replace", "path": "/gender", "value": "male"}]),
            400,
            "INVALID_UPDATE",
        ),
        // The first operation is fine, the second fails: neither is kept.
        (
            Some("W/\"1\""),
            json!([
            {"op": "replace", "path": "/generalPractitioner", "value": [{"identifier": {"system": ODS, "value": "A82038"}}]},
            {"op": "test", "path": "/gender", "value": "male"}]),
            400,
            "INVALID_UPDATE",
        ),
        (
            Some("W/\"1\""),
            json!([
            {"op": "replace", "path": "/generalPractitioner", "value": [{"identifier": {"system": ODS, "value": "A82038"}}]},
            {"op": "replace", "path": "/birthDate", "value": "2001-01-01"}]),
            400,
            "INVALID_UPDATE",
        ),
        // Not an ODS code.
        (
            Some("W/\"1\""),
            gp_patch("not an ods code"),
            400,
            "INVALID_UPDATE",
        ),
    ];
    for (i, (etag, body, want, code)) in cases.into_iter().enumerate() {
        let (status, _, v) = patch(&s, "9000000009", etag, &body).await;
        assert_eq!(status, want, "case {i}: {v}");
        assert_eq!(outcome(&v), code, "case {i}");
    }
    let (status, _, v) = patch(&s, "9000000008", Some("W/\"1\""), &gp_patch("A82038")).await;
    assert_eq!((status, outcome(&v)), (400, "INVALID_RESOURCE_ID"));
    let (status, _, v) = patch(&s, "9000000068", Some("W/\"1\""), &gp_patch("A82038")).await;
    assert_eq!((status, outcome(&v)), (404, "RESOURCE_NOT_FOUND"));
    // Nothing half-written: the same record and version, and nothing for NEMS.
    assert_eq!(
        s.spine.pds.store.get("9000000009").await.unwrap().unwrap(),
        before
    );
    assert!(s.spine.pds.store.outbox(10).await.unwrap().is_empty());
    let (_, _, events) = (0, 0, s.spine.nems.events(0, 10).await.unwrap());
    assert!(events.is_empty());
}

#[tokio::test]
async fn over_the_rate_limit_is_429_until_the_next_second() {
    let mut config = spine::Config::default();
    config.pds.rate_limit_per_second = 3;
    let s = start_with(config, None).await;
    s.spine
        .pds
        .store
        .insert(&patient("9000000009", "Smith", None))
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(get(&s, "Patient/9000000009").await.0, 200);
    }
    let (status, headers, v) = get(&s, "Patient/9000000009").await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(outcome(&v), "TOO_MANY_REQUESTS");
    s.clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(get(&s, "Patient/9000000009").await.0, 200);
}
