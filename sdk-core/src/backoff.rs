//! Retry delays: exponential backoff with jitter, as a pure value that draws from a caller's seeded
//! random number generator.
//!
//! It reads no clock and sleeps never: it only says how long the next wait should be. The session
//! owns when to reset it (after a connection has stayed healthy for a while) and how server hints
//! combine with it.
//!
//! # Why these defaults
//! [`BackoffPolicy::reconnect`] is full jitter above a floor, `rand(floor, min(cap, base·2^n))`,
//! with a 500 ms base, a 15 s cap and a 100 ms floor:
//! - Full jitter does the least total work for a fleet that lost its server at once (AWS,
//!   "Exponential Backoff And Jitter"); the jitter is applied *after* the cap, so unlike
//!   Socket.IO (whose `±50%` jitter vanishes at its 5 s cap and makes every client retry in lock
//!   step) the spread never collapses.
//! - 500 ms matches centrifuge-js: a dropped connection that can be re-opened at once usually is,
//!   within half a second on average. Socket.IO waits 1 s, SignalR 0/2/10/30 s.
//! - A 15 s cap sits between Socket.IO's 5 s (fast, but stampedes) and centrifuge's 20 s and
//!   SignalR's 30 s: after a long outage a client comes back within 7.5 s on average.
//! - The floor keeps a pathological zero draw from spinning, and draws are uniform *above* it:
//!   clamping the draws that fall below it up to it (as this policy first did) put a fifth of a
//!   fleet's first retries at exactly 100 ms, a spike in a reconnect storm that also met a
//!   restarting server before it listened again (docs/BENCHMARKS.md, "Storm and scale").
//! - The exponent is clamped, so no attempt count overflows (Socket.IO's delay collapses to 0 ms
//!   after about a thousand failures).
//!
//! Attempts are unlimited by default (SignalR's four attempts, and its never-retried first start,
//! strand users); limits by count and by total time are options of the session's configuration.

use crate::time::Instant;
use rand::Rng;
use std::time::Duration;

/// How jitter is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// `rand(0, min(cap, base·2^n))`.
    Full,
    /// `min(cap, rand(base, previous·3))` ("decorrelated jitter").
    Decorrelated,
}

/// The shape of a backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// No delay is shorter than this (unless the cap is).
    pub floor: Duration,
    pub jitter: Jitter,
}

impl BackoffPolicy {
    /// The default for reconnecting: full jitter, 500 ms base, 15 s cap, 100 ms floor.
    pub const fn reconnect() -> Self {
        BackoffPolicy {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(15),
            floor: Duration::from_millis(100),
            jitter: Jitter::Full,
        }
    }

    /// The default for probing a better transport while degraded: full jitter, 4 s base, 60 s cap,
    /// 1 s floor. Probes are cheap for one client but add up over a fleet, so they start later and
    /// back off further than reconnects.
    pub const fn probe() -> Self {
        BackoffPolicy {
            base: Duration::from_secs(4),
            cap: Duration::from_secs(60),
            floor: Duration::from_secs(1),
            jitter: Jitter::Full,
        }
    }

    /// The upper bound of the `n`th delay (0-based) before jitter: `min(cap, base·2^n)`, computed
    /// without overflow for any `n`.
    pub fn ceiling(&self, n: u32) -> Duration {
        Duration::from_micros(self.ceiling_us(n))
    }

    /// [`BackoffPolicy::ceiling`] in microseconds (`u64` arithmetic keeps the `.wasm` small).
    fn ceiling_us(&self, n: u32) -> u64 {
        let factor = 1u64 << n.min(31);
        micros(self.base)
            .saturating_mul(factor)
            .min(micros(self.cap))
    }

    /// The bounds every delay of this policy falls within: `[min(floor, cap), cap]`.
    pub fn bounds(&self) -> (Duration, Duration) {
        (self.floor.min(self.cap), self.cap)
    }
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self::reconnect()
    }
}

/// A running backoff: the policy and how many delays were drawn since the last reset.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    drawn: u32,
    previous: Duration,
}

/// Whole microseconds of `d`, saturating (through `Instant`'s one conversion).
fn micros(d: Duration) -> u64 {
    (Instant::from_micros(0) + d).as_micros()
}

/// A uniform draw from `low..=high` microseconds (no draw when the range is one value).
fn uniform<R: Rng>(rng: &mut R, low: u64, high: u64) -> u64 {
    if high <= low {
        return low;
    }
    rng.random_range(low..=high)
}

impl Backoff {
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoff {
            policy,
            drawn: 0,
            previous: policy.base,
        }
    }

    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }

    /// How many delays were drawn since the last reset.
    pub fn drawn(&self) -> u32 {
        self.drawn
    }

    /// Forgets past failures: the next delay is drawn as the first one.
    pub fn reset(&mut self) {
        self.drawn = 0;
        self.previous = self.policy.base;
    }

    /// Draws the next delay.
    pub fn next_delay<R: Rng>(&mut self, rng: &mut R) -> Duration {
        let p = self.policy;
        let (base, cap) = (micros(p.base), micros(p.cap));
        let raw = match p.jitter {
            Jitter::Full => {
                let ceiling = p.ceiling_us(self.drawn);
                uniform(rng, micros(p.floor).min(ceiling), ceiling)
            }
            Jitter::Decorrelated => {
                let high = micros(self.previous).saturating_mul(3).min(cap);
                uniform(rng, base.min(high), high)
            }
        };
        let delay = raw.max(micros(p.floor).min(cap)).min(cap);
        self.previous = Duration::from_micros(delay.max(base.min(cap)));
        self.drawn = self.drawn.saturating_add(1);
        Duration::from_micros(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn ceiling_grows_then_caps_without_overflow() {
        let p = BackoffPolicy::reconnect();
        assert_eq!(p.ceiling(0), Duration::from_millis(500));
        assert_eq!(p.ceiling(1), Duration::from_secs(1));
        assert_eq!(p.ceiling(5), Duration::from_secs(15));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(15));
    }

    #[test]
    fn delays_stay_spread_at_the_cap() {
        // Unlike a jitter applied before the cap, draws at a high attempt count still differ.
        let mut rng = SmallRng::seed_from_u64(7);
        let mut b = Backoff::new(BackoffPolicy::reconnect());
        for _ in 0..50 {
            b.next_delay(&mut rng);
        }
        let draws: Vec<_> = (0..20).map(|_| b.next_delay(&mut rng)).collect();
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 15, "{draws:?}");
        assert!(draws.iter().all(|d| *d <= Duration::from_secs(15)));
    }

    #[test]
    fn a_fleets_first_retries_spread_evenly_above_the_floor() {
        // 10,000 clients that lost their server at once, each with its own seed: no instant
        // holds a crowd (clamping draws under the floor up to it put a fifth at exactly 100 ms),
        // and every fifth of the window between floor and ceiling holds about a fifth.
        let p = BackoffPolicy::reconnect();
        let (floor, ceiling) = (micros(p.floor), micros(p.ceiling(0)));
        let mut fifths = [0u32; 5];
        let mut at_floor = 0;
        for seed in 0..10_000u64 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let d = micros(Backoff::new(p).next_delay(&mut rng));
            assert!((floor..=ceiling).contains(&d), "{d} µs");
            at_floor += u32::from(d == floor);
            let fifth = ((d - floor) * 5 / (ceiling - floor + 1)) as usize;
            fifths[fifth] += 1;
        }
        assert!(
            at_floor < 10,
            "{at_floor} of 10,000 first retries at exactly the floor"
        );
        assert!(
            fifths.iter().all(|n| (1_800..=2_200).contains(n)),
            "{fifths:?}"
        );
    }

    #[test]
    fn reset_starts_over() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut b = Backoff::new(BackoffPolicy::reconnect());
        for _ in 0..10 {
            b.next_delay(&mut rng);
        }
        b.reset();
        assert_eq!(b.drawn(), 0);
        assert!(b.next_delay(&mut rng) <= Duration::from_millis(500));
    }

    #[test]
    fn decorrelated_stays_within_bounds() {
        let mut rng = SmallRng::seed_from_u64(3);
        let policy = BackoffPolicy {
            jitter: Jitter::Decorrelated,
            ..BackoffPolicy::reconnect()
        };
        let mut b = Backoff::new(policy);
        for _ in 0..10_000 {
            let d = b.next_delay(&mut rng);
            assert!(d >= policy.floor && d <= policy.cap, "{d:?}");
        }
    }
}
