//! The TCP side of the server: accepting connections and serving HTTP/1.1 on them (hyper), with
//! the bounds on connections that have not become streams yet:
//!
//! - at most `max_connections` accepted connections are served at once (an upgraded WebSocket
//!   leaves this count and is bounded by the stream caps of [`crate::conns`]); over it, a new
//!   connection is closed at once, so the process never runs out of file descriptors;
//! - at most `max_idle_connections` of them may be waiting for their first request; to accept one
//!   more, the one that has waited longest is closed (a real client sends its request within
//!   milliseconds, so it is never the oldest), but only once it has waited 250 ms: until then
//!   the accept loop pauses and new connections wait in the kernel's backlog (in a connect burst
//!   the server may not have read requests that have already arrived);
//! - a request head must arrive within `header_read_timeout` (slowloris), including the wait for
//!   the next request on a kept-alive connection;
//! - a connection whose writes have waited `slow_consumer` for the client to take bytes is cut
//!   (hyper never gives up on a write by itself: a client that stops reading a response, an SSE
//!   stream or a poll answer would hold the connection forever).
//!
//! The listening socket is bound with a backlog of [`DEFAULT_LISTEN_BACKLOG`] by default (tokio's
//! `TcpListener::bind` asks for 128, as the standard library does): a fleet reconnecting at
//! once after a restart must not lose SYNs, which a client retries only after 1 s, then 3 s.
//!
//! What a request does is the router's business; this module only moves connections.

use crate::state::AppState;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Closes the connection a request came on, from a handler (a request extension). Used for a
/// streaming response whose client stopped reading: hyper itself never gives up on a write.
#[derive(Clone)]
pub struct ConnCut(CancellationToken);

impl ConnCut {
    /// Closes the connection now (the socket is dropped, whatever is queued on it).
    pub fn cut(&self) {
        self.0.cancel();
    }
}

/// The bounds of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// Connections served at once (not counting upgraded WebSockets).
    pub max_connections: usize,
    /// Connections waiting for their first request; the oldest is closed beyond this.
    pub max_idle_connections: usize,
    /// How long a request head may take to arrive, including the idle wait between requests.
    pub header_read_timeout: Duration,
    /// How long a write may wait for the client to take bytes before the connection is cut.
    pub slow_consumer: Duration,
}

/// The largest buffer hyper keeps per connection for reading a request head (so also the largest
/// request head: beyond it, `431`) or queueing response bytes a client has not taken yet (hyper's
/// own default is about 400 KB, which 300 stalled SSE readers multiply).
const MAX_CONN_BUF: usize = 16 * 1024;

/// The listen backlog unless configured (`--listen-backlog`): 4,096 pending connections, the
/// Linux default of `net.core.somaxconn` since 5.4 (the kernel silently caps the backlog there).
pub const DEFAULT_LISTEN_BACKLOG: u32 = 4_096;

/// Binds `addr` with `SO_REUSEADDR` (a restarted server takes its port back at once) and a listen
/// backlog of `backlog`, warning when the kernel will cap it lower.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    if let Some(cap) = somaxconn().filter(|cap| *cap < backlog) {
        tracing::warn!(
            backlog,
            somaxconn = cap,
            "the kernel caps the listen backlog at net.core.somaxconn; raise it \
             (sysctl -w net.core.somaxconn={backlog}) for connect bursts"
        );
    }
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    TcpListener::from_std(socket.into())
}

/// `net.core.somaxconn` where it can be read (Linux).
fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A connection waiting for its first request is never closed to make room for a newer one
/// before it has waited this long: in a connect burst the server may take a while to read a
/// request that has already arrived.
const MIN_IDLE_AGE: Duration = Duration::from_millis(250);

/// Pause after a failed `accept` (for instance out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A TCP stream that remembers since when a write has been waiting for the client.
struct Watched {
    tcp: TcpStream,
    stall: Arc<Stall>,
}

/// Since when a connection's writes have been blocked (0: they are not), in ms since `epoch`.
struct Stall {
    epoch: Instant,
    since_ms: AtomicU64,
}

impl Stall {
    fn new() -> Stall {
        Stall {
            epoch: Instant::now(),
            since_ms: AtomicU64::new(0),
        }
    }

    fn note<T>(&self, poll: &Poll<T>) {
        if poll.is_pending() {
            if self.since_ms.load(Ordering::Relaxed) == 0 {
                let now = self.epoch.elapsed().as_millis() as u64 + 1;
                self.since_ms.store(now, Ordering::Relaxed);
            }
        } else {
            self.since_ms.store(0, Ordering::Relaxed);
        }
    }

    /// How long writes have been blocked.
    fn stalled_for(&self) -> Duration {
        match self.since_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => (self.epoch.elapsed()).saturating_sub(Duration::from_millis(since - 1)),
        }
    }

    /// Resolves once writes have been blocked for `limit`.
    async fn exceeds(&self, limit: Duration) {
        let tick = (limit / 4).max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(tick).await;
            if self.stalled_for() >= limit {
                return;
            }
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.stall.note(&poll);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.stall.note(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.tcp).poll_flush(cx);
        self.stall.note(&poll);
        poll
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Connections that have not made a request yet, oldest first (ids grow with each accept), with
/// when each was accepted.
#[derive(Default)]
struct Waiting {
    by_id: Mutex<BTreeMap<u64, (CancellationToken, Instant)>>,
    /// Signalled whenever a connection stops waiting.
    left: Notify,
}

/// What the accept loop may do about the idle cap.
enum Room {
    /// Accept one more.
    Now,
    /// Every waiting connection is younger than [`MIN_IDLE_AGE`]: wait until this moment (or
    /// until one of them makes its request), leaving new connections in the kernel's backlog.
    At(Instant),
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, (CancellationToken, Instant)>> {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes room for one more waiting connection under `max`: closes the oldest ones if they
    /// have waited at least [`MIN_IDLE_AGE`]; otherwise says when to look again.
    fn make_room(&self, max: usize, now: Instant) -> Room {
        let mut map = self.lock();
        while map.len() >= max.max(1) {
            let Some(mut oldest) = map.first_entry() else {
                break;
            };
            let since = oldest.get().1;
            if now.duration_since(since) < MIN_IDLE_AGE {
                return Room::At(since + MIN_IDLE_AGE);
            }
            oldest.get_mut().0.cancel();
            oldest.remove();
        }
        Room::Now
    }

    /// Registers connection `id` and the signal that closes it.
    fn admit(&self, id: u64, cut: &CancellationToken, now: Instant) {
        self.lock().insert(id, (cut.clone(), now));
    }

    /// Connection `id` made a request (or ended): it no longer waits.
    fn done(&self, id: u64) {
        if self.lock().remove(&id).is_some() {
            self.left.notify_one();
        }
    }
}

/// Serves `app` on `listener` until `stop` fires, then asks every connection to finish its
/// current request and waits for them.
pub async fn serve(listener: TcpListener, app: Router, limits: ListenerLimits, shared: AppState) {
    let stop = shared.conns.shutdown_token();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_CONN_BUF);
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let waiting = Arc::new(Waiting::default());
    let tasks = TaskTracker::new();
    let mut next_id: u64 = 0;
    loop {
        // Under the idle cap, or once the oldest waiting connection is old enough to be closed:
        // a connect burst waits in the kernel's backlog instead of evicting connections whose
        // request has simply not been read yet.
        while let Room::At(when) = waiting.make_room(limits.max_idle_connections, Instant::now()) {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(when.into()) => {}
                _ = waiting.left.notified() => {}
            }
        }
        let tcp = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            tracing::debug!("connection cap reached; closing a new connection");
            drop(tcp);
            continue;
        };
        // Frames are small and latency matters: without TCP_NODELAY, Nagle's algorithm holds a
        // reply back until the client's delayed ACK (40 ms on Linux) whenever one is in flight.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let id = next_id;
        next_id += 1;
        let cut = CancellationToken::new();
        waiting.admit(id, &cut, Instant::now());
        let app = TowerToHyperService::new(app.clone());
        let served = Arc::clone(&waiting);
        let handle = ConnCut(cut.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            served.done(id);
            req.extensions_mut().insert(handle.clone());
            hyper::service::Service::call(&app, req)
        });
        let stall = Arc::new(Stall::new());
        let watched = Watched {
            tcp,
            stall: Arc::clone(&stall),
        };
        let conn = builder
            .serve_connection(TokioIo::new(watched), service)
            .with_upgrades();
        let stop = stop.clone();
        let shared = Arc::clone(&shared);
        let waiting = Arc::clone(&waiting);
        tasks.spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                _ = stall.exceeds(limits.slow_consumer) => {
                    tracing::info!("client took no bytes for too long; cutting its connection");
                    shared.conns.note_slow_consumer();
                }
                _ = cut.cancelled() => {
                    tracing::debug!("connection cut (idle cap, or a client that stopped reading)");
                }
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    // Still bounded: a client that stops reading cannot hold up the shutdown.
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stall.exceeds(limits.slow_consumer) => {}
                        _ = cut.cancelled() => {}
                    }
                }
            }
            waiting.done(id);
        });
    }
    tasks.close();
    tasks.wait().await;
}
