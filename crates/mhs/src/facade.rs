//! The NHS MHS adaptor's REST facade, so a GP system built against it works unchanged:
//! `POST /` with `Interaction-Id`, `wait-for-response`, `Correlation-Id`, `Message-Id`,
//! `from-asid` and `ods-code` headers and a JSON body; `GET /healthcheck`. Inbound
//! messages can be pulled in the adaptor's inbound JSON shape: `GET /inbound` (204 when
//! none is waiting) then `POST /inbound/{message_id}/ack`.

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use tracing::Instrument;

use crate::{
    Attachment, Error, ExternalAttachment, MhsHandle, Outbound, OutboundState, Route, time,
};

#[derive(Debug, Deserialize)]
struct Body {
    payload: String,
    #[serde(default)]
    attachments: Vec<JsonAttachment>,
    #[serde(default)]
    external_attachments: Vec<JsonExternal>,
}

#[derive(Debug, Deserialize)]
struct JsonAttachment {
    content_type: String,
    #[serde(default)]
    is_base64: bool,
    #[serde(default)]
    description: String,
    payload: String,
    #[serde(default)]
    document_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct JsonExternal {
    message_id: String,
    #[serde(default)]
    document_id: Option<String>,
    #[serde(default)]
    description: String,
}

pub(crate) fn router(handle: MhsHandle) -> Router {
    // JSON escaping can make a message at Spine's limit bigger than the message itself;
    // the limits proper are checked on the ebXML message built from it.
    let body_limit = usize::try_from(
        handle
            .inner
            .config
            .limits
            .max_message_bytes
            .saturating_mul(4),
    )
    .unwrap_or(usize::MAX);
    Router::new()
        .route("/", axum::routing::post(post))
        .route(
            "/healthcheck",
            axum::routing::get(|| async { StatusCode::OK }),
        )
        .route("/inbound", axum::routing::get(pull))
        .route("/inbound/{message_id}/ack", axum::routing::post(ack))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(handle)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.into(),
    )
        .into_response()
}

/// GP2GP's interactions go under GP2GP's service; the adaptor's other callers name theirs.
fn service_for(interaction: &str) -> String {
    let gp2gp = ["RCMR_", "COPC_", "MCCI_"]
        .iter()
        .any(|p| interaction.starts_with(p));
    if gp2gp {
        ebxml::SERVICE_GP2GP.to_string()
    } else {
        "urn:nhs:names:services:psis".to_string()
    }
}

async fn post(State(h): State<MhsHandle>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(interaction) = header(&headers, "interaction-id").map(str::to_string) else {
        return text(
            StatusCode::BAD_REQUEST,
            "the Interaction-Id header is required",
        );
    };
    let json_type = header(&headers, "content-type")
        .map(|c| c.to_ascii_lowercase().starts_with("application/json"))
        .unwrap_or(false);
    if !json_type {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/json",
        );
    }
    if header(&headers, "wait-for-response").is_some_and(|w| w.eq_ignore_ascii_case("true")) {
        return text(
            StatusCode::BAD_REQUEST,
            "wait-for-response: true is not supported: GP2GP messages are asynchronous (send wait-for-response: false)",
        );
    }
    let Some(ods) = header(&headers, "ods-code").map(str::to_string) else {
        return text(
            StatusCode::BAD_REQUEST,
            "the ods-code header is required to find the receiving MHS in SDS",
        );
    };
    let conversation = header(&headers, "correlation-id")
        .map(str::to_string)
        .unwrap_or_else(time::new_message_id);
    let message_id = header(&headers, "message-id").map(str::to_string);
    let body: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("the JSON body cannot be read: {e}"),
            );
        }
    };
    let limits = h.inner.config.limits;
    if body.attachments.len() > limits.max_attachments {
        let e = ebxml::Error::TooManyAttachments {
            count: body.attachments.len(),
            limit: limits.max_attachments,
        };
        return text(StatusCode::BAD_REQUEST, e.to_string());
    }
    let outbound = Outbound {
        route: Route::Sds { ods_code: ods },
        service: service_for(&interaction),
        interaction_id: interaction,
        conversation_id: conversation.clone(),
        message_id,
        ref_to_message_id: None,
        payload: Bytes::from(body.payload),
        attachments: body
            .attachments
            .into_iter()
            .map(|a| Attachment {
                content_id: None,
                content_type: a.content_type,
                is_base64: a.is_base64,
                description: a.description,
                payload: Bytes::from(a.payload),
                document_id: a.document_id,
            })
            .collect(),
        external_attachments: body
            .external_attachments
            .into_iter()
            .map(|x| ExternalAttachment {
                message_id: x.message_id,
                document_id: x.document_id,
                description: x.description,
            })
            .collect(),
    };
    let span = tracing::info_span!("mhs.facade", conversation_id = %conversation);
    async {
        let id = match h.send(outbound).await {
            Ok(id) => id,
            Err(
                e @ (Error::Ebxml(_) | Error::InvalidMessage(_) | Error::DuplicateMessageId(_)),
            ) => {
                return text(StatusCode::BAD_REQUEST, e.to_string());
            }
            Err(e) => {
                let code = e
                    .reason_code()
                    .map(|c| format!(" (GP2GP reason code {})", c.code()))
                    .unwrap_or_default();
                return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}{code}"));
            }
        };
        let wait: Duration = h.inner.config.facade_wait;
        match h.wait_final(&id, wait).await {
            Ok(OutboundState::Delivered(_)) => {
                (StatusCode::ACCEPTED, [("Message-Id", id)]).into_response()
            }
            Ok(OutboundState::Failed(f)) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("message {id} was not delivered: {}", f.reason),
            ),
            Ok(other) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "message {id} is not acknowledged yet ({}); it is kept and retried",
                    other.name()
                ),
            ),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
    .instrument(span)
    .await
}

async fn pull(State(h): State<MhsHandle>) -> Response {
    match h.try_next_inbound().await {
        Ok(Some(m)) => match m.to_adaptor_json() {
            Ok(json) => (
                StatusCode::OK,
                [
                    ("Message-Id", m.message_id.clone()),
                    ("Correlation-Id", m.conversation_id().to_string()),
                    ("Interaction-Id", m.interaction_id().to_string()),
                ],
                axum::Json(json),
            )
                .into_response(),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn ack(State(h): State<MhsHandle>, Path(message_id): Path<String>) -> Response {
    match h.ack_inbound(&message_id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(Error::UnknownMessage(_)) => text(
            StatusCode::NOT_FOUND,
            format!("no inbound message {message_id}"),
        ),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
