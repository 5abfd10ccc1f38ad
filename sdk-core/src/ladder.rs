//! The transport ladder: which rung to try next, when to step down, which rung to probe while
//! degraded, and which rung last worked.
//!
//! Pure bookkeeping over the allowed rungs: it opens nothing and keeps no time. The session tells
//! it about failures and successes and asks it where to go.

use crate::transport::TransportKind;

/// How bad a failure of a rung was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureWeight {
    /// Could be anything (a reset, the server down): step down only after repeated failures, and
    /// climb back if the rung below fails the same way before anything worked (then the host, not
    /// the rung, was at fault).
    Ordinary,
    /// Says this rung will not work here (upgrade refused, a 4xx, no first frame): step down now.
    Definitive,
    /// Not about the rung at all (credentials, rate limit, the server going away, a host that
    /// refused the connection, did not resolve or could not be reached): no effect.
    Neutral,
}

#[derive(Debug, Clone)]
pub struct Ladder {
    rungs: Vec<TransportKind>,
    current: usize,
    consecutive_failures: u32,
    step_down_after: u32,
    last_worked: Option<TransportKind>,
    /// The rung the ladder left after ordinary failures, until a rung works: if the rung below
    /// fails in the same ordinary way, the ladder goes back there.
    left_after_ordinary: Option<usize>,
}

impl Ladder {
    /// A ladder over `rungs` (best first, not empty), starting at `initial` if it is allowed.
    pub fn new(
        rungs: Vec<TransportKind>,
        initial: Option<TransportKind>,
        step_down_after: u32,
    ) -> Self {
        assert!(!rungs.is_empty(), "a ladder needs at least one rung");
        let current = initial
            .and_then(|k| rungs.iter().position(|r| *r == k))
            .unwrap_or(0);
        Ladder {
            rungs,
            current,
            consecutive_failures: 0,
            step_down_after: step_down_after.max(1),
            last_worked: None,
            left_after_ordinary: None,
        }
    }

    /// The rung the next attempt uses.
    pub fn current(&self) -> TransportKind {
        self.rungs[self.current]
    }

    /// The rung below `kind`, if any.
    pub fn below(&self, kind: TransportKind) -> Option<TransportKind> {
        let i = self.rungs.iter().position(|r| *r == kind)?;
        self.rungs.get(i + 1).copied()
    }

    /// The rung above `kind`, if any: what to probe while on `kind`.
    pub fn above(&self, kind: TransportKind) -> Option<TransportKind> {
        let i = self.rungs.iter().position(|r| *r == kind)?;
        i.checked_sub(1).map(|j| self.rungs[j])
    }

    /// Whether `kind` is below the best allowed rung.
    pub fn is_degraded(&self, kind: TransportKind) -> bool {
        self.rungs.first() != Some(&kind)
    }

    /// The rung that last delivered a `hello`.
    pub fn last_worked(&self) -> Option<TransportKind> {
        self.last_worked
    }

    /// A connection attempt on `kind` failed. Returns true if the ladder stepped down.
    pub fn record_failure(&mut self, kind: TransportKind, weight: FailureWeight) -> bool {
        if kind != self.current() || weight == FailureWeight::Neutral {
            return false;
        }
        if weight == FailureWeight::Ordinary {
            if let Some(above) = self.left_after_ordinary.take() {
                // Both rungs fail alike: the host is unreachable, not the rung. A browser cannot
                // tell "refused" from "blocked"; a rung is only blamed once another one works.
                self.current = above;
                self.consecutive_failures = 0;
                return false;
            }
        }
        self.consecutive_failures += 1;
        let step = weight == FailureWeight::Definitive
            || self.consecutive_failures >= self.step_down_after;
        if step && self.current + 1 < self.rungs.len() {
            self.left_after_ordinary = (weight == FailureWeight::Ordinary).then_some(self.current);
            self.current += 1;
            self.consecutive_failures = 0;
            return true;
        }
        false
    }

    /// `kind` delivered a `hello`: it becomes the rung for the next attempt. Returns true if the
    /// rung that last worked changed.
    pub fn record_success(&mut self, kind: TransportKind) -> bool {
        if let Some(i) = self.rungs.iter().position(|r| *r == kind) {
            self.current = i;
        }
        self.consecutive_failures = 0;
        self.left_after_ordinary = None;
        let changed = self.last_worked != Some(kind);
        self.last_worked = Some(kind);
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TransportKind::*;

    #[test]
    fn steps_down_after_repeated_or_definitive_failures() {
        let mut l = Ladder::new(TransportKind::ALL.to_vec(), None, 2);
        assert!(!l.record_failure(WebSocket, FailureWeight::Ordinary));
        assert!(l.record_failure(WebSocket, FailureWeight::Ordinary));
        assert_eq!(l.current(), Sse);
        assert!(l.record_failure(Sse, FailureWeight::Definitive));
        assert_eq!(l.current(), LongPoll);
        assert!(!l.record_failure(LongPoll, FailureWeight::Definitive));
        assert_eq!(l.current(), LongPoll);
        assert!(l.record_success(LongPoll));
        assert_eq!(l.above(LongPoll), Some(Sse));
    }

    #[test]
    fn a_rung_below_failing_alike_sends_the_ladder_back_up() {
        let mut l = Ladder::new(TransportKind::ALL.to_vec(), None, 2);
        l.record_failure(WebSocket, FailureWeight::Ordinary);
        assert!(l.record_failure(WebSocket, FailureWeight::Ordinary));
        assert_eq!(l.current(), Sse);
        // SSE fails the same way: the host is down, not WebSocket.
        assert!(!l.record_failure(Sse, FailureWeight::Ordinary));
        assert_eq!(l.current(), WebSocket);
        // A definitive failure still steps down for good.
        assert!(l.record_failure(WebSocket, FailureWeight::Definitive));
        assert!(!l.record_failure(Sse, FailureWeight::Ordinary));
        assert_eq!(l.current(), Sse);
    }

    #[test]
    fn neutral_failures_do_not_count() {
        let mut l = Ladder::new(TransportKind::ALL.to_vec(), None, 1);
        assert!(!l.record_failure(WebSocket, FailureWeight::Neutral));
        assert_eq!(l.current(), WebSocket);
    }

    #[test]
    fn restricted_ladders_and_initial_rung() {
        let l = Ladder::new(vec![Sse, LongPoll], Some(WebSocket), 2);
        assert_eq!(l.current(), Sse);
        assert!(!l.is_degraded(Sse));
        let l = Ladder::new(TransportKind::ALL.to_vec(), Some(LongPoll), 2);
        assert_eq!(l.current(), LongPoll);
        assert!(l.is_degraded(LongPoll));
    }
}
