//! Per-user rate limits: `subscribe` + `unsubscribe` frames, `GET /v1/history` requests and the
//! coalescing of `typing` (at most one delivered per user and conversation per interval), each a
//! token bucket (governor); and for `send` frames a token bucket plus the penalty rule of
//! docs/PROTOCOL.md section 7: after refusing a send, every other send of that user is refused
//! until the refused one comes back (or a bound passes), so sends a client pipelined before it heard
//! of the refusal cannot be stored ahead of it, and a client retransmitting in order keeps its
//! order.
//!
//! In cluster mode the send, membership and history buckets live in Redis, shared by every
//! instance (see [`crate::cluster::quota`]); when Redis does not answer in time the instance's own
//! bucket decides (fail open to local limits, logged once per outage). Typing is coalesced
//! cluster-wide too: a `typing` this instance would deliver is delivered only if no instance did
//! within the interval (a window claimed in Redis; see [`crate::cluster::quota`]), so each
//! instance asks Redis at most once per user, conversation and interval. The penalty rule stays
//! per instance (a user's sends are ordered by the instance their connection is on).
//!
//! Size limits are enforced where input is read (see [`crate::request`] and the transports).

use crate::cluster::Cluster;
use crate::config::ServerConfig;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The per-user limiters.
pub struct Limits {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    penalty: Mutex<HashMap<String, Penalty>>,
    checks: AtomicU64,
    membership: DefaultKeyedRateLimiter<String>,
    history: DefaultKeyedRateLimiter<String>,
    /// Keyed by `user NUL conv`; `None` when typing is not coalesced.
    typing: Option<DefaultKeyedRateLimiter<String>>,
    /// The coalescing interval of `typing` (the window claimed in Redis in cluster mode).
    typing_interval: Duration,
    other_checks: AtomicU64,
    /// `(per second, burst)` of the send, membership and history buckets.
    rates: [(u32, u32); 3],
    /// Cluster mode: the shared buckets.
    cluster: OnceLock<Arc<Cluster>>,
}

/// Which bucket.
#[derive(Clone, Copy)]
enum Kind {
    Send = 0,
    Membership = 1,
    History = 2,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Send => "send",
            Kind::Membership => "membership",
            Kind::History => "history",
        }
    }
}

/// A user's refused send, which every other send of theirs must wait for.
#[derive(Debug, Clone)]
struct Penalty {
    /// The client id of the refused send.
    blocked_on: String,
    /// The refused send may come back from here on.
    until: Instant,
    /// If it has not come back by then (the client gave up on it), the block ends anyway.
    gives_up_at: Instant,
}

/// How long past its retry time a refused send may take to come back before the block on the
/// user's other sends ends anyway.
const BLOCK_GRACE: Duration = Duration::from_secs(10);

/// How many checks pass between two sweeps of idle users' buckets.
const SWEEP_EVERY: u64 = 10_000;

fn bucket(per_sec: u32, burst: u32) -> DefaultKeyedRateLimiter<String> {
    let per_sec = NonZeroU32::new(per_sec.max(1)).expect("nonzero");
    let burst = NonZeroU32::new(burst.max(1)).expect("nonzero");
    RateLimiter::keyed(Quota::per_second(per_sec).allow_burst(burst))
}

impl Limits {
    /// Send limits of `per_sec` and `burst`; the other limits unbounded, typing not coalesced.
    pub fn new(per_sec: u32, burst: u32) -> Limits {
        Limits {
            limiter: bucket(per_sec, burst),
            clock: DefaultClock::default(),
            penalty: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
            membership: bucket(u32::MAX, u32::MAX),
            history: bucket(u32::MAX, u32::MAX),
            typing: None,
            typing_interval: Duration::ZERO,
            other_checks: AtomicU64::new(0),
            rates: [(per_sec, burst), (u32::MAX, u32::MAX), (u32::MAX, u32::MAX)],
            cluster: OnceLock::new(),
        }
    }

    /// Takes tokens from the cluster's shared buckets from now on.
    pub fn set_cluster(&self, cluster: Arc<Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// Takes one token of `kind` for `user`: from the shared bucket in cluster mode, from
    /// `local` otherwise or when Redis does not answer.
    async fn take_shared(
        &self,
        kind: Kind,
        user: &str,
        local: impl FnOnce() -> Result<(), Duration>,
    ) -> Result<(), Duration> {
        let Some(cluster) = self.cluster.get() else {
            return local();
        };
        match cluster
            .take(kind.name(), user, self.rates[kind as usize])
            .await
        {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => Err(wait.max(Duration::from_millis(1))),
            Err(_) => local(),
        }
    }

    /// Every limit as configured.
    pub fn from_config(config: &ServerConfig) -> Limits {
        let typing = Duration::from_millis(config.typing_interval_ms);
        Limits {
            membership: bucket(config.membership_rate_per_sec, config.membership_rate_burst),
            history: bucket(config.history_rate_per_sec, config.history_rate_burst),
            typing: Quota::with_period(typing).map(RateLimiter::keyed),
            typing_interval: typing,
            rates: [
                (config.rate_per_sec, config.rate_burst),
                (config.membership_rate_per_sec, config.membership_rate_burst),
                (config.history_rate_per_sec, config.history_rate_burst),
            ],
            ..Limits::new(config.rate_per_sec, config.rate_burst)
        }
    }

    fn sweep_now_and_then(&self) {
        if self.other_checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.membership.retain_recent();
            self.history.retain_recent();
            if let Some(t) = &self.typing {
                t.retain_recent();
            }
        }
    }

    fn take(&self, limiter: &DefaultKeyedRateLimiter<String>, key: String) -> Result<(), Duration> {
        self.sweep_now_and_then();
        limiter.check_key(&key).map_err(|not_until| {
            not_until
                .wait_time_from(self.clock.now())
                .max(Duration::from_millis(1))
        })
    }

    /// Takes one `subscribe` or `unsubscribe` from `user`'s bucket; `Err(wait)`: refused.
    pub async fn check_membership(&self, user: &str) -> Result<(), Duration> {
        self.take_shared(Kind::Membership, user, || {
            self.take(&self.membership, user.to_string())
        })
        .await
    }

    /// Takes one history request from `user`'s bucket; `Err(wait)`: refused.
    pub async fn check_history(&self, user: &str) -> Result<(), Duration> {
        self.take_shared(Kind::History, user, || {
            self.take(&self.history, user.to_string())
        })
        .await
    }

    /// Whether a `typing` of `user` in `conv` is delivered (`false`: coalesced with a recent one,
    /// on this instance or, in cluster mode, on any; when Redis does not answer, this instance's
    /// own coalescing decides).
    pub async fn allow_typing(&self, user: &str, conv: &str) -> bool {
        let Some(t) = &self.typing else {
            return true;
        };
        if self.take(t, format!("{user}\0{conv}")).is_err() {
            return false;
        }
        match self.cluster.get() {
            None => true,
            Some(cluster) => cluster
                .claim_typing(user, conv, self.typing_interval)
                .await
                .unwrap_or(true),
        }
    }

    /// Takes one send (client id `id`) from `user`'s bucket. `Err(wait)` means refused; retry
    /// after `wait`.
    pub async fn check_send(&self, user: &str, id: &str) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Forget the buckets of users who have been idle long enough to be full again.
            self.limiter.retain_recent();
        }
        self.waits_for_refused(user, id)?;
        let taken = self
            .take_shared(Kind::Send, user, || {
                self.limiter
                    .check_key(&user.to_string())
                    .map_err(|not_until| {
                        not_until
                            .wait_time_from(self.clock.now())
                            .max(Duration::from_millis(1))
                    })
            })
            .await;
        if let Err(wait) = taken {
            let now = Instant::now();
            let mut penalty = self.penalty.lock().unwrap_or_else(|p| p.into_inner());
            penalty.insert(
                user.to_string(),
                Penalty {
                    blocked_on: id.to_string(),
                    until: now + wait,
                    gives_up_at: now + wait + BLOCK_GRACE,
                },
            );
            if penalty.len() > 10_000 {
                penalty.retain(|_, p| p.gives_up_at > now);
            }
        }
        taken
    }

    /// The penalty rule: `Err(wait)` while another send of `user` refused earlier has not come
    /// back; lifts the block when the refused send (`id`) is back or the block has expired.
    fn waits_for_refused(&self, user: &str, id: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut penalty = self.penalty.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = penalty.get(user) {
            let early = p
                .until
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            if p.blocked_on == id {
                if p.until > now {
                    return Err(early);
                }
                // The refused send is back: the block ends and it takes its turn.
                penalty.remove(user);
            } else if p.gives_up_at > now {
                return Err(early);
            } else {
                penalty.remove(user);
            }
        }
        Ok(())
    }
}

/// A wait as whole milliseconds, rounded up, at least 1.
pub fn ceil_ms(d: Duration) -> u64 {
    (d.as_micros().div_ceil(1000) as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refusal_holds_until_retry_after() {
        let l = Limits::new(1, 2);
        assert!(l.check_send("a", "1").await.is_ok());
        assert!(l.check_send("a", "2").await.is_ok());
        let wait = l.check_send("a", "3").await.unwrap_err();
        assert!(wait <= Duration::from_secs(1));
        assert!(l.check_send("a", "3").await.is_err());
        assert!(l.check_send("b", "1").await.is_ok());
    }

    #[tokio::test]
    async fn membership_history_and_typing_are_limited_per_user() {
        let config = ServerConfig {
            membership_rate_per_sec: 1,
            membership_rate_burst: 3,
            history_rate_per_sec: 1,
            history_rate_burst: 2,
            typing_interval_ms: 60_000,
            ..ServerConfig::default()
        };
        let l = Limits::from_config(&config);
        for _ in 0..3 {
            assert!(l.check_membership("a").await.is_ok());
        }
        assert!(l.check_membership("a").await.is_err());
        assert!(l.check_membership("b").await.is_ok());
        assert!(l.check_history("a").await.is_ok());
        assert!(l.check_history("a").await.is_ok());
        assert!(l.check_history("a").await.is_err());
        assert!(l.allow_typing("a", "x").await);
        assert!(!l.allow_typing("a", "x").await);
        assert!(l.allow_typing("a", "y").await);
        assert!(l.allow_typing("b", "x").await);
        let uncoalesced = Limits::from_config(&ServerConfig {
            typing_interval_ms: 0,
            ..ServerConfig::default()
        });
        assert!(uncoalesced.allow_typing("a", "x").await);
        assert!(uncoalesced.allow_typing("a", "x").await);
    }

    #[tokio::test]
    async fn other_sends_wait_for_the_refused_one_to_come_back() {
        let l = Limits::new(1000, 1);
        assert!(l.check_send("a", "1").await.is_ok());
        assert!(l.check_send("a", "2").await.is_err());
        std::thread::sleep(Duration::from_millis(5));
        // The bucket has refilled, but "3" was sent after "2" and must not overtake it.
        assert!(l.check_send("a", "3").await.is_err());
        assert!(l.check_send("a", "2").await.is_ok());
        std::thread::sleep(Duration::from_millis(2));
        assert!(l.check_send("a", "3").await.is_ok());
    }
}
