//! Reads a sample of a seeded population's records and reports their sizes and how long
//! making them took: `cargo run --release -p practice --example record_sizes -- DATA [N]`
//! after `lloyd seed --data DATA`. Every `k`-th patient of every practice is read (about `N`
//! in all, default 200) through `Practice::read_record`, as a GP2GP sender would, and
//! translated to the EhrExtract it would send.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use practice::{AutoIntegration, Practice};
use store::{Database, PayloadStore};
use translate::to_hl7::{ToHl7Options, bundle_to_extract};

fn percentile(sorted: &[u64], p: usize) -> u64 {
    sorted
        .get((sorted.len().saturating_sub(1)) * p / 100)
        .copied()
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let data = PathBuf::from(args.next().ok_or("usage: record_sizes DATA [N]")?);
    let want: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(200);
    let clock: clock::SharedClock = Arc::new(clock::SystemClock);
    let mut practices = Vec::new();
    for entry in std::fs::read_dir(data.join("practices"))? {
        let dir = entry?.path();
        let ods = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("odd directory name")?
            .to_string();
        let db = Database::open(&format!("sqlite://{}", dir.join("practice.db").display())).await?;
        let payloads = PayloadStore::on_disk(&dir.join("payloads"))?;
        let p = Practice::open(
            &ods,
            db,
            payloads,
            clock.clone(),
            AutoIntegration::default(),
        )
        .await?;
        let patients = p.patients().await?;
        practices.push((p, patients));
    }
    let total: usize = practices.iter().map(|(_, ps)| ps.len()).sum();
    let step = (total / want.max(1)).max(1);
    let (mut planned, mut bundles, mut extracts, mut millis) = (vec![], vec![], vec![], vec![]);
    let options = ToHl7Options {
        creation_time: Some("20250102090000".into()),
        ..ToHl7Options::default()
    };
    for (p, patients) in &practices {
        for s in patients.iter().step_by(step) {
            let plan = p.record_plan(&s.nhs_number).await?.ok_or("not seeded")?;
            let started = Instant::now();
            let record = p
                .read_record(&s.nhs_number, "example:record_sizes", "measuring")
                .await?;
            millis.push(started.elapsed().as_millis() as u64);
            planned.push(plan.bytes);
            bundles.push(fhir::to_vec(&record)?.len() as u64);
            let (msg, _) = bundle_to_extract(&record, &options)?;
            extracts.push(msg.to_xml(hl7v3::xml::Layout::Compact).len() as u64);
        }
    }
    for v in [&mut planned, &mut bundles, &mut extracts, &mut millis] {
        v.sort_unstable();
    }
    println!("{} records read (every {step}th of {total})", planned.len());
    println!("| | median | 90th | 99th | largest |");
    println!("|---|---|---|---|---|");
    for (name, v, unit) in [
        ("planned size", &planned, "KB"),
        ("Bundle (JSON)", &bundles, "KB"),
        ("EhrExtract sent", &extracts, "KB"),
        ("read_record time", &millis, "ms"),
    ] {
        let f = |x: u64| {
            if unit == "KB" {
                format!("{} KB", x.div_ceil(1000))
            } else {
                format!("{x} ms")
            }
        };
        println!(
            "| {name} | {} | {} | {} | {} |",
            f(percentile(v, 50)),
            f(percentile(v, 90)),
            f(percentile(v, 99)),
            f(v.last().copied().unwrap_or(0)),
        );
    }

    // The tail: what making one large record or attachment costs (one practice's details,
    // one patient's demographics).
    let (p, patients) = practices.first().ok_or("no practices")?;
    let profile = p.profile().await?.ok_or("no profile")?;
    let nhs = &patients.first().ok_or("no patients")?.nhs_number;
    let mut plan = p.record_plan(nhs).await?.ok_or("not seeded")?;
    let demographics = translate::synthetic::Demographics {
        nhs_number: nhs.clone(),
        ..Default::default()
    };
    println!("| record made (record_bundle) | planned | Bundle (JSON) | time |");
    println!("|---|---|---|---|");
    for mb in [5u64, 25, 40] {
        plan.bytes = mb * 1_000_000;
        let started = Instant::now();
        let bundle = translate::synthetic::record_bundle(&profile, &demographics, &plan)?;
        let took = started.elapsed();
        println!(
            "| {mb} MB | {} KB | {} KB | {} ms |",
            plan.bytes / 1000,
            fhir::to_vec(&bundle)?.len() / 1000,
            took.as_millis()
        );
    }
    println!("| attachment made (document_bytes) | bytes | time |");
    println!("|---|---|---|");
    for kind in [
        translate::synthetic::DocumentKind::Pdf,
        translate::synthetic::DocumentKind::Png,
    ] {
        let doc = translate::synthetic::RecordPlan {
            seed: 1,
            bytes: 100_000,
            documents: vec![translate::synthetic::DocumentPlan {
                kind,
                bytes: translate::synthetic::MAX_DOCUMENT_BYTES,
            }],
        };
        let id = doc.planned_documents()[0].id.clone();
        let started = Instant::now();
        let (_, bytes) =
            translate::synthetic::document_bytes(&doc, &demographics, &id).ok_or("no document")?;
        println!(
            "| {} | {} | {} ms |",
            kind.content_type(),
            bytes.len(),
            started.elapsed().as_millis()
        );
    }
    Ok(())
}
