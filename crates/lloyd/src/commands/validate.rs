//! `lloyd validate`: is each file a valid GP2GP message?
//!
//! ```text
//! lloyd validate [--schemas DIR] [--strict] FILE...
//! ```
//!
//! Each FILE is a bare HL7 V3 document, or an MHS adaptor JSON message whose `payload`
//! holds the HL7 document (and whose `attachments` / `external_attachments` are then the
//! documents the extract's external references must name). One line per file,
//! `PATH: ok (INTERACTION)` or `PATH: invalid`, then one indented line per finding,
//! `LINE:COL severity rule: message`. Exit status: 0 when every file is valid, 1 when any
//! is not (with `--strict`, when any has a warning), 2 for a usage error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hl7v3::validate::{Attachment, Options, Schemas, validate};

/// Validate GP2GP HL7 V3 messages: the HL7 V3 schemas and the rules they cannot express.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The HL7 V3 MIM schema directory (holding schema/, dt/, voc/); defaults to the
    /// LLOYD_SCHEMAS environment variable. Without either, only the rules are checked.
    #[arg(long, value_name = "DIR")]
    schemas: Option<PathBuf>,
    /// Count warnings as errors.
    #[arg(long)]
    strict: bool,
    /// Files to check: HL7 V3 XML, or MHS adaptor JSON with a `payload`.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// A file read for validation or inspection.
pub(crate) struct Input {
    /// The HL7 document.
    pub hl7: Vec<u8>,
    /// The MHS adaptor JSON the document came out of, when it did.
    pub json: Option<serde_json::Value>,
    /// The attachments the JSON lists (`attachments` and `external_attachments`), when it
    /// lists any key of them.
    pub attachments: Option<Vec<Attachment>>,
}

/// Reads a file as a bare HL7 document or an MHS adaptor JSON message. The error says
/// what is wrong, for a person.
pub(crate) fn read_input(path: &Path) -> Result<Input, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let start = bytes
        .strip_prefix("\u{feff}".as_bytes())
        .unwrap_or(&bytes)
        .iter()
        .find(|b| !b.is_ascii_whitespace());
    if start != Some(&b'{') {
        return Ok(Input {
            hl7: bytes,
            json: None,
            attachments: None,
        });
    }
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the file starts with '{{' but is not valid JSON: {e}"))?;
    let payload = json
        .get("payload")
        .and_then(|p| p.as_str())
        .ok_or("the JSON has no \"payload\" string: it is not an MHS adaptor message")?
        .as_bytes()
        .to_vec();
    let mut attachments = None;
    for key in ["attachments", "external_attachments"] {
        if let Some(list) = json.get(key).and_then(|v| v.as_array()) {
            let into: &mut Vec<Attachment> = attachments.get_or_insert_with(Vec::new);
            into.extend(list.iter().map(attachment_of));
        }
    }
    Ok(Input {
        hl7: payload,
        json: Some(json),
        attachments,
    })
}

/// One MHS adaptor attachment entry: `document_id`, `description` (the manifest's
/// `Filename="…" ContentType=… Length=…`), `content_type`, `title`.
pub(crate) fn attachment_of(v: &serde_json::Value) -> Attachment {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str());
    let mut a = Attachment::from_description(s("document_id"), s("description").unwrap_or(""));
    if a.content_type.is_none() {
        a.content_type = s("content_type").map(str::to_owned);
    }
    if a.filename.is_none() {
        a.filename = s("title").map(|t| t.trim_matches('"').to_owned());
    }
    a
}

pub fn run(args: Args) -> ExitCode {
    let dir = args
        .schemas
        .clone()
        .or_else(|| std::env::var_os("LLOYD_SCHEMAS").map(PathBuf::from));
    let schemas = match dir {
        Some(dir) => match Schemas::new(&dir).and_then(|s| s.preload().map(|()| s)) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("lloyd validate: {e}");
                return ExitCode::from(2);
            }
        },
        None => {
            eprintln!(
                "lloyd validate: no schema directory (--schemas DIR or LLOYD_SCHEMAS): checking the rules only, not the HL7 V3 schemas"
            );
            None
        }
    };
    let mut all_valid = true;
    for path in &args.files {
        let shown = path.display();
        let input = match read_input(path) {
            Ok(i) => i,
            Err(e) => {
                all_valid = false;
                println!("{shown}: invalid");
                println!("  0:0 error file: {e}");
                continue;
            }
        };
        let options = Options {
            strict: args.strict,
            attachments: input.attachments.clone(),
            ..Options::default()
        };
        let report = validate(&input.hl7, schemas.as_ref(), &options);
        let note = if input.json.is_some() {
            " [MHS JSON: line:column are within its \"payload\"]"
        } else {
            ""
        };
        all_valid &= report.valid;
        if report.valid {
            let id = report.interaction.map_or("unknown", |i| i.id());
            println!("{shown}: ok ({id}){note}");
        } else {
            println!("{shown}: invalid{note}");
        }
        for f in &report.findings {
            println!("  {f}");
        }
        if report.findings_left_off > 0 {
            println!("  ... and {} more findings", report.findings_left_off);
        }
    }
    if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
