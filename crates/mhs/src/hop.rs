//! The receiving half of a forward-reliable hop, in pieces: what this MHS's inbound
//! endpoint does with a POSTed message, offered to anyone else who receives ebXML on
//! Spine's terms — Spine's own relay (the `spine` crate) is the other user.
//!
//! 1. [`read_message`]: the body, read up to the size limit (then refused), and parsed
//!    with its `Content-Type` ([`ebxml::Message::parse`]);
//! 2. [`check_header`]: what a forward-reliable message's header must hold — a CPAId, a
//!    ConversationId, a MessageId, an NHS service, an interaction id as the action, and a
//!    manifest that matches the parts. *Who* it is for (`eb:To`) is the caller's check:
//!    an MHS wants its own party key, a relay any party it can reach;
//! 3. the answers, on the same HTTP exchange: [`acknowledge`] (HTTP 200), [`error_list`]
//!    (an `eb:ErrorList`, HTTP 500: the sender must not send it again), [`fault`] (a
//!    `SOAP:Client` fault, HTTP 500, when the header could not be read) and
//!    [`server_fault`] (`SOAP:Server`, HTTP 500: "try again later", which senders retry).
//!
//! These functions neither log nor count: the caller knows what the event means.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ebxml::{
    CODE_CONTEXT_EBXML, Envelope, ErrorCode, ErrorDetail, Message, MessageHeader, ReplyIds,
    Severity, SoapFault,
};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;

use crate::time;

const XML: &str = "text/xml; charset=UTF-8";

/// A message as received: parsed, with the bytes and `Content-Type` it came with (what a
/// relay stores and passes on unchanged).
#[derive(Debug, Clone)]
pub struct Received {
    /// The message.
    pub message: Message,
    /// The HTTP body as received.
    pub body: Bytes,
    /// The HTTP `Content-Type` as received.
    pub content_type: String,
}

/// Reads and parses a POSTed message, refusing one over `limits.max_message_bytes` (by its
/// `Content-Length` at once, or as it is read) or without a `Content-Type`. The error's
/// [`ebxml::Error::error_code`] is the code to answer with ([`fault`]).
pub async fn read_message(
    headers: &HeaderMap,
    body: Body,
    limits: &ebxml::Limits,
) -> Result<Received, ebxml::Error> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let declared: Option<u64> = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if let Some(n) = declared
        && n > limits.max_message_bytes.saturating_mul(4)
    {
        return Err(ebxml::Error::MessageTooLarge {
            size: n,
            limit: limits.max_message_bytes,
        });
    }
    let body = read_body(body, limits.max_message_bytes, declared).await?;
    if content_type.is_empty() {
        return Err(ebxml::Error::MissingContentType);
    }
    let message = Message::parse(body.clone(), &content_type, limits)?;
    Ok(Received {
        message,
        body,
        content_type,
    })
}

async fn read_body(body: Body, limit: u64, declared: Option<u64>) -> Result<Bytes, ebxml::Error> {
    let mut body = body;
    // One allocation of the declared size (within the limit) rather than a buffer that
    // doubles, copying what it holds, a dozen times for a 4 MB message.
    let capacity = declared.unwrap_or(0).min(limit);
    let mut buf = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    let mut size: u64 = 0;
    // Read on past the limit (discarding) so that the sender finishes writing and sees the
    // answer, up to a hard stop.
    let hard_stop = limit.saturating_mul(4);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ebxml::Error::MalformedHttpRequest {
            reason: e.to_string(),
        })?;
        if let Ok(data) = frame.into_data() {
            size += data.len() as u64;
            if size <= limit {
                buf.extend_from_slice(&data);
            } else if size > hard_stop {
                break;
            }
        }
    }
    if size > limit {
        return Err(ebxml::Error::MessageTooLarge { size, limit });
    }
    Ok(Bytes::from(buf))
}

/// An `eb:Error` of severity `Error` in the ebXML code context.
pub fn invalid(code: ErrorCode, location: &str, description: String) -> ErrorDetail {
    ErrorDetail {
        code,
        severity: Severity::Error,
        code_context: CODE_CONTEXT_EBXML.into(),
        location: Some(location.into()),
        description: Some(description),
    }
}

/// What is wrong with a readable message's header and manifest, apart from `eb:To`
/// (the caller checks who it is for); empty when nothing is.
pub fn check_header(message: &Message) -> Vec<ErrorDetail> {
    let h = &message.envelope().message_header;
    let mut errors = Vec::new();
    if h.cpa_id.trim().is_empty() {
        errors.push(invalid(
            ErrorCode::ValueNotRecognized,
            "eb:MessageHeader/eb:CPAId",
            "the CPAId is empty".into(),
        ));
    }
    if h.service == ebxml::SERVICE_EBXML {
        errors.push(invalid(
            ErrorCode::NotSupported,
            "eb:MessageHeader/eb:Service",
            "asynchronous acknowledgments and errors are not accepted: answers come on the same HTTP exchange".into(),
        ));
    } else if !h.service.starts_with("urn:nhs:names:services:") {
        errors.push(invalid(
            ErrorCode::ValueNotRecognized,
            "eb:MessageHeader/eb:Service",
            format!("the service {:?} is not an NHS service", h.service),
        ));
    }
    if h.action.is_empty()
        || !h
            .action
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        errors.push(invalid(
            ErrorCode::ValueNotRecognized,
            "eb:MessageHeader/eb:Action",
            format!("the action {:?} is not an interaction id", h.action),
        ));
    }
    let id = &h.message_data.message_id;
    if id.trim().is_empty() || id.len() > 256 {
        errors.push(invalid(
            ErrorCode::ValueNotRecognized,
            "eb:MessageHeader/eb:MessageData/eb:MessageId",
            "the MessageId is empty or too long".into(),
        ));
    }
    if h.conversation_id.trim().is_empty() {
        errors.push(invalid(
            ErrorCode::ValueNotRecognized,
            "eb:MessageHeader/eb:ConversationId",
            "the ConversationId is empty".into(),
        ));
    }
    if let Err(e) = message.check_references() {
        errors.push(ErrorDetail::from_error(&e));
    }
    errors
}

/// A fresh id and timestamp for an answer sent at `now_ms`.
pub fn reply_ids(now_ms: i64) -> ReplyIds {
    ReplyIds {
        message_id: time::new_message_id(),
        timestamp: time::ebxml_timestamp(now_ms),
    }
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(http::header::CONTENT_TYPE, XML)], body).into_response()
}

/// `eb:Acknowledgment` of `received` (HTTP 200): the message is this hop's now.
pub fn acknowledge(received: &Envelope, ids: &ReplyIds) -> Response {
    xml(
        StatusCode::OK,
        ebxml::acknowledgment(received, ids).to_xml(),
    )
}

/// An `eb:ErrorList` answering `header` (HTTP 500): the message is refused for good.
pub fn error_list(header: &MessageHeader, ids: &ReplyIds, errors: Vec<ErrorDetail>) -> Response {
    xml(
        StatusCode::INTERNAL_SERVER_ERROR,
        ebxml::message_error(header, ids, errors).to_xml(),
    )
}

/// A `SOAP:Client` fault for a message whose header could not be read (HTTP 500).
pub fn fault(error: &ebxml::Error) -> Response {
    xml(
        StatusCode::INTERNAL_SERVER_ERROR,
        SoapFault::from_error(error).to_xml(),
    )
}

/// A `SOAP:Server` fault (HTTP 500): the message could not be taken now; senders retry.
pub fn server_fault(reason: &str) -> Response {
    let fault = SoapFault {
        fault_code: "SOAP:Server".into(),
        fault_string: "The message could not be stored; send it again later".into(),
        fault_actor: None,
        errors: vec![ebxml::FaultError {
            code_context: Some(CODE_CONTEXT_EBXML.into()),
            error_code: ErrorCode::DeliveryFailure.to_string(),
            severity: Some(Severity::Error.as_str().into()),
            location: None,
            description: Some(reason.to_string()),
        }],
    };
    xml(StatusCode::INTERNAL_SERVER_ERROR, fault.to_xml())
}
