//! `lloyd ebxml …`: look inside Spine ebXML messages.
//!
//! - `lloyd ebxml inspect FILE` prints the ebXML header, manifest and MIME parts as JSON.
//! - `lloyd ebxml extract FILE --part N` writes part N, decoded, to stdout (0 = the SOAP
//!   envelope, 1 = the HL7 payload, 2… = the attachments).
//!
//! FILE may be a captured HTTP request (request line and headers in front), a MIME body
//! (with or without its own headers), or a bare SOAP envelope (then it has one part). The
//! message is held to Spine's limits, so a file Spine would refuse is reported as such.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ebxml::{Limits, Message};
use serde_json::{Value, json};

/// Look inside Spine ebXML messages (captured HTTP requests, MIME bodies, SOAP envelopes).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Print the ebXML header, manifest and MIME parts as JSON.
    Inspect {
        /// A captured HTTP request, a MIME body, or a bare SOAP envelope.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Write one part, decoded, to stdout.
    Extract {
        /// A captured HTTP request, a MIME body, or a bare SOAP envelope.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The part: 0 = the SOAP envelope, 1 = the HL7 payload, 2 and on = attachments.
        #[arg(long, value_name = "N")]
        part: usize,
    },
}

pub fn run(args: Args) -> ExitCode {
    match args.command {
        Sub::Inspect { file } => finish(
            "inspect",
            &file,
            read(&file).and_then(|m| print_json(&inspect(&m))),
        ),
        Sub::Extract { file, part } => finish(
            "extract",
            &file,
            read(&file).and_then(|m| extract(&m, part)),
        ),
    }
}

fn finish(what: &str, file: &Path, outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lloyd ebxml {what}: {}: {e}", file.display());
            ExitCode::from(1)
        }
    }
}

fn read(file: &Path) -> Result<Message, String> {
    let limits = Limits::default();
    // Refuse a file far too big before reading it into memory.
    let size = std::fs::metadata(file)
        .map_err(|e| format!("cannot read the file: {e}"))?
        .len();
    if size > limits.max_message_bytes.saturating_mul(2) {
        return Err(ebxml::Error::MessageTooLarge {
            size,
            limit: limits.max_message_bytes,
        }
        .to_string());
    }
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read the file: {e}"))?;
    Message::parse_any(bytes, &limits).map_err(|e| format!("not a readable ebXML message: {e}"))
}

fn print_json(value: &Value) -> Result<(), String> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| format!("cannot write JSON: {e}"))?;
    println!("{text}");
    Ok(())
}

fn inspect(m: &Message) -> Value {
    let e = m.envelope();
    let h = &e.message_header;
    let manifest: Vec<Value> = e
        .manifest
        .iter()
        .flat_map(|m| &m.references)
        .map(|r| {
            let info = r.attachment();
            json!({
                "href": r.href.to_string(),
                "kind": r.href.kind(),
                "filename": info.and_then(|i| i.filename.clone()),
                "content_type": info.and_then(|i| i.content_type.clone()),
                "compressed": info.and_then(|i| i.compressed),
                "large_attachment": info.and_then(|i| i.large_attachment),
                "original_base64": info.and_then(|i| i.original_base64),
                "length": info.and_then(|i| i.length),
                "domain_data": info.and_then(|i| i.domain_data.clone()),
            })
        })
        .collect();
    let parts: Vec<Value> = m
        .parts()
        .iter()
        .map(|p| {
            json!({
                "content_id": p.content_id(),
                "content_type": p.content_type(),
                "length": p.decoded_len(),
            })
        })
        .collect();
    json!({
        "message_id": h.message_data.message_id,
        "conversation_id": h.conversation_id,
        "ref_to_message_id": h.message_data.ref_to_message_id,
        "from_party": h.from.id,
        "to_party": h.to.id,
        "cpa_id": h.cpa_id,
        "service": h.service,
        "action": h.action,
        "ack_requested": e.ack_requested.is_some(),
        "duplicate_elimination": h.duplicate_elimination,
        "manifest": manifest,
        "parts": parts,
    })
}

fn extract(m: &Message, n: usize) -> Result<(), String> {
    let part = m.parts().get(n).ok_or_else(|| {
        format!(
            "there is no part {n}: the message has {} part(s), numbered from 0 (0 = the SOAP envelope, 1 = the HL7 payload, 2 and on = attachments)",
            m.parts().len()
        )
    })?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    part.decode_into(&mut out).map_err(|e| e.to_string())?;
    out.flush()
        .map_err(|e| format!("cannot write to stdout: {e}"))
}
