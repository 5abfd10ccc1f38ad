//! Per-user rate limits for `send` frames: a token bucket (governor) plus the penalty rule of
//! docs/PROTOCOL.md section 7 (after one refusal, every send of that user is refused until the
//! announced `retry_after_ms` has passed, so a client retransmitting in order keeps its order).
//!
//! Size limits are enforced where input is read (see [`crate::request`] and the transports).

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The per-user send limiter.
pub struct Limits {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    penalty: Mutex<HashMap<String, Instant>>,
    checks: AtomicU64,
}

/// How many checks pass between two sweeps of idle users' buckets.
const SWEEP_EVERY: u64 = 10_000;

impl Limits {
    pub fn new(per_sec: u32, burst: u32) -> Limits {
        let per_sec = NonZeroU32::new(per_sec.max(1)).expect("nonzero");
        let burst = NonZeroU32::new(burst.max(1)).expect("nonzero");
        Limits {
            limiter: RateLimiter::keyed(Quota::per_second(per_sec).allow_burst(burst)),
            clock: DefaultClock::default(),
            penalty: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one send from `user`'s bucket. `Err(wait)` means refused; retry after `wait`.
    pub fn check_send(&self, user: &str) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Forget the buckets of users who have been idle long enough to be full again.
            self.limiter.retain_recent();
        }
        let now = Instant::now();
        let mut penalty = self.penalty.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = penalty.get(user).copied() {
            if until > now {
                return Err(until - now);
            }
            penalty.remove(user);
        }
        match self.limiter.check_key(&user.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until
                    .wait_time_from(self.clock.now())
                    .max(Duration::from_millis(1));
                penalty.insert(user.to_string(), now + wait);
                if penalty.len() > 10_000 {
                    penalty.retain(|_, until| *until > now);
                }
                Err(wait)
            }
        }
    }
}

/// A wait as whole milliseconds, rounded up, at least 1.
pub fn ceil_ms(d: Duration) -> u64 {
    (d.as_micros().div_ceil(1000) as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_holds_until_retry_after() {
        let l = Limits::new(1, 2);
        assert!(l.check_send("a").is_ok());
        assert!(l.check_send("a").is_ok());
        let wait = l.check_send("a").unwrap_err();
        assert!(wait <= Duration::from_secs(1));
        assert!(l.check_send("a").is_err());
        assert!(l.check_send("b").is_ok());
    }
}
