//! Peak memory and time of a translation of one large record, measured from outside:
//!
//! ```text
//! cargo run --release -p translate --example translate_peak -- gen 100 /tmp/rec.xml
//! /usr/bin/time -v target/release/examples/translate_peak to-fhir /tmp/rec.xml /tmp/rec.json
//! /usr/bin/time -v target/release/examples/translate_peak to-hl7 /tmp/rec.json /tmp/back.xml
//! ```
//!
//! `gen MB FILE` writes a synthetic EhrExtract of about MB megabytes; `to-fhir IN OUT`
//! reads an EhrExtract, translates it and writes the Bundle as JSON; `to-hl7 IN OUT` reads
//! a Bundle and writes the EhrExtract. Each prints its input size and the time of each
//! step; `time -v` gives the maximum resident set size.

// As the lloyd binary does: glibc's allocator is slow for models this size.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use translate::synthetic::synthetic_extract_xml;
use translate::to_fhir::{ToFhirOptions, extract_to_bundle};
use translate::to_hl7::{ToHl7Options, bundle_to_extract};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> Result<&str, Box<dyn std::error::Error>> {
        args.get(i).map(String::as_str).ok_or_else(|| {
            "usage: translate_peak gen MB FILE | to-fhir IN OUT | to-hl7 IN OUT".into()
        })
    };
    let mb = |t: std::time::Duration, bytes: usize| bytes as f64 / 1e6 / t.as_secs_f64();
    match arg(1)? {
        "gen" => {
            let size: usize = arg(2)?.parse()?;
            let t = Instant::now();
            let xml = synthetic_extract_xml(size * 1_000_000, 1);
            println!("generated {} bytes in {:?}", xml.len(), t.elapsed());
            std::fs::write(arg(3)?, xml)?;
        }
        "to-fhir" => {
            let input = std::fs::read(arg(2)?)?;
            let t = Instant::now();
            let msg = hl7v3::Message::parse(&input)?;
            let parsed = t.elapsed();
            let (bundle, report) = extract_to_bundle(&msg, &ToFhirOptions::default())?;
            let translated = t.elapsed();
            drop(msg);
            let json = fhir::to_vec(&bundle)?;
            let written = t.elapsed();
            println!(
                "input {} bytes; parse {:?}, translate {:?}, write {:?}; {:.1} MB/s parse+translate, {:.1} MB/s end to end; {} entries, {} degrades, {} unmapped; output {} bytes",
                input.len(),
                parsed,
                translated - parsed,
                written - translated,
                mb(translated, input.len()),
                mb(written, input.len()),
                bundle.entry.len(),
                report.degrades.len(),
                report.unmapped.len(),
                json.len()
            );
            std::fs::write(arg(3)?, json)?;
        }
        "to-hl7" => {
            let input = std::fs::read(arg(2)?)?;
            let t = Instant::now();
            let bundle: fhir::Bundle = fhir::from_slice(&input)?;
            let parsed = t.elapsed();
            let options = ToHl7Options {
                creation_time: Some("20240101120000".to_owned()),
                ..ToHl7Options::default()
            };
            let (msg, report) = bundle_to_extract(&bundle, &options)?;
            let translated = t.elapsed();
            drop(bundle);
            let xml = msg.to_xml(hl7v3::xml::Layout::Compact);
            let written = t.elapsed();
            println!(
                "input {} bytes; parse {:?}, translate {:?}, write {:?}; {:.1} MB/s parse+translate, {:.1} MB/s end to end; {} degrades, {} unmapped; output {} bytes",
                input.len(),
                parsed,
                translated - parsed,
                written - translated,
                mb(translated, input.len()),
                mb(written, input.len()),
                report.degrades.len(),
                report.unmapped.len(),
                xml.len()
            );
            std::fs::write(arg(3)?, xml)?;
        }
        other => return Err(format!("unknown command {other}").into()),
    }
    Ok(())
}
