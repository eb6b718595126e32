//! Reading the corpus EhrExtracts into the model, against `xmllint --noout` on the same
//! files in the same run (the bar: at least 3× xmllint's speed).
//!
//! Run: `cargo bench -p hl7v3 --bench read` (needs `xmllint`, Debian package
//! `libxml2-utils`; without it the comparison is skipped and says so).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

// The binary uses mimalloc; measure what it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn extracts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/translation/ehr-extract");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    files.sort();
    files
}

fn read(c: &mut Criterion) {
    let files = extracts();
    let docs: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let total: u64 = docs.iter().map(|d| d.len() as u64).sum();

    let mut group = c.benchmark_group("read corpus extracts");
    group.throughput(Throughput::Bytes(total));
    group.sample_size(30);
    group.bench_function("hl7v3 tree (xml::parse)", |b| {
        b.iter(|| {
            for d in &docs {
                std::hint::black_box(hl7v3::xml::parse(d).unwrap());
            }
        })
    });
    group.bench_function("hl7v3 typed model (Message::parse)", |b| {
        b.iter(|| {
            for d in &docs {
                std::hint::black_box(hl7v3::Message::parse(d).unwrap());
            }
        })
    });
    group.bench_function("hl7v3 typed model, every core (read_all)", |b| {
        b.iter(|| {
            for r in hl7v3::read_all(&docs, &hl7v3::xml::Limits::default()) {
                std::hint::black_box(r.unwrap());
            }
        })
    });
    let have_xmllint = Command::new("xmllint").arg("--version").output().is_ok();
    if have_xmllint {
        group.bench_function("xmllint --noout (one process, all files)", |b| {
            b.iter(|| {
                let status = Command::new("xmllint")
                    .arg("--noout")
                    .args(&files)
                    .status()
                    .unwrap();
                assert!(status.success());
            })
        });
        group.bench_function("xmllint --noout (one process per file)", |b| {
            b.iter(|| {
                for f in &files {
                    let status = Command::new("xmllint")
                        .arg("--noout")
                        .arg(f)
                        .status()
                        .unwrap();
                    assert!(status.success());
                }
            })
        });
    } else {
        eprintln!("xmllint not found (apt-get install libxml2-utils): comparison skipped");
    }
    group.finish();

    let msgs: Vec<_> = docs
        .iter()
        .map(|d| hl7v3::Message::parse(d).unwrap())
        .collect();
    let mut group = c.benchmark_group("write corpus extracts");
    group.throughput(Throughput::Bytes(total));
    group.bench_function("hl7v3 Message::to_xml (compact)", |b| {
        b.iter(|| {
            for m in &msgs {
                std::hint::black_box(m.to_xml(hl7v3::xml::Layout::Compact));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
