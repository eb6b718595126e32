//! `lloyd seed`: a deterministic synthetic population in the data directory `lloyd serve`
//! uses.
//!
//! `lloyd seed --practices N --patients M --seed S [--attachments]` draws the population
//! ([`population::Population::draw`]: the same seed, the same people) and writes it where
//! the services will find it (the layout is in `docs/DATA.md`):
//!
//! - `DATA/practices/<ODS>/practice.db` (+ `payloads/`): each practice's clinical system,
//!   its details and its patients with the *plan* of their record — seed, size, documents.
//!   Records are made when read ([`practice::Practice::read_record`]), so 100,000 patients
//!   of 200 KB each cost seconds to seed, not 20 GB of disk;
//! - `DATA/lloyd.db`: Spine's SDS (each practice, its supplier and its GP2GP message
//!   handler at `BASE_URL/practices/<ODS>/mhs`) and PDS (each patient, registered at their
//!   practice);
//! - `DATA/seed.json`, written last: what was seeded. Its presence is what "seeded" means.
//!
//! All or nothing: the practices are written into a staging directory first, SDS and then
//! PDS each in one transaction, and only then are the practices moved into place and the
//! marker written; on any failure what was written is taken away again. A data directory
//! that is already seeded is refused unless `--force`, which deletes Lloyd's files in it
//! (`lloyd.db`, `payloads/`, `practices/`, `seed.json`) first.

pub(crate) mod population;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use population::{MAX_PATIENTS, MAX_PRACTICES, Population, SUPPLIERS, SeedPractice};
use serde::{Deserialize, Serialize};

/// Seed a synthetic population (practices in SDS, patients in PDS, their records) into the
/// data directory `lloyd serve` uses.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The data directory (as `lloyd serve`'s `data_dir`).
    #[arg(long, value_name = "DIR", default_value = "./lloyd-data")]
    data: PathBuf,
    /// How many practices.
    #[arg(long, value_name = "N", default_value_t = 10)]
    practices: usize,
    /// How many patients, shared among the practices.
    #[arg(long, value_name = "M", default_value_t = 10_000)]
    patients: usize,
    /// The seed: the same seed gives the same population and the same records.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Give records scanned attachments of realistic size (median 300 KB, up to 40 MB)
    /// instead of small ones.
    #[arg(long)]
    attachments: bool,
    /// The public URL of `lloyd serve`, for the practices' message handler addresses in SDS.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    base_url: String,
    /// Replace a population already there (deletes lloyd.db, payloads/ and practices/ in
    /// the data directory first).
    #[arg(long)]
    force: bool,
}

/// The GP2GP interactions every practice's message handler receives.
const GP2GP_INTERACTIONS: &[&str] = &[
    "RCMR_IN010000UK05",
    "RCMR_IN030000UK06",
    "RCMR_IN030000UK07",
    "COPC_IN000001UK01",
    "MCCI_IN010000UK13",
];
const GP2GP_SERVICE: &str = "urn:nhs:names:services:gp2gp";

/// `DATA/seed.json`: what was seeded (written last; its presence means "seeded").
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    seed: u64,
    practices: usize,
    patients: usize,
    attachments: bool,
    base_url: String,
    /// The practices' ODS codes, in the order drawn.
    ods: Vec<String>,
    /// The Lloyd version that seeded it.
    lloyd: String,
    /// How long seeding took, in seconds.
    seconds: f64,
}

const MARKER: &str = "seed.json";
const STAGING: &str = ".seed-staging";

/// Runs the command.
pub fn run(args: Args) -> ExitCode {
    if let Err(e) = check(&args) {
        eprintln!("lloyd seed: {e}");
        return ExitCode::from(2);
    }
    let runtime = match super::runtime("seed") {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(seed(&args)) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lloyd seed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(args: &Args) -> Result<(), String> {
    if args.practices == 0 || args.practices > MAX_PRACTICES {
        return Err(format!(
            "--practices must be 1 to {MAX_PRACTICES}, not {}",
            args.practices
        ));
    }
    if args.patients > MAX_PATIENTS {
        return Err(format!(
            "--patients can be at most {MAX_PATIENTS}: synthetic NHS numbers come from the 999 test range, which holds about 909,000"
        ));
    }
    let base = args.base_url.trim();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(format!(
            "--base-url must be an http:// or https:// URL, not '{base}'"
        ));
    }
    Ok(())
}

/// Why `dir` counts as seeded, if it does.
fn seeded(dir: &Path) -> Option<String> {
    let marker = dir.join(MARKER);
    if let Ok(text) = std::fs::read_to_string(&marker) {
        return Some(match serde_json::from_str::<Marker>(&text) {
            Ok(m) => format!(
                "{} is already seeded ({} practices, {} patients, seed {})",
                dir.display(),
                m.practices,
                m.patients,
                m.seed
            ),
            Err(_) => format!("{} is already seeded ({} exists)", dir.display(), MARKER),
        });
    }
    let practices = dir.join("practices");
    let occupied = std::fs::read_dir(&practices).is_ok_and(|mut d| d.next().is_some());
    occupied.then(|| {
        format!(
            "{} already holds practices ({})",
            dir.display(),
            practices.display()
        )
    })
}

/// Deletes Lloyd's files in `dir` (for `--force`).
fn clear(dir: &Path) -> Result<(), String> {
    for name in [MARKER, "lloyd.db", "lloyd.db-wal", "lloyd.db-shm"] {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot delete {}: {e}", path.display())),
        }
    }
    for name in ["practices", "payloads", STAGING] {
        remove_dir(&dir.join(name))?;
    }
    Ok(())
}

fn remove_dir(path: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot delete {}: {e}", path.display())),
    }
}

async fn seed(args: &Args) -> Result<String, String> {
    let started = Instant::now();
    let data = &args.data;
    if let Some(why) = seeded(data) {
        if !args.force {
            return Err(format!(
                "{why}: nothing was changed. Use --force to replace it (that deletes lloyd.db, payloads/ and practices/ in {} first)",
                data.display()
            ));
        }
        eprintln!("lloyd seed: {why}; --force: replacing it");
    }
    if args.force {
        clear(data)?;
    }
    std::fs::create_dir_all(data)
        .map_err(|e| format!("cannot create the data directory {}: {e}", data.display()))?;

    let population = tokio::task::spawn_blocking({
        let (n, m, s, a) = (args.practices, args.patients, args.seed, args.attachments);
        move || Population::draw(n, m, s, a)
    })
    .await
    .map_err(|e| format!("drawing the population failed: {e}"))?;
    let population = Arc::new(population);

    write_population(data, &population, &base_url(args)).await?;
    let seconds = started.elapsed().as_secs_f64();
    let marker = Marker {
        seed: args.seed,
        practices: population.practices.len(),
        patients: population.patients.len(),
        attachments: args.attachments,
        base_url: base_url(args),
        ods: population
            .practices
            .iter()
            .map(|p| p.profile.ods.clone())
            .collect(),
        lloyd: env!("CARGO_PKG_VERSION").to_string(),
        seconds,
    };
    let text = serde_json::to_string_pretty(&marker).map_err(|e| e.to_string())?;
    let tmp = data.join(format!("{MARKER}.tmp"));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, data.join(MARKER)))
        .map_err(|e| {
            format!(
                "cannot write {}: {e}; run again with --force",
                data.join(MARKER).display()
            )
        })?;
    Ok(summary(args, &population, seconds))
}

fn base_url(args: &Args) -> String {
    args.base_url.trim().trim_end_matches('/').to_string()
}

/// Writes `population` into the data directory `data` (which must hold no population yet):
/// the practices into a staging directory, SDS and PDS, then the practices moved into
/// place. On failure what was written is taken away again. (No marker: the caller writes
/// `seed.json` if it wants one.) `base` is the URL the practices' message handlers are
/// reached under.
pub(crate) async fn write_population(
    data: &Path,
    population: &Arc<Population>,
    base: &str,
) -> Result<(), String> {
    // 1. The practices, into a staging directory (a crash leaves nothing that looks seeded).
    let staging = data.join(STAGING);
    remove_dir(&staging)?;
    let fresh_db = !data.join("lloyd.db").exists();
    let outcome = write_everything(data, base, population, &staging).await;
    if let Err(e) = outcome {
        // Take away what was written.
        let _ = remove_dir(&staging);
        if fresh_db {
            for name in ["lloyd.db", "lloyd.db-wal", "lloyd.db-shm"] {
                let _ = std::fs::remove_file(data.join(name));
            }
        }
        return Err(format!("{e}; nothing was seeded"));
    }

    // 4. Into place.
    let practices = data.join("practices");
    remove_dir(&practices)?;
    std::fs::rename(staging.join("practices"), &practices).map_err(|e| {
        format!(
            "cannot move the practices into {}: {e}; the data directory is half seeded: run again with --force",
            practices.display()
        )
    })?;
    remove_dir(&staging)
}

/// Steps 1–3: the practices (staged), SDS, PDS. On failure, what reached `lloyd.db` is
/// taken out again (SDS entries; PDS writes nothing when it fails, and it goes last).
async fn write_everything(
    data: &Path,
    base: &str,
    population: &Arc<Population>,
    staging: &Path,
) -> Result<(), String> {
    let clock: clock::SharedClock = Arc::new(clock::SystemClock);
    write_practices(population, &staging.join("practices"), &clock).await?;

    let url = format!("sqlite://{}", data.join("lloyd.db").display());
    let db = store::Database::open(&url)
        .await
        .map_err(|e| e.to_string())?;
    let result = async {
        let directory = spine::sds::Directory::open(db.clone(), clock.clone())
            .await
            .map_err(|e| format!("SDS: {e}"))?;
        let pds = spine::pds::Store::open(db.clone(), clock.clone())
            .await
            .map_err(|e| format!("PDS: {e}"))?;
        let organisations: Vec<spine::sds::Organisation> = population
            .practices
            .iter()
            .map(|p| organisation(p, base))
            .collect();
        directory
            .upsert_many(&organisations)
            .await
            .map_err(|e| format!("SDS: {e}"))?;
        let patients: Vec<spine::pds::PatientRecord> = population
            .patients
            .iter()
            .map(|p| {
                let d = &p.demographics;
                spine::pds::PatientRecord {
                    nhs_number: d.nhs_number.clone(),
                    family: d.family.clone().unwrap_or_default(),
                    given: d.given.clone().into_iter().collect(),
                    gender: d.gender.clone().unwrap_or_else(|| "unknown".into()),
                    birth_date: d.birth_date.clone().unwrap_or_default(),
                    address_lines: d.address_lines.clone(),
                    postcode: d.postcode.clone(),
                    gp_ods: Some(population.practices[p.practice].profile.ods.clone()),
                    managing_ods: None,
                    deceased: None,
                    restricted: false,
                    superseded_by: None,
                }
            })
            .collect();
        if let Err(e) = pds.insert_many(&patients).await {
            for o in &organisations {
                let _ = directory.delete(&o.ods).await;
            }
            return Err(format!(
                "PDS: {e} (are some of these NHS numbers already in this data directory's PDS? --force starts it afresh)"
            ));
        }
        Ok(())
    }
    .await;
    db.close().await;
    result
}

/// Each practice's database, four at a time (SQLite files are independent: both cores work).
async fn write_practices(
    population: &Arc<Population>,
    root: &Path,
    clock: &clock::SharedClock,
) -> Result<(), String> {
    let limit = Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..population.practices.len() {
        let (population, clock, limit) = (population.clone(), clock.clone(), limit.clone());
        let dir = root.join(&population.practices[index].profile.ods);
        tasks.spawn(async move {
            let _turn = limit.acquire().await.map_err(|e| e.to_string())?;
            write_practice(&population, index, &dir, clock).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tasks.abort_all();
                return Err(e);
            }
            Err(e) => {
                tasks.abort_all();
                return Err(format!("writing a practice failed: {e}"));
            }
        }
    }
    Ok(())
}

async fn write_practice(
    population: &Population,
    index: usize,
    dir: &Path,
    clock: clock::SharedClock,
) -> Result<(), String> {
    let p: &SeedPractice = &population.practices[index];
    let ods = &p.profile.ods;
    let fail = |e: String| format!("practice {ods}: {e}");
    let url = format!("sqlite://{}", dir.join("practice.db").display());
    let db = store::Database::open(&url)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let payloads =
        store::PayloadStore::on_disk(&dir.join("payloads")).map_err(|e| fail(e.to_string()))?;
    let result = async {
        let practice = practice::Practice::open(
            ods,
            db.clone(),
            payloads,
            clock,
            practice::AutoIntegration::default(),
        )
        .await
        .map_err(|e| fail(e.to_string()))?;
        let patients: Vec<practice::SeededPatient> = population.patients
            [p.first..p.first + p.count]
            .iter()
            .map(|s| practice::SeededPatient {
                demographics: s.demographics.clone(),
                registered_at: s.registered_at,
                plan: s.plan.clone(),
            })
            .collect();
        practice
            .seed(&p.profile, &patients)
            .await
            .map_err(|e| fail(e.to_string()))
    }
    .await;
    db.close().await;
    result
}

/// A practice's SDS entry: its supplier and one GP2GP message handler, reliable the way
/// GP2GP's are (persist 4h10m, retry every 2 hours, twice).
fn organisation(p: &SeedPractice, base: &str) -> spine::sds::Organisation {
    let (supplier, supplier_ods, _) = SUPPLIERS[p.supplier];
    let ods = &p.profile.ods;
    spine::sds::Organisation {
        ods: ods.clone(),
        name: p.profile.name.clone(),
        supplier: Some(supplier.to_string()),
        systems: vec![spine::sds::System {
            asid: p.asid.clone(),
            party_key: p.party_key.clone(),
            cpa_id: Some(p.cpa_id.clone()),
            fqdn: Some(format!("{}.lloyd.localhost", ods.to_lowercase())),
            address: format!("{base}/practices/{ods}/mhs"),
            interactions: GP2GP_INTERACTIONS
                .iter()
                .map(|i| format!("{GP2GP_SERVICE}:{i}"))
                .collect(),
            reliability: spine::sds::Reliability {
                sync_reply_mode: Some("MSHSignalsOnly".into()),
                retry_interval: Some("PT2H".into()),
                retries: Some(2),
                persist_duration: Some("PT4H10M".into()),
                duplicate_elimination: Some("always".into()),
                ack_requested: Some("always".into()),
            },
            manufacturer_ods: Some(supplier_ods.to_string()),
        }],
    }
}

/// Bytes for people: `812 KB`, `3.4 MB`.
fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 10_000_000_000 => format!("{:.0} GB", b as f64 / 1e9),
        b if b >= 1_000_000_000 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b => format!("{} KB", b.div_ceil(1000)),
    }
}

fn summary(args: &Args, population: &Population, seconds: f64) -> String {
    let mut sizes: Vec<u64> = population.patients.iter().map(|p| p.plan.bytes).collect();
    sizes.sort_unstable();
    let at = |q: usize| sizes.get(sizes.len() * q / 100).copied().unwrap_or(0);
    let documents: usize = population
        .patients
        .iter()
        .map(|p| p.plan.documents.len())
        .sum();
    let document_bytes: u64 = population
        .patients
        .iter()
        .map(|p| p.plan.document_bytes())
        .sum();
    format!(
        "lloyd seed: {} practices and {} patients (seed {}) in {} in {seconds:.1} s\n  \
         records (made when read): median {}, 95th percentile {}, largest {}; {} in all\n  \
         documents: {documents}, {} in all{}\n  \
         SDS: each practice's GP2GP handler at {}/practices/<ODS>/mhs; PDS: every patient registered at their practice",
        population.practices.len(),
        population.patients.len(),
        args.seed,
        args.data.display(),
        human(at(50)),
        human(at(95)),
        human(sizes.last().copied().unwrap_or(0)),
        human(sizes.iter().sum()),
        human(document_bytes),
        if args.attachments {
            " (large attachments)"
        } else {
            ""
        },
        base_url(args),
    )
}
