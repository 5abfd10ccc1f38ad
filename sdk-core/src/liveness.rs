//! Whether a link is alive: every rule that declares a link dead, or that asks it to prove it is
//! alive, lives here. A link's [`Liveness`] remembers when the server was last heard, the ping
//! beat and a running liveness check, and decides:
//!
//! - when silence makes a live link dead ([`Liveness::silence_deadline`]), and whether a missed
//!   silence deadline means death or a freeze ([`Liveness::on_silence_deadline`]: a timer that
//!   fired far past its deadline means the process was frozen or asleep; this is the only freeze
//!   detector: drivers only report platform events, as [`crate::Input::Resumed`]);
//! - when a live WebSocket pings ([`Liveness::ping_due`]);
//! - whether a quiet link must prove it is alive ([`Liveness::needs_check`]) after a freeze, a
//!   network change or the page becoming visible;
//! - whether a live SSE stream holds frames back ([`Liveness::held_back`]).
//!
//! Judged by elapsed time since the last frame, never by counting timer ticks. No I/O here: the
//! session carries the decisions out (a ping, dropping the link).

use crate::time::Instant;
use crate::transport::TransportKind;
use std::time::Duration;

/// A timer that fires later than this after its deadline means the process was frozen or asleep:
/// a silent link then gets a liveness check instead of being declared dead at once.
const LATE_TOLERANCE: Duration = Duration::from_millis(1_500);

/// A frame on a live SSE stream arriving more than the heartbeat interval plus this (in
/// milliseconds) after the previous one was held back on the way (the server never stays silent
/// longer than a heartbeat).
pub(crate) const HELD_BACK_MARGIN_MS: u64 = 2_000;

/// What a silence deadline that passed means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Silence {
    /// The link is dead.
    Dead,
    /// The timer fired late: the process was frozen or asleep. Frames may be waiting to be read;
    /// the link gets a moment to prove itself ([`Liveness::start_check`]).
    Check,
}

/// One link's liveness.
#[derive(Debug, Clone)]
pub(crate) struct Liveness {
    kind: TransportKind,
    last_rx: Instant,
    /// How long the link may stay silent once live.
    silence_limit: Duration,
    /// A liveness check is running: the link must hear something before this instant.
    verify_until: Option<Instant>,
    /// The last ping: its `t` and when it went out.
    last_ping: Option<(u64, Instant)>,
    /// When `hello` arrived (the start of the ping beat).
    live_at: Instant,
    /// How often a live WebSocket pings, in microseconds, set from the server's `hello`.
    ping_every_us: u64,
    /// A frame arriving this many microseconds after the previous one on a live SSE stream was
    /// held back on the way: the server's heartbeat interval plus a margin.
    held_back_after_us: u64,
}

impl Liveness {
    pub fn new(kind: TransportKind, now: Instant, silence: Duration) -> Self {
        Liveness {
            kind,
            last_rx: now,
            silence_limit: silence,
            verify_until: None,
            last_ping: None,
            live_at: now,
            ping_every_us: u64::MAX / 2,
            held_back_after_us: u64::MAX / 2,
        }
    }

    /// The socket opened: its silence counts from now.
    pub fn opened(&mut self, now: Instant) {
        self.last_rx = now;
    }

    /// Something arrived from the server: a running check is passed.
    pub fn heard(&mut self, now: Instant) {
        self.last_rx = now;
        self.verify_until = None;
    }

    /// The server's `hello` made the link live: the silence allowed follows the server's
    /// heartbeat (at least `liveness_timeout`), the ping beat starts.
    pub fn went_live(
        &mut self,
        now: Instant,
        heartbeat_ms: u64,
        liveness_timeout: Duration,
        ping_every_us: u64,
    ) {
        let heartbeat = Duration::from_millis(heartbeat_ms.saturating_add(3_000));
        self.live_at = now;
        self.ping_every_us = ping_every_us;
        self.held_back_after_us = heartbeat_ms
            .saturating_add(HELD_BACK_MARGIN_MS)
            .saturating_mul(1_000);
        self.heard(now);
        self.silence_limit = liveness_timeout.max(heartbeat);
    }

    /// A frame arriving `now` on a live link was held back on the way: alive, yet silent for
    /// longer than the server ever is (a buffering proxy). Only SSE is judged so.
    pub fn held_back(&self, now: Instant) -> bool {
        self.kind == TransportKind::Sse
            && self.verify_until.is_none()
            && now.as_micros() > self.last_rx.as_micros() + self.held_back_after_us
    }

    /// When a live link's silence makes it dead. `poll_deadline` is a long poll's own deadline.
    pub fn silence_deadline(&self, poll_deadline: Option<Instant>) -> Option<Instant> {
        // A running liveness check replaces the ordinary deadline: it is set only once the link has
        // been quiet for a while, and for a long poll the ordinary deadline may already be past.
        if let Some(v) = self.verify_until {
            return Some(v);
        }
        match self.kind {
            TransportKind::LongPoll => poll_deadline,
            _ => Some(self.last_rx + self.silence_limit),
        }
    }

    /// What the silence deadline `at`, handled at `now`, means.
    pub fn on_silence_deadline(&self, now: Instant, at: Instant) -> Silence {
        if now > at + LATE_TOLERANCE && self.verify_until.is_none() {
            Silence::Check
        } else {
            Silence::Dead
        }
    }

    /// When a `ping` is due on a live WebSocket: `ping_every_us` after the last one (or after
    /// `hello`).
    pub fn ping_due(&self) -> Option<Instant> {
        if self.kind != TransportKind::WebSocket {
            return None;
        }
        // Pings go out on a steady beat, whether or not the server is talking: the server (and
        // every middlebox on the way) judges the client's liveness by what it hears *from the
        // client*, so a listen-only client on a busy stream must still speak. Every pong also
        // measures the round trip.
        let since = match self.last_ping {
            Some((_, at)) => at,
            None => self.live_at,
        };
        Some(Instant::from_micros(
            since.as_micros().saturating_add(self.ping_every_us),
        ))
    }

    /// A ping numbered `t` went out.
    pub fn pinged(&mut self, t: u64, now: Instant) {
        self.last_ping = Some((t, now));
    }

    /// A pong for `t` arrived: the round trip, if it answers the last ping.
    pub fn pong(&self, t: u64, now: Instant) -> Option<Duration> {
        let (sent_t, sent_at) = self.last_ping?;
        (sent_t == t).then(|| now.saturating_duration_since(sent_at))
    }

    /// Whether a live link quiet for at least `quiet_for` must prove it is alive now. A long poll
    /// never: the server may legitimately hold it, and its own deadline judges it.
    pub fn needs_check(&self, now: Instant, quiet_for: Duration) -> bool {
        self.verify_until.is_none()
            && now >= self.last_rx + quiet_for
            && self.kind != TransportKind::LongPoll
    }

    /// Starts a liveness check: the link must hear something within `grace`. True when a ping
    /// must go out to draw an answer (a WebSocket).
    pub fn start_check(&mut self, now: Instant, grace: Duration) -> bool {
        self.verify_until = Some(now + grace);
        self.kind == TransportKind::WebSocket
    }

    /// How long nothing had moved either way on the link, in milliseconds, when it was cut at
    /// `now` (for learning a middlebox's idle timeout).
    pub fn idle_ms(&self, now: Instant) -> u64 {
        let last_ping = self.last_ping.map_or(self.live_at, |(_, at)| at);
        let last_moved = self.last_rx.max(last_ping).max(self.live_at);
        now.as_micros().saturating_sub(last_moved.as_micros()) / 1_000
    }
}
