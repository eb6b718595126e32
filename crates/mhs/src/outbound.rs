//! The sending side: persist, then deliver with retries.

use std::sync::Arc;

use bytes::Bytes;
use ebxml::{
    AttachmentInfo, Boundary, MessageData, MessageHeader, OutboundMessage, OutboundPart, Party,
    Reply,
};
use http_body_util::{BodyExt, Full};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::db::{self, OutboundRow};
use crate::state::{AfterFailure, InFlight, OutboundState};
use crate::{Error, Inner, Outbound, Route, time};

/// Builds the wire form of `message`, persists it, and wakes the sender.
pub(crate) async fn send(inner: &Arc<Inner>, message: Outbound) -> Result<String, Error> {
    if message.interaction_id.trim().is_empty() {
        return Err(Error::InvalidMessage("the interaction id is empty".into()));
    }
    if message.conversation_id.trim().is_empty() {
        return Err(Error::InvalidMessage("the conversation id is empty".into()));
    }
    let destination = match &message.route {
        Route::Direct(d) => d.clone(),
        Route::Sds { ods_code } => {
            let sds = inner.sds.as_ref().ok_or_else(|| {
                Error::Config("a message is routed by SDS but no SDS is configured".into())
            })?;
            sds.lookup(ods_code, &message.service, &message.interaction_id)
                .await?
        }
    };
    let message_id = message
        .message_id
        .clone()
        .unwrap_or_else(time::new_message_id);
    let span = tracing::info_span!("mhs.send", conversation_id = %message.conversation_id, message_id = %message_id, interaction = %message.interaction_id);
    async {
        if let Some(existing) = db::outbound(&inner.db, &message_id).await? {
            if existing.conversation_id == message.conversation_id
                && existing.interaction_id == message.interaction_id
            {
                tracing::info!("already accepted for sending; not sent twice");
                return Ok(message_id.clone());
            }
            return Err(Error::DuplicateMessageId(message_id.clone()));
        }
        let now = inner.clock.now_ms();
        let header = MessageHeader {
            from: Party::spine(inner.config.party_key.clone()),
            to: Party::spine(destination.party_key.clone()),
            cpa_id: destination.cpa_id.clone(),
            conversation_id: message.conversation_id.clone(),
            service: message.service.clone(),
            action: message.interaction_id.clone(),
            message_data: MessageData {
                message_id: message_id.clone(),
                timestamp: time::ebxml_timestamp(now),
                ref_to_message_id: message.ref_to_message_id.clone(),
                time_to_live: None,
            },
            duplicate_elimination: true,
        };
        let limits = inner.config.limits;
        let mut builder = OutboundMessage::builder(header)
            .reliable()
            .payload(format!("{}@spine.nhs.uk", time::new_message_id()), message.payload.clone());
        for a in &message.attachments {
            let content_id = a
                .content_id
                .clone()
                .unwrap_or_else(|| format!("{}@spine.nhs.uk", time::new_message_id()));
            let part = if a.is_base64 {
                OutboundPart::pre_encoded_base64(content_id, a.content_type.clone(), a.payload.clone())
            } else {
                OutboundPart::text(content_id, a.content_type.clone(), a.payload.clone())
            };
            let info = AttachmentInfo::parse(&a.description).unwrap_or_default();
            builder = builder.attachment(part, a.document_id.clone(), info);
        }
        for x in &message.external_attachments {
            let info = AttachmentInfo::parse(&x.description).unwrap_or_default();
            builder = builder.external_attachment(x.message_id.clone(), x.document_id.clone(), info);
        }
        let body = builder.build(&limits)?.into_body(Boundary::random())?;
        let content_type = body.content_type();
        let mut wire = Vec::with_capacity(message.payload.len() + 4096);
        body.write_to(&mut wire)?;
        if wire.len() as u64 > limits.max_message_bytes {
            return Err(Error::Ebxml(ebxml::Error::MessageTooLarge {
                size: wire.len() as u64,
                limit: limits.max_message_bytes,
            }));
        }
        let key = db::payload_key("out", &message_id);
        inner.payloads.put(&key, Bytes::from(wire)).await?;
        let persist = i64::try_from(destination.reliability.persist_duration.as_millis()).unwrap_or(i64::MAX);
        let inserted = db::insert_outbound(
            &inner.db,
            &db::NewOutbound {
                message_id: &message_id,
                conversation_id: &message.conversation_id,
                interaction_id: &message.interaction_id,
                address: &destination.address,
                content_type: &content_type,
                payload_key: &key,
                retries: i64::from(destination.reliability.retries),
                retry_interval_ms: i64::try_from(destination.reliability.retry_interval.as_millis()).unwrap_or(i64::MAX),
                created_at: now,
                expires_at: now.saturating_add(persist),
            },
        )
        .await?;
        if !inserted {
            return Err(Error::DuplicateMessageId(message_id.clone()));
        }
        tracing::info!(to = %destination.party_key, address = %destination.address, "persisted for sending");
        inner.outbox_wake.notify_one();
        Ok(message_id.clone())
    }
    .instrument(span)
    .await
}

/// Sends whatever is due, for as long as the MHS runs.
pub(crate) async fn worker(inner: Arc<Inner>) {
    let mut attempts = JoinSet::new();
    let mut stop = inner.stop.subscribe();
    loop {
        while attempts.try_join_next().is_some() {}
        let now = inner.clock.now_ms();
        let free = inner.config.max_in_flight.saturating_sub(attempts.len());
        let mut failed_query = false;
        if free > 0 {
            match db::due_outbound(&inner.db, now, free as i64).await {
                Ok(rows) => {
                    for row in rows {
                        if let Some(claimed) = claim(&inner, row, now).await {
                            attempts.spawn(attempt(inner.clone(), claimed));
                        }
                    }
                }
                Err(e) => {
                    failed_query = true;
                    tracing::warn!(error = %e, "cannot read the outbox; trying again shortly");
                }
            }
        }
        let wake = if failed_query {
            Some(now + 1_000)
        } else if attempts.len() >= inner.config.max_in_flight {
            None
        } else {
            db::next_outbound_wake(&inner.db)
                .await
                .unwrap_or(Some(now + 1_000))
        };
        let clock = inner.clock.clone();
        tokio::select! {
            _ = inner.outbox_wake.notified() => {}
            Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
            _ = async {
                match wake {
                    Some(t) if t > now => clock.sleep_until(t).await,
                    Some(_) => tokio::task::yield_now().await,
                    None => std::future::pending::<()>().await,
                }
            } => {}
            _ = stop.changed() => break,
        }
    }
}

/// Takes a due row for this process (the state moves to in-flight with a lease), or
/// records that it has run out of attempts.
async fn claim(inner: &Arc<Inner>, row: OutboundRow, now: i64) -> Option<OutboundRow> {
    let policy = row.policy();
    let flight = match row.state() {
        OutboundState::Pending(p) => p.start(),
        OutboundState::Retrying(r) => r.start(),
        OutboundState::InFlight(f) => match f.abandoned(now, &policy) {
            AfterFailure::Retry(r) => r.start(),
            AfterFailure::GiveUp(failed) => {
                let to = OutboundState::Failed(failed);
                finish(inner, &row, &to, now).await;
                return None;
            }
        },
        OutboundState::Delivered(_) | OutboundState::Failed(_) => return None,
    };
    let timeout = i64::try_from(inner.config.attempt_timeout.as_millis()).unwrap_or(i64::MAX);
    let lease = now.saturating_add(timeout.saturating_mul(2));
    let attempt = flight.attempt;
    match db::transition(
        &inner.db,
        &row,
        &OutboundState::InFlight(flight),
        lease,
        now,
    )
    .await
    {
        Ok(true) => Some(OutboundRow {
            state: "in_flight".into(),
            attempts: i64::from(attempt),
            ..row
        }),
        Ok(false) => None,
        Err(e) => {
            tracing::warn!(error = %e, message_id = %row.message_id, "cannot claim a message to send");
            None
        }
    }
}

/// Records a final or retry state, counts it, and tells waiters.
async fn finish(inner: &Arc<Inner>, row: &OutboundRow, to: &OutboundState, now: i64) {
    match db::transition(&inner.db, row, to, 0, now).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot record the outcome of a sending attempt; it will be retried");
            return;
        }
    }
    match to {
        OutboundState::Delivered(d) => {
            metrics::counter!("mhs_messages_sent_total").increment(1);
            tracing::info!(
                attempts = d.attempts,
                "delivered: the next MHS acknowledged it"
            );
            if let Err(e) = inner.payloads.delete(&row.payload_key).await {
                tracing::debug!(error = %e, "could not remove a delivered message's payload");
            }
        }
        OutboundState::Failed(f) => {
            metrics::counter!("mhs_messages_failed_total").increment(1);
            tracing::error!(reason = %f.reason, attempts = f.attempts, "failed: giving up on this message");
        }
        OutboundState::Retrying(r) => {
            tracing::warn!(error = %r.last_error, attempts = r.attempts, next_attempt_at = r.next_attempt_at, "not acknowledged; will retry");
            inner.outbox_wake.notify_one();
            return;
        }
        _ => return,
    }
    let _ = inner.finals.send(row.message_id.clone());
}

/// How one attempt ended.
#[derive(Debug)]
enum Outcome {
    Acknowledged,
    Transient(String),
    Rejected(String),
}

async fn attempt(inner: Arc<Inner>, row: OutboundRow) {
    let span = tracing::info_span!("mhs.attempt", conversation_id = %row.conversation_id, message_id = %row.message_id, interaction = %row.interaction_id, attempt = row.attempts);
    async {
        if row.attempts > 1 {
            metrics::counter!("mhs_messages_retried_total").increment(1);
        }
        let outcome = match inner.payloads.get(&row.payload_key).await {
            Ok(body) => post(&inner, &row, body).await,
            Err(e) => Outcome::Rejected(format!("the stored message cannot be read: {e}")),
        };
        let now = inner.clock.now_ms();
        let flight = InFlight {
            attempt: row.attempts_u32(),
        };
        let to = match outcome {
            Outcome::Acknowledged => OutboundState::Delivered(flight.acknowledged(now)),
            Outcome::Rejected(reason) => OutboundState::Failed(flight.rejected(reason)),
            Outcome::Transient(error) => match flight.transient(error, now, &row.policy()) {
                AfterFailure::Retry(r) => OutboundState::Retrying(r),
                AfterFailure::GiveUp(f) => OutboundState::Failed(f),
            },
        };
        finish(&inner, &row, &to, now).await;
    }
    .instrument(span)
    .await
}

async fn post(inner: &Arc<Inner>, row: &OutboundRow, body: Bytes) -> Outcome {
    let request = http::Request::post(&row.address)
        .header(http::header::CONTENT_TYPE, &row.content_type)
        .body(Full::new(body));
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Rejected(format!("the address {} is not usable: {e}", row.address));
        }
    };
    let timeout = inner.config.attempt_timeout;
    let exchange = async {
        let response = inner.http.request(request).await.map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        })?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), 1024 * 1024)
            .collect()
            .await
            .map_err(|e| format!("the answer could not be read: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    let (status, body) = tokio::select! {
        r = exchange => match r {
            Ok(x) => x,
            Err(e) => return Outcome::Transient(format!("no answer from {}: {e}", row.address)),
        },
        _ = inner.clock.sleep(timeout) => {
            return Outcome::Transient(format!("no answer from {} within {timeout:?}", row.address));
        }
    };
    classify(status, &body, &row.message_id, &inner.config.limits)
}

fn classify(
    status: http::StatusCode,
    body: &[u8],
    message_id: &str,
    limits: &ebxml::Limits,
) -> Outcome {
    match Reply::parse(body, limits) {
        Ok(Reply::Envelope(env)) => {
            if let Some(ack) = &env.acknowledgment {
                if ack.ref_to_message_id.trim() == message_id {
                    return Outcome::Acknowledged;
                }
                return Outcome::Transient(format!(
                    "the acknowledgment refers to {}, not to this message",
                    ack.ref_to_message_id
                ));
            }
            if let Some(list) = &env.error_list {
                let words: Vec<String> = list
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.code, e.description.clone().unwrap_or_default()))
                    .collect();
                let transient = status == http::StatusCode::SERVICE_UNAVAILABLE
                    || list.errors.iter().all(|e| {
                        e.code == ebxml::ErrorCode::DeliveryFailure
                            && e.severity == ebxml::Severity::Warning
                    });
                let text = format!(
                    "the receiving MHS answered with errors: {}",
                    words.join("; ")
                );
                return if transient {
                    Outcome::Transient(text)
                } else {
                    Outcome::Rejected(text)
                };
            }
            Outcome::Transient(format!(
                "HTTP {status}: the answer was neither an acknowledgment nor an error list"
            ))
        }
        Ok(Reply::Fault(fault)) => {
            let words: Vec<String> = fault
                .errors
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.error_code,
                        e.description.clone().unwrap_or_default()
                    )
                })
                .collect();
            let text = format!(
                "the receiving MHS answered with a SOAP fault ({}: {}) {}",
                fault.fault_code,
                fault.fault_string,
                words.join("; ")
            );
            if fault.fault_code.to_ascii_lowercase().contains("server") {
                Outcome::Transient(text)
            } else {
                Outcome::Rejected(text)
            }
        }
        Err(_) => {
            let code = status.as_u16();
            if (400..500).contains(&code) && code != 408 && code != 429 {
                Outcome::Rejected(format!("HTTP {status} from the receiving MHS"))
            } else {
                Outcome::Transient(format!("HTTP {status} without a readable acknowledgment"))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn header(id: &str) -> ebxml::Envelope {
        let h = MessageHeader {
            from: Party::spine("A-1"),
            to: Party::spine("B-2"),
            cpa_id: "CPA".into(),
            conversation_id: "C".into(),
            service: ebxml::SERVICE_GP2GP.into(),
            action: "RCMR_IN010000UK05".into(),
            message_data: MessageData {
                message_id: id.into(),
                timestamp: "t".into(),
                ref_to_message_id: None,
                time_to_live: None,
            },
            duplicate_elimination: true,
        };
        OutboundMessage::builder(h)
            .reliable()
            .build(&ebxml::Limits::default())
            .unwrap()
            .envelope()
            .clone()
    }

    fn ids() -> ebxml::ReplyIds {
        ebxml::ReplyIds {
            message_id: "R".into(),
            timestamp: "t".into(),
        }
    }

    #[test]
    fn an_acknowledgment_of_this_message_delivers_it() {
        let ack = ebxml::acknowledgment(&header("M1"), &ids()).to_xml();
        assert!(matches!(
            classify(
                http::StatusCode::OK,
                ack.as_bytes(),
                "M1",
                &Default::default()
            ),
            Outcome::Acknowledged
        ));
        assert!(matches!(
            classify(
                http::StatusCode::OK,
                ack.as_bytes(),
                "M2",
                &Default::default()
            ),
            Outcome::Transient(_)
        ));
    }

    #[test]
    fn an_error_list_rejects_and_a_server_fault_is_retried() {
        let detail = ebxml::ErrorDetail {
            code: ebxml::ErrorCode::ValueNotRecognized,
            severity: ebxml::Severity::Error,
            code_context: ebxml::CODE_CONTEXT_EBXML.into(),
            location: None,
            description: Some("wrong To".into()),
        };
        let env = ebxml::message_error(&header("M1").message_header, &ids(), vec![detail]).to_xml();
        assert!(
            matches!(classify(http::StatusCode::INTERNAL_SERVER_ERROR, env.as_bytes(), "M1", &Default::default()), Outcome::Rejected(r) if r.contains("wrong To"))
        );
        let mut fault = ebxml::SoapFault::from_error(&ebxml::Error::NoParts);
        assert!(matches!(
            classify(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                fault.to_xml().as_bytes(),
                "M1",
                &Default::default()
            ),
            Outcome::Rejected(_)
        ));
        fault.fault_code = "SOAP:Server".into();
        assert!(matches!(
            classify(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                fault.to_xml().as_bytes(),
                "M1",
                &Default::default()
            ),
            Outcome::Transient(_)
        ));
        assert!(matches!(
            classify(
                http::StatusCode::BAD_GATEWAY,
                b"",
                "M1",
                &Default::default()
            ),
            Outcome::Transient(_)
        ));
        assert!(matches!(
            classify(
                http::StatusCode::NOT_FOUND,
                b"nope",
                "M1",
                &Default::default()
            ),
            Outcome::Rejected(_)
        ));
    }
}
