//! NEMS and MESH over real HTTP: a PDS registration change becomes a change-of-GP event,
//! pushed to a subscriber's callback (retried on the clock when it fails) and pullable;
//! MESH mailboxes send, list, download, acknowledge and refuse what they should.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

/// A subscriber: records what it is sent, failing the first `fail` deliveries.
#[derive(Clone, Default)]
struct Callback {
    got: Arc<Mutex<Vec<Value>>>,
    fail: Arc<Mutex<u32>>,
}

async fn callback(fail: u32) -> (String, Callback) {
    let cb = Callback {
        fail: Arc::new(Mutex::new(fail)),
        ..Callback::default()
    };
    let state = cb.clone();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let mut fail = state.fail.lock().unwrap();
                if *fail > 0 {
                    *fail -= 1;
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                state
                    .got
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, cb)
}

/// Waits (bounded) until `check` holds; the bound only stops a broken test hanging.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

async fn subscribe(s: &Server, criteria: &str, endpoint: &str) -> (u16, Value) {
    let body = json!({"resourceType": "Subscription", "status": "requested", "criteria": criteria,
        "channel": {"type": "rest-hook", "endpoint": endpoint}});
    let r = s
        .http
        .post(format!("{}/nems/Subscription", s.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn change_gp(s: &Server, version: u32, patch: Value) {
    let r = s
        .http
        .patch(format!("{}/pds/Patient/9000000009", s.base))
        .header("content-type", "application/json-patch+json")
        .header("if-match", format!("W/\"{version}\""))
        .body(serde_json::to_vec(&patch).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn resource<'a>(bundle: &'a Value, ty: &str) -> &'a Value {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == ty)
        .unwrap()
}

async fn seed(s: &Server) {
    let p = json!([{"nhs_number": "9000000009", "family": "Smith", "given": ["Jane"], "gender": "female",
        "birth_date": "2010-10-22", "gp_ods": "B86041"}]);
    let r = s
        .http
        .post(format!("{}/pds/admin/patients", s.base))
        .json(&p)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn a_registration_and_a_suspension_reach_the_subscriber_as_change_of_gp_events() {
    let s = start().await;
    seed(&s).await;
    let (url, cb) = callback(0).await;
    let criteria = format!(
        "/Bundle?type=message&MessageDefinition.event=pds-change-of-gp-1&Organization.identifier={ODS}|B86041"
    );
    let (status, sub) = subscribe(&s, &criteria, &url).await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["status"], "active");
    // Someone watching another practice hears nothing.
    let (other_url, other) = callback(0).await;
    let criteria_c = format!(
        "/Bundle?MessageDefinition.event=pds-change-of-gp-1&Organization.identifier={ODS}|C12345"
    );
    assert_eq!(subscribe(&s, &criteria_c, &other_url).await.0, 201);

    // Registration elsewhere (B86041 → A82038).
    s.clock.advance(Duration::from_secs(60));
    change_gp(&s, 1, json!([{"op": "replace", "path": "/generalPractitioner", "value": [{"identifier": {"system": ODS, "value": "A82038"}}]}])).await;
    eventually("the registration event is delivered", async || {
        cb.got.lock().unwrap().len() == 1
    })
    .await;
    let event = cb.got.lock().unwrap()[0].clone();
    fhir::from_slice::<fhir::Bundle>(&serde_json::to_vec(&event).unwrap()).unwrap();
    assert_eq!(event["type"], "message");
    assert_eq!(event["meta"]["lastUpdated"], "2024-05-01T09:31:00.000Z");
    assert_eq!(
        resource(&event, "MessageHeader")["event"]["code"],
        "pds-change-of-gp-1"
    );
    assert_eq!(
        resource(&event, "Patient")["generalPractitioner"][0]["identifier"]["value"],
        "A82038"
    );
    assert_eq!(resource(&event, "EpisodeOfCare")["status"], "active");

    // Suspension (left A82038, registered nowhere): the B86041 subscriber is not told
    // (neither practice is B86041), so subscribe to A82038 too.
    let (url_a, cb_a) = callback(0).await;
    let criteria_a = format!(
        "/Bundle?MessageDefinition.event=pds-change-of-gp-1&Organization.identifier={ODS}|A82038"
    );
    assert_eq!(subscribe(&s, &criteria_a, &url_a).await.0, 201);
    s.clock.advance(Duration::from_secs(60));
    change_gp(
        &s,
        2,
        json!([{"op": "remove", "path": "/generalPractitioner"}]),
    )
    .await;
    eventually("the suspension event is delivered", async || {
        cb_a.got.lock().unwrap().len() == 1
    })
    .await;
    let event = cb_a.got.lock().unwrap()[0].clone();
    assert!(
        resource(&event, "Patient")
            .get("generalPractitioner")
            .is_none()
    );
    let episode = resource(&event, "EpisodeOfCare");
    assert_eq!(episode["status"], "finished");
    assert_eq!(
        episode["managingOrganization"]["identifier"]["value"],
        "A82038"
    );
    assert_eq!(event["meta"]["lastUpdated"], "2024-05-01T09:32:00.000Z");

    // Pull: both events, in order, with a next link.
    let r = s
        .http
        .get(format!("{}/nems/events?after=0", s.base))
        .send()
        .await
        .unwrap();
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["total"], 2);
    assert_eq!(
        resource(&page["entry"][0]["resource"], "EpisodeOfCare")["status"],
        "active"
    );
    assert_eq!(
        resource(&page["entry"][1]["resource"], "EpisodeOfCare")["status"],
        "finished"
    );
    assert!(page["link"][0]["url"].as_str().unwrap().contains("after=2"));
    fhir::from_slice::<fhir::Bundle>(&serde_json::to_vec(&page).unwrap()).unwrap();
    assert_eq!(cb.got.lock().unwrap().len(), 1);
    assert!(other.got.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failing_subscriber_is_retried_on_the_clock() {
    let s = start().await;
    seed(&s).await;
    let (url, cb) = callback(2).await;
    let criteria = "/Bundle?MessageDefinition.event=pds-change-of-gp-1&Patient.identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009";
    let (status, sub) = subscribe(&s, criteria, &url).await;
    assert_eq!(status, 201);
    let id = sub["id"].as_str().unwrap().to_string();
    change_gp(
        &s,
        1,
        json!([{"op": "remove", "path": "/generalPractitioner"}]),
    )
    .await;
    let nems = s.spine.nems.clone();
    eventually("the first attempt fails", async || {
        nems.delivery(1, &id).await.unwrap() == Some(("pending".into(), 1))
    })
    .await;
    s.clock.advance(Duration::from_secs(60));
    eventually("the second attempt fails", async || {
        nems.delivery(1, &id).await.unwrap() == Some(("pending".into(), 2))
    })
    .await;
    // The next retry waits twice as long: 60 s more is not enough.
    s.clock.advance(Duration::from_secs(60));
    tokio::task::yield_now().await;
    assert_eq!(
        nems.delivery(1, &id).await.unwrap(),
        Some(("pending".into(), 2))
    );
    s.clock.advance(Duration::from_secs(60));
    eventually("the third attempt delivers", async || {
        nems.delivery(1, &id).await.unwrap() == Some(("delivered".into(), 3))
    })
    .await;
    assert_eq!(cb.got.lock().unwrap().len(), 1);

    // Read and cancel the subscription.
    let r = s
        .http
        .get(format!("{}/nems/Subscription/{id}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.http
            .delete(format!("{}/nems/Subscription/{id}", s.base))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        s.http
            .get(format!("{}/nems/Subscription/{id}", s.base))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn bad_subscriptions_are_refused_with_an_operation_outcome() {
    let s = start().await;
    for (criteria, endpoint) in [
        ("/Bundle?type=message", "http://127.0.0.1:9/x"),
        (
            "/Bundle?MessageDefinition.event=pds-death-notification-1",
            "http://127.0.0.1:9/x",
        ),
        (
            "/Bundle?MessageDefinition.event=pds-change-of-gp-1",
            "mesh:X26",
        ),
        (
            "/Bundle?MessageDefinition.event=pds-change-of-gp-1&Patient.identifier=9000000008",
            "http://127.0.0.1:9/x",
        ),
    ] {
        let (status, v) = subscribe(&s, criteria, endpoint).await;
        assert_eq!(status, 400, "{criteria}");
        assert_eq!(error_code(&v), "INVALID_RESOURCE");
    }
}

async fn send(
    s: &Server,
    from: &str,
    to: &str,
    workflow: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = s
        .http
        .post(format!("{}/mesh/messageexchange/{from}/outbox", s.base))
        .header("mex-from", from)
        .header("mex-to", to)
        .header("mex-localid", "local-1")
        .header("content-type", "text/plain")
        .body(body);
    if let Some(w) = workflow {
        req = req.header("mex-workflowid", w);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn mesh_sends_lists_downloads_and_acknowledges() {
    let mut config = spine::Config::default();
    config.mesh.mailboxes = vec!["B86041OT001".into(), "A82038OT001".into()];
    config.mesh.max_message_bytes = 1000;
    let s = start_with(config, None).await;
    let mesh = |path: &str| format!("{}/mesh/messageexchange/{path}", s.base);

    let (status, v) = send(
        &s,
        "B86041OT001",
        "A82038OT001",
        Some("GPFED_CONSULT_REPORT"),
        b"hello".to_vec(),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let id = v["message_id"].as_str().unwrap().to_string();
    let (status, _) = send(
        &s,
        "B86041OT001",
        "A82038OT001",
        Some("OTHER_WORKFLOW"),
        b"two".to_vec(),
    )
    .await;
    assert_eq!(status, 202);

    let inbox: Value = s
        .http
        .get(mesh("A82038OT001/inbox"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inbox["messages"].as_array().unwrap().len(), 2);
    assert_eq!(inbox["messages"][0], id.as_str());
    let filtered: Value = s
        .http
        .get(mesh(
            "A82038OT001/inbox?workflow_filter=GPFED_CONSULT_REPORT",
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["messages"], json!([id]));
    let count: Value = s
        .http
        .get(mesh("A82038OT001/count"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(count["count"], 2);

    let r = s
        .http
        .get(mesh(&format!("A82038OT001/inbox/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["mex-from"], "B86041OT001");
    assert_eq!(r.headers()["mex-workflowid"], "GPFED_CONSULT_REPORT");
    assert_eq!(r.headers()["mex-localid"], "local-1");
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello");
    // Not in the sender's inbox.
    assert_eq!(
        s.http
            .get(mesh(&format!("B86041OT001/inbox/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let r = s
        .http
        .put(mesh(&format!("A82038OT001/inbox/{id}/status/acknowledged")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let inbox: Value = s
        .http
        .get(mesh("A82038OT001/inbox"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inbox["messages"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.http
            .get(mesh(&format!("A82038OT001/inbox/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        410
    );
    let track: Value = s
        .http
        .get(mesh(&format!("B86041OT001/outbox/tracking/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(track["status"], "acknowledged");

    // Refusals.
    let (status, v) = send(&s, "B86041OT001", "NOBODY", Some("W"), b"x".to_vec()).await;
    assert_eq!(
        (status, v["errorCode"].as_str().unwrap()),
        (417, "UNREGISTERED_RECIPIENT")
    );
    let (status, v) = send(&s, "B86041OT001", "A82038OT001", None, b"x".to_vec()).await;
    assert_eq!(
        (status, v["errorCode"].as_str().unwrap()),
        (400, "MISSING_HEADER")
    );
    let (status, v) = send(
        &s,
        "B86041OT001",
        "A82038OT001",
        Some("W"),
        vec![b'x'; 1001],
    )
    .await;
    assert_eq!(
        (status, v["errorCode"].as_str().unwrap()),
        (413, "MESSAGE_TOO_LARGE")
    );
    let (status, _) = send(&s, "UNKNOWN1", "A82038OT001", Some("W"), b"x".to_vec()).await;
    assert_eq!(status, 404);
    let count: Value = s
        .http
        .get(mesh("A82038OT001/count"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(count["count"], 1, "a refused message must not arrive");

    // Mailboxes can be added while running.
    assert_eq!(
        s.http
            .put(format!("{}/mesh/admin/mailboxes/X26OT001", s.base))
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        s.http.post(mesh("X26OT001")).send().await.unwrap().status(),
        200
    );
}
