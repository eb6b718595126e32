//! Lloyd's persistence: where state and payloads live.
//!
//! Lloyd runs two ways (see the architecture notes): embedded — one process, a SQLite file,
//! payloads on disk — and scaled — several processes sharing PostgreSQL and an object
//! store. Everything above this crate is written once for both:
//!
//! - [`Database`] is one handle over either database. Queries are plain SQL with `$1`-style
//!   parameters, which both engines accept; types stay within what both share (TEXT,
//!   BIGINT, BLOB/BYTEA, booleans as integers), ids are text and times are Unix
//!   milliseconds. Where the engines truly differ (claiming work with
//!   `FOR UPDATE SKIP LOCKED`, which SQLite's single writer does not need) a service
//!   asks [`Database::kind`] and says it twice. One such difference is speed: SQLite looks
//!   `$n` parameters up by name, which makes a multi-row insert with thousands of
//!   parameters quadratic; bulk loaders write `?` on SQLite (see [`placeholder`]).
//! - Each service owns its tables and brings its own [`Migration`]s, applied once and
//!   recorded per service ([`Database::migrate`]); nobody reads another service's tables.
//! - [`PayloadStore`] keeps message payloads and attachments — large, written once, read
//!   rarely — out of the database, on disk by default.
//! - With the `testing` feature, `testing::TempPostgres` starts a throwaway PostgreSQL
//!   server in a temporary directory, so that every test suite runs against the real thing.

use std::path::Path;
use std::str::FromStr;

pub use sqlx;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

mod migrate;
mod payload;
#[cfg(feature = "testing")]
pub mod testing;

pub use migrate::Migration;
pub use payload::{PayloadError, PayloadStore, PayloadWriter};

/// The `n`th (from 1) query parameter as `kind` wants it in bulk statements: `$n` for
/// PostgreSQL, a positional `?` for SQLite (whose named lookup of `$n` is slow when a
/// statement has thousands of parameters). Use one style per statement.
pub fn placeholder(kind: Kind, n: usize) -> String {
    match kind {
        Kind::Postgres => format!("${n}"),
        Kind::Sqlite => "?".to_string(),
    }
}

/// Which database engine a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the database address '{0}' is not one Lloyd can use: give sqlite://PATH or postgres://USER@HOST:PORT/DB"
    )]
    BadUrl(String),
    #[error("cannot open the database at {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the directory for the database file {path}: {source}")]
    Directory {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("migration {version} of {service} ({description}) failed: {source}")]
    Migration {
        service: String,
        version: i64,
        description: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "the database already holds {service} schema version {found}, newer than this Lloyd knows ({known}): upgrade Lloyd, or point it at another database"
    )]
    TooNew {
        service: String,
        found: i64,
        known: i64,
    },
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

/// A handle on the database, cheap to clone (it is a connection pool).
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    kind: Kind,
}

impl Database {
    /// Opens the database at `url`: `sqlite://PATH` (the file and its directory are created
    /// if missing) or `postgres://…`.
    pub async fn open(url: &str) -> Result<Database, StoreError> {
        sqlx::any::install_default_drivers();
        let kind = if url.starts_with("sqlite:") {
            Kind::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Kind::Postgres
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        let open_err = |source| StoreError::Open {
            url: url.to_string(),
            source,
        };
        let pool = match kind {
            Kind::Sqlite => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:")
                    .split('?')
                    .next()
                    .unwrap_or_default();
                if path != ":memory:"
                    && let Some(dir) = Path::new(path).parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
                        path: path.to_string(),
                        source,
                    })?;
                }
                let with_mode = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                let options = AnyConnectOptions::from_str(&with_mode).map_err(open_err)?;
                AnyPoolOptions::new()
                    // One writer at a time is SQLite's rule; a few readers alongside.
                    .max_connections(if path == ":memory:" { 1 } else { 4 })
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await
                    .map_err(open_err)?
            }
            Kind::Postgres => {
                let options = AnyConnectOptions::from_str(url).map_err(open_err)?;
                AnyPoolOptions::new()
                    .max_connections(16)
                    .connect_with(options)
                    .await
                    .map_err(open_err)?
            }
        };
        if kind == Kind::Sqlite {
            // Write-ahead logging lets readers carry on while one writer commits; it is a
            // property of the file, set once.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        Ok(Database { pool, kind })
    }

    /// Which engine this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The pool, for running queries (`sqlx::query("…").bind(…).execute(db.pool())`).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`, waiting up to the busy timeout for another writer): a transaction
    /// that reads first and writes later would otherwise fail with "database is locked" —
    /// without waiting — whenever another connection wrote in between. On PostgreSQL it
    /// is an ordinary `BEGIN` (lock rows with `FOR UPDATE`).
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.kind {
            Kind::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Kind::Postgres => self.pool.begin().await,
        }
    }

    /// Closes every connection (waits for queries in flight).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
