//! `kill -9` of the sending practice, the requesting practice or Spine's relay in the middle
//! of a GP2GP transfer, each in a `lloyd serve` process of its own (Spine with the relay;
//! the old practice; the new practice, `[practices] only` + `spine_url`), over real HTTP on
//! loopback with a population from `lloyd seed`.
//!
//! The record moved has a document above 4.5 MB, so it travels as a large message: the
//! extract, the requester's Continue, then the documents as COPC messages (the big one in
//! fragments). The victim is killed (SIGKILL: no shutdown code runs) once the relay has
//! seen the first document go by — or, in two of the tests, as the EhrRequest arrives and
//! while the record waits in the new practice's inbox — and started again on the same
//! port. Each run must end with the record filed once, every document byte-identical to what the old practice
//! holds, both practices' transfers `integrated`, and a national message log that shows
//! one extract and the requester's positive final acknowledgement of it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{KillOnDrop, free_port, lloyd, start_serve};
use serde_json::{Value, json};

const REQUEST: &str = "RCMR_IN010000UK05";
const EXTRACT: &str = "RCMR_IN030000UK06";
const COPC: &str = "COPC_IN000001UK01";
const ACK: &str = "MCCI_IN010000UK13";

/// When the victim dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    /// As soon as the relay has the EhrRequest: the sender may not have read the record.
    RequestArrived,
    /// When the relay has the first document: the rest are still to go.
    FirstDocument,
    /// With the record waiting in the new practice's inbox, before anyone files it: the
    /// final acknowledgement is still to go.
    InInbox,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Spine,
    Sender,
    Requester,
}

struct Cluster {
    _dir: tempfile::TempDir,
    data: PathBuf,
    logs: PathBuf,
    spine_port: u16,
    sender_port: u16,
    requester_port: u16,
    /// The old practice and the new.
    from: String,
    to: String,
    spine: Option<KillOnDrop>,
    sender: Option<KillOnDrop>,
    requester: Option<KillOnDrop>,
    http: reqwest::Client,
}

impl Cluster {
    fn url(port: u16) -> String {
        format!("http://127.0.0.1:{port}")
    }

    fn port(&self, role: Role) -> u16 {
        match role {
            Role::Spine => self.spine_port,
            Role::Sender => self.sender_port,
            Role::Requester => self.requester_port,
        }
    }

    fn spine_url(&self) -> String {
        Self::url(self.spine_port)
    }

    /// Starts `role`'s process and waits until it listens (and, for a practice, until the
    /// practice runs).
    async fn start(&mut self, role: Role) {
        let name = format!("{role:?}").to_lowercase();
        let config = self.data.join(format!("{name}.toml"));
        let practices = match role {
            Role::Spine => "[practices]\nenabled = false\n".to_string(),
            Role::Sender | Role::Requester => {
                let ods = if role == Role::Sender {
                    &self.from
                } else {
                    &self.to
                };
                format!(
                    "[practices]\nonly = [\"{ods}\"]\nspine_url = \"{}\"\n",
                    self.spine_url()
                )
            }
        };
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{}\"\ndata_dir = \"{}\"\n{practices}",
                self.port(role),
                self.data.display()
            ),
        )
        .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{name}.log")))
            .unwrap();
        let mut command = lloyd();
        command
            .args(["serve", "--config"])
            .arg(&config)
            .env("LLOYD_LOG", "warn")
            .stderr(log);
        let what = format!("{role:?} (see {})", self.logs.display());
        let process = start_serve(command, &what).process;
        let slot = match role {
            Role::Spine => &mut self.spine,
            Role::Sender => &mut self.sender,
            Role::Requester => &mut self.requester,
        };
        *slot = Some(process);
        if role != Role::Spine {
            let ods = if role == Role::Sender {
                self.from.clone()
            } else {
                self.to.clone()
            };
            let url = format!("{}/practices/{ods}", Self::url(self.port(role)));
            wait_for(&format!("{role:?} practice {ods} to start"), || async {
                self.http
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            })
            .await;
        }
    }

    /// SIGKILL: the process gets no chance to tidy up.
    fn kill(&mut self, role: Role) {
        let slot = match role {
            Role::Spine => &mut self.spine,
            Role::Sender => &mut self.sender,
            Role::Requester => &mut self.requester,
        };
        let mut process = slot.take().unwrap();
        process.0.kill().unwrap();
        process.0.wait().unwrap();
    }

    /// The national message log of one conversation.
    async fn log(&self, conversation: &str) -> Vec<Value> {
        let Ok(r) = self
            .http
            .get(format!(
                "{}/spine/message-log?conversationId={conversation}",
                self.spine_url()
            ))
            .send()
            .await
        else {
            return Vec::new();
        };
        let Ok(text) = r.text().await else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    async fn status(&self, role: Role, conversation: &str) -> Option<Value> {
        let ods = if role == Role::Sender {
            &self.from
        } else {
            &self.to
        };
        let r = self
            .http
            .get(format!(
                "{}/practices/{ods}/ehr-status/{conversation}",
                Self::url(self.port(role))
            ))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }
}

/// Polls `ready` until it says yes, for at most four minutes.
async fn wait_for<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !ready().await {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn received<'a>(log: &'a [Value], interaction: &'a str) -> impl Iterator<Item = &'a Value> {
    log.iter()
        .filter(move |e| e["event"] == "received" && e["interactionID"] == interaction)
}

/// The patient to move: one of the old practice's, whose record is small but has a
/// document above 4.5 MB (so it is split into fragments) and not too much besides.
async fn patient_with_a_large_document(data: &Path, ods: &str) -> (String, Vec<Vec<u8>>) {
    let practice = open_practice(data, ods).await;
    let mut best: Option<(u64, String)> = None;
    for p in practice.patients().await.unwrap() {
        let Some(plan) = practice.record_plan(&p.nhs_number).await.unwrap() else {
            continue;
        };
        let docs = plan.planned_documents();
        let total: u64 = docs.iter().map(|d| d.bytes).sum();
        let large = docs
            .iter()
            .any(|d| (5_000_000..9_000_000).contains(&d.bytes));
        if large && plan.bytes < 400_000 && best.as_ref().is_none_or(|(t, _)| total < *t) {
            best = Some((total, p.nhs_number.clone()));
        }
    }
    let (_, nhs) = best.expect("the seed gives some patient a document of 5–9 MB");
    let plan = practice.record_plan(&nhs).await.unwrap().unwrap();
    let mut documents = Vec::new();
    for d in plan.planned_documents() {
        let read = practice.read_document(&nhs, &d.id, "test").await.unwrap();
        documents.push(read.bytes.to_vec());
    }
    documents.sort();
    (nhs, documents)
}

async fn open_practice(data: &Path, ods: &str) -> practice::Practice {
    let dir = data.join("practices").join(ods);
    let db = store::Database::open(&format!("sqlite://{}", dir.join("practice.db").display()))
        .await
        .unwrap();
    let payloads = store::PayloadStore::on_disk(&dir.join("payloads")).unwrap();
    practice::Practice::open(
        ods,
        db,
        payloads,
        Arc::new(clock::SystemClock),
        practice::AutoIntegration { enabled: false },
    )
    .await
    .unwrap()
}

/// The documents the new practice filed for a conversation, sorted.
fn received_documents(data: &Path, ods: &str, conversation: &str) -> Vec<Vec<u8>> {
    let dir = data
        .join("practices")
        .join(ods)
        .join("payloads/practice")
        .join(ods)
        .join("documents")
        .join(conversation);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    out
}

async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let logs = dir.path().to_path_buf();
    let out = lloyd()
        .args([
            "seed",
            "--practices",
            "2",
            "--patients",
            "600",
            "--seed",
            "7",
        ])
        .arg("--attachments")
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut codes: Vec<String> = std::fs::read_dir(data.join("practices"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    codes.sort();
    let mut c = Cluster {
        _dir: dir,
        data,
        logs,
        spine_port: free_port(),
        sender_port: free_port(),
        requester_port: free_port(),
        from: codes[0].clone(),
        to: codes[1].clone(),
        spine: None,
        sender: None,
        requester: None,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    };
    c.start(Role::Spine).await;
    // GP2GP's endpoints ask for a retry every two minutes, twice; a test cannot wait that
    // long for each message a dead process missed, so these practices ask for one every
    // second (SDS is where a sender learns it, as on Spine).
    for ods in [&c.from, &c.to] {
        let at = format!("{}/sds/admin/organisations/{ods}", c.spine_url());
        let mut org: Value = c.http.get(&at).send().await.unwrap().json().await.unwrap();
        for system in org["systems"].as_array_mut().unwrap() {
            system["reliability"]["retry_interval"] = json!("PT1S");
            system["reliability"]["retries"] = json!(100);
            system["reliability"]["persist_duration"] = json!("PT10M");
        }
        let r = c.http.put(&at).json(&org).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    c.start(Role::Sender).await;
    c.start(Role::Requester).await;
    c
}

/// Moves a patient with a large document and kills `victim` at `when`.
async fn transfer_surviving_the_death_of(victim: Role, when: Moment) {
    let mut c = cluster().await;
    let (nhs, documents) = patient_with_a_large_document(&c.data, &c.from).await;

    // The patient registers at the new practice: PDS is updated, the EhrRequest goes out.
    let r = c
        .http
        .post(format!(
            "{}/practices/{}/registrations",
            Cluster::url(c.requester_port),
            c.to
        ))
        .json(&json!({"nhsNumber": nhs}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let body: Value = r.json().await.unwrap();
    let conversation = body["conversationId"].as_str().unwrap().to_string();

    let item = format!(
        "{}/practices/{}/inbox/{conversation}",
        Cluster::url(c.requester_port),
        c.to
    );
    let http = c.http.clone();
    let in_inbox = || async {
        http.get(&item)
            .header("X-User", "dr.test")
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    };
    match when {
        Moment::RequestArrived => {
            wait_for("the EhrRequest through the relay", || async {
                received(&c.log(&conversation).await, REQUEST).count() >= 1
            })
            .await;
        }
        // The requester's Continue is the first COPC; the second is a document.
        Moment::FirstDocument => {
            wait_for("the first document through the relay", || async {
                received(&c.log(&conversation).await, COPC).count() >= 2
            })
            .await;
        }
        Moment::InInbox => wait_for("the record in the new practice's inbox", in_inbox).await,
    }
    c.kill(victim);
    let before = c.log(&conversation).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.start(victim).await;

    // The new practice's clinician files the record once it is in the inbox.
    wait_for("the record in the new practice's inbox", in_inbox).await;
    let r = c
        .http
        .post(format!("{item}/accept"))
        .header("X-User", "dr.test")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    for side in [Role::Requester, Role::Sender] {
        wait_for(&format!("the {side:?} to finish"), || async {
            c.status(side, &conversation)
                .await
                .is_some_and(|s| s["finished"] == true)
        })
        .await;
        let s = c.status(side, &conversation).await.unwrap();
        assert_eq!(s["phase"], "integrated", "{side:?}: {s:#}");
    }

    // Every document arrived whole, once.
    assert_eq!(
        received_documents(&c.data, &c.to, &conversation),
        documents,
        "the documents the new practice filed differ from the old practice's"
    );
    let practice = open_practice(&c.data, &c.to).await;
    let inbox = practice.inbox(None).await.unwrap();
    assert_eq!(
        inbox
            .iter()
            .filter(|i| i.conversation_id == conversation)
            .count(),
        1
    );

    // The national log: the victim died mid-transfer, one extract went by, and the
    // requester's final acknowledgement of it is positive.
    let log = c.log(&conversation).await;
    assert!(
        received(&before, ACK)
            .filter(|a| received(&before, EXTRACT).any(|x| x["GUID"] == a["messageRef"]))
            .count()
            == 0,
        "the transfer had already been acknowledged when the {victim:?} was killed"
    );
    if when == Moment::FirstDocument {
        assert!(
            received(&before, COPC).count() < received(&log, COPC).count(),
            "every document had gone by when the {victim:?} was killed: {log:#?}"
        );
    }
    let extracts: Vec<&Value> = received(&log, EXTRACT).collect();
    assert_eq!(extracts.len(), 1, "{log:#?}");
    let final_acks: Vec<&Value> = received(&log, ACK)
        .filter(|a| a["messageRef"] == extracts[0]["GUID"])
        .collect();
    assert_eq!(final_acks.len(), 1, "{log:#?}");
    assert_eq!(final_acks[0]["jdiEvent"], "NONE", "{log:#?}");
    // No message was forwarded twice as a new one: GUIDs received are unique.
    let mut guids: Vec<&str> = log
        .iter()
        .filter(|e| e["event"] == "received")
        .filter_map(|e| e["GUID"].as_str())
        .collect();
    let all = guids.len();
    guids.sort_unstable();
    guids.dedup();
    assert_eq!(guids.len(), all, "{log:#?}");
    assert!(
        log.iter().all(|e| e["event"] != "failed"),
        "a message was given up: {log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sending_practice_killed_mid_transfer_resumes_and_the_record_arrives_once() {
    transfer_surviving_the_death_of(Role::Sender, Moment::FirstDocument).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requesting_practice_killed_mid_transfer_resumes_and_the_record_arrives_once() {
    transfer_surviving_the_death_of(Role::Requester, Moment::FirstDocument).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_killed_mid_transfer_resumes_and_the_record_arrives_once() {
    transfer_surviving_the_death_of(Role::Spine, Moment::FirstDocument).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sending_practice_killed_as_the_request_arrives_still_sends_the_record_once() {
    transfer_surviving_the_death_of(Role::Sender, Moment::RequestArrived).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requesting_practice_killed_with_the_record_in_its_inbox_keeps_it_and_acknowledges_once()
 {
    transfer_surviving_the_death_of(Role::Requester, Moment::InInbox).await;
}
