//! Reading and writing the corpus's GP Connect bundles, in MB/s.
//!
//! `cargo bench -p fhir` (from the repository root; the corpus is read from
//! `../shared/conformance`). `serde_json::Value` is measured alongside as a
//! baseline: the typed model should not be slower than an untyped tree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fhir::Bundle;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/translation/gpconnect");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let files = corpus();
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    let parsed: Vec<Bundle> = files
        .iter()
        .map(|(_, b)| fhir::from_slice(b).unwrap())
        .collect();
    let written: usize = parsed.iter().map(|b| fhir::to_vec(b).unwrap().len()).sum();

    let mut g = c.benchmark_group("corpus");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("parse", |b| {
        b.iter(|| {
            for (_, bytes) in &files {
                let bundle: Bundle = fhir::from_slice(bytes).unwrap();
                std::hint::black_box(bundle);
            }
        })
    });
    g.bench_function("parse_serde_json_value", |b| {
        b.iter(|| {
            for (_, bytes) in &files {
                let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
                std::hint::black_box(v);
            }
        })
    });
    g.bench_function("check_strict", |b| {
        b.iter(|| {
            for bundle in &parsed {
                std::hint::black_box(bundle.check_strict());
            }
        })
    });
    // Output bytes (compact JSON, smaller than the indented input).
    g.throughput(Throughput::Bytes(written as u64));
    g.bench_function("serialize", |b| {
        let mut buf = Vec::with_capacity(written);
        b.iter(|| {
            for bundle in &parsed {
                buf.clear();
                serde_json::to_writer(&mut buf, bundle).unwrap();
            }
            std::hint::black_box(&buf);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
