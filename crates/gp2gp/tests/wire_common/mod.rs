//! What the wire and large-message tests share: the corpus, the schemas, and real ebXML
//! bytes in both directions (an `mhs::Outbound` written the way the MHS writes it, and the
//! MHS adaptor's inbound JSON shape turned back into the MIME message it came from).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ebxml::{
    AttachmentInfo, Boundary, Href, Limits, MessageData, MessageHeader, MultipartBody,
    OutboundMessage, OutboundPart, Party,
};
use hl7v3::validate::{Options, Report, Schemas, validate};

pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
}

pub fn schemas() -> &'static Schemas {
    static S: OnceLock<Schemas> = OnceLock::new();
    S.get_or_init(|| Schemas::new(corpus().join("schemas")).unwrap())
}

/// Validates an HL7 document against its schema (and the rules); panics with the findings.
pub fn assert_valid(name: &str, xml: &[u8]) -> Report {
    let report = validate(xml, Some(schemas()), &Options::default());
    let errors: Vec<String> = report.errors().map(|f| f.to_string()).collect();
    assert!(report.valid, "{name} is not valid: {errors:#?}");
    report
}

/// The bytes an MHS sends for `o` (the same construction as `mhs`'s sender: reliable,
/// the payload then the inline attachments, then the `mid:` references), read back as a
/// received message with Spine's limits. Also returns the size on the wire.
pub fn through_the_wire(o: &mhs::Outbound) -> (ebxml::Message, usize) {
    let header = MessageHeader {
        from: Party::spine("B86041-822103"),
        to: Party::spine("A91565-9198975"),
        cpa_id: "S918999404052".into(),
        conversation_id: o.conversation_id.clone(),
        service: o.service.clone(),
        action: o.interaction_id.clone(),
        message_data: MessageData {
            message_id: o
                .message_id
                .clone()
                .expect("planned messages carry their id"),
            timestamp: "2024-05-01T10:00:00Z".into(),
            ref_to_message_id: o.ref_to_message_id.clone(),
            time_to_live: None,
        },
        duplicate_elimination: true,
    };
    let limits = Limits::default();
    let mut builder = OutboundMessage::builder(header)
        .reliable()
        .payload("payload@lloyd.test", o.payload.clone());
    for (i, a) in o.attachments.iter().enumerate() {
        let cid = a
            .content_id
            .clone()
            .unwrap_or_else(|| format!("part{i}@lloyd.test"));
        let part = if a.is_base64 {
            OutboundPart::pre_encoded_base64(cid, a.content_type.clone(), a.payload.clone())
        } else {
            OutboundPart::text(cid, a.content_type.clone(), a.payload.clone())
        };
        let info = AttachmentInfo::parse(&a.description).unwrap_or_default();
        builder = builder.attachment(part, a.document_id.clone(), info);
    }
    for x in &o.external_attachments {
        let info = AttachmentInfo::parse(&x.description).unwrap_or_default();
        builder = builder.external_attachment(x.message_id.clone(), x.document_id.clone(), info);
    }
    let body = builder
        .build(&limits)
        .unwrap()
        .into_body(Boundary::random())
        .unwrap();
    let content_type = body.content_type();
    let mut wire = Vec::new();
    body.write_to(&mut wire).unwrap();
    let size = wire.len();
    let message = ebxml::Message::parse(wire, &content_type, &limits).unwrap_or_else(|e| {
        panic!(
            "{} of {size} bytes does not read back: {e}",
            o.interaction_id
        )
    });
    (message, size)
}

/// The MIME message the MHS adaptor's inbound JSON (`{ebXML, payload, attachments}`) was
/// made from: the envelope as given, the payload, and the attachments as parts. The JSON
/// loses Content-Ids; they are given back from the manifest's `cid:` references, in order.
pub fn from_adaptor_json(json: &serde_json::Value) -> ebxml::Message {
    let ebxml_text = json["ebXML"].as_str().unwrap().to_string();
    let payload = json["payload"].as_str().unwrap_or_default().to_string();
    let limits = Limits::default();
    let envelope = ebxml::Envelope::parse(ebxml_text.as_bytes(), &limits).unwrap();
    let mut cids: Vec<String> = envelope
        .manifest
        .iter()
        .flat_map(|m| m.references.iter())
        .filter_map(|r| match &r.href {
            Href::Cid(c) => Some(c.clone()),
            Href::Mid(_) => None,
        })
        .collect();
    let payload_cid = if cids.is_empty() {
        "payload@lloyd.test".to_string()
    } else {
        cids.remove(0)
    };
    let mut parts = vec![
        OutboundPart::text("envelope@lloyd.test", "text/xml; charset=UTF-8", ebxml_text),
        OutboundPart::text(payload_cid, "application/xml; charset=UTF-8", payload),
    ];
    let attachments = json["attachments"].as_array().cloned().unwrap_or_default();
    for (i, a) in attachments.iter().enumerate() {
        let cid = a["content_id"]
            .as_str()
            .map(str::to_string)
            .or_else(|| cids.get(i).cloned())
            .unwrap_or_else(|| format!("unnamed{i}@lloyd.test"));
        let content_type = a["content_type"]
            .as_str()
            .unwrap_or("text/plain")
            .to_string();
        let is_base64 = match &a["is_base64"] {
            serde_json::Value::Bool(b) => *b,
            serde_json::Value::String(s) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        let payload = a["payload"].as_str().unwrap_or_default().to_string();
        parts.push(if is_base64 {
            OutboundPart::pre_encoded_base64(cid, content_type, payload)
        } else {
            OutboundPart::text(cid, content_type, payload)
        });
    }
    let body = MultipartBody::new(Boundary::random(), parts).unwrap();
    let content_type = body.content_type();
    let mut wire = Vec::new();
    body.write_to(&mut wire).unwrap();
    ebxml::Message::parse(wire, &content_type, &limits).unwrap()
}

/// A corpus JSON file of the MHS adaptor's inbound shape, as a received message.
pub fn corpus_json(path: &str) -> ebxml::Message {
    let text = std::fs::read_to_string(corpus().join(path)).unwrap();
    from_adaptor_json(&serde_json::from_str(&text).unwrap())
}

/// A corpus message kept as an ebXML header file beside its HL7 payload file.
pub fn corpus_pair(ebxml_file: &str, payload_file: &str) -> ebxml::Message {
    let dir = corpus().join("gp2gp/messages");
    let json = serde_json::json!({
        "ebXML": std::fs::read_to_string(dir.join(ebxml_file)).unwrap(),
        "payload": std::fs::read_to_string(dir.join(payload_file)).unwrap(),
        "attachments": [],
    });
    from_adaptor_json(&json)
}

/// Deterministic ids for plans: `ID-0001`… as UUID-shaped upper-case text.
pub fn counter_ids() -> impl FnMut() -> String {
    let mut n = 0u64;
    move || {
        n += 1;
        format!("00000000-0000-4000-8000-{n:012X}")
    }
}

pub fn parties() -> gp2gp::wire::Parties {
    gp2gp::wire::Parties {
        requester_ods: "A82038".into(),
        requester_asid: "200000000205".into(),
        sender_ods: "B83002".into(),
        sender_asid: "200000000359".into(),
    }
}

pub fn route() -> mhs::Route {
    mhs::Route::Sds {
        ods_code: "A82038".into(),
    }
}
