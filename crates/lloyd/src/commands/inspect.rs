//! `lloyd inspect FILE`: what a GP2GP message is, as JSON on stdout.
//!
//! The fields: `interaction_id`, `message_id`, `conversation_id` (from the ebXML header of
//! an MHS adaptor JSON message; null for a bare HL7 document), `nhs_number`, `from_ods`,
//! `to_ods`, `from_asid`, `to_asid`, `statements` (statement element name → count, at any
//! depth; null when the message is not an extract), `external_documents` (id, filename,
//! content type, size: from the extract's `referredToExternalDocument`s and the JSON's
//! attachments; null where unknown), `ack_type` and `reason_code` (acknowledgements, and a
//! COPC continue). A value the message does not carry is null.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use hl7v3::validate::Attachment;
use hl7v3::xml::{self, Element, LineIndex};
use hl7v3::{Message, MessageError};
use serde_json::{Value, json};

use super::validate::read_input;

/// Show what a GP2GP message is (ids, patient, practices, systems, contents) as JSON.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// HL7 V3 XML, or MHS adaptor JSON with a `payload`.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

pub fn run(args: Args) -> ExitCode {
    let shown = args.file.display();
    let input = match read_input(&args.file) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("lloyd inspect: {shown}: {e}");
            return ExitCode::from(1);
        }
    };
    let msg = match Message::parse(&input.hl7) {
        Ok(m) => m,
        Err(e) => {
            let at = match &e {
                MessageError::Xml(x) => x.offset().map(|o| {
                    let (l, c) = LineIndex::new(&input.hl7).line_col(o);
                    format!(" at {l}:{c}")
                }),
                _ => None,
            }
            .unwrap_or_default();
            let within = if input.json.is_some() {
                " of its \"payload\""
            } else {
                ""
            };
            eprintln!("lloyd inspect: {shown}: not a readable GP2GP message{at}{within}: {e}");
            return ExitCode::from(1);
        }
    };
    // The tree, for what the typed model keeps generic (external documents). It read
    // once already, so it reads again.
    let tree = xml::parse(&input.hl7).ok();
    let out = describe(
        &msg,
        tree.as_ref(),
        input.json.as_ref(),
        input.attachments.as_deref(),
    );
    match serde_json::to_string_pretty(&out) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lloyd inspect: {shown}: cannot write JSON: {e}");
            ExitCode::from(1)
        }
    }
}

fn describe(
    msg: &Message,
    tree: Option<&Element>,
    json: Option<&Value>,
    attachments: Option<&[Attachment]>,
) -> Value {
    let extract = msg.ehr_extract();
    let request = msg.ehr_request();
    let nhs_number = extract
        .and_then(|e| e.nhs_number())
        .or_else(|| request.and_then(|r| r.nhs_number()));
    let (from_ods, to_ods) = match (extract, request) {
        (Some(e), _) => (
            e.author
                .as_ref()
                .and_then(|a| a.agent_org_sds.as_ref())
                .and_then(|a| a.ods_code()),
            e.destination
                .as_ref()
                .and_then(|d| d.agent_org_sds.as_ref())
                .and_then(|a| a.ods_code()),
        ),
        (None, Some(r)) => (r.requesting_ods(), r.sending_ods()),
        _ => (None, None),
    };
    let statements = extract.map(|e| {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for s in e.statements() {
            *counts
                .entry(xml::local_name(s.element_name()).to_string())
                .or_default() += 1;
        }
        counts
    });
    let conversation_id = json
        .and_then(|j| j.get("ebXML"))
        .and_then(|e| e.as_str())
        .and_then(|e| element_text(e, "ConversationId"));
    json!({
        "interaction_id": msg.interaction_id(),
        "message_id": msg.message_id(),
        "conversation_id": conversation_id,
        "nhs_number": nhs_number,
        "from_ods": from_ods,
        "to_ods": to_ods,
        "from_asid": msg.from_asid(),
        "to_asid": msg.to_asid(),
        "statements": statements,
        "external_documents": external_documents(tree, attachments),
        "ack_type": msg.ack_type(),
        "reason_code": msg.reason_code(),
    })
}

/// The text of the first `<prefix:name>…</prefix:name>` (any prefix) in an ebXML header,
/// read leniently: the header is not checked, only searched.
fn element_text(xml: &str, name: &str) -> Option<String> {
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let tag_end = rest.find('>')?;
        let tag = &rest[..tag_end];
        let tag_name = tag.split_whitespace().next().unwrap_or("");
        if xml::local_name(tag_name) == name && !tag.ends_with('/') {
            let body = &rest[tag_end + 1..];
            let text = &body[..body.find('<')?];
            let text = text.trim();
            return (!text.is_empty()).then(|| text.to_string());
        }
    }
    None
}

/// External documents: the extract's references, completed from the attachment list
/// (content type, size); then attachments no reference names.
fn external_documents(tree: Option<&Element>, attachments: Option<&[Attachment]>) -> Value {
    let norm = |s: &str| s.trim().trim_start_matches('_').to_ascii_uppercase();
    let lower = |s: Option<&str>| s.map(str::to_ascii_lowercase);
    let mut docs: Vec<Attachment> = Vec::new();
    if let Some(root) = tree {
        root.walk(&mut |e, _| {
            if e.local_name() != "referredToExternalDocument" {
                return;
            }
            let text = e.child("text");
            docs.push(Attachment {
                id: e
                    .child("id")
                    .and_then(|i| i.attr("root"))
                    .map(str::to_owned),
                filename: text
                    .and_then(|t| t.child("reference"))
                    .and_then(|r| r.attr("value"))
                    .map(|v| v.rsplit('/').next().unwrap_or(v).to_owned()),
                content_type: text.and_then(|t| t.attr("mediaType")).map(str::to_owned),
                length: None,
            });
        });
    }
    let listed = attachments.unwrap_or(&[]);
    let mut used = vec![false; listed.len()];
    for d in &mut docs {
        let found = listed.iter().enumerate().find(|(_, a)| {
            (d.filename.is_some() && lower(a.filename.as_deref()) == lower(d.filename.as_deref()))
                || (d.id.is_some() && a.id.as_deref().map(norm) == d.id.as_deref().map(norm))
        });
        if let Some((i, a)) = found {
            if let Some(u) = used.get_mut(i) {
                *u = true;
            }
            if d.content_type.is_none() {
                d.content_type.clone_from(&a.content_type);
            }
            d.length = a.length;
        }
    }
    for (a, used) in listed.iter().zip(&used) {
        if !used {
            docs.push(a.clone());
        }
    }
    Value::Array(
        docs.into_iter()
            .map(|d| {
                json!({ "id": d.id, "filename": d.filename, "content_type": d.content_type, "size": d.length })
            })
            .collect(),
    )
}
