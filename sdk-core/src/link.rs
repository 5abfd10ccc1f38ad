//! One attempt to use one transport (a "link"): its phase, what is in flight on it, when it last
//! heard from the server, and the deadlines that follow from that.
//!
//! Liveness is judged by elapsed time since the last frame, never by counting timer ticks. A link
//! computes its deadlines; the session decides what a missed deadline means. No I/O here.

use crate::time::Instant;
use crate::transport::{RequestId, SocketId, TransportKind};
use std::time::Duration;

/// Why a link was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// To connect (the first rung, or the next one racing it).
    Attempt,
    /// To move up from a degraded rung while another link carries the session.
    Probe,
}

/// How far a link has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The socket (or the first poll) was asked for.
    Opening,
    /// The socket is open; the server's `hello` has not arrived.
    AwaitingHello { opened_at: Instant },
    /// A probe's `hello` arrived, but the rung must show prompt delivery before the session
    /// moves to it (SSE, which a buffering proxy can hold back): a `heartbeat` at least half a
    /// heartbeat after `hello`, no message later than the live link's copy, by `deadline`.
    Proving {
        /// Half a heartbeat after `hello`: frames from then on can prove the rung.
        judged_from: Instant,
        deadline: Instant,
        /// A timely heartbeat arrived: proven at this instant unless a late message shows up.
        settles_at: Option<Instant>,
    },
    /// `hello` arrived: frames flow.
    Live,
}

/// A long-poll request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollRequest {
    pub request: RequestId,
    pub sent_at: Instant,
    pub deadline: Instant,
}

/// An HTTP send batch in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    pub request: RequestId,
    /// The messages in the batch.
    pub ids: Vec<crate::event::MsgId>,
    /// The other frames in the batch (subscriptions, typing), re-queued if the batch fails.
    pub ops: Vec<crate::protocol::ClientFrame>,
    /// The size of the request body, in bytes.
    pub bytes: usize,
    /// A batch not answered by then is abandoned and sent again: a request stuck on a dead
    /// pooled connection must not hold every later send back for as long as the stream lives.
    pub deadline: Instant,
}

/// What a missed link deadline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkTimer {
    Connect,
    FirstFrame,
    /// A proving probe showed no prompt delivery in time.
    ProofDeadline,
    /// A proving probe showed prompt delivery.
    Proven,
    Silence,
    Ping,
    SendRetry,
    SendDeadline,
}

#[derive(Debug, Clone)]
pub struct Link {
    pub id: u64,
    pub kind: TransportKind,
    pub role: Role,
    pub phase: Phase,
    pub started_at: Instant,
    pub socket: Option<SocketId>,
    pub poll: Option<PollRequest>,
    pub send: Option<SendRequest>,
    pub send_retry_at: Option<Instant>,
    /// The cursor this link was opened with.
    pub opened_with_cursor: Option<u64>,
    pub last_rx: Instant,
    /// How long the link may stay silent once live.
    pub silence_limit: Duration,
    /// A liveness check is running: the link must hear something before this instant.
    pub verify_until: Option<Instant>,
    pub last_ping: Option<(u64, Instant)>,
    /// When `hello` arrived (the start of the ping beat).
    pub live_at: Instant,
    /// How often a live WebSocket pings, in microseconds, set from the server's `hello` (see
    /// `Session::ping_interval_for`).
    pub ping_every_us: u64,
    /// The server said `going_away`: reconnect within this window.
    pub going_away: Option<Duration>,
    /// The server's SSE `retry:` hint: wait at least this long before reconnecting.
    pub retry_hint: Option<Duration>,
    /// Subscriptions were (re)asserted on this link.
    pub subscriptions_sent: bool,
    /// A probe that must prove prompt delivery after `hello` before the session moves to it.
    pub needs_proof: bool,
    /// A frame arriving this many microseconds after the previous one on a live SSE stream was
    /// held back on the way: the server's heartbeat interval (from `hello`) plus a margin.
    pub held_back_after_us: u64,
}

impl Link {
    pub fn new(id: u64, kind: TransportKind, role: Role, now: Instant, silence: Duration) -> Self {
        Link {
            id,
            kind,
            role,
            phase: Phase::Opening,
            started_at: now,
            socket: None,
            poll: None,
            send: None,
            send_retry_at: None,
            opened_with_cursor: None,
            last_rx: now,
            silence_limit: silence,
            verify_until: None,
            last_ping: None,
            live_at: now,
            ping_every_us: u64::MAX / 2,
            going_away: None,
            retry_hint: None,
            subscriptions_sent: false,
            needs_proof: false,
            held_back_after_us: u64::MAX / 2,
        }
    }

    pub fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Live)
    }

    /// Something arrived from the server.
    pub fn heard(&mut self, now: Instant) {
        self.last_rx = now;
        self.verify_until = None;
    }

    /// When this link's silence makes it dead, if it is live.
    pub fn silence_deadline(&self) -> Option<Instant> {
        if !self.is_live() {
            return None;
        }
        // A running liveness check replaces the ordinary deadline: it is set only once the link has
        // been quiet for a while, and for a long poll the ordinary deadline may already be past.
        if let Some(v) = self.verify_until {
            return Some(v);
        }
        let by_silence = match self.kind {
            TransportKind::LongPoll => self.poll.map(|p| p.deadline)?,
            _ => self.last_rx + self.silence_limit,
        };
        Some(by_silence)
    }

    /// When a `ping` is due on a live WebSocket: `ping_every_us` after the last one (or after `hello`).
    pub fn ping_due(&self) -> Option<Instant> {
        if !self.is_live() || self.kind != TransportKind::WebSocket {
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

    /// The earliest deadline of this link and what it is.
    pub fn next_timer(
        &self,
        connect_timeout: Duration,
        first_frame_timeout: Duration,
    ) -> Option<(Instant, LinkTimer)> {
        // A running minimum rather than a list: no allocation, and less code in the browser
        // bundle. The first of equal deadlines wins.
        let mut best: Option<(Instant, LinkTimer)> = None;
        let mut consider = |at: Option<Instant>, timer: LinkTimer| {
            if let Some(at) = at {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, timer));
                }
            }
        };
        match self.phase {
            Phase::Opening => consider(Some(self.started_at + connect_timeout), LinkTimer::Connect),
            Phase::AwaitingHello { opened_at } => {
                consider(Some(opened_at + first_frame_timeout), LinkTimer::FirstFrame)
            }
            Phase::Proving {
                deadline,
                settles_at,
                ..
            } => {
                consider(Some(deadline), LinkTimer::ProofDeadline);
                consider(settles_at, LinkTimer::Proven);
            }
            Phase::Live => {
                consider(self.silence_deadline(), LinkTimer::Silence);
                consider(self.ping_due(), LinkTimer::Ping);
                consider(self.send_retry_at, LinkTimer::SendRetry);
                consider(
                    self.send.as_ref().map(|s| s.deadline),
                    LinkTimer::SendDeadline,
                );
            }
        }
        best
    }
}
