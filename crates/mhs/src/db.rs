//! The MHS's own tables: the outbox (messages to send, with their state) and the inbox
//! (messages received, for de-duplication and for the local consumer).

use store::sqlx::{self, Row};
use store::{Database, Migration};

use crate::Error;
use crate::outbox::NewEntry;
use crate::state::{Delivered, Failed, InFlight, OutboundState, Pending, RetryPolicy, Retrying};

pub(crate) const SERVICE: &str = "mhs";

/// The outbox table of an MHS.
pub(crate) const OUTBOX: &str = "mhs_outbound";

/// The tables, in SQL both engines accept as written.
const SCHEMA: &str = concat!(
    crate::outbox_table!("mhs_outbound"),
    ";
        CREATE TABLE mhs_inbound (
            message_id TEXT PRIMARY KEY,
            conversation_id TEXT NOT NULL,
            interaction_id TEXT NOT NULL,
            from_party TEXT NOT NULL,
            peer TEXT,
            content_type TEXT NOT NULL,
            payload_key TEXT NOT NULL,
            received_at BIGINT NOT NULL,
            keep_until BIGINT NOT NULL,
            state TEXT NOT NULL,
            lease_until BIGINT NOT NULL,
            deliveries BIGINT NOT NULL);
        CREATE INDEX mhs_inbound_queue ON mhs_inbound (state, received_at)"
);

pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "outbox and inbox",
    sqlite: SCHEMA,
    postgres: SCHEMA,
}];

/// A payload-store key for a message id: the id itself when it is plain, its hex otherwise
/// (message ids come from outside).
pub(crate) fn payload_key(direction: &str, message_id: &str) -> String {
    let plain = !message_id.is_empty()
        && message_id.len() <= 200
        && message_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        format!("mhs/{direction}/{message_id}")
    } else {
        let hex: String = message_id.bytes().map(|b| format!("{b:02x}")).collect();
        format!("mhs/{direction}/x{hex}")
    }
}

/// One outbox row, as needed to send.
#[derive(Debug, Clone)]
pub(crate) struct OutboundRow {
    pub message_id: String,
    pub conversation_id: String,
    pub interaction_id: String,
    pub address: String,
    pub content_type: String,
    pub payload_key: String,
    pub state: String,
    pub attempts: i64,
    pub retries: i64,
    pub retry_interval_ms: i64,
    pub expires_at: i64,
    pub next_attempt_at: i64,
    pub updated_at: i64,
    pub reason: Option<String>,
}

impl OutboundRow {
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            retries: u32::try_from(self.retries).unwrap_or(0),
            retry_interval_ms: self.retry_interval_ms,
            expires_at: self.expires_at,
        }
    }

    pub fn attempts_u32(&self) -> u32 {
        u32::try_from(self.attempts).unwrap_or(u32::MAX)
    }

    pub fn state(&self) -> OutboundState {
        let attempts = self.attempts_u32();
        match self.state.as_str() {
            "pending" => OutboundState::Pending(Pending),
            "in_flight" => OutboundState::InFlight(InFlight { attempt: attempts }),
            "retrying" => OutboundState::Retrying(Retrying {
                attempts,
                next_attempt_at: self.next_attempt_at,
                last_error: self.reason.clone().unwrap_or_default(),
            }),
            "delivered" => OutboundState::Delivered(Delivered {
                at: self.updated_at,
                attempts,
            }),
            _ => OutboundState::Failed(Failed {
                reason: self.reason.clone().unwrap_or_default(),
                attempts,
            }),
        }
    }
}

const OUTBOUND_COLUMNS: &str = "message_id, conversation_id, interaction_id, address, content_type, \
     payload_key, state, attempts, retries, retry_interval_ms, expires_at, next_attempt_at, \
     lease_until, updated_at, reason";

fn outbound_row(r: &sqlx::any::AnyRow) -> Result<OutboundRow, sqlx::Error> {
    Ok(OutboundRow {
        message_id: r.try_get("message_id")?,
        conversation_id: r.try_get("conversation_id")?,
        interaction_id: r.try_get("interaction_id")?,
        address: r.try_get("address")?,
        content_type: r.try_get("content_type")?,
        payload_key: r.try_get("payload_key")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        retries: r.try_get("retries")?,
        retry_interval_ms: r.try_get("retry_interval_ms")?,
        expires_at: r.try_get("expires_at")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        updated_at: r.try_get("updated_at")?,
        reason: r.try_get("reason")?,
    })
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Inserts a new outbox row in state `pending`; `false` if the id is taken. (`table` is
/// always a name from code, checked by `Outbox::new`, never text from outside.)
pub(crate) async fn insert_outbound<'c, E>(
    executor: E,
    table: &str,
    m: &NewEntry<'_>,
) -> Result<bool, Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let expires_at = m
        .accepted_at
        .saturating_add(millis(m.reliability.persist_duration));
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} (message_id, conversation_id, interaction_id, address, \
         content_type, payload_key, state, attempts, retries, retry_interval_ms, created_at, \
         expires_at, next_attempt_at, lease_until, updated_at, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, $9, $10, $11, 0, $12, NULL) \
         ON CONFLICT (message_id) DO NOTHING"
    )))
    .bind(m.message_id)
    .bind(m.conversation_id)
    .bind(m.interaction_id)
    .bind(m.address)
    .bind(m.content_type)
    .bind(m.payload_key)
    .bind(i64::from(m.reliability.retries))
    .bind(millis(m.reliability.retry_interval))
    .bind(m.accepted_at)
    .bind(expires_at)
    .bind(m.accepted_at)
    .bind(m.accepted_at)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn outbound(
    db: &Database,
    table: &str,
    message_id: &str,
) -> Result<Option<OutboundRow>, Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {OUTBOUND_COLUMNS} FROM {table} WHERE message_id = $1"
    )))
    .bind(message_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.as_ref().map(outbound_row).transpose()?)
}

/// Rows whose next attempt is due, or whose attempt's lease ran out.
pub(crate) async fn due_outbound(
    db: &Database,
    table: &str,
    now: i64,
    limit: i64,
) -> Result<Vec<OutboundRow>, Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {OUTBOUND_COLUMNS} FROM {table} \
         WHERE (state IN ('pending', 'retrying') AND next_attempt_at <= $1) \
            OR (state = 'in_flight' AND lease_until <= $2) \
         ORDER BY next_attempt_at LIMIT $3"
    )))
    .bind(now)
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(outbound_row).collect::<Result<_, _>>()?)
}

/// When the worker next has something to do: the earliest due attempt or lease expiry.
pub(crate) async fn next_outbound_wake(db: &Database, table: &str) -> Result<Option<i64>, Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT MIN(CASE WHEN state = 'in_flight' THEN lease_until ELSE next_attempt_at END) AS t \
         FROM {table} WHERE state IN ('pending', 'retrying', 'in_flight')"
    )))
    .fetch_one(db.pool())
    .await?;
    Ok(row.try_get::<Option<i64>, _>("t")?)
}

/// Moves a row from the state it was read in to a new one, only if nobody moved it first
/// (the row is the unit of ownership between workers and processes).
pub(crate) async fn transition<'c, E>(
    executor: E,
    table: &str,
    from: &OutboundRow,
    to: &OutboundState,
    lease_until: i64,
    now: i64,
) -> Result<bool, Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let (attempts, next_attempt_at, reason) = match to {
        OutboundState::Pending(_) => (0, from.next_attempt_at, None),
        OutboundState::InFlight(f) => (
            i64::from(f.attempt),
            from.next_attempt_at,
            from.reason.clone(),
        ),
        OutboundState::Retrying(r) => (
            i64::from(r.attempts),
            r.next_attempt_at,
            Some(r.last_error.clone()),
        ),
        OutboundState::Delivered(d) => (i64::from(d.attempts), from.next_attempt_at, None),
        OutboundState::Failed(f) => (
            i64::from(f.attempts),
            from.next_attempt_at,
            Some(f.reason.clone()),
        ),
    };
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET state = $1, attempts = $2, next_attempt_at = $3, \
         lease_until = $4, updated_at = $5, reason = $6 \
         WHERE message_id = $7 AND state = $8 AND attempts = $9"
    )))
    .bind(to.name())
    .bind(attempts)
    .bind(next_attempt_at)
    .bind(lease_until)
    .bind(now)
    .bind(reason)
    .bind(&from.message_id)
    .bind(&from.state)
    .bind(from.attempts)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The payload keys of final rows last changed before `before`.
pub(crate) async fn final_outbound_keys(
    db: &Database,
    table: &str,
    before: i64,
) -> Result<Vec<String>, Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT payload_key FROM {table} WHERE state IN ('delivered', 'failed') AND updated_at < $1"
    )))
    .bind(before)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get("payload_key"))
        .collect::<Result<_, _>>()?)
}

/// Forgets final rows last changed before `before`.
pub(crate) async fn delete_final_outbound(
    db: &Database,
    table: &str,
    before: i64,
) -> Result<u64, Error> {
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE state IN ('delivered', 'failed') AND updated_at < $1"
    )))
    .bind(before)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected())
}

// ---- inbox ----------------------------------------------------------------------------

pub(crate) struct NewInbound<'a> {
    pub message_id: &'a str,
    pub conversation_id: &'a str,
    pub interaction_id: &'a str,
    pub from_party: &'a str,
    pub peer: Option<&'a str>,
    pub content_type: &'a str,
    pub payload_key: &'a str,
    pub received_at: i64,
    pub keep_until: i64,
}

/// Inserts a received message, queued for the consumer; `false` if it was already there
/// (a duplicate).
pub(crate) async fn insert_inbound(db: &Database, m: &NewInbound<'_>) -> Result<bool, Error> {
    let done = sqlx::query(
        "INSERT INTO mhs_inbound (message_id, conversation_id, interaction_id, from_party, peer, \
         content_type, payload_key, received_at, keep_until, state, lease_until, deliveries) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', 0, 0) \
         ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(m.message_id)
    .bind(m.conversation_id)
    .bind(m.interaction_id)
    .bind(m.from_party)
    .bind(m.peer)
    .bind(m.content_type)
    .bind(m.payload_key)
    .bind(m.received_at)
    .bind(m.keep_until)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone)]
pub(crate) struct InboundRow {
    pub message_id: String,
    pub content_type: String,
    pub payload_key: String,
    pub peer: Option<String>,
    pub received_at: i64,
    pub deliveries: i64,
}

/// Claims the oldest message ready for the consumer (queued, or leased and the lease ran
/// out), leasing it until `lease_until`.
pub(crate) async fn claim_inbound(
    db: &Database,
    now: i64,
    lease_until: i64,
) -> Result<Option<InboundRow>, Error> {
    for _ in 0..8 {
        let candidates = sqlx::query(
            "SELECT message_id, content_type, payload_key, peer, received_at, deliveries, state \
             FROM mhs_inbound WHERE state = 'queued' OR (state = 'leased' AND lease_until <= $1) \
             ORDER BY received_at LIMIT 8",
        )
        .bind(now)
        .fetch_all(db.pool())
        .await?;
        if candidates.is_empty() {
            return Ok(None);
        }
        for r in &candidates {
            let row = InboundRow {
                message_id: r.try_get("message_id")?,
                content_type: r.try_get("content_type")?,
                payload_key: r.try_get("payload_key")?,
                peer: r.try_get("peer")?,
                received_at: r.try_get("received_at")?,
                deliveries: r.try_get::<i64, _>("deliveries")? + 1,
            };
            let state: String = r.try_get("state")?;
            let done = sqlx::query(
                "UPDATE mhs_inbound SET state = 'leased', lease_until = $1, deliveries = deliveries + 1 \
                 WHERE message_id = $2 AND state = $3 AND deliveries = $4 \
                 AND (state = 'queued' OR lease_until <= $5)",
            )
            .bind(lease_until)
            .bind(&row.message_id)
            .bind(state)
            .bind(row.deliveries - 1)
            .bind(now)
            .execute(db.pool())
            .await?;
            if done.rows_affected() == 1 {
                return Ok(Some(row));
            }
        }
    }
    Ok(None)
}

/// The earliest lease expiry among leased messages.
pub(crate) async fn next_inbound_wake(db: &Database) -> Result<Option<i64>, Error> {
    let row = sqlx::query("SELECT MIN(lease_until) AS t FROM mhs_inbound WHERE state = 'leased'")
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get::<Option<i64>, _>("t")?)
}

/// The consumer has the message: it is never delivered again. `false` if unknown.
pub(crate) async fn ack_inbound(db: &Database, message_id: &str) -> Result<Option<String>, Error> {
    let row = sqlx::query(
        "UPDATE mhs_inbound SET state = 'consumed', lease_until = 0 WHERE message_id = $1 \
         RETURNING payload_key",
    )
    .bind(message_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| r.try_get("payload_key"))
        .transpose()
        .map_err(Error::from)
}

/// Hands a leased message back to the queue at once (the consumer could not take it now).
pub(crate) async fn release_inbound(db: &Database, message_id: &str) -> Result<(), Error> {
    sqlx::query("UPDATE mhs_inbound SET state = 'queued', lease_until = 0 WHERE message_id = $1 AND state = 'leased'")
        .bind(message_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Forgets consumed messages whose de-duplication window has passed.
pub(crate) async fn purge_inbound(db: &Database, now: i64) -> Result<u64, Error> {
    let done = sqlx::query("DELETE FROM mhs_inbound WHERE state = 'consumed' AND keep_until < $1")
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}
