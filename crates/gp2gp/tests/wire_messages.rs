//! The GP2GP payloads this system writes are schema-valid and read back to the same facts
//! through real ebXML bytes; every corpus message reads as what it is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod wire_common;

use gp2gp::MessageId;
use gp2gp::wire::{self, AckType, Incoming, WireError};
use hl7v3::ReasonCode;
use wire_common::*;

const NOW: i64 = 1_714_557_600_000; // 2024-05-01T10:00:00Z

fn gp2gp_outbound(interaction: &str, id: &str, payload: String) -> mhs::Outbound {
    let mut o = mhs::Outbound::gp2gp(route(), interaction, "CONV-1", payload);
    o.message_id = Some(id.to_string());
    o
}

fn read_back(interaction: &str, id: &str, payload: String) -> Incoming {
    let (message, _) = through_the_wire(&gp2gp_outbound(interaction, id, payload));
    wire::read(&message).unwrap_or_else(|e| panic!("{interaction} does not read back: {e}"))
}

#[test]
fn the_request_is_structurally_valid_and_reads_back() {
    let p = parties();
    let xml = wire::ehr_request(
        &p,
        "5A1B2C3D-0000-4000-8000-000000000001",
        "9692294935",
        NOW,
    );
    let report = assert_valid("EhrRequest", xml.as_bytes());
    assert_eq!(report.interaction, Some(hl7v3::Interaction::EhrRequest));
    assert!(
        xml.contains(r#"<creationTime value="20240501100000"/>"#),
        "{xml}"
    );
    let incoming = read_back(
        "RCMR_IN010000UK05",
        "5A1B2C3D-0000-4000-8000-000000000001",
        xml,
    );
    assert_eq!(
        incoming,
        Incoming::Request {
            request_id: MessageId::new("5a1b2c3d-0000-4000-8000-000000000001"),
            ehr_request_id: "5A1B2C3D-0000-4000-8000-000000000001".into(),
            nhs_number: "9692294935".into(),
            parties: p,
        }
    );
}

#[test]
fn acks_of_every_code_are_schema_valid_and_read_back() {
    let mut codes: Vec<Option<ReasonCode>> = vec![None];
    codes.extend(
        ReasonCode::ALL
            .iter()
            .copied()
            .filter(|c| *c != ReasonCode::Continue)
            .map(Some),
    );
    for code in codes {
        let xml = wire::ack(
            "A0A1B2C3-0000-4000-8000-0000000000A1",
            "E0A1B2C3-0000-4000-8000-0000000000E1",
            code,
            "200000000205",
            "200000000359",
            NOW,
        );
        assert_valid(&format!("ack {code:?}"), xml.as_bytes());
        let parsed = hl7v3::Message::parse(xml.as_bytes()).unwrap();
        assert_eq!(parsed.from_asid(), Some("200000000205"));
        assert_eq!(parsed.to_asid(), Some("200000000359"));
        if let Some(c) = code {
            // In both places receivers look.
            assert_eq!(
                xml.matches(&format!(r#"code="{}""#, c.code())).count(),
                2,
                "{xml}"
            );
        }
        let incoming = read_back(
            "MCCI_IN010000UK13",
            "A0A1B2C3-0000-4000-8000-0000000000A1",
            xml,
        );
        assert_eq!(
            incoming,
            Incoming::Ack {
                message_id: MessageId::new("A0A1B2C3-0000-4000-8000-0000000000A1"),
                acked_message_id: MessageId::new("E0A1B2C3-0000-4000-8000-0000000000E1"),
                ack_type: if code.is_some() {
                    AckType::AE
                } else {
                    AckType::AA
                },
                code,
                raw_code: code.map(|c| c.code().to_string()),
            }
        );
    }
}

#[test]
fn the_continue_is_schema_valid_and_reads_back() {
    let p = parties();
    let xml = wire::continue_message(
        &p,
        "C0A1B2C3-0000-4000-8000-00000000C0A1",
        "E0A1B2C3-0000-4000-8000-0000000000E1",
        NOW,
    );
    assert_valid("Continue", xml.as_bytes());
    let parsed = hl7v3::Message::parse(xml.as_bytes()).unwrap();
    assert_eq!(parsed.ack_type(), Some("AA"));
    assert_eq!(parsed.reason_code(), Some("0"));
    assert_eq!(parsed.from_asid(), Some(p.requester_asid.as_str()));
    assert_eq!(
        read_back(
            "COPC_IN000001UK01",
            "C0A1B2C3-0000-4000-8000-00000000C0A1",
            xml
        ),
        Incoming::Continue {
            message_id: MessageId::new("C0A1B2C3-0000-4000-8000-00000000C0A1"),
            extract_message_id: MessageId::new("E0A1B2C3-0000-4000-8000-0000000000E1"),
        }
    );
}

#[test]
fn the_copc_attachment_payload_is_schema_valid() {
    let p = parties();
    let xml = wire::copc_attachment(
        &p,
        "C0A1B2C3-0000-4000-8000-00000000C0C1",
        "A_<odd> & \"name\".pdf",
        NOW,
    );
    assert_valid("COPC attachment", xml.as_bytes());
    let parsed = hl7v3::Message::parse(xml.as_bytes()).unwrap();
    assert_eq!(
        parsed.message_id(),
        Some("C0A1B2C3-0000-4000-8000-00000000C0C1")
    );
    assert_eq!(parsed.from_asid(), Some(p.sender_asid.as_str()));
    assert!(parsed.ack_type().is_none());
    // A COPC message with no attachment at all is not a document.
    let (message, _) = through_the_wire(&gp2gp_outbound(
        "COPC_IN000001UK01",
        "C0A1B2C3-0000-4000-8000-00000000C0C1",
        xml,
    ));
    let err = wire::read(&message).unwrap_err();
    assert!(matches!(err, WireError::EmptyCopc { .. }), "{err}");
    assert_eq!(err.reason_code(), ReasonCode::LargeMessageGeneralFailure);
}

#[test]
fn corpus_requests_acks_and_continues_classify() {
    let request = wire::read(&corpus_json(
        "gp2gp/messages/1_-_EHR_Request_RCMR_IN010000UK13__RCMR_IN010000UK05.json",
    ))
    .unwrap();
    assert_eq!(
        request,
        Incoming::Request {
            request_id: MessageId::new("DFF5321C-C6EA-468E-BBC2-B0E48000E071"),
            ehr_request_id: "041CA2AE-3EC6-4AC9-942F-0F6621CC0BFC".into(),
            nhs_number: "9692294935".into(),
            parties: wire::Parties {
                requester_ods: "N82668".into(),
                requester_asid: "200000000205".into(),
                sender_ods: "B86041".into(),
                sender_asid: "200000001161".into(),
            },
        }
    );
    let ack = wire::read(&corpus_json(
        "gp2gp/messages/MCCI_IN010000UK13__MCCI_IN010000UK13.json",
    ))
    .unwrap();
    assert!(
        matches!(ack, Incoming::Ack { ack_type: AckType::AA, code: None, ref acked_message_id, .. }
        if *acked_message_id == MessageId::new("0575C06D-7918-49EB-972D-6F9C108ECFAA"))
    );
    let cont = wire::read(&corpus_pair(
        "continuemessage__COPC_IN000001UK01_ebxml.txt",
        "continuemessage__COPC_IN000001UK01_payload.txt",
    ))
    .unwrap();
    assert_eq!(
        cont,
        Incoming::Continue {
            message_id: MessageId::new("FA039330-7E63-446A-8CA4-E9E0D00DA6E8"),
            extract_message_id: MessageId::new("6E242658-3D8E-11E3-A7DC-172BDA00FA67"),
        }
    );
    for (body, ack_type, code) in [
        ("AA", AckType::AA, None),
        ("AE", AckType::AE, Some(ReasonCode::Unexpected)),
        ("AR", AckType::AR, Some(ReasonCode::RequestNotWellFormed)),
    ] {
        let m = corpus_pair(
            "inbound__acknowledgement__templates__MCCI_IN010000UK13_ebxml.txt",
            &format!("inbound__acknowledgement__MCCI_IN010000UK13_body_{body}.xml"),
        );
        match wire::read(&m).unwrap() {
            Incoming::Ack {
                acked_message_id,
                ack_type: t,
                code: c,
                ..
            } => {
                assert_eq!((t, c), (ack_type, code), "{body}");
                assert_eq!(
                    acked_message_id,
                    MessageId::new("BA229526-ADC6-4F1D-970E-CD9E78A6830E")
                );
            }
            other => panic!("{body}: {other:?}"),
        }
    }
    // A request whose NHS number has a wrong check digit is refused with 18.
    let err = wire::read(&corpus_pair(
        "statusrequestmessage__RCMR_IN010000UK05_ebxml.txt",
        "statusrequestmessage__RCMR_IN010000UK05_payload.txt",
    ))
    .unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::RequestNotWellFormed, "{err}");
    assert!(err.to_string().contains("9690937420"), "{err}");
}

fn large(name: &str) -> Incoming {
    wire::read(&corpus_json(&format!("gp2gp/large-message/{name}.json")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn corpus_extracts_name_their_documents() {
    // Documents that follow as COPC messages.
    let Incoming::Extract {
        message_id,
        hl7_message_id,
        documents,
        inline,
        parties,
        nhs_number,
        ..
    } = large("Scenario_4__uk06")
    else {
        panic!()
    };
    assert_eq!(
        message_id,
        MessageId::new("6E242658-3D8E-11E3-A7DC-172BDA00FA67")
    );
    assert_eq!(
        hl7_message_id,
        MessageId::new("C258107F-7A3F-4FB5-8B36-D7C0F6496A17")
    );
    assert!(inline.is_empty());
    assert_eq!(parties.sender_ods, "B83002");
    assert_eq!(parties.sender_asid, "715373337545");
    assert_eq!(parties.requester_asid, "276827251543");
    assert_eq!(nhs_number.as_deref(), Some("{{nhsNumber}}"));
    assert_eq!(documents.len(), 1);
    let d = &documents[0];
    assert_eq!(
        d.message_id,
        MessageId::new("E39E79A2-FA96-48FF-9373-7BBCB9D036E7")
    );
    assert_eq!(d.filename, "7CCB6A77-360E-434E-8CF4-97C7C2B47D70_book.txt");
    assert_eq!(d.content_type, "text/plain");
    assert!(d.large && !d.compressed && !d.skeleton);

    // A skeleton whose compressed extract follows.
    for (name, large_doc) in [("Scenario_7__uk06", true), ("Scenario_5__uk06", false)] {
        let Incoming::Extract { documents, .. } = large(name) else {
            panic!()
        };
        assert_eq!(documents.len(), 1, "{name}");
        assert!(documents[0].skeleton, "{name}: {documents:?}");
        assert_eq!(documents[0].large, large_doc, "{name}");
    }

    // Documents carried inline.
    let Incoming::Extract {
        documents, inline, ..
    } = large("Scenario_2__uk06")
    else {
        panic!()
    };
    assert!(documents.is_empty());
    assert_eq!(inline.len(), 1);
    assert_eq!(
        inline[0].document_id.as_deref(),
        Some("1C135B3C-5AA5-4BF1-A08B-E6002455B806")
    );
    assert!(inline[0].compressed && inline[0].base64);
    assert_eq!(
        inline[0].filename.as_deref(),
        Some("1C135B3C-5AA5-4BF1-A08B-E6002455B806_text.txt")
    );
    let Incoming::Extract { inline, .. } = large("Scenario_1__uk06") else {
        panic!()
    };
    assert!(!inline[0].base64 && !inline[0].compressed);
    // Sent as 8bit text (the fixture's text happens to be base64 of a licence): kept as is.
    assert!(inline[0].bytes.starts_with(b"DQogICAg"));
    // Its manifest does not mark the document as a skeleton (although the COPC that
    // follows happens to hold a whole extract): it is an ordinary document.
    let Incoming::Extract { documents, .. } = large("Scenario_11__uk06") else {
        panic!()
    };
    assert!(!documents[0].skeleton);
}

#[test]
fn corpus_copc_messages_are_documents_fragments_and_indexes() {
    let Incoming::FragmentIndex {
        message_id,
        fragments,
        parts,
    } = large("Scenario_4__copc_index")
    else {
        panic!()
    };
    assert_eq!(
        message_id,
        MessageId::new("E39E79A2-FA96-48FF-9373-7BBCB9D036E7")
    );
    assert_eq!(
        fragments,
        vec![
            MessageId::new("28B31-4245-4AFC-8DA2-8A40623A5101"),
            MessageId::new("24AED038-FF3E-466D-820A-AE1B334D68EE")
        ]
    );
    assert!(parts.is_empty());
    // An index carrying its first fragment itself, before two `mid:` ones.
    let Incoming::FragmentIndex {
        fragments, parts, ..
    } = large("Scenario_6__copc_index")
    else {
        panic!()
    };
    assert_eq!(fragments.len(), 2);
    assert_eq!((parts.len(), parts[0].position), (1, 0));
    let Incoming::FragmentIndex {
        fragments, parts, ..
    } = large("decoded-large-attachments__index-message-with-cid__copc_index")
    else {
        panic!()
    };
    assert_eq!(
        fragments,
        vec![MessageId::new("06137384-9f73-4723-a101-4f83cff7c72e")]
    );
    assert_eq!(
        parts[0].filename.as_deref(),
        Some("E0AE6DA2-AA21-444B-BEA5-3E48F368A9DF_0.messageattachment")
    );
    for name in [
        "Scenario_3__copc",
        "Scenario_4__copc0",
        "Scenario_4__copc1",
        "Scenario_6__copc0",
        "Scenario_11__copc",
        "decoded-large-attachments__index-message__copc0",
        // Its part reuses the payload's Content-Id: found all the same.
        "decoded-large-attachments__index-message-with-cid__copc0",
    ] {
        match large(name) {
            Incoming::Copc { parts, .. } => {
                assert_eq!(parts.len(), 1, "{name}");
                assert!(!parts[0].bytes.is_empty(), "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // A COPC whose manifest names an attachment it does not carry: NACK 30.
    let err = wire::read(&corpus_json(
        "gp2gp/large-message/NewError__copc_error_missing_attachment.json",
    ))
    .unwrap_err();
    assert!(matches!(err, WireError::MissingPart { .. }), "{err}");
    assert_eq!(err.reason_code(), ReasonCode::LargeMessageGeneralFailure);
}

#[test]
fn every_corpus_message_reads() {
    let mut names: Vec<String> = std::fs::read_dir(corpus().join("gp2gp/large-message"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut read = 0;
    for n in &names {
        let m = corpus_json(&format!("gp2gp/large-message/{n}"));
        match wire::read(&m) {
            Ok(i) => {
                assert_eq!(
                    i.message_id().as_str().to_ascii_uppercase(),
                    m.envelope()
                        .message_header
                        .message_data
                        .message_id
                        .trim()
                        .to_ascii_uppercase()
                );
                read += 1;
            }
            Err(e) => assert!(n.starts_with("NewError__copc"), "{n}: {e}"),
        }
    }
    assert_eq!(read, names.len() - 1);
}

#[test]
fn a_confused_or_hostile_peer_gets_the_right_refusal() {
    let p = parties();
    // eb:Action says one thing, the payload another.
    let xml = wire::ack(
        "A0A1B2C3-0000-4000-8000-0000000000A1",
        "X",
        None,
        "1",
        "2",
        NOW,
    );
    let (m, _) = through_the_wire(&gp2gp_outbound(
        "RCMR_IN030000UK06",
        "A0A1B2C3-0000-4000-8000-0000000000A1",
        xml,
    ));
    let err = wire::read(&m).unwrap_err();
    assert!(matches!(err, WireError::ActionMismatch { .. }), "{err}");
    assert_eq!(err.reason_code(), ReasonCode::ExtractNotWellFormed);
    // Not XML at all, claiming to be a request.
    let (m, _) = through_the_wire(&gp2gp_outbound("RCMR_IN010000UK05", "R-1", "<oops".into()));
    let err = wire::read(&m).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::RequestNotWellFormed, "{err}");
    // A DOCTYPE (entity expansion) claiming to be a COPC.
    let bomb = r#"<!DOCTYPE x [<!ENTITY a "aaaa">]><COPC_IN000001UK01 xmlns="urn:hl7-org:v3">&a;</COPC_IN000001UK01>"#;
    let (m, _) = through_the_wire(&gp2gp_outbound("COPC_IN000001UK01", "C-1", bomb.into()));
    assert_eq!(
        wire::read(&m).unwrap_err().reason_code(),
        ReasonCode::LargeMessageGeneralFailure
    );
    // A request without the sending practice.
    let xml = wire::ehr_request(
        &wire::Parties {
            sender_ods: String::new(),
            ..p.clone()
        },
        "R-2",
        "9692294935",
        NOW,
    );
    let (m, _) = through_the_wire(&gp2gp_outbound("RCMR_IN010000UK05", "R-2", xml));
    let err = wire::read(&m).unwrap_err();
    assert!(matches!(err, WireError::Missing { .. }), "{err}");
    assert_eq!(err.reason_code(), ReasonCode::RequestNotWellFormed);
    // An ack with an unknown type.
    let xml = wire::ack("ACK-2", "X", None, "1", "2", NOW)
        .replace(r#"typeCode="AA""#, r#"typeCode="ZZ""#);
    let (m, _) = through_the_wire(&gp2gp_outbound("MCCI_IN010000UK13", "ACK-2", xml));
    assert!(matches!(
        wire::read(&m).unwrap_err(),
        WireError::Invalid { .. }
    ));
}

#[test]
fn received_parts_survive_a_round_trip_through_json() {
    let Incoming::Extract { inline, .. } = large("Scenario_2__uk06") else {
        panic!()
    };
    let json = serde_json::to_string(&inline).unwrap();
    let back: Vec<wire::ReceivedPart> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, inline);
}
