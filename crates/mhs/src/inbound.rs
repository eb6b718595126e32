//! The receiving side: validate, de-duplicate, persist, acknowledge; then the inbox the
//! local consumer drains.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Router};
use bytes::Bytes;
use ebxml::{ErrorCode, ErrorDetail, Href, Message, TransferEncoding};
use http::{HeaderMap, StatusCode};
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::tls::PeerIdentity;
use crate::{Error, Inner, MhsHandle, db, hop};

/// An inbound message handed to the local consumer.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    /// `eb:MessageId`: the consumer's key for idempotency.
    pub message_id: String,
    /// How many times it has been handed out (1 the first time; more after a lease ran
    /// out or a release).
    pub delivery: u32,
    /// When this MHS accepted it (Unix ms).
    pub received_at: i64,
    /// The subject of the sender's TLS certificate, if it came over mutual TLS.
    pub peer: Option<String>,
    /// The message itself.
    pub message: Message,
}

impl InboundMessage {
    /// `eb:ConversationId`.
    pub fn conversation_id(&self) -> &str {
        &self.message.envelope().message_header.conversation_id
    }

    /// `eb:Action`, the interaction id.
    pub fn interaction_id(&self) -> &str {
        &self.message.envelope().message_header.action
    }

    /// The HL7 payload, decoded.
    pub fn payload(&self) -> Result<Bytes, Error> {
        match self.message.payload() {
            Some(p) => Ok(p.decoded()?),
            None => Ok(Bytes::new()),
        }
    }

    /// The message in the NHS MHS adaptor's inbound JSON shape.
    pub fn to_adaptor_json(&self) -> Result<AdaptorInbound, Error> {
        let parts = self.message.parts();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let ebxml = parts.first().map(|p| text(p.raw())).unwrap_or_default();
        let payload = match self.message.payload() {
            Some(p) => text(&p.decoded()?),
            None => String::new(),
        };
        let manifest = self.message.envelope().manifest.clone().unwrap_or_default();
        let description_of = |href: &Href| {
            manifest
                .references
                .iter()
                .find(|r| &r.href == href)
                .and_then(|r| r.description.as_ref())
                .map(|d| d.to_string())
                .unwrap_or_default()
        };
        let mut attachments = Vec::new();
        for part in self.message.attachments() {
            let content_id = part.content_id().unwrap_or_default().to_string();
            let is_base64 = part.transfer_encoding() == TransferEncoding::Base64;
            let payload = if is_base64 {
                part.raw()
                    .iter()
                    .filter(|b| !b.is_ascii_whitespace())
                    .map(|&b| b as char)
                    .collect()
            } else {
                text(part.raw())
            };
            attachments.push(AdaptorAttachment {
                description: description_of(&Href::Cid(content_id.clone())),
                content_id,
                content_type: part
                    .content_type()
                    .unwrap_or("text/plain")
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                is_base64,
                payload,
            });
        }
        let external_attachments = manifest
            .references
            .iter()
            .filter_map(|r| match &r.href {
                Href::Mid(id) => Some(AdaptorExternalAttachment {
                    document_id: r.id.clone(),
                    message_id: id.clone(),
                    title: r
                        .attachment()
                        .and_then(|a| a.filename.clone())
                        .map(|f| format!("\"{f}\"")),
                    description: r
                        .description
                        .as_ref()
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                }),
                _ => None,
            })
            .collect();
        Ok(AdaptorInbound {
            ebxml,
            payload,
            attachments,
            external_attachments,
        })
    }
}

/// An inbound message as the NHS MHS adaptor puts it on its inbound queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdaptorInbound {
    /// The SOAP envelope, as received.
    #[serde(rename = "ebXML")]
    pub ebxml: String,
    /// The HL7 payload.
    pub payload: String,
    /// Inline attachments.
    pub attachments: Vec<AdaptorAttachment>,
    /// Attachments sent as their own messages.
    pub external_attachments: Vec<AdaptorExternalAttachment>,
}

/// One inline attachment in [`AdaptorInbound`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdaptorAttachment {
    /// Its Content-Id.
    pub content_id: String,
    /// Its media type.
    pub content_type: String,
    /// Whether `payload` is base64.
    pub is_base64: bool,
    /// The manifest description.
    pub description: String,
    /// The content (base64 text when `is_base64`).
    pub payload: String,
}

/// One external attachment in [`AdaptorInbound`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdaptorExternalAttachment {
    /// The manifest reference's `eb:id`.
    pub document_id: Option<String>,
    /// The MessageId that carries it.
    pub message_id: String,
    /// The file name, quoted, as the adaptor gives it.
    pub title: Option<String>,
    /// The manifest description.
    pub description: String,
}

pub(crate) fn router(handle: MhsHandle) -> Router {
    Router::new()
        .route("/", axum::routing::post(receive))
        .route(
            "/healthcheck",
            axum::routing::get(|| async { StatusCode::OK }),
        )
        .with_state(handle)
}

fn soap_fault(error: &ebxml::Error) -> Response {
    metrics::counter!("mhs_messages_rejected_total", "code" => error.error_code().to_string())
        .increment(1);
    tracing::warn!(code = %error.error_code(), error = %error, "rejected an inbound message: SOAP fault");
    hop::fault(error)
}

fn server_fault(reason: &str) -> Response {
    tracing::error!(
        reason,
        "could not take an inbound message; the sender will retry"
    );
    hop::server_fault(reason)
}

/// What is wrong with a readable message, if anything: it must be for this MHS, and its
/// header must hold what forward-reliable messaging needs ([`hop::check_header`]).
fn validate(inner: &Inner, message: &Message) -> Vec<ErrorDetail> {
    let to = &message.envelope().message_header.to.id;
    let mut errors = Vec::new();
    if to.trim() != inner.config.party_key {
        errors.push(hop::invalid(
            ErrorCode::ValueNotRecognized,
            "eb:MessageHeader/eb:To/eb:PartyId",
            format!(
                "this MHS is {}, not {to}: the message was sent to the wrong party",
                inner.config.party_key
            ),
        ));
    }
    errors.extend(hop::check_header(message));
    errors
}

async fn receive(
    State(h): State<MhsHandle>,
    peer: Option<Extension<PeerIdentity>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let span = tracing::info_span!(
        "mhs.receive",
        conversation_id = tracing::field::Empty,
        message_id = tracing::field::Empty,
        interaction = tracing::field::Empty,
        peer = peer
            .as_ref()
            .and_then(|p| p.common_name.clone())
            .unwrap_or_default()
    );
    receive_in(h, peer.map(|p| p.0), headers, body)
        .instrument(span)
        .await
}

async fn receive_in(
    h: MhsHandle,
    peer: Option<PeerIdentity>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let inner = &h.inner;
    let hop::Received {
        message,
        body,
        content_type,
    } = match hop::read_message(&headers, body, &inner.config.limits).await {
        Ok(r) => r,
        Err(e) => return soap_fault(&e),
    };
    let header = message.envelope().message_header.clone();
    let span = tracing::Span::current();
    span.record("conversation_id", header.conversation_id.as_str());
    span.record("message_id", header.message_data.message_id.as_str());
    span.record("interaction", header.action.as_str());
    let errors = validate(inner, &message);
    if !errors.is_empty() {
        for e in &errors {
            metrics::counter!("mhs_messages_rejected_total", "code" => e.code.to_string())
                .increment(1);
            tracing::warn!(code = %e.code, location = e.location.as_deref().unwrap_or(""), description = e.description.as_deref().unwrap_or(""), "rejected an inbound message: ebXML error");
        }
        return hop::error_list(&header, &hop::reply_ids(inner.clock.now_ms()), errors);
    }
    let message_id = header.message_data.message_id.trim().to_string();
    let now = inner.clock.now_ms();
    let stored = async {
        // The bytes go under a key of their own, then the row claims the MessageId: a
        // duplicate finds the id taken and its bytes are removed again (rather than asking
        // first, which costs a query for every message that is not a duplicate).
        let key = db::payload_key(
            "in",
            &format!("{message_id}-{}", uuid::Uuid::new_v4().simple()),
        );
        inner.payloads.put(&key, body.clone()).await?;
        let keep =
            i64::try_from(inner.config.inbound_persist_duration.as_millis()).unwrap_or(i64::MAX);
        let inserted = db::insert_inbound(
            &inner.db,
            &db::NewInbound {
                message_id: &message_id,
                conversation_id: &header.conversation_id,
                interaction_id: &header.action,
                from_party: &header.from.id,
                peer: peer.as_ref().map(|p| p.subject.as_str()),
                content_type: &content_type,
                payload_key: &key,
                received_at: now,
                keep_until: now.saturating_add(keep),
            },
        )
        .await?;
        if inserted {
            inner.recent_inbound.keep(&key, message.clone(), body.len());
        } else if let Err(e) = inner.payloads.delete(&key).await {
            tracing::debug!(error = %e, key, "could not remove a duplicate's copy");
        }
        Ok::<bool, Error>(inserted)
    }
    .await;
    match stored {
        Ok(true) => {
            metrics::counter!("mhs_messages_received_total").increment(1);
            tracing::info!("received and persisted");
            inner.inbox_wake.notify_one();
        }
        Ok(false) => {
            metrics::counter!("mhs_duplicates_total").increment(1);
            tracing::info!("duplicate: acknowledged again, not delivered again");
        }
        Err(e) => return server_fault(&e.to_string()),
    }
    hop::acknowledge(message.envelope(), &hop::reply_ids(now))
}

// ---- the inbox ------------------------------------------------------------------------

pub(crate) async fn try_next(inner: &Arc<Inner>) -> Result<Option<InboundMessage>, Error> {
    let now = inner.clock.now_ms();
    let lease = i64::try_from(inner.config.inbound_lease.as_millis()).unwrap_or(i64::MAX);
    loop {
        let Some(row) = db::claim_inbound(&inner.db, now, now.saturating_add(lease)).await? else {
            return Ok(None);
        };
        if let Some(message) = inner.recent_inbound.take(&row.payload_key) {
            return Ok(Some(inbound_message(row, message)));
        }
        let body = match inner.payloads.get(&row.payload_key).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(message_id = %row.message_id, error = %e, "an inbound message's content is missing; it is skipped");
                db::ack_inbound(&inner.db, &row.message_id).await?;
                continue;
            }
        };
        let message = match Message::parse(body, &row.content_type, &inner.config.limits) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(message_id = %row.message_id, error = %e, "a stored inbound message cannot be read again; it is skipped");
                db::ack_inbound(&inner.db, &row.message_id).await?;
                continue;
            }
        };
        return Ok(Some(inbound_message(row, message)));
    }
}

fn inbound_message(row: db::InboundRow, message: Message) -> InboundMessage {
    InboundMessage {
        message_id: row.message_id,
        delivery: u32::try_from(row.deliveries).unwrap_or(u32::MAX),
        received_at: row.received_at,
        peer: row.peer,
        message,
    }
}

pub(crate) async fn next(inner: &Arc<Inner>) -> Result<InboundMessage, Error> {
    let mut stop = inner.stop.subscribe();
    loop {
        if *stop.borrow_and_update() {
            return Err(Error::ShutDown);
        }
        let notified = inner.inbox_wake.notified();
        if let Some(m) = try_next(inner).await? {
            // Another consumer may be waiting too.
            inner.inbox_wake.notify_one();
            return Ok(m);
        }
        let wake = db::next_inbound_wake(&inner.db).await?;
        let clock = inner.clock.clone();
        tokio::select! {
            _ = notified => {}
            _ = async {
                match wake {
                    Some(t) => clock.sleep_until(t).await,
                    None => std::future::pending::<()>().await,
                }
            } => {}
            _ = stop.changed() => return Err(Error::ShutDown),
        }
    }
}

pub(crate) async fn ack(inner: &Arc<Inner>, message_id: &str) -> Result<(), Error> {
    match db::ack_inbound(&inner.db, message_id).await? {
        Some(key) => {
            inner.recent_inbound.forget(&key);
            if let Err(e) = inner.payloads.delete(&key).await {
                tracing::debug!(error = %e, "could not remove a consumed message's content");
            }
            Ok(())
        }
        None => Err(Error::UnknownMessage(message_id.to_string())),
    }
}

/// Forgets consumed messages once their de-duplication window has passed.
pub(crate) async fn housekeeping(inner: Arc<Inner>) {
    loop {
        match db::purge_inbound(&inner.db, inner.clock.now_ms()).await {
            Ok(n) if n > 0 => tracing::debug!(
                forgotten = n,
                "inbound message ids past their persist duration"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot purge the inbox"),
        }
        inner.clock.sleep(std::time::Duration::from_secs(600)).await;
    }
}

/// Delivers inbound messages to a webhook: POST of the adaptor's JSON, acked on 2xx,
/// handed back and tried again later otherwise.
pub(crate) async fn webhook(handle: MhsHandle, url: String) {
    let inner = handle.inner.clone();
    loop {
        let message = match next(&inner).await {
            Ok(m) => m,
            Err(Error::ShutDown) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the inbox for the webhook");
                inner.clock.sleep(std::time::Duration::from_secs(5)).await;
                continue;
            }
        };
        let span = tracing::info_span!("mhs.webhook", conversation_id = %message.conversation_id(), message_id = %message.message_id);
        let delivered = async {
            let json = match message.to_adaptor_json().and_then(|j| {
                serde_json::to_vec(&j).map_err(|e| Error::InvalidMessage(e.to_string()))
            }) {
                Ok(j) => j,
                Err(e) => return Err(e.to_string()),
            };
            let request = http::Request::post(&url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .header("Message-Id", &message.message_id)
                .header("Correlation-Id", message.conversation_id())
                .header("Interaction-Id", message.interaction_id())
                .body(Full::new(Bytes::from(json)))
                .map_err(|e| e.to_string())?;
            let response = inner
                .http
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {}", response.status()))
            }
        }
        .instrument(span.clone())
        .await;
        let _enter = span.enter();
        match delivered {
            Ok(()) => {
                if let Err(e) = ack(&inner, &message.message_id).await {
                    tracing::warn!(error = %e, "delivered to the webhook but could not record it; it may be delivered again");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the webhook did not take the message; trying again later");
                let _ = db::release_inbound(&inner.db, &message.message_id).await;
                drop(_enter);
                inner.clock.sleep(std::time::Duration::from_secs(5)).await;
            }
        }
    }
}
