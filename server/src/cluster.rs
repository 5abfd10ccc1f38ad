//! Cluster mode: what crosses server instances goes through Redis (`--redis URL`, next to the
//! shared PostgreSQL). This module owns the instance's identity, its Redis connections and the
//! outbound queue to Redis; its parts are:
//!
//! - [`bus`]: one Redis Stream carrying committed messages (whole, so other instances need not
//!   read PostgreSQL for them), membership-change wake-ups, presence changes and typing; each
//!   instance reads it and hands messages to the [`crate::tail`], which checks contiguity;
//! - [`liveness`]: each instance's registration (a key with a TTL of one heartbeat, the set of its
//!   online users) and the sweeper that announces a dead instance's users offline;
//! - [`quota`]: rate-limit token buckets and per-user stream counts shared by every instance.
//!
//! Redis is never needed for correctness of stored data: when it is unreachable, the tail polls
//! PostgreSQL, limits and caps fall back to this instance's own (fail open, with a log line), and
//! the registration is rewritten when Redis answers again.

pub mod bus;
pub mod liveness;
pub mod quota;

use crate::hub::Relay;
use crate::state::Shared;
use crate::tail::{Forward, Tail};
use lifeline_core::protocol::{encode, Message, ServerFrame};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Every key this server writes starts with it.
const PREFIX: &str = "lifeline:";

/// Events waiting to be written to Redis; beyond it new ones are dropped and the registration is
/// rewritten (messages dropped from the bus are read from PostgreSQL by the other instances).
const OUTBOUND_QUEUE: usize = 65_536;

/// Events written to Redis per round trip.
const OUTBOUND_BATCH: usize = 512;

/// How long one Redis command may take before this instance falls back to its local view.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// How long connecting to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// An event for the other instances.
enum Out {
    /// A committed message (encoded `msg` frame).
    Msg(String),
    /// Membership changes were logged in PostgreSQL.
    Changes,
    /// A user's first stream here opened (`true`) or last one closed.
    Presence(String, bool),
    /// A member is typing: `(conv, user)`.
    Typing(String, String),
    /// One of a user's streams here closed.
    StreamClosed(String),
}

/// This instance's membership of the cluster.
pub struct Cluster {
    /// This instance's id (random, per start).
    id: String,
    /// The connection for short commands (not the blocking bus read).
    conn: ConnectionManager,
    client: redis::Client,
    out: mpsc::Sender<Out>,
    /// The registration in Redis may be out of date (an event was lost): rewrite it.
    dirty: AtomicBool,
    /// Redis is failing (logged once per outage).
    failing: AtomicBool,
    heartbeat: Duration,
}

/// Why cluster mode could not start.
#[derive(Debug)]
pub struct ClusterError(pub String);

fn key(parts: &[&str]) -> String {
    let mut k = String::from(PREFIX);
    k.push_str(&parts.join(":"));
    k
}

fn instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

impl Cluster {
    /// Joins the cluster at `url` (the connection is made lazily: an unreachable Redis does not
    /// stop the server from starting) and starts the bus reader, the publisher and the liveness
    /// tasks; they end when `shared` is dropped.
    pub fn start(
        url: &str,
        shared: &Arc<Shared>,
        tail: &Arc<Tail>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let client = redis::Client::open(url)
            .map_err(|e| ClusterError(format!("bad Redis URL ({:?})", e.kind())))?;
        let conn = ConnectionManager::new_lazy_with_config(
            client.clone(),
            manager_config(COMMAND_TIMEOUT),
        )
        .map_err(|e| ClusterError(format!("Redis client ({:?})", e.kind())))?;
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let cluster = Arc::new(Cluster {
            id: instance_id(),
            conn,
            client,
            out: tx,
            dirty: AtomicBool::new(true),
            failing: AtomicBool::new(false),
            heartbeat: Duration::from_millis(shared.config.heartbeat_ms.max(100)),
        });
        tracing::info!(instance = %cluster.id, "cluster mode: joining through Redis");
        shared.hub.set_relay(Arc::clone(&cluster) as Arc<dyn Relay>);
        tail.set_forward(Arc::clone(&cluster) as Arc<dyn Forward>);
        shared.limits.set_cluster(Arc::clone(&cluster));
        shared.conns.set_cluster(Arc::clone(&cluster));
        tokio::spawn(publish(Arc::downgrade(&cluster), rx));
        tokio::spawn(bus::read(
            Arc::clone(&cluster),
            Arc::downgrade(shared),
            Arc::clone(tail),
        ));
        tokio::spawn(liveness::run(Arc::clone(&cluster), Arc::downgrade(shared)));
        Ok(cluster)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn queue(&self, out: Out) {
        if self.out.try_send(out).is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// One of `user`'s streams that [`quota`] counted closed.
    pub fn stream_closed(&self, user: &str) {
        self.queue(Out::StreamClosed(user.to_string()));
    }

    /// Notes a Redis failure (logged once per outage) and that the registration must be
    /// rewritten once Redis answers again.
    fn failed(&self, what: &str, e: &redis::RedisError) {
        self.dirty.store(true, Ordering::Relaxed);
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = ?e.kind(),
                what,
                "Redis unreachable: falling back to PostgreSQL polling and local limits"
            );
        }
    }

    fn recovered(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis reachable again");
        }
    }
}

fn manager_config(response: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500))
}

impl Relay for Cluster {
    fn presence(&self, user: &str, online: bool) {
        self.queue(Out::Presence(user.to_string(), online));
    }

    fn typing(&self, conv: &str, user: &str) {
        self.queue(Out::Typing(conv.to_string(), user.to_string()));
    }
}

impl Forward for Cluster {
    fn messages(&self, stored: &[Message]) {
        for m in stored {
            self.queue(Out::Msg(encode(&ServerFrame::Msg(m.clone()))));
        }
    }

    fn changes(&self) {
        self.queue(Out::Changes);
    }
}

/// Writes queued events to Redis in pipelined batches, in order; ends when the cluster (and so
/// the queue's sender) is dropped.
async fn publish(cluster: std::sync::Weak<Cluster>, mut rx: mpsc::Receiver<Out>) {
    let mut batch = Vec::with_capacity(OUTBOUND_BATCH);
    while rx.recv_many(&mut batch, OUTBOUND_BATCH).await > 0 {
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        let users = key(&["users", &cluster.id]);
        let mut pipe = redis::pipe();
        for out in batch.drain(..) {
            match out {
                Out::Msg(frame) => bus::add(&mut pipe, &cluster.id, &[("k", "m"), ("f", &frame)]),
                Out::Changes => bus::add(&mut pipe, &cluster.id, &[("k", "c")]),
                Out::Presence(user, online) => {
                    if online {
                        pipe.sadd(&users, &user).ignore();
                    } else {
                        pipe.srem(&users, &user).ignore();
                    }
                    let o = if online { "1" } else { "0" };
                    bus::add(
                        &mut pipe,
                        &cluster.id,
                        &[("k", "p"), ("u", &user), ("o", o)],
                    );
                }
                Out::Typing(conv, user) => bus::add(
                    &mut pipe,
                    &cluster.id,
                    &[("k", "t"), ("c", &conv), ("u", &user)],
                ),
                Out::StreamClosed(user) => quota::stream_closed(&mut pipe, &cluster.id, &user),
            }
        }
        match pipe.query_async::<()>(&mut cluster.conn()).await {
            Ok(()) => cluster.recovered(),
            Err(e) => cluster.failed("publishing to the bus", &e),
        }
    }
}
