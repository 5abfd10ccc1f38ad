//! Live connections as a whole: the shutdown signal, the "drop every connection" signal, the
//! tracker that shutdown waits on, and a count of open streams.
//!
//! What a transport does when a signal fires (send `going_away`, close, abort) is decided in the
//! transport itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Signals shared by every connection.
pub struct Conns {
    shutdown: CancellationToken,
    drop_all: Mutex<CancellationToken>,
    tracker: TaskTracker,
    open: Arc<AtomicUsize>,
}

impl Default for Conns {
    fn default() -> Self {
        Conns {
            shutdown: CancellationToken::new(),
            drop_all: Mutex::new(CancellationToken::new()),
            tracker: TaskTracker::new(),
            open: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// One open stream: its signals, and its place in the count.
pub struct ConnGuard {
    /// Fires when the server shuts down.
    pub shutdown: CancellationToken,
    /// Fires when the `drop` fault is triggered.
    pub dropped: CancellationToken,
    open: Arc<AtomicUsize>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Conns {
    /// Registers an open stream.
    pub fn open(&self) -> ConnGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        ConnGuard {
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
