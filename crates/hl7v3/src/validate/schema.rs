//! Schema validation through libxml2, with compiled schemas cached.
//!
//! Only libxml2 validates the HL7 V3 MIM schema set correctly, so this module uses it,
//! through the `libxml` crate's safe API.
//!
//! # Threads
//!
//! libxml2's compiled schema and validation context are raw C objects; the `libxml` crate
//! makes them neither `Send` nor `Sync`, and a validation context must not be used by two
//! threads at once. So a [`Schemas`] value does not hold them itself: it is a small
//! `Send + Sync + Clone` handle (the schema directory), and each thread that validates
//! compiles the schema it needs once, on first use, and keeps it in a thread-local cache
//! keyed by directory and interaction. A long-running server therefore pays the compile
//! cost (a few milliseconds per interaction) once per worker thread, then validates with
//! no locking at all; memory is one compiled schema per interaction per thread that
//! validated that interaction. The cache lives as long as the thread.
//!
//! # What libxml2 sees
//!
//! Only documents that the hardened reader already accepted (no DOCTYPE, no entities,
//! UTF-8, within the limits), parsed with network access off (`XML_PARSE_NONET`), no
//! entity substitution, no DTD loading, no recovery, the encoding forced to UTF-8, and
//! libxml2's own size limits lifted (`XML_PARSE_HUGE`: our reader's limits apply instead,
//! so a large but legitimate text node is not refused by libxml2 alone).
//!
//! # Positions
//!
//! libxml2 reports a line for each schema error, not a column. The finding takes the
//! column of the start tag of the element the error names on that line, found in our own
//! tree. libxml2 2.9 stores lines above 65535 as 65535; such findings say so.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use libxml::error::{StructuredError, XmlErrorLevel};
use libxml::parser::{Parser, ParserOptions, XmlParseFailure};
use libxml::schemas::{SchemaParserContext, SchemaValidationContext};

use super::{Rule, Severity, Sink};
use crate::message::Interaction;
use crate::xml::Element;

/// The HL7 V3 schema set, by directory: `<dir>/schema/<interaction>.xsd` and what those
/// files include. Cheap to clone; `Send + Sync`; see the `validate::schema` module docs for how
/// compiled schemas are cached per thread.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schemas {
    dir: PathBuf,
}

/// The schema directory is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "schema directory {0}: not found, or has no schema/ folder (expected the HL7 V3 MIM schema set, e.g. schema/RCMR_IN030000UK06.xsd)"
    )]
    NotFound(PathBuf),
    #[error("schema {path}: could not be compiled: {message}")]
    Compile { path: PathBuf, message: String },
}

type Compiled = Result<Rc<RefCell<SchemaValidationContext>>, SchemaError>;

thread_local! {
    /// Compiled schemas of this thread, by (schema directory, interaction).
    static CACHE: RefCell<HashMap<(PathBuf, Interaction), Compiled>> = RefCell::new(HashMap::new());
}

impl Schemas {
    /// The schema set in `dir` (the folder holding `schema/`, `dt/`, `voc/`…). Checks
    /// that the folder is there; compiles nothing yet.
    pub fn new(dir: impl AsRef<Path>) -> Result<Schemas, SchemaError> {
        let dir = dir.as_ref();
        let canonical = dir
            .canonicalize()
            .map_err(|_| SchemaError::NotFound(dir.to_path_buf()))?;
        if !canonical.join("schema").is_dir() {
            return Err(SchemaError::NotFound(dir.to_path_buf()));
        }
        Ok(Schemas { dir: canonical })
    }

    /// The (canonical) schema directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The schema file of an interaction, where one is published.
    pub fn file(&self, interaction: Interaction) -> Option<PathBuf> {
        Some(self.dir.join("schema").join(interaction.schema_file()?))
    }

    /// Compiles every published schema now, on this thread, so that a configuration
    /// mistake shows at start-up rather than on the first message.
    pub fn preload(&self) -> Result<(), SchemaError> {
        for i in Interaction::ALL {
            if i.schema_file().is_some() {
                with_context(self, i, |_| ())?;
            }
        }
        Ok(())
    }
}

/// Runs `f` with this thread's compiled validation context for `interaction`.
fn with_context<R>(
    schemas: &Schemas,
    interaction: Interaction,
    f: impl FnOnce(&mut SchemaValidationContext) -> R,
) -> Result<R, SchemaError> {
    let key = (schemas.dir.clone(), interaction);
    let compiled = CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        cache
            .entry(key)
            .or_insert_with(|| compile(schemas, interaction))
            .clone()
    })?;
    // Each context is used by one validation at a time on this thread: nothing inside
    // libxml2's validation calls back into this module, so the borrow cannot clash.
    let mut ctx = compiled.borrow_mut();
    Ok(f(&mut ctx))
}

fn compile(schemas: &Schemas, interaction: Interaction) -> Compiled {
    let Some(path) = schemas.file(interaction) else {
        return Err(SchemaError::NotFound(schemas.dir.clone()));
    };
    let compile_error = |message: String| SchemaError::Compile {
        path: path.clone(),
        message,
    };
    if !path.is_file() {
        return Err(compile_error("the file is missing".into()));
    }
    // The libxml crate panics on a path with an interior NUL; a canonical path from the
    // file system has none, but refuse rather than trust that.
    let Some(path_str) = path.to_str().filter(|s| !s.contains('\0')) else {
        return Err(compile_error("the path is not valid UTF-8".into()));
    };
    let mut parser = SchemaParserContext::from_file(path_str);
    match SchemaValidationContext::from_parser(&mut parser) {
        Ok(ctx) => Ok(Rc::new(RefCell::new(ctx))),
        Err(errors) => Err(compile_error(
            errors
                .iter()
                .filter_map(|e| e.message.as_deref())
                .map(str::trim)
                .take(5)
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}

/// Validates `input` (already read into `root` by the hardened reader) against the schema
/// of `interaction`, adding findings to `sink`.
pub(super) fn check(
    schemas: &Schemas,
    interaction: Interaction,
    input: &[u8],
    root: &Element,
    sink: &mut Sink<'_>,
) {
    let options = ParserOptions {
        recover: false,
        no_def_dtd: true,
        no_error: true,
        no_warning: true,
        pedantic: false,
        no_blanks: false,
        no_net: true,
        no_implied: false,
        huge: true,
        compact: false,
        ignore_enc: false,
        encoding: Some("UTF-8"),
    };
    let doc = match Parser::default().parse_string_with_diagnostics(input, options) {
        Ok((doc, diagnostics)) => {
            if diagnostics.iter().any(is_error) {
                let tags = StartTags::new(sink, root);
                for d in diagnostics.iter().filter(|d| is_error(d)) {
                    report(
                        sink,
                        &tags,
                        d,
                        Rule::Xml,
                        "libxml2 could not read this part",
                    );
                }
            }
            doc
        }
        Err(failure) => {
            let message = match failure {
                XmlParseFailure::ParseFailed(diagnostics) if diagnostics.iter().any(is_error) => {
                    let tags = StartTags::new(sink, root);
                    for d in diagnostics.iter().filter(|d| is_error(d)) {
                        report(
                            sink,
                            &tags,
                            d,
                            Rule::Xml,
                            "libxml2 could not read this part",
                        );
                    }
                    return;
                }
                other => other.to_string(),
            };
            sink.at(
                None,
                Rule::Xml,
                Severity::Error,
                format!("libxml2 could not read the document for schema validation: {message}"),
            );
            return;
        }
    };
    let outcome = with_context(schemas, interaction, |ctx| ctx.validate_document(&doc));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(errors)) => {
            let tags = StartTags::new(sink, root);
            for e in errors.iter().filter(|e| is_error(e)) {
                report(
                    sink,
                    &tags,
                    e,
                    Rule::Schema,
                    "change the element so that it matches the schema",
                );
            }
        }
        Err(e) => sink.at(
            None,
            Rule::Schema,
            Severity::Error,
            format!("{e}; the document could not be checked against its schema: fix the schema directory"),
        ),
    }
}

fn is_error(e: &StructuredError) -> bool {
    matches!(e.level, XmlErrorLevel::Error | XmlErrorLevel::Fatal)
}

/// libxml2 reports lines above this as this.
const LIBXML_MAX_LINE: i32 = 65535;

fn report(sink: &mut Sink<'_>, tags: &StartTags<'_>, e: &StructuredError, rule: Rule, fix: &str) {
    let raw = e.message.as_deref().unwrap_or("no message").trim();
    let message = tidy(raw);
    let line = e.line.filter(|&l| l > 0);
    let (line, column, note) = match line {
        Some(l) => {
            let l = usize::try_from(l).unwrap_or(usize::MAX);
            let column = e
                .col
                .and_then(|c| usize::try_from(c).ok())
                .filter(|&c| c > 0)
                .unwrap_or_else(|| tags.column(l, raw));
            let note = if e.line == Some(LIBXML_MAX_LINE) {
                " (libxml2 reports every line from 65535 on as 65535: the problem is at or after this line)"
            } else {
                ""
            };
            (l, column, note)
        }
        None => (0, 0, ""),
    };
    let message = format!("{message}{note}; {fix}");
    sink.push(line, column, rule, Severity::Error, message);
}

/// libxml2 writes names as `{urn:hl7-org:v3}code`: the namespace is always HL7's in
/// these messages, so drop it for readability; and end without the trailing period so
/// the advice can follow.
fn tidy(message: &str) -> String {
    message
        .replace("{urn:hl7-org:v3}", "")
        .trim_end_matches('.')
        .to_string()
}

/// The local name of the element a libxml2 message starts with: `Element '{ns}code': …`.
fn element_named(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("Element '")?;
    let name = rest.split('\'').next()?;
    let name = name.rsplit_once('}').map_or(name, |(_, n)| n);
    // `Element 'x', attribute 'y'` → x.
    Some(name.split(',').next().unwrap_or(name))
}

/// Where each element of the tree starts: (line, column, element), in document order.
struct StartTags<'t>(Vec<(usize, usize, &'t Element)>);

impl<'t> StartTags<'t> {
    fn new(sink: &Sink<'_>, root: &'t Element) -> Self {
        let mut v = Vec::new();
        root.walk(&mut |e, _| {
            if e.pos.is_known() {
                let (l, c) = sink.line_col(e.pos.0);
                v.push((l, c, e));
            }
        });
        StartTags(v)
    }

    /// The column of the start tag on `line` of the element the libxml2 message names
    /// (best: same name and the attribute value it quotes; else same name; else the first
    /// element starting on that line; else 1), for a finding that only has a line.
    fn column(&self, line: usize, message: &str) -> usize {
        let name = element_named(message);
        let attr = attribute_named(message);
        let from = self.0.partition_point(|&(l, _, _)| l < line);
        let mut first = None;
        let mut named = None;
        for &(_, c, e) in self.0[from..].iter().take_while(|&&(l, _, _)| l == line) {
            first.get_or_insert(c);
            if Some(e.local_name()) != name {
                continue;
            }
            match attr {
                Some((a, v)) if e.attr(a) == Some(v) => return c,
                Some(_) => {
                    named.get_or_insert(c);
                }
                None => return c,
            }
        }
        named.or(first).unwrap_or(1)
    }
}

/// The attribute and value a libxml2 message quotes: `…, attribute 'root': 'x' is …`.
fn attribute_named(message: &str) -> Option<(&str, &str)> {
    let rest = &message[message.find("attribute '")? + "attribute '".len()..];
    let (name, rest) = rest.split_once("': '")?;
    let value = rest.split('\'').next()?;
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn schemas_is_send_and_sync() {
        _assert_send_sync::<Schemas>();
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        assert!(matches!(
            Schemas::new("/nonexistent/lloyd-schemas"),
            Err(SchemaError::NotFound(_))
        ));
    }

    #[test]
    fn element_names_come_out_of_libxml2_messages() {
        assert_eq!(
            element_named("Element '{urn:hl7-org:v3}code': This element is not expected."),
            Some("code")
        );
        assert_eq!(
            element_named("Element '{urn:hl7-org:v3}id', attribute 'root': bad"),
            Some("id")
        );
        assert_eq!(element_named("something else"), None);
        assert_eq!(
            attribute_named(
                "Element '{urn:hl7-org:v3}id', attribute 'root': '_8' is not a valid value"
            ),
            Some(("root", "_8"))
        );
    }
}
