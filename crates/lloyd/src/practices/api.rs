//! A practice's own HTTP API, under `/practices/<ODS>`:
//!
//! | method and path | what |
//! |---|---|
//! | `GET /` | the practice: ODS, ASID, counts |
//! | `GET /patients?limit=` | registered patients |
//! | `POST /registrations` `{"nhsNumber": "…"}` | register a patient: PDS is updated, then GP2GP asks the old practice for the record (202 with the conversation) |
//! | `GET /transfers?nhsNumber=&limit=` | transfers, newest first |
//! | `GET /ehr-status/{conversationId}` | one transfer: state, every message with time and acknowledgement, any error code and its meaning |
//! | `POST /ehr-resend/{nhsNumber}` | ask again after a failed transfer |
//! | `GET /inbox?status=` | the integration inbox |
//! | `GET /inbox/{conversationId}` | one record in it (an audited read; `X-User` says who) |
//! | `POST /inbox/{conversationId}/accept` | file it |
//! | `POST /inbox/{conversationId}/reject` `{"reason": "wrong_patient"\|"failed_to_integrate", "note": "…"}` | reject it |
//!
//! Handlers are thin: they read the request, call the practice or its GP2GP driver, and map
//! errors to statuses in one place ([`ApiError`]).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Hosted, error};

/// An error, mapped to a status once.
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    Conflict(String),
    Upstream(String),
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest(m) => error(StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
            ApiError::Conflict(m) => error(StatusCode::CONFLICT, m),
            ApiError::Upstream(m) => error(StatusCode::BAD_GATEWAY, m),
            ApiError::Internal(m) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
}

impl From<practice::PracticeError> for ApiError {
    fn from(e: practice::PracticeError) -> Self {
        use practice::PracticeError as P;
        match e {
            P::UnknownPatient(_) | P::NoRecord(_) | P::UnknownInboxItem(_) => {
                ApiError::NotFound(e.to_string())
            }
            P::AlreadyDecided { .. } => ApiError::Conflict(e.to_string()),
            P::BadNhsNumber(_) | P::BadOds(..) | P::NoPatient => {
                ApiError::BadRequest(e.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<gp2gp::driver::DriverError> for ApiError {
    fn from(e: gp2gp::driver::DriverError) -> Self {
        use gp2gp::driver::DriverError as D;
        match e {
            D::BadNhsNumber(..) | D::BadOds(..) => ApiError::BadRequest(e.to_string()),
            D::UnknownTransfer(_) | D::NothingToResend(_) => ApiError::NotFound(e.to_string()),
            D::StillRunning(_) => ApiError::Conflict(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, ApiError>;

/// The routes of one practice (mounted under `/practices/<ODS>`).
pub fn router(hosted: Arc<Hosted>) -> Router {
    Router::new()
        .route("/", get(info))
        .route("/patients", get(patients))
        .route("/registrations", post(register))
        .route("/transfers", get(transfers))
        .route("/ehr-status/{conversation}", get(status))
        .route("/ehr-resend/{nhs}", post(resend))
        .route("/inbox", get(inbox))
        .route("/inbox/{conversation}", get(inbox_item))
        .route("/inbox/{conversation}/accept", post(accept))
        .route("/inbox/{conversation}/reject", post(reject))
        .with_state(hosted)
}

/// `GET /practices`: every practice here.
pub async fn list_practices(State(all): State<Arc<Vec<Arc<Hosted>>>>) -> Json<Value> {
    Json(json!({
        "practices": all.iter().map(|h| json!({"ods": h.ods, "asid": h.asid, "url": format!("{}/practices/{}", h.base_url, h.ods)})).collect::<Vec<_>>()
    }))
}

async fn info(State(h): State<Arc<Hosted>>) -> Result<Json<Value>> {
    let counts = h.driver.counts().await?;
    Ok(Json(json!({
        "ods": h.ods,
        "asid": h.asid,
        "transfers": counts.iter().map(|(role, phase, n)| json!({"role": role, "phase": phase, "count": n})).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn patients(State(h): State<Arc<Hosted>>, Query(q): Query<Limit>) -> Result<Json<Value>> {
    let all = h.practice.patients().await?;
    let limit = q.limit.unwrap_or(100).min(10_000);
    Ok(Json(json!({
        "total": all.len(),
        "patients": all.into_iter().take(limit).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationBody {
    nhs_number: String,
}

/// Registers a patient who has moved here: PDS first (the registration is what makes this
/// practice the patient's current one, which the old practice checks), then the practice's
/// own list, then the GP2GP request to the old practice.
async fn register(
    State(h): State<Arc<Hosted>>,
    body: Option<Json<RegistrationBody>>,
) -> Result<Response> {
    let Some(Json(body)) = body else {
        return Err(ApiError::BadRequest(
            "send JSON like {\"nhsNumber\": \"9000000009\"}".into(),
        ));
    };
    let nhs = nhsid::NhsNumber::parse(body.nhs_number.trim())
        .map_err(|e| ApiError::BadRequest(format!("{}: {e}", body.nhs_number)))?
        .as_string();
    let pds = format!("{}/pds/Patient/{nhs}", h.base_url);
    let http = reqwest::Client::new();
    let answer = http
        .get(&pds)
        .header("X-Request-ID", uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .map_err(|e| ApiError::Upstream(format!("PDS at {pds}: {e}")))?;
    if answer.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(ApiError::NotFound(format!(
            "{nhs} is not on PDS: trace the patient first"
        )));
    }
    if !answer.status().is_success() {
        return Err(ApiError::Upstream(format!(
            "PDS answered {}",
            answer.status()
        )));
    }
    let etag = answer
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| ApiError::Upstream("PDS gave no ETag".into()))?;
    let patient: Value = answer
        .json()
        .await
        .map_err(|e| ApiError::Upstream(format!("PDS: {e}")))?;
    let old = patient["generalPractitioner"][0]["identifier"]["value"]
        .as_str()
        .map(str::to_ascii_uppercase);
    if old.as_deref() == Some(h.ods.as_str()) {
        return Err(ApiError::Conflict(format!(
            "{nhs} is already registered at {} on PDS",
            h.ods
        )));
    }
    let patch = json!([{"op": "replace", "path": "/generalPractitioner", "value": [
        {"type": "Organization", "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": h.ods}}
    ]}]);
    let patched = http
        .patch(&pds)
        .header("X-Request-ID", uuid::Uuid::new_v4().to_string())
        .header(reqwest::header::CONTENT_TYPE, "application/json-patch+json")
        .header(reqwest::header::IF_MATCH, etag)
        .body(patch.to_string())
        .send()
        .await
        .map_err(|e| ApiError::Upstream(format!("PDS at {pds}: {e}")))?;
    if !patched.status().is_success() {
        let status = patched.status();
        let text = patched.text().await.unwrap_or_default();
        return Err(ApiError::Upstream(format!(
            "PDS refused the registration ({status}): {text}"
        )));
    }
    let name = &patient["name"][0];
    let registration = practice::Registration {
        nhs_number: nhs.clone(),
        family: name["family"].as_str().map(str::to_string),
        given: name["given"][0].as_str().map(str::to_string),
        birth_date: patient["birthDate"].as_str().map(str::to_string),
        gender: patient["gender"].as_str().map(str::to_string),
        postcode: patient["address"][0]["postalCode"]
            .as_str()
            .map(str::to_string),
    };
    h.practice.register(&registration).await?;
    let Some(old) = old else {
        return Ok((
            StatusCode::CREATED,
            Json(json!({"nhsNumber": nhs, "transfer": null,
                "note": "no previous practice on PDS: nothing to transfer"})),
        )
            .into_response());
    };
    let conversation = h.driver.request(&nhs, &old).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "nhsNumber": nhs,
            "from": old,
            "conversationId": conversation,
            "status": format!("/practices/{}/ehr-status/{conversation}", h.ods),
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransferQuery {
    nhs_number: Option<String>,
    limit: Option<i64>,
}

async fn transfers(
    State(h): State<Arc<Hosted>>,
    Query(q): Query<TransferQuery>,
) -> Result<Json<Value>> {
    let list = h
        .driver
        .transfers(q.nhs_number.as_deref(), q.limit.unwrap_or(100))
        .await?;
    Ok(Json(json!({ "transfers": list })))
}

async fn status(
    State(h): State<Arc<Hosted>>,
    Path(conversation): Path<String>,
) -> Result<Json<gp2gp::driver::TransferStatus>> {
    Ok(Json(h.driver.status(&conversation).await?))
}

async fn resend(State(h): State<Arc<Hosted>>, Path(nhs): Path<String>) -> Result<Response> {
    let conversation = h.driver.resend(&nhs).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"conversationId": conversation,
            "status": format!("/practices/{}/ehr-status/{conversation}", h.ods)})),
    )
        .into_response())
}

#[derive(Deserialize)]
struct InboxQuery {
    status: Option<String>,
}

async fn inbox(State(h): State<Arc<Hosted>>, Query(q): Query<InboxQuery>) -> Result<Json<Value>> {
    let status = match q.status.as_deref() {
        None => None,
        Some("pending") => Some(practice::InboxStatus::Pending),
        Some("accepted") => Some(practice::InboxStatus::Accepted),
        Some("rejected") => Some(practice::InboxStatus::Rejected),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "status '{other}' is not one of pending, accepted, rejected"
            )));
        }
    };
    Ok(Json(json!({ "inbox": h.practice.inbox(status).await? })))
}

fn user(headers: &HeaderMap) -> Result<String> {
    headers
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::BadRequest(
                "say who you are in the X-User header: every read and decision is audited".into(),
            )
        })
}

async fn inbox_item(
    State(h): State<Arc<Hosted>>,
    Path(conversation): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    let who = user(&headers)?;
    let item =
        h.practice.inbox_item(&conversation).await?.ok_or_else(|| {
            ApiError::NotFound(format!("nothing in the inbox for {conversation}"))
        })?;
    let record = h.practice.inbox_record(&conversation, &who).await?;
    Ok(Json(json!({ "item": item, "record": record })))
}

async fn accept(
    State(h): State<Arc<Hosted>>,
    Path(conversation): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    let who = user(&headers)?;
    let decision = h.practice.accept(&conversation, &who).await?;
    h.driver.tick().await?;
    Ok(Json(
        json!({ "conversationId": conversation, "decision": decision }),
    ))
}

#[derive(Deserialize)]
struct RejectBody {
    reason: practice::Rejection,
    #[serde(default)]
    note: String,
}

async fn reject(
    State(h): State<Arc<Hosted>>,
    Path(conversation): Path<String>,
    headers: HeaderMap,
    body: Option<Json<RejectBody>>,
) -> Result<Json<Value>> {
    let who = user(&headers)?;
    let Some(Json(body)) = body else {
        return Err(ApiError::BadRequest(
            "send JSON like {\"reason\": \"wrong_patient\", \"note\": \"…\"} (reason: wrong_patient or failed_to_integrate)".into(),
        ));
    };
    let decision = h
        .practice
        .reject(&conversation, &who, body.reason, &body.note)
        .await?;
    h.driver.tick().await?;
    Ok(Json(
        json!({ "conversationId": conversation, "decision": decision }),
    ))
}
