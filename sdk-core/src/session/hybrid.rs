//! The session's side of the hybrid strategy ([`crate::hybrid`]): opening the ephemeral
//! WebSocket, its `hello` and its loss, and keeping the messages link's `carry` in step with it
//! (reopened from the cursor, so nothing is lost or repeated).
//!
//! The ephemeral link is a [`Link`] like the others and shares their code paths: its socket's
//! reports, its frames (`session/frames.rs`), its deadlines, pings and liveness checks, and its
//! failures (classified by `on_transport_failure`) are found by `link`/`link_by_socket` like the
//! messages links'. Only three steps branch here: its `hello` (it never becomes the live link of
//! the session), its failure (it is retried on its own, the messages link carries everything
//! meanwhile), and the carry of the messages link.

use super::*;
use crate::hybrid::Carry;

impl<D: FrameDecoder> Session<D> {
    /// Opens the ephemeral WebSocket, unless it is open, waits for its retry, or the session
    /// cannot use it now (offline, no token yet): then the messages link's next `hello` opens it.
    pub(super) fn open_ephemeral(&mut self, now: Instant) {
        let Some(hybrid) = self.hybrid.as_ref() else {
            return;
        };
        if hybrid.link.is_some()
            || self.timers.is_set(TimerReason::EphemeralRetry)
            || self.state.is_final()
            || !self.online
            || self.creds.token().is_none()
        {
            return;
        }
        // Opened like a link of the messages side, then moved to its own slot.
        self.open_carrying(now, TransportKind::WebSocket, Carry::Ephemeral);
        let link = self.links.pop();
        if let Some(hybrid) = self.hybrid.as_mut() {
            hybrid.link = link;
        }
    }

    /// The ephemeral link, if `id` is its id.
    #[cfg_attr(not(feature = "hybrid"), inline(always))]
    pub(super) fn ephemeral_by_id(&self, id: u64) -> Option<&Link> {
        self.hybrid
            .as_ref()
            .and_then(|h| h.link.as_ref())
            .filter(|l| l.id == id)
    }

    /// The ephemeral link's `hello`: it goes live (pings, liveness) beside the messages link,
    /// which then carries messages only.
    pub(super) fn ephemeral_hello(&mut self, now: Instant, id: u64, hello: &Hello) {
        if self.ephemeral_by_id(id).is_none_or(Link::is_live) {
            return;
        }
        self.mark_live(now, id, hello);
        self.creds.accepted();
        if let Some(hybrid) = self.hybrid.as_mut() {
            hybrid.went_live(now);
        }
        self.ephemeral_changed(now, Cause::Opened);
    }

    /// The ephemeral WebSocket failed or was lost: presence and typing move to the messages link
    /// (reopened with `carry=all`) until it is back; it is tried again after its backoff (at
    /// least the server's `Retry-After`).
    pub(super) fn ephemeral_failed(&mut self, now: Instant, cause: Cause, hint: Option<DelayHint>) {
        let stable_after = self.config.stable_after;
        let Some(hybrid) = self.hybrid.as_mut() else {
            return;
        };
        let socket = hybrid.link.as_ref().and_then(|l| l.socket);
        if let Some(socket) = socket {
            self.actions.push_back(Action::CloseSocket { socket });
        }
        let mut delay = hybrid.failed(now, stable_after, &mut self.rng);
        // A `Retry-After` is a floor; a `going_away` window is not (the jittered backoff already
        // spreads the reconnects, and waiting out the whole window would gather them at its end).
        if let Some(DelayHint::AtLeast(floor)) = hint {
            delay = delay.max(floor);
        }
        self.timers
            .set(TimerReason::EphemeralRetry, Some(now + delay));
        self.ephemeral_changed(now, cause);
    }

    /// Abandons the ephemeral link without a retry of its own: the session ended, or the token
    /// was refused (a later report about it must not count as a second refusal; the messages
    /// link's next `hello`, with a fresh token, opens it again).
    pub(super) fn drop_ephemeral(&mut self) {
        self.timers.clear(TimerReason::EphemeralRetry);
        let link = self.hybrid.as_mut().and_then(|h| h.link.take());
        if let Some(socket) = link.and_then(|l| l.socket) {
            self.actions.push_back(Action::CloseSocket { socket });
        }
    }

    /// The live ephemeral WebSocket's socket, where typing goes while it is up.
    pub(super) fn ephemeral_socket(&self) -> Option<SocketId> {
        let link = self.hybrid.as_ref()?.link.as_ref()?;
        link.is_live().then_some(link.socket).flatten()
    }

    /// The ephemeral link went up or down: the state says whether the split is whole (`degraded`
    /// while it is not), and the messages link is brought to the `carry` that goes with it.
    fn ephemeral_changed(&mut self, now: Instant, cause: Cause) {
        if let State::Connected { transport, .. } = self.state {
            let degraded = self.is_degraded(transport);
            self.set_state(
                State::Connected {
                    transport,
                    degraded,
                },
                cause,
            );
        }
        self.restore_carry(now);
    }

    /// Whether the session runs below its best: on a lower rung, or, under the hybrid strategy,
    /// without its ephemeral WebSocket.
    #[cfg_attr(not(feature = "hybrid"), inline(always))]
    pub(super) fn is_degraded(&self, kind: TransportKind) -> bool {
        self.ladder.is_degraded(kind) || self.hybrid.as_ref().is_some_and(|h| !h.is_live())
    }

    /// What a new messages link carries.
    #[cfg_attr(not(feature = "hybrid"), inline(always))]
    pub(super) fn messages_carry(&self) -> Carry {
        self.hybrid
            .as_ref()
            .map_or(Carry::All, |h| h.messages_carry())
    }

    /// When the live messages link carries other than it should (the ephemeral WebSocket came or
    /// went since it opened), a replacement on the same rung is opened from the cursor with the
    /// right `carry`; it takes over on its `hello` like a probe, so the switch is lossless and
    /// the state does not change. True when the carry is wrong (a replacement opens).
    pub(super) fn restore_carry(&mut self, now: Instant) -> bool {
        let Some(hybrid) = self.hybrid.as_ref() else {
            return false;
        };
        let wanted = hybrid.messages_carry();
        let Some(active) = self.active_link() else {
            return false;
        };
        if !active.is_live() || active.carry == wanted {
            return false;
        }
        // A probe or replacement opened with the old carry is of no use any more.
        let (kind, active) = (active.kind, active.id);
        self.drop_links_except(Some(active));
        self.open_link(now, kind);
        true
    }
}
