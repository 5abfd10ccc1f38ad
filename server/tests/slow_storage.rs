//! Storage slower than the heartbeat under open streams (PostgreSQL with the messages table
//! locked by another session): a stream's replay read is started once and awaited, whatever the
//! stream's timers do meanwhile, and its messages arrive once, in order, when storage answers.
//! A read that was abandoned and started again on every heartbeat would pile up queries on the
//! slow database and could never finish if it took longer than the gap between two timers.

mod common;

use common::postgres::pg;
use common::*;
use lifeline_core::protocol::ServerFrame;
use lifeline_server::{RunningServer, Secret, ServerConfig};

/// Heartbeats this short make several fire during one locked read.
const HEARTBEAT_MS: u64 = 100;
/// Heartbeats a stream sends while its replay waits (once it waits), before the waiting queries
/// are counted.
const BEATS: usize = 5;
/// Heartbeats allowed for the stream's first read to reach the lock.
const MAX_BEATS_TO_REACH_THE_LOCK: usize = 50;

/// A server on a new database, with three messages of `pat` stored in `room`; and its URL.
async fn server_with_history() -> (RunningServer, String, String) {
    let url = tokio::task::spawn_blocking(|| pg().new_database())
        .await
        .unwrap();
    let s = server_with(ServerConfig {
        postgres: Some(Secret(url.clone())),
        heartbeat_ms: HEARTBEAT_MS,
        ..ServerConfig::for_tests()
    })
    .await;
    let t = token(&s, "pat");
    join(&s, &t, "room").await;
    for i in 1..=3 {
        send_one(&s, &t, &format!("m{i}"), "room", &format!("body {i}")).await;
    }
    (s, t, url)
}

/// Another session holding an exclusive lock on `messages` until [`Locked::release`], and a
/// third one watching the server's queries (outside the lock's transaction, whose view of
/// `pg_stat_activity` would stay the snapshot of its first look).
struct Locked {
    holder: tokio_postgres::Client,
    observer: tokio_postgres::Client,
}

async fn session(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connecting to the test database");
    tokio::spawn(conn);
    client
}

impl Locked {
    async fn take(url: &str) -> Locked {
        let holder = session(url).await;
        holder
            .batch_execute("BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            .await
            .expect("locking messages");
        let observer = session(url).await;
        Locked { holder, observer }
    }

    /// Waits for `stream`'s heartbeats until a replay query waits for the lock, then for
    /// `BEATS` more; returns the replay queries waiting then.
    async fn waiting_after_beats(&self, stream: &mut impl Stream) -> i64 {
        let mut beats = 0;
        while self.waiting_replays().await == 0 {
            stream.heartbeat().await;
            beats += 1;
            assert!(
                beats < MAX_BEATS_TO_REACH_THE_LOCK,
                "no replay query reached the lock within {beats} heartbeats"
            );
        }
        for _ in 0..BEATS {
            stream.heartbeat().await;
        }
        self.waiting_replays().await
    }

    /// The server's replay queries now waiting for the lock.
    async fn waiting_replays(&self) -> i64 {
        self.observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                   AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'
                   AND query LIKE '%JOIN members b ON b.conv = m.conv%'",
                &[],
            )
            .await
            .expect("reading pg_stat_activity")
            .get(0)
    }

    async fn release(self) {
        self.holder
            .batch_execute("COMMIT")
            .await
            .expect("unlocking");
    }
}

/// A stream under test: its next frame is expected to be a heartbeat, or a stored message.
trait Stream {
    async fn heartbeat(&mut self);
    async fn next_durable(&mut self) -> ServerFrame;
}

impl Stream for Ws {
    async fn heartbeat(&mut self) {
        match ws_next_any(self, false).await {
            WsEvent::Frame(ServerFrame::Heartbeat) => {}
            other => panic!("only heartbeats while storage is locked, got {other:?}"),
        }
    }

    async fn next_durable(&mut self) -> ServerFrame {
        ws_next_durable(self).await
    }
}

impl Stream for Sse {
    async fn heartbeat(&mut self) {
        let ev = self.next_event().await.expect("sse stream ended");
        match ev.frame() {
            ServerFrame::Heartbeat => {}
            other => panic!("only heartbeats while storage is locked, got {other:?}"),
        }
    }

    async fn next_durable(&mut self) -> ServerFrame {
        Sse::next_durable(self).await
    }
}

/// With storage locked under `stream` (which has sent its `hello`): one replay query waits
/// however many heartbeats go by, and once the lock goes the three stored messages arrive in
/// order.
async fn replay_is_read_once(lock: Locked, stream: &mut impl Stream) {
    let waiting = lock.waiting_after_beats(stream).await;
    lock.release().await;
    assert_eq!(
        waiting, 1,
        "replay queries waiting after {BEATS} heartbeats"
    );
    let mut bodies = Vec::new();
    while bodies.len() < 3 {
        match stream.next_durable().await {
            ServerFrame::Msg(m) => bodies.push(m.body),
            other => panic!("expected the stored messages, got {other:?}"),
        }
    }
    assert_eq!(bodies, ["body 1", "body 2", "body 3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_replay_slower_than_the_heartbeat_is_read_once() {
    let (s, t, url) = server_with_history().await;
    let lock = Locked::take(&url).await;
    let mut ws = ws_open(&s, &format!("token={t}&cursor=0")).await;
    replay_is_read_once(lock, &mut ws).await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_replay_slower_than_the_heartbeat_is_read_once() {
    let (s, t, url) = server_with_history().await;
    let lock = Locked::take(&url).await;
    let mut sse = sse_connect(&s, &format!("token={t}&cursor=0"), None).await;
    assert_eq!(sse.status, 200);
    assert!(matches!(sse.next_durable().await, ServerFrame::Hello(_)));
    replay_is_read_once(lock, &mut sse).await;
    s.shutdown().await;
}
