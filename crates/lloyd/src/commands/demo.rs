//! `lloyd demo`: a whole GP2GP rehearsal on one machine.
//!
//! It starts Spine (SDS, PDS and, where built, the relay) and several practices on one
//! loopback listener, gives each practice registered patients with synthetic records
//! (some of them large, with documents that must be split), then moves patients: each
//! registers at another practice — PDS is updated, the new practice asks the old one for
//! the record by GP2GP, the record travels as real ebXML over HTTP, is translated back to
//! FHIR and filed — by the practice's auto-integration rules when nothing degraded, else
//! by the demo's "clinician", who accepts what waits in the inbox — and the final
//! acknowledgement goes back. A progress line shows the transfers; a summary ends it
//! (transfers, integrated, failed by reason code, p50 / p99 time). Then it keeps serving so
//! the practices' APIs can be explored, unless `--once` is given.
//!
//! State lives under `--data` (default `./lloyd-demo`), emptied at the start.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::rehearsal::{Follow, Move, Stage, move_patients, print_summary, summarise};
use crate::practices::{self, clinical};

/// Run a GP2GP rehearsal: Spine and several practices on loopback, patients moving.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many practices.
    #[arg(long, default_value_t = 4)]
    practices: usize,
    /// Patients registered at each practice to begin with.
    #[arg(long, default_value_t = 10)]
    patients: usize,
    /// How many patients move (each is one GP2GP transfer).
    #[arg(long, default_value_t = 20)]
    transfers: usize,
    /// How many of the moving patients have a large record (about 6 MB structured, with
    /// documents of 6 MB, 0.7 MB and 20 KB).
    #[arg(long, default_value_t = 2)]
    large: usize,
    /// Where to listen (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// The demo's data directory (emptied first).
    #[arg(long, default_value = "./lloyd-demo")]
    data: PathBuf,
    /// Exit after the summary instead of serving on.
    #[arg(long)]
    once: bool,
    /// Write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// Give up waiting for transfers after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

/// Runs the demo.
pub fn run(args: Args) -> ExitCode {
    super::log_warnings();
    if args.practices < 2 {
        eprintln!(
            "lloyd demo: --practices must be at least 2 (a patient moves from one to another)"
        );
        return ExitCode::from(2);
    }
    if args.transfers > args.practices * args.patients {
        eprintln!(
            "lloyd demo: --transfers {} is more than the {} patients there are (--practices × --patients)",
            args.transfers,
            args.practices * args.patients
        );
        return ExitCode::from(2);
    }
    let runtime = match super::runtime("demo") {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(demo(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("lloyd demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ods_code(i: usize) -> String {
    format!("Y{:05}", 81001 + i)
}

fn asid(i: usize) -> String {
    format!("{:012}", 918_999_000_000u64 + i as u64)
}

/// The GP2GP interactions every demo practice supports.
const INTERACTIONS: [&str; 5] = [
    "RCMR_IN010000UK05",
    "RCMR_IN030000UK06",
    "RCMR_IN030000UK07",
    "COPC_IN000001UK01",
    "MCCI_IN010000UK13",
];

/// Sizes of the documents of a large record.
const LARGE_DOCUMENTS: [usize; 3] = [6_000_000, 700_000, 20_000];

async fn demo(args: Args) -> Result<bool, String> {
    let started = Instant::now();
    if args.data.exists() {
        std::fs::remove_dir_all(&args.data)
            .map_err(|e| format!("cannot empty {}: {e}", args.data.display()))?;
    }
    std::fs::create_dir_all(&args.data)
        .map_err(|e| format!("cannot create {}: {e}", args.data.display()))?;
    let mut stage = Stage::open(&args.data, &args.listen).await?;
    let base = stage.base.clone();
    let clock = stage.clock.clone();
    let spine = &stage.spine;

    // The population: practices in SDS, patients on PDS and at their practice.
    eprint!(
        "lloyd demo: seeding {} practices with {} patients each…",
        args.practices, args.patients
    );
    let organisations: Vec<spine::sds::Organisation> = (0..args.practices)
        .map(|i| spine::sds::Organisation {
            ods: ods_code(i),
            name: format!("Demo Practice {}", i + 1),
            supplier: Some(format!("Demo Supplier {}", i % 3 + 1)),
            systems: vec![spine::sds::System {
                asid: asid(i),
                party_key: format!("{}-{}", ods_code(i), 900_000 + i),
                cpa_id: Some(format!("S{}", asid(i))),
                fqdn: None,
                address: format!("{base}/practices/{}/mhs", ods_code(i)),
                interactions: INTERACTIONS
                    .iter()
                    .map(|x| format!("{}:{x}", ebxml::SERVICE_GP2GP))
                    .collect(),
                reliability: spine::sds::Reliability::default(),
                manufacturer_ods: None,
            }],
        })
        .collect();
    spine
        .sds
        .directory
        .upsert_many(&organisations)
        .await
        .map_err(|e| e.to_string())?;
    let mut movers = Vec::new();
    let mut pds_records = Vec::new();
    let mut stem = 999_000_000u32;
    for p in 0..args.practices {
        let ods = ods_code(p);
        let dir = args.data.join("practices").join(&ods);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let (pdb, ppayloads) = super::open_local_stores(&dir, "practice.db").await?;
        let practice = practice::Practice::open(
            &ods,
            pdb.clone(),
            ppayloads.clone(),
            clock.clone(),
            Default::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        for k in 0..args.patients {
            let nhs = loop {
                stem += 1;
                if let Some(n) = nhsid::NhsNumber::from_stem(stem) {
                    break n.as_string();
                }
            };
            let index = p * args.patients + k;
            // Movers are taken round the practices; the first `large` of them are large.
            let mover_rank = k * args.practices + p;
            let large = mover_rank < args.large.min(args.transfers);
            let size = if large {
                6_000_000
            } else {
                40_000 + (index * 7919) % 260_000
            };
            let (bundle, family, given, birth) = record(&nhs, size, index as u64)?;
            practice
                .add_patient(&bundle)
                .await
                .map_err(|e| e.to_string())?;
            // Document content, where the GP2GP system will read it.
            for doc in bundle.resources_of::<fhir::DocumentReference>() {
                let id = doc.id.clone().unwrap_or_default();
                for (i, _) in doc.content.iter().enumerate() {
                    let size = if large {
                        LARGE_DOCUMENTS[(id.len() + i) % 3]
                    } else {
                        30_000
                    };
                    ppayloads
                        .put(
                            &clinical::record_document_key(&ods, &nhs, &id, i),
                            demo_document(size, index + i),
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            pds_records.push(spine::pds::PatientRecord {
                nhs_number: nhs.clone(),
                family,
                given: vec![given],
                gender: if index.is_multiple_of(2) {
                    "female"
                } else {
                    "male"
                }
                .into(),
                birth_date: birth,
                address_lines: vec![format!("{} High Street", k + 1)],
                postcode: Some("LS1 4AP".into()),
                gp_ods: Some(ods.clone()),
                managing_ods: None,
                deceased: None,
                restricted: false,
                superseded_by: None,
            });
            if mover_rank < args.transfers {
                movers.push((mover_rank, nhs, ods_code((p + 1) % args.practices), large));
            }
        }
        pdb.close().await;
    }
    spine
        .pds
        .store
        .insert_many(&pds_records)
        .await
        .map_err(|e| e.to_string())?;
    movers.sort();
    eprintln!(" done");

    // Serve.
    let options = practices::Options {
        auto_integrate: true,
        tick: Duration::from_millis(250),
    };
    let n = stage.serve(&args.data, &options).await?;
    println!("lloyd demo: Spine and {n} practices listening on {base}");

    // Move patients and follow them.
    let moves = movers
        .into_iter()
        .map(|(_, nhs, to, _)| Move { nhs, to })
        .collect::<Vec<_>>();
    let follow = Follow {
        concurrency: moves.len(),
        timeout: Duration::from_secs(args.timeout),
        poll: Duration::from_millis(250),
        progress: true,
    };
    let moved = move_patients(&stage, moves, &follow).await?;
    let summary = summarise(&moved, started.elapsed());
    print_summary("lloyd demo", &summary);
    if let Some(path) = &args.summary {
        let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let all_integrated = summary["integrated"].as_u64() == Some(moved.total as u64);
    if args.once {
        stage.shutdown().await;
        return Ok(all_integrated);
    }
    println!("lloyd demo: still serving on {base} — try:");
    println!("  curl {base}/practices");
    if let Some((to, conversation)) = moved.conversations.first() {
        println!("  curl {base}/practices/{to}/ehr-status/{conversation}");
        println!("  curl -H 'X-User: demo' {base}/practices/{to}/inbox/{conversation}");
    }
    println!("  curl '{base}/spine/message-log'");
    println!("Ctrl-C to stop.");
    let _ = tokio::signal::ctrl_c().await;
    stage.shutdown().await;
    Ok(all_integrated)
}

/// A synthetic record for one patient: the Bundle and the demographics it carries.
fn record(
    nhs: &str,
    size: usize,
    seed: u64,
) -> Result<(fhir::Bundle, String, String, String), String> {
    let bundle = translate::synthetic::synthetic_bundle(size, seed).map_err(|e| e.to_string())?;
    let patient = bundle
        .resources_of::<fhir::Patient>()
        .next()
        .ok_or("the synthetic record has no patient")?;
    let old = patient.nhs_number().unwrap_or_default().to_string();
    let family = patient
        .name
        .first()
        .and_then(|n| n.family.clone())
        .unwrap_or_else(|| "Demo".into());
    let given = patient
        .name
        .first()
        .and_then(|n| n.given.first().cloned())
        .unwrap_or_else(|| "Pat".into());
    let birth = patient
        .birth_date
        .as_ref()
        .map(|d| d.as_str().to_string())
        .unwrap_or_else(|| "1970-01-01".into());
    // Make the record this patient's.
    let text = serde_json::to_string(&bundle).map_err(|e| e.to_string())?;
    let bundle = fhir::from_slice(text.replace(&old, nhs).as_bytes()).map_err(|e| e.to_string())?;
    Ok((bundle, family, given, birth))
}

/// A document's content: a small valid PDF header, then deterministic filler.
fn demo_document(size: usize, seed: usize) -> bytes::Bytes {
    let mut out = b"%PDF-1.4\n% Lloyd demo document\n".to_vec();
    out.extend((out.len()..size.max(out.len())).map(|i| b'a' + ((i * 7 + seed) % 26) as u8));
    out.truncate(size.max(32));
    bytes::Bytes::from(out)
}
