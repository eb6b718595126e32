//! The life of an outbound message, as types.
//!
//! Each state is its own type and each transition is a method that consumes the state it
//! leaves, so an impossible transition (acknowledging a message that was never sent,
//! retrying a delivered one) does not compile. [`OutboundState`] is the sum of them, what a
//! delivery-status query answers and what the database row holds.
//!
//! ```text
//!            send()
//!              │ persisted
//!              ▼
//!          ┌────────┐ start  ┌──────────┐ acknowledged ┌───────────┐
//!          │Pending ├───────►│ InFlight ├─────────────►│ Delivered │
//!          └────────┘        └┬──┬───┬──┘              └───────────┘
//!                 ┌───────────┘  │   │ rejected (ebXML error, client fault)
//!    transient /  │  ┌──────────┐│   ▼
//!    abandoned    └─►│ Retrying ││ ┌────────┐
//!    (retries left)  └────┬─────┘└►│ Failed │ transient / abandoned, no retries left
//!                         │ start   └────────┘ or persist duration over
//!                         └──────► InFlight
//! ```

/// How hard to try: from SDS's reliability settings for the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`nhsMHSRetries`).
    pub retries: u32,
    /// Wait between attempts, in milliseconds (`nhsMHSRetryInterval`).
    pub retry_interval_ms: i64,
    /// The last moment an attempt may start: accepted-at plus `nhsMHSPersistDuration`.
    pub expires_at: i64,
}

/// Persisted, never tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending;

/// An attempt is under way (the HTTP POST is out, its answer not yet in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// Which attempt, from 1.
    pub attempt: u32,
}

/// The last attempt failed in a way another might not; the next is due at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retrying {
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (Unix ms).
    pub next_attempt_at: i64,
    /// Why the last attempt failed.
    pub last_error: String,
}

/// The next MHS acknowledged the message: it is its responsibility now. Final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// When the acknowledgment came (Unix ms).
    pub at: i64,
    /// Attempts it took.
    pub attempts: u32,
}

/// Given up. Final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Why, in words for the person who has to act.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again later.
    Retry(Retrying),
    /// Give up.
    GiveUp(Failed),
}

impl Pending {
    /// The first attempt starts.
    pub fn start(self) -> InFlight {
        InFlight { attempt: 1 }
    }
}

impl Retrying {
    /// The next attempt starts.
    pub fn start(self) -> InFlight {
        InFlight {
            attempt: self.attempts + 1,
        }
    }
}

impl InFlight {
    /// The receiver answered with an `eb:Acknowledgment` of this message.
    pub fn acknowledged(self, now: i64) -> Delivered {
        Delivered {
            at: now,
            attempts: self.attempt,
        }
    }

    /// The receiver refused the message (an `eb:ErrorList`, a client SOAP fault): sending
    /// the same bytes again cannot help.
    pub fn rejected(self, reason: impl Into<String>) -> Failed {
        Failed {
            reason: reason.into(),
            attempts: self.attempt,
        }
    }

    /// The attempt failed in a way that may pass (no connection, connection closed, no
    /// answer in time, a server fault): retry after the interval if the policy allows.
    pub fn transient(
        self,
        error: impl Into<String>,
        now: i64,
        policy: &RetryPolicy,
    ) -> AfterFailure {
        let error = error.into();
        let next = now.saturating_add(policy.retry_interval_ms);
        if self.attempt > policy.retries {
            AfterFailure::GiveUp(Failed {
                reason: format!(
                    "no acknowledgment after {} attempts ({} retries allowed by SDS); last error: {error}",
                    self.attempt, policy.retries
                ),
                attempts: self.attempt,
            })
        } else if next > policy.expires_at {
            AfterFailure::GiveUp(Failed {
                reason: format!(
                    "no acknowledgment within the persist duration ({} attempts); last error: {error}",
                    self.attempt
                ),
                attempts: self.attempt,
            })
        } else {
            AfterFailure::Retry(Retrying {
                attempts: self.attempt,
                next_attempt_at: next,
                last_error: error,
            })
        }
    }

    /// The MHS running the attempt stopped before it ended (its lease ran out): counts as
    /// a failed attempt, and the next one, if allowed, is due at once.
    pub fn abandoned(self, now: i64, policy: &RetryPolicy) -> AfterFailure {
        match self.transient("the attempt was interrupted (the MHS stopped)", now, policy) {
            AfterFailure::Retry(r) => AfterFailure::Retry(Retrying {
                next_attempt_at: now,
                ..r
            }),
            give_up => give_up,
        }
    }
}

/// Where an outbound message is: the answer to a delivery-status query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundState {
    /// See [`Pending`].
    Pending(Pending),
    /// See [`InFlight`].
    InFlight(InFlight),
    /// See [`Retrying`].
    Retrying(Retrying),
    /// See [`Delivered`].
    Delivered(Delivered),
    /// See [`Failed`].
    Failed(Failed),
}

impl OutboundState {
    /// Delivered or failed: nothing more will happen.
    pub fn is_final(&self) -> bool {
        matches!(self, OutboundState::Delivered(_) | OutboundState::Failed(_))
    }

    /// The name stored in the database.
    pub fn name(&self) -> &'static str {
        match self {
            OutboundState::Pending(_) => "pending",
            OutboundState::InFlight(_) => "in_flight",
            OutboundState::Retrying(_) => "retrying",
            OutboundState::Delivered(_) => "delivered",
            OutboundState::Failed(_) => "failed",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn policy(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            retry_interval_ms: 1_000,
            expires_at: 100_000,
        }
    }

    #[test]
    fn pending_starts_the_first_attempt() {
        assert_eq!(Pending.start(), InFlight { attempt: 1 });
    }

    #[test]
    fn an_acknowledged_attempt_is_delivered() {
        let d = Pending.start().acknowledged(5);
        assert_eq!(d, Delivered { at: 5, attempts: 1 });
    }

    #[test]
    fn a_rejected_attempt_fails_at_once_whatever_the_retries() {
        let f = Pending.start().rejected("ValueNotRecognized: wrong To");
        assert_eq!(f.attempts, 1);
        assert!(f.reason.contains("wrong To"));
    }

    #[test]
    fn a_transient_failure_with_retries_left_waits_the_interval() {
        let AfterFailure::Retry(r) = Pending.start().transient("refused", 10, &policy(2)) else {
            panic!("should retry");
        };
        assert_eq!(r.next_attempt_at, 1_010);
        assert_eq!(r.attempts, 1);
        assert_eq!(r.clone().start(), InFlight { attempt: 2 });
    }

    #[test]
    fn retries_run_out_after_one_plus_retries_attempts() {
        let p = policy(2);
        let mut flight = Pending.start();
        for _ in 0..2 {
            match flight.transient("x", 0, &p) {
                AfterFailure::Retry(r) => flight = r.start(),
                AfterFailure::GiveUp(f) => panic!("gave up early: {f:?}"),
            }
        }
        assert_eq!(flight.attempt, 3);
        let AfterFailure::GiveUp(f) = flight.transient("closed", 0, &p) else {
            panic!("should give up");
        };
        assert_eq!(f.attempts, 3);
        assert!(f.reason.contains("after 3 attempts"), "{}", f.reason);
        assert!(f.reason.contains("closed"));
    }

    #[test]
    fn the_persist_duration_ends_retrying_even_with_retries_left() {
        let AfterFailure::GiveUp(f) = Pending.start().transient("x", 99_500, &policy(10)) else {
            panic!("should give up");
        };
        assert!(f.reason.contains("persist duration"), "{}", f.reason);
    }

    #[test]
    fn an_abandoned_attempt_is_retried_at_once_or_given_up() {
        let AfterFailure::Retry(r) = Pending.start().abandoned(50, &policy(1)) else {
            panic!("should retry");
        };
        assert_eq!(r.next_attempt_at, 50);
        let AfterFailure::GiveUp(_) = r.start().abandoned(60, &policy(1)) else {
            panic!("should give up");
        };
    }

    #[test]
    fn only_delivered_and_failed_are_final() {
        assert!(!OutboundState::Pending(Pending).is_final());
        assert!(!OutboundState::InFlight(InFlight { attempt: 1 }).is_final());
        assert!(
            !OutboundState::Retrying(Retrying {
                attempts: 1,
                next_attempt_at: 0,
                last_error: String::new()
            })
            .is_final()
        );
        assert!(OutboundState::Delivered(Delivered { at: 0, attempts: 1 }).is_final());
        assert!(
            OutboundState::Failed(Failed {
                reason: String::new(),
                attempts: 1
            })
            .is_final()
        );
    }
}
