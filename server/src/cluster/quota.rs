//! Limits shared by every instance, so that a user cannot multiply them by spreading connections:
//!
//! - token buckets (`lifeline:rate:KIND:USER`, a hash of tokens and last refill time, expiring
//!   once full again), taken by a Lua script that reads Redis's own clock (`TIME`), so instances
//!   with skewed clocks share one bucket correctly;
//! - open streams per user (`lifeline:streams:USER`, one field per instance), checked and counted
//!   by one script; a dead instance's fields are removed by the sweeper in [`super::liveness`];
//! - typing windows (`lifeline:typing:LEN:USER:CONV`, set if absent with the coalescing interval
//!   as its lifetime): the instance that sets it delivers the `typing`, the others drop theirs
//!   until it expires.
//!
//! Every call is bounded by the command timeout; the caller falls back to its local limit when
//! Redis does not answer (see [`crate::limits`], [`crate::conns`]).

use super::{key, Cluster};
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// The scripts, hashed once (`EVALSHA`; loaded again by the client after a Redis restart).
static TAKE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TAKE));
static OPEN_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(OPEN));

/// KEYS[1] the bucket; ARGV: tokens per second, burst. Returns 0 (taken) or the wait in µs.
const TAKE: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
";

/// KEYS[1] the user's stream counts; ARGV: instance, cap. Returns -1 (over the cap) or the new
/// total.
const OPEN: &str = r"
local counts = redis.call('HVALS', KEYS[1])
local total = 0
for _, n in ipairs(counts) do total = total + tonumber(n) end
if total >= tonumber(ARGV[2]) then return -1 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return total + 1
";

/// KEYS[1] the user's stream counts; ARGV: instance.
const CLOSE: &str = r"
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n
";

fn streams_key(user: &str) -> String {
    key(&["streams", user])
}

impl Cluster {
    /// Takes one token from the shared bucket `kind` of `user`: `Ok(None)` taken, `Ok(Some(wait))`
    /// refused, `Err` Redis did not answer in time.
    pub async fn take(
        &self,
        kind: &str,
        user: &str,
        (per_sec, burst): (u32, u32),
    ) -> Result<Option<Duration>, redis::RedisError> {
        let mut conn = self.conn();
        let mut call = TAKE_SCRIPT.key(key(&["rate", kind, user]));
        call.arg(per_sec.max(1)).arg(burst.max(1));
        let wait_us: u64 = match call.invoke_async(&mut conn).await {
            Ok(w) => w,
            Err(e) => {
                self.failed("taking a shared rate-limit token", &e);
                return Err(e);
            }
        };
        Ok((wait_us > 0).then(|| Duration::from_micros(wait_us)))
    }

    /// Counts one more stream of `user` if the cluster-wide count is under `cap`: `Ok(false)`
    /// refused, `Err` Redis did not answer in time.
    pub async fn open_stream(&self, user: &str, cap: usize) -> Result<bool, redis::RedisError> {
        let mut conn = self.conn();
        let mut call = OPEN_SCRIPT.key(streams_key(user));
        call.arg(&self.id).arg(cap);
        match call.invoke_async::<i64>(&mut conn).await {
            Ok(n) => Ok(n >= 0),
            Err(e) => {
                self.failed("counting a stream", &e);
                Err(e)
            }
        }
    }

    /// Claims the typing window of `user` in `conv` for `window`: `Ok(true)` this instance
    /// delivers the `typing` (no instance did within the window), `Ok(false)` it is coalesced,
    /// `Err` Redis did not answer in time.
    pub async fn claim_typing(
        &self,
        user: &str,
        conv: &str,
        window: Duration,
    ) -> Result<bool, redis::RedisError> {
        let mut conn = self.conn();
        // The user's length keeps `("a:b", "c")` and `("a", "b:c")` apart.
        let key = key(&["typing", &user.len().to_string(), user, conv]);
        let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Result<Option<String>, _> = redis::cmd("SET")
            .arg(key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .query_async(&mut conn)
            .await;
        match set {
            Ok(set) => Ok(set.is_some()),
            Err(e) => {
                self.failed("claiming a typing window", &e);
                Err(e)
            }
        }
    }
}

/// Adds "one stream of `user` on `instance` closed" to `pipe`.
pub(super) fn stream_closed(pipe: &mut redis::Pipeline, instance: &str, user: &str) {
    pipe.cmd("EVAL")
        .arg(CLOSE)
        .arg(1)
        .arg(streams_key(user))
        .arg(instance)
        .ignore();
}

/// Adds "forget `instance`'s streams of `user`" to `pipe`.
pub(super) fn forget(pipe: &mut redis::Pipeline, instance: &str, user: &str) {
    pipe.hdel(streams_key(user), instance).ignore();
}

/// Adds "`instance` has `n` streams of `user`" to `pipe`.
pub(super) fn set_streams(pipe: &mut redis::Pipeline, instance: &str, user: &str, n: usize) {
    pipe.hset(streams_key(user), instance, n).ignore();
}
