//! Reads the corpus EhrExtracts into the model, pass after pass: a steady load for a
//! profiler, and the instruction count behind docs/PERFORMANCE.md.
//!
//! ```sh
//! cargo build --release -p hl7v3 --example read_corpus
//! valgrind --tool=callgrind target/release/examples/read_corpus 1
//! perf record target/release/examples/read_corpus 200
//! ```
//!
//! The argument is the number of passes (default 100); a second argument picks the reader:
//! `typed` (default, `Message::parse`) or `tree` (`xml::parse`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let passes: usize = args
        .next()
        .map_or(100, |a| a.parse().expect("passes: a number"));
    let tree = args.next().as_deref() == Some("tree");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/translation/ehr-extract");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    files.sort();
    let docs: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let bytes: usize = docs.iter().map(Vec::len).sum();
    let started = Instant::now();
    for _ in 0..passes {
        for d in &docs {
            if tree {
                std::hint::black_box(hl7v3::xml::parse(d).unwrap());
            } else {
                std::hint::black_box(hl7v3::Message::parse(d).unwrap());
            }
        }
    }
    let per_pass = started.elapsed() / passes.max(1) as u32;
    println!(
        "{} files, {bytes} bytes: {per_pass:.2?} per pass ({:.0} MiB/s)",
        docs.len(),
        bytes as f64 / per_pass.as_secs_f64() / (1024.0 * 1024.0)
    );
}
