//! Every way a GP2GP transfer ends badly (and every final acknowledgement), end to end over
//! real HTTP through Spine's relay: each asserts where the transfer ends on both sides
//! (phase and reason code) and the code the national message log holds (`jdiEvent`).
//!
//! Most codes come from the real drivers: the old practice's checks (06 not registered
//! there, 19 PDS says the patient is registered elsewhere) and its failure to read the
//! record (10); the new practice's SDS check of the old one (24); the practice's decision
//! in its integration inbox (AA, 11, 15, 17, 26, 28); and large-message failures made by an
//! interposer between the relay and the new practice's MHS (25 none of the parts came, 31
//! one fragment never came, 29 a fragment damaged on the way).
//!
//! Codes a well-behaved peer never provokes are injected over HTTP through the relay, as
//! the peer's MHS, with messages built by `gp2gp::wire` (and `translate` for extracts):
//! a request naming another practice as the record's holder (18); a request from a
//! practice SDS does not list for extracts (24 from the old practice); an old practice
//! that answers 07 (Lloyd's own driver has no "GP2GP disabled" state, so never sends it);
//! an unreadable extract (21); another patient's record (28, refused before the practice
//! sees it); a COPC before any extract, and an unreadable one (30); an extract nobody
//! asked for (09); a second extract (12).
//!
//! The refusals and the misbehaving sender run on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod transfer_common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use gp2gp::requester::Integration;
use gp2gp::wire::{self, Incoming, Parties};
use hl7v3::ReasonCode;
use transfer_common::interposer::{Interposer, Meddle};
use transfer_common::*;

const WAIT: Duration = Duration::from_secs(90);
/// An ODS code SDS does not know.
const UNKNOWN: &str = "E83005";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

fn parties() -> Parties {
    Parties {
        requester_ods: B.into(),
        requester_asid: B_ASID.into(),
        sender_ods: A.into(),
        sender_asid: A_ASID.into(),
    }
}

/// Sends a GP2GP message as practice `from` (through its MHS and Spine's relay).
async fn send(
    from: &PracticeParts,
    to_ods: &str,
    interaction: &str,
    conversation: &str,
    id: &str,
    refers_to: Option<&str>,
    payload: String,
) {
    let mut out = mhs::Outbound::gp2gp(
        mhs::Route::Sds {
            ods_code: to_ods.into(),
        },
        interaction,
        conversation,
        payload,
    );
    out.message_id = Some(id.into());
    out.ref_to_message_id = refers_to.map(str::to_string);
    from.mhs.send(out).await.unwrap();
}

/// A request for `nhs`'s record sent to A by B's MHS with these parties in its payload
/// (B's driver never sends such a one); its conversation and id.
async fn request_as_b(w: &World, parties: &Parties, nhs: &str) -> (String, String) {
    let (conversation, request) = (new_id(), new_id());
    let payload = wire::ehr_request(parties, &request, nhs, now());
    send(
        &w.b_parts,
        A,
        REQUEST,
        &conversation,
        &request,
        None,
        payload,
    )
    .await;
    (conversation, request)
}

/// An extract of `nhs`'s corpus record, as practice A would send it.
fn extract_xml(nhs: &str, id: &str, ehr_request_id: &str) -> String {
    let options = translate::to_hl7::ToHl7Options {
        from_ods: Some(A.into()),
        to_ods: Some(B.into()),
        from_asid: Some(A_ASID.into()),
        to_asid: Some(B_ASID.into()),
        creation_time: Some(clock::Utc::from_ms(now()).hl7()),
        message_id: Some(id.into()),
        request_id: Some(ehr_request_id.into()),
    };
    let (message, _) = translate::to_hl7::bundle_to_extract(&corpus_bundle(nhs), &options).unwrap();
    message.to_xml(hl7v3::xml::Layout::Compact)
}

// ---------------------------------------------------------------------------------------
// The final acknowledgement: what the new practice did with the record.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_acknowledgement_carries_the_practices_decision() {
    // (decision, phase at both ends, code at both ends)
    let table = [
        (Integration::Integrated, "integrated", None),
        (Integration::FailedToIntegrate, "rejected", Some("11")),
        (Integration::StoredSuppressed, "integrated", Some("15")),
        (Integration::AbaWrongPatient, "rejected", Some("17")),
        (Integration::FiledAsAttachment, "integrated", Some("26")),
        (Integration::WrongPatient, "rejected", Some("28")),
    ];
    let patients: Vec<String> = (0..table.len() as u32)
        .map(|i| nhs_number(100 + i))
        .collect();
    let a = TestClinical {
        records: patients
            .iter()
            .map(|n| (n.clone(), corpus_bundle(n)))
            .collect(),
        ..TestClinical::default()
    };
    let b = TestClinical {
        decisions: patients
            .iter()
            .zip(&table)
            .map(|(n, (how, _, _))| (n.clone(), *how))
            .collect(),
        ..TestClinical::default()
    };
    let refs: Vec<&str> = patients.iter().map(String::as_str).collect();
    let w = World::start(a, b, Setup::patients(&refs)).await;
    let conversations = w.request_all(refs.iter().copied()).await;
    for (conversation, (_, phase, code)) in conversations.iter().zip(&table) {
        let (requester, _) = w
            .assert_ends(conversation, (phase, *code), (phase, *code))
            .await;
        let extract = message_id(&requester, "in", EXTRACT);
        let log = w.log(conversation).await;
        assert_entry(
            ack_of(&log, &extract),
            MCCI,
            B_ASID,
            &extract,
            code.unwrap_or("NONE"),
        );
    }
}

// ---------------------------------------------------------------------------------------
// The old practice refuses.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_practice_refuses_with_06_10_18_19_24_and_sds_with_24() {
    refusals(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_practice_refuses_with_06_10_18_19_24_and_sds_with_24_on_postgres() {
    let pg = store::testing::TempPostgres::start().unwrap();
    refusals(Some(&pg)).await;
}

async fn refusals(pg: Option<&store::testing::TempPostgres>) {
    let [p06, p10, p18, p19, p24, p24s, p24e] = [200, 201, 202, 203, 204, 205, 206].map(nhs_number);
    let a = TestClinical {
        records: [&p10, &p18, &p19, &p24s, &p24e]
            .iter()
            .map(|n| (n.to_string(), corpus_bundle(n)))
            .collect(),
        unreadable_records: HashSet::from([p10.clone()]),
        ..TestClinical::default()
    };
    let mut setup = Setup::patients(&[&p06, &p10, &p18, &p24]);
    // PDS says p19 is registered elsewhere: the new practice is not their current one.
    setup.patients.push((p19.clone(), Some(C.into())));
    // p24s is registered with C, which SDS does not list for extracts.
    setup.patients.push((p24s.clone(), Some(C.into())));
    // p24e is registered with a practice SDS does not know at all.
    setup.patients.push((p24e.clone(), Some(UNKNOWN.into())));
    setup.pg = pg;
    let w = World::start(a, TestClinical::filing(), setup).await;

    // Refused by the old practice's checks: (patient, code at the new practice, phase and
    // code at the old).
    let table = [
        (&p06, "06", "refused"),
        (&p19, "19", "refused"),
        (&p10, "10", "failed"),
    ];
    let conversations = w
        .request_all(table.iter().map(|(nhs, _, _)| nhs.as_str()))
        .await;
    for (conversation, (_, code, sender_phase)) in conversations.iter().zip(&table) {
        let (requester, _) = w
            .assert_ends(
                conversation,
                ("failed", Some(*code)),
                (sender_phase, Some(*code)),
            )
            .await;
        let request = message_id(&requester, "out", REQUEST);
        let log = w.log(conversation).await;
        assert_request_logged(&log, &request);
        assert_entry(ack_of(&log, &request), MCCI, A_ASID, &request, code);
        assert_eq!(log.len(), 2, "{log:#?}");
    }

    // 24: SDS has practice C, but not for GP2GP requests: nothing is sent, the transfer
    // fails.
    let conversation = w.b.driver.request(&p24, C).await.unwrap();
    let requester = wait_finished(&w.b.driver, &conversation, WAIT).await;
    assert_eq!(end(&requester), ("failed", Some("24")), "{requester:#?}");
    assert!(requester.messages.is_empty(), "{requester:#?}");
    assert!(w.log(&conversation).await.is_empty());

    // 18: a request the old practice cannot act on — it names another practice as the
    // one holding the record. Injected as the new practice's MHS (its driver never sends
    // such a request).
    let wrong = Parties {
        sender_ods: C.into(),
        ..parties()
    };
    let (conversation, request) = request_as_b(&w, &wrong, &p18).await;
    let sender = wait_finished(w.a(), &conversation, WAIT).await;
    assert_eq!(end(&sender), ("refused", Some("18")), "{sender:#?}");
    let log = w.log_until(&conversation, |l| l.len() >= 2).await;
    assert_entry(ack_of(&log, &request), MCCI, A_ASID, &request, "18");

    // 24 from the old practice: a request from C (played here by B's MHS), where the
    // patient is registered, but SDS cannot route an extract to C. The refusal goes to C.
    let from_c = Parties {
        requester_ods: C.into(),
        requester_asid: C_ASID.into(),
        ..parties()
    };
    let (conversation, request) = request_as_b(&w, &from_c, &p24s).await;
    let sender = wait_finished(w.a(), &conversation, WAIT).await;
    assert_eq!(end(&sender), ("refused", Some("24")), "{sender:#?}");
    let log = w
        .log_until(&conversation, |l| {
            l.iter().any(|e| e.interaction_id == MCCI)
        })
        .await;
    let nack = ack_of(&log, &request);
    assert_eq!(
        (
            nack.message_sender.as_str(),
            nack.message_recipient.as_str()
        ),
        (A_ASID, C_ASID),
        "{nack:#?}"
    );
    assert_eq!(nack.jdi_event, "24", "{nack:#?}");

    // The same from a practice SDS does not know at all: the refusal cannot be routed
    // either. It is given up and shown as not sent, not retried for ever.
    let from_unknown = Parties {
        requester_ods: UNKNOWN.into(),
        requester_asid: "200000000909".into(),
        ..parties()
    };
    let (conversation, request) = request_as_b(&w, &from_unknown, &p24e).await;
    let sender = wait_phase(w.a(), &conversation, WAIT, |s| {
        s.messages
            .iter()
            .any(|m| m.direction == "out" && m.note.starts_with("not sent"))
    })
    .await;
    assert_eq!(end(&sender), ("refused", Some("24")), "{sender:#?}");
    let unsent = sender
        .messages
        .iter()
        .find(|m| m.direction == "out")
        .unwrap();
    assert_eq!(unsent.acknowledges.as_deref(), Some(request.as_str()));
    assert_eq!(unsent.code.as_deref(), Some("24"));
}

// ---------------------------------------------------------------------------------------
// A hostile or broken old practice, played by hand over its MHS.

/// The new practice asks for `nhs`'s record; the request as practice A's MHS received it.
async fn asked(w: &World, nhs: &str) -> (String, String, String) {
    let conversation = w.b.driver.request(nhs, A).await.unwrap();
    // Earlier conversations' acknowledgements may be waiting too.
    let m = loop {
        let m = w.a_inbound().await;
        if m.conversation_id() == conversation && m.interaction_id() == REQUEST {
            break m;
        }
    };
    let Incoming::Request {
        request_id,
        ehr_request_id,
        ..
    } = wire::read(&m.message).unwrap()
    else {
        panic!("not a request")
    };
    (
        conversation,
        request_id.as_str().to_string(),
        ehr_request_id,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_old_practice_is_answered_with_07_09_12_21_28_and_30() {
    misbehaving_sender(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_old_practice_is_answered_with_07_09_12_21_28_and_30_on_postgres() {
    let pg = store::testing::TempPostgres::start().unwrap();
    misbehaving_sender(Some(&pg)).await;
}

async fn misbehaving_sender(pg: Option<&store::testing::TempPostgres>) {
    let [p07, p12, p21, p30, p09, p28] = [300, 301, 302, 303, 304, 305].map(nhs_number);
    let setup = Setup {
        drive_a: false,
        pg,
        ..Setup::patients(&[&p07, &p12, &p21, &p30, &p09, &p28])
    };
    let w = World::start(TestClinical::default(), TestClinical::filing(), setup).await;

    // 07: the old practice answers that GP2GP is not enabled on its system.
    let (conversation, request, _) = asked(&w, &p07).await;
    let id = new_id();
    let nack = wire::ack(
        &id,
        &request,
        Some(ReasonCode::MessagingNotEnabled),
        A_ASID,
        B_ASID,
        now(),
    );
    send(
        &w.a_parts,
        B,
        MCCI,
        &conversation,
        &id,
        Some(&request),
        nack,
    )
    .await;
    let requester = wait_finished(&w.b.driver, &conversation, WAIT).await;
    assert_eq!(end(&requester), ("failed", Some("07")), "{requester:#?}");
    let log = w.log(&conversation).await;
    assert_entry(ack_of(&log, &request), MCCI, A_ASID, &request, "07");

    // 21: an extract that cannot be read.
    let (conversation, _, _) = asked(&w, &p21).await;
    let extract = new_id();
    let unreadable = format!(
        "<RCMR_IN030000UK06 xmlns=\"urn:hl7-org:v3\"><id root=\"{extract}\"/><creationTime value=\"not a time\"/></RCMR_IN030000UK06>"
    );
    send(
        &w.a_parts,
        B,
        EXTRACT,
        &conversation,
        &extract,
        None,
        unreadable,
    )
    .await;
    let requester = wait_finished(&w.b.driver, &conversation, WAIT).await;
    assert_eq!(end(&requester), ("failed", Some("21")), "{requester:#?}");
    let log = w
        .log_until(&conversation, |l| {
            l.iter().any(|e| e.interaction_id == MCCI)
        })
        .await;
    assert_entry(ack_of(&log, &extract), MCCI, B_ASID, &extract, "21");

    // 28: the record of another patient. Refused, never filed.
    let (conversation, _, ehr_request) = asked(&w, &p28).await;
    let extract = new_id();
    let other = extract_xml(&nhs_number(399), &extract, &ehr_request);
    send(&w.a_parts, B, EXTRACT, &conversation, &extract, None, other).await;
    let requester = wait_finished(&w.b.driver, &conversation, WAIT).await;
    assert_eq!(end(&requester), ("failed", Some("28")), "{requester:#?}");
    let log = w
        .log_until(&conversation, |l| {
            l.iter().any(|e| e.interaction_id == MCCI)
        })
        .await;
    assert_entry(ack_of(&log, &extract), MCCI, B_ASID, &extract, "28");
    assert!(w.b_clinical.arrivals(&conversation).is_empty());

    // 30: a large-message part before any extract. Refused; the transfer still waits for
    // its extract.
    let (conversation, _, _) = asked(&w, &p30).await;
    let copc = new_id();
    let payload = wire::copc_attachment(&parties(), &copc, "early.txt", now());
    let mut out = mhs::Outbound::gp2gp(
        mhs::Route::Sds { ods_code: B.into() },
        COPC,
        &conversation,
        payload,
    );
    out.message_id = Some(copc.clone());
    out.attachments.push(mhs::Attachment {
        content_id: None,
        content_type: "text/plain".into(),
        is_base64: false,
        description: "Filename=\"early.txt\" ContentType=text/plain Compressed=No LargeAttachment=No OriginalBase64=No Length=5".into(),
        payload: bytes::Bytes::from_static(b"early"),
        document_id: None,
    });
    w.a_parts.mhs.send(out).await.unwrap();
    let log = w
        .log_until(&conversation, |l| {
            l.iter().any(|e| e.interaction_id == MCCI)
        })
        .await;
    assert_entry(ack_of(&log, &copc), MCCI, B_ASID, &copc, "30");
    // A part that cannot be read at all: refused with 30 too.
    let unreadable = new_id();
    let payload = format!(
        "<COPC_IN000001UK01 xmlns=\"urn:hl7-org:v3\"><id root=\"{unreadable}\"/></COPC_IN000001UK01>"
    );
    send(
        &w.a_parts,
        B,
        COPC,
        &conversation,
        &unreadable,
        None,
        payload,
    )
    .await;
    let log = w
        .log_until(&conversation, |l| {
            l.iter()
                .any(|e| e.message_ref.eq_ignore_ascii_case(&unreadable))
        })
        .await;
    assert_entry(ack_of(&log, &unreadable), MCCI, B_ASID, &unreadable, "30");
    let requester = w.b.driver.status(&conversation).await.unwrap();
    assert_eq!(
        end(&requester),
        ("awaiting extract", None),
        "{requester:#?}"
    );
    assert!(!requester.summary.finished);

    // 12: a second extract after the first was filed. The transfer stays filed.
    let (conversation, request, ehr_request) = asked(&w, &p12).await;
    let first = new_id();
    send(
        &w.a_parts,
        B,
        EXTRACT,
        &conversation,
        &first,
        None,
        extract_xml(&p12, &first, &ehr_request),
    )
    .await;
    let requester = wait_finished(&w.b.driver, &conversation, WAIT).await;
    assert_eq!(end(&requester), ("integrated", None), "{requester:#?}");
    let second = new_id();
    send(
        &w.a_parts,
        B,
        EXTRACT,
        &conversation,
        &second,
        None,
        extract_xml(&p12, &second, &ehr_request),
    )
    .await;
    let log = w
        .log_until(&conversation, |l| {
            l.iter()
                .any(|e| e.message_ref.eq_ignore_ascii_case(&second))
        })
        .await;
    assert_entry(ack_of(&log, &first), MCCI, B_ASID, &first, "NONE");
    assert_entry(ack_of(&log, &second), MCCI, B_ASID, &second, "12");
    let requester = w.b.driver.status(&conversation).await.unwrap();
    assert_eq!(end(&requester), ("integrated", None), "{requester:#?}");
    assert_eq!(w.b_clinical.arrivals(&conversation).len(), 1, "filed once");
    let _ = request;

    // 09: an extract nobody asked for.
    let conversation = new_id();
    let extract = new_id();
    send(
        &w.a_parts,
        B,
        EXTRACT,
        &conversation,
        &extract,
        None,
        extract_xml(&p09, &extract, &new_id()),
    )
    .await;
    let log = w
        .log_until(&conversation, |l| {
            l.iter().any(|e| e.interaction_id == MCCI)
        })
        .await;
    assert_entry(ack_of(&log, &extract), MCCI, B_ASID, &extract, "09");
    assert!(
        w.b.driver.status(&conversation).await.is_err(),
        "no transfer was started"
    );
    assert!(w.b_clinical.arrivals(&conversation).is_empty());
}

// ---------------------------------------------------------------------------------------
// Large messages that do not all arrive whole.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_lost_or_spoilt_end_with_25_31_and_29() {
    let [p25, p31, p29] = [400, 401, 402].map(nhs_number);
    // Each record has one 4 MB attachment: an index and two fragments.
    let table = [
        (&p25, Meddle::DropAll, "25"),
        (&p31, Meddle::DropFragment, "31"),
        (&p29, Meddle::SpoilFragment, "29"),
    ];
    let mut records = HashMap::new();
    let mut documents = HashMap::new();
    for (i, (nhs, _, _)) in table.iter().enumerate() {
        let (record, docs) = synthetic_record(nhs, 50_000, 40 + i as u64, &[4_000_000]);
        records.insert(nhs.to_string(), record);
        documents.extend(docs);
    }
    let a = TestClinical {
        records,
        documents,
        ..TestClinical::default()
    };
    let interposer = Interposer::start(
        table
            .iter()
            .map(|(nhs, meddle, _)| (nhs.to_string(), *meddle))
            .collect(),
    )
    .await;
    // The new practice waits five minutes for the extract and five for each part (SDS),
    // on a clock the test moves on an hour once everything the old practice sent has been
    // dropped by the interposer or taken in by the new practice: the deadlines pass then,
    // and never earlier, however slow the machine.
    let b_clock = paced_clock();
    let setup = Setup {
        b_address: Some(interposer.url.clone()),
        b_clock: Some(b_clock.clone()),
        ..Setup::patients(&[&p25, &p31, &p29])
    };
    let w = World::start(a, TestClinical::filing(), setup).await;
    interposer.pass_to(w.b_mhs_url());
    let conversations = w
        .request_all(table.iter().map(|(nhs, _, _)| nhs.as_str()))
        .await;
    for conversation in &conversations {
        let start = std::time::Instant::now();
        loop {
            if let (Ok(sent), Ok(taken)) = (
                w.a().status(conversation).await,
                w.b.driver.status(conversation).await,
            ) && everything_sent_was_dropped_or_taken(&sent, &taken, &interposer.dropped())
            {
                break;
            }
            assert!(
                start.elapsed() < WAIT,
                "the parts of {conversation} never all went by"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    b_clock.advance(Duration::from_secs(3600));
    for (conversation, (nhs, meddle, code)) in conversations.iter().zip(&table) {
        // The old practice hears it in the final acknowledgement.
        let (requester, _) = w
            .assert_ends(
                conversation,
                ("failed", Some(*code)),
                ("rejected", Some(*code)),
            )
            .await;
        let extract = message_id(&requester, "in", EXTRACT);
        let log = w.log(conversation).await;
        assert_entry(ack_of(&log, &extract), MCCI, B_ASID, &extract, code);
        assert!(
            w.b_clinical.arrivals(conversation).is_empty(),
            "{nhs}: nothing filed"
        );
        if *meddle != Meddle::DropAll {
            assert!(interposer.touched(conversation).is_some());
        }
    }
}

/// The old practice has sent the index and two fragments, and each was dropped by the
/// interposer or taken in by the new practice (or the new practice's transfer is over).
fn everything_sent_was_dropped_or_taken(
    sent: &gp2gp::driver::TransferStatus,
    taken: &gp2gp::driver::TransferStatus,
    dropped: &[String],
) -> bool {
    let parts: Vec<&str> = sent
        .messages
        .iter()
        .filter(|m| m.direction == "out" && m.interaction_id == COPC)
        .map(|m| m.message_id.as_str())
        .collect();
    parts.len() == 3
        && (taken.summary.finished
            || parts.iter().all(|id| {
                dropped.iter().any(|d| d.eq_ignore_ascii_case(id))
                    || taken
                        .messages
                        .iter()
                        .any(|m| m.direction == "in" && m.message_id.eq_ignore_ascii_case(id))
            }))
}
