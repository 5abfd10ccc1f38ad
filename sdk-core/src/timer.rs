//! The session's timer table: one enum naming every deadline the session keeps ([`TimerReason`]),
//! one array holding the deadlines the session sets itself, and the one rule that picks the next
//! timer to fire (the earliest; of equal deadlines, the first in the enum's order).
//!
//! Some deadlines are not stored here but follow from other state (the outbox's next send
//! timeout, a link's silence deadline): [`Timers::earliest`] asks for those through a function,
//! so the order in which ties are broken stays the enum's order for all of them. No allocation.

use crate::time::Instant;

/// Why the session wants to be woken, as reported by [`crate::Session::last_timeout_reason`].
/// The order of the variants breaks ties between equal deadlines: the first fires first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerReason {
    /// A reconnection attempt was due.
    Retry,
    /// The next rung started racing a slow first rung.
    Race,
    /// Nothing at all answered a connection attempt in time: the host is unreachable.
    Unreachable,
    /// A probe of a better rung was due.
    Probe,
    /// The connection stayed healthy long enough to forget past failures.
    Stable,
    /// A send reached its timeout.
    SendTimeout,
    /// A graceful close ran out of time.
    Drain,
    /// Held-back sends could be transmitted again.
    OutboxRelease,
    /// The hybrid strategy's ephemeral WebSocket was due to be tried again.
    EphemeralRetry,
    /// A link did not open in time.
    Connect,
    /// A link opened but the server did not speak in time.
    FirstFrame,
    /// A probe proving prompt delivery ran out of time.
    Proof,
    /// A probe proving prompt delivery proved it.
    Proven,
    /// A live link stayed silent past its deadline.
    Silence,
    /// A ping was due.
    Ping,
    /// A failed HTTP send batch could be retried.
    SendRetry,
    /// An HTTP send batch went unanswered for too long.
    SendDeadline,
}

/// How many deadlines the table holds: the session-wide ones, `Retry` to `EphemeralRetry`.
const SESSION_TIMERS: usize = TimerReason::EphemeralRetry as usize + 1;

/// The session-wide timers in tie-breaking order.
const ORDER: [TimerReason; SESSION_TIMERS] = [
    TimerReason::Retry,
    TimerReason::Race,
    TimerReason::Unreachable,
    TimerReason::Probe,
    TimerReason::Stable,
    TimerReason::SendTimeout,
    TimerReason::Drain,
    TimerReason::OutboxRelease,
    TimerReason::EphemeralRetry,
];

/// The deadlines the session sets itself, one slot per session-wide [`TimerReason`].
#[derive(Debug, Default)]
pub(crate) struct Timers {
    at: [Option<Instant>; SESSION_TIMERS],
}

impl Timers {
    /// The deadline of `timer`, if set.
    pub fn get(&self, timer: TimerReason) -> Option<Instant> {
        self.at.get(timer as usize).copied().flatten()
    }

    pub fn is_set(&self, timer: TimerReason) -> bool {
        self.get(timer).is_some()
    }

    /// Sets (or, with `None`, clears) the deadline of a session-wide `timer`.
    pub fn set(&mut self, timer: TimerReason, at: Option<Instant>) {
        if let Some(slot) = self.at.get_mut(timer as usize) {
            *slot = at;
        }
    }

    pub fn clear(&mut self, timer: TimerReason) {
        self.set(timer, None);
    }

    /// The earliest session-wide deadline: a stored one, or for a timer not stored here the one
    /// `derived` names (the outbox's, for instance). Ties go to the first in [`TimerReason`]'s
    /// order.
    pub fn earliest(
        &self,
        derived: &dyn Fn(TimerReason) -> Option<Instant>,
    ) -> Option<(Instant, TimerReason)> {
        let mut best: Option<(Instant, TimerReason)> = None;
        for (stored, timer) in self.at.iter().zip(ORDER) {
            if let Some(at) = stored.or_else(|| derived(timer)) {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, timer));
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_table_matches_the_enum() {
        for (i, t) in ORDER.iter().enumerate() {
            assert_eq!(*t as usize, i);
        }
    }

    #[test]
    fn the_earliest_wins_and_ties_go_to_the_first() {
        let mut timers = Timers::default();
        let t = |us| Instant::from_micros(us);
        assert_eq!(timers.earliest(&|_| None), None);
        timers.set(TimerReason::Drain, Some(t(10)));
        timers.set(TimerReason::Probe, Some(t(20)));
        assert_eq!(
            timers.earliest(&|_| None),
            Some((t(10), TimerReason::Drain))
        );
        let send_timeout = |r| (r == TimerReason::SendTimeout).then_some(t(10));
        assert_eq!(
            timers.earliest(&send_timeout),
            Some((t(10), TimerReason::SendTimeout))
        );
        timers.clear(TimerReason::Drain);
        assert!(!timers.is_set(TimerReason::Drain));
        assert_eq!(
            timers.earliest(&|_| None),
            Some((t(20), TimerReason::Probe))
        );
    }
}
