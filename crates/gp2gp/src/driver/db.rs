//! The driver's tables: one row per transfer (its machine state, the actions persisted with
//! it and not yet carried out) and one row per GP2GP message in or out (for the status API).
//!
//! A state change and the message that caused it are written in one transaction, guarded
//! by the row's version: two workers (or two processes on one PostgreSQL) can never both
//! apply an event to the same state.

use store::sqlx::{self, Row};
use store::{Database, Migration, placeholder};

use super::DriverError;

pub(crate) const SERVICE: &str = "gp2gp";

const SCHEMA: &str = "CREATE TABLE gp2gp_transfers (
        role TEXT NOT NULL, conversation_id TEXT NOT NULL, ods TEXT NOT NULL,
        peer_ods TEXT NOT NULL, nhs_number TEXT NOT NULL, parties TEXT NOT NULL,
        state TEXT NOT NULL, phase TEXT NOT NULL, pending TEXT NOT NULL,
        outcome TEXT, outcome_code TEXT,
        started_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, finished_at BIGINT,
        deadline_at BIGINT, version BIGINT NOT NULL,
        PRIMARY KEY (role, conversation_id));
    CREATE INDEX gp2gp_transfers_open ON gp2gp_transfers (finished_at, deadline_at);
    CREATE INDEX gp2gp_transfers_patient ON gp2gp_transfers (nhs_number, started_at);
    CREATE TABLE gp2gp_messages (
        role TEXT NOT NULL, conversation_id TEXT NOT NULL, message_id TEXT NOT NULL,
        direction TEXT NOT NULL, interaction_id TEXT NOT NULL, at BIGINT NOT NULL,
        acknowledges TEXT, ack_type TEXT, code TEXT, note TEXT NOT NULL,
        PRIMARY KEY (role, message_id, direction));
    CREATE INDEX gp2gp_messages_conversation ON gp2gp_messages (role, conversation_id, at)";

/// The driver's tables.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "transfers and their messages",
    sqlite: SCHEMA,
    postgres: SCHEMA,
}];

/// A transfer as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TransferRow {
    pub role: String,
    pub conversation_id: String,
    pub ods: String,
    pub peer_ods: String,
    pub nhs_number: String,
    pub parties: String,
    pub state: String,
    pub phase: String,
    pub pending: String,
    pub outcome: Option<String>,
    pub outcome_code: Option<String>,
    pub started_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    pub deadline_at: Option<i64>,
    pub version: i64,
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageRow {
    pub role: String,
    pub conversation_id: String,
    pub message_id: String,
    pub direction: String,
    pub interaction_id: String,
    pub at: i64,
    pub acknowledges: Option<String>,
    pub ack_type: Option<String>,
    pub code: Option<String>,
    pub note: String,
}

const COLUMNS: &str = "role, conversation_id, ods, peer_ods, nhs_number, parties, state, phase, \
    pending, outcome, outcome_code, started_at, updated_at, finished_at, deadline_at, version";

fn from_row(r: &sqlx::any::AnyRow) -> Result<TransferRow, sqlx::Error> {
    Ok(TransferRow {
        role: r.try_get("role")?,
        conversation_id: r.try_get("conversation_id")?,
        ods: r.try_get("ods")?,
        peer_ods: r.try_get("peer_ods")?,
        nhs_number: r.try_get("nhs_number")?,
        parties: r.try_get("parties")?,
        state: r.try_get("state")?,
        phase: r.try_get("phase")?,
        pending: r.try_get("pending")?,
        outcome: r.try_get("outcome")?,
        outcome_code: r.try_get("outcome_code")?,
        started_at: r.try_get("started_at")?,
        updated_at: r.try_get("updated_at")?,
        finished_at: r.try_get("finished_at")?,
        deadline_at: r.try_get("deadline_at")?,
        version: r.try_get("version")?,
    })
}

fn ph(db: &Database, n: usize) -> String {
    placeholder(db.kind(), n)
}

fn list(db: &Database, from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| ph(db, i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One transfer.
pub(crate) async fn get(
    db: &Database,
    role: &str,
    conversation_id: &str,
) -> Result<Option<TransferRow>, DriverError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM gp2gp_transfers WHERE role = {} AND conversation_id = {}",
        ph(db, 1),
        ph(db, 2)
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(role)
        .bind(conversation_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

/// Every transfer of a conversation (normally one; two when a practice asks itself).
pub(crate) async fn by_conversation(
    db: &Database,
    conversation_id: &str,
) -> Result<Vec<TransferRow>, DriverError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM gp2gp_transfers WHERE conversation_id = {}",
        ph(db, 1)
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(conversation_id)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// Transfers, newest first.
pub(crate) async fn list_transfers(
    db: &Database,
    nhs_number: Option<&str>,
    limit: i64,
) -> Result<Vec<TransferRow>, DriverError> {
    let rows = match nhs_number {
        Some(nhs) => {
            let sql = format!(
                "SELECT {COLUMNS} FROM gp2gp_transfers WHERE nhs_number = {} \
                 ORDER BY started_at DESC, conversation_id LIMIT {}",
                ph(db, 1),
                ph(db, 2)
            );
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(nhs)
                .bind(limit)
                .fetch_all(db.pool())
                .await?
        }
        None => {
            let sql = format!(
                "SELECT {COLUMNS} FROM gp2gp_transfers \
                 ORDER BY started_at DESC, conversation_id LIMIT {}",
                ph(db, 1)
            );
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(limit)
                .fetch_all(db.pool())
                .await?
        }
    };
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// Open transfers whose deadline has come, or whose actions are still to be done, or
/// that wait for the practice: the ticker's work.
pub(crate) async fn due(db: &Database, now_ms: i64) -> Result<Vec<TransferRow>, DriverError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM gp2gp_transfers WHERE finished_at IS NULL \
         AND (deadline_at <= {} OR pending <> '[]' OR phase = 'awaiting integration') \
         ORDER BY updated_at LIMIT 500",
        ph(db, 1)
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(now_ms)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// Finished transfers still holding actions (a final acknowledgement not yet handed to
/// the MHS when the process stopped).
pub(crate) async fn finished_with_pending(db: &Database) -> Result<Vec<TransferRow>, DriverError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM gp2gp_transfers WHERE finished_at IS NOT NULL AND pending <> '[]'"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .fetch_all(db.pool())
        .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// Counts of transfers by role and phase.
pub(crate) async fn counts(db: &Database) -> Result<Vec<(String, String, i64)>, DriverError> {
    let rows = sqlx::query(
        "SELECT role, phase, COUNT(*) AS n FROM gp2gp_transfers GROUP BY role, phase ORDER BY role, phase",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("role")?, r.try_get("phase")?, r.try_get("n")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DriverError::from)
}

/// The messages of a conversation in time order.
pub(crate) async fn messages(
    db: &Database,
    role: &str,
    conversation_id: &str,
) -> Result<Vec<MessageRow>, DriverError> {
    let sql = format!(
        "SELECT role, conversation_id, message_id, direction, interaction_id, at, acknowledges, \
         ack_type, code, note FROM gp2gp_messages WHERE role = {} AND conversation_id = {} \
         ORDER BY at, direction, message_id",
        ph(db, 1),
        ph(db, 2)
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(role)
        .bind(conversation_id)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(MessageRow {
                role: r.try_get("role")?,
                conversation_id: r.try_get("conversation_id")?,
                message_id: r.try_get("message_id")?,
                direction: r.try_get("direction")?,
                interaction_id: r.try_get("interaction_id")?,
                at: r.try_get("at")?,
                acknowledges: r.try_get("acknowledges")?,
                ack_type: r.try_get("ack_type")?,
                code: r.try_get("code")?,
                note: r.try_get("note")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DriverError::from)
}

/// Whether a message has been taken in already (by this role).
pub(crate) async fn has_message(
    db: &Database,
    role: &str,
    message_id: &str,
    direction: &str,
) -> Result<bool, DriverError> {
    let sql = format!(
        "SELECT 1 AS one FROM gp2gp_messages WHERE role = {} AND message_id = {} AND direction = {}",
        ph(db, 1),
        ph(db, 2),
        ph(db, 3)
    );
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(role)
        .bind(message_id)
        .bind(direction)
        .fetch_optional(db.pool())
        .await?
        .is_some())
}

/// What a write does to the transfer table.
pub(crate) enum Write<'a> {
    /// A new transfer (fails if the conversation exists for this role).
    Insert(&'a TransferRow),
    /// A new version of an existing transfer, if it is still at `expected_version`.
    Update {
        row: &'a TransferRow,
        expected_version: i64,
    },
}

/// Writes a transfer and the messages recorded with it in one transaction. `Ok(false)`
/// when an update lost the race (the row moved on) or an insert found the conversation
/// already there: nothing was written.
pub(crate) async fn write(
    db: &Database,
    write: Write<'_>,
    messages: &[MessageRow],
) -> Result<bool, DriverError> {
    let mut tx = db.pool().begin().await?;
    match write {
        Write::Insert(row) => {
            let sql = format!(
                "INSERT INTO gp2gp_transfers ({COLUMNS}) VALUES ({}) ON CONFLICT DO NOTHING",
                list(db, 1, 16)
            );
            let done = bind_row(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), row)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        Write::Update {
            row,
            expected_version,
        } => {
            let sql = format!(
                "UPDATE gp2gp_transfers SET state = {}, phase = {}, pending = {}, outcome = {}, \
                 outcome_code = {}, updated_at = {}, finished_at = {}, deadline_at = {}, \
                 version = {}, parties = {} WHERE role = {} AND conversation_id = {} AND version = {}",
                ph(db, 1),
                ph(db, 2),
                ph(db, 3),
                ph(db, 4),
                ph(db, 5),
                ph(db, 6),
                ph(db, 7),
                ph(db, 8),
                ph(db, 9),
                ph(db, 10),
                ph(db, 11),
                ph(db, 12),
                ph(db, 13)
            );
            let done = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&row.state)
                .bind(&row.phase)
                .bind(&row.pending)
                .bind(&row.outcome)
                .bind(&row.outcome_code)
                .bind(row.updated_at)
                .bind(row.finished_at)
                .bind(row.deadline_at)
                .bind(row.version)
                .bind(&row.parties)
                .bind(&row.role)
                .bind(&row.conversation_id)
                .bind(expected_version)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
        }
    }
    insert_messages(&mut tx, db, messages).await?;
    tx.commit().await?;
    Ok(true)
}

/// Records messages that change no transfer (a duplicate, an answer to nothing).
pub(crate) async fn record_messages(
    db: &Database,
    messages: &[MessageRow],
) -> Result<(), DriverError> {
    let mut conn = db.pool().acquire().await?;
    insert_messages(&mut conn, db, messages).await
}

async fn insert_messages(
    conn: &mut sqlx::AnyConnection,
    db: &Database,
    messages: &[MessageRow],
) -> Result<(), DriverError> {
    let sql = format!(
        "INSERT INTO gp2gp_messages (role, conversation_id, message_id, direction, \
         interaction_id, at, acknowledges, ack_type, code, note) VALUES ({}) \
         ON CONFLICT DO NOTHING",
        list(db, 1, 10)
    );
    for m in messages {
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&m.role)
            .bind(&m.conversation_id)
            .bind(&m.message_id)
            .bind(&m.direction)
            .bind(&m.interaction_id)
            .bind(m.at)
            .bind(&m.acknowledges)
            .bind(&m.ack_type)
            .bind(&m.code)
            .bind(&m.note)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

fn bind_row<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    row: &'q TransferRow,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(&row.role)
        .bind(&row.conversation_id)
        .bind(&row.ods)
        .bind(&row.peer_ods)
        .bind(&row.nhs_number)
        .bind(&row.parties)
        .bind(&row.state)
        .bind(&row.phase)
        .bind(&row.pending)
        .bind(&row.outcome)
        .bind(&row.outcome_code)
        .bind(row.started_at)
        .bind(row.updated_at)
        .bind(row.finished_at)
        .bind(row.deadline_at)
        .bind(row.version)
}
