//! Translation throughput, in MB/s of input, both ways: over the conformance corpus and
//! over a synthetic ~100 MB record. Each measurement includes reading the input (HL7 XML
//! or FHIR JSON) into the model and translating it; writing the output is measured apart.
//! On the corpus, the streaming translations (`extract_to_writer`, `bundle_to_writer`:
//! read, translate and write, as `lloyd translate` does) are measured beside the
//! whole-record functions followed by writing the output. (`extract_to_writer` takes
//! records under 1 MB, every corpus extract among them, through the whole-record path.)
//!
//! `cargo bench -p translate --bench translate` (set `TRANSLATE_BENCH_MB` to change the
//! size of the synthetic record; 0 skips it).

// As the lloyd binary does: glibc's allocator is slow for models this size.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use translate::synthetic::synthetic_extract_xml;
use translate::to_fhir::{ToFhirOptions, extract_to_bundle, extract_to_writer};
use translate::to_hl7::{ToHl7Options, bundle_to_extract, bundle_to_writer};

fn corpus(folder: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/translation")
        .join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn to_fhir(xml: &[u8]) -> fhir::Bundle {
    let Ok(msg) = hl7v3::Message::parse(xml) else {
        return fhir::Bundle::default();
    };
    extract_to_bundle(&msg, &ToFhirOptions::default())
        .map(|(b, _)| b)
        .unwrap_or_default()
}

fn hl7_options() -> ToHl7Options {
    ToHl7Options {
        creation_time: Some("20240101120000".to_owned()),
        ..ToHl7Options::default()
    }
}

fn to_hl7(json: &[u8]) -> Option<hl7v3::Message> {
    let bundle: fhir::Bundle = fhir::from_slice(json).ok()?;
    bundle_to_extract(&bundle, &hl7_options())
        .ok()
        .map(|(m, _)| m)
}

fn bench(c: &mut Criterion) {
    let extracts = corpus("ehr-extract");
    let bundles = corpus("gpconnect");
    let total = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>() as u64;

    let mut g = c.benchmark_group("corpus");
    g.throughput(Throughput::Bytes(total(&extracts)));
    g.bench_function("hl7_to_fhir", |b| {
        b.iter(|| {
            for x in &extracts {
                black_box(to_fhir(x));
            }
        })
    });
    g.throughput(Throughput::Bytes(total(&bundles)));
    g.bench_function("fhir_to_hl7", |b| {
        b.iter(|| {
            for j in &bundles {
                black_box(to_hl7(j));
            }
        })
    });
    g.throughput(Throughput::Bytes(total(&extracts)));
    g.bench_function("hl7_to_fhir_json/whole", |b| {
        b.iter(|| {
            for x in &extracts {
                black_box(fhir::to_vec(&to_fhir(x)).map(|v| v.len()).ok());
            }
        })
    });
    g.bench_function("hl7_to_fhir_json/streaming", |b| {
        b.iter(|| {
            for x in &extracts {
                let mut out = Vec::new();
                black_box(extract_to_writer(x, &mut out, &ToFhirOptions::default()).ok());
                black_box(out.len());
            }
        })
    });
    g.throughput(Throughput::Bytes(total(&bundles)));
    g.bench_function("fhir_to_hl7_xml/whole", |b| {
        b.iter(|| {
            for j in &bundles {
                black_box(to_hl7(j).map(|m| m.to_xml(hl7v3::xml::Layout::Compact).len()));
            }
        })
    });
    g.bench_function("fhir_to_hl7_xml/streaming", |b| {
        b.iter(|| {
            for j in &bundles {
                let mut out = Vec::new();
                black_box(bundle_to_writer(j, &mut out, &hl7_options()).ok());
                black_box(out.len());
            }
        })
    });
    g.finish();

    let mb: usize = std::env::var("TRANSLATE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    if mb == 0 {
        return;
    }
    let xml = synthetic_extract_xml(mb * 1_000_000, 1);
    let bundle = to_fhir(xml.as_bytes());
    let json = fhir::to_vec(&bundle).unwrap_or_default();
    let mut g = c.benchmark_group(format!("synthetic_{mb}MB"));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Bytes(xml.len() as u64));
    g.bench_function("hl7_to_fhir", |b| {
        b.iter(|| black_box(to_fhir(xml.as_bytes())))
    });
    g.bench_function("hl7_to_fhir_json", |b| {
        b.iter(|| black_box(fhir::to_vec(&to_fhir(xml.as_bytes())).map(|v| v.len())))
    });
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("fhir_to_hl7", |b| b.iter(|| black_box(to_hl7(&json))));
    g.bench_function("fhir_to_hl7_xml", |b| {
        b.iter(|| black_box(to_hl7(&json).map(|m| m.to_xml(hl7v3::xml::Layout::Compact).len())))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
