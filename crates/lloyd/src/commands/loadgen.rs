//! `lloyd loadgen`: GP2GP under load, measured.
//!
//! It seeds a population in a throwaway data directory (or `--data`) the way `lloyd seed`
//! does — practices in SDS, patients in PDS, each patient's record a *plan* made when read,
//! here of exactly the size asked for and with exactly the attachments asked for — starts
//! Spine and the practices on loopback as `lloyd demo` does (auto-integration on), and
//! moves every patient once to the next practice, `--concurrency` transfers at a time:
//! registration over the practice's API (PDS updated, then GP2GP), the record and its
//! attachments built, sent as ebXML through the relay, received, translated and filed.
//!
//! It measures the transfer phase (seeding and start-up are reported apart): wall time,
//! transfers per second, megabytes of attachments per second, p50 / p99 / max time per
//! transfer (request to final acknowledgement, as the requesting practice records it),
//! failures by reason code, CPU time and peak resident memory of the whole process
//! (`VmHWM`: both practices of every transfer, Spine and the load generator itself), and
//! the machine's load average. It prints a summary and, with `--summary FILE`, writes it as
//! JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use translate::synthetic::{DocumentKind, DocumentPlan, MIN_DOCUMENT_BYTES};

use super::rehearsal::{Follow, Move, Stage, move_patients, print_summary, summarise};
use super::seed::population::Population;
use crate::practices;

/// Move patients between practices and measure GP2GP: throughput, latency, memory.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many transfers (each patient moves once).
    #[arg(long, value_name = "N", default_value_t = 100)]
    transfers: usize,
    /// How many practices (patients move from each to the next).
    #[arg(long, value_name = "P", default_value_t = 4)]
    practices: usize,
    /// The size of each structured record (the EhrExtract), in kilobytes (1,000 bytes).
    #[arg(
        long,
        value_name = "K",
        default_value_t = 300,
        conflicts_with = "record_mb"
    )]
    record_kb: u64,
    /// The size of each structured record in megabytes (1,000,000 bytes), for big ones.
    #[arg(long, value_name = "M")]
    record_mb: Option<u64>,
    /// Each record's attachments (PDFs), comma-separated sizes: `2.44MB,0.7MB`, `300KB`,
    /// `50000` (bytes). Decimal units. None by default.
    #[arg(long, value_name = "SIZES", default_value = "")]
    attachments: String,
    /// Transfers under way at once.
    #[arg(long, value_name = "C", default_value_t = 32)]
    concurrency: usize,
    /// The data directory (emptied first). Default: a new directory under the system's
    /// temporary directory, removed at the end.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// The population's seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// Give up on transfers not finished after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
}

/// Runs the load generator.
pub fn run(args: Args) -> ExitCode {
    super::log_warnings();
    let scenario = match Scenario::from_args(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lloyd loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match super::runtime("loadgen") {
        Ok(r) => r,
        Err(code) => return code,
    };
    let (data, temporary) = match &args.data {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("lloyd-loadgen-{}", std::process::id())),
            true,
        ),
    };
    let outcome = runtime.block_on(loadgen(&args, &scenario, &data));
    drop(runtime);
    if temporary {
        let _ = std::fs::remove_dir_all(&data);
    }
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("lloyd loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What is to be moved.
#[derive(Debug, Clone)]
struct Scenario {
    transfers: usize,
    practices: usize,
    record_bytes: u64,
    attachments: Vec<u64>,
    concurrency: usize,
}

impl Scenario {
    fn from_args(args: &Args) -> Result<Scenario, String> {
        if args.practices < 2 {
            return Err(
                "--practices must be at least 2 (a patient moves from one to another)".into(),
            );
        }
        if args.transfers == 0 {
            return Err("--transfers must be at least 1".into());
        }
        if args.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        let record_bytes = match args.record_mb {
            Some(mb) => mb.saturating_mul(1_000_000),
            None => args.record_kb.saturating_mul(1_000),
        };
        if record_bytes < translate::synthetic::MIN_RECORD_BYTES {
            return Err(format!(
                "records must be at least {} KB",
                translate::synthetic::MIN_RECORD_BYTES / 1000
            ));
        }
        let attachments = parse_sizes(&args.attachments)?;
        if let Some(small) = attachments.iter().find(|&&b| b < MIN_DOCUMENT_BYTES) {
            return Err(format!(
                "an attachment of {small} bytes is smaller than the smallest document ({MIN_DOCUMENT_BYTES} bytes)"
            ));
        }
        Ok(Scenario {
            transfers: args.transfers,
            practices: args.practices,
            record_bytes,
            attachments,
            concurrency: args.concurrency,
        })
    }

    fn attachment_bytes(&self) -> u64 {
        self.attachments.iter().sum()
    }
}

/// `2.44MB,0.7MB,300KB,50000` → bytes (decimal units).
fn parse_sizes(text: &str) -> Result<Vec<u64>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let upper = part.to_ascii_uppercase();
            let (number, unit) = match upper.find(|c: char| c.is_ascii_alphabetic()) {
                Some(i) => upper.split_at(i),
                None => (upper.as_str(), ""),
            };
            let scale = match unit.trim() {
                "" | "B" => 1.0,
                "KB" | "K" => 1e3,
                "MB" | "M" => 1e6,
                "GB" | "G" => 1e9,
                other => {
                    return Err(format!(
                        "'{part}': unknown unit '{other}' (B, KB, MB or GB)"
                    ));
                }
            };
            let n: f64 = number
                .trim()
                .parse()
                .map_err(|_| format!("'{part}' is not a size like 2.44MB, 300KB or 50000"))?;
            if !n.is_finite() || n < 0.0 {
                return Err(format!("'{part}' is not a size"));
            }
            Ok((n * scale).round() as u64)
        })
        .collect()
}

/// The population: `transfers` patients across the practices, each record of the size
/// asked for with the attachments asked for, each patient moving to the next practice.
fn population(scenario: &Scenario, seed: u64) -> (Population, Vec<Move>) {
    let mut population = Population::draw(scenario.practices, scenario.transfers, seed, false);
    let documents: Vec<DocumentPlan> = scenario
        .attachments
        .iter()
        .map(|&bytes| DocumentPlan {
            kind: DocumentKind::Pdf,
            bytes,
        })
        .collect();
    let codes: Vec<String> = population
        .practices
        .iter()
        .map(|p| p.profile.ods.clone())
        .collect();
    let mut moves = Vec::with_capacity(population.patients.len());
    for patient in &mut population.patients {
        patient.plan.bytes = scenario.record_bytes;
        patient.plan.documents = documents.clone();
        moves.push((
            patient.practice,
            Move {
                nhs: patient.demographics.nhs_number.clone(),
                to: codes[(patient.practice + 1) % codes.len()].clone(),
            },
        ));
    }
    // Take the practices' patients in turn, so every practice sends and receives from the
    // start.
    let mut by_practice: Vec<std::collections::VecDeque<Move>> =
        vec![Default::default(); codes.len()];
    for (p, m) in moves {
        by_practice[p].push_back(m);
    }
    let mut interleaved = Vec::with_capacity(scenario.transfers);
    while interleaved.len() < scenario.transfers {
        let before = interleaved.len();
        for q in &mut by_practice {
            if let Some(m) = q.pop_front() {
                interleaved.push(m);
            }
        }
        if interleaved.len() == before {
            break;
        }
    }
    (population, interleaved)
}

async fn loadgen(args: &Args, scenario: &Scenario, data: &Path) -> Result<bool, String> {
    let setup = Instant::now();
    if data.exists() {
        std::fs::remove_dir_all(data)
            .map_err(|e| format!("cannot empty {}: {e}", data.display()))?;
    }
    std::fs::create_dir_all(data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    eprintln!(
        "lloyd loadgen: {} transfers among {} practices, records of {} with attachments [{}], {} at a time, in {}",
        scenario.transfers,
        scenario.practices,
        human(scenario.record_bytes),
        scenario
            .attachments
            .iter()
            .map(|&b| human(b))
            .collect::<Vec<_>>()
            .join(", "),
        scenario.concurrency,
        data.display()
    );
    // Listening first: the practices' addresses in SDS name the port.
    let mut stage = Stage::open(data, &args.listen).await?;
    let (population, moves) = population(scenario, args.seed);
    super::seed::write_population(data, &Arc::new(population), &stage.base).await?;
    let options = practices::Options {
        auto_integrate: true,
        tick: Duration::from_millis(250),
    };
    let n = stage.serve(data, &options).await?;
    let setup_ms = setup.elapsed().as_millis() as u64;
    eprintln!(
        "lloyd loadgen: Spine and {n} practices on {} (set up in {:.1} s); moving patients…",
        stage.base,
        setup_ms as f64 / 1000.0
    );

    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let follow = Follow {
        concurrency: scenario.concurrency,
        timeout: Duration::from_secs(args.timeout),
        poll: Duration::from_secs(1),
        progress: true,
    };
    let moved = move_patients(&stage, moves, &follow).await?;
    let elapsed = started.elapsed();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let mut summary = summarise(&moved, elapsed);
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let attachment_mb = (scenario.attachment_bytes() as f64 * scenario.transfers as f64) / 1e6;
    if let Some(map) = summary.as_object_mut() {
        map.insert(
            "scenario".into(),
            json!({
                "transfers": scenario.transfers,
                "practices": scenario.practices,
                "record_bytes": scenario.record_bytes,
                "attachments": scenario.attachments,
                "concurrency": scenario.concurrency,
            }),
        );
        map.insert("setup_ms".into(), json!(setup_ms));
        map.insert(
            "transfers_per_second".into(),
            json!(round2(scenario.transfers as f64 / seconds)),
        );
        map.insert(
            "attachment_mb_per_second".into(),
            json!(round2(attachment_mb / seconds)),
        );
        map.insert("cpu_seconds".into(), json!(cpu.map(round2)));
        map.insert("peak_rss_mb".into(), json!(peak_rss_mb()));
        map.insert("load_average".into(), json!(load_average()));
        map.insert(
            "cores".into(),
            json!(std::thread::available_parallelism().map(|n| n.get()).ok()),
        );
    }
    print_summary("lloyd loadgen", &summary);
    println!("  max         {} ms", summary["max_ms"]);
    println!(
        "  wall        {:.1} s ({} transfers/s, {} MB/s of attachments)",
        seconds, summary["transfers_per_second"], summary["attachment_mb_per_second"]
    );
    println!(
        "  cpu         {} s · peak RSS {} MB · load average {}",
        summary["cpu_seconds"], summary["peak_rss_mb"], summary["load_average"]
    );
    if let Some(path) = &args.summary {
        let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    stage.shutdown().await;
    Ok(summary["integrated"].as_u64() == Some(scenario.transfers as u64))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn human(bytes: u64) -> String {
    if bytes >= 1_000_000 {
        format!("{:.2} MB", bytes as f64 / 1e6)
    } else {
        format!("{} KB", bytes / 1000)
    }
}

/// User plus system CPU time of this process so far (Linux: `/proc/self/stat`, in the
/// kernel's fixed 100 ticks a second).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The process's peak resident memory in megabytes (`VmHWM`, Linux).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(round2(kb / 1024.0))
}

/// The 1-, 5- and 15-minute load averages (Linux).
fn load_average() -> Option<Value> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    Some(json!(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_decimal_units() {
        assert_eq!(
            parse_sizes("2.44MB, 0.7MB,300KB,50000").unwrap(),
            vec![2_440_000, 700_000, 300_000, 50_000]
        );
        assert_eq!(parse_sizes("").unwrap(), Vec::<u64>::new());
        assert!(parse_sizes("3 furlongs").is_err());
        assert!(parse_sizes("MB").is_err());
    }

    #[test]
    fn every_practice_sends_from_the_start() {
        let scenario = Scenario {
            transfers: 9,
            practices: 3,
            record_bytes: 30_000,
            attachments: vec![100_000],
            concurrency: 2,
        };
        let (population, moves) = population(&scenario, 1);
        assert_eq!(moves.len(), 9);
        assert_eq!(population.patients.len(), 9);
        assert!(
            population
                .patients
                .iter()
                .all(|p| p.plan.bytes == 30_000 && p.plan.document_bytes() == 100_000)
        );
        // Each patient moves away from their own practice.
        for m in &moves {
            let p = population
                .patients
                .iter()
                .find(|p| p.demographics.nhs_number == m.nhs)
                .unwrap();
            assert_ne!(population.practices[p.practice].profile.ods, m.to);
        }
    }
}
