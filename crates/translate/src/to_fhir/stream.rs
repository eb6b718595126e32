//! `EhrExtract` → Bundle JSON without holding either whole: [`extract_to_writer`].
//!
//! [`extract_to_bundle`](super::extract_to_bundle) needs the whole record as the typed
//! model (about five times the size of its XML) and builds the whole Bundle (about eight
//! times the size of its JSON) before a byte is written. Here the record is read twice,
//! and never held:
//!
//! 1. A scan of the document types only what the whole record must tell before any one
//!    statement is mapped — the header (extract id and time, NHS number, sending
//!    practice), the agent directory, and per composition the statements' ids and kinds,
//!    the `LinkSet`s and the medication supplies — into the [`Index`], and notes where each
//!    `ehrComposition` lies in the input.
//! 2. The compositions are then read one at a time (on a second thread, a few ahead of
//!    the one being mapped), mapped with the same code as the whole-record path, and
//!    their entries written out as JSON at once. The Conditions, which need every
//!    statement to have been mapped, come last.
//!
//! A record under [`WHOLE_BELOW`] goes through the whole-record path instead
//! ([`extract_to_writer`]; [`extract_to_writer_streaming`] always streams): for a small
//! record the scan and the reader thread cost more than they save.
//!
//! So memory holds the input, the index (ids and references, a few per cent of the
//! input), one or two compositions and a block of output. The output is byte for byte
//! what `fhir::to_vec` writes for the Bundle `extract_to_bundle` builds; a document not
//! shaped like an EhrExtract message (another interaction at the root, no EhrExtract
//! where the message puts it) is handed to the whole-record path, which knows what to say
//! about it.

use std::io::Write;
use std::ops::Range;
use std::sync::mpsc;

use fhir::BundleEntry;
use hl7v3::Message;
use hl7v3::datatypes::{II, TS};
use hl7v3::ehr::{EhrComposition, LinkSet, OrgAuthor, RecordTarget, ResponsibleParty, Supply};
use hl7v3::typed::FromXml;
use hl7v3::xml::{Ev, EventReader, Limits, XmlError};

use super::index::{StmtKind, StmtNode};
use super::{Ctx, Index, ToFhirOptions, bundle_id, bundle_shell, extract_to_bundle, ii_id, ii_key};
use crate::sink::Sink;
use crate::{Report, TranslateError};

/// How many batches of compositions may be read ahead of the one being mapped.
const READ_AHEAD: usize = 2;

/// How many compositions are handed over at once.
const READ_BATCH: usize = 8;

/// Translates an EhrExtract message (`RCMR_IN030000UK06` / `UK07`, as bytes) into a GP
/// Connect structured Bundle written to `out` as compact JSON, a composition at a time.
///
/// Writes exactly what [`extract_to_bundle`] followed by `fhir::to_vec` would, and returns
/// the same [`Report`]; memory holds the input and a small index rather than both models.
/// On an error nothing more is written, and what was written is incomplete.
///
/// A record under [`WHOLE_BELOW`] bytes (most real records, and every one of the
/// corpus) goes through the whole-record functions instead: streaming pays a fixed cost
/// per record (the scan before the compositions are read, a reader thread, buffers) that
/// only a large record repays, and a small record's models are small.
/// [`extract_to_writer_streaming`] streams whatever the size.
pub fn extract_to_writer<W: Write>(
    input: &[u8],
    out: W,
    options: &ToFhirOptions,
) -> Result<Report, TranslateError> {
    if input.len() < WHOLE_BELOW {
        return whole(input, out, options, &Limits::default());
    }
    extract_to_writer_streaming(input, out, options)
}

/// Records smaller than this (bytes of XML) are translated whole by [`extract_to_writer`]:
/// their models take up to fifteen times the input, 15 MB at most.
pub const WHOLE_BELOW: usize = 1_000_000;

/// [`extract_to_writer`] streaming whatever the size of the record: the same bytes and
/// report, memory bounded by a small multiple of the input even for a small record.
pub fn extract_to_writer_streaming<W: Write>(
    input: &[u8],
    out: W,
    options: &ToFhirOptions,
) -> Result<Report, TranslateError> {
    let limits = Limits::default();
    let Some(scanned) = scan(input, &limits).map_err(read_error)? else {
        return whole(input, out, options, &limits);
    };
    if !scanned.folder {
        return Err(TranslateError::NoFolder);
    }
    let nhs = scanned
        .nhs
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or(TranslateError::NoNhsNumber)?;

    let mut sink = Sink::new(out);
    let shell = fhir::to_vec(&bundle_shell(bundle_id(
        options,
        scanned.extract_id.as_ref(),
        nhs,
    )))
    .map_err(|e| TranslateError::Write(e.to_string()))?;
    // The shell ends with its closing brace; `entry` is its last member.
    sink.push(shell.strip_suffix(b"}").unwrap_or(&shell))?;
    let mut entries = EntryWriter::default();

    let mut ctx = Ctx::new(options, scanned.index, scanned.extract_time);
    ctx.patient(nhs, scanned.ods.as_deref());
    let agents = scanned
        .responsible_party
        .as_ref()
        .and_then(|r| r.agent_directory.as_deref())
        .map(|d| d.part.as_slice())
        .unwrap_or(&[]);
    ctx.agents(agents.iter().filter_map(|p| p.agent.as_deref()));
    entries.write(&mut sink, ctx.take_entries())?;

    let spans = scanned.compositions;
    std::thread::scope(|scope| -> Result<(), TranslateError> {
        let (tx, rx) = mpsc::sync_channel(READ_AHEAD);
        // Compositions go over in batches: waking the mapping for each one cost more than
        // it saved.
        let reader = scope.spawn(move || {
            let mut batch = Vec::with_capacity(READ_BATCH);
            for span in spans {
                let comp = read_composition(&input[span], &limits);
                let failed = comp.is_err();
                batch.push(comp);
                if batch.len() == READ_BATCH || failed {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(READ_BATCH));
                    if tx.send(full).is_err() || failed {
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
        });
        let mut result = Ok(());
        for (i, comp) in rx.iter().flatten().enumerate() {
            let comp = match comp {
                Ok(c) => c,
                Err(e) => {
                    result = Err(read_error(e));
                    break;
                }
            };
            ctx.index
                .capture_named(comp.component.iter().filter_map(|c| c.statement.as_ref()));
            ctx.composition(&comp, i);
            drop(comp);
            if let Err(e) = entries.write(&mut sink, ctx.take_entries()) {
                result = Err(e);
                break;
            }
        }
        drop(rx);
        if reader.join().is_err() {
            return Err(TranslateError::Invalid(
                "reading the compositions failed unexpectedly".to_owned(),
            ));
        }
        result
    })?;

    ctx.conditions();
    ctx.unmapped_leftovers();
    entries.write(&mut sink, ctx.take_entries())?;
    sink.push(if entries.any { b"]}" } else { b"}" })?;
    sink.finish()?;
    Ok(ctx.report)
}

/// The whole-record path, for documents the scan does not take.
fn whole<W: Write>(
    input: &[u8],
    out: W,
    options: &ToFhirOptions,
    limits: &Limits,
) -> Result<Report, TranslateError> {
    let message = Message::parse_with(input, limits).map_err(|e| read_error(e.to_string()))?;
    let (bundle, report) = extract_to_bundle(&message, options)?;
    drop(message);
    let mut sink = Sink::new(out);
    serde_json::to_writer(&mut sink.buf, &bundle)
        .map_err(|e| TranslateError::Write(e.to_string()))?;
    sink.finish()?;
    Ok(report)
}

fn read_error(e: impl ToString) -> TranslateError {
    TranslateError::Read(format!("the EhrExtract: {}", e.to_string()))
}

/// Writes entries into the Bundle's `entry` array.
#[derive(Default)]
struct EntryWriter {
    /// Whether an entry has been written (the array is opened before the first).
    any: bool,
}

impl EntryWriter {
    fn write<W: Write>(
        &mut self,
        sink: &mut Sink<W>,
        entries: Vec<BundleEntry>,
    ) -> Result<(), TranslateError> {
        for entry in entries {
            sink.buf
                .extend_from_slice(if self.any { b"," } else { b",\"entry\":[" });
            self.any = true;
            serde_json::to_writer(&mut sink.buf, &entry)
                .map_err(|e| TranslateError::Write(e.to_string()))?;
            sink.maybe_flush()?;
        }
        Ok(())
    }
}

/// One composition, read from its own bytes.
fn read_composition(bytes: &[u8], limits: &Limits) -> Result<EhrComposition, XmlError> {
    let mut r = EventReader::new(bytes, limits)?;
    let (start, empty, offset) = r.root_start()?;
    let comp = EhrComposition::from_events(&mut r, &start, empty, offset)?;
    r.expect_end()?;
    Ok(comp)
}

// ---------------------------------------------------------------------------
// the scan

/// What the scan learns.
struct Scanned {
    extract_id: Option<II>,
    /// `EhrExtract/availabilityTime/@value`.
    extract_time: Option<String>,
    nhs: Option<String>,
    /// The sending practice (the extract's author).
    ods: Option<String>,
    /// Whether the extract has a folder.
    folder: bool,
    /// The folder's `responsibleParty` (the agent directory).
    responsible_party: Option<ResponsibleParty>,
    /// Where each of the folder's compositions lies in the input.
    compositions: Vec<Range<usize>>,
    index: Index,
}

/// A statement as the scan sees it: its id and kind, and of its content only what the
/// index needs.
struct ScanStmt {
    key: Option<String>,
    kind: StmtKind,
    children: Vec<ScanStmt>,
    linkset: Option<Box<LinkSet>>,
    supplies: Vec<Supply>,
}

impl StmtNode for ScanStmt {
    fn key(&self) -> Option<String> {
        self.key.clone()
    }

    fn kind(&self) -> StmtKind {
        self.kind.clone()
    }

    fn children(&self) -> impl Iterator<Item = &Self> {
        self.children.iter()
    }

    fn linkset(&self) -> Option<&LinkSet> {
        self.linkset.as_deref()
    }

    fn supplies(&self) -> impl Iterator<Item = &Supply> {
        self.supplies.iter()
    }
}

/// The name of a start tag, as bytes (whatever type the reader gives it).
fn name_bytes<T: AsRef<[u8]> + ?Sized>(name: &T) -> &[u8] {
    name.as_ref()
}

/// The local part of a name in the HL7 namespace as the typed model reads it (unprefixed
/// or `hl7:`), or nothing for another prefix (see `hl7v3::typed::hl7_local`).
fn hl7_local(name: &[u8]) -> &[u8] {
    match name.iter().position(|&b| b == b':') {
        None => name,
        Some(3) if name.starts_with(b"hl7") => &name[4..],
        Some(_) => b"",
    }
}

const STATEMENTS: [&[u8]; 9] = [
    b"CompoundStatement",
    b"EhrEmpty",
    b"LinkSet",
    b"MedicationStatement",
    b"NarrativeStatement",
    b"ObservationStatement",
    b"PlanStatement",
    b"RegistrationStatement",
    b"RequestStatement",
];

const SUPPLIES: [&[u8]; 4] = [
    b"ehrSupplyAuthorise",
    b"ehrSupplyDiscontinue",
    b"ehrSupplyDispense",
    b"ehrSupplyPrescribe",
];

/// The next child element of the element being read (`None` at its end tag).
fn next_child<'a>(r: &mut EventReader<'a>) -> Result<Option<Ev<'a>>, XmlError> {
    loop {
        match r.next_event()? {
            ev @ Ev::Start(..) => return Ok(Some(ev)),
            Ev::End => return Ok(None),
            Ev::Text(_) | Ev::Comment(_) => {}
            Ev::Eof => {
                return Err(XmlError::Truncated {
                    open: String::new(),
                    offset: r.position(),
                });
            }
        }
    }
}

/// Reads past the element whose start tag was just read. With `attributes`, every start
/// tag's attributes are read (and so checked) as the typed reader would.
fn skip(r: &mut EventReader<'_>, ev: Ev<'_>, attributes: bool) -> Result<(), XmlError> {
    let Ev::Start(start, empty, offset) = ev else {
        return Ok(());
    };
    if attributes {
        r.attributes(&start, offset)?;
    }
    if empty {
        return Ok(());
    }
    let mut depth = 1usize;
    loop {
        match r.next_event()? {
            Ev::Start(s, empty, offset) => {
                if attributes {
                    r.attributes(&s, offset)?;
                }
                if !empty {
                    depth += 1;
                }
            }
            Ev::End => {
                depth -= 1;
                if depth == 0 {
                    return Ok(());
                }
            }
            Ev::Text(_) | Ev::Comment(_) => {}
            Ev::Eof => {
                return Err(XmlError::Truncated {
                    open: String::new(),
                    offset: r.position(),
                });
            }
        }
    }
}

/// Types the element whose start tag is `ev`.
fn typed<T: FromXml>(r: &mut EventReader<'_>, ev: Ev<'_>) -> Result<Option<T>, XmlError> {
    match ev {
        Ev::Start(start, empty, offset) => Ok(Some(T::from_events(r, &start, empty, offset)?)),
        _ => Ok(None),
    }
}

/// The HL7 local name of a start event, when it is one of the names the scan looks for
/// (empty otherwise).
fn local_of(ev: &Ev<'_>) -> &'static [u8] {
    let Ev::Start(s, ..) = ev else {
        return b"";
    };
    let name = s.name();
    match hl7_local(name_bytes(&name)) {
        b"ControlActEvent" => b"ControlActEvent",
        b"subject" => b"subject",
        b"EhrExtract" => b"EhrExtract",
        b"EhrRequest" => b"EhrRequest",
        b"PayloadInformation" => b"PayloadInformation",
        b"id" => b"id",
        b"availabilityTime" => b"availabilityTime",
        b"recordTarget" => b"recordTarget",
        b"author" => b"author",
        b"component" => b"component",
        b"ehrFolder" => b"ehrFolder",
        b"responsibleParty" => b"responsibleParty",
        b"ehrComposition" => b"ehrComposition",
        b"CompoundStatement" => b"CompoundStatement",
        b"EhrEmpty" => b"EhrEmpty",
        b"LinkSet" => b"LinkSet",
        b"MedicationStatement" => b"MedicationStatement",
        b"NarrativeStatement" => b"NarrativeStatement",
        b"ObservationStatement" => b"ObservationStatement",
        b"PlanStatement" => b"PlanStatement",
        b"RegistrationStatement" => b"RegistrationStatement",
        b"RequestStatement" => b"RequestStatement",
        b"ehrSupplyAuthorise" => b"ehrSupplyAuthorise",
        b"ehrSupplyDiscontinue" => b"ehrSupplyDiscontinue",
        b"ehrSupplyDispense" => b"ehrSupplyDispense",
        b"ehrSupplyPrescribe" => b"ehrSupplyPrescribe",
        _ => b"",
    }
}

/// Scans the document; `None` when it is not an EhrExtract message the scan can take.
fn scan(input: &[u8], limits: &Limits) -> Result<Option<Scanned>, XmlError> {
    let mut r = EventReader::new(input, limits)?;
    let (root, empty, offset) = r.root_start()?;
    let root_name = root.name();
    let root_name = name_bytes(&root_name);
    let local = root_name
        .iter()
        .rposition(|&b| b == b':')
        .map_or(root_name, |i| &root_name[i + 1..]);
    if !matches!(local, b"RCMR_IN030000UK06" | b"RCMR_IN030000UK07") || empty {
        return Ok(None);
    }
    // Transmission → ControlActEvent → subject → the payload.
    let found = first_child(
        &mut r,
        Ev::Start(root, empty, offset),
        &[b"ControlActEvent"],
        |r, ev| {
            first_child(r, ev, &[b"subject"], |r, ev| {
                // The payload is the first child that is one of the payload classes.
                first_child(
                    r,
                    ev,
                    &[b"EhrExtract", b"EhrRequest", b"PayloadInformation"],
                    |r, ev| {
                        if local_of(&ev) == b"EhrExtract" {
                            extract(r, ev, input).map(Some)
                        } else {
                            skip(r, ev, true).map(|()| None)
                        }
                    },
                )
            })
        },
    )?;
    r.expect_end()?;
    Ok(found.flatten().flatten().flatten())
}

/// Checks the attributes of the element `ev` starts, as the typed reader would; whether
/// it has content to read.
fn enter(r: &mut EventReader<'_>, ev: &Ev<'_>) -> Result<bool, XmlError> {
    match ev {
        Ev::Start(start, empty, offset) => {
            r.attributes(start, *offset)?;
            Ok(!*empty)
        }
        _ => Ok(false),
    }
}

/// Reads the element `ev` starts: its first child with one of `names` goes to `f`, the
/// rest is read past (as an `opt` or `choice` child of the typed model is read).
fn first_child<'a, T>(
    r: &mut EventReader<'a>,
    ev: Ev<'a>,
    names: &[&[u8]],
    f: impl FnOnce(&mut EventReader<'a>, Ev<'a>) -> Result<T, XmlError>,
) -> Result<Option<T>, XmlError> {
    let mut out = None;
    if !enter(r, &ev)? {
        return Ok(out);
    }
    let mut f = Some(f);
    while let Some(ev) = next_child(r)? {
        if names.contains(&local_of(&ev))
            && let Some(f) = f.take()
        {
            out = Some(f(r, ev)?);
        } else {
            skip(r, ev, true)?;
        }
    }
    Ok(out)
}

fn extract(r: &mut EventReader<'_>, ev: Ev<'_>, input: &[u8]) -> Result<Scanned, XmlError> {
    let mut s = Scanned {
        extract_id: None,
        extract_time: None,
        nhs: None,
        ods: None,
        folder: false,
        responsible_party: None,
        compositions: Vec::new(),
        index: Index::default(),
    };
    if !enter(r, &ev)? {
        return Ok(s);
    }
    let (mut id, mut time, mut target, mut author) = (false, false, false, false);
    while let Some(ev) = next_child(r)? {
        match local_of(&ev) {
            b"id" if !id => {
                id = true;
                s.extract_id = typed::<II>(r, ev)?;
            }
            b"availabilityTime" if !time => {
                time = true;
                s.extract_time = typed::<TS>(r, ev)?.and_then(|t| t.value);
            }
            b"recordTarget" if !target => {
                target = true;
                s.nhs = typed::<RecordTarget>(r, ev)?
                    .and_then(|t| t.patient)
                    .and_then(|p| p.id)
                    .and_then(|i| i.extension);
            }
            b"author" if !author => {
                author = true;
                s.ods = typed::<OrgAuthor>(r, ev)?
                    .and_then(|a| a.agent_org_sds)
                    .and_then(|a| a.ods_code().map(str::to_owned));
            }
            // The first `component` with an `ehrFolder` holds the record.
            b"component" => {
                first_child(r, ev, &[b"ehrFolder"], |r, ev| {
                    if s.folder {
                        return skip(r, ev, true);
                    }
                    s.folder = true;
                    folder(r, ev, input, &mut s)
                })?;
            }
            _ => skip(r, ev, true)?,
        }
    }
    s.index.finish();
    Ok(s)
}

fn folder(
    r: &mut EventReader<'_>,
    ev: Ev<'_>,
    input: &[u8],
    s: &mut Scanned,
) -> Result<(), XmlError> {
    if !enter(r, &ev)? {
        return Ok(());
    }
    let mut party = false;
    while let Some(ev) = next_child(r)? {
        match local_of(&ev) {
            b"responsibleParty" if !party => {
                party = true;
                s.responsible_party = typed::<ResponsibleParty>(r, ev)?;
            }
            // Each `component`: its first `ehrComposition`.
            b"component" => {
                first_child(r, ev, &[b"ehrComposition"], |r, ev| {
                    let from = match &ev {
                        Ev::Start(_, _, offset) => *offset as usize,
                        _ => 0,
                    };
                    let top = composition(r, ev)?;
                    s.index.add_composition(top.iter());
                    let to = (r.position() as usize).min(input.len());
                    s.compositions.push(from.min(to)..to);
                    Ok(())
                })?;
            }
            _ => skip(r, ev, true)?,
        }
    }
    Ok(())
}

/// An `ehrComposition`: its statements, as the index needs them.
fn composition(r: &mut EventReader<'_>, ev: Ev<'_>) -> Result<Vec<ScanStmt>, XmlError> {
    let mut top = Vec::new();
    if let Ev::Start(_, true, _) = ev {
        return Ok(top);
    }
    while let Some(ev) = next_child(r)? {
        if local_of(&ev) == b"component" {
            if let Some(s) = statement_component(r, ev)? {
                top.push(s);
            }
        } else {
            skip(r, ev, false)?;
        }
    }
    Ok(top)
}

/// A `component` holding a statement: its first child that is one.
fn statement_component(r: &mut EventReader<'_>, ev: Ev<'_>) -> Result<Option<ScanStmt>, XmlError> {
    let mut out = None;
    if let Ev::Start(_, true, _) = ev {
        return Ok(out);
    }
    while let Some(ev) = next_child(r)? {
        let local = local_of(&ev);
        if out.is_none() && STATEMENTS.contains(&local) {
            out = Some(statement(r, ev, local)?);
        } else {
            skip(r, ev, false)?;
        }
    }
    Ok(out)
}

fn statement(
    r: &mut EventReader<'_>,
    ev: Ev<'_>,
    kind: &'static [u8],
) -> Result<ScanStmt, XmlError> {
    let mut s = ScanStmt {
        key: None,
        kind: StmtKind::Other,
        children: Vec::new(),
        linkset: None,
        supplies: Vec::new(),
    };
    if kind == b"LinkSet" {
        if let Some(l) = typed::<LinkSet>(r, ev)? {
            s.key = l.id.as_deref().and_then(ii_key);
            s.kind = StmtKind::LinkSet(l.id.as_deref().and_then(ii_id));
            s.linkset = Some(Box::new(l));
        }
        return Ok(s);
    }
    if kind == b"ObservationStatement" {
        s.kind = StmtKind::Observation;
    }
    if let Ev::Start(_, true, _) = ev {
        return Ok(s);
    }
    let mut id_seen = false;
    while let Some(ev) = next_child(r)? {
        match local_of(&ev) {
            b"id" if !id_seen => {
                id_seen = true;
                s.key = typed::<II>(r, ev)?.as_ref().and_then(ii_key);
            }
            b"component" if kind == b"CompoundStatement" => {
                if let Some(c) = statement_component(r, ev)? {
                    s.children.push(c);
                }
            }
            b"component" if kind == b"MedicationStatement" => {
                if let Some(supply) = supply_component(r, ev)? {
                    s.supplies.push(supply);
                }
            }
            _ => skip(r, ev, false)?,
        }
    }
    Ok(s)
}

/// A medication statement's `component`: its first child that is a supply.
fn supply_component(r: &mut EventReader<'_>, ev: Ev<'_>) -> Result<Option<Supply>, XmlError> {
    let mut out = None;
    if let Ev::Start(_, true, _) = ev {
        return Ok(out);
    }
    while let Some(ev) = next_child(r)? {
        if out.is_none() && SUPPLIES.contains(&local_of(&ev)) {
            out = typed::<Supply>(r, ev)?;
        } else {
            skip(r, ev, false)?;
        }
    }
    Ok(out)
}
