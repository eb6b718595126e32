//! The national message log: one line for every GP2GP message through Spine's relay, the
//! record management information is built from.
//!
//! Each [`LogEntry`] carries the national log's fields, named as Spine names them:
//!
//! | field | what |
//! |---|---|
//! | `time` | when the relay wrote the entry (UTC, milliseconds) |
//! | `conversationID` | `eb:ConversationId` |
//! | `GUID` | `eb:MessageId` of the message the entry is about |
//! | `interactionID` | `eb:Action`, the HL7 interaction id |
//! | `messageSender`, `messageRecipient` | the ASIDs, from the HL7 wrapper's `communicationFunctionSnd` / `Rcv`; from SDS (the parties' systems) when the payload does not say; `Unknown` when neither does |
//! | `messageRef` | for an acknowledgement (MCCI, or the acknowledgement inside a COPC continue), the id of the message it acknowledges; `NotProvided` otherwise |
//! | `jdiEvent` | an error code, `NONE` when there is none (below) |
//! | `fromSystem`, `toSystem` | the suppliers of the sending and receiving organisations' systems, from SDS (`supplier`); `Unknown` when SDS has none |
//!
//! and two fields of Lloyd's own: `event`, what happened ([`LogEvent`]), and `detail`,
//! words for a person when something went wrong.
//!
//! # Which entries, and their `jdiEvent`
//!
//! | `event` | written when | `jdiEvent` |
//! |---|---|---|
//! | `received` | the relay accepted a message (persisted and acknowledged it) | `NONE`; for a negative acknowledgement (`AE`, `AR`) its reason code, e.g. `99` (`99` too when it gives none) |
//! | `duplicate` | a message the relay already has arrived again (acknowledged again, not forwarded again) | `NONE` |
//! | `retry` | forwarding starts another attempt because the one before was not acknowledged | `20` (Spine system responded with an error) |
//! | `rejected` | the receiving MHS refused the forwarded message (an `eb:ErrorList` or client fault); not retried | `20` |
//! | `failed` | no acknowledgment within the receiver's retries or persist duration; given up | `20` |
//! | `refused` | the relay itself refused the message: its `eb:To` party is not in SDS, does not receive the interaction, or has no address (`24`, SDS lookup failed), or it is not a readable forward-reliable message (`20`) | `24` or `20` |
//!
//! So counting messages means counting `received` entries: a message appears once as
//! `received`, and again only as the story of its hop (`retry`, `rejected`, `failed`) or of
//! its sender's retransmissions (`duplicate`). Entries about a message after its
//! `received` entry repeat that entry's ASIDs, `messageRef` and suppliers.
//!
//! The log lives in the `relay_log` table (the relay's own), and is read over HTTP as JSON
//! lines: `GET /spine/message-log?conversationId=…&since=…` ([`LogQuery`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use store::Database;
use store::sqlx::{self, Row};

use crate::error::{Error, Result};

/// What a log entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogEvent {
    /// The relay accepted a message.
    Received,
    /// A message the relay already had arrived again.
    Duplicate,
    /// Forwarding is trying again.
    Retry,
    /// The receiving MHS refused the forwarded message.
    Rejected,
    /// Forwarding gave up.
    Failed,
    /// The relay refused the message.
    Refused,
}

impl LogEvent {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            LogEvent::Received => "received",
            LogEvent::Duplicate => "duplicate",
            LogEvent::Retry => "retry",
            LogEvent::Rejected => "rejected",
            LogEvent::Failed => "failed",
            LogEvent::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Option<LogEvent> {
        Some(match s {
            "received" => LogEvent::Received,
            "duplicate" => LogEvent::Duplicate,
            "retry" => LogEvent::Retry,
            "rejected" => LogEvent::Rejected,
            "failed" => LogEvent::Failed,
            "refused" => LogEvent::Refused,
            _ => return None,
        })
    }
}

impl fmt::Display for LogEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `messageRef` when a message acknowledges nothing.
pub const NOT_PROVIDED: &str = "NotProvided";
/// `jdiEvent` when there is no error.
pub const NO_EVENT: &str = "NONE";
/// `jdiEvent` of the relay's own failures: GP2GP's "Spine system responded with an error".
pub const SPINE_ERROR: &str = "20";
/// `jdiEvent` when SDS cannot route a message: GP2GP's "SDS lookup gave zero or more than
/// one result".
pub const SDS_ERROR: &str = "24";
/// An ASID or supplier nobody could tell.
pub const UNKNOWN: &str = "Unknown";

/// One line of the national message log, as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// When (ISO 8601 UTC with milliseconds).
    pub time: String,
    /// `eb:ConversationId`.
    #[serde(rename = "conversationID")]
    pub conversation_id: String,
    /// `eb:MessageId`.
    #[serde(rename = "GUID")]
    pub guid: String,
    /// The interaction id.
    #[serde(rename = "interactionID")]
    pub interaction_id: String,
    /// The sender's ASID.
    #[serde(rename = "messageSender")]
    pub message_sender: String,
    /// The recipient's ASID.
    #[serde(rename = "messageRecipient")]
    pub message_recipient: String,
    /// The acknowledged message's id, or `NotProvided`.
    #[serde(rename = "messageRef")]
    pub message_ref: String,
    /// An error code, or `NONE`.
    #[serde(rename = "jdiEvent")]
    pub jdi_event: String,
    /// The sending system's supplier.
    #[serde(rename = "fromSystem")]
    pub from_system: String,
    /// The receiving system's supplier.
    #[serde(rename = "toSystem")]
    pub to_system: String,
    /// What happened.
    pub event: LogEvent,
    /// Words for a person, when something went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The national fields of an entry about one message (everything but the time, the event
/// and the detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFacts {
    /// `conversationID`.
    pub conversation_id: String,
    /// `GUID`.
    pub guid: String,
    /// `interactionID`.
    pub interaction_id: String,
    /// `messageSender`.
    pub message_sender: String,
    /// `messageRecipient`.
    pub message_recipient: String,
    /// `messageRef`.
    pub message_ref: String,
    /// `fromSystem`.
    pub from_system: String,
    /// `toSystem`.
    pub to_system: String,
}

/// A log entry to write.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    /// When (Unix ms).
    pub time_ms: i64,
    /// What it is about.
    pub facts: &'a MessageFacts,
    /// `jdiEvent`.
    pub jdi_event: &'a str,
    /// What happened.
    pub event: LogEvent,
    /// Words for a person.
    pub detail: Option<&'a str>,
}

/// The log's table, with `$seq`, the self-numbering key column (the one thing the engines
/// spell differently).
macro_rules! log_table {
    ($seq:literal) => {
        concat!(
            "CREATE TABLE relay_log (seq ",
            $seq,
            ", time_ms BIGINT NOT NULL, conversation_id TEXT NOT NULL, guid TEXT NOT NULL, \
             interaction_id TEXT NOT NULL, message_sender TEXT NOT NULL, \
             message_recipient TEXT NOT NULL, message_ref TEXT NOT NULL, \
             jdi_event TEXT NOT NULL, from_system TEXT NOT NULL, to_system TEXT NOT NULL, \
             event TEXT NOT NULL, detail TEXT);
             CREATE INDEX relay_log_conversation ON relay_log (conversation_id, time_ms, seq);
             CREATE INDEX relay_log_time ON relay_log (time_ms, seq);
             CREATE INDEX relay_log_guid ON relay_log (guid, event)"
        )
    };
}

pub(crate) const MIGRATION_SQLITE: &str = log_table!("INTEGER PRIMARY KEY AUTOINCREMENT");
pub(crate) const MIGRATION_POSTGRES: &str = log_table!("BIGSERIAL PRIMARY KEY");

/// Longest `detail` kept (the rest is cut, marked with `…`).
const MAX_DETAIL: usize = 2_000;

fn cut(detail: &str) -> String {
    if detail.len() <= MAX_DETAIL {
        return detail.to_string();
    }
    let mut end = MAX_DETAIL;
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &detail[..end])
}

/// Writes one entry through `executor` (the pool, or a transaction).
pub(crate) async fn append<'c, E>(executor: E, e: &NewEntry<'_>) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let f = e.facts;
    sqlx::query(
        "INSERT INTO relay_log (time_ms, conversation_id, guid, interaction_id, message_sender, \
         message_recipient, message_ref, jdi_event, from_system, to_system, event, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(e.time_ms)
    .bind(&f.conversation_id)
    .bind(&f.guid)
    .bind(&f.interaction_id)
    .bind(&f.message_sender)
    .bind(&f.message_recipient)
    .bind(&f.message_ref)
    .bind(e.jdi_event)
    .bind(&f.from_system)
    .bind(&f.to_system)
    .bind(e.event.as_str())
    .bind(e.detail.map(cut))
    .execute(executor)
    .await?;
    Ok(())
}

/// Writes an entry about a message already received, repeating its `received` entry's
/// facts; `false` when there is no such entry (nothing is written then).
pub(crate) async fn append_about(
    conn: &mut sqlx::AnyConnection,
    guid: &str,
    time_ms: i64,
    jdi_event: &str,
    event: LogEvent,
    detail: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO relay_log (time_ms, conversation_id, guid, interaction_id, message_sender, \
         message_recipient, message_ref, jdi_event, from_system, to_system, event, detail) \
         SELECT $1, conversation_id, guid, interaction_id, message_sender, message_recipient, \
         message_ref, $2, from_system, to_system, $3, $4 FROM relay_log \
         WHERE guid = $5 AND event = 'received' ORDER BY seq DESC LIMIT 1",
    )
    .bind(time_ms)
    .bind(jdi_event)
    .bind(event.as_str())
    .bind(cut(detail))
    .bind(guid)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Which entries to read: one conversation's or all, from a time on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Only this conversation's entries.
    pub conversation_id: Option<String>,
    /// Only entries written at or after this time (Unix ms).
    pub since_ms: Option<i64>,
}

impl LogQuery {
    /// Reads `conversationId` and `since` (an ISO 8601 instant such as
    /// `2024-05-01T09:30:00Z`, or a date); anything else is refused.
    pub fn from_params(params: &[(String, String)]) -> Result<LogQuery> {
        let bad = |m: String| Error::bad_request("INVALID_SEARCH_DATA", m);
        let mut q = LogQuery::default();
        for (name, value) in params {
            match name.as_str() {
                "conversationId" => {
                    if q.conversation_id.is_some() {
                        return Err(bad("conversationId is given twice".into()));
                    }
                    if value.trim().is_empty() {
                        return Err(bad("conversationId is empty".into()));
                    }
                    q.conversation_id = Some(value.trim().to_string());
                }
                "since" => {
                    if q.since_ms.is_some() {
                        return Err(bad("since is given twice".into()));
                    }
                    let ms = crate::time::parse_instant(value).ok_or_else(|| {
                        bad(format!(
                            "since '{value}' is not an instant: give it like 2024-05-01T09:30:00Z (or 2024-05-01)"
                        ))
                    })?;
                    q.since_ms = Some(ms);
                }
                other => {
                    return Err(bad(format!(
                        "unknown parameter '{other}': the message log takes conversationId and since"
                    )));
                }
            }
        }
        Ok(q)
    }
}

/// Where a page of the log ends: the next page starts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    time_ms: i64,
    seq: i64,
}

/// The national message log, read side.
#[derive(Debug, Clone)]
pub struct MessageLog {
    db: Database,
}

impl MessageLog {
    /// The log in `db` (the relay creates its table).
    pub fn new(db: Database) -> MessageLog {
        MessageLog { db }
    }

    /// Up to `limit` entries matching `query` after `after` (from the start when `None`),
    /// in time order, and the cursor to read on from (`None` when nothing was found).
    pub async fn page(
        &self,
        query: &LogQuery,
        after: Option<Cursor>,
        limit: i64,
    ) -> Result<(Vec<LogEntry>, Option<Cursor>)> {
        let mut clauses = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if query.conversation_id.is_some() {
            clauses.push(format!("conversation_id = {}", next()));
        }
        if query.since_ms.is_some() {
            clauses.push(format!("time_ms >= {}", next()));
        }
        if after.is_some() {
            let (a, b, c) = (next(), next(), next());
            clauses.push(format!("(time_ms > {a} OR (time_ms = {b} AND seq > {c}))"));
        }
        let limit_ph = next();
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT seq, time_ms, conversation_id, guid, interaction_id, message_sender, \
             message_recipient, message_ref, jdi_event, from_system, to_system, event, detail \
             FROM relay_log {filter} ORDER BY time_ms, seq LIMIT {limit_ph}"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(c) = &query.conversation_id {
            q = q.bind(c.clone());
        }
        if let Some(s) = query.since_ms {
            q = q.bind(s);
        }
        if let Some(a) = after {
            q = q.bind(a.time_ms).bind(a.time_ms).bind(a.seq);
        }
        let rows = q.bind(limit).fetch_all(self.db.pool()).await?;
        let mut entries = Vec::with_capacity(rows.len());
        let mut cursor = None;
        for r in &rows {
            let time_ms: i64 = r.try_get("time_ms")?;
            let event: String = r.try_get("event")?;
            entries.push(LogEntry {
                time: crate::time::instant(time_ms),
                conversation_id: r.try_get("conversation_id")?,
                guid: r.try_get("guid")?,
                interaction_id: r.try_get("interaction_id")?,
                message_sender: r.try_get("message_sender")?,
                message_recipient: r.try_get("message_recipient")?,
                message_ref: r.try_get("message_ref")?,
                jdi_event: r.try_get("jdi_event")?,
                from_system: r.try_get("from_system")?,
                to_system: r.try_get("to_system")?,
                event: LogEvent::parse(&event).ok_or_else(|| {
                    Error::Corrupt(format!("a message log entry has the event '{event}'"))
                })?,
                detail: r.try_get("detail")?,
            });
            cursor = Some(Cursor {
                time_ms,
                seq: r.try_get("seq")?,
            });
        }
        Ok((entries, cursor))
    }

    /// Every entry matching `query`, in time order (for tests and small conversations; the
    /// HTTP API streams pages instead).
    pub async fn read(&self, query: &LogQuery) -> Result<Vec<LogEntry>> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let (page, cursor) = self.page(query, after, 1_000).await?;
            if cursor.is_none() {
                return Ok(all);
            }
            all.extend(page);
            after = cursor;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a=1&b=2` as the handler receives it.
    fn query(text: &str) -> Result<LogQuery> {
        let params: Vec<(String, String)> = text
            .split('&')
            .filter(|kv| !kv.is_empty())
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LogQuery::from_params(&params)
    }

    #[test]
    fn a_query_takes_a_conversation_and_an_instant_and_nothing_else() {
        let q = query("conversationId=C1&since=2024-05-01T09:30:00Z").unwrap();
        assert_eq!(q.conversation_id.as_deref(), Some("C1"));
        assert_eq!(q.since_ms, Some(1_714_555_800_000));
        assert_eq!(query("").unwrap(), LogQuery::default());
        for bad in [
            "since=yesterday",
            "conversationId=",
            "conversationId=A&conversationId=B",
            "conversation=A",
        ] {
            let e = query(bad).unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn long_details_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_DETAIL);
        let c = cut(&long);
        assert!(c.len() <= MAX_DETAIL + "…".len());
        assert!(c.ends_with('…'));
        assert_eq!(cut("short"), "short");
    }
}
