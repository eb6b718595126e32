//! The requester puts a record together from the copies it kept, one document at a time.
//!
//! A document is decoded piece by piece (a fragment message at a time) straight into a
//! file of the payload store ([`super::stored::document_key`]), so a record with 120 MB
//! documents is put together holding one fragment in memory, not every fragment plus the
//! document. Only a compressed document (decompressed whole, within
//! [`large::MAX_DOCUMENT_BYTES`]) and the skeleton's compressed extract are held in memory.
//! The result is the same as [`large::assemble`]'s, which the tests compare it with.

use store::{PayloadStore, PayloadWriter};

use super::stored::{self, Received};
use super::{ArrivedDocument, DriverError};
use crate::MessageId;
use crate::large::{self, Decoder, Joining, LargeError, Piece};
use crate::requester::ExpectedDocument;
use crate::wire::ReceivedPart;

/// A record put together: the whole extract and its documents (in the payload store).
pub(super) struct Whole {
    pub extract_xml: String,
    pub documents: Vec<ArrivedDocument>,
}

/// Where a document's decoded content goes.
enum Sink {
    Memory(Vec<u8>),
    Store(PayloadWriter),
}

impl Sink {
    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), DriverError> {
        match self {
            Sink::Memory(v) if v.is_empty() => {
                *v = bytes;
                Ok(())
            }
            Sink::Memory(v) => {
                v.extend_from_slice(&bytes);
                Ok(())
            }
            Sink::Store(w) => Ok(w.write_vec(bytes).await?),
        }
    }

    async fn abort(self) {
        if let Sink::Store(w) = self
            && let Err(e) = w.abort().await
        {
            tracing::debug!(error = %e, "could not remove a half-written document");
        }
    }
}

/// What a document's pieces are: the parts of one message, or a fragment index.
enum Source<'a> {
    Parts(Vec<ReceivedPart>),
    Fragments {
        doc: &'a ExpectedDocument,
        /// The index message's own inline parts, by position.
        inline: Vec<ReceivedPart>,
        fragments: Vec<String>,
    },
}

/// A document put together: in memory (`Some`) or in the store, its size, and its
/// document id.
type Made = (Option<Vec<u8>>, u64, Option<String>);

/// Everything received → the whole extract and its documents; `Ok(Err(_))` when the
/// pieces do not make the record (the error carries the code to NACK with).
pub(super) async fn assemble(
    payloads: &PayloadStore,
    conv: &str,
    extract_message_id: &MessageId,
    extract: &Received,
) -> Result<Result<Whole, LargeError>, DriverError> {
    let extract_xml = match std::str::from_utf8(&extract.hl7) {
        Ok(x) => x.to_string(),
        Err(e) => {
            return Ok(Err(LargeError::BadExtract(format!(
                "the extract is not UTF-8: {e}"
            ))));
        }
    };
    let mut gathered = Gathered::default();
    let mut index = 0usize;
    let mut key = || {
        let k = stored::document_key(conv, extract_message_id.as_str(), index);
        index += 1;
        k
    };
    for part in &extract.parts {
        let name = part
            .filename
            .clone()
            .unwrap_or_else(|| part.content_id.clone());
        let source = Source::Parts(vec![part.clone()]);
        let how = (
            part.compressed,
            part.is_skeleton(),
            part.content_type.as_str(),
        );
        match one_document(payloads, conv, &name, source, how, &mut key).await? {
            Ok(found) => gathered.take(found),
            Err(e) => return Ok(Err(e)),
        }
    }
    for doc in &extract.documents {
        let source = if doc.large {
            // The index message, kept with its list of fragments.
            let index = stored::get_received(payloads, conv, doc.message_id.as_str()).await?;
            let Some((fragments, mut inline)) = index.and_then(|i| Some((i.fragments?, i.parts)))
            else {
                return Ok(Err(LargeError::MissingIndex {
                    message_id: doc.message_id.clone(),
                    filename: doc.filename.clone(),
                }));
            };
            inline.sort_by_key(|p| p.position);
            Source::Fragments {
                doc,
                inline,
                fragments,
            }
        } else {
            let parts = stored::get_received(payloads, conv, doc.message_id.as_str())
                .await?
                .map(|r| r.parts)
                .unwrap_or_default();
            if parts.is_empty() {
                return Ok(Err(LargeError::MissingDocument {
                    message_id: doc.message_id.clone(),
                    filename: doc.filename.clone(),
                }));
            }
            Source::Parts(parts)
        };
        let how = (doc.compressed, doc.skeleton, doc.content_type.as_str());
        match one_document(payloads, conv, &doc.filename, source, how, &mut key).await? {
            Ok(found) => gathered.take(found),
            Err(e) => return Ok(Err(e)),
        }
    }
    let Gathered {
        documents,
        skeleton,
    } = gathered;
    let extract_xml = match skeleton {
        Some((bytes, filename, document_id)) => {
            match large::merge_skeleton(&extract_xml, &bytes, &filename, document_id.as_deref()) {
                Ok(x) => x,
                Err(e) => return Ok(Err(e)),
            }
        }
        None => extract_xml,
    };
    Ok(Ok(Whole {
        extract_xml,
        documents,
    }))
}

enum Finished {
    Skeleton((Vec<u8>, String, Option<String>)),
    Stored(ArrivedDocument),
}

/// The documents put together so far, and the skeleton's extract once found.
#[derive(Default)]
struct Gathered {
    documents: Vec<ArrivedDocument>,
    skeleton: Option<(Vec<u8>, String, Option<String>)>,
}

impl Gathered {
    fn take(&mut self, found: Finished) {
        match found {
            Finished::Skeleton(s) => self.skeleton = Some(s),
            Finished::Stored(d) => self.documents.push(d),
        }
    }
}

/// One document — an inline part of the extract, or one that came in messages of its
/// own — put together and finished. `how` is whether it is compressed, whether it is the
/// skeleton's extract, and its content type. Only a compressed document or the
/// skeleton's extract is put together in memory; any other goes straight to the store
/// under the next key.
async fn one_document(
    payloads: &PayloadStore,
    conv: &str,
    filename: &str,
    source: Source<'_>,
    (compressed, skeleton, content_type): (bool, bool, &str),
    key: &mut (dyn FnMut() -> String + Send),
) -> Result<Result<Finished, LargeError>, DriverError> {
    let target = (!(compressed || skeleton)).then(&mut *key);
    let made = match put_together(payloads, conv, filename, source, target.as_deref()).await? {
        Ok(m) => m,
        Err(e) => return Ok(Err(e)),
    };
    // The id the pieces carry: for an inline part, the part's own.
    let document_id = made.2.clone();
    let found = finish(
        payloads,
        made,
        filename,
        compressed,
        skeleton,
        document_id,
        key,
        target,
    )
    .await?;
    Ok(found.map(|f| match f {
        Finished::Stored(d) => Finished::Stored(ArrivedDocument {
            content_type: content_type.to_string(),
            ..d
        }),
        skeleton => skeleton,
    }))
}

/// A document's content once decoded: decompressed, kept as the skeleton's extract, or
/// stored.
#[allow(clippy::too_many_arguments)]
async fn finish(
    payloads: &PayloadStore,
    made: Made,
    filename: &str,
    compressed: bool,
    skeleton: bool,
    document_id: Option<String>,
    key: &mut (dyn FnMut() -> String + Send),
    stored_at: Option<String>,
) -> Result<Result<Finished, LargeError>, DriverError> {
    let (bytes, size, _) = made;
    let arrived = |key: String, size: u64| ArrivedDocument {
        document_id: document_id.clone(),
        filename: filename.to_string(),
        content_type: String::new(),
        key,
        size,
    };
    let Some(mut bytes) = bytes else {
        let key = stored_at
            .ok_or_else(|| DriverError::Internal("a stored document has no key".to_string()))?;
        return Ok(Ok(Finished::Stored(arrived(key, size))));
    };
    if compressed {
        bytes = match large::gunzip(&bytes, filename) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
    }
    if skeleton {
        return Ok(Ok(Finished::Skeleton((
            bytes,
            filename.to_string(),
            document_id,
        ))));
    }
    let key = key();
    let size = bytes.len() as u64;
    payloads.put(&key, bytes.into()).await?;
    Ok(Ok(Finished::Stored(arrived(key, size))))
}

/// Decodes a document's pieces in order into memory (`target` `None`) or the store: as
/// one base64 text first, then piece by piece if that fails (see [`Decoder`]).
async fn put_together(
    payloads: &PayloadStore,
    conv: &str,
    filename: &str,
    source: Source<'_>,
    target: Option<&str>,
) -> Result<Result<Made, LargeError>, DriverError> {
    let order = match &source {
        Source::Parts(parts) => (0..parts.len()).map(Piece::Inline).collect(),
        Source::Fragments {
            inline, fragments, ..
        } => large::piece_order(inline, fragments.len()),
    };
    let pieces = order.len();
    let mut outcome = None;
    for how in [Joining::AsOneText, Joining::PieceByPiece] {
        let mut sink = match target {
            Some(key) => Sink::Store(payloads.writer(key).await?),
            None => Sink::Memory(Vec::new()),
        };
        let mut decoder = Decoder::new(filename, pieces, how);
        let mut document_id = None;
        let mut failed = None;
        for piece in &order {
            let parts = match (piece, &source) {
                (Piece::Inline(i), Source::Parts(parts)) => vec![parts[*i].clone()],
                (Piece::Inline(i), Source::Fragments { inline, .. }) => vec![inline[*i].clone()],
                (Piece::Fragment(i), Source::Fragments { doc, fragments, .. }) => {
                    let id = MessageId::new(fragments[*i].clone());
                    let received = stored::get_received(payloads, conv, id.as_str())
                        .await?
                        .map(|r| r.parts);
                    match large::fragment_parts(doc, &id, received) {
                        Ok(p) => p,
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                (Piece::Fragment(_), Source::Parts(_)) => {
                    return Err(DriverError::Internal(
                        "a whole document has no fragments".to_string(),
                    ));
                }
            };
            for p in &parts {
                if document_id.is_none() {
                    document_id.clone_from(&p.document_id);
                }
                match decoder.piece(p) {
                    Ok(bytes) => sink.write(bytes).await?,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if failed.is_some() {
                break;
            }
        }
        if failed.is_none() {
            match decoder.finish() {
                Ok(rest) => sink.write(rest).await?,
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            None => {
                return Ok(Ok(match sink {
                    Sink::Memory(v) => {
                        let size = v.len() as u64;
                        (Some(v), size, document_id)
                    }
                    Sink::Store(w) => (None, w.finish().await?, document_id),
                }));
            }
            Some(e) => {
                sink.abort().await;
                let retry = how == Joining::AsOneText && matches!(e, LargeError::Reassembly { .. });
                outcome = Some(e);
                if !retry {
                    break;
                }
            }
        }
    }
    Ok(Err(outcome.unwrap_or_else(|| LargeError::Reassembly {
        filename: filename.to_string(),
        why: "it could not be decoded".to_string(),
    })))
}
