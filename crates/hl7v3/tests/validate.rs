//! Validation against the real schemas and the conformance corpus: what the NHS says is
//! valid passes, templates and broken documents fail with the right rule at the right line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use hl7v3::Interaction;
use hl7v3::validate::{Attachment, Options, Report, Rule, Schemas, Severity, validate};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
}

fn schemas() -> Schemas {
    Schemas::new(corpus().join("schemas")).unwrap()
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(corpus().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The files the conformance README lists as schema-valid.
fn valid_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(corpus().join("translation/ehr-extract"))
        .unwrap()
        .map(|e| {
            format!(
                "translation/ehr-extract/{}",
                e.unwrap().file_name().to_string_lossy()
            )
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 13);
    for f in [
        "inbound__acknowledgement__MCCI_IN010000UK13_body_AA.xml",
        "inbound__acknowledgement__MCCI_IN010000UK13_body_AE.xml",
        "inbound__acknowledgement__MCCI_IN010000UK13_body_AR.xml",
        "illogicalmessage__MCCI_IN010000UK13_payload.txt",
        "continuemessage__COPC_IN000001UK01_payload.txt",
        "illogicalmessage__COPC_IN000001UK01_payload.txt",
    ] {
        files.push(format!("gp2gp/messages/{f}"));
    }
    files
}

fn errors(r: &Report) -> Vec<String> {
    r.errors().map(|f| f.to_string()).collect()
}

/// 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &[u8], needle: &str) -> usize {
    let s = String::from_utf8_lossy(text);
    let at = s
        .find(needle)
        .unwrap_or_else(|| panic!("'{needle}' not in text"));
    s[..at].matches('\n').count() + 1
}

/// 1-based line of the `n`th (0-based) occurrence of `needle`.
fn line_of_nth(text: &str, needle: &str, n: usize) -> usize {
    let (at, _) = text.match_indices(needle).nth(n).unwrap();
    text[..at].matches('\n').count() + 1
}

#[test]
fn every_file_the_corpus_calls_valid_passes_schema_and_rules() {
    let schemas = schemas();
    let mut interactions = std::collections::BTreeSet::new();
    for f in valid_files() {
        let r = validate(&read(&f), Some(&schemas), &Options::default());
        assert!(r.valid, "{f}: {:#?}", errors(&r));
        assert_eq!(errors(&r), Vec::<String>::new(), "{f}");
        interactions.insert(r.interaction.unwrap().id());
    }
    assert_eq!(
        interactions.into_iter().collect::<Vec<_>>(),
        [
            "COPC_IN000001UK01",
            "MCCI_IN010000UK13",
            "RCMR_IN030000UK06"
        ]
    );
}

#[test]
fn templates_are_invalid_and_name_the_line_of_a_placeholder() {
    let schemas = schemas();
    for f in [
        "gp2gp/messages/finalAckMessage__MCCI_IN010000UK1313_payload.txt",
        "gp2gp/messages/inbound__acknowledgement__templates__MCCI_IN010000UK13_nack_payload.txt",
        "gp2gp/messages/requestmessage__RCMR_IN010000UK05_payload.txt",
    ] {
        let bytes = read(f);
        for s in [Some(&schemas), None] {
            let r = validate(&bytes, s, &Options::default());
            assert!(!r.valid, "{f}");
            let first = r
                .findings
                .iter()
                .find(|x| x.rule == Rule::Placeholder)
                .unwrap_or_else(|| panic!("{f}: no placeholder finding: {:#?}", r.findings));
            assert_eq!(first.severity, Severity::Error);
            assert_eq!(first.line, line_of(&bytes, "{{"), "{f}");
            assert!(first.message.contains("{{"), "{}", first.message);
            // The column points at the placeholder itself.
            let line_text = String::from_utf8_lossy(&bytes)
                .lines()
                .nth(first.line - 1)
                .unwrap()
                .to_string();
            let col_char = line_text.chars().nth(first.column - 1).unwrap();
            assert_eq!(col_char, '{', "{f}: {line_text}");
        }
    }
}

#[test]
fn the_ehr_request_without_a_schema_is_checked_structurally() {
    // The real request with its placeholders filled in passes the structural check.
    let bytes = read("gp2gp/messages/requestmessage__RCMR_IN010000UK05_payload.txt");
    let filled = String::from_utf8(bytes)
        .unwrap()
        .replace("{{toAsid}}", "200000000149")
        .replace("{{fromAsid}}", "200000001161")
        .replace("{{fromOds}}", "A82038")
        .replace("{{toOds}}", "B83002");
    let r = validate(filled.as_bytes(), Some(&schemas()), &Options::default());
    assert_eq!(r.interaction, Some(Interaction::EhrRequest));
    assert!(r.valid, "{:#?}", r.findings);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);

    // Remove the patient: a `required` error on the line of recordTarget's parent.
    let start = filled.find("<recordTarget").unwrap();
    let end = filled.find("</recordTarget>").unwrap() + "</recordTarget>".len();
    let broken = format!("{}{}", &filled[..start], &filled[end..]);
    let r = validate(broken.as_bytes(), None, &Options::default());
    assert!(!r.valid);
    let f = r.errors().find(|f| f.rule == Rule::Required).unwrap();
    assert!(
        f.message.contains("recordTarget/patient/id"),
        "{}",
        f.message
    );
    assert_eq!(f.line, line_of(broken.as_bytes(), "<EhrRequest"));

    // An empty ODS code is an error.
    let empty_ods = filled.replace("extension=\"B83002\"", "extension=\"\"");
    let r = validate(empty_ods.as_bytes(), None, &Options::default());
    let rules: Vec<_> = r.errors().map(|f| f.rule).collect();
    assert!(rules.contains(&Rule::OdsCode), "{rules:?}");
    assert!(rules.contains(&Rule::Required), "{rules:?}");
}

fn daniels() -> String {
    String::from_utf8(read(
        "translation/ehr-extract/9465698490_Daniels_full_20210119.xml",
    ))
    .unwrap()
}

/// Daniels with the patient's real NHS number in place of the harness's `1234567890`.
fn daniels_real_nhs_number() -> String {
    let text = daniels();
    assert_eq!(text.matches("extension=\"1234567890\"").count(), 1);
    text.replace("extension=\"1234567890\"", "extension=\"9465698490\"")
}

/// The findings of one rule, as (line, severity).
fn of_rule(r: &Report, rule: Rule) -> Vec<(usize, Severity)> {
    r.findings
        .iter()
        .filter(|f| f.rule == rule)
        .map(|f| (f.line, f.severity))
        .collect()
}

#[test]
fn a_broken_agent_ref_is_an_error_at_its_line() {
    let text = daniels();
    // The id inside the 5th agentRef.
    let (ref_at, _) = text.match_indices("<agentRef").nth(4).unwrap();
    let id_at = ref_at + text[ref_at..].find("<id root=\"").unwrap() + "<id root=\"".len();
    let broken = format!(
        "{}00000000-0000-0000-0000-00000000BEEF{}",
        &text[..id_at],
        &text[id_at + 36..]
    );
    let expected_line = broken[..id_at].matches('\n').count() + 1;
    let r = validate(broken.as_bytes(), Some(&schemas()), &Options::default());
    assert!(!r.valid);
    assert_eq!(
        of_rule(&r, Rule::AgentRef),
        [(expected_line, Severity::Error)]
    );
    assert_eq!(errors(&r).len(), 1, "{:#?}", errors(&r));
    assert!(errors(&r)[0].contains("00000000-0000-0000-0000-00000000BEEF"));
}

#[test]
fn a_duplicated_statement_id_is_an_error_at_the_second() {
    let text = daniels();
    let id_after = |n: usize| {
        let (at, _) = text.match_indices("<ObservationStatement").nth(n).unwrap();
        let id = at + text[at..].find("<id root=\"").unwrap() + "<id root=\"".len();
        (id, text[id..id + 36].to_string())
    };
    let (_, first_id) = id_after(0);
    let (second_at, second_id) = id_after(1);
    assert_ne!(first_id, second_id);
    let broken = format!(
        "{}{}{}",
        &text[..second_at],
        first_id,
        &text[second_at + 36..]
    );
    let r = validate(broken.as_bytes(), None, &Options::default());
    let expected_line = broken[..second_at].matches('\n').count() + 1;
    assert_eq!(
        of_rule(&r, Rule::UniqueId),
        [(expected_line, Severity::Error)]
    );
    assert!(!r.valid);
}

#[test]
fn a_timestamp_with_month_13_is_an_error_at_its_line() {
    let text = daniels();
    let needle = "<availabilityTime value=\"";
    let (at, _) = text.match_indices(needle).nth(3).unwrap();
    let v = at + needle.len();
    let mut broken = text.clone();
    broken.replace_range(v + 4..v + 6, "13");
    let expected_line = line_of_nth(&broken, needle, 3);
    let r = validate(broken.as_bytes(), None, &Options::default());
    assert_eq!(
        of_rule(&r, Rule::Timestamp),
        [(expected_line, Severity::Error)]
    );
    assert!(r.findings.iter().any(|f| f.message.contains("month 13")));
    // The schema does not catch it (TS is a pattern-free string there): the rule does.
    let with_schema = validate(broken.as_bytes(), Some(&schemas()), &Options::default());
    assert_eq!(of_rule(&with_schema, Rule::Timestamp).len(), 1);
}

#[test]
fn an_nhs_number_with_a_wrong_check_digit_is_a_warning_and_invalid_only_when_strict() {
    let text = daniels_real_nhs_number();
    // 9465698491: ten digits, wrong check digit.
    let broken = text.replace("9465698490", "9465698491");
    let expected_line = line_of(broken.as_bytes(), "9465698491");
    let r = validate(broken.as_bytes(), Some(&schemas()), &Options::default());
    assert!(r.valid, "{:#?}", errors(&r));
    let found = of_rule(&r, Rule::NhsNumber);
    assert!(!found.is_empty());
    assert_eq!(found[0], (expected_line, Severity::Warning));
    let strict = Options {
        strict: true,
        ..Options::default()
    };
    assert!(!validate(broken.as_bytes(), Some(&schemas()), &strict).valid);
    // The unbroken extract has no NHS number finding; with its test ASIDs (GP2GPTEST,
    // warnings) replaced by real ones it is valid even when strict.
    let base = validate(text.as_bytes(), Some(&schemas()), &Options::default());
    assert_eq!(of_rule(&base, Rule::NhsNumber), []);
    let real_asids = text.replace(
        "root=\"1.2.826.0.1285.0.2.0.107\" extension=\"GP2GPTEST\"",
        "root=\"1.2.826.0.1285.0.2.0.107\" extension=\"200000000149\"",
    );
    assert!(validate(real_asids.as_bytes(), Some(&schemas()), &strict).valid);
}

#[test]
fn a_malformed_nhs_number_is_an_error() {
    let text = daniels_real_nhs_number();
    let broken = text.replace("9465698490", "94656-984");
    let expected_line = line_of(broken.as_bytes(), "94656-984");
    let r = validate(broken.as_bytes(), None, &Options::default());
    assert!(!r.valid);
    assert_eq!(
        of_rule(&r, Rule::NhsNumber)[0],
        (expected_line, Severity::Error)
    );
}

#[test]
fn a_test_harness_nhs_number_is_a_warning() {
    // The NHS's own extracts carry the harness's 1234567890.
    let broken = daniels();
    let r = validate(broken.as_bytes(), None, &Options::default());
    assert!(r.valid);
    let w = r.warnings().find(|f| f.rule == Rule::NhsNumber).unwrap();
    assert!(w.message.contains("test-harness"), "{}", w.message);
}

#[test]
fn a_removed_required_element_is_a_schema_error_at_its_line() {
    let text = daniels();
    // The transmission wrapper's creationTime is required; the schema then meets
    // versionCode where it expected creationTime.
    let start = text.find("<creationTime").unwrap();
    let end = start + text[start..].find("/>").unwrap() + 2;
    let broken = format!("{}{}", &text[..start], &text[end..]);
    let expected_line = line_of(broken.as_bytes(), "<versionCode");
    let r = validate(broken.as_bytes(), Some(&schemas()), &Options::default());
    assert!(!r.valid);
    let schema: Vec<_> = r.errors().filter(|f| f.rule == Rule::Schema).collect();
    assert_eq!(schema.len(), 1, "{schema:#?}");
    assert_eq!(schema[0].line, expected_line);
    assert!(
        schema[0].message.contains("versionCode"),
        "{}",
        schema[0].message
    );
    assert!(
        schema[0].message.contains("creationTime"),
        "{}",
        schema[0].message
    );
    // The column is that of <versionCode on its line.
    let line = broken.lines().nth(expected_line - 1).unwrap();
    assert_eq!(
        schema[0].column,
        line.find("<versionCode").unwrap() + 1,
        "{line}"
    );
    // Without schemas the rules alone do not see it.
    assert!(validate(broken.as_bytes(), None, &Options::default()).valid);
}

#[test]
fn hostile_xml_is_an_xml_finding_not_a_panic() {
    let s = schemas();
    let xxe = b"<?xml version=\"1.0\"?>\n<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<MCCI_IN010000UK13>&x;</MCCI_IN010000UK13>";
    let lol = b"<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\"><!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>\n<lolz>&lol3;</lolz>";
    let entity = b"<MCCI_IN010000UK13>\n  <id root=\"&ext;\"/>\n</MCCI_IN010000UK13>";
    for (input, line) in [(&xxe[..], 2), (&lol[..], 1), (&entity[..], 2)] {
        let r = validate(input, Some(&s), &Options::default());
        assert!(!r.valid);
        assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
        assert_eq!(r.findings[0].rule, Rule::Xml);
        assert_eq!(r.findings[0].line, line, "{:#?}", r.findings);
    }
}

#[test]
fn a_truncated_document_is_an_xml_error() {
    let text = daniels();
    // Cut just after a start tag, half way through.
    let half = text.len() / 2;
    let cut_at = half + text[half..].find('>').unwrap() + 1;
    let cut = &text.as_bytes()[..cut_at];
    let r = validate(cut, Some(&schemas()), &Options::default());
    assert!(!r.valid);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].rule, Rule::Xml);
    assert!(
        r.findings[0].message.contains("truncated"),
        "{}",
        r.findings[0].message
    );
    assert!(r.interaction.is_none());
}

#[test]
fn invalid_utf8_is_an_xml_error_at_its_line() {
    let text = daniels();
    let mut bytes = text.into_bytes();
    let at = {
        let s = std::str::from_utf8(&bytes).unwrap();
        s.match_indices("<text>").next().unwrap().0 + "<text>".len()
    };
    let expected_line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    bytes.insert(at, 0xFF);
    let r = validate(&bytes, Some(&schemas()), &Options::default());
    assert!(!r.valid);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].rule, Rule::Xml);
    assert_eq!(r.findings[0].line, expected_line);
    assert!(r.findings[0].message.contains("UTF-8"));
}

#[test]
fn an_unknown_root_is_an_interaction_error() {
    let r = validate(
        b"<hello xmlns=\"urn:hl7-org:v3\"/>",
        Some(&schemas()),
        &Options::default(),
    );
    assert!(!r.valid);
    assert_eq!(r.interaction, None);
    assert_eq!(r.findings[0].rule, Rule::Interaction);
    assert_eq!((r.findings[0].line, r.findings[0].column), (1, 1));
}

fn mhs_json(rel: &str) -> (String, Vec<Attachment>) {
    let v: serde_json::Value = serde_json::from_slice(&read(rel)).unwrap();
    let payload = v["payload"].as_str().unwrap().to_string();
    let mut list = Vec::new();
    for key in ["attachments", "external_attachments"] {
        for a in v[key].as_array().into_iter().flatten() {
            list.push(Attachment::from_description(
                a["document_id"].as_str(),
                a["description"].as_str().unwrap_or(""),
            ));
        }
    }
    (payload, list)
}

#[test]
fn external_documents_must_be_among_the_attachments_when_those_are_known() {
    let s = schemas();
    for rel in [
        "gp2gp/large-message/Scenario_1__uk06.json",
        "gp2gp/large-message/Scenario_3__uk06.json",
        "gp2gp/large-message/Scenario_6__uk06.json",
        "gp2gp/large-message/decoded-large-attachments__index-message__uk06.json",
    ] {
        let (payload, attachments) = mhs_json(rel);
        assert!(!attachments.is_empty());
        let with = Options {
            attachments: Some(attachments),
            ..Options::default()
        };
        let r = validate(payload.as_bytes(), Some(&s), &with);
        assert_eq!(of_rule(&r, Rule::ExternalDocument), [], "{rel}");
        let none = Options {
            attachments: Some(Vec::new()),
            ..Options::default()
        };
        let r = validate(payload.as_bytes(), Some(&s), &none);
        let missing = of_rule(&r, Rule::ExternalDocument);
        assert_eq!(missing.len(), 1, "{rel}");
        assert_eq!(
            missing[0],
            (
                line_of(payload.as_bytes(), "<reference value="),
                Severity::Error
            ),
            "{rel}"
        );
    }
}

#[test]
fn schemas_are_shared_across_threads() {
    let s = schemas();
    s.preload().unwrap();
    let text = daniels();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    let mut ok = 0;
                    for _ in 0..3 {
                        ok += usize::from(
                            validate(text.as_bytes(), Some(&s), &Options::default()).valid,
                        );
                    }
                    ok
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 3);
        }
    });
}

#[test]
fn many_findings_are_capped() {
    let mut doc = String::from("<MCCI_IN010000UK13 xmlns=\"urn:hl7-org:v3\">");
    for i in 0..50 {
        doc.push_str(&format!("\n<time value=\"2020{:02}01\"/>", 13 + i % 80));
    }
    doc.push_str("</MCCI_IN010000UK13>");
    let opts = Options {
        max_findings: 10,
        ..Options::default()
    };
    let r = validate(doc.as_bytes(), None, &opts);
    assert_eq!(r.findings.len(), 10);
    assert_eq!(r.findings_left_off, 40);
    assert!(!r.valid);
}
