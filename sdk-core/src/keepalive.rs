//! Keep-alive under middleboxes: how often a WebSocket pings and how long a long poll may be held,
//! learned from what the path between client and server does.
//!
//! A proxy or load balancer with an idle timeout (HAProxy's `timeout tunnel`, a cloud load
//! balancer's 60 s) cuts a connection on which nothing moved for that long. This module notices
//! repeated cuts at the same idle age and keeps the ping beat under it; it notices a long poll
//! answered `504` by a gateway and keeps later polls shorter than the time that took. Pure values
//! in whole milliseconds (`u64` arithmetic keeps the browser bundle small): the session reports
//! what happened and asks for the intervals. No I/O, no clock.

use std::time::Duration;

/// Nothing is learned from, or pinged under, an idle age shorter than this (milliseconds).
pub const MIN_INTERVAL_MS: u64 = 1_000;

/// Two cuts are "at the same idle age" when they differ by at most a fifth of the shorter one.
fn similar(a: u64, b: u64) -> bool {
    a.abs_diff(b) <= a.min(b) / 5
}

/// Two thirds: the margin kept under a learned limit.
fn two_thirds(ms: u64) -> u64 {
    ms / 3 * 2
}

#[derive(Debug, Clone)]
pub struct KeepAlive {
    /// The idle age of the last WebSocket cut that could be a middlebox's idle timeout.
    last_cut_idle_ms: Option<u64>,
    /// A middlebox idle timeout learned from two cuts at the same idle age.
    idle_limit_ms: Option<u64>,
    /// How long a long poll may be held, as configured and shortened after gateway timeouts.
    poll_wait_ms: u64,
}

impl KeepAlive {
    pub fn new(poll_wait: Duration) -> Self {
        KeepAlive {
            last_cut_idle_ms: None,
            idle_limit_ms: None,
            poll_wait_ms: poll_wait.as_secs() * 1_000 + u64::from(poll_wait.subsec_millis()),
        }
    }

    /// A middlebox idle timeout learned so far, in milliseconds.
    #[cfg(test)]
    pub fn idle_limit_ms(&self) -> Option<u64> {
        self.idle_limit_ms
    }

    /// How often a live WebSocket pings, in milliseconds: `configured_ms`, at most half the
    /// server's heartbeat (a server drops a client it has not heard from in three heartbeats), and
    /// two thirds of a learned idle limit; never more often than once a second unless configured
    /// so.
    pub fn ping_interval_ms(&self, configured_ms: u64, heartbeat_ms: u64) -> u64 {
        let limit = self.idle_limit_ms.map_or(u64::MAX, two_thirds);
        configured_ms.min((heartbeat_ms / 2).min(limit).max(MIN_INTERVAL_MS))
    }

    /// A live WebSocket was cut (not closed by the server's say-so) after `idle_ms` without a
    /// frame in either direction. Returns true when this taught a (shorter) idle limit.
    pub fn websocket_cut(&mut self, idle_ms: u64) -> bool {
        if idle_ms < MIN_INTERVAL_MS {
            return false;
        }
        let learned = match self.last_cut_idle_ms.replace(idle_ms) {
            Some(previous) if similar(previous, idle_ms) => previous.min(idle_ms),
            _ => return false,
        };
        if self.idle_limit_ms.is_some_and(|l| l <= learned) {
            return false;
        }
        self.idle_limit_ms = Some(learned);
        true
    }

    /// How long the server may hold the next long poll, in milliseconds (`wait_ms`).
    pub fn poll_wait_ms(&self) -> u64 {
        self.poll_wait_ms
    }

    /// A gateway answered a long poll `504` after `elapsed_ms`: later polls ask for two thirds
    /// of that. Returns false when the wait cannot get shorter (then the 504 is a failure).
    pub fn gateway_timeout(&mut self, elapsed_ms: u64) -> bool {
        if self.poll_wait_ms <= MIN_INTERVAL_MS {
            return false;
        }
        self.poll_wait_ms = two_thirds(elapsed_ms.min(self.poll_wait_ms)).max(MIN_INTERVAL_MS);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn two_cuts_at_the_same_idle_age_teach_a_limit_and_pings_go_under_it() {
        let mut k = KeepAlive::new(secs(10));
        assert_eq!(k.ping_interval_ms(7_000, 10_000), 5_000);
        assert!(!k.websocket_cut(5_020));
        assert!(!k.websocket_cut(12_000), "different ages teach nothing");
        assert!(!k.websocket_cut(4_990));
        assert!(k.websocket_cut(5_010));
        assert_eq!(k.idle_limit_ms(), Some(4_990));
        assert!(k.ping_interval_ms(7_000, 10_000) < 3_400);
        // Too short to be an idle timeout: ignored; and never pings faster than the floor.
        assert!(!k.websocket_cut(10));
        assert_eq!(k.ping_interval_ms(7_000, 0), 1_000);
        assert_eq!(k.ping_interval_ms(300, 0), 300);
    }

    #[test]
    fn gateway_timeouts_shorten_the_poll_wait_down_to_a_floor() {
        let mut k = KeepAlive::new(secs(10));
        assert!(k.gateway_timeout(5_000));
        assert!(k.poll_wait_ms() < 4_000);
        while k.gateway_timeout(k.poll_wait_ms()) {}
        assert_eq!(k.poll_wait_ms(), MIN_INTERVAL_MS);
        assert!(!k.gateway_timeout(MIN_INTERVAL_MS));
    }
}
