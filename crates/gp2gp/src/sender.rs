//! The sending practice's side of a transfer.
//!
//! ```text
//! Checking ──refused (06 07 18 19 24)───────────────────────────► Done (request NACKed)
//!    │ passed
//! Building ──could not build (10)───────────────────────────────► Done (request NACKed)
//!    │ built, nothing separate                built, documents to follow
//!    ▼                                              ▼
//!    │                                       AwaitingContinue ──Continue──► SendingFragments
//!    │ (extract + AA of the request)                                           │ every COPC acked
//!    ▼                                                                         │ (AA of the request)
//! AwaitingFinalAck ◄───────────────────────────────────────────────────────────┘
//!    │ final ack: AA (or 15/26) → Done (integrated); AE/AR → Done (rejected)
//!    └ no final ack within 8 days → Done (failed, 99)
//! ```
//!
//! The machine decides; the driver persists the new state, then carries out the actions.
//! Duplicate requests never reach a machine: the driver recognises the conversation and
//! ignores them.

use std::collections::BTreeSet;

use hl7v3::ReasonCode;
use serde::{Deserialize, Serialize};

use crate::MessageId;

/// Eight days: how long a sender waits for the final acknowledgement.
pub const FINAL_ACK_WAIT_MS: i64 = 8 * 24 * 60 * 60 * 1000;

/// How a transfer ended, for the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The requester filed the record (`code` 15 or 26 when it was suppressed or filed as an
    /// attachment).
    Integrated { code: Option<ReasonCode> },
    /// The requester rejected or could not use the record.
    Rejected { code: ReasonCode },
    /// We refused the request.
    Refused { code: ReasonCode },
    /// The transfer failed.
    Failed { code: ReasonCode, reason: String },
}

/// Where a transfer stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// The request is being checked (is the patient ours? is the requester their practice?).
    Checking {
        request_id: MessageId,
    },
    /// The record is being read and translated.
    Building {
        request_id: MessageId,
    },
    /// The extract is out and names documents to follow: waiting for the Continue.
    AwaitingContinue {
        request_id: MessageId,
        extract_id: MessageId,
        copcs: Vec<MessageId>,
        deadline_ms: i64,
    },
    /// The documents and fragments are out: waiting for their acknowledgements.
    SendingFragments {
        request_id: MessageId,
        extract_id: MessageId,
        unacked: BTreeSet<MessageId>,
        deadline_ms: i64,
    },
    /// Everything is out and the request acknowledged: waiting for the final word.
    AwaitingFinalAck {
        request_id: MessageId,
        extract_id: MessageId,
        deadline_ms: i64,
    },
    Done(Outcome),
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The request passed the checks.
    CheckPassed,
    /// The request failed a check (06, 07, 18, 19, 24).
    CheckFailed { code: ReasonCode },
    /// The extract is built. `copcs` are the COPC messages to send after the Continue, in
    /// order (documents, fragment indexes, fragments); empty for a small record.
    Built {
        extract_id: MessageId,
        copcs: Vec<MessageId>,
        now_ms: i64,
    },
    /// The record could not be read or translated.
    BuildFailed { reason: String },
    /// The requester's Continue.
    Continue,
    /// The requester acknowledged a COPC message (AA).
    CopcAcked { message_id: MessageId },
    /// The requester refused a COPC message (29, 30, 31…).
    CopcNacked {
        message_id: MessageId,
        code: ReasonCode,
    },
    /// The requester's final acknowledgement of the extract: `None` for AA.
    FinalAck { code: Option<ReasonCode> },
    /// Time passed.
    Tick { now_ms: i64 },
}

/// What to do, in order, once the new state is safely stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Read the record and build the extract (and its COPC messages).
    Build,
    /// Send the extract.
    SendExtract { extract_id: MessageId },
    /// Send these COPC messages.
    SendCopcs { message_ids: Vec<MessageId> },
    /// Acknowledge the request: AA when `code` is `None`, else a NACK with the code.
    AckRequest {
        request_id: MessageId,
        code: Option<ReasonCode>,
    },
}

/// An event that does not apply where the transfer stands; the state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("'{event}' cannot happen while the transfer is {state}")]
    OutOfOrder {
        event: &'static str,
        state: &'static str,
    },
    #[error("the requester acknowledged message {0}, which this transfer did not send")]
    UnknownCopc(MessageId),
}

impl State {
    /// A request has arrived: check it first.
    pub fn new(request_id: MessageId) -> (State, Vec<Action>) {
        (State::Checking { request_id }, vec![])
    }

    fn name(&self) -> &'static str {
        match self {
            State::Checking { .. } => "checking the request",
            State::Building { .. } => "building the extract",
            State::AwaitingContinue { .. } => "awaiting the Continue",
            State::SendingFragments { .. } => "sending fragments",
            State::AwaitingFinalAck { .. } => "awaiting the final acknowledgement",
            State::Done(_) => "done",
        }
    }

    /// The request this transfer answers.
    pub fn request_id(&self) -> Option<&MessageId> {
        match self {
            State::Checking { request_id }
            | State::Building { request_id }
            | State::AwaitingContinue { request_id, .. }
            | State::SendingFragments { request_id, .. }
            | State::AwaitingFinalAck { request_id, .. } => Some(request_id),
            State::Done(_) => None,
        }
    }

    /// Applies `event`: the next state and what to do, or why it does not apply.
    pub fn step(self, event: Event) -> Result<(State, Vec<Action>), (State, Refusal)> {
        use Event as E;
        match (self, event) {
            (State::Checking { request_id }, E::CheckPassed) => {
                Ok((State::Building { request_id }, vec![Action::Build]))
            }
            (State::Checking { request_id }, E::CheckFailed { code }) => Ok((
                State::Done(Outcome::Refused { code }),
                vec![Action::AckRequest {
                    request_id,
                    code: Some(code),
                }],
            )),
            (
                State::Building { request_id },
                E::Built {
                    extract_id,
                    copcs,
                    now_ms,
                },
            ) => {
                let deadline_ms = now_ms.saturating_add(FINAL_ACK_WAIT_MS);
                if copcs.is_empty() {
                    Ok((
                        State::AwaitingFinalAck {
                            request_id: request_id.clone(),
                            extract_id: extract_id.clone(),
                            deadline_ms,
                        },
                        vec![
                            Action::SendExtract { extract_id },
                            Action::AckRequest {
                                request_id,
                                code: None,
                            },
                        ],
                    ))
                } else {
                    Ok((
                        State::AwaitingContinue {
                            request_id,
                            extract_id: extract_id.clone(),
                            copcs,
                            deadline_ms,
                        },
                        vec![Action::SendExtract { extract_id }],
                    ))
                }
            }
            (State::Building { request_id }, E::BuildFailed { reason }) => Ok((
                State::Done(Outcome::Failed {
                    code: ReasonCode::FailedToGenerateExtract,
                    reason,
                }),
                vec![Action::AckRequest {
                    request_id,
                    code: Some(ReasonCode::FailedToGenerateExtract),
                }],
            )),
            (
                State::AwaitingContinue {
                    request_id,
                    extract_id,
                    copcs,
                    deadline_ms,
                },
                E::Continue,
            ) => {
                let unacked = copcs.iter().cloned().collect();
                Ok((
                    State::SendingFragments {
                        request_id,
                        extract_id,
                        unacked,
                        deadline_ms,
                    },
                    vec![Action::SendCopcs { message_ids: copcs }],
                ))
            }
            // A second Continue (a resend by a requester that missed our transport ack)
            // changes nothing: the fragments are already on their way.
            (s @ State::SendingFragments { .. }, E::Continue) => Ok((s, vec![])),
            (
                State::SendingFragments {
                    request_id,
                    extract_id,
                    mut unacked,
                    deadline_ms,
                },
                E::CopcAcked { message_id },
            ) => {
                if !unacked.remove(&message_id) {
                    // A second acknowledgement of one already acknowledged is harmless; one
                    // for a message we never sent is the peer's confusion.
                    let s = State::SendingFragments {
                        request_id,
                        extract_id,
                        unacked,
                        deadline_ms,
                    };
                    return Err((s, Refusal::UnknownCopc(message_id)));
                }
                if unacked.is_empty() {
                    Ok((
                        State::AwaitingFinalAck {
                            request_id: request_id.clone(),
                            extract_id,
                            deadline_ms,
                        },
                        vec![Action::AckRequest {
                            request_id,
                            code: None,
                        }],
                    ))
                } else {
                    Ok((
                        State::SendingFragments {
                            request_id,
                            extract_id,
                            unacked,
                            deadline_ms,
                        },
                        vec![],
                    ))
                }
            }
            (
                State::SendingFragments { .. } | State::AwaitingContinue { .. },
                E::CopcNacked { code, message_id },
            ) => Ok((
                State::Done(Outcome::Failed {
                    code,
                    reason: format!(
                        "the requester refused large-message part {message_id}: {}",
                        code.description()
                    ),
                }),
                vec![],
            )),
            // The final word can come early: a requester that gives up on a large message
            // answers the extract with its NACK while fragments are still outstanding.
            (
                State::AwaitingFinalAck { .. }
                | State::SendingFragments { .. }
                | State::AwaitingContinue { .. },
                E::FinalAck { code },
            ) => {
                let outcome = match code {
                    None => Outcome::Integrated { code: None },
                    Some(
                        c @ (ReasonCode::AbaSuppressed
                        | ReasonCode::ReturningPatientFiledAsAttachment),
                    ) => Outcome::Integrated { code: Some(c) },
                    Some(c) => Outcome::Rejected { code: c },
                };
                Ok((State::Done(outcome), vec![]))
            }
            (
                s @ (State::AwaitingFinalAck { .. }
                | State::SendingFragments { .. }
                | State::AwaitingContinue { .. }),
                E::Tick { now_ms },
            ) => {
                let deadline = match &s {
                    State::AwaitingFinalAck { deadline_ms, .. }
                    | State::SendingFragments { deadline_ms, .. }
                    | State::AwaitingContinue { deadline_ms, .. } => *deadline_ms,
                    _ => i64::MAX,
                };
                if now_ms >= deadline {
                    Ok((
                        State::Done(Outcome::Failed {
                            code: ReasonCode::Unexpected,
                            reason: "no final acknowledgement within 8 days of sending the extract"
                                .into(),
                        }),
                        vec![],
                    ))
                } else {
                    Ok((s, vec![]))
                }
            }
            (
                s @ (State::Checking { .. } | State::Building { .. } | State::Done(_)),
                E::Tick { .. },
            ) => Ok((s, vec![])),
            (s, e) => {
                let state = s.name();
                Err((
                    s,
                    Refusal::OutOfOrder {
                        event: event_name(&e),
                        state,
                    },
                ))
            }
        }
    }
}

fn event_name(e: &Event) -> &'static str {
    match e {
        Event::CheckPassed => "check passed",
        Event::CheckFailed { .. } => "check failed",
        Event::Built { .. } => "extract built",
        Event::BuildFailed { .. } => "build failed",
        Event::Continue => "Continue",
        Event::CopcAcked { .. } => "COPC acknowledged",
        Event::CopcNacked { .. } => "COPC refused",
        Event::FinalAck { .. } => "final acknowledgement",
        Event::Tick { .. } => "tick",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> MessageId {
        MessageId::new(s)
    }

    fn step(s: State, e: Event) -> (State, Vec<Action>) {
        s.step(e)
            .unwrap_or_else(|(s, r)| panic!("refused in {s:?}: {r}"))
    }

    fn built(copcs: &[&str]) -> (State, Vec<Action>) {
        let (s, _) = State::new(id("req"));
        let (s, actions) = step(s, Event::CheckPassed);
        assert_eq!(actions, vec![Action::Build]);
        step(
            s,
            Event::Built {
                extract_id: id("ext"),
                copcs: copcs.iter().map(|c| id(c)).collect(),
                now_ms: 1_000,
            },
        )
    }

    #[test]
    fn a_small_record_is_sent_and_the_request_acknowledged_at_once() {
        let (s, actions) = built(&[]);
        assert_eq!(
            actions,
            vec![
                Action::SendExtract {
                    extract_id: id("ext")
                },
                Action::AckRequest {
                    request_id: id("req"),
                    code: None
                }
            ]
        );
        assert!(
            matches!(s, State::AwaitingFinalAck { deadline_ms, .. } if deadline_ms == 1_000 + FINAL_ACK_WAIT_MS)
        );
        let (s, _) = step(s, Event::FinalAck { code: None });
        assert_eq!(s, State::Done(Outcome::Integrated { code: None }));
    }

    #[test]
    fn a_failed_check_nacks_the_request_with_its_code() {
        for code in [
            ReasonCode::PatientNotAtSurgery,
            ReasonCode::MessagingNotEnabled,
            ReasonCode::RequestNotWellFormed,
            ReasonCode::NotCurrentProvider,
        ] {
            let (s, _) = State::new(id("req"));
            let (s, actions) = step(s, Event::CheckFailed { code });
            assert_eq!(s, State::Done(Outcome::Refused { code }));
            assert_eq!(
                actions,
                vec![Action::AckRequest {
                    request_id: id("req"),
                    code: Some(code)
                }]
            );
        }
    }

    #[test]
    fn a_build_failure_nacks_with_10() {
        let (s, _) = State::new(id("req"));
        let (s, _) = step(s, Event::CheckPassed);
        let (s, actions) = step(
            s,
            Event::BuildFailed {
                reason: "record unreadable".into(),
            },
        );
        assert!(matches!(
            s,
            State::Done(Outcome::Failed {
                code: ReasonCode::FailedToGenerateExtract,
                ..
            })
        ));
        assert_eq!(
            actions,
            vec![Action::AckRequest {
                request_id: id("req"),
                code: Some(ReasonCode::FailedToGenerateExtract)
            }]
        );
    }

    #[test]
    fn a_large_record_waits_for_continue_then_for_every_copc_ack() {
        let (s, actions) = built(&["c1", "c2", "c3"]);
        assert_eq!(
            actions,
            vec![Action::SendExtract {
                extract_id: id("ext")
            }]
        );
        let (s, actions) = step(s, Event::Continue);
        assert_eq!(
            actions,
            vec![Action::SendCopcs {
                message_ids: vec![id("c1"), id("c2"), id("c3")]
            }]
        );
        // A repeated Continue sends nothing twice.
        let (s, actions) = step(s, Event::Continue);
        assert!(actions.is_empty());
        let (s, actions) = step(
            s,
            Event::CopcAcked {
                message_id: id("c3"),
            },
        );
        assert!(actions.is_empty());
        let (s, _) = step(
            s,
            Event::CopcAcked {
                message_id: id("c1"),
            },
        );
        // Acknowledging c1 again is refused as unknown now, state unchanged.
        let (s, refusal) = s
            .step(Event::CopcAcked {
                message_id: id("c1"),
            })
            .unwrap_err();
        assert_eq!(refusal, Refusal::UnknownCopc(id("c1")));
        let (s, actions) = step(
            s,
            Event::CopcAcked {
                message_id: id("c2"),
            },
        );
        assert_eq!(
            actions,
            vec![Action::AckRequest {
                request_id: id("req"),
                code: None
            }]
        );
        assert!(matches!(s, State::AwaitingFinalAck { .. }));
    }

    #[test]
    fn final_acks_are_classified_integrated_or_rejected() {
        for (code, expected) in [
            (None, Outcome::Integrated { code: None }),
            (
                Some(ReasonCode::AbaSuppressed),
                Outcome::Integrated {
                    code: Some(ReasonCode::AbaSuppressed),
                },
            ),
            (
                Some(ReasonCode::ReturningPatientFiledAsAttachment),
                Outcome::Integrated {
                    code: Some(ReasonCode::ReturningPatientFiledAsAttachment),
                },
            ),
            (
                Some(ReasonCode::FailedToIntegrate),
                Outcome::Rejected {
                    code: ReasonCode::FailedToIntegrate,
                },
            ),
            (
                Some(ReasonCode::NonAbaWrongPatient),
                Outcome::Rejected {
                    code: ReasonCode::NonAbaWrongPatient,
                },
            ),
        ] {
            let (s, _) = built(&[]);
            let (s, _) = step(s, Event::FinalAck { code });
            assert_eq!(s, State::Done(expected));
        }
    }

    #[test]
    fn a_copc_nack_or_an_early_final_nack_ends_a_large_transfer() {
        let (s, _) = built(&["c1"]);
        let (s, _) = step(s, Event::Continue);
        let (done, _) = step(
            s.clone(),
            Event::CopcNacked {
                message_id: id("c1"),
                code: ReasonCode::ReassemblyFailure,
            },
        );
        assert!(matches!(
            done,
            State::Done(Outcome::Failed {
                code: ReasonCode::ReassemblyFailure,
                ..
            })
        ));
        let (done, _) = step(
            s,
            Event::FinalAck {
                code: Some(ReasonCode::LargeMessageTimeout),
            },
        );
        assert_eq!(
            done,
            State::Done(Outcome::Rejected {
                code: ReasonCode::LargeMessageTimeout
            })
        );
    }

    #[test]
    fn eight_days_without_a_final_ack_fail_with_99() {
        for copcs in [&[][..], &["c1"][..]] {
            let (s, _) = built(copcs);
            let (s, actions) = step(
                s,
                Event::Tick {
                    now_ms: 1_000 + FINAL_ACK_WAIT_MS - 1,
                },
            );
            assert!(!matches!(s, State::Done(_)) && actions.is_empty());
            let (s, _) = step(
                s,
                Event::Tick {
                    now_ms: 1_000 + FINAL_ACK_WAIT_MS,
                },
            );
            assert!(
                matches!(
                    s,
                    State::Done(Outcome::Failed {
                        code: ReasonCode::Unexpected,
                        ..
                    })
                ),
                "{s:?}"
            );
        }
    }

    #[test]
    fn out_of_order_events_change_nothing() {
        let cases: Vec<(State, Event)> = vec![
            (State::new(id("req")).0, Event::Continue),
            (State::new(id("req")).0, Event::FinalAck { code: None }),
            (
                State::new(id("req")).0,
                Event::Built {
                    extract_id: id("e"),
                    copcs: vec![],
                    now_ms: 0,
                },
            ),
            (
                State::Building {
                    request_id: id("req"),
                },
                Event::CheckPassed,
            ),
            (built(&[]).0, Event::Continue),
            (
                built(&[]).0,
                Event::CopcAcked {
                    message_id: id("c1"),
                },
            ),
            (
                State::Done(Outcome::Integrated { code: None }),
                Event::FinalAck { code: None },
            ),
            (
                State::Done(Outcome::Integrated { code: None }),
                Event::Continue,
            ),
        ];
        for (s, e) in cases {
            let (back, refusal) = s.clone().step(e.clone()).unwrap_err();
            assert_eq!(back, s, "{e:?}");
            assert!(matches!(refusal, Refusal::OutOfOrder { .. }), "{refusal}");
        }
    }

    #[test]
    fn states_survive_a_round_trip_through_storage() {
        let (s, _) = built(&["c1", "c2"]);
        let (s, _) = step(s, Event::Continue);
        let json = serde_json::to_string(&s).unwrap();
        let back: State = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.request_id(), Some(&id("req")));
    }
}
