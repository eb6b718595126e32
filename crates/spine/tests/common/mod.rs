//! Starts the real Spine router on a loopback port for the HTTP tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

pub const START_MS: i64 = 1_714_555_800_000; // 2024-05-01T09:30:00Z

pub struct Server {
    pub base: String,
    pub spine: spine::Spine,
    pub clock: clock::ManualClock,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub fn corpus(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/gp2gp/sds")
        .join(name);
    serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

pub fn directory_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/directory.toml")
}

/// Starts a server on SQLite in a temporary directory (or on `database` if given).
pub async fn start_with(mut config: spine::Config, database: Option<String>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let url =
        database.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("spine.db").display()));
    let db = store::Database::open(&url).await.unwrap();
    let payloads = store::PayloadStore::on_disk(&dir.path().join("payloads")).unwrap();
    let clock = clock::ManualClock::new(START_MS);
    if config.sds.directory.is_none() {
        config.sds.directory = Some(directory_file());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let spine = spine::Spine::start(db, payloads, Arc::new(clock.clone()), &config, &base)
        .await
        .unwrap();
    let app = spine.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        base,
        spine,
        clock,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

pub async fn start() -> Server {
    start_with(spine::Config::default(), None).await
}

/// The structure of a JSON value: member names and nesting, with leaves reduced to their
/// JSON type — what "the same shape as the corpus" means.
pub fn skeleton(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), skeleton(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(skeleton).collect()),
        Value::String(_) => Value::String("string".into()),
        Value::Number(_) => Value::String("number".into()),
        Value::Bool(_) => Value::String("bool".into()),
        Value::Null => Value::Null,
    }
}

/// The Spine error code of an OperationOutcome.
pub fn error_code(v: &Value) -> &str {
    v["issue"][0]["details"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
}
