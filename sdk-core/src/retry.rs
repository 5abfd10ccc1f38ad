//! When to try again after the connection was lost: the attempt counter, the outage clock, the
//! backoff, the limits, and how a server's hint shapes the next delay. Every retry decision lives
//! here: [`Retries::next_delay`] says how long to wait, or that the limits are reached;
//! [`Retries::forget`] starts over once a connection proved itself (the session calls it when the
//! `Stable` timer fires or a link delivers data).
//!
//! Randomness comes from the session's seeded generator, passed in, so that one seed keeps
//! replaying the same session. No clock, no I/O.

use crate::backoff::Backoff;
use crate::config::Config;
use crate::time::Instant;
use rand::rngs::SmallRng;
use rand::Rng;
use std::time::Duration;

/// How a server hint shapes the next reconnection delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DelayHint {
    /// Wait at least this long (`Retry-After`, SSE `retry:`).
    AtLeast(Duration),
    /// Reconnect at a random moment within this window (`going_away`).
    Within(Duration),
}

/// The retry bookkeeping of one session.
#[derive(Debug)]
pub(crate) struct Retries {
    backoff: Backoff,
    /// The number of the current (or last) attempt; 0 after [`Retries::forget`].
    attempt: u32,
    /// When the current outage began: the first attempt since the connection last proved itself.
    outage_started: Option<Instant>,
    max_attempts: Option<u32>,
    max_duration: Option<Duration>,
}

impl Retries {
    pub fn new(config: &Config) -> Self {
        Retries {
            backoff: Backoff::new(config.backoff),
            attempt: 0,
            outage_started: None,
            max_attempts: config.max_attempts,
            max_duration: config.max_retry_duration,
        }
    }

    /// The number of the current attempt.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The number the next attempt will have.
    pub fn next_attempt(&self) -> u32 {
        self.attempt.saturating_add(1)
    }

    /// An attempt begins at `now`: its number.
    pub fn begin(&mut self, now: Instant) -> u32 {
        self.attempt = self.next_attempt();
        self.outage_started.get_or_insert(now);
        self.attempt
    }

    /// The connection proved itself: past failures are forgotten, the backoff and the attempt
    /// counter start over.
    pub fn forget(&mut self) {
        self.backoff.reset();
        self.attempt = 0;
        self.outage_started = None;
    }

    /// How long to wait before the next attempt, shaped by the server's `hint`; `None` when the
    /// configured limits (attempts, time since the outage began) are reached.
    pub fn next_delay(
        &mut self,
        now: Instant,
        hint: Option<DelayHint>,
        rng: &mut SmallRng,
    ) -> Option<Duration> {
        let out_of_attempts = self.max_attempts.is_some_and(|max| self.attempt >= max);
        let out_of_time = self
            .max_duration
            .zip(self.outage_started)
            .is_some_and(|(max, since)| now >= since + max);
        if out_of_attempts || out_of_time {
            return None;
        }
        let backoff = self.backoff.next_delay(rng);
        Some(match hint {
            None => backoff,
            Some(DelayHint::AtLeast(d)) => backoff.max(d),
            Some(DelayHint::Within(window)) => {
                let window_us = (Instant::from_micros(0) + window).as_micros();
                Duration::from_micros(rng.random_range(0..=window_us))
                    .max(self.backoff.policy().floor)
            }
        })
    }
}
