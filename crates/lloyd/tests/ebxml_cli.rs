//! `lloyd ebxml inspect` and `lloyd ebxml extract`, run as a user would run them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Output;

fn lloyd(args: &[&str]) -> Output {
    common::lloyd().args(args).output().unwrap()
}

fn corpus(rel: &str) -> String {
    common::corpus().join(rel).display().to_string()
}

/// A temporary file holding `content`, removed when dropped.
struct Temp(PathBuf);

impl Temp {
    fn new(name: &str, content: &[u8]) -> Temp {
        let dir = std::env::temp_dir().join(format!("lloyd-ebxml-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        Temp(path)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A captured request: LF line ends, an unquoted `type`, a base64 attachment.
fn captured_request() -> Vec<u8> {
    let envelope = std::fs::read_to_string(corpus(
        "gp2gp/messages/illogicalmessage__COPC_IN000001UK01_ebxml.txt",
    ))
    .unwrap();
    let envelope = envelope.replace(
        "</eb:Manifest>",
        "<eb:Reference xlink:href=\"cid:att1@lloyd\"><eb:Description xml:lang=\"en\">Filename=\"scan.tif\" ContentType=image/tiff Compressed=No LargeAttachment=No OriginalBase64=No Length=4</eb:Description></eb:Reference><eb:Reference xlink:href=\"mid:OTHER-MESSAGE\"><eb:Description xml:lang=\"en\">Filename=\"big.pdf\" ContentType=application/pdf LargeAttachment=Yes DomainData=\"X-GP2GP-Skeleton: Yes\"</eb:Description></eb:Reference></eb:Manifest>",
    );
    format!(
        "POST /reliablemessaging/reliablerequest HTTP/1.1\n\
         Host: msg.example\n\
         Content-Type: multipart/related; boundary=\"--=_MIME-Boundary\"; type=text/xml; start=ebXMLHeader@spine.nhs.uk\n\
         \n\
         ----=_MIME-Boundary\n\
         Content-Id: <ebXMLHeader@spine.nhs.uk>\n\
         Content-Type: text/xml; charset=UTF-8\n\
         \n\
         {envelope}\n\
         ----=_MIME-Boundary\n\
         Content-Id: <3f35e4da-3faf-11e3-b10c-8bc15657569c@spine.nhs.uk>\n\
         Content-Type: application/xml; charset=UTF-8\n\
         \n\
         <COPC_IN000001UK01 xmlns=\"urn:hl7-org:v3\"/>\n\
         ----=_MIME-Boundary\n\
         Content-Id: <att1@lloyd>\n\
         Content-Type: image/tiff\n\
         Content-Transfer-Encoding: base64\n\
         \n\
         AAEC/w==\n\
         ----=_MIME-Boundary--\n"
    )
    .into_bytes()
}

#[test]
fn inspect_a_captured_request() {
    let f = Temp::new("request.txt", &captured_request());
    let out = lloyd(&["ebxml", "inspect", f.path()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["message_id"], "FA039330-7E63-446A-8CA4-E9E0D00DA6E8");
    assert_eq!(v["conversation_id"], "a023ef7e-be27-4a70-949a-38f7865e83bc");
    assert_eq!(v["ref_to_message_id"], serde_json::Value::Null);
    assert_eq!(v["from_party"], "RHM-803229");
    assert_eq!(v["to_party"], "RHM-801710");
    assert_eq!(v["cpa_id"], "S2030731A2137927");
    assert_eq!(v["service"], "urn:nhs:names:services:gp2gp");
    assert_eq!(v["action"], "COPC_IN000001UK01");
    assert_eq!(v["ack_requested"], false);
    assert_eq!(v["duplicate_elimination"], true);
    let manifest = v["manifest"].as_array().unwrap();
    assert_eq!(manifest.len(), 3);
    assert_eq!(manifest[0]["kind"], "cid");
    assert_eq!(manifest[0]["filename"], serde_json::Value::Null);
    assert_eq!(manifest[1]["href"], "cid:att1@lloyd");
    assert_eq!(manifest[1]["filename"], "scan.tif");
    assert_eq!(manifest[1]["content_type"], "image/tiff");
    assert_eq!(manifest[1]["compressed"], false);
    assert_eq!(manifest[1]["length"], 4);
    assert_eq!(manifest[2]["kind"], "mid");
    assert_eq!(manifest[2]["large_attachment"], true);
    assert_eq!(manifest[2]["domain_data"], "X-GP2GP-Skeleton: Yes");
    let parts = v["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0]["content_id"], "ebXMLHeader@spine.nhs.uk");
    assert_eq!(parts[1]["content_type"], "application/xml; charset=UTF-8");
    assert_eq!(parts[1]["length"], 43);
    assert_eq!(parts[2]["length"], 4);
}

#[test]
fn inspect_a_bare_envelope_from_the_corpus() {
    let out = lloyd(&[
        "ebxml",
        "inspect",
        &corpus("gp2gp/messages/illogicalmessage__MCCI_IN010000UK13_ebxml.txt"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["ref_to_message_id"],
        "332CCAAA-608F-4727-93E3-06C074CF8188"
    );
    assert_eq!(v["ack_requested"], true);
    assert_eq!(v["parts"].as_array().unwrap().len(), 1);
    assert_eq!(v["parts"][0]["content_id"], serde_json::Value::Null);
}

#[test]
fn extract_writes_each_part_decoded() {
    let f = Temp::new("request2.txt", &captured_request());
    let out = lloyd(&["ebxml", "extract", f.path(), "--part", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, vec![0u8, 1, 2, 255]);
    let out = lloyd(&["ebxml", "extract", f.path(), "--part", "1"]);
    assert_eq!(out.stdout, b"<COPC_IN000001UK01 xmlns=\"urn:hl7-org:v3\"/>");
    let out = lloyd(&["ebxml", "extract", f.path(), "--part", "0"]);
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("<eb:MessageHeader")
    );
}

#[test]
fn bad_input_names_the_file_and_the_problem() {
    let f = Temp::new("request3.txt", &captured_request());
    let out = lloyd(&["ebxml", "extract", f.path(), "--part", "7"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(f.path()) && err.contains("no part 7") && err.contains("3 part"),
        "{err}"
    );

    let cut = String::from_utf8(captured_request())
        .unwrap()
        .replace("----=_MIME-Boundary--\n", "");
    let g = Temp::new("cut.txt", cut.as_bytes());
    let out = lloyd(&["ebxml", "inspect", g.path()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(g.path()) && err.contains("closing delimiter"),
        "{err}"
    );

    let out = lloyd(&["ebxml", "inspect", "/nonexistent/file.txt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file.txt"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(lloyd(&["ebxml", "extract", "x"]).status.code(), Some(2));
    assert_eq!(
        lloyd(&["ebxml", "extract", "x", "--part", "one"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(lloyd(&["ebxml", "frobnicate"]).status.code(), Some(2));
}
