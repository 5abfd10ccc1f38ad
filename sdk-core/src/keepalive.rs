//! Keep-alive under middleboxes: how often a WebSocket pings and how long a long poll may be held,
//! learned from what the path between client and server does.
//!
//! A proxy or load balancer with an idle timeout (HAProxy's `timeout tunnel`, a cloud load
//! balancer's 60 s) cuts a connection on which nothing moved for that long. This module notices
//! repeated cuts at the same idle age and keeps the ping beat under it; it notices a long poll
//! answered `504` by a gateway and keeps later polls shorter than the time that took. Pure values:
//! the session reports what happened and asks for the intervals. No I/O, no clock.

use std::time::Duration;

/// Nothing is learned from, or pinged under, an idle age shorter than this.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Whole milliseconds, in `u64` arithmetic (`Duration::as_millis` is a `u128`, whose division
/// would add a kilobyte of compiler-builtins code to the browser bundle).
fn millis(d: Duration) -> u64 {
    d.as_secs() * 1_000 + u64::from(d.subsec_millis())
}

/// Two cuts are "at the same idle age" when they differ by at most a fifth of the shorter one.
fn similar(a: Duration, b: Duration) -> bool {
    let (short, long) = if a < b { (a, b) } else { (b, a) };
    millis(long) - millis(short) <= millis(short) / 5
}

/// Two thirds of `d`: the margin kept under a learned limit.
fn two_thirds(d: Duration) -> Duration {
    Duration::from_millis(millis(d) * 2 / 3)
}

#[derive(Debug, Clone)]
pub struct KeepAlive {
    /// The idle age of the last WebSocket cut that could be a middlebox's idle timeout.
    last_cut_idle: Option<Duration>,
    /// A middlebox idle timeout learned from two cuts at the same idle age.
    idle_limit: Option<Duration>,
    /// How long a long poll may be held, as configured and shortened after gateway timeouts.
    poll_wait: Duration,
}

impl KeepAlive {
    pub fn new(poll_wait: Duration) -> Self {
        KeepAlive {
            last_cut_idle: None,
            idle_limit: None,
            poll_wait,
        }
    }

    /// A middlebox idle timeout learned so far, if any.
    pub fn idle_limit(&self) -> Option<Duration> {
        self.idle_limit
    }

    /// How often a live WebSocket pings: `configured`, at most half the server's heartbeat (a
    /// server drops a client it has not heard from in three heartbeats), and two thirds of a
    /// learned idle limit; never more often than [`MIN_INTERVAL`] unless configured so.
    pub fn ping_interval(&self, configured: Duration, heartbeat_ms: u64) -> Duration {
        let mut derived = Duration::from_millis(heartbeat_ms / 2);
        if let Some(limit) = self.idle_limit {
            derived = derived.min(two_thirds(limit));
        }
        configured.min(derived.max(MIN_INTERVAL))
    }

    /// A live WebSocket was cut (not closed by the server's say-so) after `idle` without a frame
    /// in either direction. Returns true when this taught a (shorter) idle limit.
    pub fn websocket_cut(&mut self, idle: Duration) -> bool {
        if idle < MIN_INTERVAL {
            return false;
        }
        let learned = match self.last_cut_idle.replace(idle) {
            Some(previous) if similar(previous, idle) => previous.min(idle),
            _ => return false,
        };
        if self.idle_limit.is_some_and(|l| l <= learned) {
            return false;
        }
        self.idle_limit = Some(learned);
        true
    }

    /// How long the server may hold the next long poll.
    pub fn poll_wait(&self) -> Duration {
        self.poll_wait
    }

    /// A gateway answered a long poll `504` after `elapsed`: later polls ask for two thirds of
    /// that. Returns false when the wait cannot get shorter (then the 504 is a failure).
    pub fn gateway_timeout(&mut self, elapsed: Duration) -> bool {
        let shorter = two_thirds(elapsed).min(two_thirds(self.poll_wait));
        if self.poll_wait <= MIN_INTERVAL {
            return false;
        }
        self.poll_wait = shorter.max(MIN_INTERVAL);
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
        assert_eq!(k.ping_interval(secs(7), 10_000), secs(5));
        assert!(!k.websocket_cut(Duration::from_millis(5_020)));
        assert!(!k.websocket_cut(secs(12)), "different ages teach nothing");
        assert!(!k.websocket_cut(Duration::from_millis(4_990)));
        assert!(k.websocket_cut(Duration::from_millis(5_010)));
        assert_eq!(k.idle_limit(), Some(Duration::from_millis(4_990)));
        assert!(k.ping_interval(secs(7), 10_000) < Duration::from_millis(3_400));
        // Too short to be an idle timeout: ignored; and never pings faster than the floor.
        assert!(!k.websocket_cut(Duration::from_millis(10)));
        assert_eq!(k.ping_interval(secs(7), 0), MIN_INTERVAL);
        assert_eq!(
            k.ping_interval(Duration::from_millis(300), 0),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn gateway_timeouts_shorten_the_poll_wait_down_to_a_floor() {
        let mut k = KeepAlive::new(secs(10));
        assert!(k.gateway_timeout(secs(5)));
        assert!(k.poll_wait() < secs(4));
        while k.gateway_timeout(k.poll_wait()) {}
        assert_eq!(k.poll_wait(), MIN_INTERVAL);
        assert!(!k.gateway_timeout(MIN_INTERVAL));
    }
}
