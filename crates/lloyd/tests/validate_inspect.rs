//! `lloyd validate` and `lloyd inspect`, run as the real binary on the conformance corpus.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::corpus;
use serde_json::Value;

fn schemas_dir() -> PathBuf {
    corpus().join("schemas")
}

fn c(rel: &str) -> PathBuf {
    corpus().join(rel)
}

/// The binary, with LLOYD_SCHEMAS cleared so that only what a test passes counts.
fn lloyd() -> Command {
    let mut cmd = common::lloyd();
    cmd.env_remove("LLOYD_SCHEMAS");
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap(),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

/// The files the conformance README lists as schema-valid.
fn valid_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(c("translation/ehr-extract"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in [
        "inbound__acknowledgement__MCCI_IN010000UK13_body_AA.xml",
        "inbound__acknowledgement__MCCI_IN010000UK13_body_AE.xml",
        "inbound__acknowledgement__MCCI_IN010000UK13_body_AR.xml",
        "illogicalmessage__MCCI_IN010000UK13_payload.txt",
        "continuemessage__COPC_IN000001UK01_payload.txt",
        "illogicalmessage__COPC_IN000001UK01_payload.txt",
    ] {
        files.push(c(&format!("gp2gp/messages/{f}")));
    }
    files
}

/// Every finding line is `  LINE:COL severity rule: message`.
fn assert_finding_format(line: &str) {
    let rest = line
        .strip_prefix("  ")
        .unwrap_or_else(|| panic!("not indented: {line:?}"));
    let (pos, rest) = rest.split_once(' ').unwrap();
    let (l, col) = pos.split_once(':').unwrap();
    l.parse::<usize>().unwrap();
    col.parse::<usize>().unwrap();
    let (severity, rest) = rest.split_once(' ').unwrap();
    assert!(severity == "error" || severity == "warning", "{line:?}");
    let (rule, message) = rest.split_once(": ").unwrap();
    assert!(
        !rule.is_empty() && rule.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
        "{line:?}"
    );
    assert!(!message.is_empty(), "{line:?}");
}

#[test]
fn every_valid_corpus_file_is_ok_through_the_cli() {
    let files = valid_files();
    let (code, out, err) = run(lloyd()
        .arg("validate")
        .arg("--schemas")
        .arg(schemas_dir())
        .args(&files));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!err.contains("rules only"), "{err}");
    let headers: Vec<&str> = out.lines().filter(|l| !l.starts_with("  ")).collect();
    assert_eq!(headers.len(), files.len());
    for (h, f) in headers.iter().zip(&files) {
        let expected_id = if f.to_string_lossy().contains("MCCI") {
            "MCCI_IN010000UK13"
        } else if f.to_string_lossy().contains("COPC") {
            "COPC_IN000001UK01"
        } else {
            "RCMR_IN030000UK06"
        };
        assert_eq!(*h, format!("{}: ok ({expected_id})", f.display()));
    }
    for l in out.lines().filter(|l| l.starts_with("  ")) {
        assert_finding_format(l);
        assert!(
            l.contains(" warning "),
            "an ok file lists only warnings: {l}"
        );
    }
}

#[test]
fn templates_are_invalid_with_the_placeholder_line() {
    let f =
        c("gp2gp/messages/inbound__acknowledgement__templates__MCCI_IN010000UK13_nack_payload.txt");
    let text = std::fs::read_to_string(&f).unwrap();
    let first_line = text.lines().position(|l| l.contains("{{")).unwrap() + 1;
    let (code, out, _) = run(lloyd()
        .arg("validate")
        .arg("--schemas")
        .arg(schemas_dir())
        .arg(&f));
    assert_eq!(code, 1, "{out}");
    let mut lines = out.lines();
    assert_eq!(lines.next().unwrap(), format!("{}: invalid", f.display()));
    let placeholder = lines
        .clone()
        .find(|l| l.contains(" error placeholder: "))
        .unwrap();
    assert!(
        placeholder.starts_with(&format!("  {first_line}:")),
        "{placeholder} (expected line {first_line})"
    );
    for l in lines {
        assert_finding_format(l);
    }
}

#[test]
fn exit_codes_are_0_1_and_2() {
    let ok = c("gp2gp/messages/inbound__acknowledgement__MCCI_IN010000UK13_body_AA.xml");
    let template = c("gp2gp/messages/finalAckMessage__MCCI_IN010000UK1313_payload.txt");
    // 0: all valid.
    let (code, _, _) = run(lloyd().arg("validate").arg(&ok));
    assert_eq!(code, 0);
    // 1: one invalid among valid ones.
    let (code, out, _) = run(lloyd().arg("validate").arg(&ok).arg(&template).arg(&ok));
    assert_eq!(code, 1);
    assert_eq!(
        out.lines()
            .filter(|l| l.ends_with(": ok (MCCI_IN010000UK13)"))
            .count(),
        2
    );
    // 1: a missing file is that file invalid, not a usage error; the others still run.
    let missing = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-file.xml");
    let (code, out, _) = run(lloyd().arg("validate").arg(&missing).arg(&ok));
    assert_eq!(code, 1, "{out}");
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("{}: invalid", missing.display())
    );
    let why = lines.next().unwrap();
    assert_finding_format(why);
    assert!(why.contains("cannot read the file"), "{why}");
    assert!(lines.next().unwrap().ends_with(": ok (MCCI_IN010000UK13)"));
    // 2: usage errors.
    assert_eq!(run(lloyd().arg("validate")).0, 2);
    assert_eq!(
        run(lloyd().arg("validate").arg("--no-such-flag").arg(&ok)).0,
        2
    );
    let (code, _, err) = run(lloyd()
        .arg("validate")
        .arg("--schemas")
        .arg("/nonexistent/schemas")
        .arg(&ok));
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/schemas"), "{err}");
}

#[test]
fn without_schemas_it_says_so_once_and_checks_rules() {
    let a = c("gp2gp/messages/inbound__acknowledgement__MCCI_IN010000UK13_body_AA.xml");
    let b = c("gp2gp/messages/inbound__acknowledgement__MCCI_IN010000UK13_body_AR.xml");
    let (code, _, err) = run(lloyd().arg("validate").arg(&a).arg(&b));
    assert_eq!(code, 0);
    assert_eq!(err.matches("rules only").count(), 1, "{err}");
}

/// A real extract with a required element removed: only the schema sees it.
fn broken_extract() -> (PathBuf, usize) {
    let text = std::fs::read_to_string(c(
        "translation/ehr-extract/9465700193_Birdi_full_20210119.xml",
    ))
    .unwrap();
    let start = text.find("<creationTime").unwrap();
    let end = start + text[start..].find("/>").unwrap() + 2;
    let broken = format!("{}{}", &text[..start], &text[end..]);
    let line = broken[..broken.find("<versionCode").unwrap()]
        .matches('\n')
        .count()
        + 1;
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lloyd-validate-broken-extract.xml");
    std::fs::write(&path, broken).unwrap();
    (path, line)
}

#[test]
fn schemas_come_from_the_environment_too() {
    let (path, line) = broken_extract();
    // Rules only: this break is invisible.
    let (code, _, _) = run(lloyd().arg("validate").arg(&path));
    assert_eq!(code, 0);
    // LLOYD_SCHEMAS: the schema catches it, at the line where creationTime was.
    let (code, out, err) = run(lloyd()
        .env("LLOYD_SCHEMAS", schemas_dir())
        .arg("validate")
        .arg(&path));
    assert_eq!(code, 1, "{out}");
    assert!(!err.contains("rules only"));
    let schema = out.lines().find(|l| l.contains(" error schema: ")).unwrap();
    assert!(schema.starts_with(&format!("  {line}:")), "{schema}");
}

#[test]
fn strict_makes_warnings_count() {
    // The NHS's extracts carry test ASIDs and the harness NHS number: warnings.
    let f = c("translation/ehr-extract/9465698679_Gainsford_full_20210119.xml");
    let (code, out, _) = run(lloyd().arg("validate").arg(&f));
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .ends_with(": ok (RCMR_IN030000UK06)")
    );
    assert!(out.contains(" warning asid: "), "{out}");
    let (code, out, _) = run(lloyd().arg("validate").arg("--strict").arg(&f));
    assert_eq!(code, 1);
    assert_eq!(
        out.lines().next().unwrap(),
        format!("{}: invalid", f.display())
    );
}

#[test]
fn mhs_json_is_validated_by_its_payload_with_payload_lines() {
    // A valid MHS JSON acknowledgement.
    let ack = c("gp2gp/messages/MCCI_IN010000UK13__MCCI_IN010000UK13.json");
    let (code, out, _) = run(lloyd()
        .arg("validate")
        .arg("--schemas")
        .arg(schemas_dir())
        .arg(&ack));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(&format!("{}: ok (MCCI_IN010000UK13)", ack.display())),
        "{out}"
    );
    assert!(
        out.contains("payload"),
        "the header says lines are payload lines: {out}"
    );
    // An extract whose payload still has a {{placeholder}}: the position is within the
    // payload, computed here from the JSON independently.
    let f = c("gp2gp/large-message/Scenario_1__uk06.json");
    let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
    let payload = v["payload"].as_str().unwrap();
    let at = payload.find("{{nhsNumber}}").unwrap();
    let line = payload[..at].matches('\n').count() + 1;
    let col = payload[..at].rsplit('\n').next().unwrap().chars().count() + 1;
    let (code, out, _) = run(lloyd().arg("validate").arg(&f));
    assert_eq!(code, 1);
    assert!(
        out.lines()
            .any(|l| l == format!("  {line}:{col} error placeholder: this looks like a template: replace {{{{nhsNumber}}}} with a real value")),
        "{out}"
    );
    // Its attachment list is used: the referenced document is among them, so there is
    // no external-document finding.
    assert!(!out.contains("external-document"), "{out}");
}

fn inspect(path: &Path) -> Value {
    let (code, out, err) = run(lloyd().arg("inspect").arg(path));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn inspect_counts_every_statement_of_a_real_extract() {
    let f = c("translation/ehr-extract/9465698490_Daniels_full_20210119.xml");
    let text = std::fs::read_to_string(&f).unwrap();
    let v = inspect(&f);
    assert_eq!(v["interaction_id"], "RCMR_IN030000UK06");
    // The message id is the first id in the document.
    let first_id = &text[text.find("<id root=\"").unwrap() + 10..];
    assert_eq!(v["message_id"], first_id[..first_id.find('"').unwrap()]);
    assert_eq!(v["conversation_id"], Value::Null);
    assert_eq!(v["nhs_number"], "1234567890");
    assert_eq!(v["from_asid"], "GP2GPTEST");
    assert_eq!(v["to_asid"], "GP2GPTEST");
    assert!(v["from_ods"].is_string() && v["to_ods"].is_string(), "{v}");
    assert_eq!(v["ack_type"], Value::Null);
    // Statement counts against start tags counted in the text.
    let statements = v["statements"].as_object().unwrap();
    let mut total = 0;
    for kind in [
        "ObservationStatement",
        "NarrativeStatement",
        "PlanStatement",
        "RequestStatement",
        "MedicationStatement",
        "LinkSet",
        "RegistrationStatement",
        "CompoundStatement",
        "EhrEmpty",
    ] {
        let raw =
            text.matches(&format!("<{kind} ")).count() + text.matches(&format!("<{kind}>")).count();
        let got = statements.get(kind).and_then(Value::as_u64).unwrap_or(0);
        assert_eq!(got, raw as u64, "{kind}");
        total += raw;
    }
    assert!(total > 100, "{total}");
    assert_eq!(
        statements.len(),
        statements
            .keys()
            .filter(|k| text.contains(k.as_str()))
            .count()
    );
    // External documents: one per referredToExternalDocument.
    let docs = v["external_documents"].as_array().unwrap();
    assert_eq!(
        docs.len(),
        text.matches("<referredToExternalDocument").count()
    );
    for d in docs {
        assert!(d["id"].is_string() && d["filename"].is_string(), "{d}");
    }
}

#[test]
fn inspect_reads_ack_types_and_reason_codes() {
    for (file, ack, reason) in [
        (
            "inbound__acknowledgement__MCCI_IN010000UK13_body_AE.xml",
            "AE",
            "99",
        ),
        (
            "inbound__acknowledgement__MCCI_IN010000UK13_body_AR.xml",
            "AR",
            "18",
        ),
        ("continuemessage__COPC_IN000001UK01_payload.txt", "AA", "0"),
    ] {
        let v = inspect(&c(&format!("gp2gp/messages/{file}")));
        assert_eq!(v["ack_type"], ack, "{file}");
        assert_eq!(v["reason_code"], reason, "{file}");
        assert_eq!(v["statements"], Value::Null, "{file}");
    }
    let aa = inspect(&c(
        "gp2gp/messages/inbound__acknowledgement__MCCI_IN010000UK13_body_AA.xml",
    ));
    assert_eq!(aa["ack_type"], "AA");
    assert_eq!(aa["to_asid"], "200000001161");
    assert_eq!(aa["from_asid"], "200000000149");
}

#[test]
fn inspect_reads_mhs_json() {
    let f = c("gp2gp/messages/MCCI_IN010000UK13__MCCI_IN010000UK13.json");
    let raw: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
    let ebxml = raw["ebXML"].as_str().unwrap();
    let conv = &ebxml[ebxml.find("<eb:ConversationId>").unwrap() + 19..];
    let conv = &conv[..conv.find('<').unwrap()];
    let v = inspect(&f);
    assert_eq!(v["conversation_id"], conv);
    assert_eq!(v["interaction_id"], "MCCI_IN010000UK13");
    assert!(v["ack_type"].is_string());

    // A skeleton extract and its attachment: content type and size come from the
    // attachment's description.
    let v = inspect(&c("gp2gp/large-message/Scenario_6__uk06.json"));
    let docs = v["external_documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "{v}");
    assert_eq!(
        docs[0]["filename"],
        "588210BB-401D-41F9-84D2-978697CEEFE5_00011000.tif"
    );
    assert_eq!(docs[0]["content_type"], "image/tiff");
    assert_eq!(docs[0]["size"], 36504);
    assert!(v["statements"].is_object());
}

#[test]
fn inspect_explains_bad_input() {
    let missing = Path::new(env!("CARGO_TARGET_TMPDIR")).join("inspect-missing.xml");
    let (code, out, err) = run(lloyd().arg("inspect").arg(&missing));
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("cannot read"), "{err}");

    let not_hl7 = Path::new(env!("CARGO_TARGET_TMPDIR")).join("inspect-not-hl7.xml");
    std::fs::write(&not_hl7, "<html>\n<body></html>").unwrap();
    let (code, _, err) = run(lloyd().arg("inspect").arg(&not_hl7));
    assert_eq!(code, 1);
    assert!(err.contains("inspect-not-hl7.xml"), "{err}");

    let bad_json = Path::new(env!("CARGO_TARGET_TMPDIR")).join("inspect-bad.json");
    std::fs::write(&bad_json, "{\"payload\": 3}").unwrap();
    let (code, _, err) = run(lloyd().arg("inspect").arg(&bad_json));
    assert_eq!(code, 1);
    assert!(err.contains("payload"), "{err}");
}
