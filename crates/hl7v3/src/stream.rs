//! Reading large extracts a piece at a time, and many messages at once.
//!
//! [`Message::parse`](crate::Message::parse) builds the whole model. A record of tens of
//! megabytes is better walked one `ehrComposition` at a time: [`Compositions`] yields each
//! composition as a typed [`EhrComposition`] while the rest of the document is only
//! scanned, so memory holds the input and one composition, not the whole model. The
//! agent directory and the extract's header come with the first call to
//! [`Compositions::header`].
//!
//! [`read_all`] reads a batch of documents on every core.

use crate::ehr::{AgentDirectory, EhrComposition};
use crate::message::{Message, MessageError};
use crate::typed::{FromXml, hl7_local};
use crate::xml::{Ev, EventReader, Limits, XmlError};

/// What comes before the compositions: the patient and the agent directory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExtractHeader {
    /// The interaction id (the root element's local name).
    pub interaction_id: String,
    /// The patient's NHS number (`recordTarget/patient/id/@extension`).
    pub nhs_number: Option<String>,
    /// The agent directory, when it comes before the compositions (as the schema says).
    pub agent_directory: Option<AgentDirectory>,
}

/// Iterates the `ehrComposition`s of an EhrExtract message one by one.
pub struct Compositions<'a> {
    reader: EventReader<'a>,
    header: ExtractHeader,
    /// Local names of the open elements, from the root down.
    path: Vec<String>,
    done: bool,
}

impl<'a> Compositions<'a> {
    /// Starts reading `input` (a whole `RCMR_IN030000UK06` / `UK07` document).
    pub fn new(input: &'a [u8], limits: &Limits) -> Result<Self, MessageError> {
        let mut reader = EventReader::new(input, limits)?;
        let (start, empty, _) = reader.root_start()?;
        let root = start.name().to_string();
        let local = crate::xml::local_name(&root).to_string();
        if !matches!(local.as_str(), "RCMR_IN030000UK06" | "RCMR_IN030000UK07") {
            return Err(MessageError::UnknownInteraction(root));
        }
        Ok(Compositions {
            reader,
            header: ExtractHeader {
                interaction_id: local.clone(),
                ..ExtractHeader::default()
            },
            path: if empty { Vec::new() } else { vec![local] },
            done: empty,
        })
    }

    /// The header read so far (complete once the first composition has been returned).
    pub fn header(&self) -> &ExtractHeader {
        &self.header
    }

    fn advance(&mut self) -> Result<Option<EhrComposition>, XmlError> {
        while !self.path.is_empty() {
            match self.reader.next_event()? {
                Ev::Start(start, empty, offset) => {
                    let name = hl7_local(start.name()).to_string();
                    let parent = self.path.last().map(String::as_str);
                    match (parent, name.as_str()) {
                        (Some("component"), "ehrComposition") => {
                            let c = EhrComposition::from_events(
                                &mut self.reader,
                                &start,
                                empty,
                                offset,
                            )?;
                            return Ok(Some(c));
                        }
                        (Some("responsibleParty"), "agentDirectory") => {
                            let d = AgentDirectory::from_events(
                                &mut self.reader,
                                &start,
                                empty,
                                offset,
                            )?;
                            self.header.agent_directory = Some(d);
                        }
                        (Some("patient"), "id") => {
                            let e = self.reader.element(&start, empty, offset)?;
                            if let Some(ext) = e.attr("extension") {
                                self.header.nhs_number = Some(ext.to_string());
                            }
                        }
                        _ if empty => {}
                        _ => self.path.push(name),
                    }
                }
                Ev::End => {
                    self.path.pop();
                }
                Ev::Text(_) | Ev::Comment(_) => {}
                Ev::Eof => {
                    return Err(XmlError::Truncated {
                        open: self.path.last().cloned().unwrap_or_default(),
                        offset: self.reader.position(),
                    });
                }
            }
        }
        self.reader.expect_end()?;
        Ok(None)
    }
}

impl Iterator for Compositions<'_> {
    type Item = Result<EhrComposition, XmlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.advance() {
            Ok(Some(c)) => Some(Ok(c)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Reads many documents into the model, spread over the machine's cores; results come
/// back in the order of `docs`.
pub fn read_all<D: AsRef<[u8]> + Sync>(
    docs: &[D],
    limits: &Limits,
) -> Vec<Result<Message, MessageError>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(docs.len().max(1));
    if threads <= 1 {
        return docs
            .iter()
            .map(|d| Message::parse_with(d.as_ref(), limits))
            .collect();
    }
    // Each thread takes the next unread document as it finishes one, so that one large
    // extract does not leave the other threads idle.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut slots: Vec<Option<Result<Message, MessageError>>> =
        (0..docs.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(doc) = docs.get(i) else { break };
                        done.push((i, Message::parse_with(doc.as_ref(), limits)));
                    }
                    done
                })
            })
            .collect();
        for h in handles {
            // A panic in a reader thread is a bug; surface it rather than hide it.
            match h.join() {
                Ok(results) => {
                    for (i, r) in results {
                        slots[i] = Some(r);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    slots
        .into_iter()
        .map(|s| s.unwrap_or(Err(MessageError::Xml(XmlError::Empty))))
        .collect()
}
