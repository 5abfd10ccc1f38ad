//! One attempt to use one transport (a "link"): its phase, what is in flight on it, its liveness
//! (see [`crate::liveness`]), and the deadlines that follow from them. No I/O here.

use crate::hybrid::Carry;
use crate::liveness::{Liveness, HELD_BACK_MARGIN_MS};
use crate::time::Instant;
use crate::timer::TimerReason;
use crate::transport::{RequestId, SocketId, TransportKind};
use std::time::Duration;

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

impl Phase {
    /// A probe's `hello` arrived at `now` from a server that sends a heartbeat every
    /// `heartbeat_ms`: frames from half a heartbeat on can prove the rung prompt, until a
    /// heartbeat plus the held-back margin.
    pub fn proving(now: Instant, heartbeat_ms: u64) -> Phase {
        let hb_us = heartbeat_ms.min(u64::MAX / 4_000) * 1_000;
        let at = |us: u64| Instant::from_micros(now.as_micros().saturating_add(us));
        Phase::Proving {
            judged_from: at(hb_us / 2),
            deadline: at(hb_us + HELD_BACK_MARGIN_MS * 1_000),
            settles_at: None,
        }
    }
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

#[derive(Debug, Clone)]
pub struct Link {
    pub id: u64,
    pub kind: TransportKind,
    pub phase: Phase,
    pub started_at: Instant,
    /// The socket; `None` for a long poll, and for an SSE stream that failed and whose status is
    /// being asked (see `Session::ask_sse_status`).
    pub socket: Option<SocketId>,
    /// The long poll in flight, or the plain GET asking a failed SSE stream for its status.
    pub poll: Option<PollRequest>,
    pub send: Option<SendRequest>,
    pub send_retry_at: Option<Instant>,
    /// The cursor this link was opened with.
    pub opened_with_cursor: Option<u64>,
    /// Whether the server is still there (see [`crate::liveness`]).
    pub liveness: Liveness,
    /// The server said `going_away`: reconnect within this window.
    pub going_away: Option<Duration>,
    /// The server's SSE `retry:` hint: wait at least this long before reconnecting.
    pub retry_hint: Option<Duration>,
    /// A probe that must prove prompt delivery after `hello` before the session moves to it.
    pub needs_proof: bool,
    /// What the link's stream carries (always `All` under the single strategy).
    pub carry: Carry,
}

impl Link {
    pub fn new(id: u64, kind: TransportKind, now: Instant, silence: Duration) -> Self {
        Link {
            id,
            kind,
            phase: Phase::Opening,
            started_at: now,
            socket: None,
            poll: None,
            send: None,
            send_retry_at: None,
            opened_with_cursor: None,
            liveness: Liveness::new(kind, now, silence),
            going_away: None,
            retry_hint: None,
            needs_proof: false,
            carry: Carry::All,
        }
    }

    pub fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Live)
    }

    /// The earliest deadline of this link and what it is.
    pub fn next_timer(
        &self,
        connect_timeout: Duration,
        first_frame_timeout: Duration,
    ) -> Option<(Instant, TimerReason)> {
        // A running minimum rather than a list: no allocation, and less code in the browser
        // bundle. The first of equal deadlines wins.
        let mut best: Option<(Instant, TimerReason)> = None;
        let mut consider = |at: Option<Instant>, timer: TimerReason| {
            if let Some(at) = at {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, timer));
                }
            }
        };
        match self.phase {
            Phase::Opening => consider(
                Some(self.started_at + connect_timeout),
                TimerReason::Connect,
            ),
            Phase::AwaitingHello { opened_at } => consider(
                Some(opened_at + first_frame_timeout),
                TimerReason::FirstFrame,
            ),
            Phase::Proving {
                deadline,
                settles_at,
                ..
            } => {
                consider(Some(deadline), TimerReason::Proof);
                consider(settles_at, TimerReason::Proven);
            }
            Phase::Live => {
                let poll_deadline = self.poll.map(|p| p.deadline);
                consider(
                    self.liveness.silence_deadline(poll_deadline),
                    TimerReason::Silence,
                );
                consider(self.liveness.ping_due(), TimerReason::Ping);
                consider(self.send_retry_at, TimerReason::SendRetry);
                consider(
                    self.send.as_ref().map(|s| s.deadline),
                    TimerReason::SendDeadline,
                );
            }
        }
        best
    }
}
