//! The same suite against both engines: SQLite in a temporary file, and a real
//! PostgreSQL server started for the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use store::sqlx::{self, Row};
use store::testing::TempPostgres;
use store::{Database, Kind, Migration, PayloadError, PayloadStore, StoreError};

const NOTES: &[Migration] = &[
    Migration {
        version: 1,
        description: "notes",
        sqlite: "CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL, at BIGINT NOT NULL)",
        postgres: "CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL, at BIGINT NOT NULL)",
    },
    Migration {
        version: 2,
        description: "note blobs and flags",
        sqlite: "ALTER TABLE notes ADD COLUMN data BLOB; ALTER TABLE notes ADD COLUMN done INTEGER NOT NULL DEFAULT 0",
        postgres: "ALTER TABLE notes ADD COLUMN data BYTEA; ALTER TABLE notes ADD COLUMN done BOOLEAN NOT NULL DEFAULT FALSE",
    },
];

async fn suite(db: &Database) {
    db.migrate("notes", NOTES).await.unwrap();
    // Migrating again is a no-op.
    db.migrate("notes", NOTES).await.unwrap();
    let applied: i64 = sqlx::query("SELECT COUNT(*) AS n FROM lloyd_migrations WHERE service = $1")
        .bind("notes")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(applied, 2);

    // Parameters out of order bind by number on both engines.
    sqlx::query("INSERT INTO notes (at, id, body, data) VALUES ($3, $1, $2, $4)")
        .bind("n1")
        .bind("first")
        .bind(1_700_000_000_000i64)
        .bind(vec![0u8, 1, 2, 255])
        .execute(db.pool())
        .await
        .unwrap();
    let row = sqlx::query("SELECT body, at, data FROM notes WHERE id = $1")
        .bind("n1")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>("body").unwrap(), "first");
    assert_eq!(row.try_get::<i64, _>("at").unwrap(), 1_700_000_000_000);
    assert_eq!(
        row.try_get::<Vec<u8>, _>("data").unwrap(),
        vec![0u8, 1, 2, 255]
    );

    // A duplicate key is refused, and ON CONFLICT DO NOTHING is accepted by both.
    assert!(
        sqlx::query("INSERT INTO notes (id, body, at) VALUES ($1, $2, $3)")
            .bind("n1")
            .bind("again")
            .bind(1i64)
            .execute(db.pool())
            .await
            .is_err()
    );
    let done = sqlx::query(
        "INSERT INTO notes (id, body, at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
    )
    .bind("n1")
    .bind("again")
    .bind(1i64)
    .execute(db.pool())
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 0);

    // A transaction that is not committed leaves nothing behind.
    {
        let mut tx = db.pool().begin().await.unwrap();
        sqlx::query("INSERT INTO notes (id, body, at) VALUES ($1, $2, $3)")
            .bind("n2")
            .bind("half")
            .bind(2i64)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
    }
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM notes")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(n, 1);

    // A bulk insert of 1,000 rows (3,000 parameters) in one statement, with the placeholders
    // each engine wants.
    let mut sql = String::from("INSERT INTO notes (id, body, at) VALUES ");
    for row in 0..1000usize {
        let p = |k: usize| store::placeholder(db.kind(), row * 3 + k);
        sql.push_str(&format!(
            "{}({}, {}, {})",
            if row > 0 { ", " } else { "" },
            p(1),
            p(2),
            p(3)
        ));
    }
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for row in 0..1000i64 {
        q = q
            .bind(format!("bulk-{row}"))
            .bind(format!("body {row}"))
            .bind(row);
    }
    assert_eq!(q.execute(db.pool()).await.unwrap().rows_affected(), 1000);
    let row = sqlx::query("SELECT body, at FROM notes WHERE id = $1")
        .bind("bulk-777")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>("body").unwrap(), "body 777");
    assert_eq!(row.try_get::<i64, _>("at").unwrap(), 777);
    sqlx::query("DELETE FROM notes WHERE id LIKE 'bulk-%'")
        .execute(db.pool())
        .await
        .unwrap();

    // A schema newer than the code is refused.
    let err = db.migrate("notes", &NOTES[..1]).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::TooNew {
                found: 2,
                known: 1,
                ..
            }
        ),
        "{err}"
    );
    // A failing migration rolls back whole and says which one.
    let bad = [Migration {
        version: 3,
        description: "broken",
        sqlite: "CREATE TABLE x (a TEXT); NOT SQL",
        postgres: "CREATE TABLE x (a TEXT); NOT SQL",
    }];
    let all: Vec<Migration> = NOTES.iter().copied().chain(bad).collect();
    let err = db.migrate("notes", &all).await.unwrap_err();
    assert!(
        err.to_string().contains("migration 3 of notes (broken)"),
        "{err}"
    );
    assert!(
        sqlx::query("SELECT * FROM x")
            .fetch_all(db.pool())
            .await
            .is_err(),
        "half a migration stayed"
    );
}

#[tokio::test]
async fn sqlite_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sub/dir/lloyd.db", dir.path().display());
    let db = Database::open(&url).await.unwrap();
    assert_eq!(db.kind(), Kind::Sqlite);
    suite(&db).await;
}

#[tokio::test]
async fn postgres_passes_the_suite() {
    let pg = TempPostgres::start().unwrap();
    let db = Database::open(&pg.fresh_database().await.unwrap())
        .await
        .unwrap();
    assert_eq!(db.kind(), Kind::Postgres);
    suite(&db).await;
    db.close().await;
}

#[tokio::test]
async fn a_bad_address_is_explained() {
    let err = Database::open("mysql://x").await.unwrap_err();
    assert!(err.to_string().contains("sqlite://PATH"), "{err}");
}

#[tokio::test]
async fn payloads_round_trip_on_disk_and_refuse_escaping_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = PayloadStore::on_disk(dir.path()).unwrap();
    let big = Bytes::from(vec![7u8; 3 * 1024 * 1024]);
    store.put("gp2gp/conv-1/msg-1", big.clone()).await.unwrap();
    store
        .put("gp2gp/conv-1/msg-2", Bytes::from_static(b"small"))
        .await
        .unwrap();
    assert_eq!(store.get("gp2gp/conv-1/msg-1").await.unwrap(), big);
    assert_eq!(
        store.list("gp2gp/conv-1").await.unwrap(),
        vec!["gp2gp/conv-1/msg-1", "gp2gp/conv-1/msg-2"]
    );
    store.delete("gp2gp/conv-1/msg-1").await.unwrap();
    store.delete("gp2gp/conv-1/msg-1").await.unwrap();
    assert!(matches!(
        store.get("gp2gp/conv-1/msg-1").await,
        Err(PayloadError::NotFound(_))
    ));
    for bad in ["", "/abs", "a/../b", "a//b", "../x"] {
        assert!(
            matches!(
                store.put(bad, Bytes::new()).await,
                Err(PayloadError::BadKey(_))
            ),
            "{bad}"
        );
    }
    // Nothing was written outside the payload directory.
    assert!(!dir.path().parent().unwrap().join("x").exists());
}

#[tokio::test]
async fn a_payload_written_in_pieces_appears_whole_only_when_finished() {
    let dir = tempfile::tempdir().unwrap();
    let store = PayloadStore::on_disk(dir.path()).unwrap();
    store
        .put("docs/a", Bytes::from_static(b"old"))
        .await
        .unwrap();
    // Pieces of odd sizes spanning more than one part.
    let piece: Vec<u8> = (0..3_000_001u32).map(|i| (i % 251) as u8).collect();
    let mut w = store.writer("docs/a").await.unwrap();
    for _ in 0..4 {
        w.write(&piece).await.unwrap();
    }
    assert_eq!(w.written(), 4 * piece.len() as u64);
    // Not finished: the old payload is still what a reader sees.
    assert_eq!(
        store.get("docs/a").await.unwrap(),
        Bytes::from_static(b"old")
    );
    assert_eq!(w.finish().await.unwrap(), 4 * piece.len() as u64);
    let whole = store.get("docs/a").await.unwrap();
    assert_eq!(whole.len(), 4 * piece.len());
    assert!(whole.chunks(piece.len()).all(|c| c == piece.as_slice()));
    assert_eq!(store.size("docs/a").await.unwrap(), whole.len() as u64);
    assert_eq!(
        store
            .get_range("docs/a", 3_000_000..3_000_003)
            .await
            .unwrap(),
        Bytes::from(vec![piece[3_000_000], piece[0], piece[1]])
    );

    // A writer given up, or dropped, leaves nothing behind under its key.
    let mut w = store.writer("docs/b").await.unwrap();
    w.write(b"half").await.unwrap();
    w.abort().await.unwrap();
    let mut w = store.writer("docs/c").await.unwrap();
    w.write(b"half").await.unwrap();
    drop(w);
    assert!(matches!(
        store.get("docs/b").await,
        Err(PayloadError::NotFound(_))
    ));
    assert!(matches!(
        store.get("docs/c").await,
        Err(PayloadError::NotFound(_))
    ));
    assert_eq!(store.list("docs").await.unwrap(), vec!["docs/a"]);

    // A copy is the same bytes under a new key; the source stays.
    store.copy("docs/a", "kept/a").await.unwrap();
    assert_eq!(store.get("kept/a").await.unwrap(), whole);
    assert_eq!(store.get("docs/a").await.unwrap().len(), whole.len());
    assert!(matches!(
        store.copy("docs/none", "kept/none").await,
        Err(PayloadError::NotFound(_))
    ));
}
