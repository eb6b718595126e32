//! The streaming translations write exactly what the whole-record translations give
//! (serialised the way `lloyd translate` always has), with the same report, on every
//! corpus record, on synthetic records of several sizes, and on documents shaped in the
//! less usual ways the standard allows; and they fail the way the whole-record path does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod to_fhir_support;

use std::io::Write;

use to_fhir_support::corpus;
use translate::TranslateError;
use translate::synthetic::synthetic_extract_xml;
use translate::to_fhir::{
    ToFhirOptions, WHOLE_BELOW, extract_to_bundle, extract_to_writer, extract_to_writer_streaming,
};
use translate::to_hl7::{ToHl7Options, bundle_to_extract, bundle_to_writer};

/// A translation's bytes and report, or why there are none.
type Outcome = Result<(Vec<u8>, translate::Report), TranslateError>;

/// HL7 → FHIR both ways: the whole-record path (parse, translate, `fhir::to_vec`) and the
/// streaming one (streaming whatever the size: `extract_to_writer` takes small records
/// whole).
fn both_to_fhir(xml: &[u8], options: &ToFhirOptions) -> (Outcome, Outcome) {
    let whole = match hl7v3::Message::parse(xml) {
        Ok(msg) => extract_to_bundle(&msg, options)
            .map(|(bundle, report)| (fhir::to_vec(&bundle).unwrap(), report)),
        Err(e) => Err(TranslateError::Read(e.to_string())),
    };
    let mut out = Vec::new();
    let streamed = extract_to_writer_streaming(xml, &mut out, options).map(|report| (out, report));
    (whole, streamed)
}

fn assert_same_to_fhir(name: &str, xml: &[u8], options: &ToFhirOptions) -> usize {
    let (whole, streamed) = both_to_fhir(xml, options);
    let (whole, streamed) = (whole.unwrap(), streamed.unwrap());
    assert_same_bytes(name, &whole.0, &streamed.0);
    assert_eq!(whole.1, streamed.1, "{name}: the reports differ");
    if xml.len() < WHOLE_BELOW {
        // What `lloyd translate` calls, which takes this record whole.
        let mut out = Vec::new();
        let report = extract_to_writer(xml, &mut out, options).unwrap();
        assert_same_bytes(name, &whole.0, &out);
        assert_eq!(whole.1, report, "{name}: the reports differ");
    }
    whole.0.len()
}

/// Fails showing where two outputs part.
fn assert_same_bytes(name: &str, whole: &[u8], streamed: &[u8]) {
    if whole == streamed {
        return;
    }
    let at = whole
        .iter()
        .zip(streamed)
        .position(|(a, b)| a != b)
        .unwrap_or(whole.len().min(streamed.len()));
    let from = at.saturating_sub(200);
    panic!(
        "{name}: the streamed output differs from byte {at} (lengths {} and {}):\n whole: {}\nstream: {}",
        whole.len(),
        streamed.len(),
        String::from_utf8_lossy(&whole[from..(at + 200).min(whole.len())]),
        String::from_utf8_lossy(&streamed[from..(at + 200).min(streamed.len())]),
    );
}

#[test]
fn every_corpus_extract_streams_to_the_same_bundle() {
    let files = corpus("translation/ehr-extract", "xml");
    assert_eq!(files.len(), 13);
    for (name, xml) in &files {
        let n = assert_same_to_fhir(name, xml, &ToFhirOptions::default());
        assert!(n > 1000, "{name}");
        // With the options that change ids and identifiers too.
        let options = ToFhirOptions {
            patient_id: Some("patient-1".into()),
            bundle_id: Some("bundle-1".into()),
            identifier_system: Some("https://PSSAdaptor/B86041".into()),
            ..ToFhirOptions::default()
        };
        assert_same_to_fhir(name, xml, &options);
    }
}

#[test]
fn synthetic_records_of_several_sizes_stream_to_the_same_bundle() {
    for (size, seed) in [(20_000, 1), (300_000, 2), (3_000_000, 3), (12_000_000, 4)] {
        let xml = synthetic_extract_xml(size, seed);
        let n = assert_same_to_fhir(
            &format!("synthetic {size}"),
            xml.as_bytes(),
            &ToFhirOptions::default(),
        );
        assert!(n > size / 2, "synthetic {size}: {n} bytes of JSON");
    }
}

/// A corpus record rewritten: each change is allowed by XML and by the way the model reads
/// HL7, and must make no difference to either path.
#[test]
fn unusual_but_valid_documents_stream_to_the_same_bundle() {
    let (name, xml) = corpus("translation/ehr-extract", "xml").swap_remove(0);
    let text = String::from_utf8(xml).unwrap();
    let variants: Vec<(&str, String)> = vec![
        // A byte-order mark: offsets move by three bytes.
        ("bom", format!("\u{feff}{text}")),
        // Comments and processing instructions between compositions.
        (
            "comments",
            text.replace(
                "<component typeCode=\"COMP\">\n",
                "<!-- a note -->\n<component typeCode=\"COMP\"><?pi x?>\n",
            ),
        ),
        // Everything in the hl7: prefix.
        ("prefixed", prefix_hl7(&text)),
    ];
    for (what, doc) in variants {
        assert_same_to_fhir(
            &format!("{name} ({what})"),
            doc.as_bytes(),
            &ToFhirOptions::default(),
        );
    }
}

/// Puts every element in the `hl7:` prefix, bound to the HL7 namespace.
fn prefix_hl7(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 5 / 4);
    let mut rest = text;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(name) = after.strip_prefix('/') {
            out.push_str("</hl7:");
            rest = name;
        } else if after.starts_with('?') || after.starts_with('!') {
            out.push('<');
            rest = after;
        } else {
            out.push_str("<hl7:");
            rest = after;
        }
    }
    out.push_str(rest);
    out.replacen(
        " xmlns=\"urn:hl7-org:v3\"",
        " xmlns:hl7=\"urn:hl7-org:v3\"",
        1,
    )
}

#[test]
fn documents_that_are_no_extract_fail_as_the_whole_record_path_does() {
    let (_, xml) = corpus("translation/ehr-extract", "xml").swap_remove(0);
    let text = String::from_utf8(xml).unwrap();
    // A request where the record should be.
    let request = std::fs::read(
        to_fhir_support::conformance()
            .join("gp2gp/messages/requestmessage__RCMR_IN010000UK05_payload.txt"),
    )
    .unwrap();
    let no_folder = {
        let start = text.find("<ehrFolder").unwrap();
        let end = text.rfind("</ehrFolder>").unwrap() + "</ehrFolder>".len();
        format!("{}{}", &text[..start], &text[end..])
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("request", request),
        ("no folder", no_folder.into_bytes()),
        (
            "no NHS number",
            text.replacen(
                "root=\"2.16.840.1.113883.2.1.4.1\" extension=\"",
                "root=\"2.16.840.1.113883.2.1.4.1\" x=\"",
                1,
            )
            .into_bytes(),
        ),
    ];
    for (what, doc) in cases {
        let (whole, streamed) = both_to_fhir(&doc, &ToFhirOptions::default());
        let whole = whole.expect_err(what);
        let streamed = streamed.expect_err(what);
        assert_eq!(whole, streamed, "{what}");
    }
    // Not XML: both refuse it; the streaming path says it could not read it.
    let truncated = &text.as_bytes()[..text.len() / 2];
    let (whole, streamed) = both_to_fhir(truncated, &ToFhirOptions::default());
    assert!(whole.is_err());
    assert!(matches!(streamed, Err(TranslateError::Read(m)) if m.contains("EhrExtract")));
}

/// A writer that takes `room` bytes and then fails, as a full disk does.
struct Full {
    room: usize,
}

impl Write for Full {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::Error::other("no space left on device"));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_writer_is_an_error_that_says_so() {
    let xml = synthetic_extract_xml(2_000_000, 5);
    let err = extract_to_writer(
        xml.as_bytes(),
        Full { room: 100_000 },
        &ToFhirOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, TranslateError::Write(m) if m.contains("no space left")),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// FHIR → HL7

fn hl7_options() -> ToHl7Options {
    ToHl7Options {
        creation_time: Some("20240131093000".into()),
        ..ToHl7Options::default()
    }
}

/// FHIR → HL7 both ways: the whole-Bundle path (parse, translate, compact XML) and the
/// streaming one.
fn both_to_hl7(json: &[u8], options: &ToHl7Options) -> (Outcome, Outcome) {
    let whole = match fhir::from_slice::<fhir::Bundle>(json) {
        Ok(bundle) => bundle_to_extract(&bundle, options)
            .map(|(msg, report)| (msg.to_xml(hl7v3::xml::Layout::Compact).into_bytes(), report)),
        Err(e) => Err(TranslateError::Read(e.to_string())),
    };
    let mut out = Vec::new();
    let streamed = bundle_to_writer(json, &mut out, options).map(|report| (out, report));
    (whole, streamed)
}

fn assert_same_to_hl7(name: &str, json: &[u8], options: &ToHl7Options) -> usize {
    let (whole, streamed) = both_to_hl7(json, options);
    let (whole, streamed) = (whole.unwrap(), streamed.unwrap());
    assert_same_bytes(name, &whole.0, &streamed.0);
    assert_eq!(whole.1, streamed.1, "{name}: the reports differ");
    whole.0.len()
}

#[test]
fn every_corpus_bundle_streams_to_the_same_extract() {
    let files = corpus("translation/gpconnect", "json");
    assert_eq!(files.len(), 13);
    for (name, json) in &files {
        let n = assert_same_to_hl7(name, json, &hl7_options());
        assert!(n > 1000, "{name}");
        let options = ToHl7Options {
            from_ods: Some("B82617".into()),
            to_ods: Some("B86041".into()),
            from_asid: Some("200000000359".into()),
            to_asid: Some("200000000360".into()),
            message_id: Some("6E242658-1F84-4C21-8C8C-D4C1E1E0D8B1".into()),
            request_id: Some("041CA2AE-3EC6-4AC9-942F-0F6621CC0BFC".into()),
            creation_time: Some("20200101010101".into()),
        };
        assert_same_to_hl7(name, json, &options);
    }
}

#[test]
fn synthetic_bundles_of_several_sizes_stream_to_the_same_extract() {
    for (size, seed) in [(20_000, 1), (300_000, 2), (3_000_000, 3), (12_000_000, 4)] {
        let bundle = translate::synthetic::synthetic_bundle(size, seed).unwrap();
        let json = fhir::to_vec(&bundle).unwrap();
        let n = assert_same_to_hl7(&format!("synthetic {size}"), &json, &hl7_options());
        assert!(n > size / 2, "synthetic {size}: {n} bytes of XML");
    }
}

/// Bundles shaped in ways JSON and FHIR allow: `resourceType` not first, references by
/// `fullUrl`, an entry without a resource, a member the model does not know, a Condition
/// linking to statements written after it and to one never written.
#[test]
fn unusual_but_valid_bundles_stream_to_the_same_extract() {
    let (name, json) = corpus("translation/gpconnect", "json").swap_remove(0);
    let mut value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    // Every resource with its members in reverse order (resourceType last).
    let mut reordered = value.clone();
    for e in reordered["entry"].as_array_mut().unwrap() {
        let r = e["resource"].as_object().unwrap();
        let reversed: serde_json::Map<String, serde_json::Value> = r
            .iter()
            .rev()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        e["resource"] = serde_json::Value::Object(reversed);
    }
    // Entries with fullUrls, references by them, an empty entry, an unknown member.
    // The Patient (which every clinical item names) is given a fullUrl and named by it.
    let entries = value["entry"].as_array_mut().unwrap();
    let patient = entries
        .iter()
        .position(|e| e["resource"]["resourceType"] == "Patient")
        .unwrap();
    let first_id = entries[patient]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_type = "Patient";
    entries[patient]["fullUrl"] = format!("urn:uuid:{first_id}").into();
    entries.push(serde_json::json!({"search": {"mode": "include"}}));
    entries.push(serde_json::json!({"resource": null, "fullUrl": "urn:uuid:none"}));
    // A type the model does not know, labelled confidential: it has no place in the
    // extract, and does not make the message UK07.
    entries.push(
        serde_json::json!({"resource": {"resourceType": "Goal", "id": "g",
        "meta": {"security": [{"code": "NOPAT"}]}, "status": 5}}),
    );
    value["signature"] = serde_json::json!({"type": []});
    let mut text = serde_json::to_string(&value).unwrap();
    text = text.replace(
        &format!("\"reference\":\"{first_type}/{first_id}\""),
        &format!("\"reference\":\"urn:uuid:{first_id}\""),
    );
    // A Condition that links to a statement written later, to one never written (two
    // test groups each a member of the other: both are carried by a group, so neither is
    // sent on its own) and to a resource the Bundle lacks.
    let bundle: fhir::Bundle = fhir::from_str(&text).unwrap();
    let observations: Vec<String> = bundle
        .resources_of::<fhir::Observation>()
        .filter_map(|o| o.id.clone())
        .collect();
    let condition = serde_json::json!({"resource": {
        "resourceType": "Condition", "id": "early-problem",
        "extension": [
            {"url": fhir::systems::extension::RELATED_CLINICAL_CONTENT,
             "valueReference": {"reference": format!("Observation/{}", observations.last().unwrap())}},
            {"url": fhir::systems::extension::RELATED_CLINICAL_CONTENT,
             "valueReference": {"reference": "Observation/group-a"}},
            {"url": fhir::systems::extension::RELATED_CLINICAL_CONTENT,
             "valueReference": {"reference": "Observation/not-in-the-bundle"}}
        ],
        "clinicalStatus": "active",
        "code": {"text": "A problem"},
        "subject": {"reference": format!("Patient/{}", bundle.patient().unwrap().id.as_deref().unwrap())}
    }});
    let mut with_condition: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entries = with_condition["entry"].as_array_mut().unwrap();
    entries.insert(2, condition);
    for (me, other) in [("group-a", "group-b"), ("group-b", "group-a")] {
        entries.push(serde_json::json!({"resource": {
            "resourceType": "Observation", "id": me, "status": "final",
            "code": {"text": "A group"},
            "related": [{"type": "has-member", "target": {"reference": format!("Observation/{other}")}}]
        }}));
    }
    let variants = [
        ("resourceType last", serde_json::to_vec(&reordered).unwrap()),
        ("fullUrls", text.clone().into_bytes()),
        (
            "early condition",
            serde_json::to_vec(&with_condition).unwrap(),
        ),
        (
            "pretty-printed",
            serde_json::to_vec_pretty(&with_condition).unwrap(),
        ),
        // Keys written with escapes (the quick split leaves such a Bundle to the whole path).
        (
            "escaped keys",
            text.replacen("\"fullUrl\"", "\"full\\u0055rl\"", 1)
                .replacen("\"resourceType\"", "\"resource\\u0054ype\"", 2)
                .into_bytes(),
        ),
    ];
    for (what, doc) in variants {
        assert_same_to_hl7(&format!("{name} ({what})"), &doc, &hl7_options());
    }
    // The link to the group never sent was dropped, and said so.
    let mut out = Vec::new();
    let report = bundle_to_writer(
        &serde_json::to_vec(&with_condition).unwrap(),
        &mut out,
        &hl7_options(),
    )
    .unwrap();
    assert!(
        report
            .unmapped
            .iter()
            .any(|u| u.kind == "Condition link" && u.reason.contains("not in the extract")),
        "{:#?}",
        report.unmapped
    );
}

#[test]
fn bundles_that_cannot_be_read_or_sent_fail_as_the_whole_bundle_path_does() {
    let (_, json) = corpus("translation/gpconnect", "json").swap_remove(0);
    let text = String::from_utf8(json).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a number for a string",
            br#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"p","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":9465698490}]}}]}"#.to_vec(),
        ),
        ("no patient", br#"{"resourceType":"Bundle","type":"collection"}"#.to_vec()),
        ("not a bundle", br#"{"resourceType":"Patient","id":"p"}"#.to_vec()),
        ("truncated", text.as_bytes()[..text.len() / 2].to_vec()),
        ("a member twice", text.replacen("\"type\":", "\"type\":\"collection\",\"type\":", 1).into_bytes()),
        ("no NHS number", text.replace("https://fhir.nhs.uk/Id/nhs-number", "https://example.org/id").into_bytes()),
        (
            "a bad escape in a resource",
            insert_entry(&text, r#"{"resource":{"resourceType":"Binary","id":"b\q"}}"#),
        ),
        (
            "a comma too many",
            insert_entry(&text, r#"{"resource":{"resourceType":"Binary","id":"b",}}"#),
        ),
        (
            "a bad member of a resource nothing asks for",
            insert_entry(
                &text,
                r#"{"resource":{"resourceType":"Binary","id":"b","contentType":5}}"#,
            ),
        ),
    ];
    for (what, doc) in cases {
        let (whole, streamed) = both_to_hl7(&doc, &hl7_options());
        let whole = whole.expect_err(what);
        let streamed = streamed.expect_err(what);
        assert_eq!(whole, streamed, "{what}");
    }
}

/// The Bundle's JSON with `entry` put first among its entries.
fn insert_entry(bundle: &str, entry: &str) -> Vec<u8> {
    let at = bundle.find("\"entry\"").unwrap();
    let open = at + bundle[at..].find('[').unwrap() + 1;
    format!("{}{entry},{}", &bundle[..open], &bundle[open..]).into_bytes()
}

#[test]
fn a_failing_writer_is_an_error_that_says_so_for_hl7_too() {
    let bundle = translate::synthetic::synthetic_bundle(2_000_000, 5).unwrap();
    let json = fhir::to_vec(&bundle).unwrap();
    let err = bundle_to_writer(&json, Full { room: 100_000 }, &hl7_options()).unwrap_err();
    assert!(
        matches!(&err, TranslateError::Write(m) if m.contains("no space left")),
        "{err}"
    );
}
