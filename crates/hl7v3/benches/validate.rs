//! Schema validation throughput (and the whole `validate`, schema + rules) over the 13
//! real EhrExtracts of the conformance corpus, in MB/s of input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hl7v3::validate::{Options, Schemas, validate};

fn extracts() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/translation/ehr-extract");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn bench(c: &mut Criterion) {
    let docs = extracts();
    assert_eq!(docs.len(), 13);
    let bytes: u64 = docs.iter().map(|d| d.len() as u64).sum();
    let schemas = Schemas::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/schemas"),
    )
    .unwrap();
    schemas.preload().unwrap();
    let options = Options::default();

    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20);
    g.bench_function("schema+rules/13 extracts", |b| {
        b.iter(|| {
            for d in &docs {
                let r = validate(d, Some(&schemas), &options);
                assert!(r.valid);
            }
        })
    });
    g.bench_function("rules only/13 extracts", |b| {
        b.iter(|| {
            for d in &docs {
                let r = validate(d, None, &options);
                assert!(r.valid);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
