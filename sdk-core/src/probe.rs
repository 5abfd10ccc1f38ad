//! Probing a better rung while the session is degraded: which rung to probe next, whether the
//! probe must prove prompt delivery before the session moves to it, and when to probe again (its
//! own backoff). SSE is the rung a buffering proxy holds back (a WebSocket is a tunnel, a poll
//! answer is complete): the session moves there only after a probe proved it prompt, and after an
//! SSE probe failed to, the next probe goes past SSE, so that a WebSocket that works again is found
//! even while SSE stays held back.
//!
//! Randomness comes from the session's seeded generator, passed in. No clock, no I/O.

use crate::backoff::{Backoff, BackoffPolicy};
use crate::ladder::Ladder;
use crate::transport::TransportKind;
use rand::rngs::SmallRng;
use std::time::Duration;

/// The probing state of one session.
#[derive(Debug)]
pub(crate) struct Probing {
    backoff: Backoff,
    /// A rung whose probe proved prompt delivery: the next probe of it moves on `hello`.
    proven: Option<TransportKind>,
    /// An SSE probe failed to prove itself: the next probe goes past SSE.
    past_sse: bool,
}

impl Probing {
    pub fn new(policy: BackoffPolicy) -> Self {
        Probing {
            backoff: Backoff::new(policy),
            proven: None,
            past_sse: false,
        }
    }

    /// The rung to probe while `live` carries the session, and whether the probe must prove
    /// prompt delivery after its `hello`.
    pub fn next(&mut self, ladder: &Ladder, live: TransportKind) -> Option<(TransportKind, bool)> {
        let mut above = ladder.above(live);
        if above == Some(TransportKind::Sse) && std::mem::take(&mut self.past_sse) {
            above = ladder.above(TransportKind::Sse).or(above);
        }
        let above = above?;
        let needs_proof = above == TransportKind::Sse && self.proven.take() != Some(above);
        Some((above, needs_proof))
    }

    /// A probe of `kind` proved prompt delivery: a fresh probe of it moves the session there as
    /// soon as it says `hello`.
    pub fn proven(&mut self, kind: TransportKind) {
        self.proven = Some(kind);
    }

    /// A probe failed (`had_to_prove`: it was one that had to prove prompt delivery): how long
    /// until the next.
    pub fn failed(&mut self, had_to_prove: bool, rng: &mut SmallRng) -> Duration {
        self.past_sse = had_to_prove;
        self.backoff.next_delay(rng)
    }

    /// The session went live on a rung: how long until the first probe when a better rung is
    /// `worth_probing` (the session is degraded), or none, the backoff starting over.
    pub fn after_connected(&mut self, worth_probing: bool, rng: &mut SmallRng) -> Option<Duration> {
        if worth_probing {
            Some(self.backoff.next_delay(rng))
        } else {
            self.backoff.reset();
            None
        }
    }
}
