//! Time and peak memory of translating one large record, each way, streaming (as
//! `lloyd translate` does) or through the whole-record functions:
//!
//! ```text
//! cargo run --release -p translate --example translate_peak -- gen 100 /tmp/rec.xml
//! target/release/examples/translate_peak to-fhir /tmp/rec.xml /tmp/rec.json
//! target/release/examples/translate_peak to-hl7 /tmp/rec.json /tmp/back.xml
//! target/release/examples/translate_peak to-fhir /tmp/rec.xml /tmp/rec.json --whole
//! ```
//!
//! `gen MB FILE` writes a synthetic EhrExtract of about MB megabytes; `to-fhir IN OUT`
//! reads an EhrExtract and writes the Bundle as JSON; `to-hl7 IN OUT` reads a Bundle and
//! writes the EhrExtract. Each prints the input size, the wall-clock and CPU time, the
//! throughput in MB/s of input, and the peak memory: the most the allocator held at once
//! (counted here, the input included) and the process's peak resident set, each as a
//! multiple of the input size. `--whole` uses `extract_to_bundle` / `bundle_to_extract`
//! and writes the model out afterwards, for comparison.

// Counting the bytes held needs a `GlobalAlloc` of our own (an unsafe trait); it forwards
// to mimalloc, the allocator of the `lloyd` binary.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use translate::synthetic::synthetic_extract_xml;
use translate::to_fhir::{ToFhirOptions, extract_to_bundle, extract_to_writer};
use translate::to_hl7::{ToHl7Options, bundle_to_extract, bundle_to_writer};

struct Counting;

static NOW: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Bytes allocated (or freed, when negative) on this thread and not yet added to
    /// `NOW`.
    static PENDING: Cell<isize> = const { Cell::new(0) };
}

/// How far a thread's count may run ahead of `NOW`. Adding every allocation to one shared
/// counter made the threads of the streaming paths fight over it (an eighth of the CPU
/// time of FHIR → HL7 went on it, which `lloyd` itself never spends); so each thread
/// gathers its changes and adds them in steps of this size. The peak is then short by at
/// most this much per thread: 256 KB, against peaks of hundreds of megabytes.
const STEP: isize = 256 * 1024;

/// Counts `delta` bytes more (or fewer) held.
fn note(delta: isize) {
    let due = PENDING
        .try_with(|p| {
            let v = p.get() + delta;
            if v.abs() < STEP {
                p.set(v);
                0
            } else {
                p.set(0);
                v
            }
        })
        .unwrap_or(delta);
    if due > 0 {
        let now = NOW.fetch_add(due, Ordering::Relaxed) + due;
        PEAK.fetch_max(now, Ordering::Relaxed);
    } else if due < 0 {
        NOW.fetch_add(due, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(p, layout) };
        note(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { mimalloc::MiMalloc.realloc(p, layout, new_size) };
        if !q.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// CPU seconds used by the process so far (user + system), from `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The process's peak resident set, in bytes, from `/proc/self/status`.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: translate_peak gen MB FILE | to-fhir IN OUT [--whole] | to-hl7 IN OUT [--whole]";
    let arg = |i: usize| -> Result<&str, Box<dyn std::error::Error>> {
        args.get(i).map(String::as_str).ok_or_else(|| usage.into())
    };
    let whole = args.iter().any(|a| a == "--whole");
    if arg(1)? == "gen" {
        let size: usize = arg(2)?.parse()?;
        let t = Instant::now();
        let xml = synthetic_extract_xml(size * 1_000_000, 1);
        println!("generated {} bytes in {:?}", xml.len(), t.elapsed());
        std::fs::write(arg(3)?, xml)?;
        return Ok(());
    }
    let direction = arg(1)?.to_owned();
    let input = std::fs::read(arg(2)?)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(arg(3)?)?);
    let rss_before = peak_rss().unwrap_or(0);
    PEAK.store(NOW.load(Ordering::Relaxed), Ordering::Relaxed);
    let cpu = cpu_seconds();
    let t = Instant::now();
    let report = match (direction.as_str(), whole) {
        ("to-fhir", false) => extract_to_writer(&input, &mut out, &ToFhirOptions::default())?,
        ("to-fhir", true) => {
            let msg = hl7v3::Message::parse(&input)?;
            let (bundle, report) = extract_to_bundle(&msg, &ToFhirOptions::default())?;
            drop(msg);
            out.write_all(&fhir::to_vec(&bundle)?)?;
            report
        }
        ("to-hl7", whole) => {
            let options = ToHl7Options {
                creation_time: Some("20240101120000".to_owned()),
                ..ToHl7Options::default()
            };
            if whole {
                let bundle: fhir::Bundle = fhir::from_slice(&input)?;
                let (msg, report) = bundle_to_extract(&bundle, &options)?;
                drop(bundle);
                out.write_all(msg.to_xml(hl7v3::xml::Layout::Compact).as_bytes())?;
                report
            } else {
                bundle_to_writer(&input, &mut out, &options)?
            }
        }
        _ => return Err(usage.into()),
    };
    out.flush()?;
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu.zip(cpu_seconds()).map(|(a, b)| b - a);
    let peak = PEAK.load(Ordering::Relaxed).max(0) as usize;
    let n = input.len() as f64;
    println!(
        "{direction}{}: input {} bytes; {wall:.2} s wall ({:.1} MB/s), {} CPU; peak held {:.0} MB = {:.2}× the input; peak RSS {:.0} MB = {:.2}×; {} degrades, {} unmapped",
        if whole {
            " (whole record)"
        } else {
            " (streaming)"
        },
        input.len(),
        n / 1e6 / wall,
        cpu.map_or("?".to_owned(), |c| format!("{c:.2} s")),
        peak as f64 / 1e6,
        peak as f64 / n,
        peak_rss().unwrap_or(0).max(rss_before) as f64 / 1e6,
        peak_rss().unwrap_or(0).max(rss_before) as f64 / n,
        report.degrades.len(),
        report.unmapped.len(),
    );
    Ok(())
}
