//! The requesting practice's side of a transfer.
//!
//! ```text
//!                 extract, nothing to follow
//! AwaitingExtract ───────────────────────────────► AwaitingIntegration ──► Done
//!       │ └─ unreadable extract, or another patient's ─► Done (final ack AE 21 / 31 / 28)
//!       │  extract naming documents that follow          ▲      integrated / rejected
//!       ▼  (Continue sent)                               │      (final ack sent)
//!   Collecting ── every document and fragment here ──────┘
//!       │
//!       └── deadline passed, or reassembly failed ─► Done (final ack AE 25 / 29 / 30 / 31)
//! ```
//!
//! A large record arrives as an extract whose manifest names documents sent separately
//! (`mid:` references). A document of `LargeAttachment=No` comes whole in one COPC message;
//! one of `LargeAttachment=Yes` comes as a fragment index (a COPC message whose own manifest
//! names the fragments) and the fragments themselves. They may arrive in any order —
//! fragments before their index, twice, out of sequence — so the machine keeps what it has
//! seen and asks for assembly only when every piece is in.
//!
//! The machine decides; the driver persists the new state, then carries out the actions.

use std::collections::BTreeSet;

use hl7v3::ReasonCode;
use serde::{Deserialize, Serialize};

use crate::MessageId;

/// A document the extract said would follow in its own message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedDocument {
    /// The message carrying it: the document itself, or its fragment index when `large`.
    pub message_id: MessageId,
    pub filename: String,
    pub content_type: String,
    pub compressed: bool,
    /// Sent as a fragment index plus fragments.
    pub large: bool,
    /// This document is the compressed extract itself (the message that came was a
    /// skeleton: `DomainData="X-GP2GP-Skeleton: Yes"`).
    pub skeleton: bool,
}

/// How far a document has come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Progress {
    /// Nothing yet.
    Waiting,
    /// Here, whole (a small document).
    Whole,
    /// Its index is here: the fragments it lists, and which of them are in.
    Indexed {
        fragments: Vec<MessageId>,
        received: BTreeSet<usize>,
    },
}

/// The documents of a large transfer and what has arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collecting {
    pub extract_message_id: MessageId,
    pub documents: Vec<(ExpectedDocument, Progress)>,
    /// COPC messages that came before anything named them (fragments ahead of their index).
    pub early: BTreeSet<MessageId>,
    /// When the transfer times out (Unix ms).
    pub deadline_ms: i64,
}

impl Collecting {
    /// Whether every document is in, every large one with all its fragments.
    pub fn is_complete(&self) -> bool {
        self.documents.iter().all(|(_, p)| match p {
            Progress::Waiting => false,
            Progress::Whole => true,
            Progress::Indexed {
                fragments,
                received,
            } => received.len() == fragments.len(),
        })
    }

    fn any_received(&self) -> bool {
        !self.early.is_empty()
            || self.documents.iter().any(|(_, p)| match p {
                Progress::Waiting => false,
                Progress::Whole => true,
                Progress::Indexed { .. } => true,
            })
    }

    /// Whether `id` is a message this transfer has already taken in.
    fn has_seen(&self, id: &MessageId) -> bool {
        self.early.contains(id)
            || self.documents.iter().any(|(d, p)| {
                (d.message_id == *id && *p != Progress::Waiting)
                    || matches!(p, Progress::Indexed { fragments, received }
                        if fragments.iter().enumerate().any(|(i, f)| f == id && received.contains(&i)))
            })
    }
}

/// How the requesting practice dealt with the record (what its final acknowledgement says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Integration {
    /// Filed into the record: AA.
    Integrated,
    /// A-B-A: stored as a suppressed record (AE 15, counted as integrated).
    StoredSuppressed,
    /// Returning patient: filed as an attachment (AE 26).
    FiledAsAttachment,
    /// A-B-A wrong patient (AE 17).
    AbaWrongPatient,
    /// Wrong patient (AE 28).
    WrongPatient,
    /// Could not be integrated (AE 11).
    FailedToIntegrate,
}

impl Integration {
    /// The reason code of the final acknowledgement, `None` for a plain AA.
    pub fn code(self) -> Option<ReasonCode> {
        match self {
            Integration::Integrated => None,
            Integration::StoredSuppressed => Some(ReasonCode::AbaSuppressed),
            Integration::FiledAsAttachment => Some(ReasonCode::ReturningPatientFiledAsAttachment),
            Integration::AbaWrongPatient => Some(ReasonCode::AbaWrongPatient),
            Integration::WrongPatient => Some(ReasonCode::NonAbaWrongPatient),
            Integration::FailedToIntegrate => Some(ReasonCode::FailedToIntegrate),
        }
    }
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The record was filed (or suppressed, or filed as an attachment) as `Integration` says.
    Integrated(Integration),
    /// The record arrived but was not accepted (wrong patient, could not integrate).
    Rejected(Integration),
    /// The transfer failed with this code (ours or the sender's).
    Failed { code: ReasonCode, reason: String },
    /// No extract ever came.
    NoExtract,
}

/// Where a transfer stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// The request is sent; waiting for the extract until the deadline.
    AwaitingExtract {
        request_id: MessageId,
        deadline_ms: i64,
    },
    /// A large record is arriving.
    Collecting(Collecting),
    /// The whole record is here (and being translated and filed): waiting for the practice.
    AwaitingIntegration {
        extract_message_id: MessageId,
    },
    Done(Outcome),
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An extract arrived. `documents` are the `mid:` attachments its manifest names;
    /// `deadline_ms` is when the whole transfer must be in (from SDS: the extract's persist
    /// duration plus one COPC persist duration per message still to come).
    Extract {
        message_id: MessageId,
        documents: Vec<ExpectedDocument>,
        deadline_ms: i64,
    },
    /// A COPC message carrying a document or a fragment.
    Copc { message_id: MessageId },
    /// A COPC fragment index listing its fragments, in order.
    FragmentIndex {
        message_id: MessageId,
        fragments: Vec<MessageId>,
    },
    /// The sender refused the request (its acknowledgement had this code).
    RequestRefused { code: ReasonCode },
    /// The record could not be assembled or read (21 not well-formed, 29 reassembly, 30
    /// other large-message failure).
    ProcessingFailed { code: ReasonCode, reason: String },
    /// An extract arrived that cannot be taken: unreadable (21, or 31 when it names an
    /// attachment it does not carry) or another patient's record (28). The transfer fails
    /// and the extract is answered with the code.
    BadExtract {
        message_id: MessageId,
        code: ReasonCode,
        reason: String,
    },
    /// The practice dealt with the record.
    Integration(Integration),
    /// Time passed.
    Tick { now_ms: i64 },
}

/// What to do, in order, once the new state is safely stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Positive acknowledgement of a COPC message.
    AckCopc { message_id: MessageId },
    /// Negative acknowledgement of a message with a code.
    Nack {
        message_id: MessageId,
        code: ReasonCode,
    },
    /// Ask the sender for the fragments.
    SendContinue { extract_message_id: MessageId },
    /// Everything is here: reassemble, decompress, translate, hand to the inbox.
    Assemble { extract_message_id: MessageId },
    /// The final acknowledgement of the extract: AA when `code` is `None`.
    FinalAck {
        extract_message_id: MessageId,
        code: Option<ReasonCode>,
    },
}

/// An event that makes no sense where the transfer stands: the driver logs it and, where
/// the event was a message, answers it as the error says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("an extract arrived but this transfer is {0}: answer with 12 (duplicate extract)")]
    DuplicateExtract(&'static str),
    #[error(
        "a COPC message arrived before any extract: answer with 30 (large message general failure)"
    )]
    CopcBeforeExtract,
    #[error("the practice's decision came while the transfer is {0}: nothing to integrate")]
    NothingToIntegrate(&'static str),
    #[error("the transfer is over; the event changes nothing")]
    Finished,
}

impl State {
    /// The transfer after the request was sent.
    pub fn new(request_id: MessageId, deadline_ms: i64) -> State {
        State::AwaitingExtract {
            request_id,
            deadline_ms,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            State::AwaitingExtract { .. } => "awaiting the extract",
            State::Collecting(_) => "collecting large-message fragments",
            State::AwaitingIntegration { .. } => "awaiting integration",
            State::Done(_) => "done",
        }
    }

    /// Applies `event`: the next state and what to do, or why the event does not apply
    /// (the state is then unchanged).
    pub fn step(self, event: Event) -> Result<(State, Vec<Action>), (State, Refusal)> {
        use Event as E;
        match (self, event) {
            // The extract.
            (
                State::AwaitingExtract { .. },
                E::Extract {
                    message_id,
                    documents,
                    deadline_ms,
                },
            ) => {
                if documents.is_empty() {
                    let actions = vec![Action::Assemble {
                        extract_message_id: message_id.clone(),
                    }];
                    Ok((
                        State::AwaitingIntegration {
                            extract_message_id: message_id,
                        },
                        actions,
                    ))
                } else {
                    let collecting = Collecting {
                        extract_message_id: message_id.clone(),
                        documents: documents
                            .into_iter()
                            .map(|d| (d, Progress::Waiting))
                            .collect(),
                        early: BTreeSet::new(),
                        deadline_ms,
                    };
                    Ok((
                        State::Collecting(collecting),
                        vec![Action::SendContinue {
                            extract_message_id: message_id,
                        }],
                    ))
                }
            }
            (
                s @ (State::Collecting(_) | State::AwaitingIntegration { .. } | State::Done(_)),
                E::Extract { .. },
            ) => {
                let name = s.name();
                Err((s, Refusal::DuplicateExtract(name)))
            }

            // Documents and fragments.
            (State::Collecting(mut c), E::Copc { message_id }) => {
                if c.has_seen(&message_id) {
                    // A resend: acknowledge again, change nothing.
                    return Ok((State::Collecting(c), vec![Action::AckCopc { message_id }]));
                }
                let mut placed = false;
                for (doc, progress) in c.documents.iter_mut() {
                    if doc.message_id == message_id && !doc.large {
                        *progress = Progress::Whole;
                        placed = true;
                    } else if let Progress::Indexed {
                        fragments,
                        received,
                    } = progress
                        && let Some(i) = fragments.iter().position(|f| *f == message_id)
                    {
                        received.insert(i);
                        placed = true;
                    }
                }
                if !placed {
                    c.early.insert(message_id.clone());
                }
                Ok(finish_if_complete(c, vec![Action::AckCopc { message_id }]))
            }
            (
                State::Collecting(mut c),
                E::FragmentIndex {
                    message_id,
                    fragments,
                },
            ) => {
                let Some((_, progress)) = c
                    .documents
                    .iter_mut()
                    .find(|(d, _)| d.message_id == message_id && d.large)
                else {
                    // An index nobody announced: keep it as seen, like any early message.
                    c.early.insert(message_id.clone());
                    return Ok((State::Collecting(c), vec![Action::AckCopc { message_id }]));
                };
                if *progress != Progress::Waiting {
                    return Ok((State::Collecting(c), vec![Action::AckCopc { message_id }]));
                }
                let received: BTreeSet<usize> = fragments
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| c.early.contains(f))
                    .map(|(i, _)| i)
                    .collect();
                for f in &fragments {
                    c.early.remove(f);
                }
                *progress = Progress::Indexed {
                    fragments,
                    received,
                };
                Ok(finish_if_complete(c, vec![Action::AckCopc { message_id }]))
            }
            (s @ State::AwaitingExtract { .. }, E::Copc { .. } | E::FragmentIndex { .. }) => {
                Err((s, Refusal::CopcBeforeExtract))
            }
            (
                s @ (State::AwaitingIntegration { .. } | State::Done(_)),
                E::Copc { message_id } | E::FragmentIndex { message_id, .. },
            ) => {
                // Everything is already in: a late resend is acknowledged and ignored.
                Ok((s, vec![Action::AckCopc { message_id }]))
            }

            // The sender said no.
            (State::AwaitingExtract { .. }, E::RequestRefused { code }) => Ok((
                State::Done(Outcome::Failed {
                    code,
                    reason: format!(
                        "the sending practice refused the request: {}",
                        code.description()
                    ),
                }),
                vec![],
            )),
            (s, E::RequestRefused { .. }) => {
                // After an extract has come, a refusal of the request changes nothing.
                Ok((s, vec![]))
            }

            // Assembly or reading failed.
            (State::Collecting(c), E::ProcessingFailed { code, reason }) => {
                let extract = c.extract_message_id;
                Ok(fail(extract, code, reason))
            }
            (
                State::AwaitingIntegration { extract_message_id },
                E::ProcessingFailed { code, reason },
            ) => Ok(fail(extract_message_id, code, reason)),
            (s, E::ProcessingFailed { .. }) => Err((s, Refusal::Finished)),
            (
                State::AwaitingExtract { .. },
                E::BadExtract {
                    message_id,
                    code,
                    reason,
                },
            ) => Ok(fail(message_id, code, reason)),
            (s, E::BadExtract { .. }) => {
                // One extract has come already: this is a second, broken one.
                let name = s.name();
                Err((s, Refusal::DuplicateExtract(name)))
            }

            // The practice's decision.
            (State::AwaitingIntegration { extract_message_id }, E::Integration(how)) => {
                let outcome = match how {
                    Integration::Integrated
                    | Integration::StoredSuppressed
                    | Integration::FiledAsAttachment => Outcome::Integrated(how),
                    _ => Outcome::Rejected(how),
                };
                Ok((
                    State::Done(outcome),
                    vec![Action::FinalAck {
                        extract_message_id,
                        code: how.code(),
                    }],
                ))
            }
            (s, E::Integration(_)) => {
                let name = s.name();
                Err((s, Refusal::NothingToIntegrate(name)))
            }

            // Time.
            (
                State::AwaitingExtract {
                    request_id,
                    deadline_ms,
                },
                E::Tick { now_ms },
            ) => {
                if now_ms >= deadline_ms {
                    Ok((State::Done(Outcome::NoExtract), vec![]))
                } else {
                    Ok((
                        State::AwaitingExtract {
                            request_id,
                            deadline_ms,
                        },
                        vec![],
                    ))
                }
            }
            (State::Collecting(c), E::Tick { now_ms }) => {
                if now_ms < c.deadline_ms {
                    return Ok((State::Collecting(c), vec![]));
                }
                let (code, reason) = if c.any_received() {
                    (
                        ReasonCode::AttachmentsNotReceived,
                        "some large-message attachments had not arrived by the deadline"
                            .to_string(),
                    )
                } else {
                    (
                        ReasonCode::LargeMessageTimeout,
                        "no large-message attachment arrived by the deadline".to_string(),
                    )
                };
                Ok(fail(c.extract_message_id, code, reason))
            }
            (s @ (State::AwaitingIntegration { .. } | State::Done(_)), E::Tick { .. }) => {
                Ok((s, vec![]))
            }
        }
    }
}

fn finish_if_complete(c: Collecting, mut actions: Vec<Action>) -> (State, Vec<Action>) {
    if c.is_complete() {
        actions.push(Action::Assemble {
            extract_message_id: c.extract_message_id.clone(),
        });
        (
            State::AwaitingIntegration {
                extract_message_id: c.extract_message_id,
            },
            actions,
        )
    } else {
        (State::Collecting(c), actions)
    }
}

fn fail(extract: MessageId, code: ReasonCode, reason: String) -> (State, Vec<Action>) {
    (
        State::Done(Outcome::Failed { code, reason }),
        vec![Action::FinalAck {
            extract_message_id: extract,
            code: Some(code),
        }],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> MessageId {
        MessageId::new(s)
    }

    fn doc(message_id: &str, large: bool) -> ExpectedDocument {
        ExpectedDocument {
            message_id: id(message_id),
            filename: format!("{message_id}.txt"),
            content_type: "text/plain".into(),
            compressed: false,
            large,
            skeleton: false,
        }
    }

    fn step(s: State, e: Event) -> (State, Vec<Action>) {
        s.step(e)
            .unwrap_or_else(|(s, r)| panic!("refused in {s:?}: {r}"))
    }

    fn collecting(documents: Vec<ExpectedDocument>) -> State {
        let (s, actions) = step(
            State::new(id("req"), 1_000),
            Event::Extract {
                message_id: id("ext"),
                documents,
                deadline_ms: 10_000,
            },
        );
        assert_eq!(
            actions,
            vec![Action::SendContinue {
                extract_message_id: id("ext")
            }]
        );
        s
    }

    #[test]
    fn a_small_extract_goes_straight_to_integration_and_ends_with_aa() {
        let (s, actions) = step(
            State::new(id("req"), 1_000),
            Event::Extract {
                message_id: id("ext"),
                documents: vec![],
                deadline_ms: 5_000,
            },
        );
        assert_eq!(
            actions,
            vec![Action::Assemble {
                extract_message_id: id("ext")
            }]
        );
        let (s, actions) = step(s, Event::Integration(Integration::Integrated));
        assert_eq!(s, State::Done(Outcome::Integrated(Integration::Integrated)));
        assert_eq!(
            actions,
            vec![Action::FinalAck {
                extract_message_id: id("ext"),
                code: None
            }]
        );
    }

    #[test]
    fn every_integration_decision_sends_its_code() {
        for (how, code, integrated) in [
            (
                Integration::StoredSuppressed,
                Some(ReasonCode::AbaSuppressed),
                true,
            ),
            (
                Integration::FiledAsAttachment,
                Some(ReasonCode::ReturningPatientFiledAsAttachment),
                true,
            ),
            (
                Integration::AbaWrongPatient,
                Some(ReasonCode::AbaWrongPatient),
                false,
            ),
            (
                Integration::WrongPatient,
                Some(ReasonCode::NonAbaWrongPatient),
                false,
            ),
            (
                Integration::FailedToIntegrate,
                Some(ReasonCode::FailedToIntegrate),
                false,
            ),
        ] {
            let s = State::AwaitingIntegration {
                extract_message_id: id("ext"),
            };
            let (s, actions) = step(s, Event::Integration(how));
            assert_eq!(
                actions,
                vec![Action::FinalAck {
                    extract_message_id: id("ext"),
                    code
                }]
            );
            assert_eq!(
                matches!(s, State::Done(Outcome::Integrated(_))),
                integrated,
                "{how:?}"
            );
        }
    }

    #[test]
    fn small_documents_in_any_order_and_twice_complete_the_transfer_once() {
        let mut s = collecting(vec![doc("d1", false), doc("d2", false)]);
        let (next, actions) = step(
            s,
            Event::Copc {
                message_id: id("d2"),
            },
        );
        assert_eq!(
            actions,
            vec![Action::AckCopc {
                message_id: id("d2")
            }]
        );
        s = next;
        // The same fragment again: acknowledged, nothing new.
        let (next, actions) = step(
            s.clone(),
            Event::Copc {
                message_id: id("d2"),
            },
        );
        assert_eq!(next, s);
        assert_eq!(
            actions,
            vec![Action::AckCopc {
                message_id: id("d2")
            }]
        );
        let (s, actions) = step(
            next,
            Event::Copc {
                message_id: id("d1"),
            },
        );
        assert_eq!(
            actions,
            vec![
                Action::AckCopc {
                    message_id: id("d1")
                },
                Action::Assemble {
                    extract_message_id: id("ext")
                }
            ]
        );
        assert_eq!(
            s,
            State::AwaitingIntegration {
                extract_message_id: id("ext")
            }
        );
        // A late resend after completion: acknowledged, no second assembly.
        let (_, actions) = step(
            s,
            Event::Copc {
                message_id: id("d1"),
            },
        );
        assert_eq!(
            actions,
            vec![Action::AckCopc {
                message_id: id("d1")
            }]
        );
    }

    #[test]
    fn fragments_before_their_index_are_kept_and_counted() {
        let s = collecting(vec![doc("idx", true)]);
        let (s, _) = step(
            s,
            Event::Copc {
                message_id: id("f1"),
            },
        );
        let (s, _) = step(
            s,
            Event::Copc {
                message_id: id("f0"),
            },
        );
        let State::Collecting(c) = &s else {
            panic!("{s:?}")
        };
        assert_eq!(c.early.len(), 2);
        let (s, actions) = step(
            s,
            Event::FragmentIndex {
                message_id: id("idx"),
                fragments: vec![id("f0"), id("f1"), id("f2")],
            },
        );
        assert_eq!(
            actions,
            vec![Action::AckCopc {
                message_id: id("idx")
            }]
        );
        let State::Collecting(c) = &s else {
            panic!("{s:?}")
        };
        assert!(c.early.is_empty());
        assert!(!c.is_complete());
        let (s, actions) = step(
            s,
            Event::Copc {
                message_id: id("f2"),
            },
        );
        assert_eq!(
            actions.last(),
            Some(&Action::Assemble {
                extract_message_id: id("ext")
            })
        );
        assert!(matches!(s, State::AwaitingIntegration { .. }));
    }

    #[test]
    fn message_ids_match_whatever_their_case() {
        let s = collecting(vec![doc("abc-def", false)]);
        let (s, actions) = step(
            s,
            Event::Copc {
                message_id: id("ABC-DEF"),
            },
        );
        assert!(
            matches!(s, State::AwaitingIntegration { .. }),
            "{actions:?}"
        );
    }

    #[test]
    fn a_mix_of_small_and_large_documents_waits_for_all() {
        let s = collecting(vec![doc("small", false), doc("idx", true)]);
        let (s, _) = step(
            s,
            Event::FragmentIndex {
                message_id: id("idx"),
                fragments: vec![id("f0")],
            },
        );
        let (s, _) = step(
            s,
            Event::Copc {
                message_id: id("f0"),
            },
        );
        assert!(
            matches!(s, State::Collecting(_)),
            "the small document is still missing"
        );
        let (s, _) = step(
            s,
            Event::Copc {
                message_id: id("small"),
            },
        );
        assert!(matches!(s, State::AwaitingIntegration { .. }));
    }

    #[test]
    fn the_deadline_fails_with_25_when_nothing_came_and_31_when_some_did() {
        let s = collecting(vec![doc("d1", false), doc("d2", false)]);
        let (still, actions) = step(s.clone(), Event::Tick { now_ms: 9_999 });
        assert_eq!(still, s);
        assert!(actions.is_empty());
        let (done, actions) = step(s.clone(), Event::Tick { now_ms: 10_000 });
        assert!(matches!(
            done,
            State::Done(Outcome::Failed {
                code: ReasonCode::LargeMessageTimeout,
                ..
            })
        ));
        assert_eq!(
            actions,
            vec![Action::FinalAck {
                extract_message_id: id("ext"),
                code: Some(ReasonCode::LargeMessageTimeout)
            }]
        );
        let (s, _) = step(
            s,
            Event::Copc {
                message_id: id("d1"),
            },
        );
        let (done, _) = step(s, Event::Tick { now_ms: 20_000 });
        assert!(matches!(
            done,
            State::Done(Outcome::Failed {
                code: ReasonCode::AttachmentsNotReceived,
                ..
            })
        ));
    }

    #[test]
    fn no_extract_by_the_deadline_ends_the_transfer_without_a_message() {
        let s = State::new(id("req"), 1_000);
        let (s, actions) = step(s, Event::Tick { now_ms: 999 });
        assert!(matches!(s, State::AwaitingExtract { .. }) && actions.is_empty());
        let (s, actions) = step(s, Event::Tick { now_ms: 1_000 });
        assert_eq!(s, State::Done(Outcome::NoExtract));
        assert!(actions.is_empty());
    }

    #[test]
    fn a_refused_request_ends_the_transfer_with_the_senders_code() {
        let (s, actions) = step(
            State::new(id("req"), 1_000),
            Event::RequestRefused {
                code: ReasonCode::PatientNotAtSurgery,
            },
        );
        assert!(matches!(
            s,
            State::Done(Outcome::Failed {
                code: ReasonCode::PatientNotAtSurgery,
                ..
            })
        ));
        assert!(actions.is_empty());
    }

    #[test]
    fn reassembly_or_reading_failures_nack_the_extract() {
        for code in [
            ReasonCode::ReassemblyFailure,
            ReasonCode::ExtractNotWellFormed,
            ReasonCode::LargeMessageGeneralFailure,
        ] {
            let s = collecting(vec![doc("d1", false)]);
            let (s, actions) = step(
                s,
                Event::ProcessingFailed {
                    code,
                    reason: "x".into(),
                },
            );
            assert!(matches!(s, State::Done(Outcome::Failed { code: c, .. }) if c == code));
            assert_eq!(
                actions,
                vec![Action::FinalAck {
                    extract_message_id: id("ext"),
                    code: Some(code)
                }]
            );
        }
        let s = State::AwaitingIntegration {
            extract_message_id: id("ext"),
        };
        let (_, actions) = step(
            s,
            Event::ProcessingFailed {
                code: ReasonCode::ExtractNotWellFormed,
                reason: "bad".into(),
            },
        );
        assert_eq!(
            actions,
            vec![Action::FinalAck {
                extract_message_id: id("ext"),
                code: Some(ReasonCode::ExtractNotWellFormed)
            }]
        );
    }

    #[test]
    fn an_unreadable_extract_ends_the_transfer_with_its_code_and_is_answered() {
        let (s, actions) = step(
            State::new(id("req"), 1_000),
            Event::BadExtract {
                message_id: id("bad"),
                code: ReasonCode::ExtractNotWellFormed,
                reason: "no EhrExtract".into(),
            },
        );
        assert!(matches!(
            s,
            State::Done(Outcome::Failed {
                code: ReasonCode::ExtractNotWellFormed,
                ..
            })
        ));
        assert_eq!(
            actions,
            vec![Action::FinalAck {
                extract_message_id: id("bad"),
                code: Some(ReasonCode::ExtractNotWellFormed)
            }]
        );
        // After an extract, a broken second one changes nothing.
        let c = collecting(vec![doc("d1", false)]);
        let (back, refusal) = c
            .clone()
            .step(Event::BadExtract {
                message_id: id("bad"),
                code: ReasonCode::ExtractNotWellFormed,
                reason: String::new(),
            })
            .unwrap_err();
        assert_eq!(back, c);
        assert!(matches!(refusal, Refusal::DuplicateExtract(_)));
    }

    #[test]
    fn a_hostile_or_confused_peer_cannot_move_the_transfer() {
        // A second extract in every later state is refused as a duplicate, state unchanged.
        for s in [
            collecting(vec![doc("d1", false)]),
            State::AwaitingIntegration {
                extract_message_id: id("ext"),
            },
            State::Done(Outcome::NoExtract),
        ] {
            let (back, refusal) = s
                .clone()
                .step(Event::Extract {
                    message_id: id("ext2"),
                    documents: vec![],
                    deadline_ms: 0,
                })
                .unwrap_err();
            assert_eq!(back, s);
            assert!(matches!(refusal, Refusal::DuplicateExtract(_)));
            assert!(refusal.to_string().contains("12"));
        }
        // Fragments before any extract are refused.
        let s = State::new(id("req"), 1_000);
        let (back, refusal) = s
            .clone()
            .step(Event::Copc {
                message_id: id("x"),
            })
            .unwrap_err();
        assert_eq!((back, refusal), (s.clone(), Refusal::CopcBeforeExtract));
        // An integration decision with nothing to integrate is refused.
        assert!(matches!(
            s.clone().step(Event::Integration(Integration::Integrated)),
            Err((_, Refusal::NothingToIntegrate(_)))
        ));
        // An index for a document that was announced small is not allowed to redefine it.
        let c = collecting(vec![doc("d1", false)]);
        let (c, _) = step(
            c,
            Event::FragmentIndex {
                message_id: id("d1"),
                fragments: vec![id("f0")],
            },
        );
        let (c, _) = step(
            c,
            Event::Copc {
                message_id: id("f0"),
            },
        );
        assert!(
            matches!(c, State::Collecting(_)),
            "an unannounced index completed a small document"
        );
        // Once done, nothing revives the transfer.
        let done = State::Done(Outcome::Integrated(Integration::Integrated));
        let (after, actions) = step(done.clone(), Event::Tick { now_ms: i64::MAX });
        assert_eq!(after, done);
        assert!(actions.is_empty());
        assert!(matches!(
            done.step(Event::ProcessingFailed {
                code: ReasonCode::Unexpected,
                reason: String::new()
            }),
            Err((_, Refusal::Finished))
        ));
    }

    #[test]
    fn states_survive_a_round_trip_through_storage() {
        let s = collecting(vec![doc("d1", false), doc("idx", true)]);
        let (s, _) = step(
            s,
            Event::Copc {
                message_id: id("early"),
            },
        );
        let json = serde_json::to_string(&s).unwrap();
        let back: State = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
