//! FHIR → HL7 throughput over the 13 GP Connect bundles of the conformance corpus, in MB/s
//! of input JSON: translation alone (Bundle already parsed), and the whole path a sender
//! runs (parse the JSON, translate, write the XML).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use translate::to_hl7::{ToHl7Options, bundle_to_extract};

fn bundles() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/translation/gpconnect");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn bench(c: &mut Criterion) {
    let docs = bundles();
    assert_eq!(docs.len(), 13);
    let bytes: u64 = docs.iter().map(|d| d.len() as u64).sum();
    let parsed: Vec<fhir::Bundle> = docs.iter().map(|d| fhir::from_slice(d).unwrap()).collect();
    let options = ToHl7Options {
        creation_time: Some("20240131093000".into()),
        ..ToHl7Options::default()
    };

    let mut g = c.benchmark_group("to_hl7");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20);
    g.bench_function("translate/13 bundles", |b| {
        b.iter(|| {
            for bundle in &parsed {
                black_box(bundle_to_extract(bundle, &options).unwrap());
            }
        })
    });
    g.bench_function("parse+translate+write/13 bundles", |b| {
        b.iter(|| {
            for d in &docs {
                let bundle: fhir::Bundle = fhir::from_slice(d).unwrap();
                let (msg, _) = bundle_to_extract(&bundle, &options).unwrap();
                black_box(msg.to_xml(hl7v3::xml::Layout::Compact));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
