//! Live connections as a whole: the shutdown signal, the "drop every connection" signal, the
//! tracker that shutdown waits on, a count of open streams, and the stream caps (in the whole
//! server and per user) that decide whether one more stream may open.
//!
//! In cluster mode the per-user cap counts the user's streams on every instance (see
//! [`crate::cluster::quota`]); when Redis does not answer in time, this instance's own count
//! decides (fail open to the local cap, logged once per outage).
//!
//! What a transport does when a signal fires (send `going_away`, close, abort) is decided in the
//! transport itself.

use crate::cluster::Cluster;
use crate::errors::ApiError;
use lifeline_core::protocol::ErrorCode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Open streams per user.
type PerUser = Arc<Mutex<HashMap<String, usize>>>;

/// `retry_after_ms` of a refusal by a stream cap: caps free up as other streams end.
pub const CAP_RETRY_MS: u64 = 5_000;

/// Signals shared by every connection.
pub struct Conns {
    shutdown: CancellationToken,
    drop_all: Mutex<CancellationToken>,
    tracker: TaskTracker,
    open: Arc<AtomicUsize>,
    per_user: PerUser,
    max_streams: usize,
    max_per_user: usize,
    slow_consumers: AtomicUsize,
    /// Cluster mode: the shared per-user stream counts.
    cluster: OnceLock<Arc<Cluster>>,
}

impl Default for Conns {
    /// No caps (for tests of other parts).
    fn default() -> Self {
        Conns::new(usize::MAX, usize::MAX)
    }
}

/// One open stream: its signals, and its place in the count.
pub struct ConnGuard {
    /// Fires when the server shuts down.
    pub shutdown: CancellationToken,
    /// Fires when the `drop` fault is triggered.
    pub dropped: CancellationToken,
    open: Arc<AtomicUsize>,
    /// The user counted in `per_user`, if any.
    user: Option<(PerUser, String)>,
    /// Cluster mode: the stream is counted in the shared per-user count too.
    shared: Option<Arc<Cluster>>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        if let (Some(cluster), Some((_, user))) = (self.shared.take(), &self.user) {
            cluster.stream_closed(user);
        }
        if let Some((per_user, user)) = self.user.take() {
            let mut map = per_user.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(&user) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&user);
                }
            }
        }
    }
}

impl Conns {
    /// Signals and counts, with at most `max_streams` streams open and `max_per_user` per user.
    pub fn new(max_streams: usize, max_per_user: usize) -> Conns {
        Conns {
            shutdown: CancellationToken::new(),
            drop_all: Mutex::new(CancellationToken::new()),
            tracker: TaskTracker::new(),
            open: Arc::new(AtomicUsize::new(0)),
            per_user: Arc::new(Mutex::new(HashMap::new())),
            max_streams,
            max_per_user,
            slow_consumers: AtomicUsize::new(0),
            cluster: OnceLock::new(),
        }
    }

    /// Counts per-user streams across the cluster from now on.
    pub fn set_cluster(&self, cluster: Arc<Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// Open streams per user on this instance.
    pub fn per_user_counts(&self) -> Vec<(String, usize)> {
        let map = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(u, n)| (u.clone(), *n)).collect()
    }

    /// [`Conns::try_open`], and in cluster mode the per-user cap counted over every instance
    /// (this instance's count alone when Redis does not answer).
    pub async fn try_open_shared(&self, user: &str) -> Result<ConnGuard, ApiError> {
        let mut guard = self.try_open(user)?;
        let Some(cluster) = self.cluster.get() else {
            return Ok(guard);
        };
        // Closing decrements the shared count even when this open was not counted (Redis
        // down): the count never goes below zero, and the registration rewritten after an
        // outage sets it right.
        guard.shared = Some(Arc::clone(cluster));
        match cluster.open_stream(user, self.max_per_user).await {
            Ok(false) => {
                // Not counted: closing must not decrement.
                guard.shared = None;
                Err(ApiError::new(
                    ErrorCode::RateLimited,
                    "too many open streams for this user; close one or retry later",
                )
                .retry_after(CAP_RETRY_MS))
            }
            Ok(true) | Err(_) => Ok(guard),
        }
    }

    /// Counts a stream or connection closed because its client stopped taking bytes.
    pub fn note_slow_consumer(&self) {
        self.slow_consumers.fetch_add(1, Ordering::Relaxed);
    }

    /// How many streams or connections were closed as slow consumers since the start.
    pub fn slow_consumer_count(&self) -> usize {
        self.slow_consumers.load(Ordering::Relaxed)
    }

    /// Registers an open stream of `user` if the caps allow one more: over the server's cap,
    /// `going_away` (503); over the user's, `rate_limited` (429); both with `retry_after_ms`.
    pub fn try_open(&self, user: &str) -> Result<ConnGuard, ApiError> {
        {
            let mut map = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
            if self.open.load(Ordering::SeqCst) >= self.max_streams {
                return Err(ApiError::new(
                    ErrorCode::GoingAway,
                    "the server has too many open streams; retry later",
                )
                .retry_after(CAP_RETRY_MS));
            }
            let n = map.entry(user.to_string()).or_insert(0);
            if *n >= self.max_per_user {
                return Err(ApiError::new(
                    ErrorCode::RateLimited,
                    "too many open streams for this user; close one or retry later",
                )
                .retry_after(CAP_RETRY_MS));
            }
            *n += 1;
        }
        let mut guard = self.open();
        guard.user = Some((Arc::clone(&self.per_user), user.to_string()));
        Ok(guard)
    }

    /// Registers an open stream outside the caps (fault-switch black holes).
    pub fn open(&self) -> ConnGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        ConnGuard {
            user: None,
            shared: None,
            shutdown: self.shutdown.clone(),
            dropped: self
                .drop_all
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            open: Arc::clone(&self.open),
        }
    }

    /// How many streams (WebSocket, SSE, pending long polls) are open.
    pub fn open_count(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Drops every live connection on every transport.
    pub fn drop_all(&self) {
        let old = std::mem::replace(
            &mut *self.drop_all.lock().unwrap_or_else(|p| p.into_inner()),
            CancellationToken::new(),
        );
        old.cancel();
    }

    /// The shutdown signal.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// The tracker of connection tasks that shutdown waits for.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }
}
