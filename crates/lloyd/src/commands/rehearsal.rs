//! What `lloyd demo` and `lloyd loadgen` share: Spine and the practices on one loopback
//! listener ([`Stage`]), patients moved the way a receptionist moves them — registered at
//! their new practice over the practices' API, which updates PDS and starts GP2GP — each
//! transfer followed to its end over `GET /ehr-status` with a clinician filing what the
//! practice's rules would not ([`move_patients`]), and the summary ([`summarise`]).
//!
//! Following many transfers by polling alone would cost a status request per transfer per
//! poll; instead each follower also wakes when the requesting practice's GP2GP driver says
//! the conversation changed (the driver's change feed), and polls only as a fallback.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::practices::{self, Practices};

/// Spine and the practices, served on one loopback listener.
pub struct Stage {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub spine: spine::Spine,
    pub practices: Arc<Practices>,
    pub clock: clock::SharedClock,
    listener: Option<tokio::net::TcpListener>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Stage {
    /// Listens on `listen` and opens Spine on `data/lloyd.db` and `data/payloads` (nothing
    /// is served until [`Stage::serve`]).
    pub async fn open(data: &Path, listen: &str) -> Result<Stage, String> {
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            format!(
                "cannot listen on {listen}: {e} (is `lloyd serve` running? try --listen 127.0.0.1:0)"
            )
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the listening address: {e}"))?;
        let base = format!("http://{addr}");
        let clock: clock::SharedClock = Arc::new(clock::SystemClock);
        let (db, payloads) = super::open_local_stores(data, "lloyd.db").await?;
        let spine = spine::Spine::start(
            db,
            payloads,
            clock.clone(),
            &spine::Config::default(),
            &base,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(Stage {
            base,
            spine,
            practices: Arc::new(Practices::default()),
            clock,
            listener: Some(listener),
            server: None,
        })
    }

    /// Serves Spine, then starts every practice seeded under `data/practices` (they ask
    /// SDS who they are over HTTP, so Spine must be answering first). Returns how many.
    pub async fn serve(
        &mut self,
        data: &Path,
        options: &practices::Options,
    ) -> Result<usize, String> {
        let listener = self.listener.take().ok_or("the stage is already serving")?;
        let app = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .merge(self.spine.router())
            .merge(practices::routes(self.practices.clone()));
        self.server = Some(tokio::spawn(
            async move { axum::serve(listener, app).await },
        ));
        practices::start_all(
            &self.practices,
            data,
            &self.base,
            self.clock.clone(),
            options,
        )
        .await
    }

    /// Stops serving and stops the practices.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        self.practices.shutdown().await;
    }
}

/// One patient to move: registered at practice `to`.
#[derive(Debug, Clone)]
pub struct Move {
    pub nhs: String,
    pub to: String,
}

/// How transfers are followed.
#[derive(Debug, Clone)]
pub struct Follow {
    /// Transfers under way at once (a new patient registers as one finishes).
    pub concurrency: usize,
    /// Give up on whatever has not finished by then.
    pub timeout: Duration,
    /// Look at a transfer's status at least this often, woken or not.
    pub poll: Duration,
    /// Draw a progress line on stderr.
    pub progress: bool,
}

/// Every transfer's last status, by conversation id, and how many there were.
#[derive(Debug, Default)]
pub struct Moved {
    pub total: usize,
    pub finished: BTreeMap<String, Value>,
    /// `(practice, conversation)` in the order the registrations were made.
    pub conversations: Vec<(String, String)>,
}

/// Wakes the follower of a conversation when a driver says it changed.
#[derive(Default)]
struct Wakers {
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        match self.waiting.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn watch(&self, conversation: &str) -> Arc<Notify> {
        self.lock()
            .entry(conversation.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    fn forget(&self, conversation: &str) {
        self.lock().remove(conversation);
    }

    /// A change: the follower wakes (or, if it is not waiting yet, finds a permit).
    fn changed(&self, conversation: &str) {
        if let Some(n) = self.lock().get(conversation) {
            n.notify_one();
        }
    }

    fn all_changed(&self) {
        for n in self.lock().values() {
            n.notify_one();
        }
    }
}

/// Registers each patient at their new practice and follows the transfer to its end,
/// `follow.concurrency` at a time. A registration the practice refuses is an error (the
/// population is wrong, not the transfer); a transfer that fails is a result.
pub async fn move_patients(
    stage: &Stage,
    moves: Vec<Move>,
    follow: &Follow,
) -> Result<Moved, String> {
    let total = moves.len();
    let wakers = Arc::new(Wakers::default());
    let mut feeds = Vec::new();
    for hosted in stage.practices.list() {
        let mut changes = hosted.driver.subscribe();
        let wakers = wakers.clone();
        feeds.push(tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(conversation) => wakers.changed(&conversation),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        wakers.all_changed()
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        }));
    }
    let queue = Arc::new(Mutex::new(
        moves.into_iter().enumerate().collect::<VecDeque<_>>(),
    ));
    let results = Arc::new(Mutex::new(Results::default()));
    let done = Arc::new(AtomicUsize::new(0));
    let integrated = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + follow.timeout;
    let http = reqwest::Client::new();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..follow.concurrency.max(1).min(total.max(1)) {
        let worker = Worker {
            http: http.clone(),
            base: stage.base.clone(),
            wakers: wakers.clone(),
            poll: follow.poll,
            deadline,
        };
        let (queue, results, done, integrated) = (
            queue.clone(),
            results.clone(),
            done.clone(),
            integrated.clone(),
        );
        workers.spawn(async move {
            loop {
                let next = match queue.lock() {
                    Ok(mut q) => q.pop_front(),
                    Err(p) => p.into_inner().pop_front(),
                };
                let Some((rank, m)) = next else { return Ok(()) };
                if Instant::now() >= deadline {
                    return Ok(());
                }
                let conversation = worker.register(&m).await?;
                lock(&results)
                    .conversations
                    .push((rank, m.to.clone(), conversation.clone()));
                if let Some(status) = worker.follow(&m.to, &conversation).await? {
                    if status["phase"] == "integrated" {
                        integrated.fetch_add(1, Ordering::Relaxed);
                    }
                    lock(&results).finished.insert(conversation, status);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let progress = follow.progress.then(|| {
        let (done, integrated) = (done.clone(), integrated.clone());
        tokio::spawn(async move {
            let mut shown = String::new();
            loop {
                let line = progress_line(
                    done.load(Ordering::Relaxed),
                    integrated.load(Ordering::Relaxed),
                    total,
                );
                if line != shown {
                    eprint!("\r{line}");
                    let _ = std::io::stderr().flush();
                    shown = line;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    });
    let mut failure = None;
    while let Some(joined) = workers.join_next().await {
        let outcome = joined.map_err(|e| format!("a transfer's follower failed: {e}"));
        if let Err(e) = outcome.and_then(|r| r) {
            failure.get_or_insert(e);
            workers.abort_all();
        }
    }
    if let Some(p) = progress {
        p.abort();
        eprintln!(
            "\r{}",
            progress_line(
                done.load(Ordering::Relaxed),
                integrated.load(Ordering::Relaxed),
                total
            )
        );
    }
    for f in feeds {
        f.abort();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let mut results = std::mem::take(&mut *lock(&results));
    results.conversations.sort();
    Ok(Moved {
        total,
        finished: results.finished,
        conversations: results
            .conversations
            .into_iter()
            .map(|(_, to, c)| (to, c))
            .collect(),
    })
}

#[derive(Default)]
struct Results {
    finished: BTreeMap<String, Value>,
    conversations: Vec<(usize, String, String)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// One follower: registers a patient, then follows that transfer.
struct Worker {
    http: reqwest::Client,
    base: String,
    wakers: Arc<Wakers>,
    poll: Duration,
    deadline: Instant,
}

impl Worker {
    async fn register(&self, m: &Move) -> Result<String, String> {
        let (nhs, to) = (&m.nhs, &m.to);
        let answer = self
            .http
            .post(format!("{}/practices/{to}/registrations", self.base))
            .json(&json!({"nhsNumber": nhs}))
            .send()
            .await
            .map_err(|e| format!("registering {nhs} at {to}: {e}"))?;
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        match body["conversationId"].as_str() {
            Some(c) if status.is_success() => Ok(c.to_string()),
            _ => Err(format!(
                "registering {nhs} at {to} was refused ({status}): {body}"
            )),
        }
    }

    /// Follows one transfer to its end: its last status, or `None` when the deadline came
    /// first.
    async fn follow(&self, to: &str, conversation: &str) -> Result<Option<Value>, String> {
        let woken = self.wakers.watch(conversation);
        let url = format!("{}/practices/{to}/ehr-status/{conversation}", self.base);
        let mut filed = false;
        let result = loop {
            let answer = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let code = answer.status();
            let text = answer.text().await.map_err(|e| format!("{url}: {e}"))?;
            let status: Value = serde_json::from_str(&text).map_err(|e| {
                format!("{url} answered {code} with what is not JSON ({e}): {text}")
            })?;
            if status["finished"].as_bool() == Some(true) {
                break Some(status);
            }
            if status["phase"] == "awaiting integration" && !filed {
                filed = self.accept(to, conversation).await?;
            }
            let now = Instant::now();
            if now >= self.deadline {
                break None;
            }
            let wait = self.poll.min(self.deadline - now);
            let _ = tokio::time::timeout(wait, woken.notified()).await;
        };
        self.wakers.forget(conversation);
        Ok(result)
    }

    /// A record the practice's rules would not file by themselves (something degraded):
    /// the clinician reviews and files it, as a person would. `false` when it is not in
    /// the inbox yet (still being translated): next time round.
    async fn accept(&self, to: &str, conversation: &str) -> Result<bool, String> {
        let url = format!("{}/practices/{to}/inbox/{conversation}/accept", self.base);
        let answer = self
            .http
            .post(&url)
            .header("X-User", "demo:clinician")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let code = answer.status();
        if code == reqwest::StatusCode::NOT_FOUND {
            return Ok(false);
        }
        // (409: the practice's own rules filed it a moment ago.)
        if !code.is_success() && code != reqwest::StatusCode::CONFLICT {
            let text = answer.text().await.unwrap_or_default();
            return Err(format!("{url} answered {code}: {text}"));
        }
        Ok(true)
    }
}

/// The progress line.
pub fn progress_line(done: usize, integrated: usize, total: usize) -> String {
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    format!(
        "[{}{}] {done}/{total} done · {integrated} integrated · {} failed ",
        "#".repeat(filled),
        "-".repeat(width - filled),
        done - integrated
    )
}

/// The `p`th percentile (nearest rank) of sorted values; 0 for none.
pub fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Transfers, integrated, failed by reason code (and `unfinished`), and the p50 / p99 /
/// max of each transfer's time from request to its end as the requesting practice
/// recorded it.
pub fn summarise(moved: &Moved, elapsed: Duration) -> Value {
    let mut durations: Vec<i64> = moved
        .finished
        .values()
        .filter_map(|s| Some(s["finishedAt"].as_i64()? - s["startedAt"].as_i64()?))
        .collect();
    durations.sort_unstable();
    let integrated = moved
        .finished
        .values()
        .filter(|s| s["phase"] == "integrated")
        .count();
    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    for s in moved
        .finished
        .values()
        .filter(|s| s["phase"] != "integrated")
    {
        *failed
            .entry(s["code"].as_str().unwrap_or("none").to_string())
            .or_default() += 1;
    }
    let unfinished = moved.total - moved.finished.len();
    if unfinished > 0 {
        failed.insert("unfinished".into(), unfinished);
    }
    json!({
        "transfers": moved.total,
        "integrated": integrated,
        "failed": failed,
        "p50_ms": percentile(&durations, 50.0),
        "p99_ms": percentile(&durations, 99.0),
        "max_ms": durations.last().copied().unwrap_or(0),
        "elapsed_ms": elapsed.as_millis() as u64,
    })
}

/// Prints the lines every summary has (`command: summary`, counts, failures by reason,
/// p50 / p99).
pub fn print_summary(command: &str, s: &Value) {
    println!("{command}: summary");
    println!("  transfers   {}", s["transfers"]);
    println!("  integrated  {}", s["integrated"]);
    let failed = s["failed"].as_object().cloned().unwrap_or_default();
    if failed.is_empty() {
        println!("  failed      0");
    } else {
        for (code, n) in failed {
            let meaning = hl7v3::ReasonCode::from_code(&code)
                .map(|c| c.description().to_string())
                .unwrap_or_default();
            println!("  failed      {n} × {code} {meaning}");
        }
    }
    println!("  p50         {} ms", s["p50_ms"]);
    println!("  p99         {} ms", s["p99_ms"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn unfinished_transfers_count_as_failed() {
        let mut moved = Moved {
            total: 3,
            ..Moved::default()
        };
        moved.finished.insert(
            "A".into(),
            json!({"phase": "integrated", "startedAt": 10, "finishedAt": 30}),
        );
        moved.finished.insert(
            "B".into(),
            json!({"phase": "failed", "code": "06", "startedAt": 10, "finishedAt": 20}),
        );
        let s = summarise(&moved, Duration::from_secs(1));
        assert_eq!(s["integrated"], 1);
        assert_eq!(s["failed"], json!({"06": 1, "unfinished": 1}));
        assert_eq!(s["max_ms"], 20);
    }
}
