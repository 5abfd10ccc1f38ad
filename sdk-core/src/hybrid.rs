//! The hybrid strategy (issue 14): messages on one link (SSE, then long polling), presence and
//! typing on a second one (a WebSocket with `carry=ephemeral`).
//!
//! This module owns the second link's state and its rules: when it is retried (its own backoff,
//! forgotten once it stayed up `stable_after`), and what the messages link must carry meanwhile
//! (`carry=messages` while the ephemeral WebSocket is live, `carry=all` otherwise, so presence
//! and typing still arrive). The session's side is `session/hybrid.rs`. No I/O here.

use crate::backoff::{Backoff, BackoffPolicy};
use crate::config::Config;
use crate::link::Link;
use crate::time::Instant;
use rand::rngs::SmallRng;
use std::time::Duration;

/// How the session uses the transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// One link at a time carries everything, on the best rung of the ladder (the default).
    #[default]
    Single,
    /// Messages on SSE (then long polling), presence and typing on a WebSocket of their own.
    Hybrid,
}

/// What a stream carries (the `carry` query parameter, docs/PROTOCOL.md "Split streams").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Carry {
    /// Everything (no parameter: the URL of the single strategy).
    #[default]
    All,
    /// Stored messages only.
    Messages,
    /// Presence and typing only.
    Ephemeral,
}

impl Carry {
    /// Whether stored messages go on such a stream.
    pub fn messages(self) -> bool {
        self != Carry::Ephemeral
    }

    /// Whether presence and typing frames go on such a stream.
    pub fn ephemeral(self) -> bool {
        self != Carry::Messages
    }

    /// The query suffix that asks for it (empty for `All`, and in a build without the `hybrid`
    /// feature, where only `All` is used).
    pub fn query(self) -> &'static str {
        if !cfg!(feature = "hybrid") {
            return "";
        }
        match self {
            Carry::All => "",
            Carry::Messages => "&carry=messages",
            Carry::Ephemeral => "&carry=ephemeral",
        }
    }
}

/// Where a session keeps its ephemeral link: `Option<Ephemeral>` (`None` under the single
/// strategy). Without the `hybrid` feature (the browser bundle, for its size budget) it is a slot
/// that is always empty, so the compiler drops every step of the strategy.
#[cfg(feature = "hybrid")]
pub(crate) type EphemeralSlot = Option<Ephemeral>;

/// The slot of a new session: an ephemeral link to keep under the hybrid strategy.
#[cfg(feature = "hybrid")]
pub(crate) fn ephemeral_slot(config: &Config) -> EphemeralSlot {
    (config.strategy == Strategy::Hybrid).then(|| Ephemeral::new(config.backoff))
}

/// The slot of a new session: always empty in this build.
#[cfg(not(feature = "hybrid"))]
pub(crate) fn ephemeral_slot(_config: &Config) -> EphemeralSlot {
    EphemeralSlot
}

/// The always empty slot of a build without the `hybrid` feature.
#[cfg(not(feature = "hybrid"))]
#[derive(Debug)]
pub(crate) struct EphemeralSlot;

#[cfg(not(feature = "hybrid"))]
impl EphemeralSlot {
    pub fn as_ref(&self) -> Option<&Ephemeral> {
        None
    }

    pub fn as_mut(&mut self) -> Option<&mut Ephemeral> {
        None
    }
}

/// The ephemeral link of a hybrid session and when to try it again.
#[derive(Debug)]
pub(crate) struct Ephemeral {
    /// The WebSocket opening or open, if any.
    pub link: Option<Link>,
    backoff: Backoff,
    /// When the link said `hello`.
    live_since: Option<Instant>,
}

impl Ephemeral {
    #[cfg_attr(not(feature = "hybrid"), allow(dead_code))]
    pub fn new(policy: BackoffPolicy) -> Self {
        Ephemeral {
            link: None,
            backoff: Backoff::new(policy),
            live_since: None,
        }
    }

    /// Whether the WebSocket is live: then the messages link carries messages only.
    pub fn is_live(&self) -> bool {
        self.link.as_ref().is_some_and(Link::is_live)
    }

    /// What the messages link should carry now.
    pub fn messages_carry(&self) -> Carry {
        if self.is_live() {
            Carry::Messages
        } else {
            Carry::All
        }
    }

    pub fn went_live(&mut self, now: Instant) {
        self.live_since = Some(now);
    }

    /// The link failed (or never opened) at `now`: it is forgotten, and this is how long to wait
    /// before the next try. A link that stayed up `stable_after` forgets past failures first, so
    /// a middlebox that cuts it now and then does not drive the backoff up, while one that cuts
    /// every WebSocket at once keeps the retries spaced out.
    pub fn failed(&mut self, now: Instant, stable_after: Duration, rng: &mut SmallRng) -> Duration {
        self.link = None;
        if self
            .live_since
            .take()
            .is_some_and(|since| now >= since + stable_after)
        {
            self.backoff.reset();
        }
        self.backoff.next_delay(rng)
    }
}
