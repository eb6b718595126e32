//! The practice's promises, on both database engines: records read back whole, every read
//! audited, inbox decisions all or nothing and never twice, auto-integration only when safe.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use clock::{ManualClock, SharedClock};
use practice::{
    AutoIntegration, Decision, Delivery, InboxStatus, Practice, PracticeError, Registration,
    Rejection,
};
use store::testing::TempPostgres;
use store::{Database, PayloadStore};

/// A corpus bundle with its patient's NHS number set to the real test number its file is
/// named after (the corpus files all carry the harness value 1234567890, whose check digit
/// is wrong, and a practice refuses to register an invalid NHS number).
fn corpus_bundle(name: &str) -> fhir::Bundle {
    let path = format!(
        "{}/../../../shared/conformance/translation/gpconnect/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let nhs = &name[..10];
    let text = text.replace("\"1234567890\"", &format!("\"{nhs}\""));
    let bundle: fhir::Bundle = fhir::from_str(&text).unwrap();
    assert_eq!(
        bundle
            .resources_of::<fhir::Patient>()
            .next()
            .unwrap()
            .nhs_number(),
        Some(nhs)
    );
    bundle
}

const MOLD: &str = "9465700088_Mold_full_20210119.json";
const NEL: &str = "9465701459_Nel_full_20210119.json";

fn clean_report() -> serde_json::Value {
    serde_json::json!({"input": {}, "output": {}, "degrades": [], "unmapped": []})
}

async fn suite(db: Database, payload_dir: &std::path::Path) {
    let payloads = PayloadStore::on_disk(payload_dir).unwrap();
    let manual = ManualClock::new(1_700_000_000_000);
    let clock: SharedClock = Arc::new(manual.clone());
    let a = Practice::open(
        "A82038",
        db.clone(),
        payloads.clone(),
        clock.clone(),
        AutoIntegration::default(),
    )
    .await
    .unwrap();
    let b = Practice::open(
        "B86041",
        db.clone(),
        payloads.clone(),
        clock.clone(),
        AutoIntegration { enabled: true },
    )
    .await
    .unwrap();

    // A practice with a record: it reads back identical, and the read is audited first.
    let mold = corpus_bundle(MOLD);
    let summary = a.add_patient(&mold).await.unwrap();
    assert_eq!(summary.nhs_number, "9465700088");
    assert!(summary.has_record);
    assert!(
        b.patient("9465700088").await.unwrap().is_none(),
        "practices do not share patients"
    );
    manual.advance(Duration::from_secs(60));
    let read = a
        .read_record("9465700088", "gp2gp:sender", "GP2GP transfer to B86041")
        .await
        .unwrap();
    assert_eq!(read, mold);
    let audit = a.audit_log(Some("9465700088")).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].who, "gp2gp:sender");
    assert_eq!(audit[0].at, 1_700_000_060_000);
    assert!(matches!(
        a.read_record("9465701459", "x", "y").await,
        Err(PracticeError::UnknownPatient(_))
    ));

    // B registers the patient without a record; a record arrives with a degrade, so even
    // with auto-integration on it waits for a person.
    let reg = Registration::from_record(&mold).unwrap();
    b.register(&reg).await.unwrap();
    let degraded = serde_json::json!({"degrades": [{"source": "Condition/1"}], "unmapped": []});
    let item = b
        .deliver(Delivery::of_bundle("conv-1", &mold, degraded).unwrap())
        .await
        .unwrap();
    assert_eq!(item.status, InboxStatus::Pending);
    assert_eq!(item.degrades, 1);
    // Delivering the same conversation again changes nothing.
    let again = b
        .deliver(Delivery::of_bundle("conv-1", &mold, clean_report()).unwrap())
        .await
        .unwrap();
    assert_eq!(again, item);
    assert_eq!(b.inbox(Some(InboxStatus::Pending)).await.unwrap().len(), 1);

    // A person looks (audited) and accepts: it becomes the patient's record.
    let seen = b.inbox_record("conv-1", "dr.jones").await.unwrap();
    assert_eq!(seen, mold);
    assert_eq!(
        b.accept("conv-1", "dr.jones").await.unwrap(),
        Decision::Integrated
    );
    assert!(b.patient("9465700088").await.unwrap().unwrap().has_record);
    assert_eq!(
        b.read_record("9465700088", "dr.jones", "consultation")
            .await
            .unwrap(),
        mold
    );
    // Deciding twice is refused and changes nothing.
    let err = b
        .reject("conv-1", "dr.smith", Rejection::WrongPatient, "oops")
        .await
        .unwrap_err();
    assert!(matches!(err, PracticeError::AlreadyDecided { .. }), "{err}");
    let decided = b.inbox_item("conv-1").await.unwrap().unwrap();
    assert_eq!(decided.decision, Some(Decision::Integrated));
    assert_eq!(decided.decided_by.as_deref(), Some("dr.jones"));
    let actions: Vec<String> = b
        .audit_log(Some("9465700088"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        ["read-inbox-record", "decide:integrated", "read-record"]
    );

    // A second record for a patient who already has one is filed beside it.
    b.deliver(Delivery::of_bundle("conv-2", &mold, clean_report()).unwrap())
        .await
        .unwrap();
    let auto = b.inbox_item("conv-2").await.unwrap().unwrap();
    assert_eq!(
        auto.decision,
        Some(Decision::FiledAsAttachment),
        "auto-integrated, as an attachment"
    );
    assert_eq!(auto.decided_by.as_deref(), Some("system:auto-integration"));

    // Auto-integration with a clean report and a matching patient files at once.
    let nel = corpus_bundle(NEL);
    b.register(&Registration::from_record(&nel).unwrap())
        .await
        .unwrap();
    let filed = b
        .deliver(Delivery::of_bundle("conv-3", &nel, clean_report()).unwrap())
        .await
        .unwrap();
    assert_eq!(filed.decision, Some(Decision::Integrated));

    // A record for someone not registered is never auto-filed; accepting it by hand is
    // refused as the wrong patient.
    let c = Practice::open(
        "C81007",
        db.clone(),
        payloads.clone(),
        clock.clone(),
        AutoIntegration { enabled: true },
    )
    .await
    .unwrap();
    let item = c
        .deliver(Delivery::of_bundle("conv-4", &nel, clean_report()).unwrap())
        .await
        .unwrap();
    assert_eq!(item.status, InboxStatus::Pending);
    assert_eq!(
        c.accept("conv-4", "dr.x").await.unwrap(),
        Decision::WrongPatient
    );
    assert_eq!(
        c.inbox_item("conv-4").await.unwrap().unwrap().status,
        InboxStatus::Rejected
    );

    // Mismatched demographics stop auto-integration too.
    let mut other = reg.clone();
    other.family = Some("SOMEONE-ELSE".into());
    c.register(&other).await.unwrap();
    let item = c
        .deliver(Delivery::of_bundle("conv-5", &mold, clean_report()).unwrap())
        .await
        .unwrap();
    assert_eq!(item.status, InboxStatus::Pending);
    assert_eq!(
        c.reject(
            "conv-5",
            "dr.x",
            Rejection::WrongPatient,
            "different surname"
        )
        .await
        .unwrap(),
        Decision::WrongPatient
    );
    assert_eq!(
        c.inbox_item("conv-5")
            .await
            .unwrap()
            .unwrap()
            .reason
            .as_deref(),
        Some("different surname")
    );
    // The rejected record did not become the patient's record.
    assert!(!c.patient("9465700088").await.unwrap().unwrap().has_record);

    // Bad input is explained.
    assert!(matches!(
        Practice::open(
            "not an ods",
            db.clone(),
            payloads.clone(),
            clock.clone(),
            AutoIntegration::default()
        )
        .await,
        Err(PracticeError::BadOds(..))
    ));
    let bad = Registration {
        nhs_number: "1234567890".into(),
        ..Registration::default()
    };
    assert!(matches!(
        a.register(&bad).await,
        Err(PracticeError::BadNhsNumber(_))
    ));
    assert!(matches!(
        a.accept("no-such", "x").await,
        Err(PracticeError::UnknownInboxItem(_))
    ));
}

#[tokio::test]
async fn on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&format!("sqlite://{}/lloyd.db", dir.path().display()))
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

#[test]
fn the_patient_is_read_from_a_records_json_without_the_rest() {
    for name in [MOLD, NEL] {
        let bundle = corpus_bundle(name);
        let json = fhir::to_vec(&bundle).unwrap();
        assert_eq!(
            Registration::from_record_json(&json).unwrap(),
            Registration::from_record(&bundle).unwrap(),
            "{name}"
        );
    }
    // No Patient, or not a Bundle at all: said so, not guessed.
    let mut bundle = corpus_bundle(MOLD);
    bundle
        .entry
        .retain(|e| !matches!(&e.resource, Some(fhir::Resource::Patient(_))));
    let json = fhir::to_vec(&bundle).unwrap();
    assert!(matches!(
        Registration::from_record_json(&json),
        Err(PracticeError::NoPatient)
    ));
    assert!(matches!(
        Registration::from_record_json(b"{\"entry\": 3}"),
        Err(PracticeError::Corrupt(_))
    ));
}
