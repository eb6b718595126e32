//! What the end-to-end transfer tests share: Spine (SDS, PDS and the relay with its
//! national message log) and two practices' MHSs on one loopback listener, each practice's
//! GP2GP driver running against a small clinical system made here; helpers to read the
//! national message log; and an interposer, a small HTTP hop that can sit between the
//! relay and the requesting practice's MHS to hold, reorder, repeat, drop or spoil the
//! large-message parts the old practice sends.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod interposer;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gp2gp::driver::{Arrival, Clinical, Driver, DriverConfig, Running, TransferStatus};
use gp2gp::requester::Integration;
use spine::message_log::LogEntry;

/// The old practice (the sender).
pub const A: &str = "A83001";
pub const A_ASID: &str = "200000000101";
/// The new practice (the requester).
pub const B: &str = "B83002";
pub const B_ASID: &str = "200000000202";
/// A practice in SDS that takes GP2GP acknowledgements but no requests or extracts (and
/// has no MHS running).
pub const C: &str = "C83003";
pub const C_ASID: &str = "200000000303";

pub const REQUEST: &str = "RCMR_IN010000UK05";
pub const EXTRACT: &str = "RCMR_IN030000UK06";
pub const COPC: &str = "COPC_IN000001UK01";
pub const MCCI: &str = "MCCI_IN010000UK13";

pub const GP2GP_INTERACTIONS: [&str; 5] = [
    "urn:nhs:names:services:gp2gp:RCMR_IN010000UK05",
    "urn:nhs:names:services:gp2gp:RCMR_IN030000UK06",
    "urn:nhs:names:services:gp2gp:RCMR_IN030000UK07",
    "urn:nhs:names:services:gp2gp:COPC_IN000001UK01",
    "urn:nhs:names:services:gp2gp:MCCI_IN010000UK13",
];

/// A clinical system held in memory: records by NHS number, documents by file name, and
/// what arrived.
#[derive(Default)]
pub struct TestClinical {
    pub records: HashMap<String, fhir::Bundle>,
    /// Content for documents not in `documents`, chosen by the file name's length.
    pub document_sizes: Vec<usize>,
    /// Exact content of documents, by the attachment's title (or the file name the extract
    /// gives it).
    pub documents: HashMap<String, Bytes>,
    /// A document whose content cannot be read.
    pub unreadable: Option<String>,
    /// Patients whose record cannot be read (the sender fails with 10).
    pub unreadable_records: HashSet<String>,
    pub arrived: Mutex<Vec<Filed>>,
    /// The integration decision for every arrival, unless `decisions` has one for the
    /// patient.
    pub auto: Option<Integration>,
    /// Integration decisions by NHS number.
    pub decisions: HashMap<String, Integration>,
}

impl TestClinical {
    /// A practice that files every record at once.
    pub fn filing() -> TestClinical {
        TestClinical {
            auto: Some(Integration::Integrated),
            ..TestClinical::default()
        }
    }

    fn decide(&self, nhs: &str) -> Option<Integration> {
        self.decisions.get(nhs).copied().or(self.auto)
    }

    /// The records that arrived for `conversation`.
    pub fn arrivals(&self, conversation: &str) -> Vec<Filed> {
        self.arrived
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.conversation_id == conversation)
            .cloned()
            .collect()
    }
}

/// A record as the test practice filed it: the arrival, with its documents read from the
/// driver's payload store when it was delivered (they are removed there once the transfer
/// ends).
#[derive(Debug, Clone)]
pub struct Filed {
    pub arrival: Arrival,
    /// The record, parsed.
    pub bundle: fhir::Bundle,
    pub documents: Vec<gp2gp::large::AssembledDocument>,
}

impl std::ops::Deref for Filed {
    type Target = Arrival;
    fn deref(&self) -> &Arrival {
        &self.arrival
    }
}

/// Deterministic document content of `size` bytes.
pub fn content(seed: usize, size: usize) -> Bytes {
    Bytes::from(
        (0..size)
            .map(|i| (i.wrapping_mul(31).wrapping_add(seed * 7) % 251) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// The clinical system as the driver holds it.
#[derive(Clone)]
pub struct Sys(pub Arc<TestClinical>);

impl std::ops::Deref for Sys {
    type Target = TestClinical;
    fn deref(&self) -> &TestClinical {
        &self.0
    }
}

impl Clinical for Sys {
    async fn same_system(&self, _ods: &str) -> bool {
        false
    }
    async fn is_registered(&self, nhs: &str) -> Result<bool, String> {
        Ok(self.records.contains_key(nhs))
    }
    async fn read_record(&self, nhs: &str, _c: &str) -> Result<Bytes, String> {
        if self.unreadable_records.contains(nhs) {
            return Err("the record store is unavailable".into());
        }
        let record = self.records.get(nhs).ok_or("no record")?;
        Ok(Bytes::from(
            fhir::to_vec(record).map_err(|e| e.to_string())?,
        ))
    }
    async fn read_document(
        &self,
        _nhs: &str,
        file: &translate::DocumentFile,
        _c: &str,
    ) -> Result<Bytes, String> {
        if self.unreadable.as_deref() == Some(file.filename.as_str()) {
            return Err("the document store is unavailable".into());
        }
        if let Some(b) = [file.title.as_ref(), Some(&file.filename)]
            .into_iter()
            .flatten()
            .find_map(|name| self.documents.get(name))
        {
            return Ok(b.clone());
        }
        let i = file.filename.len() % self.document_sizes.len().max(1);
        Ok(content(
            i,
            self.document_sizes.get(i).copied().unwrap_or(1000),
        ))
    }
    async fn deliver(&self, arrival: Arrival) -> Result<Option<Integration>, String> {
        let decision = self.decide(&arrival.nhs_number);
        let mut documents = Vec::new();
        for d in &arrival.documents {
            let bytes = arrival.read_document(d).await.map_err(|e| e.to_string())?;
            assert_eq!(bytes.len() as u64, d.size, "{}", d.filename);
            documents.push(gp2gp::large::AssembledDocument {
                document_id: d.document_id.clone(),
                filename: d.filename.clone(),
                content_type: d.content_type.clone(),
                bytes,
            });
        }
        let mut arrived = self.arrived.lock().unwrap();
        if !arrived
            .iter()
            .any(|a| a.conversation_id == arrival.conversation_id)
        {
            let bundle = fhir::from_slice(&arrival.record).map_err(|e| e.to_string())?;
            arrived.push(Filed {
                arrival,
                bundle,
                documents,
            });
        }
        Ok(decision)
    }
    async fn decision(&self, c: &str) -> Result<Option<Integration>, String> {
        let nhs = self
            .arrived
            .lock()
            .unwrap()
            .iter()
            .find(|a| a.conversation_id == c)
            .map(|a| a.nhs_number.clone());
        Ok(nhs.and_then(|n| self.decide(&n)))
    }
}

/// How a world is made.
pub struct Setup<'a> {
    /// Every practice's database on this throwaway PostgreSQL instead of SQLite files.
    pub pg: Option<&'a store::testing::TempPostgres>,
    /// Patients in PDS: NHS number and the practice PDS says they are registered with.
    pub patients: Vec<(String, Option<String>)>,
    /// Run the old practice's driver (`false`: its MHS only, for tests that play a hostile
    /// or broken sender by hand).
    pub drive_a: bool,
    /// Where the relay forwards the new practice's messages (its own MHS when `None`).
    pub b_address: Option<String>,
    /// The new practice's persist duration in SDS (how long it waits for each part).
    pub b_persist: String,
    /// The new practice's driver's clock (real time when `None`): a [`paced_clock`] lets a
    /// test jump past a deadline once it knows nothing more will arrive.
    pub b_clock: Option<clock::ManualClock>,
}

impl Setup<'_> {
    /// One patient, registered with the new practice on PDS.
    pub fn new(nhs: &str) -> Setup<'static> {
        Setup::patients(&[nhs])
    }

    /// Patients registered with the new practice on PDS.
    pub fn patients(nhs: &[&str]) -> Setup<'static> {
        Setup {
            pg: None,
            patients: nhs
                .iter()
                .map(|n| (n.to_string(), Some(B.into())))
                .collect(),
            drive_a: true,
            b_address: None,
            b_persist: "PT5M".into(),
            b_clock: None,
        }
    }
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub base: String,
    pub a: Option<Running<Sys>>,
    pub b: Running<Sys>,
    pub a_clinical: Arc<TestClinical>,
    pub b_clinical: Arc<TestClinical>,
    pub a_parts: PracticeParts,
    pub b_parts: PracticeParts,
    pub http: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
    _mhs: Vec<mhs::Mhs>,
    _spine: spine::Spine,
}

#[derive(Clone)]
pub struct PracticeParts {
    pub db: store::Database,
    pub payloads: store::PayloadStore,
    pub mhs: mhs::MhsHandle,
    pub clinical: Arc<TestClinical>,
}

fn system(
    ods: &str,
    asid: &str,
    address: String,
    interactions: &[&str],
    persist: &str,
) -> spine::sds::Organisation {
    spine::sds::Organisation {
        ods: ods.into(),
        name: format!("Practice {ods}"),
        supplier: Some(format!("Supplier of {ods}")),
        systems: vec![spine::sds::System {
            asid: asid.into(),
            party_key: format!("{ods}-{}", &asid[..6]),
            cpa_id: Some(format!("S{asid}")),
            fqdn: None,
            address,
            interactions: interactions.iter().map(|s| s.to_string()).collect(),
            reliability: spine::sds::Reliability {
                retry_interval: Some("PT1S".into()),
                retries: Some(3),
                persist_duration: Some(persist.into()),
                ..spine::sds::Reliability::default()
            },
            manufacturer_ods: None,
        }],
    }
}

async fn practice_parts(
    dir: &Path,
    ods: &str,
    asid: &str,
    base: &str,
    clinical: Arc<TestClinical>,
    pg: Option<&store::testing::TempPostgres>,
) -> (mhs::Mhs, PracticeParts) {
    let url = match pg {
        Some(pg) => pg.fresh_database().await.unwrap(),
        None => format!("sqlite://{}", dir.join(format!("{ods}.db")).display()),
    };
    let db = store::Database::open(&url).await.unwrap();
    let payloads = store::PayloadStore::on_disk(&dir.join(format!("{ods}-payloads"))).unwrap();
    let mut config = mhs::MhsConfig::new(format!("{ods}-{}", &asid[..6]), ods);
    config.asid = Some(asid.into());
    config.sds = Some(mhs::SdsConfig {
        base_url: format!("{base}/sds"),
        api_key: None,
        cache_ttl: Duration::from_secs(60),
    });
    config.reliability.retry_interval = Duration::from_secs(1);
    let clock: clock::SharedClock = Arc::new(clock::SystemClock);
    let m = mhs::Mhs::start(config, db.clone(), payloads.clone(), clock)
        .await
        .unwrap();
    let parts = PracticeParts {
        db,
        payloads,
        mhs: m.handle(),
        clinical,
    };
    (m, parts)
}

/// A clock that keeps pace with real time (a task moves it on every 20 ms by the real time
/// that passed) and that a test can also move forward by hand with `advance`.
pub fn paced_clock() -> clock::ManualClock {
    use clock::Clock;
    let paced = clock::ManualClock::new(clock::SystemClock.now_ms());
    let pacer = paced.clone();
    tokio::spawn(async move {
        let mut last = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = Instant::now();
            pacer.advance(now - last);
            last = now;
        }
    });
    paced
}

/// A practice's driver over its parts, started, on real time unless given a clock.
pub async fn driver(
    parts: &PracticeParts,
    ods: &str,
    asid: &str,
    base: &str,
    clock: Option<clock::ManualClock>,
) -> Running<Sys> {
    let mut config = DriverConfig::new(ods, asid);
    config.pds_url = Some(format!("{base}/pds"));
    config.tick = Duration::from_millis(200);
    let clock: clock::SharedClock = match clock {
        Some(c) => Arc::new(c),
        None => Arc::new(clock::SystemClock),
    };
    Driver::open(
        config,
        parts.db.clone(),
        parts.payloads.clone(),
        clock,
        parts.mhs.clone(),
        Sys(parts.clinical.clone()),
    )
    .await
    .unwrap()
    .start()
}

/// One patient registered with B, SQLite, both drivers running.
pub async fn world(a_clinical: TestClinical, b_clinical: TestClinical, patient: &str) -> World {
    World::start(a_clinical, b_clinical, Setup::new(patient)).await
}

impl World {
    pub async fn start(
        a_clinical: TestClinical,
        b_clinical: TestClinical,
        setup: Setup<'_>,
    ) -> World {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let spine_db = store::Database::open(&format!(
            "sqlite://{}",
            dir.path().join("spine.db").display()
        ))
        .await
        .unwrap();
        let spine_payloads =
            store::PayloadStore::on_disk(&dir.path().join("spine-payloads")).unwrap();
        let clock: clock::SharedClock = Arc::new(clock::SystemClock);
        let spine = spine::Spine::start(
            spine_db,
            spine_payloads,
            clock,
            &spine::Config::default(),
            &base,
        )
        .await
        .unwrap();
        let mhs_of = |ods: &str| format!("{base}/practices/{ods}/mhs");
        spine
            .sds
            .directory
            .upsert_many(&[
                system(A, A_ASID, mhs_of(A), &GP2GP_INTERACTIONS, "PT5M"),
                system(
                    B,
                    B_ASID,
                    setup.b_address.clone().unwrap_or_else(|| mhs_of(B)),
                    &GP2GP_INTERACTIONS,
                    &setup.b_persist,
                ),
                system(C, C_ASID, mhs_of(C), &GP2GP_INTERACTIONS[4..], "PT5M"),
            ])
            .await
            .unwrap();
        for (nhs, gp) in &setup.patients {
            spine
                .pds
                .store
                .insert(&spine::pds::PatientRecord {
                    nhs_number: nhs.clone(),
                    family: "Test".into(),
                    given: vec!["Patient".into()],
                    gender: "female".into(),
                    birth_date: "1970-01-01".into(),
                    address_lines: vec![],
                    postcode: None,
                    gp_ods: gp.clone(),
                    managing_ods: None,
                    deceased: None,
                    restricted: false,
                    superseded_by: None,
                })
                .await
                .unwrap();
        }
        let a_clinical = Arc::new(a_clinical);
        let b_clinical = Arc::new(b_clinical);
        let (mhs_a, a_parts) =
            practice_parts(dir.path(), A, A_ASID, &base, a_clinical.clone(), setup.pg).await;
        let (mhs_b, b_parts) =
            practice_parts(dir.path(), B, B_ASID, &base, b_clinical.clone(), setup.pg).await;
        let app = spine
            .router()
            .nest(&format!("/practices/{A}/mhs"), mhs_a.inbound_router())
            .nest(&format!("/practices/{B}/mhs"), mhs_b.inbound_router());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let a = if setup.drive_a {
            Some(driver(&a_parts, A, A_ASID, &base, None).await)
        } else {
            None
        };
        let b = driver(&b_parts, B, B_ASID, &base, setup.b_clock.clone()).await;
        World {
            dir,
            base,
            a,
            b,
            a_clinical,
            b_clinical,
            a_parts,
            b_parts,
            http: reqwest::Client::new(),
            _server: server,
            _mhs: vec![mhs_a, mhs_b],
            _spine: spine,
        }
    }

    /// Where B's own MHS listens (what an interposer passes messages on to).
    pub fn b_mhs_url(&self) -> String {
        format!("{}/practices/{B}/mhs", self.base)
    }

    /// The old practice's running driver.
    pub fn a(&self) -> &Driver<Sys> {
        &self.a.as_ref().expect("A's driver runs").driver
    }

    /// Stops A's driver abruptly (like a crash) and starts it again on the same database.
    pub async fn restart_a(&mut self) {
        drop(self.a.take());
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.a = Some(driver(&self.a_parts, A, A_ASID, &self.base, None).await);
    }

    /// The new practice asks the old one for each patient's record; the conversations.
    pub async fn request_all<'n>(
        &self,
        patients: impl IntoIterator<Item = &'n str>,
    ) -> Vec<String> {
        let mut conversations = Vec::new();
        for nhs in patients {
            conversations.push(self.b.driver.request(nhs, A).await.unwrap());
        }
        conversations
    }

    /// Waits for both ends of `conversation` to finish and checks how: (phase, code) at
    /// the new practice and at the old. Their statuses then.
    pub async fn assert_ends(
        &self,
        conversation: &str,
        requester: (&str, Option<&str>),
        sender: (&str, Option<&str>),
    ) -> (TransferStatus, TransferStatus) {
        let limit = Duration::from_secs(90);
        let r = wait_finished(&self.b.driver, conversation, limit).await;
        assert_eq!(end(&r), requester, "the new practice: {r:#?}");
        let s = wait_finished(self.a(), conversation, limit).await;
        assert_eq!(end(&s), sender, "the old practice: {s:#?}");
        (r, s)
    }

    /// The one record filed for `conversation`, checked to be `nhs`'s.
    pub fn filed_once(&self, conversation: &str, nhs: &str) -> Filed {
        let arrived = self.b_clinical.arrivals(conversation);
        assert_eq!(arrived.len(), 1, "filed once");
        let patient = arrived[0]
            .bundle
            .resources_of::<fhir::Patient>()
            .next()
            .unwrap();
        assert_eq!(patient.nhs_number(), Some(nhs));
        arrived.into_iter().next().unwrap()
    }

    /// The national message log of one conversation, as Spine serves it.
    pub async fn log(&self, conversation: &str) -> Vec<LogEntry> {
        let answer = self
            .http
            .get(format!(
                "{}/spine/message-log?conversationId={conversation}",
                self.base
            ))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
        answer
            .text()
            .await
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until the log of `conversation` satisfies `done`; the log then.
    pub async fn log_until(
        &self,
        conversation: &str,
        done: impl Fn(&[LogEntry]) -> bool,
    ) -> Vec<LogEntry> {
        let start = Instant::now();
        loop {
            let log = self.log(conversation).await;
            if done(&log) {
                return log;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the national log of {conversation} never got there: {log:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The next message A's MHS received, taken (for tests that play A by hand).
    pub async fn a_inbound(&self) -> mhs::InboundMessage {
        let m = tokio::time::timeout(Duration::from_secs(60), self.a_parts.mhs.next_inbound())
            .await
            .expect("a message for A")
            .unwrap();
        self.a_parts.mhs.ack_inbound(&m.message_id).await.unwrap();
        m
    }
}

/// The corpus's full GP Connect record, made `nhs`'s.
pub fn corpus_bundle(nhs: &str) -> fhir::Bundle {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../../../shared/conformance/translation/gpconnect/9465701262_Meyers_full_20210119.json",
    );
    let text = std::fs::read_to_string(path).unwrap();
    // The corpus uses the test-harness NHS number 1234567890; the patient here is another.
    let text = text.replace("1234567890", nhs);
    fhir::from_slice(text.as_bytes()).unwrap()
}

/// NHS numbers in the 999 test range with a valid check digit, different for each `i`.
pub fn nhs_number(i: u32) -> String {
    let mut n = 999_000_000 + i * 10;
    loop {
        let digits: Vec<u32> = n
            .to_string()
            .chars()
            .map(|c| c.to_digit(10).unwrap())
            .collect();
        let sum: u32 = digits.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
        let check = 11 - sum % 11;
        let check = if check == 11 { 0 } else { check };
        if check != 10 {
            return format!("{n}{check}");
        }
        n += 1;
    }
}

/// A synthetic record of about `bytes` of structured data for `nhs` at A, with documents
/// of exactly these sizes; the documents' content, by file name.
pub fn synthetic_record(
    nhs: &str,
    bytes: u64,
    seed: u64,
    document_sizes: &[u64],
) -> (fhir::Bundle, HashMap<String, Bytes>) {
    use translate::synthetic::{
        Demographics, DocumentKind, DocumentPlan, PracticeProfile, RecordPlan, document_bytes,
    };
    let practice = PracticeProfile {
        ods: A.into(),
        name: "Old Surgery".into(),
        address_lines: vec!["1 Old Street".into(), "Leeds".into()],
        postcode: "LS1 1AA".into(),
        phone: "01130000000".into(),
    };
    let patient = Demographics {
        nhs_number: nhs.into(),
        family: Some("Test".into()),
        given: Some("Patient".into()),
        ..Demographics::default()
    };
    let plan = RecordPlan {
        seed,
        bytes,
        documents: document_sizes
            .iter()
            .enumerate()
            .map(|(i, &bytes)| DocumentPlan {
                kind: if i % 2 == 0 {
                    DocumentKind::Pdf
                } else {
                    DocumentKind::Png
                },
                bytes,
            })
            .collect(),
    };
    let bundle = translate::synthetic::record_bundle(&practice, &patient, &plan).unwrap();
    let documents = plan
        .planned_documents()
        .iter()
        .map(|d| {
            let (_, content) = document_bytes(&plan, &patient, &d.id).unwrap();
            (d.file_name(), Bytes::from(content))
        })
        .collect();
    (bundle, documents)
}

pub async fn wait_finished(
    driver: &Driver<Sys>,
    conversation: &str,
    limit: Duration,
) -> TransferStatus {
    wait_phase(driver, conversation, limit, |s| s.summary.finished).await
}

/// Waits until `conversation`'s transfer satisfies `done`.
pub async fn wait_phase(
    driver: &Driver<Sys>,
    conversation: &str,
    limit: Duration,
    done: impl Fn(&TransferStatus) -> bool,
) -> TransferStatus {
    let start = Instant::now();
    loop {
        let status = match driver.status(conversation).await {
            Ok(s) => s,
            // Not there yet (a transfer the other side starts).
            Err(gp2gp::driver::DriverError::UnknownTransfer(_)) if start.elapsed() < limit => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => panic!("{conversation}: {e}"),
        };
        if done(&status) {
            return status;
        }
        assert!(
            start.elapsed() < limit,
            "transfer did not get there in {limit:?}: {}",
            serde_json::to_string_pretty(&status).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A transfer's end as a practice shows it: phase and reason code.
pub fn end(status: &TransferStatus) -> (&str, Option<&str>) {
    (
        status.summary.phase.as_str(),
        status.summary.code.as_deref(),
    )
}

/// The id of the first message `status` lists with this direction and interaction.
pub fn message_id(status: &TransferStatus, direction: &str, interaction: &str) -> String {
    status
        .messages
        .iter()
        .find(|m| m.direction == direction && m.interaction_id == interaction)
        .unwrap_or_else(|| panic!("no {direction} {interaction}: {status:#?}"))
        .message_id
        .clone()
}

/// The log's `received` entry for message `guid`.
pub fn logged<'l>(log: &'l [LogEntry], guid: &str) -> &'l LogEntry {
    log.iter()
        .find(|e| {
            e.guid.eq_ignore_ascii_case(guid) && e.event == spine::message_log::LogEvent::Received
        })
        .unwrap_or_else(|| panic!("{guid} is not in the national log: {log:#?}"))
}

/// Asserts the log holds the new practice's request `request` as sent, no error.
pub fn assert_request_logged(log: &[LogEntry], request: &str) {
    assert_entry(logged(log, request), REQUEST, B_ASID, "NotProvided", "NONE");
}

/// The acknowledgement in the log that answers `acked`, with its `jdiEvent`.
pub fn ack_of<'l>(log: &'l [LogEntry], acked: &str) -> &'l LogEntry {
    log.iter()
        .find(|e| {
            e.interaction_id == MCCI
                && e.event == spine::message_log::LogEvent::Received
                && e.message_ref.eq_ignore_ascii_case(acked)
        })
        .unwrap_or_else(|| panic!("no acknowledgement of {acked} in the national log: {log:#?}"))
}

/// Asserts a log entry's national fields: interaction, who sent it, what it acknowledges
/// and its error code.
pub fn assert_entry(
    e: &LogEntry,
    interaction: &str,
    from_asid: &str,
    message_ref: &str,
    jdi: &str,
) {
    assert_eq!(e.interaction_id, interaction, "{e:#?}");
    assert_eq!(e.message_sender, from_asid, "{e:#?}");
    let to = if from_asid == A_ASID { B_ASID } else { A_ASID };
    assert_eq!(e.message_recipient, to, "{e:#?}");
    assert!(
        e.message_ref.eq_ignore_ascii_case(message_ref),
        "messageRef {} where {message_ref} was expected: {e:#?}",
        e.message_ref
    );
    assert_eq!(e.jdi_event, jdi, "{e:#?}");
    let (from, to_ods) = if from_asid == A_ASID { (A, B) } else { (B, A) };
    assert_eq!(e.from_system, format!("Supplier of {from}"), "{e:#?}");
    assert_eq!(e.to_system, format!("Supplier of {to_ods}"), "{e:#?}");
}
