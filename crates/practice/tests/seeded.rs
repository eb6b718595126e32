//! A seeded practice, on both engines: patients whose records are made when read — the
//! same Bundle byte for byte every time, audited like a stored one — and their attachments
//! of exactly the planned size; seeding is all or nothing; a stored record wins over the
//! plan; the practice's own behaviour for stored records is unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use clock::{ManualClock, SharedClock};
use practice::{
    AutoIntegration, Decision, Delivery, Demographics, DocumentKind, Practice, PracticeError,
    PracticeProfile, RecordPlan, SeededPatient,
};
use store::testing::TempPostgres;
use store::{Database, PayloadStore};

const ODS: &str = "Y12345";

fn profile() -> PracticeProfile {
    PracticeProfile {
        ods: ODS.into(),
        name: "Calder Valley Medical Practice".into(),
        address_lines: vec!["2 Bridge Gate".into(), "Hebden Bridge".into()],
        postcode: "HX7 8EX".into(),
        phone: "01422 496 0001".into(),
    }
}

/// `n` patients with valid NHS numbers in the 999 range, every third with large attachments.
fn patients(n: u32) -> Vec<SeededPatient> {
    (0..n)
        .map(|i| {
            let nhs = (999_000_100 + i * 13..)
                .find_map(nhsid::NhsNumber::from_stem)
                .unwrap()
                .to_string();
            SeededPatient {
                demographics: Demographics {
                    nhs_number: nhs,
                    family: Some(format!("Family{i}")),
                    given: Some("Robin".into()),
                    prefix: Some("Mx".into()),
                    gender: Some(if i % 2 == 0 { "female" } else { "male" }.into()),
                    birth_date: Some(format!("19{:02}-04-0{}", 30 + i % 60, 1 + i % 9)),
                    address_lines: vec![format!("{i} Mill Street"), "Todmorden".into()],
                    postcode: Some("OL14 6AA".into()),
                },
                registered_at: 1_600_000_000_000 + i64::from(i),
                plan: RecordPlan::typical(u64::from(i) | 1 << 63, Some(50), i % 3 == 0),
            }
        })
        .collect()
}

async fn suite(db: Database, payload_dir: &std::path::Path) {
    let payloads = PayloadStore::on_disk(payload_dir).unwrap();
    let manual = ManualClock::new(1_700_000_000_000);
    let clock: SharedClock = Arc::new(manual.clone());
    let p = Practice::open(
        ODS,
        db.clone(),
        payloads.clone(),
        clock.clone(),
        AutoIntegration { enabled: true },
    )
    .await
    .unwrap();
    assert_eq!(p.profile().await.unwrap(), None);

    // Seeding is all or nothing: one bad NHS number and nothing is written.
    let mut bad = patients(3);
    bad[2].demographics.nhs_number = "9990001234".into();
    assert!(matches!(
        p.seed(&profile(), &bad).await,
        Err(PracticeError::BadNhsNumber(_))
    ));
    assert!(p.patients().await.unwrap().is_empty());

    let seeded = patients(1500);
    p.seed(&profile(), &seeded).await.unwrap();
    assert_eq!(p.profile().await.unwrap(), Some(profile()));
    let listed = p.patients().await.unwrap();
    assert_eq!(listed.len(), 1500);
    assert!(
        listed
            .iter()
            .all(|s| s.has_record && s.status == "registered")
    );
    // Seeding someone already registered fails the lot, and the lot stays as it was.
    let again = [patients(1501)[1500].clone(), seeded[7].clone()];
    assert!(p.seed(&profile(), &again).await.is_err());
    assert_eq!(p.patients().await.unwrap().len(), 1500);

    // A seeded record is made on reading, audited first, the same bytes every time, and
    // says who the patient is.
    let first = &seeded[0];
    let nhs = first.demographics.nhs_number.as_str();
    assert_eq!(
        p.record_plan(nhs).await.unwrap().as_ref(),
        Some(&first.plan)
    );
    let summary = p.patient(nhs).await.unwrap().unwrap();
    assert_eq!(summary.family.as_deref(), Some("Family0"));
    assert_eq!(summary.registered_at, 1_600_000_000_000);
    manual.advance(std::time::Duration::from_secs(5));
    let a = p
        .read_record(nhs, "gpconnect:consumer", "direct care")
        .await
        .unwrap();
    let b = p
        .read_record_json(nhs, "gp2gp:sender", "GP2GP transfer")
        .await
        .unwrap();
    // The same record, as the JSON a sender translates from.
    assert_eq!(fhir::to_vec(&a).unwrap(), b.to_vec());
    let expected =
        translate::synthetic::record_bundle(&profile(), &first.demographics, &first.plan).unwrap();
    assert_eq!(a, expected);
    let patient = a.patient().unwrap();
    assert_eq!(patient.nhs_number(), Some(nhs));
    assert_eq!(patient.name[0].family.as_deref(), Some("Family0"));
    assert_eq!(patient.address[0].postal_code.as_deref(), Some("OL14 6AA"));
    let org = a
        .resources_of::<fhir::Organization>()
        .find(|o| o.ods_code() == Some(ODS))
        .unwrap();
    assert_eq!(org.name.as_deref(), Some("Calder Valley Medical Practice"));
    let audit = p.audit_log(Some(nhs)).await.unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].who, "gpconnect:consumer");
    assert_eq!(audit[0].action, "read-record");
    assert_eq!(audit[0].at, 1_700_000_005_000);

    // Its documents: exactly the planned size and kind, found by DocumentReference id or
    // file name, audited; an unknown one is refused without an audit line.
    let with_docs = seeded
        .iter()
        .find(|s| {
            s.plan.documents.len() >= 2
                && s.plan.documents.iter().any(|d| d.kind == DocumentKind::Png)
        })
        .unwrap();
    let dnhs = with_docs.demographics.nhs_number.as_str();
    let record = p.read_record(dnhs, "dr.who", "review").await.unwrap();
    let refs: Vec<&fhir::DocumentReference> = record.resources_of().collect();
    assert_eq!(refs.len(), with_docs.plan.documents.len());
    for (i, r) in refs.iter().enumerate() {
        let id = r.id.as_deref().unwrap();
        let attachment = r.content[0].attachment.as_ref().unwrap();
        let doc = if i % 2 == 0 {
            p.read_document(dnhs, id, "gp2gp:sender").await.unwrap()
        } else {
            let file = attachment.title.as_deref().unwrap();
            p.read_document(dnhs, file, "gp2gp:sender").await.unwrap()
        };
        assert_eq!(doc.id, id);
        assert_eq!(Some(doc.bytes.len() as u64), attachment.size);
        assert_eq!(
            Some(doc.content_type.as_str()),
            attachment.content_type.as_deref()
        );
        let magic: &[u8] = if doc.content_type == "application/pdf" {
            b"%PDF-"
        } else {
            b"\x89PNG"
        };
        assert!(doc.bytes.starts_with(magic));
        assert_eq!(
            doc,
            p.read_document(dnhs, id, "gp2gp:sender").await.unwrap()
        );
    }
    let reads = p
        .audit_log(Some(dnhs))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "read-document")
        .count();
    assert_eq!(reads, 2 * refs.len());
    assert!(matches!(
        p.read_document(dnhs, "4F1E0000-0000-4000-8000-000000000000", "x")
            .await,
        Err(PracticeError::UnknownDocument { .. })
    ));
    assert_eq!(
        p.audit_log(Some(dnhs)).await.unwrap().len(),
        1 + 2 * refs.len()
    );

    // A record arriving by GP2GP for a seeded patient is filed beside theirs; for a
    // patient without a plan it becomes their record and wins from then on.
    let incoming = translate::synthetic::synthetic_bundle(30_000, 5).unwrap();
    let mut as_first = incoming.clone();
    for e in &mut as_first.entry {
        if let Some(fhir::Resource::Patient(pt)) = e.resource.as_mut() {
            pt.identifier = vec![fhir::Identifier::new(fhir::systems::NHS_NUMBER, nhs)];
        }
    }
    let clean = serde_json::json!({"degrades": [], "unmapped": []});
    let filed = p
        .deliver(Delivery::of_bundle("conv-seeded", &as_first, clean.clone()).unwrap())
        .await
        .unwrap();
    assert_eq!(filed.decision, Some(Decision::FiledAsAttachment));
    assert_eq!(p.read_record(nhs, "x", "y").await.unwrap(), expected);
    assert_eq!(
        p.read_record_json(nhs, "x", "y").await.unwrap().to_vec(),
        fhir::to_vec(&expected).unwrap()
    );

    // Someone with neither a record nor a plan: NoRecord, and no document.
    let newcomer = practice::Registration::from_record(&incoming).unwrap();
    p.register(&newcomer).await.unwrap();
    assert!(matches!(
        p.read_record(&newcomer.nhs_number, "x", "y").await,
        Err(PracticeError::NoRecord(_))
    ));
    assert!(matches!(
        p.read_record_json(&newcomer.nhs_number, "x", "y").await,
        Err(PracticeError::NoRecord(_))
    ));
    assert!(matches!(
        p.read_document(&newcomer.nhs_number, "anything", "x").await,
        Err(PracticeError::UnknownDocument { .. })
    ));
    assert!(matches!(
        p.read_record("9990000026", "x", "y").await,
        Err(PracticeError::UnknownPatient(_))
    ));

    // A practice on the same database without a profile has nothing seeded.
    let other = Practice::open(
        "Y54321",
        db.clone(),
        payloads,
        clock,
        AutoIntegration::default(),
    )
    .await
    .unwrap();
    assert!(other.patients().await.unwrap().is_empty());
    assert!(matches!(
        other.seed(&profile(), &patients(1)).await,
        Err(PracticeError::BadOds(..))
    ));
}

#[tokio::test]
async fn on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&format!("sqlite://{}/practice.db", dir.path().display()))
        .await
        .unwrap();
    suite(db, &dir.path().join("payloads")).await;
}

#[tokio::test]
async fn on_postgres() {
    let pg = TempPostgres::start().unwrap();
    let db = Database::open(&pg.fresh_database().await.unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    suite(db.clone(), dir.path()).await;
    db.close().await;
}
