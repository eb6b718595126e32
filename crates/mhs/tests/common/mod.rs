#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
//! Helpers shared by the integration tests: a test CA, MHS instances, databases.

use std::sync::Arc;
use std::time::Duration;

use clock::SharedClock;
use mhs::{Destination, Mhs, MhsConfig, Reliability, Route, TlsConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use store::{Database, PayloadStore};

/// A certificate authority made at test time.
pub struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    pub pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa { params, key, pem }
    }

    /// A certificate for an MHS (server and client), valid for localhost and 127.0.0.1.
    pub fn issue(&self, common_name: &str) -> TlsConfig {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, common_name);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = p.signed_by(&key, &issuer).unwrap();
        TlsConfig {
            cert_chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: self.pem.clone(),
        }
    }
}

/// Which database a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database and payload directory that outlive MHS restarts.
pub struct Storage {
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Storage {
    pub async fn new(backend: Backend, pg: Option<&store::testing::TempPostgres>) -> Storage {
        let dir = tempfile::tempdir().unwrap();
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}/mhs.db", dir.path().display()),
            Backend::Postgres => pg.unwrap().fresh_database().await.unwrap(),
        };
        Storage { url, dir }
    }

    pub async fn open(&self) -> (Database, PayloadStore) {
        let db = Database::open(&self.url).await.unwrap();
        let payloads = PayloadStore::on_disk(&self.dir.path().join("payloads")).unwrap();
        (db, payloads)
    }

    pub async fn count(&self, table: &str) -> i64 {
        let db = Database::open(&self.url).await.unwrap();
        let row = store::sqlx::query(store::sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM {table}"
        )))
        .fetch_one(db.pool())
        .await
        .unwrap();
        use store::sqlx::Row;
        let n: i64 = row.try_get("n").unwrap();
        db.close().await;
        n
    }

    pub fn payload_files(&self) -> usize {
        fn walk(p: &std::path::Path) -> usize {
            let Ok(entries) = std::fs::read_dir(p) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        }
        walk(&self.dir.path().join("payloads"))
    }
}

pub fn config(party_key: &str, tls: Option<TlsConfig>) -> MhsConfig {
    let mut c = MhsConfig::new(party_key, "ODS");
    c.listen = Some("127.0.0.1:0".parse().unwrap());
    c.tls = tls;
    c.reliability = fast_reliability();
    c.attempt_timeout = Duration::from_secs(5);
    c
}

pub fn fast_reliability() -> Reliability {
    Reliability {
        retry_interval: Duration::from_millis(100),
        retries: 100,
        persist_duration: Duration::from_secs(600),
    }
}

pub async fn start(config: MhsConfig, storage: &Storage, clock: SharedClock) -> Mhs {
    let (db, payloads) = storage.open().await;
    Mhs::start(config, db, payloads, clock).await.unwrap()
}

pub fn system_clock() -> SharedClock {
    Arc::new(clock::SystemClock)
}

/// A route straight to an address, as SDS would give it.
pub fn direct(address: String, party_key: &str) -> Route {
    Route::Direct(Destination {
        address,
        party_key: party_key.to_string(),
        cpa_id: "S20001A000100".to_string(),
        asid: None,
        reliability: fast_reliability(),
    })
}

pub fn ehr_request(n: usize) -> String {
    format!(
        "<RCMR_IN010000UK05 xmlns=\"urn:hl7-org:v3\"><id root=\"{n}\"/>{}</RCMR_IN010000UK05>",
        "x".repeat(200)
    )
}

/// A plain HTTP(S) exchange for tests: status, headers, body.
pub async fn http_call(
    client: &mhs::tls::HttpClient,
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<bytes::Bytes>,
) -> Result<(http::StatusCode, http::HeaderMap, bytes::Bytes), String> {
    use http_body_util::BodyExt;
    let mut r = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = client
        .request(r.body(http_body_util::Full::new(body.into())).unwrap())
        .await
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// A wire message (content type, body) to `to`, as another MHS would send it.
pub fn wire_message(to: &str, message_id: &str) -> (String, Vec<u8>) {
    let header = ebxml::MessageHeader {
        from: ebxml::Party::spine("A-1"),
        to: ebxml::Party::spine(to),
        cpa_id: "S20001A000100".into(),
        conversation_id: "CONV-W".into(),
        service: ebxml::SERVICE_GP2GP.into(),
        action: "RCMR_IN010000UK05".into(),
        message_data: ebxml::MessageData {
            message_id: message_id.into(),
            timestamp: "2024-05-01T10:00:00Z".into(),
            ref_to_message_id: None,
            time_to_live: None,
        },
        duplicate_elimination: true,
    };
    let body = ebxml::OutboundMessage::builder(header)
        .reliable()
        .payload("payload@test", ehr_request(0))
        .build(&ebxml::Limits::default())
        .unwrap()
        .into_body(ebxml::Boundary::random())
        .unwrap();
    let ct = body.content_type();
    let mut wire = Vec::new();
    body.write_to(&mut wire).unwrap();
    (ct, wire)
}

/// Captures tracing output (for a current-thread test) into a buffer.
#[derive(Clone, Default)]
pub struct LogBuffer(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let me = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogWriter(me.clone()))
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

pub struct LogWriter(LogBuffer);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
