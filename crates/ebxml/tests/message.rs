//! Whole messages: lenient reading, every limit and malformation with its own error, the
//! builders' answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use ebxml::{
    AttachmentInfo, Boundary, Envelope, Error, ErrorCode, ErrorDetail, Href, Limits, Message,
    MessageData, MessageHeader, OutboundMessage, OutboundPart, Party, Reply, ReplyIds, Severity,
    SoapFault, TransferEncoding,
};

const ENVELOPE: &str = include_str!(
    "../../../../shared/conformance/gp2gp/messages/illogicalmessage__COPC_IN000001UK01_ebxml.txt"
);

fn header() -> MessageHeader {
    MessageHeader {
        from: Party::spine("RHM-803229"),
        to: Party::spine("RHM-801710"),
        cpa_id: "S2030731A2137927".into(),
        conversation_id: "A023EF7E-BE27-4A70-949A-38F7865E83BC".into(),
        service: ebxml::SERVICE_GP2GP.into(),
        action: "COPC_IN000001UK01".into(),
        message_data: MessageData {
            message_id: "FA039330-7E63-446A-8CA4-E9E0D00DA6E8".into(),
            timestamp: "2013-10-28T08:59:26Z".into(),
            ref_to_message_id: None,
            time_to_live: None,
        },
        duplicate_elimination: false,
    }
}

/// A hand-written message the way some senders write them: LF line ends, header names
/// in odd case, an unquoted `type`, an 8bit payload and a base64 attachment on long lines.
fn sloppy_body() -> String {
    format!(
        "----=_MIME-Boundary\n\
         content-id: <ebXMLHeader@spine.nhs.uk>\n\
         CONTENT-TYPE: text/xml; charset=UTF-8\n\
         Content-Transfer-Encoding: 8bit\n\
         \n\
         {ENVELOPE}\n\
         ----=_MIME-Boundary\n\
         Content-Id: <3f35e4da-3faf-11e3-b10c-8bc15657569c@spine.nhs.uk>\n\
         Content-Type: application/xml\n\
         \n\
         <COPC_IN000001UK01 xmlns=\"urn:hl7-org:v3\"/>\n\
         ----=_MIME-Boundary\n\
         Content-Id: <att1@x>\n\
         Content-Type: application/octet-stream\n\
         content-transfer-encoding: Base64\n\
         \n\
         AAEC/w==\n\
         ----=_MIME-Boundary--\n"
    )
}

const SLOPPY_CT: &str = "multipart/related; boundary=\"--=_MIME-Boundary\"; type=text/xml; start=ebXMLHeader@spine.nhs.uk";

fn check_sloppy(m: &Message) {
    assert_eq!(m.parts().len(), 3);
    assert_eq!(m.envelope().message_header.action, "COPC_IN000001UK01");
    let payload = m.payload().unwrap();
    assert_eq!(
        payload.content_id(),
        Some("3f35e4da-3faf-11e3-b10c-8bc15657569c@spine.nhs.uk")
    );
    assert_eq!(
        &payload.decoded().unwrap()[..],
        b"<COPC_IN000001UK01 xmlns=\"urn:hl7-org:v3\"/>"
    );
    let att = &m.attachments()[0];
    assert_eq!(att.transfer_encoding(), TransferEncoding::Base64);
    assert_eq!(&att.decoded().unwrap()[..], &[0u8, 1, 2, 255]);
    m.check_references().unwrap();
}

#[test]
fn lenient_body_with_lf_and_unquoted_type() {
    let m = Message::parse(Bytes::from(sloppy_body()), SLOPPY_CT, &Limits::default()).unwrap();
    check_sloppy(&m);
    // The same with CRLF throughout.
    let crlf = sloppy_body().replace('\n', "\r\n");
    check_sloppy(&Message::parse(Bytes::from(crlf), SLOPPY_CT, &Limits::default()).unwrap());
}

#[test]
fn captured_http_request_and_bare_bodies() {
    let request = format!(
        "POST /reliablemessaging/reliablerequest HTTP/1.1\r\nhost: msg.example\r\nCONTENT-TYPE: {SLOPPY_CT}\r\nSOAPAction: urn:nhs:names:services:gp2gp/COPC_IN000001UK01\r\n\r\n{}",
        sloppy_body()
    );
    check_sloppy(
        &Message::parse_http_request(Bytes::from(request.clone()), &Limits::default()).unwrap(),
    );
    check_sloppy(&Message::parse_any(Bytes::from(request), &Limits::default()).unwrap());
    // A MIME body with no headers: the boundary comes from its first line.
    check_sloppy(&Message::parse_any(Bytes::from(sloppy_body()), &Limits::default()).unwrap());
    // A MIME body with its own Content-Type header in front.
    let with_head = format!("Content-Type: {SLOPPY_CT}\n\n{}", sloppy_body());
    check_sloppy(&Message::parse_any(Bytes::from(with_head), &Limits::default()).unwrap());
    // A bare SOAP envelope: one part.
    let bare =
        Message::parse_any(Bytes::from_static(ENVELOPE.as_bytes()), &Limits::default()).unwrap();
    assert_eq!(bare.parts().len(), 1);
    assert!(bare.payload().is_none());
    assert_eq!(bare.envelope().message_header.cpa_id, "S2030731A2137927");
}

#[test]
fn each_limit_has_its_error() {
    let body = Bytes::from(sloppy_body());
    let small = |f: fn(&mut Limits)| {
        let mut l = Limits::default();
        f(&mut l);
        l
    };
    let err = Message::parse(
        body.clone(),
        SLOPPY_CT,
        &small(|l| l.max_message_bytes = 100),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::MessageTooLarge { limit: 100, .. }),
        "{err}"
    );
    let err = Message::parse(
        body.clone(),
        SLOPPY_CT,
        &small(|l| l.max_payload_chars = 10),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::PayloadTooLarge {
                chars: 43,
                limit: 10
            }
        ),
        "{err}"
    );
    let err = Message::parse(
        body.clone(),
        SLOPPY_CT,
        &small(|l| l.max_attachment_chars = 4),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::AttachmentTooLarge { index: 1, content_id, size: 8, limit: 4 } if content_id == "att1@x"),
        "{err}"
    );
    let err =
        Message::parse(body.clone(), SLOPPY_CT, &small(|l| l.max_attachments = 0)).unwrap_err();
    assert!(
        matches!(err, Error::TooManyAttachments { count: 1, limit: 0 }),
        "{err}"
    );
    let err = Message::parse(
        body.clone(),
        SLOPPY_CT,
        &small(|l| l.max_envelope_bytes = 50),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::EnvelopeTooLarge { limit: 50, .. }),
        "{err}"
    );
    let err = Message::parse(body, SLOPPY_CT, &small(|l| l.max_xml_depth = 3)).unwrap_err();
    assert!(matches!(err, Error::XmlTooDeep { limit: 3 }), "{err}");
    for e in [
        Error::MessageTooLarge { size: 1, limit: 0 },
        Error::PayloadTooLarge { chars: 1, limit: 0 },
        Error::TooManyAttachments { count: 1, limit: 0 },
    ] {
        assert_eq!(e.error_code(), ErrorCode::MimeProblem);
    }
}

#[test]
fn spine_limit_of_98_attachments() {
    let mut b = OutboundMessage::builder(header()).payload("p", "<x/>");
    for i in 0..99 {
        b = b.attachment(
            OutboundPart::text(format!("a{i}"), "text/plain", "x".to_string()),
            None,
            AttachmentInfo::default(),
        );
    }
    let err = b.build(&Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooManyAttachments {
                count: 99,
                limit: 98
            }
        ),
        "{err}"
    );

    // The reader stops at the 101st part.
    let mut body = String::new();
    body.push_str(&format!("--B\r\n\r\n{ENVELOPE}\r\n--B\r\n\r\n<x/>\r\n"));
    for _ in 0..99 {
        body.push_str("--B\r\n\r\nx\r\n");
    }
    body.push_str("--B--\r\n");
    let err = Message::parse(
        Bytes::from(body),
        "multipart/related; boundary=B",
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooManyAttachments {
                count: 99,
                limit: 98
            }
        ),
        "{err}"
    );
}

#[test]
fn each_malformation_has_its_error() {
    let limits = Limits::default();
    let body = || Bytes::from(sloppy_body());
    let check = |r: Result<Message, Error>, want: fn(&Error) -> bool, code: ErrorCode| {
        let err = r.unwrap_err();
        assert!(want(&err), "unexpected error: {err:?}");
        assert_eq!(err.error_code(), code, "{err}");
        // Every message is a sentence: not empty, no debug formatting.
        assert!(
            err.to_string().len() > 20 && !err.to_string().contains("{ "),
            "{err}"
        );
    };
    check(
        Message::parse(body(), "multipart/related; type=text/xml", &limits),
        |e| matches!(e, Error::MissingBoundary),
        ErrorCode::MimeProblem,
    );
    check(
        Message::parse(body(), "multipart/related; boundary=other", &limits),
        |e| matches!(e, Error::BoundaryNotFound { .. }),
        ErrorCode::MimeProblem,
    );
    check(
        Message::parse(body(), "application/json", &limits),
        |e| matches!(e, Error::UnsupportedMediaType { .. }),
        ErrorCode::MimeProblem,
    );
    check(
        Message::parse(body(), "nonsense", &limits),
        |e| matches!(e, Error::MalformedContentType { .. }),
        ErrorCode::MimeProblem,
    );
    let cut = sloppy_body().replace("----=_MIME-Boundary--\n", "");
    check(
        Message::parse(Bytes::from(cut), SLOPPY_CT, &limits),
        |e| matches!(e, Error::UnterminatedMultipart { .. }),
        ErrorCode::MimeProblem,
    );
    let no_header = sloppy_body()
        .replace("<eb:MessageHeader", "<eb:Other")
        .replace("</eb:MessageHeader>", "</eb:Other>");
    check(
        Message::parse(Bytes::from(no_header), SLOPPY_CT, &limits),
        |e| {
            matches!(
                e,
                Error::MissingElement {
                    element: "eb:MessageHeader"
                }
            )
        },
        ErrorCode::ValueNotRecognized,
    );
    let no_cpa = sloppy_body().replace(
        "<eb:CPAId>S2030731A2137927</eb:CPAId>",
        "<eb:CPAId> </eb:CPAId>",
    );
    check(
        Message::parse(Bytes::from(no_cpa), SLOPPY_CT, &limits),
        |e| {
            matches!(
                e,
                Error::MissingElement {
                    element: "eb:CPAId"
                }
            )
        },
        ErrorCode::ValueNotRecognized,
    );
    let no_id = sloppy_body().replace(
        "<eb:MessageId>FA039330-7E63-446A-8CA4-E9E0D00DA6E8</eb:MessageId>",
        "",
    );
    check(
        Message::parse(Bytes::from(no_id), SLOPPY_CT, &limits),
        |e| {
            matches!(
                e,
                Error::MissingElement {
                    element: "eb:MessageData/eb:MessageId"
                }
            )
        },
        ErrorCode::ValueNotRecognized,
    );
    let bad_href = sloppy_body().replace("xlink:href=\"cid:", "xlink:href=\"http:");
    check(
        Message::parse(Bytes::from(bad_href), SLOPPY_CT, &limits),
        |e| matches!(e, Error::InvalidHref { .. }),
        ErrorCode::ValueNotRecognized,
    );
    let not_soap = "--B\r\n\r\n<html/>\r\n--B--";
    check(
        Message::parse(
            Bytes::from(not_soap),
            "multipart/related; boundary=B",
            &limits,
        ),
        |e| matches!(e, Error::NotSoapEnvelope { .. }),
        ErrorCode::ValueNotRecognized,
    );
    let broken = sloppy_body().replace("</SOAP:Header>", "");
    check(
        Message::parse(Bytes::from(broken), SLOPPY_CT, &limits),
        |e| matches!(e, Error::MalformedXml { .. }),
        ErrorCode::OtherXml,
    );
    let doctype = sloppy_body().replace(
        "<SOAP:Envelope",
        "<!DOCTYPE x [<!ENTITY a \"b\">]><SOAP:Envelope",
    );
    check(
        Message::parse(Bytes::from(doctype), SLOPPY_CT, &limits),
        |e| matches!(e, Error::DoctypeForbidden),
        ErrorCode::SecurityFailure,
    );
    let bad_cte = sloppy_body().replace(
        "content-transfer-encoding: Base64",
        "Content-Transfer-Encoding: quoted-printable",
    );
    check(
        Message::parse(Bytes::from(bad_cte), SLOPPY_CT, &limits),
        |e| matches!(e, Error::UnsupportedTransferEncoding { index: 2, .. }),
        ErrorCode::MimeProblem,
    );
    let no_ct = "POST / HTTP/1.1\r\nHost: x\r\n\r\nbody";
    check(
        Message::parse_http_request(Bytes::from(no_ct), &limits),
        |e| matches!(e, Error::MissingContentType),
        ErrorCode::MimeProblem,
    );
    let bad_req = "POST\r\n\r\n";
    check(
        Message::parse_http_request(Bytes::from(bad_req), &limits),
        |e| matches!(e, Error::MalformedHttpRequest { .. }),
        ErrorCode::MimeProblem,
    );

    // Base64 is only decoded on request, so a bad attachment is found then.
    let bad64 = sloppy_body().replace("AAEC/w==", "AAEC/w==!!");
    let m = Message::parse(Bytes::from(bad64), SLOPPY_CT, &limits).unwrap();
    let err = m.attachments()[0].decoded().unwrap_err();
    assert!(
        matches!(err, Error::InvalidBase64 { index: 2, .. }),
        "{err}"
    );

    // A manifest that names a part the message lacks.
    let dangling = sloppy_body().replace("Content-Id: <3f35e4da", "Content-Id: <other");
    let m = Message::parse(Bytes::from(dangling), SLOPPY_CT, &limits).unwrap();
    let err = m.check_references().unwrap_err();
    assert!(matches!(err, Error::UnresolvedReference { .. }), "{err}");
    assert_eq!(err.error_code(), ErrorCode::Inconsistent);
}

#[test]
fn acknowledgment_answers_the_received_message() {
    let received = Envelope::parse(
        include_bytes!("../../../../shared/conformance/gp2gp/messages/requestmessage__RCMR_IN010000UK05_ebxml.txt"),
        &Limits::default(),
    )
    .unwrap();
    let ids = ReplyIds {
        message_id: "5075C56F-8E91-4AB7-9C01-6B7D1245553C".into(),
        timestamp: "2024-01-01T00:00:00Z".into(),
    };
    let ack = ebxml::acknowledgment(&received, &ids);
    let xml = ack.to_xml();
    let read = match Reply::parse(xml.as_bytes(), &Limits::default()).unwrap() {
        Reply::Envelope(e) => *e,
        Reply::Fault(f) => panic!("not an envelope: {f:?}"),
    };
    assert_eq!(read, ack);
    let h = &read.message_header;
    assert_eq!(h.from, received.message_header.to);
    assert_eq!(h.to, received.message_header.from);
    assert_eq!(h.cpa_id, received.message_header.cpa_id);
    assert_eq!(h.conversation_id, received.message_header.conversation_id);
    assert_eq!(h.service, ebxml::SERVICE_EBXML);
    assert_eq!(h.action, "Acknowledgment");
    assert_eq!(h.message_data.message_id, ids.message_id);
    assert_eq!(
        h.message_data.ref_to_message_id.as_deref(),
        Some("93499435-ed45-43c1-8987-7790a5aa6d84")
    );
    let a = read.acknowledgment.as_ref().unwrap();
    assert_eq!(a.ref_to_message_id, "93499435-ed45-43c1-8987-7790a5aa6d84");
    assert_eq!(a.actor.as_deref(), Some(ebxml::ACTOR_NEXT_MSH));
    assert_eq!(a.from.as_ref(), Some(&received.message_header.to));
    assert!(read.manifest.is_none() && read.error_list.is_none());
}

#[test]
fn error_list_and_fault_answers() {
    let received = header();
    let ids = ReplyIds {
        message_id: "E1".into(),
        timestamp: "2024-01-01T00:00:00Z".into(),
    };
    let problem = Error::PayloadTooLarge {
        chars: 6_000_000,
        limit: 5_000_000,
    };
    let env = ebxml::message_error(&received, &ids, vec![ErrorDetail::from_error(&problem)]);
    let xml = env.to_xml();
    assert!(xml.contains("eb:highestSeverity=\"Error\""), "{xml}");
    assert!(xml.contains("eb:errorCode=\"MimeProblem\""), "{xml}");
    let read = Envelope::parse(xml.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(read, env);
    assert_eq!(read.message_header.action, "MessageError");
    let list = read.error_list.unwrap();
    assert_eq!(list.highest_severity(), Severity::Error);
    assert_eq!(list.errors[0].code, ErrorCode::MimeProblem);
    assert_eq!(list.errors[0].code_context, ebxml::CODE_CONTEXT_EBXML);
    assert!(
        list.errors[0]
            .description
            .as_deref()
            .unwrap()
            .contains("6000000 characters")
    );

    let fault = SoapFault::from_error(&Error::DoctypeForbidden);
    let read = Reply::parse(fault.to_xml().as_bytes(), &Limits::default()).unwrap();
    assert_eq!(read, Reply::Fault(fault));
}

#[test]
fn spine_style_error_list_and_fault_are_read() {
    let error_list = r#"<SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/" xmlns:eb="http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd"><SOAP:Header><eb:MessageHeader SOAP:mustUnderstand="1" eb:version="2.0"><eb:From><eb:PartyId eb:type="urn:nhs:names:partyType:ocs+serviceInstance">YEA-801248</eb:PartyId></eb:From><eb:To><eb:PartyId eb:type="urn:nhs:names:partyType:ocs+serviceInstance">RHM-810292</eb:PartyId></eb:To><eb:CPAId>S2001919A2011852</eb:CPAId><eb:ConversationId>C1</eb:ConversationId><eb:Service>urn:oasis:names:tc:ebxml-msg:service</eb:Service><eb:Action>MessageError</eb:Action><eb:MessageData><eb:MessageId>M2</eb:MessageId><eb:Timestamp>2013-10-24T15:08:07</eb:Timestamp><eb:RefToMessageId>M1</eb:RefToMessageId></eb:MessageData></eb:MessageHeader><eb:ErrorList SOAP:mustUnderstand="1" eb:highestSeverity="Warning" eb:version="2.0"><eb:Error eb:codeContext="urn:oasis:names:tc:ebxml-msg:service:errors" eb:errorCode="ValueNotRecognized" eb:severity="Warning"><eb:Description xml:lang="en-GB">501319:Unknown eb:CPAId</eb:Description></eb:Error></eb:ErrorList></SOAP:Header><SOAP:Body/></SOAP:Envelope>"#;
    let Reply::Envelope(env) = Reply::parse(error_list.as_bytes(), &Limits::default()).unwrap()
    else {
        panic!("expected an envelope");
    };
    let list = env.error_list.as_ref().unwrap();
    assert_eq!(list.highest_severity(), Severity::Warning);
    assert_eq!(list.errors[0].code, ErrorCode::ValueNotRecognized);
    assert_eq!(
        list.errors[0].description.as_deref(),
        Some("501319:Unknown eb:CPAId")
    );

    let fault = r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>System failure to process message</faultstring><detail><nasp:errorList xmlns:nasp="http://national.carerecords.nhs.uk/schema/"><nasp:error><nasp:codeContext>urn:nhs:names:errors:tms</nasp:codeContext><nasp:errorCode>200</nasp:errorCode><nasp:severity>Error</nasp:severity><nasp:location/><nasp:description>Bad</nasp:description></nasp:error></nasp:errorList></detail></soap:Fault></soap:Body></soap:Envelope>"#;
    let Reply::Fault(f) = Reply::parse(fault.as_bytes(), &Limits::default()).unwrap() else {
        panic!("expected a fault");
    };
    assert_eq!(f.fault_code, "soap:Server");
    assert_eq!(f.errors.len(), 1);
    assert_eq!(f.errors[0].error_code, "200");
    assert_eq!(
        f.errors[0].code_context.as_deref(),
        Some("urn:nhs:names:errors:tms")
    );
    assert_eq!(f.errors[0].location, None);
    assert_eq!(f.errors[0].description.as_deref(), Some("Bad"));
}

#[test]
fn outbound_message_writes_strictly_and_reads_back() {
    let info = AttachmentInfo {
        filename: Some("doc.pdf".into()),
        content_type: Some("application/pdf".into()),
        compressed: Some(false),
        large_attachment: Some(false),
        original_base64: Some(false),
        length: Some(4),
        domain_data: None,
    };
    let external = AttachmentInfo {
        large_attachment: Some(true),
        ..info.clone()
    };
    let msg = OutboundMessage::builder(header())
        .reliable()
        .payload(
            "payload@lloyd",
            "<COPC_IN000001UK01 xmlns=\"urn:hl7-org:v3\"/>",
        )
        .attachment(
            OutboundPart::base64("att@lloyd", "application/pdf", vec![0u8, 1, 2, 255]),
            Some("DOC-1".into()),
            info.clone(),
        )
        .external_attachment("MID-2", None, external.clone())
        .build(&Limits::default())
        .unwrap();
    let body = msg.into_body(Boundary::new("B-1").unwrap()).unwrap();
    let ct = body.content_type();
    assert_eq!(
        ct,
        "multipart/related; boundary=\"B-1\"; type=\"text/xml\"; start=\"<ebXMLHeader@spine.nhs.uk>\""
    );
    let mut wire = Vec::new();
    body.write_to(&mut wire).unwrap();
    // Strict: every line break is CRLF.
    assert!(!wire.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
    assert!(wire.ends_with(b"--B-1--\r\n"));

    let m = Message::parse(Bytes::from(wire), &ct, &Limits::default()).unwrap();
    m.check_references().unwrap();
    let e = m.envelope();
    assert!(e.message_header.duplicate_elimination);
    let refs = &e.manifest.as_ref().unwrap().references;
    assert_eq!(refs.len(), 3);
    assert!(refs[0].hl7_payload);
    assert_eq!(refs[1].href, Href::Cid("att@lloyd".into()));
    assert_eq!(refs[1].id.as_deref(), Some("DOC-1"));
    assert_eq!(refs[1].attachment(), Some(&info));
    assert_eq!(refs[2].href, Href::Mid("MID-2".into()));
    assert_eq!(refs[2].attachment(), Some(&external));
    assert_eq!(
        &m.attachments()[0].decoded().unwrap()[..],
        &[0u8, 1, 2, 255]
    );
    assert_eq!(
        m.part_by_content_id("<ATT@lloyd>").map(|p| p.index()),
        Some(2)
    );
}

#[test]
fn header_values_that_would_break_mime_are_refused() {
    let b = OutboundMessage::builder(header())
        .payload("p", "<x/>")
        .attachment(
            OutboundPart::text("evil\r\nX-Injected: 1", "text/plain", "x".to_string()),
            None,
            AttachmentInfo::default(),
        )
        .build(&Limits::default())
        .unwrap();
    let err = b.into_body(Boundary::random()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidHeaderValue {
                what: "Content-Id",
                ..
            }
        ),
        "{err}"
    );
}
