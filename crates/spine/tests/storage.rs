//! The SDS directory and the PDS store on both engines: SQLite and a real PostgreSQL.
//! Bulk loads are one transaction (all or nothing), updates are guarded by the version, and
//! two clients racing on one ETag cannot both win.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use spine::Error;
use spine::pds::{PatientRecord, Store};
use spine::sds::{Directory, Organisation, Reliability, System};

const PATIENTS: usize = 100_000;
const PRACTICES: usize = 50;

fn practice(i: usize) -> Organisation {
    let ods = format!("P{i:05}");
    Organisation {
        ods: ods.clone(),
        name: format!("Practice {i}"),
        supplier: Some(if i.is_multiple_of(2) { "EMIS" } else { "TPP" }.into()),
        systems: vec![System {
            asid: format!("{}", 200_000_000_000u64 + i as u64),
            party_key: format!("{ods}-{}", 800_000 + i),
            cpa_id: None,
            fqdn: None,
            address: format!("http://127.0.0.1:8080/practices/{ods}"),
            interactions: vec!["urn:nhs:names:services:gp2gp:RCMR_IN010000UK05".into()],
            reliability: Reliability::default(),
            manufacturer_ods: None,
        }],
    }
}

fn person(i: usize) -> PatientRecord {
    let nhs = (0u32..)
        .filter_map(|k| nhsid::NhsNumber::from_stem(400_000_000 + (i as u32) * 3 + k))
        .next()
        .unwrap();
    PatientRecord {
        nhs_number: nhs.to_string(),
        family: format!("Family{}", i % 997),
        given: vec![format!("Given{}", i % 101)],
        gender: if i.is_multiple_of(2) {
            "female"
        } else {
            "male"
        }
        .into(),
        birth_date: format!("19{:02}-{:02}-{:02}", 30 + i % 70, 1 + i % 12, 1 + i % 28),
        address_lines: vec![format!("{i} High Street")],
        postcode: Some(format!("LS{} {}AB", 1 + i % 20, i % 10)),
        gp_ods: Some(format!("P{:05}", i % PRACTICES)),
        managing_ods: None,
        deceased: None,
        restricted: false,
        superseded_by: None,
    }
}

fn gp_patch(ods: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!([{"op": "replace", "path": "/generalPractitioner",
        "value": [{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods}}]}]))
    .unwrap()
}

async fn suite(url: &str, engine: &str) {
    let db = store::Database::open(url).await.unwrap();
    let clock: clock::SharedClock = Arc::new(clock::ManualClock::new(1_714_555_800_000));

    // SDS: 50 practices in one go, found by ODS code and by party key.
    let directory = Directory::open(db.clone(), clock.clone()).await.unwrap();
    let practices: Vec<Organisation> = (0..PRACTICES).map(practice).collect();
    directory.upsert_many(&practices).await.unwrap();
    assert_eq!(directory.count().await.unwrap(), PRACTICES as i64);
    assert_eq!(
        directory.get("P00007").await.unwrap().unwrap(),
        practices[7]
    );
    assert_eq!(
        directory
            .by_party_key("P00007-800007")
            .await
            .unwrap()
            .unwrap()
            .ods,
        "P00007"
    );
    // One bad entry in a batch: nothing of the batch is written.
    let mut renamed = practices[3].clone();
    renamed.name = "Renamed".into();
    let mut bad = practice(60);
    bad.systems[0].asid = "ASID?".into();
    assert!(
        directory
            .upsert_many(&[renamed.clone(), bad])
            .await
            .is_err()
    );
    assert_eq!(
        directory.get("P00003").await.unwrap().unwrap().name,
        "Practice 3"
    );
    assert!(directory.get("P00060").await.unwrap().is_none());
    directory.upsert_many(&[renamed]).await.unwrap();
    assert_eq!(
        directory.get("P00003").await.unwrap().unwrap().name,
        "Renamed"
    );
    assert!(directory.delete("P00003").await.unwrap());
    assert!(
        directory
            .by_party_key("P00003-800003")
            .await
            .unwrap()
            .is_none()
    );

    // PDS: a population in one transaction.
    let store = Store::open(db.clone(), clock.clone()).await.unwrap();
    let people: Vec<PatientRecord> = (0..PATIENTS).map(person).collect();
    let started = Instant::now();
    store.insert_many(&people).await.unwrap();
    eprintln!(
        "{engine}: {PATIENTS} patients inserted in {:?}",
        started.elapsed()
    );
    assert_eq!(store.count().await.unwrap(), PATIENTS as i64);
    let got = store
        .get(&people[12_345].nhs_number)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.record, people[12_345]);
    assert_eq!(got.version, 1);
    let trace = spine::pds::Trace {
        family: Some(people[500].family.to_uppercase()),
        birthdate: Some(people[500].birth_date.clone()),
        ..Default::default()
    };
    let found = store.search(&trace, 50).await.unwrap();
    assert!(
        found
            .iter()
            .any(|p| p.record.nhs_number == people[500].nhs_number)
    );

    // A batch with one already present: nothing of it is written.
    let mut batch: Vec<PatientRecord> = (PATIENTS..PATIENTS + 10).map(person).collect();
    batch.push(people[0].clone());
    assert!(store.insert_many(&batch).await.is_err());
    assert_eq!(store.count().await.unwrap(), PATIENTS as i64);

    // Patches: guarded by the version; a refused one leaves the row as it was.
    let nhs = people[1].nhs_number.clone();
    let before = store.get(&nhs).await.unwrap().unwrap();
    assert!(matches!(
        store.patch(&nhs, 9, &gp_patch("P00002")).await,
        Err(Error::PreconditionFailed(_))
    ));
    assert!(matches!(
        store.patch(&nhs, 1, b"{not json").await,
        Err(Error::BadRequest { .. })
    ));
    assert_eq!(store.get(&nhs).await.unwrap().unwrap(), before);
    let done = store.patch(&nhs, 1, &gp_patch("P00002")).await.unwrap();
    assert_eq!(done.patient.version, 2);
    assert_eq!(
        done.change.as_ref().unwrap().previous_gp.as_deref(),
        Some("P00001")
    );
    assert_eq!(store.outbox(10).await.unwrap().len(), 1);

    // Two clients holding the same ETag race: exactly one wins.
    let nhs = people[2].nhs_number.clone();
    let (pa, pb) = (gp_patch("P00010"), gp_patch("P00011"));
    let (a, b) = tokio::join!(store.patch(&nhs, 1, &pa), store.patch(&nhs, 1, &pb));
    assert_eq!(a.is_ok() as u8 + b.is_ok() as u8, 1, "{a:?} {b:?}");
    assert_eq!(store.get(&nhs).await.unwrap().unwrap().version, 2);
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_and_patients_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    suite(
        &format!("sqlite://{}", dir.path().join("spine.db").display()),
        "sqlite",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_and_patients_on_postgres() {
    let pg = store::testing::TempPostgres::start().unwrap();
    let url = pg.fresh_database().await.unwrap();
    suite(&url, "postgres").await;
}
