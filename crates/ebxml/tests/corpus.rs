//! Every ebXML header in the conformance corpus parses, and reads back identically once
//! written.
//!
//! The corpus is read in place (`../shared/conformance` beside the repository); it is never
//! copied into the project. Some files are templates with `{{placeholders}}` (or
//! `%%placeholders%%`) where ids go: this crate reads them structurally and keeps the
//! placeholder text as the value, since deciding that an id is not a real id is the
//! business of whoever fills the template in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use ebxml::{Description, Envelope, Href, Limits};

fn corpus(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance")
        .join(sub)
}

fn files(sub: &str, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(corpus(sub))
        .unwrap_or_else(|e| {
            panic!(
                "the conformance corpus should be at {}: {e}",
                corpus(sub).display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| pred(p.file_name().unwrap().to_str().unwrap()))
        .collect();
    out.sort();
    out
}

/// Every ebXML envelope in the corpus, with where it came from.
fn envelopes() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in files("gp2gp/messages", |n| {
        n.ends_with("_ebxml.txt") || n.ends_with("ebXML.xml")
    }) {
        out.push((
            p.display().to_string(),
            std::fs::read_to_string(&p).unwrap(),
        ));
    }
    for sub in ["gp2gp/messages", "gp2gp/large-message"] {
        for p in files(sub, |n| n.ends_with(".json")) {
            let json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            if let Some(xml) = json.get("ebXML").and_then(|v| v.as_str()) {
                out.push((p.display().to_string(), xml.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_corpus_envelope_parses_and_round_trips() {
    let all = envelopes();
    // 8 header files, 1 EHR-request ebXML, and the ebXML fields of 2 + 39 JSON files.
    assert!(
        all.len() >= 45,
        "found only {} envelopes; is the corpus complete?",
        all.len()
    );
    let limits = Limits::default();
    for (name, xml) in &all {
        let env =
            Envelope::parse(xml.as_bytes(), &limits).unwrap_or_else(|e| panic!("{name}: {e}"));
        let h = &env.message_header;
        assert!(!h.from.id.is_empty() && !h.to.id.is_empty(), "{name}");
        assert_eq!(h.service, "urn:nhs:names:services:gp2gp", "{name}");
        assert!(h.action.contains("_IN"), "{name}: action {}", h.action);
        assert!(
            h.duplicate_elimination,
            "{name}: every GP2GP message asks for duplicate elimination"
        );
        let manifest = env
            .manifest
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no manifest"));
        assert!(!manifest.references.is_empty(), "{name}");
        assert!(
            matches!(manifest.references[0].href, Href::Cid(_)),
            "{name}"
        );

        let written = env.to_xml();
        let again = Envelope::parse(written.as_bytes(), &limits)
            .unwrap_or_else(|e| panic!("{name} rewritten: {e}"));
        assert_eq!(
            env, again,
            "{name}: written and read again, the model changed"
        );
    }
}

#[test]
fn a_header_file_gives_its_values() {
    let xml = std::fs::read(corpus(
        "gp2gp/messages/illogicalmessage__MCCI_IN010000UK13_ebxml.txt",
    ))
    .unwrap();
    let env = Envelope::parse(&xml, &Limits::default()).unwrap();
    let h = &env.message_header;
    assert_eq!(h.from.id, "X26-9199246");
    assert_eq!(h.from.party_type.as_deref(), Some(ebxml::PARTY_TYPE_SPINE));
    assert_eq!(h.to.id, "A91576-9198964");
    assert_eq!(h.cpa_id, "S918999399410");
    assert_eq!(h.conversation_id, "CB3C8F33-81F9-4481-8952-246182E7483D");
    assert_eq!(h.action, "MCCI_IN010000UK13");
    assert_eq!(
        h.message_data.message_id,
        "08C23050-03C9-FBD4-C949-1900BDE2ED1A"
    );
    assert_eq!(h.message_data.timestamp, "2021-02-03T12:59:28");
    assert_eq!(
        h.message_data.ref_to_message_id.as_deref(),
        Some("332CCAAA-608F-4727-93E3-06C074CF8188")
    );
    let ack = env.ack_requested.as_ref().unwrap();
    assert_eq!(ack.actor.as_deref(), Some(ebxml::ACTOR_NEXT_MSH));
    assert!(!ack.signed);
    let r = &env.manifest.as_ref().unwrap().references[0];
    assert_eq!(
        r.href,
        Href::Cid("08C23050-03C9-FBD4-C949-1900BDE2ED1A@spine.nhs.uk".into())
    );
    assert!(r.hl7_payload);
    assert_eq!(r.description, Some(Description::Text("HL7 payload".into())));
}

#[test]
fn templates_parse_structurally_and_keep_their_placeholders() {
    let xml = std::fs::read(corpus(
        "gp2gp/messages/inbound__acknowledgement__templates__MCCI_IN010000UK13_ebxml.txt",
    ))
    .unwrap();
    let env = Envelope::parse(&xml, &Limits::default()).unwrap();
    assert_eq!(env.message_header.conversation_id, "{{conversationId}}");
    assert_eq!(env.message_header.message_data.message_id, "{{messageId}}");
    // `<eb:DuplicateElimination>always</eb:DuplicateElimination>` counts as present.
    assert!(env.message_header.duplicate_elimination);
    assert_eq!(
        env.message_header.message_data.time_to_live.as_deref(),
        Some("2023-11-28T09:55:38Z")
    );
}

#[test]
fn undeclared_prefixes_and_soap_env_spelling_are_read() {
    // Scenario 10 uses `eb:`, `xlink:` and `hl7ebXML:` without declaring them, and
    // `SOAP-ENV` / `soap-env` for SOAP.
    let text =
        std::fs::read_to_string(corpus("gp2gp/large-message/Scenario_10__uk06.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let env = Envelope::parse(
        json["ebXML"].as_str().unwrap().as_bytes(),
        &Limits::default(),
    )
    .unwrap();
    let refs = &env.manifest.as_ref().unwrap().references;
    assert_eq!(refs.len(), 2);
    assert!(refs[0].hl7_payload);
    assert_eq!(
        refs[1].href,
        Href::Mid("477B7133-6CED-4040-8D6F-3872A3CE2192".into())
    );
    assert_eq!(
        refs[1].id.as_deref(),
        Some("_477B7133-6CED-4040-8D6F-3872A3CE2192")
    );
    let info = refs[1].attachment().unwrap();
    assert_eq!(
        info.filename.as_deref(),
        Some("588210BB-401D-41F9-84D2-978697CEEFE5_00011000.tif")
    );
    assert_eq!(info.content_type.as_deref(), Some("image/tiff"));
    assert_eq!(info.large_attachment, Some(true));
    assert_eq!(info.length, Some(4_718_592));
}

#[test]
fn attachment_descriptions_in_the_mhs_json_parse() {
    // The MHS adaptor's JSON repeats the manifest description in each attachment's
    // `description`; the same reader handles both.
    let mut seen = 0;
    for p in files("gp2gp/large-message", |n| n.ends_with(".json")) {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        for key in ["attachments", "external_attachments"] {
            for a in json
                .get(key)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                let d = a["description"].as_str().unwrap_or("");
                if d.contains("ContentType=") {
                    let info = ebxml::AttachmentInfo::parse(d)
                        .unwrap_or_else(|| panic!("{}: {d}", p.display()));
                    assert!(info.content_type.is_some(), "{}: {d}", p.display());
                    // Canonical text reads back to the same fields.
                    assert_eq!(ebxml::AttachmentInfo::parse(&info.to_string()), Some(info));
                    seen += 1;
                }
            }
        }
    }
    assert!(seen >= 20, "only {seen} descriptions found");
}
