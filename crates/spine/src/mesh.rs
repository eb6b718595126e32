//! MESH, Message Exchange for Social Care and Health: store-and-forward mailboxes.
//!
//! A mailbox (e.g. `B86041OT001`) belongs to an organisation. A sender posts a message to
//! its own outbox naming the recipient mailbox and a workflow id (`GPFED_CONSULT_REPORT` for
//! GP Connect Send Document…); the message waits in the recipient's inbox until the
//! recipient downloads it and acknowledges it, which removes it from the inbox. Bodies are
//! kept in the payload store (`mesh/{message id}`); the index is the `mesh_*` tables.
//!
//! Paths follow the MESH API under `/messageexchange/{mailbox}`:
//! - `POST …` — handshake (the mailbox exists);
//! - `POST …/outbox` — send: headers `mex-To`, `mex-WorkflowID`, optional `mex-From`,
//!   `mex-Subject`, `mex-LocalID`, `mex-FileName`; body up to `[mesh] max_message_bytes`;
//!   answers 202 `{"message_id"}`;
//! - `GET …/inbox` — ids waiting, oldest first (optional `workflow_filter`);
//!   `GET …/count`;
//! - `GET …/inbox/{id}` — download: the body, with the `mex-*` headers;
//! - `PUT …/inbox/{id}/status/acknowledged` — acknowledge;
//! - `GET …/outbox/tracking/{id}` — where a sent message is.
//!
//! Mailboxes are created from `[mesh] mailboxes` at start or with
//! `PUT /admin/mailboxes/{mailbox}`. Errors answer `{"errorEvent", "errorCode",
//! "errorDescription"}` with a 4xx status.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::json;
use store::sqlx::{self, Row};
use store::{Database, Migration, PayloadStore};

use crate::error::Error;

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "mailboxes and messages",
    sqlite: "CREATE TABLE mesh_mailboxes (id TEXT PRIMARY KEY, ods TEXT, created_ms BIGINT NOT NULL);
             CREATE TABLE mesh_messages (
                id TEXT PRIMARY KEY, sender TEXT NOT NULL, recipient TEXT NOT NULL, workflow_id TEXT NOT NULL,
                subject TEXT, local_id TEXT, file_name TEXT, content_type TEXT NOT NULL, size BIGINT NOT NULL,
                status TEXT NOT NULL, created_ms BIGINT NOT NULL, acked_ms BIGINT);
             CREATE INDEX mesh_messages_inbox ON mesh_messages (recipient, status, created_ms)",
    postgres: "CREATE TABLE mesh_mailboxes (id TEXT PRIMARY KEY, ods TEXT, created_ms BIGINT NOT NULL);
             CREATE TABLE mesh_messages (
                id TEXT PRIMARY KEY, sender TEXT NOT NULL, recipient TEXT NOT NULL, workflow_id TEXT NOT NULL,
                subject TEXT, local_id TEXT, file_name TEXT, content_type TEXT NOT NULL, size BIGINT NOT NULL,
                status TEXT NOT NULL, created_ms BIGINT NOT NULL, acked_ms BIGINT);
             CREATE INDEX mesh_messages_inbox ON mesh_messages (recipient, status, created_ms)",
},
Migration {
    version: 2,
    description: "arrival order for messages sent in the same millisecond",
    sqlite: "ALTER TABLE mesh_messages ADD COLUMN seq BIGINT NOT NULL DEFAULT 0",
    postgres: "ALTER TABLE mesh_messages ADD COLUMN seq BIGINT NOT NULL DEFAULT 0",
}];

/// `[mesh]` configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshConfig {
    /// The largest message body accepted, in bytes (default 100 MB, MESH's chunk size).
    #[serde(default = "default_max")]
    pub max_message_bytes: usize,
    /// Mailboxes created at start.
    #[serde(default)]
    pub mailboxes: Vec<String>,
}

fn default_max() -> usize {
    100 * 1024 * 1024
}

impl Default for MeshConfig {
    fn default() -> MeshConfig {
        MeshConfig {
            max_message_bytes: default_max(),
            mailboxes: Vec::new(),
        }
    }
}

/// Most ids one inbox listing returns.
pub const INBOX_PAGE: i64 = 500;

/// What the MESH router needs.
#[derive(Debug, Clone)]
pub struct MeshState {
    db: Database,
    payloads: PayloadStore,
    clock: clock::SharedClock,
    config: Arc<MeshConfig>,
}

/// A MESH error: the crate's error in MESH's JSON shape.
#[derive(Debug)]
pub struct MeshError {
    event: &'static str,
    error: Error,
}

impl From<Error> for MeshError {
    fn from(error: Error) -> MeshError {
        MeshError {
            event: "MESH",
            error,
        }
    }
}

impl From<store::sqlx::Error> for MeshError {
    fn from(e: store::sqlx::Error) -> MeshError {
        Error::from(e).into()
    }
}

impl IntoResponse for MeshError {
    fn into_response(self) -> Response {
        let status = match &self.error {
            // MESH answers an unknown recipient or workflow with 417.
            Error::BadRequest {
                code: "UNREGISTERED_RECIPIENT",
                ..
            } => StatusCode::EXPECTATION_FAILED,
            e => e.status(),
        };
        let code = match &self.error {
            Error::BadRequest { code, .. } => *code,
            Error::NotFound(_) => "NOT_FOUND",
            Error::TooLarge(_) => "MESSAGE_TOO_LARGE",
            Error::Conflict(_) => "GONE",
            _ => "INTERNAL_ERROR",
        };
        let status = if code == "GONE" {
            StatusCode::GONE
        } else {
            status
        };
        if status.is_server_error() {
            tracing::error!(error = %self.error, "MESH request failed");
        }
        (status, Json(json!({"errorEvent": self.event, "errorCode": code, "errorDescription": self.error.to_string()}))).into_response()
    }
}

type MeshResult<T> = std::result::Result<T, MeshError>;

fn valid_mailbox(id: &str) -> bool {
    (1..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl MeshState {
    /// MESH in `db` with bodies in `payloads`; creates the configured mailboxes.
    pub async fn open(
        db: Database,
        payloads: PayloadStore,
        clock: clock::SharedClock,
        config: MeshConfig,
    ) -> crate::Result<MeshState> {
        db.migrate("mesh", MIGRATIONS).await?;
        let state = MeshState {
            db,
            payloads,
            clock,
            config: Arc::new(config),
        };
        for m in &state.config.mailboxes {
            state.create_mailbox(m, None).await?;
        }
        Ok(state)
    }

    /// Creates a mailbox (no change if it exists).
    pub async fn create_mailbox(&self, id: &str, ods: Option<&str>) -> crate::Result<()> {
        if !valid_mailbox(id) {
            return Err(Error::bad_request(
                "INVALID_MAILBOX",
                format!("'{id}' is not a mailbox id (1 to 20 letters and digits)"),
            ));
        }
        sqlx::query("INSERT INTO mesh_mailboxes (id, ods, created_ms) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
            .bind(id)
            .bind(ods.map(str::to_string))
            .bind(self.clock.now_ms())
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    async fn mailbox_exists(&self, id: &str) -> crate::Result<bool> {
        Ok(sqlx::query("SELECT id FROM mesh_mailboxes WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
            .is_some())
    }

    async fn require_mailbox(&self, id: &str) -> MeshResult<()> {
        if self.mailbox_exists(id).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("mailbox {id} does not exist")).into())
        }
    }
}

/// The MESH service.
pub fn router(state: MeshState) -> Router {
    let limit = state.config.max_message_bytes.saturating_add(1);
    Router::new()
        .route("/messageexchange/{mailbox}", post(handshake))
        .route(
            "/messageexchange/{mailbox}/outbox",
            post(send).layer(DefaultBodyLimit::max(limit)),
        )
        .route("/messageexchange/{mailbox}/inbox", get(inbox))
        .route("/messageexchange/{mailbox}/count", get(count))
        .route("/messageexchange/{mailbox}/inbox/{id}", get(download))
        .route(
            "/messageexchange/{mailbox}/inbox/{id}/status/acknowledged",
            put(acknowledge),
        )
        .route(
            "/messageexchange/{mailbox}/outbox/tracking/{id}",
            get(tracking),
        )
        .route("/admin/mailboxes/{mailbox}", put(admin_create))
        .with_state(state)
}

async fn handshake(
    State(state): State<MeshState>,
    Path(mailbox): Path<String>,
) -> MeshResult<Json<serde_json::Value>> {
    state.require_mailbox(&mailbox).await?;
    Ok(Json(json!({"mailboxId": mailbox})))
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

async fn send(
    State(state): State<MeshState>,
    Path(mailbox): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> MeshResult<Response> {
    let fail = |error: Error| MeshError {
        event: "SEND",
        error,
    };
    state
        .require_mailbox(&mailbox)
        .await
        .map_err(|e| MeshError { event: "SEND", ..e })?;
    let missing = |h: &str| {
        fail(Error::bad_request(
            "MISSING_HEADER",
            format!("the {h} header is required"),
        ))
    };
    let to = header_text(&headers, "mex-to").ok_or_else(|| missing("mex-To"))?;
    let workflow =
        header_text(&headers, "mex-workflowid").ok_or_else(|| missing("mex-WorkflowID"))?;
    if let Some(from) = header_text(&headers, "mex-from")
        && from != mailbox
    {
        return Err(fail(Error::bad_request(
            "SENDER_MISMATCH",
            format!("mex-From {from} is not this mailbox ({mailbox})"),
        )));
    }
    if header_text(&headers, "mex-chunk-range").is_some_and(|r| r != "1:1") {
        return Err(fail(Error::bad_request(
            "CHUNKING_UNSUPPORTED",
            "chunked messages are not supported: send one part of at most max_message_bytes",
        )));
    }
    if body.len() > state.config.max_message_bytes {
        return Err(fail(Error::TooLarge(format!(
            "the message is {} bytes; the limit is {}",
            body.len(),
            state.config.max_message_bytes
        ))));
    }
    if !state.mailbox_exists(&to).await.map_err(fail)? {
        return Err(fail(Error::bad_request(
            "UNREGISTERED_RECIPIENT",
            format!("mailbox {to} is not registered"),
        )));
    }
    let id = format!(
        "{}_{}",
        state.clock.now_ms(),
        uuid::Uuid::new_v4().simple().to_string()[..12].to_uppercase()
    );
    let content_type = header_text(&headers, header::CONTENT_TYPE.as_str())
        .unwrap_or_else(|| "application/octet-stream".into());
    let size = i64::try_from(body.len()).unwrap_or(i64::MAX);
    // The body first: a message is only listed once its body is safely stored.
    state
        .payloads
        .put(&format!("mesh/{id}"), body)
        .await
        .map_err(|e| fail(e.into()))?;
    sqlx::query(
        // `seq` numbers messages in arrival order: two sent in the same millisecond still
        // come out of the inbox in the order they were sent.
        "INSERT INTO mesh_messages (id, sender, recipient, workflow_id, subject, local_id, file_name, content_type, size, status, created_ms, seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'accepted', $10,
                 (SELECT COALESCE(MAX(seq), 0) + 1 FROM mesh_messages))",
    )
    .bind(id.clone())
    .bind(mailbox.clone())
    .bind(to.clone())
    .bind(workflow.clone())
    .bind(header_text(&headers, "mex-subject"))
    .bind(header_text(&headers, "mex-localid"))
    .bind(header_text(&headers, "mex-filename"))
    .bind(content_type)
    .bind(size)
    .bind(state.clock.now_ms())
    .execute(state.db.pool())
    .await?;
    metrics::counter!("mesh_messages_sent_total").increment(1);
    tracing::info!(%id, from = %mailbox, %to, %workflow, size, "MESH message accepted");
    Ok((StatusCode::ACCEPTED, Json(json!({"message_id": id}))).into_response())
}

#[derive(Debug, Deserialize)]
struct InboxQuery {
    workflow_filter: Option<String>,
}

async fn inbox(
    State(state): State<MeshState>,
    Path(mailbox): Path<String>,
    Query(q): Query<InboxQuery>,
) -> MeshResult<Json<serde_json::Value>> {
    state.require_mailbox(&mailbox).await?;
    let rows = sqlx::query(
        "SELECT id FROM mesh_messages WHERE recipient = $1 AND status = 'accepted' AND ($2 = '' OR workflow_id = $2)
         ORDER BY created_ms, seq, id LIMIT $3",
    )
    .bind(mailbox)
    .bind(q.workflow_filter.unwrap_or_default())
    .bind(INBOX_PAGE)
    .fetch_all(state.db.pool())
    .await?;
    let ids = rows
        .iter()
        .map(|r| r.try_get::<String, _>("id"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({"messages": ids})))
}

async fn count(
    State(state): State<MeshState>,
    Path(mailbox): Path<String>,
) -> MeshResult<Json<serde_json::Value>> {
    state.require_mailbox(&mailbox).await?;
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM mesh_messages WHERE recipient = $1 AND status = 'accepted'",
    )
    .bind(mailbox)
    .fetch_one(state.db.pool())
    .await?;
    Ok(Json(json!({"count": row.try_get::<i64, _>("n")?})))
}

struct Stored {
    sender: String,
    recipient: String,
    workflow: String,
    subject: Option<String>,
    local_id: Option<String>,
    file_name: Option<String>,
    content_type: String,
    status: String,
    created_ms: i64,
    acked_ms: Option<i64>,
}

async fn stored(state: &MeshState, id: &str) -> MeshResult<Option<Stored>> {
    let row = sqlx::query("SELECT sender, recipient, workflow_id, subject, local_id, file_name, content_type, status, created_ms, acked_ms FROM mesh_messages WHERE id = $1")
        .bind(id)
        .fetch_optional(state.db.pool())
        .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(Stored {
        sender: r.try_get("sender")?,
        recipient: r.try_get("recipient")?,
        workflow: r.try_get("workflow_id")?,
        subject: r.try_get("subject")?,
        local_id: r.try_get("local_id")?,
        file_name: r.try_get("file_name")?,
        content_type: r.try_get("content_type")?,
        status: r.try_get("status")?,
        created_ms: r.try_get("created_ms")?,
        acked_ms: r.try_get("acked_ms")?,
    }))
}

async fn in_inbox(state: &MeshState, mailbox: &str, id: &str) -> MeshResult<Stored> {
    state.require_mailbox(mailbox).await?;
    let m = stored(state, id)
        .await?
        .filter(|m| m.recipient == mailbox)
        .ok_or_else(|| Error::NotFound(format!("no message {id} in mailbox {mailbox}")))?;
    if m.status == "acknowledged" {
        return Err(Error::Conflict(format!(
            "message {id} was acknowledged and is no longer available"
        ))
        .into());
    }
    Ok(m)
}

async fn download(
    State(state): State<MeshState>,
    Path((mailbox, id)): Path<(String, String)>,
) -> MeshResult<Response> {
    let m = in_inbox(&state, &mailbox, &id)
        .await
        .map_err(|e| MeshError {
            event: "DOWNLOAD",
            ..e
        })?;
    let body = state
        .payloads
        .get(&format!("mesh/{id}"))
        .await
        .map_err(Error::from)?;
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    set("content-type", &m.content_type);
    set("mex-messageid", &id);
    set("mex-from", &m.sender);
    set("mex-to", &m.recipient);
    set("mex-workflowid", &m.workflow);
    set("mex-messagetype", "DATA");
    for (name, v) in [
        ("mex-subject", &m.subject),
        ("mex-localid", &m.local_id),
        ("mex-filename", &m.file_name),
    ] {
        if let Some(v) = v {
            set(name, v);
        }
    }
    Ok(response)
}

async fn acknowledge(
    State(state): State<MeshState>,
    Path((mailbox, id)): Path<(String, String)>,
) -> MeshResult<Json<serde_json::Value>> {
    in_inbox(&state, &mailbox, &id)
        .await
        .map_err(|e| MeshError { event: "ACK", ..e })?;
    sqlx::query("UPDATE mesh_messages SET status = 'acknowledged', acked_ms = $1 WHERE id = $2 AND status = 'accepted'")
        .bind(state.clock.now_ms())
        .bind(id.clone())
        .execute(state.db.pool())
        .await?;
    // The body is no longer needed once the recipient has it.
    if let Err(e) = state.payloads.delete(&format!("mesh/{id}")).await {
        tracing::warn!(%id, error = %e, "MESH could not remove an acknowledged body");
    }
    Ok(Json(json!({"messageId": id})))
}

async fn tracking(
    State(state): State<MeshState>,
    Path((mailbox, id)): Path<(String, String)>,
) -> MeshResult<Json<serde_json::Value>> {
    state.require_mailbox(&mailbox).await?;
    let m = stored(&state, &id)
        .await?
        .filter(|m| m.sender == mailbox)
        .ok_or_else(|| Error::NotFound(format!("mailbox {mailbox} sent no message {id}")))?;
    Ok(Json(json!({
        "message_id": id,
        "sender": m.sender,
        "recipient": m.recipient,
        "workflow_id": m.workflow,
        "local_id": m.local_id,
        "status": m.status,
        "upload_timestamp": crate::time::instant(m.created_ms),
        "acknowledged_timestamp": m.acked_ms.map(crate::time::instant),
    })))
}

#[derive(Debug, Default, Deserialize)]
struct MailboxBody {
    ods: Option<String>,
}

async fn admin_create(
    State(state): State<MeshState>,
    Path(mailbox): Path<String>,
    body: axum::body::Bytes,
) -> MeshResult<StatusCode> {
    let b: MailboxBody = if body.is_empty() {
        MailboxBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Error::bad_request(
                "INVALID_BODY",
                format!("the mailbox body is not valid JSON: {e}"),
            )
        })?
    };
    let existed = state.mailbox_exists(&mailbox).await?;
    state.create_mailbox(&mailbox, b.ods.as_deref()).await?;
    Ok(if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    })
}
