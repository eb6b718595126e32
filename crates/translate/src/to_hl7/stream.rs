//! GP Connect Bundle JSON → EhrExtract XML without holding either model:
//! [`bundle_to_writer`].
//!
//! [`bundle_to_extract`](super::bundle_to_extract) takes a parsed Bundle (about eight times
//! the size of its JSON) and builds the whole message (about five times the size of its
//! XML) before it is written. Here:
//!
//! 1. The Bundle's JSON is split into its entries, each resource kept as its text, by a
//!    quick walk over the JSON's structure ([`super::json`]) that also notes where the
//!    members the prescan reads lie in each resource.
//! 2. Those members of each resource are read, on every core, for what the mapping must
//!    know of the whole Bundle before it maps anything (the [`Prescan`]: confidentiality,
//!    courses, consultation lists, comments by result, what reports and groups carry) —
//!    and the few kinds asked for throughout (practice, clinicians, locations, medicines)
//!    are parsed into the model and kept.
//! 3. The compositions are mapped with the same code as the whole-Bundle path, resources
//!    parsed into the model as the mapping asks for them ([`Store`]) — mostly ahead of it,
//!    on a helper thread ([`super::ahead`]) — and each composition's XML is made on a
//!    third thread as soon as the composition is mapped (a record under two megabytes is
//!    all done on one thread: see [`THREADS_FROM`]). The XML goes to memory, since the
//!    folder's header (written before the compositions) holds the earliest composition
//!    time, and a problem's links to statements not (yet) written must be pruned. Links to statements already written
//!    are kept as they are; a `LinkSet` with links still open is held back typed (it is
//!    small) and written in its place at the end.
//!
//! So memory holds the input, the output's text, and ids and references: about two and a
//! half times the input. The output is byte for byte what `bundle_to_extract` followed by
//! `Message::to_xml(Layout::Compact)` writes, and the report the same. Input the split does
//! not take as it is (an entry that is not an object, a member twice) goes to the
//! whole-Bundle path, which reads it, or says what is wrong with it.

use crate::hash::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, mpsc};

use fhir::{Bundle, BundleEntry, EntryIndex, Resource};
use hl7v3::ehr::{CompositionComponent, LinkSet, Statement};
use hl7v3::typed::ToXml;
use hl7v3::xml::{Element, Layout, Writer};

use super::ahead::{Ahead, StopOnDrop};
use super::facts::{Facts, Modelled, Picked};
use super::json::{self, Cursor};
use super::prescan::Prescan;
use super::store::{RawEntry, Store};
use super::{
    Ctx, Earliest, Header, ToHl7Options, bundle_to_extract, check_carried, collect_composition_ids,
    consultations, count_composition, map_compositions, message, prepare, problems,
};
use crate::sink::Sink;
use crate::{Report, TranslateError};

/// Translates a GP Connect structured record (the Bundle's JSON) into a GP2GP EhrExtract
/// message written to `out` as compact XML.
///
/// Writes exactly what [`bundle_to_extract`] followed by
/// `Message::to_xml(Layout::Compact)` would, and returns the same [`Report`]; memory holds
/// the input, the output and a small index rather than both models. Nothing is written
/// until the translation has succeeded.
pub fn bundle_to_writer<W: Write>(
    input: &[u8],
    out: W,
    options: &ToHl7Options,
) -> Result<Report, TranslateError> {
    let Some(split) = split(input) else {
        return whole(input, out, options);
    };
    // Each resource once, for the prescan (read quickly, not into the model, on as many
    // threads as there are cores); the kinds asked for throughout are parsed and kept.
    let Some(all_facts) = read_facts(&split.entries) else {
        return whole(input, out, options);
    };
    let mut prescan = Prescan::default();
    let mut index = EntryIndex::new();
    let mut kept = HashMap::default();
    let mut entries = Vec::with_capacity(split.entries.len());
    let shell = split.shell;
    for (pos, (entry, read)) in split.entries.into_iter().zip(all_facts).enumerate() {
        let (Some(raw), Some((facts, resource))) = (entry.resource, read) else {
            index.add(pos, None, entry.full_url.as_deref());
            entries.push(None);
            continue;
        };
        if let Some(resource) = resource {
            kept.insert(pos, Arc::new(resource));
        }
        index.add(
            pos,
            facts
                .id
                .as_deref()
                .map(|id| (facts.resource_type.as_str(), id)),
            entry.full_url.as_deref(),
        );
        entries.push(Some(RawEntry {
            resource: raw,
            resource_type: facts.resource_type.clone(),
            id: facts.id.clone(),
        }));
        prescan.observe(pos, facts);
    }
    let store = Store::lazy(entries, index, kept);
    let header = Header {
        bundle_id: shell.id.clone(),
        last_updated: shell.meta.as_ref().and_then(|m| m.last_updated.clone()),
    };
    drop(shell);
    let (mut ctx, parties) = prepare(store, prescan, &header, options)?;

    let mut writer = if input.len() < THREADS_FROM {
        // A small record: starting threads and handing work between them costs more than
        // it saves.
        let mut writer = CompositionWriter::default();
        map_compositions(&mut ctx, &mut |_, c| writer.add(c));
        writer
    } else {
        map_on_threads(&mut ctx)?
    };
    for (kind, n) in std::mem::take(&mut writer.counts.output) {
        *ctx.report.output.entry(kind).or_default() += n;
    }
    // Every resource must read into the model, as it would in the whole-Bundle path: the
    // ones the mapping did not ask for are read now.
    if ctx.store.failed() || !ctx.store.all_parse() {
        return whole(input, out, options);
    }
    writer.prune_held(&mut ctx);
    check_carried(&mut ctx, &writer.ids);
    if writer.count == 0 {
        let c = consultations::empty_record_composition(&mut ctx, &parties.creation_time);
        writer.add(c);
        for (kind, n) in std::mem::take(&mut writer.counts.output) {
            *ctx.report.output.entry(kind).or_default() += n;
        }
    }

    // The message around the compositions, cut where they go.
    let marker = CompositionComponent {
        type_code: Some(MARKER.to_owned()),
        ..CompositionComponent::default()
    };
    let skeleton = message(
        &mut ctx,
        &parties,
        options,
        vec![marker],
        writer.earliest.0.take(),
    )
    .to_xml(Layout::Compact);
    let cut = format!("<component typeCode=\"{MARKER}\"/>");
    let Some(at) = skeleton.find(&cut) else {
        return Err(TranslateError::Invalid(
            "the message could not be assembled around its compositions".to_owned(),
        ));
    };
    let mut sink = Sink::new(out);
    sink.push(&skeleton.as_bytes()[..at])?;
    writer.write(&mut sink)?;
    sink.push(&skeleton.as_bytes()[at + cut.len()..])?;
    sink.finish()?;
    Ok(ctx.report)
}

/// A resource's facts, and the resource parsed if it is of a kind kept.
type Read = (Facts, Option<Resource>);

/// What the prescan takes from each entry's resource, and the resource itself if it is of
/// a kind kept parsed, read on as many threads as there are cores (at most four); `None`
/// when a resource is not one the quick reading is sure of.
fn read_facts(entries: &[SplitEntry<'_>]) -> Option<Vec<Option<Read>>> {
    let threads = if entries.len() < 4096 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4))
    };
    let chunk = entries.len().div_ceil(threads).max(1);
    let read_part = |part: &[SplitEntry<'_>]| -> Option<Vec<Option<Read>>> {
        let mut modelled = Modelled::default();
        part.iter()
            .map(|e| match (e.resource, &e.picked) {
                (None, _) => Some(None),
                (Some(raw), Some(picked)) => read_one(raw, picked, &mut modelled).map(Some),
                // A resource that is not an object: for the whole-Bundle path to refuse.
                (Some(_), None) => None,
            })
            .collect()
    };
    std::thread::scope(|scope| {
        let mut parts = entries.chunks(chunk);
        let first = parts.next().unwrap_or_default();
        let others: Vec<_> = parts
            .map(|part| scope.spawn(move || read_part(part)))
            .collect();
        let mut all = read_part(first)?;
        all.reserve(entries.len().saturating_sub(all.len()));
        for h in others {
            all.extend(h.join().ok()??);
        }
        Some(all)
    })
}

/// One resource's facts, and the resource parsed if it is of a kind kept.
fn read_one(json: &str, picked: &Picked<'_>, modelled: &mut Modelled) -> Option<Read> {
    let facts = Facts::read(picked, modelled).ok()?;
    if !Store::keeps(&facts.resource_type) {
        return Some((facts, None));
    }
    let resource = serde_json::from_str::<Resource>(json).ok()?;
    Some((Facts::of(&resource), Some(resource)))
}

/// Mapping here, writing the compositions' text on a second thread, and parsing the
/// resources ahead of the mapping on a third.
fn map_on_threads(ctx: &mut Ctx<'_>) -> Result<CompositionWriter, TranslateError> {
    let texts = ctx.store.texts();
    let ahead = Ahead::new();
    ahead.plan(
        (0..texts.len())
            .filter(|&p| ctx.store.resource_type(p).is_some_and(|t| !Store::keeps(t)))
            .collect(),
    );
    std::thread::scope(|scope| {
        let helper = ahead.clone();
        let texts = &texts;
        scope.spawn(move || helper.run(texts));
        let stop = StopOnDrop(ahead.clone());
        ctx.store.attach(Some(ahead.clone()));
        let (tx, rx) = mpsc::sync_channel::<Vec<CompositionComponent>>(WRITE_AHEAD);
        let writing = scope.spawn(move || {
            let mut writer = CompositionWriter::default();
            for batch in rx {
                for c in batch {
                    writer.add(c);
                }
            }
            writer
        });
        // Compositions go over in batches: waking the writer for each one cost the mapping
        // more than it saved.
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        map_compositions(ctx, &mut |_, c| {
            batch.push(c);
            if batch.len() == WRITE_BATCH {
                // The writer stops only if it panicked, which `join` reports.
                let _ = tx.send(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(WRITE_BATCH),
                ));
            }
        });
        if !batch.is_empty() {
            let _ = tx.send(batch);
        }
        drop(tx);
        ctx.store.attach(None);
        drop(stop);
        writing.join()
    })
    .map_err(|_| TranslateError::Invalid("writing the compositions failed unexpectedly".to_owned()))
}

/// Records smaller than this (bytes of JSON) are translated on one thread. The corpus
/// bundles (0.25–1.3 MB) and most real records are below it; the tests' synthetic bundles
/// of 3 and 12 MB above.
const THREADS_FROM: usize = 2_000_000;

/// How many batches of compositions may wait to be written while the next are mapped.
const WRITE_AHEAD: usize = 4;

/// How many compositions are handed to the writer at once.
const WRITE_BATCH: usize = 16;

/// Stands where the compositions go in the message written without them.
const MARKER: &str = "lloyd-compositions";
/// Stands where a held-back LinkSet goes in a composition's text.
const HELD: &str = "lloyd-held-linkset";

/// The whole-Bundle path, for input the split does not take.
fn whole<W: Write>(input: &[u8], out: W, options: &ToHl7Options) -> Result<Report, TranslateError> {
    let bundle: Bundle =
        fhir::from_slice(input).map_err(|e| TranslateError::Read(e.to_string()))?;
    let (message, report) = bundle_to_extract(&bundle, options)?;
    drop(bundle);
    let mut sink = Sink::new(out);
    sink.push(message.to_xml(Layout::Compact).as_bytes())?;
    sink.finish()?;
    Ok(report)
}

/// Compositions as they are made: written to text at once, their statement ids, counts
/// and times noted, LinkSets with links still open held back.
#[derive(Default)]
struct CompositionWriter {
    /// The compositions' text, in blocks of fixed size (one growing buffer would at times
    /// hold twice the output; a piece per composition would scatter it among the mapping's
    /// short-lived allocations).
    blocks: Vec<Vec<u8>>,
    /// The text and the held LinkSets, in order.
    pieces: Vec<Piece>,
    /// The id (root) of every statement written.
    ids: HashSet<String>,
    count: usize,
    /// What was written, counted (only `output` is used).
    counts: Report,
    earliest: Earliest,
}

enum Piece {
    /// `blocks[block][from..to]`.
    Text {
        block: usize,
        from: usize,
        to: usize,
    },
    Held(Box<LinkSet>),
}

/// The size of a block of text.
const BLOCK: usize = 1 << 20;

impl CompositionWriter {
    fn add(&mut self, mut c: CompositionComponent) {
        self.count += 1;
        count_composition(&c, &mut self.counts);
        collect_composition_ids(&c, &mut self.ids);
        self.earliest.add(&c);
        // LinkSets whose every link is to a statement already written cannot lose a link;
        // the others wait for the end, a placeholder in their place.
        let mut held = Vec::new();
        if let Some(comp) = c.ehr_composition.as_mut() {
            let mut stack: Vec<&mut Statement> = comp
                .component
                .iter_mut()
                .rev()
                .filter_map(|sc| sc.statement.as_mut())
                .collect();
            while let Some(s) = stack.pop() {
                match s {
                    Statement::LinkSet(l) if !links_written(l, &self.ids) => {
                        let l = std::mem::replace(s, Statement::Other(Element::new(HELD)));
                        if let Statement::LinkSet(l) = l {
                            held.push(*l);
                        }
                    }
                    Statement::CompoundStatement(cs) => stack.extend(
                        cs.component
                            .iter_mut()
                            .rev()
                            .filter_map(|sc| sc.statement.as_mut()),
                    ),
                    _ => {}
                }
            }
        }
        let mut w = Writer::fragment(Layout::Compact);
        c.write_xml("component", &mut w);
        drop(c);
        let text = w.finish();
        let hole = format!("<{HELD}/>");
        let mut rest = text.as_str();
        for l in held {
            if let Some(i) = rest.find(&hole) {
                self.text(&rest[..i]);
                rest = &rest[i + hole.len()..];
            }
            self.pieces.push(Piece::Held(Box::new(l)));
        }
        self.text(rest);
    }

    /// Keeps a piece of text.
    fn text(&mut self, t: &str) {
        let fits = self
            .blocks
            .last()
            .is_some_and(|b| b.capacity() - b.len() >= t.len());
        if !fits {
            self.blocks.push(Vec::with_capacity(BLOCK.max(t.len())));
        }
        let block = self.blocks.len() - 1;
        let Some(b) = self.blocks.last_mut() else {
            return;
        };
        let from = b.len();
        b.extend_from_slice(t.as_bytes());
        let to = b.len();
        match self.pieces.last_mut() {
            Some(Piece::Text {
                block: last,
                to: end,
                ..
            }) if *last == block && *end == from => *end = to,
            _ => self.pieces.push(Piece::Text { block, from, to }),
        }
    }

    /// Drops the held LinkSets' links to statements that were never written, with a report
    /// line for each, as `problems::prune_links` does.
    fn prune_held(&mut self, ctx: &mut Ctx<'_>) {
        let mut dropped = Vec::new();
        for piece in &mut self.pieces {
            if let Piece::Held(l) = piece {
                let mut s = Statement::LinkSet(std::mem::take(l));
                problems::prune(&mut s, &self.ids, &mut dropped);
                if let Statement::LinkSet(pruned) = s {
                    *l = pruned;
                }
            }
        }
        problems::report_dropped(ctx, dropped);
    }

    /// Writes the compositions, each held LinkSet in its place.
    fn write<W: Write>(self, sink: &mut Sink<W>) -> Result<(), TranslateError> {
        for piece in self.pieces {
            match piece {
                Piece::Text { block, from, to } => {
                    if let Some(t) = self.blocks.get(block).and_then(|b| b.get(from..to)) {
                        sink.push(t)?;
                    }
                }
                Piece::Held(l) => {
                    let mut w = Writer::fragment(Layout::Compact);
                    Statement::LinkSet(l).write_xml("LinkSet", &mut w);
                    sink.push(w.finish().as_bytes())?;
                }
            }
        }
        Ok(())
    }
}

/// Whether every statement a LinkSet links to is in `ids`.
fn links_written(l: &LinkSet, ids: &HashSet<String>) -> bool {
    l.component.iter().all(|c| {
        let target = c
            .statement_ref
            .as_ref()
            .and_then(|r| r.id.as_ref())
            .and_then(|i| i.root.as_deref())
            .unwrap_or_default();
        ids.contains(target)
    })
}

// ---------------------------------------------------------------------------
// the split

/// A Bundle split into its entries, resources as text.
struct Split<'a> {
    /// The Bundle without its entries.
    shell: Bundle,
    entries: Vec<SplitEntry<'a>>,
}

struct SplitEntry<'a> {
    /// The resource's JSON (`None` without one, or with `"resource": null`).
    resource: Option<&'a str>,
    /// The members of the resource the prescan reads (`None` if it is not an object).
    picked: Option<Picked<'a>>,
    full_url: Option<String>,
}

/// Splits the Bundle, reading everything but the resources as the model does; `None`
/// when the JSON is not a Bundle the split can take as it is. The resources are found by
/// [`Cursor`], and read by `serde_json` later.
fn split(input: &[u8]) -> Option<Split<'_>> {
    let text = std::str::from_utf8(input).ok()?;
    let mut c = Cursor::new(text);
    let mut members: Vec<(&str, &str)> = Vec::new();
    let mut entries = None;
    json::object(&mut c, |key, c| {
        if key == "entry" {
            entries = Some(split_entries(c)?);
        } else {
            members.push((key, c.value()?));
        }
        Some(())
    })?;
    c.end()?;
    let shell: Bundle = fhir::from_str(&object_text(&members)).ok()?;
    Some(Split {
        shell,
        entries: entries.unwrap_or_default(),
    })
}

/// The entries of `Bundle.entry` (which must be an array of objects).
fn split_entries<'a>(c: &mut Cursor<'a>) -> Option<Vec<SplitEntry<'a>>> {
    c.expect(b'[')?;
    let mut out = Vec::new();
    let mut first = true;
    while c.more(first, b']')? {
        first = false;
        let mut resource = None;
        let mut picked = None;
        let mut rest: Vec<(&str, &str)> = Vec::new();
        json::object(c, |key, c| {
            if key == "resource" {
                resource = Some(resource_value(c, &mut picked)?);
            } else {
                rest.push((key, c.value()?));
            }
            Some(())
        })?;
        // `"resource": null` is no resource, as the model reads it.
        let resource = resource.filter(|r| *r != "null");
        let full_url = if rest.is_empty() {
            None
        } else {
            let entry: BundleEntry = fhir::from_str(&object_text(&rest)).ok()?;
            entry.full_url
        };
        out.push(SplitEntry {
            resource,
            picked,
            full_url,
        });
    }
    Some(out)
}

/// An entry's `resource`: its text, and if it is an object the members the prescan reads
/// (noted while walking it, so that the resource is walked once).
fn resource_value<'a>(c: &mut Cursor<'a>, picked: &mut Option<Picked<'a>>) -> Option<&'a str> {
    if !c.at_object() {
        return c.value();
    }
    let start = c.here();
    let mut p = Picked::default();
    json::object(c, |key, c| {
        p.note(key, c.value()?);
        Some(())
    })?;
    *picked = Some(p);
    c.since(start)
}

/// The JSON text of an object with these members (keys as written, without escapes).
fn object_text(members: &[(&str, &str)]) -> String {
    let mut text = String::from("{");
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push('"');
        text.push_str(k);
        text.push_str("\":");
        text.push_str(v);
    }
    text.push('}');
    text
}
