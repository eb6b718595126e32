//! `lloyd seed` as a user runs it, read back through the services' own APIs: SDS, PDS and
//! every practice agree about who is where; NHS numbers are valid and unique; the same seed
//! gives the same population and the same records byte for byte; records across the size
//! range translate to schema-valid EhrExtracts; a seeded directory is refused unless
//! `--force`; a seed that fails leaves nothing claiming to be seeded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use hl7v3::validate::{Options, Schemas, validate};
use practice::{AutoIntegration, Practice};
use store::{Database, PayloadStore};
use translate::to_hl7::{ToHl7Options, bundle_to_extract};

fn lloyd_seed(data: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lloyd"))
        .arg("seed")
        .arg("--data")
        .arg(data)
        .args(extra)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "lloyd seed failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn clock() -> clock::SharedClock {
    Arc::new(clock::SystemClock)
}

async fn spine_db(data: &Path) -> Database {
    Database::open(&format!("sqlite://{}", data.join("lloyd.db").display()))
        .await
        .unwrap()
}

async fn open_practice(data: &Path, ods: &str) -> Practice {
    let dir = data.join("practices").join(ods);
    assert!(dir.join("practice.db").exists(), "{}", dir.display());
    let db = Database::open(&format!("sqlite://{}", dir.join("practice.db").display()))
        .await
        .unwrap();
    let payloads = PayloadStore::on_disk(&dir.join("payloads")).unwrap();
    Practice::open(ods, db, payloads, clock(), AutoIntegration::default())
        .await
        .unwrap()
}

/// Everything the services hold about a seeded directory: SDS entries by ODS, PDS
/// records by NHS number, and each practice's patients.
struct Seeded {
    sds: BTreeMap<String, spine::sds::Organisation>,
    pds: BTreeMap<String, spine::pds::PatientRecord>,
    practices: BTreeMap<String, Practice>,
    patients: BTreeMap<String, (String, practice::PatientSummary)>,
}

async fn read_back(data: &Path) -> Seeded {
    let db = spine_db(data).await;
    let directory = spine::sds::Directory::open(db.clone(), clock())
        .await
        .unwrap();
    let pds = spine::pds::Store::open(db.clone(), clock()).await.unwrap();
    let sds: BTreeMap<_, _> = directory
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.ods.clone(), o))
        .collect();
    let mut practices = BTreeMap::new();
    let mut patients = BTreeMap::new();
    let mut records = BTreeMap::new();
    for ods in sds.keys() {
        let p = open_practice(data, ods).await;
        for s in p.patients().await.unwrap() {
            let r = pds.get(&s.nhs_number).await.unwrap().expect("in PDS");
            records.insert(s.nhs_number.clone(), r.record);
            let before = patients.insert(s.nhs_number.clone(), (ods.clone(), s));
            assert!(before.is_none(), "a patient at two practices");
        }
        practices.insert(ods.clone(), p);
    }
    assert_eq!(pds.count().await.unwrap() as usize, records.len());
    db.close().await;
    Seeded {
        sds,
        pds: records,
        practices,
        patients,
    }
}

#[tokio::test]
async fn a_seeded_population_is_consistent_deterministic_and_its_records_valid() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = ok(&lloyd_seed(
        &data,
        &["--practices", "4", "--patients", "600", "--seed", "42"],
    ));
    assert!(
        out.contains("4 practices and 600 patients (seed 42)"),
        "{out}"
    );
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("seed.json")).unwrap()).unwrap();
    assert_eq!(marker["patients"], 600);
    assert!(!data.join(".seed-staging").exists());

    let s = read_back(&data).await;
    assert_eq!(s.sds.len(), 4);
    assert_eq!(s.patients.len(), 600);
    let mut asids = HashSet::new();
    for (ods, org) in &s.sds {
        assert_eq!(
            marker["ods"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|o| *o == ods)
                .count(),
            1
        );
        assert!(org.supplier.is_some());
        let [system] = org.systems.as_slice() else {
            panic!("{ods}: one system expected")
        };
        assert!(asids.insert(system.asid.clone()));
        assert_eq!(system.asid.len(), 12);
        assert!(system.party_key.starts_with(&format!("{ods}-")));
        assert_eq!(
            system.address,
            format!("http://127.0.0.1:8080/practices/{ods}/mhs")
        );
        for i in [
            "RCMR_IN010000UK05",
            "RCMR_IN030000UK06",
            "RCMR_IN030000UK07",
            "COPC_IN000001UK01",
            "MCCI_IN010000UK13",
        ] {
            let id = format!("urn:nhs:names:services:gp2gp:{i}");
            assert!(system.interactions.contains(&id), "{ods} lacks {id}");
        }
        assert_eq!(
            system.reliability.persist_duration.as_deref(),
            Some("PT4H10M")
        );
        assert_eq!(system.reliability.retry_interval.as_deref(), Some("PT2H"));
        assert_eq!(system.reliability.retries, Some(2));
        let profile = s.practices[ods].profile().await.unwrap().unwrap();
        assert_eq!(profile.name, org.name);
    }

    // PDS and the practices agree on who is registered where and who they are.
    for (nhs, (ods, summary)) in &s.patients {
        assert!(nhsid::NhsNumber::parse(nhs).is_ok(), "{nhs}");
        assert!(nhs.starts_with("999"), "{nhs}");
        let r = &s.pds[nhs];
        assert_eq!(r.gp_ods.as_ref(), Some(ods));
        assert_eq!(summary.family.as_ref(), Some(&r.family));
        assert_eq!(summary.given.as_ref(), r.given.first());
        assert_eq!(summary.birth_date.as_ref(), Some(&r.birth_date));
        assert_eq!(summary.gender.as_ref(), Some(&r.gender));
        assert_eq!(summary.postcode, r.postcode);
        assert!(summary.has_record);
    }

    // Twenty records spread over the size range: each is the patient PDS knows, and
    // translates to an EhrExtract valid against the real schemas.
    let mut by_size = Vec::new();
    for (nhs, (ods, _)) in &s.patients {
        let plan = s.practices[ods].record_plan(nhs).await.unwrap().unwrap();
        by_size.push((plan.bytes, nhs.clone(), ods.clone()));
    }
    by_size.sort();
    let schemas = Schemas::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/schemas"),
    )
    .unwrap();
    for k in 0..20 {
        let (bytes, nhs, ods) = &by_size[k * (by_size.len() - 1) / 19];
        let record = s.practices[ods]
            .read_record(nhs, "test", "conformance")
            .await
            .unwrap();
        let patient = record.patient().unwrap();
        assert_eq!(patient.nhs_number(), Some(nhs.as_str()));
        assert_eq!(patient.name[0].family.as_ref(), Some(&s.pds[nhs].family));
        let options = ToHl7Options {
            creation_time: Some("20250102090000".into()),
            to_ods: Some("B86041".into()),
            ..ToHl7Options::default()
        };
        let (msg, report) = bundle_to_extract(&record, &options).unwrap();
        assert!(report.unmapped.is_empty(), "{nhs}: {:#?}", report.unmapped);
        let xml = msg.to_xml(hl7v3::xml::Layout::Compact);
        let result = validate(xml.as_bytes(), Some(&schemas), &Options::default());
        let errors: Vec<String> = result.errors().take(5).map(|f| f.to_string()).collect();
        assert!(result.valid, "{nhs} ({bytes} bytes planned): {errors:#?}");
    }

    // The same seed again: the same population, the same records byte for byte.
    let twin = dir.path().join("twin");
    ok(&lloyd_seed(
        &twin,
        &["--practices", "4", "--patients", "600", "--seed", "42"],
    ));
    let t = read_back(&twin).await;
    assert_eq!(t.sds, s.sds);
    assert_eq!(t.pds, s.pds);
    for (nhs, (ods, summary)) in s.patients.iter().take(25) {
        assert_eq!(&t.patients[nhs].1, summary);
        let a = s.practices[ods]
            .read_record(nhs, "test", "twin")
            .await
            .unwrap();
        let b = t.practices[ods]
            .read_record(nhs, "test", "twin")
            .await
            .unwrap();
        assert_eq!(fhir::to_vec(&a).unwrap(), fhir::to_vec(&b).unwrap());
    }
    // Another seed: other people.
    let other = dir.path().join("other");
    ok(&lloyd_seed(
        &other,
        &["--practices", "4", "--patients", "600", "--seed", "43"],
    ));
    let o = read_back(&other).await;
    assert_ne!(o.pds, s.pds);
    assert_ne!(
        o.sds.keys().collect::<Vec<_>>(),
        s.sds.keys().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_seeded_directory_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(&lloyd_seed(data, &["--practices", "2", "--patients", "50"]));
    let marker = std::fs::read(data.join("seed.json")).unwrap();

    let again = lloyd_seed(data, &["--practices", "3", "--patients", "80"]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already seeded") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(data.join("seed.json")).unwrap(), marker);
    let s = read_back(data).await;
    assert_eq!((s.sds.len(), s.patients.len()), (2, 50));

    ok(&lloyd_seed(
        data,
        &[
            "--practices",
            "3",
            "--patients",
            "80",
            "--seed",
            "7",
            "--force",
        ],
    ));
    let s = read_back(data).await;
    assert_eq!((s.sds.len(), s.patients.len()), (3, 80));
    let practices = std::fs::read_dir(data.join("practices")).unwrap().count();
    assert_eq!(practices, 3, "the old practices are gone");
}

#[tokio::test]
async fn a_failed_seed_leaves_nothing_claiming_to_be_seeded() {
    let dir = tempfile::tempdir().unwrap();
    // Learn one NHS number seed 5 gives out, then put someone else under it in PDS.
    let probe = dir.path().join("probe");
    ok(&lloyd_seed(
        &probe,
        &["--practices", "2", "--patients", "30", "--seed", "5"],
    ));
    let taken = read_back(&probe)
        .await
        .patients
        .keys()
        .nth(7)
        .unwrap()
        .clone();
    let data = dir.path().join("data");
    let db = spine_db(&data).await;
    let pds = spine::pds::Store::open(db.clone(), clock()).await.unwrap();
    pds.insert(&spine::pds::PatientRecord {
        nhs_number: taken.clone(),
        family: "Elsewhere".into(),
        given: vec!["Already".into()],
        gender: "female".into(),
        birth_date: "1970-01-01".into(),
        address_lines: vec![],
        postcode: None,
        gp_ods: Some("A82038".into()),
        managing_ods: None,
        deceased: None,
        restricted: false,
        superseded_by: None,
    })
    .await
    .unwrap();
    db.close().await;

    let failed = lloyd_seed(
        &data,
        &["--practices", "2", "--patients", "30", "--seed", "5"],
    );
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("PDS") && err.contains("nothing was seeded"),
        "{err}"
    );
    assert!(!data.join("seed.json").exists());
    assert!(!data.join("practices").exists());
    assert!(!data.join(".seed-staging").exists());
    let db = spine_db(&data).await;
    let directory = spine::sds::Directory::open(db.clone(), clock())
        .await
        .unwrap();
    assert_eq!(
        directory.count().await.unwrap(),
        0,
        "SDS entries taken out again"
    );
    let pds = spine::pds::Store::open(db.clone(), clock()).await.unwrap();
    assert_eq!(
        pds.count().await.unwrap(),
        1,
        "only the patient who was there"
    );
    assert_eq!(
        pds.get(&taken).await.unwrap().unwrap().record.family,
        "Elsewhere"
    );
    db.close().await;
}

#[test]
fn impossible_requests_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let too_many = lloyd_seed(dir.path(), &["--patients", "2000000"]);
    assert_eq!(too_many.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&too_many.stderr).contains("999 test range"));
    let none = lloyd_seed(dir.path(), &["--practices", "0"]);
    assert_eq!(none.status.code(), Some(2));
    let url = lloyd_seed(dir.path(), &["--base-url", "127.0.0.1:8080"]);
    assert_eq!(url.status.code(), Some(2));
    assert!(!dir.path().join("seed.json").exists());
}
