//! A small network for the relay tests: Spine (SDS, the relay, its log) served on a
//! loopback port, and real `mhs::Mhs` practices whose SDS is that Spine, so their GP2GP
//! messages go MHS → relay → MHS; realistic HL7 payloads from the conformance corpus.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clock::ManualClock;
use serde_json::Value;
use spine::sds::{Organisation, Reliability, System};
use tokio::sync::watch;

pub const START_MS: i64 = 1_714_555_800_000; // 2024-05-01T09:30:00Z

pub const GP2GP: &str = "urn:nhs:names:services:gp2gp";
pub const EHR_REQUEST: &str = "RCMR_IN010000UK05";
pub const EHR_EXTRACT: &str = "RCMR_IN030000UK06";
pub const ACK: &str = "MCCI_IN010000UK13";
pub const COPC: &str = "COPC_IN000001UK01";

/// The requesting practice (the patient's new one): "A" in the tests.
pub const A_ODS: &str = "N82668";
pub const A_PARTY: &str = "N82668-820670";
pub const A_ASID: &str = "200000000205";
/// The sending practice (where the record is): "B".
pub const B_ODS: &str = "B86041";
pub const B_PARTY: &str = "B86041-822103";
pub const B_ASID: &str = "200000001161";

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database (SQLite in the directory, or a fresh PostgreSQL database) and a payload
/// directory, outliving restarts.
pub struct Storage {
    url: String,
    dir: tempfile::TempDir,
}

impl Storage {
    async fn new(pg: Option<&store::testing::TempPostgres>) -> Storage {
        let dir = tempfile::tempdir().unwrap();
        let url = match pg {
            Some(pg) => pg.fresh_database().await.unwrap(),
            None => format!("sqlite://{}/lloyd.db", dir.path().display()),
        };
        Storage { url, dir }
    }

    async fn open(&self) -> (store::Database, store::PayloadStore) {
        let payloads = store::PayloadStore::on_disk(&self.dir.path().join("payloads"));
        (
            store::Database::open(&self.url).await.unwrap(),
            payloads.unwrap(),
        )
    }
}

/// The country on one machine: Spine (relay on) and the practices' MHSs, each on its own
/// database of one engine, all on one manual clock.
pub struct Net {
    pub clock: ManualClock,
    pub node: SpineNode,
    spine_storage: Storage,
    storages: Mutex<Vec<Storage>>,
    pg: Option<store::testing::TempPostgres>,
}

impl Net {
    pub async fn start(backend: Backend, relay: spine::relay::RelayConfig) -> Net {
        let pg =
            (backend == Backend::Postgres).then(|| store::testing::TempPostgres::start().unwrap());
        let clock = ManualClock::new(START_MS);
        let spine_storage = Storage::new(pg.as_ref()).await;
        let node =
            SpineNode::start(&spine_storage, Arc::new(clock.clone()), any_port(), relay).await;
        Net {
            clock,
            node,
            spine_storage,
            storages: Mutex::new(Vec::new()),
            pg,
        }
    }

    pub fn shared_clock(&self) -> clock::SharedClock {
        Arc::new(self.clock.clone())
    }

    /// A practice's MHS on a database of its own, routing by this Spine's SDS.
    pub async fn practice(
        &self,
        party_key: &str,
        ods: &str,
        listen: SocketAddr,
        tls: Option<mhs::TlsConfig>,
    ) -> mhs::Mhs {
        let storage = Storage::new(self.pg.as_ref()).await;
        let m = practice(
            party_key,
            ods,
            &storage,
            self.shared_clock(),
            &self.node.base,
            listen,
            tls,
        )
        .await;
        self.storages.lock().unwrap().push(storage);
        m
    }

    /// Kills Spine and starts it again on the same database and port.
    pub async fn restart(&mut self, relay: spine::relay::RelayConfig) {
        let addr = self.node.addr;
        self.node.kill();
        self.node = SpineNode::start(&self.spine_storage, self.shared_clock(), addr, relay).await;
    }
}

/// Spine on a loopback port, killable like a process.
pub struct SpineNode {
    pub base: String,
    pub addr: SocketAddr,
    spine: Option<spine::Spine>,
    server: Option<mhs::Server>,
}

impl SpineNode {
    /// Starts Spine (relay on) on `storage`, listening on `addr` (port 0: any).
    pub async fn start(
        storage: &Storage,
        clock: clock::SharedClock,
        addr: SocketAddr,
        relay: spine::relay::RelayConfig,
    ) -> SpineNode {
        let listener = bind(addr).await;
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let (db, payloads) = storage.open().await;
        let config = spine::Config {
            relay,
            ..spine::Config::default()
        };
        let spine = spine::Spine::start(db, payloads, clock, &config, &base)
            .await
            .unwrap();
        let server = mhs::serve(listener, spine.router(), None).unwrap();
        SpineNode {
            base,
            addr,
            spine: Some(spine),
            server: Some(server),
        }
    }

    pub fn relay(&self) -> &spine::relay::Relay {
        self.spine.as_ref().unwrap().relay.as_deref().unwrap()
    }

    /// Stops it at once, like `kill -9`: connections cut, forwarding stopped mid-way.
    pub fn kill(&mut self) {
        drop(self.server.take());
        drop(self.spine.take());
    }

    /// The directory: A, B and any others.
    pub async fn set_directory(&self, orgs: &[Organisation]) {
        let spine = self.spine.as_ref().unwrap();
        spine.sds.directory.upsert_many(orgs).await.unwrap();
    }

    /// The national message log over HTTP (`query` like `conversationId=C`).
    pub async fn log(&self, query: &str) -> Vec<Value> {
        let r = reqwest::get(format!("{}/spine/message-log?{query}", self.base))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "application/x-ndjson"
        );
        let text = r.text().await.unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Binds `addr`, retrying a little while the port a killed server held is released.
pub async fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    for _ in 0..100 {
        if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("cannot bind {addr}");
}

/// A loopback address nobody listens on (yet).
pub async fn free_addr() -> SocketAddr {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A practice's MHS, routing by the Spine's SDS, listening on `listen`.
async fn practice(
    party_key: &str,
    ods: &str,
    storage: &Storage,
    clock: clock::SharedClock,
    sds_base: &str,
    listen: SocketAddr,
    tls: Option<mhs::TlsConfig>,
) -> mhs::Mhs {
    let mut c = mhs::MhsConfig::new(party_key, ods);
    c.listen = Some(listen);
    c.tls = tls;
    c.sds = Some(mhs::SdsConfig {
        base_url: format!("{sds_base}/sds"),
        api_key: None,
        cache_ttl: Duration::from_secs(300),
    });
    c.attempt_timeout = Duration::from_secs(5);
    let (db, payloads) = storage.open().await;
    mhs::Mhs::start(c, db, payloads, clock).await.unwrap()
}

pub fn inbound_url(m: &mhs::Mhs, scheme: &str) -> String {
    let addr = m.inbound_addr().unwrap();
    let host = if scheme == "https" {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    format!("{scheme}://{host}/")
}

pub fn gp2gp(interaction: &str) -> String {
    format!("{GP2GP}:{interaction}")
}

/// An organisation with one system.
pub fn org(
    ods: &str,
    supplier: &str,
    asid: &str,
    party_key: &str,
    address: &str,
    receives: &[&str],
    reliability: Reliability,
) -> Organisation {
    Organisation {
        ods: ods.into(),
        name: format!("Practice {ods}"),
        supplier: Some(supplier.into()),
        systems: vec![System {
            asid: asid.into(),
            party_key: party_key.into(),
            cpa_id: None,
            fqdn: None,
            address: address.into(),
            interactions: receives.iter().map(|i| gp2gp(i)).collect(),
            reliability,
            manufacturer_ods: None,
        }],
    }
}

/// Reliability for tests: a retry a minute (of the manual clock), `retries` of them.
pub fn reliability(retries: u32) -> Reliability {
    Reliability {
        retry_interval: Some("PT1M".into()),
        retries: Some(retries),
        persist_duration: Some("PT1H".into()),
        ..Reliability::default()
    }
}

/// A (EMIS) receives extracts, acks and COPC; B (TPP) receives requests, acks and COPC.
pub fn directory(a_address: &str, b_address: &str, b_retries: u32) -> Vec<Organisation> {
    vec![
        org(
            A_ODS,
            "EMIS",
            A_ASID,
            A_PARTY,
            a_address,
            &[EHR_EXTRACT, ACK, COPC],
            reliability(3),
        ),
        org(
            B_ODS,
            "TPP",
            B_ASID,
            B_PARTY,
            b_address,
            &[EHR_REQUEST, ACK, COPC],
            reliability(b_retries),
        ),
    ]
}

fn corpus(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/gp2gp")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The corpus's EhrRequest (A asks B for the record): its id, and the payload.
pub fn ehr_request() -> (String, String) {
    let p = corpus("messages/1_-_EHR_Request_RCMR_IN010000UK13__payload.xml");
    ("DFF5321C-C6EA-468E-BBC2-B0E48000E071".into(), p)
}

/// The corpus's EhrExtract (Scenario 1), sent by B to A.
pub fn ehr_extract() -> (String, String) {
    let json: Value = serde_json::from_str(&corpus("large-message/Scenario_1__uk06.json")).unwrap();
    let p = json["payload"]
        .as_str()
        .unwrap()
        .replace("276827251543", A_ASID)
        .replace("715373337545", B_ASID);
    ("C258107F-7A3F-4FB5-8B36-D7C0F6496A17".into(), p)
}

/// The corpus's negative acknowledgement (AE, reason 99), sent by A to B about `extract`.
pub fn ack_ae(extract: &str) -> (String, String) {
    let p = corpus("messages/inbound__acknowledgement__MCCI_IN010000UK13_body_AE.xml")
        .replace("BA229526-ADC6-4F1D-970E-CD9E78A6830E", extract)
        .replace("200000000149", A_ASID);
    ("75049C80-5271-11EA-9384-E83935108FD5".into(), p)
}

/// Sends an HL7 payload from `from` to the organisation `to_ods`, by SDS (through the
/// relay), with the given MessageId.
pub async fn send(
    from: &mhs::Mhs,
    to_ods: &str,
    interaction: &str,
    conversation: &str,
    id: &str,
    payload: String,
) -> String {
    let mut m = mhs::Outbound::gp2gp(
        mhs::Route::Sds {
            ods_code: to_ods.into(),
        },
        interaction,
        conversation,
        payload,
    );
    m.message_id = Some(id.into());
    from.send(m).await.unwrap()
}

/// Waits (bounded) until `check` holds; the bound only stops a broken test hanging.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..1_000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// Takes every message waiting for `m`'s consumer, acknowledging each.
pub async fn drain(m: &mhs::Mhs) -> Vec<mhs::InboundMessage> {
    let mut got = Vec::new();
    while let Some(x) = m.try_next_inbound().await.unwrap() {
        m.ack_inbound(&x.message_id).await.unwrap();
        got.push(x);
    }
    got
}

/// Waits until `m`'s consumer has been handed `n` messages; returns them (acknowledged).
pub async fn take(m: &mhs::Mhs, n: usize) -> Vec<mhs::InboundMessage> {
    let mut got = Vec::new();
    eventually(&format!("{n} messages for the consumer"), async || {
        got.extend(drain(m).await);
        got.len() >= n
    })
    .await;
    got
}

/// Waits until the relay's forwarding of `id` satisfies `pred`.
pub async fn forwarding(
    relay: &spine::relay::Relay,
    id: &str,
    pred: impl Fn(&mhs::OutboundState) -> bool,
) -> mhs::OutboundState {
    let mut last = None;
    for _ in 0..1_000 {
        let s = relay.forward_state(id).await.unwrap();
        if let Some(s) = &s
            && pred(s)
        {
            return s.clone();
        }
        last = s;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("forwarding of {id} never reached the state; last {last:?}");
}

/// An ebXML message on the wire, as an MHS would post it to the relay.
pub fn wire(
    to: &str,
    id: &str,
    conversation: &str,
    interaction: &str,
    payload: &str,
) -> (String, Vec<u8>) {
    let header = ebxml::MessageHeader {
        from: ebxml::Party::spine(A_PARTY),
        to: ebxml::Party::spine(to),
        cpa_id: "S20001A000100".into(),
        conversation_id: conversation.into(),
        service: GP2GP.into(),
        action: interaction.into(),
        message_data: ebxml::MessageData {
            message_id: id.into(),
            timestamp: "2024-05-01T09:30:00Z".into(),
            ref_to_message_id: None,
            time_to_live: None,
        },
        duplicate_elimination: true,
    };
    let body = ebxml::OutboundMessage::builder(header)
        .reliable()
        .payload("payload@test", payload.to_string())
        .build(&ebxml::Limits::default())
        .unwrap()
        .into_body(ebxml::Boundary::random())
        .unwrap();
    let ct = body.content_type();
    let mut out = Vec::new();
    body.write_to(&mut out).unwrap();
    (ct, out)
}

/// Posts a wire message to the relay: the HTTP status and the parsed answer.
pub async fn post_to_relay(
    node: &SpineNode,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, ebxml::Reply) {
    let r = reqwest::Client::new()
        .post(format!("{}/reliablemessaging/forwardreliable", node.base))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.bytes().await.unwrap();
    (
        status,
        ebxml::Reply::parse(&text, &ebxml::Limits::default()).unwrap(),
    )
}

/// A proxy in front of an MHS that passes each request on and, while its gate is shut,
/// holds the answer back: the receiver has the message, the relay has not heard.
pub struct Gate {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    pub answered_by_target: Arc<AtomicUsize>,
    open: watch::Sender<bool>,
    _server: mhs::Server,
}

impl Gate {
    pub async fn start(target: String) -> Gate {
        let (open, opened) = watch::channel(false);
        let requests = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let (req, ans) = (requests.clone(), answered.clone());
        let client = reqwest::Client::new();
        let app = axum::Router::new().fallback(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (client, target, mut opened) = (client.clone(), target.clone(), opened.clone());
                let (req, ans) = (req.clone(), ans.clone());
                async move {
                    req.fetch_add(1, Ordering::SeqCst);
                    let mut r = client.post(&target).body(body);
                    if let Some(ct) = headers.get("content-type") {
                        r = r.header("content-type", ct.clone());
                    }
                    let answer = r.send().await.unwrap();
                    let status = answer.status();
                    let ct = answer.headers().get("content-type").cloned();
                    let bytes = answer.bytes().await.unwrap();
                    ans.fetch_add(1, Ordering::SeqCst);
                    let _ = opened.wait_for(|o| *o).await;
                    let mut response = axum::response::Response::new(axum::body::Body::from(bytes));
                    *response.status_mut() = status;
                    if let Some(ct) = ct {
                        response.headers_mut().insert("content-type", ct);
                    }
                    response
                }
            },
        );
        let listener = bind(any_port()).await;
        let addr = listener.local_addr().unwrap();
        let server = mhs::serve(listener, app, None).unwrap();
        Gate {
            addr,
            requests,
            answered_by_target: answered,
            open,
            _server: server,
        }
    }

    pub fn open(&self) {
        let _ = self.open.send(true);
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

/// A certificate authority made now, and an identity it signs for each name (server
/// and client certificates for `localhost`), for mutual TLS.
pub fn identities(names: &[&str]) -> Vec<mhs::TlsConfig> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Test Spine CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::from_params(&ca, &ca_key);
    let identity = |name: &&str| {
        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, *name);
        leaf.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        mhs::TlsConfig {
            cert_chain_pem: leaf.signed_by(&key, &issuer).unwrap().pem(),
            key_pem: key.serialize_pem(),
            ca_pem: ca_pem.clone(),
        }
    };
    names.iter().map(identity).collect()
}

/// The entries of one event.
pub fn events<'a>(log: &'a [Value], event: &str) -> Vec<&'a Value> {
    log.iter().filter(|e| e["event"] == event).collect()
}
