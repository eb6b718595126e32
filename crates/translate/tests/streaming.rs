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
use translate::to_fhir::{ToFhirOptions, extract_to_bundle, extract_to_writer};

/// A translation's bytes and report, or why there are none.
type Outcome = Result<(Vec<u8>, translate::Report), TranslateError>;

/// HL7 → FHIR both ways: the whole-record path (parse, translate, `fhir::to_vec`) and the
/// streaming one.
fn both_to_fhir(xml: &[u8], options: &ToFhirOptions) -> (Outcome, Outcome) {
    let whole = match hl7v3::Message::parse(xml) {
        Ok(msg) => extract_to_bundle(&msg, options)
            .map(|(bundle, report)| (fhir::to_vec(&bundle).unwrap(), report)),
        Err(e) => Err(TranslateError::Read(e.to_string())),
    };
    let mut out = Vec::new();
    let streamed = extract_to_writer(xml, &mut out, options).map(|report| (out, report));
    (whole, streamed)
}

fn assert_same_to_fhir(name: &str, xml: &[u8], options: &ToFhirOptions) -> usize {
    let (whole, streamed) = both_to_fhir(xml, options);
    let (whole, streamed) = (whole.unwrap(), streamed.unwrap());
    if whole.0 != streamed.0 {
        let at = whole
            .0
            .iter()
            .zip(&streamed.0)
            .position(|(a, b)| a != b)
            .unwrap_or(whole.0.len().min(streamed.0.len()));
        let from = at.saturating_sub(200);
        panic!(
            "{name}: the streamed Bundle differs from byte {at} (lengths {} and {}):\n whole: {}\nstream: {}",
            whole.0.len(),
            streamed.0.len(),
            String::from_utf8_lossy(&whole.0[from..(at + 200).min(whole.0.len())]),
            String::from_utf8_lossy(&streamed.0[from..(at + 200).min(streamed.0.len())]),
        );
    }
    assert_eq!(whole.1, streamed.1, "{name}: the reports differ");
    whole.0.len()
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
