//! Per-service schema migrations.
//!
//! Each service declares its tables as an ordered list of [`Migration`]s, each with the
//! SQL for both engines. [`Database::migrate`] applies the ones not yet applied, each in
//! its own transaction, and records them in `lloyd_migrations` under the service's name.
//! A database that holds a newer version than the code knows is refused rather than used.

use sqlx::Row;

use crate::{Database, Kind, StoreError};

/// One step of a service's schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// 1, 2, 3… in order, never reused.
    pub version: i64,
    pub description: &'static str,
    /// Statements for SQLite, separated by `;`.
    pub sqlite: &'static str,
    /// Statements for PostgreSQL, separated by `;`.
    pub postgres: &'static str,
}

impl Database {
    /// Brings `service`'s tables up to the last of `migrations`.
    pub async fn migrate(&self, service: &str, migrations: &[Migration]) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS lloyd_migrations (
                service TEXT NOT NULL,
                version BIGINT NOT NULL,
                description TEXT NOT NULL,
                PRIMARY KEY (service, version))",
        )
        .execute(self.pool())
        .await?;
        let row = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) AS v FROM lloyd_migrations WHERE service = $1",
        )
        .bind(service)
        .fetch_one(self.pool())
        .await?;
        let current: i64 = row.try_get("v")?;
        let known = migrations.iter().map(|m| m.version).max().unwrap_or(0);
        if current > known {
            return Err(StoreError::TooNew {
                service: service.to_string(),
                found: current,
                known,
            });
        }
        let mut pending: Vec<&Migration> =
            migrations.iter().filter(|m| m.version > current).collect();
        pending.sort_by_key(|m| m.version);
        for m in pending {
            let fail = |source| StoreError::Migration {
                service: service.to_string(),
                version: m.version,
                description: m.description.to_string(),
                source,
            };
            let sql = match self.kind() {
                Kind::Sqlite => m.sqlite,
                Kind::Postgres => m.postgres,
            };
            let mut tx = self.pool().begin().await.map_err(fail)?;
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
            }
            sqlx::query(
                "INSERT INTO lloyd_migrations (service, version, description) VALUES ($1, $2, $3)",
            )
            .bind(service)
            .bind(m.version)
            .bind(m.description)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
        }
        Ok(())
    }
}
