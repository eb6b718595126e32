//! FHIR → HL7 over the conformance corpus: every GP Connect bundle translates into an
//! EhrExtract that validates against the schema and keeps every clinical statement, SNOMED
//! CT code and date that the NHS sending adaptor's extract of the same record keeps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use hl7v3::validate::{Options, Schemas, validate};
use hl7v3::xml::Layout;
use translate::to_hl7::{ToHl7Options, bundle_to_extract};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
}

fn bundles() -> Vec<(String, PathBuf)> {
    let mut out: Vec<_> = std::fs::read_dir(corpus().join("translation/gpconnect"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    out
}

fn options() -> ToHl7Options {
    ToHl7Options {
        creation_time: Some("20240131093000".into()),
        to_ods: Some("B86041".into()),
        from_asid: Some("200000000359".into()),
        to_asid: Some("200000000360".into()),
        ..ToHl7Options::default()
    }
}

fn translate(path: &Path) -> (String, translate::Report) {
    let bytes = std::fs::read(path).unwrap();
    let bundle: fhir::Bundle = fhir::from_slice(&bytes).unwrap();
    let (msg, report) = bundle_to_extract(&bundle, &options()).unwrap();
    (msg.to_xml(Layout::Indented), report)
}

#[test]
fn every_bundle_validates_against_the_schema() {
    let schemas = Schemas::new(corpus().join("schemas")).unwrap();
    let mut failures = Vec::new();
    for (name, path) in bundles() {
        let (xml, _) = translate(&path);
        let r = validate(xml.as_bytes(), Some(&schemas), &Options::default());
        if !r.valid {
            let lines: Vec<&str> = xml.lines().collect();
            for f in r.errors().take(8) {
                let ctx = lines.get(f.line.saturating_sub(1)).copied().unwrap_or("");
                failures.push(format!("{name}: {f}\n    {}", ctx.trim()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const STATEMENTS: [&str; 9] = [
    "CompoundStatement",
    "EhrEmpty",
    "LinkSet",
    "MedicationStatement",
    "NarrativeStatement",
    "ObservationStatement",
    "PlanStatement",
    "RegistrationStatement",
    "RequestStatement",
];

/// What an extract keeps: statements by kind, the SNOMED CT codes inside statements, the
/// statement dates, and each NarrativeStatement's text.
#[derive(Default)]
struct Kept {
    counts: std::collections::BTreeMap<String, usize>,
    codes: std::collections::BTreeSet<String>,
    dates: std::collections::BTreeSet<String>,
    narratives: Vec<String>,
}

fn kept(xml: &[u8]) -> Kept {
    let root = hl7v3::xml::parse(xml).unwrap();
    let mut k = Kept::default();
    root.walk(&mut |e, _| {
        let name = e.local_name();
        if !STATEMENTS.contains(&name) {
            return;
        }
        *k.counts.entry(name.to_string()).or_default() += 1;
        for c in e.elements() {
            match c.local_name() {
                "effectiveTime" => c.walk(&mut |t, _| {
                    if let Some(v) = t.attr("value") {
                        k.dates.insert(v.to_string());
                    }
                }),
                "availabilityTime" => {
                    if let Some(v) = c.attr("value") {
                        k.dates.insert(v.to_string());
                    }
                }
                _ => {}
            }
        }
        // Codes anywhere inside a statement (its code, values, translations, qualifiers).
        e.walk(&mut |c, _| {
            if c.attr("codeSystem") == Some(hl7v3::datatypes::SNOMED_CT)
                && let Some(code) = c.attr("code")
            {
                k.codes.insert(code.to_string());
            }
        });
        if name == "NarrativeStatement"
            && let Some(t) = e.child("text")
        {
            k.narratives.push(t.text().into_owned());
        }
    });
    k
}

/// SNOMED CT concept id ⇄ description id pairs of the Bundle (`Extension-coding-sctdescid`):
/// the NHS adaptor's 2021 extracts send the concept id where a coding's extension has no
/// description display, and for blood pressures; Lloyd sends the description id, as the
/// current NHS mapping does. Either id names the same coding.
fn equivalents(json: &serde_json::Value) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut stack = vec![json];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(o) => {
                if o.get("system").and_then(|s| s.as_str()) == Some("http://snomed.info/sct")
                    && let Some(code) = o.get("code").and_then(|c| c.as_str())
                {
                    let ids = o
                        .get("extension")
                        .and_then(|e| e.as_array())
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e.get("extension")?.as_array())
                        .flatten()
                        .filter(|e| e.get("url").and_then(|u| u.as_str()) == Some("descriptionId"))
                        .filter_map(|e| e.get("valueId")?.as_str());
                    for id in ids {
                        out.entry(code.to_string())
                            .or_default()
                            .push(id.to_string());
                        out.entry(id.to_string())
                            .or_default()
                            .push(code.to_string());
                    }
                }
                stack.extend(o.values());
            }
            serde_json::Value::Array(a) => stack.extend(a),
            _ => {}
        }
    }
    out
}

/// The NHS adaptor's narratives that only restate what Lloyd carries in coded form: a
/// result's interpretation (`interpretationCode`), range text (`referenceRange`) and filing
/// date (`availabilityTime`).
fn is_metadata_narrative(body: &str) -> bool {
    let lines: Vec<&str> = body
        .lines()
        .filter(|l| !l.starts_with("CommentType:") && !l.starts_with("CommentDate:"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    !lines.is_empty()
        && lines.iter().all(|l| {
            l.starts_with("Interpretation:")
                || l.starts_with("Range Text:")
                || l.starts_with("Filing Date:")
        })
}

fn body(t: &str) -> String {
    t.lines()
        .filter(|l| !l.starts_with("CommentType:") && !l.starts_with("CommentDate:"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

#[test]
fn every_bundle_keeps_what_the_nhs_adaptor_keeps() {
    let mut problems = Vec::new();
    for (name, path) in bundles() {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let theirs_xml =
            std::fs::read(corpus().join(format!("translation/ehr-extract/{name}.xml"))).unwrap();
        let (ours_xml, _) = translate(&path);
        let theirs = kept(&theirs_xml);
        let ours = kept(ours_xml.as_bytes());
        let bundle_text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();

        // Statements by kind: at least as many, except NarrativeStatements, where the
        // adaptor also writes (a) metadata narratives and (b) each filing comment twice
        // (as a "USER COMMENT" and again as an "AGGREGATE COMMENT SET" of the same text).
        for kind in STATEMENTS {
            let t = theirs.counts.get(kind).copied().unwrap_or(0);
            let o = ours.counts.get(kind).copied().unwrap_or(0);
            let needed = if kind == "NarrativeStatement" {
                let aggregate: std::collections::BTreeSet<String> = theirs
                    .narratives
                    .iter()
                    .filter(|n| n.starts_with("CommentType:AGGREGATE"))
                    .map(|n| body(n))
                    .collect();
                let restated = theirs
                    .narratives
                    .iter()
                    .filter(|n| {
                        is_metadata_narrative(n)
                            || (n.starts_with("CommentType:USER COMMENT")
                                && aggregate.contains(&body(n)))
                    })
                    .count();
                t - restated
            } else {
                t
            };
            if o < needed {
                problems.push(format!(
                    "{name}: {kind}: ours {o} < needed {needed} (theirs {t})"
                ));
            }
        }

        // SNOMED CT codes: every one of theirs is in ours (either id of a coding), except
        // these, each checked against the Bundle:
        let eq = equivalents(&json);
        for code in &theirs.codes {
            if ours.codes.contains(code)
                || eq
                    .get(code)
                    .is_some_and(|alts| alts.iter().any(|a| ours.codes.contains(a)))
            {
                continue;
            }
            let explained = match code.as_str() {
                // The adaptor's placeholder "Problem" for a problem whose actual problem is
                // an allergy, immunisation or medication: Lloyd names it with the problem's
                // own code.
                "55607006" => bundle_text.contains("Extension-CareConnect-ActualProblem-1"),
                // The adaptor's fixed "Other digital signal" for every document: Lloyd uses
                // the DocumentReference's own SNOMED CT type when it has one.
                "37251000000104" => json_has_document_with_snomed_type(&json),
                // "NHS Prescription": the adaptor ignored a course's prescribing agency;
                // Lloyd sends 394828003 "Prescription by another organisation" for it.
                "394823007" => {
                    bundle_text.contains("prescribed-by-another-organisation")
                        && ours.codes.contains("394828003")
                }
                // "Comment note": the adaptor wrapped such comments in a CLUSTER coded with
                // it; Lloyd sends them as what the code says they are, NarrativeStatements.
                "37331000000100" => bundle_text.contains("\"37331000000100\""),
                _ => false,
            };
            if !explained {
                problems.push(format!("{name}: SNOMED CT code {code} is not kept"));
            }
        }
        // Dates: every statement date of theirs is in ours.
        for d in theirs.dates.difference(&ours.dates) {
            problems.push(format!("{name}: date {d} is not kept"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn json_has_document_with_snomed_type(json: &serde_json::Value) -> bool {
    json["entry"].as_array().into_iter().flatten().any(|e| {
        e["resource"]["resourceType"] == "DocumentReference"
            && e["resource"]["type"]["coding"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["system"] == "http://snomed.info/sct")
    })
}

#[test]
fn every_bundle_reports_what_it_read_wrote_and_could_not_carry() {
    for (name, path) in bundles() {
        let bytes = std::fs::read(&path).unwrap();
        let bundle: fhir::Bundle = fhir::from_slice(&bytes).unwrap();
        let (_, report) = translate(&path);
        // Everything read is counted, by resource type.
        let read: usize = report.input.values().sum();
        assert_eq!(read, bundle.resources().count(), "{name}");
        assert!(
            report.output.get("ehrComposition").copied().unwrap_or(0) > 0,
            "{name}"
        );
        // Nothing was lost by accident: the safety net found nothing.
        for u in &report.unmapped {
            assert!(
                !u.reason.contains("not carried by any statement"),
                "{name}: {} {}: {}",
                u.kind,
                u.source,
                u.reason
            );
        }
        // A degrade names a GP2GP degrade code and keeps the original text or codes.
        for d in &report.degrades {
            assert!(
                d.original_text.is_some() || !d.original_codes.is_empty(),
                "{name}: {d:?}"
            );
        }
    }
}

#[test]
fn codes_without_snomed_ct_are_degraded_and_reported() {
    // Daniels has medicines coded only in EMIS drug codes.
    let (_, path) = bundles()
        .into_iter()
        .find(|(n, _)| n.starts_with("9465698490_Daniels"))
        .unwrap();
    let (xml, report) = translate(&path);
    assert!(!report.degrades.is_empty());
    for d in &report.degrades {
        assert!(
            xml.contains(&format!("code=\"{}\"", d.degrade_code.code())),
            "{d:?}"
        );
    }
}

#[test]
fn translation_is_reproducible() {
    let (_, path) = bundles().into_iter().next().unwrap();
    let (a, _) = translate(&path);
    let (b, _) = translate(&path);
    assert_eq!(a, b);
}

#[test]
fn a_nopat_item_makes_a_confidential_uk07_extract_that_validates() {
    let json = r#"{"resourceType":"Bundle","type":"collection","entry":[
      {"resource":{"resourceType":"Patient","id":"p1",
        "identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9465698490"}],
        "managingOrganization":{"reference":"Organization/o1"}}},
      {"resource":{"resourceType":"Organization","id":"o1","name":"A Practice",
        "identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A82038"}]}},
      {"resource":{"resourceType":"Observation","id":"obs1","status":"final",
        "meta":{"security":[{"system":"http://hl7.org/fhir/v3/ActCode","code":"NOPAT"}]},
        "code":{"coding":[{"system":"http://snomed.info/sct","code":"22298006","display":"Myocardial infarction"}]},
        "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2010-05-01"}},
      {"resource":{"resourceType":"Observation","id":"obs2","status":"final",
        "code":{"coding":[{"system":"http://read.info/readv2","code":"G30..","display":"Heart attack"}]},
        "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2010-05"}}
    ]}"#;
    let bundle: fhir::Bundle = fhir::from_str(json).unwrap();
    let (msg, report) = bundle_to_extract(&bundle, &options()).unwrap();
    assert_eq!(
        msg.interaction(),
        Some(hl7v3::Interaction::EhrExtractConfidential)
    );
    let xml = msg.to_xml(Layout::Compact);
    assert_eq!(
        xml.matches("code=\"NOPAT\"").count(),
        2,
        "the statement and its composition"
    );
    let schemas = Schemas::new(corpus().join("schemas")).unwrap();
    let r = validate(xml.as_bytes(), Some(&schemas), &Options::default());
    assert!(r.valid, "{:?}", r.findings);
    // The Read-coded entry is degraded, keeps its text and code, and is reported.
    assert_eq!(report.degrades.len(), 1);
    assert_eq!(report.degrades[0].source, "Observation/obs2");
    assert!(xml.contains("code=\"196411000000103\""));
    assert!(xml.contains("<originalText>Heart attack</originalText>"));
    assert!(xml.contains("code=\"G30..\" codeSystem=\"2.16.840.1.113883.2.1.6.2\""));
    // Without the label the same record is an ordinary UK06.
    let plain = json.replace("NOPAT", "N");
    let bundle: fhir::Bundle = fhir::from_str(&plain).unwrap();
    let (msg, _) = bundle_to_extract(&bundle, &options()).unwrap();
    assert_eq!(msg.interaction(), Some(hl7v3::Interaction::EhrExtract));
}

#[test]
fn a_bundle_without_a_patient_or_nhs_number_is_refused() {
    let bundle: fhir::Bundle =
        fhir::from_str(r#"{"resourceType":"Bundle","type":"collection","entry":[]}"#).unwrap();
    assert_eq!(
        bundle_to_extract(&bundle, &options()).unwrap_err(),
        translate::TranslateError::NoPatient
    );
    let bundle: fhir::Bundle = fhir::from_str(
        r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"p"}}]}"#,
    )
    .unwrap();
    assert_eq!(
        bundle_to_extract(&bundle, &options()).unwrap_err(),
        translate::TranslateError::NoNhsNumber
    );
}
