//! Cluster mode on real engines: two `lifeline-server` instances sharing one PostgreSQL
//! (started from `initdb` by the common helpers) and one `redis-server` that each test starts
//! itself (free loopback port, append-only file in a temp dir, stopped by PID).
//!
//! Covered: the Redis URL never shown, and refused without PostgreSQL; presence and typing across
//! instances; a `kill -9`ed instance's users offline within twice the heartbeat; the send rate limit and the per-user stream cap shared across instances;
//! Redis restarted mid-stream and Redis unreachable from one instance for 20 s (a TCP proxy cut
//! between that instance and Redis), each over thousands of messages checked for loss,
//! duplication and reordering.

mod common;
#[path = "common/redis.rs"]
mod redis_server;

use common::*;
use futures_util::StreamExt;
use lifeline_core::protocol::{decode_server_frame, ClientFrame, ServerFrame};
use lifeline_server::config::TEST_SECRET;
use lifeline_server::{start, RunningServer, Secret, ServerConfig};
use redis_server::{free_port, ping, Redis};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// The heartbeat of every instance in these tests (the liveness TTL is one heartbeat).
const HEARTBEAT: Duration = Duration::from_millis(1_000);

// ---------------------------------------------------------------- fault proxy

/// A TCP proxy to Redis that can be cut: every connection through it is closed and new ones are
/// closed as soon as they are accepted, until it is healed.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    pipes: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let port = listener.local_addr().expect("proxy addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let pipes: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let (cut, pipes) = (Arc::clone(&cut), Arc::clone(&pipes));
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        continue;
                    }
                    let pipe = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    pipes.lock().unwrap().push(pipe.abort_handle());
                }
            }
        });
        Proxy {
            port,
            cut,
            pipes,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for pipe in self.pipes.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

// ---------------------------------------------------------------- instances and clients

async fn new_database() -> String {
    tokio::task::spawn_blocking(|| postgres::pg().new_database())
        .await
        .expect("database")
}

fn config(pg: &str, redis: &str) -> ServerConfig {
    ServerConfig {
        postgres: Some(Secret(pg.to_string())),
        redis: Some(Secret(redis.to_string())),
        heartbeat_ms: HEARTBEAT.as_millis() as u64,
        ..ServerConfig::for_tests()
    }
}

async fn instance(pg: &str, redis: &str) -> RunningServer {
    start(config(pg, redis)).await.expect("instance starts")
}

/// Two instances A and B of `config` (sharing its PostgreSQL and Redis).
async fn pair(config: ServerConfig) -> (RunningServer, RunningServer) {
    let a = start(config.clone()).await.expect("A");
    let b = start(config).await.expect("B");
    (a, b)
}

/// An instance run as a child process (so that it can be killed with SIGKILL).
struct ChildInstance {
    port: u16,
    child: Child,
}

impl ChildInstance {
    async fn start(pg: &str, redis: &str) -> ChildInstance {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_lifeline-server"))
            .args(["--dev", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--token-secret", &format!("test:{TEST_SECRET}")])
            .args(["--postgres", pg, "--redis", redis])
            .args(["--heartbeat-ms", &HEARTBEAT.as_millis().to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the lifeline-server binary");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = http()
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the child instance did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ChildInstance { port, child }
    }

    fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for ChildInstance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn ws_at(base: &str, query: &str) -> Ws {
    let url = format!("{base}/v1/ws?v=1&{query}");
    let (mut ws, _) = within("ws connect", tokio_tungstenite::connect_async(url))
        .await
        .expect("ws upgrade");
    match ws_next(&mut ws).await {
        ServerFrame::Hello(_) => ws,
        f => panic!("expected hello first, got {f:?}"),
    }
}

/// The status of a refused WebSocket upgrade (panics if it was accepted).
async fn ws_refused(s: &RunningServer, query: &str) -> u16 {
    let url = format!("{}/v1/ws?v=1&{query}", s.ws_base_url());
    match within("ws connect", tokio_tungstenite::connect_async(url)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

/// Waits (bounded by `WAIT`) for a frame matching `want`, skipping others.
async fn expect_frame(ws: &mut Ws, what: &str, want: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
    within(what, async {
        loop {
            let f = ws_next(ws).await;
            if want(&f) {
                return f;
            }
        }
    })
    .await
}

fn presence_of(user: &'static str, online: bool) -> impl Fn(&ServerFrame) -> bool {
    move |f| matches!(f, ServerFrame::Presence { user: u, online: o, .. } if u == user && *o == online)
}

// ---------------------------------------------------------------- presence and typing

/// Typing is coalesced per user and conversation across the cluster: a user typing through two
/// instances within one interval is heard once (the limit cannot be multiplied by spreading
/// connections over instances).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_coalesced_across_instances() {
    let redis = Redis::start();
    let pg = new_database().await;
    let (a, b) = pair(ServerConfig {
        typing_interval_ms: 60_000,
        ..config(&pg, &redis.url())
    })
    .await;
    let (alice, bob, carol) = (token(&a, "alice"), token(&a, "bob"), token(&b, "carol"));
    for (s, t) in [(&a, &alice), (&a, &bob), (&b, &carol)] {
        join(s, t, "room").await;
    }
    let mut alice_ws = ws_open(&a, &format!("token={alice}")).await;
    let typing = |conv: &str| [ClientFrame::Typing { conv: conv.into() }];
    let typing_of = |who: &'static str| move |f: &ServerFrame| matches!(f, ServerFrame::Typing { user, .. } if user == who);

    // bob types through A: alice hears it.
    assert!(send_ok(&a, &bob, &typing("room")).await.is_empty());
    expect_frame(&mut alice_ws, "bob typing through A", typing_of("bob")).await;
    // bob types again through B, then carol types through B: B publishes both to the bus in
    // that order (each answered after B handled it), so had B delivered bob's, alice would hear
    // it before carol's.
    assert!(send_ok(&b, &bob, &typing("room")).await.is_empty());
    assert!(send_ok(&b, &carol, &typing("room")).await.is_empty());
    let heard = expect_frame(&mut alice_ws, "carol typing through B", |f| {
        typing_of("bob")(f) || typing_of("carol")(f)
    })
    .await;
    assert!(
        typing_of("carol")(&heard),
        "bob's second typing within the interval reached alice through B: {heard:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_typing_cross_instances() {
    let redis = Redis::start();
    let pg = new_database().await;
    let (a, b) = pair(config(&pg, &redis.url())).await;
    let (alice, bob) = (token(&a, "alice"), token(&b, "bob"));
    join(&a, &alice, "room").await;
    join(&b, &bob, "room").await;
    let mut alice_ws = ws_open(&a, &format!("token={alice}")).await;

    // bob comes online on B: alice, on A, is told.
    let bob_on_b = ws_open(&b, &format!("token={bob}")).await;
    expect_frame(&mut alice_ws, "bob online", presence_of("bob", true)).await;
    assert!(a.is_online("bob"), "A sees bob online through Redis");

    // bob types on B: alice, on A, sees it.
    let mut bob_on_b = bob_on_b;
    ws_send(
        &mut bob_on_b,
        &ClientFrame::Typing {
            conv: "room".into(),
        },
    )
    .await;
    expect_frame(
        &mut alice_ws,
        "bob typing",
        |f| matches!(f, ServerFrame::Typing { user, conv } if user == "bob" && conv == "room"),
    )
    .await;

    // bob also on A, then gone from B: still online (A has him), no offline frame. bea's typing
    // on B, sent after B has closed bob's stream there, is queued to the bus after B's "bob left
    // here" event: alice must see it with no offline frame for bob before it.
    let bob_on_a = ws_open(&a, &format!("token={bob}")).await;
    let bea = token(&b, "bea");
    join(&b, &bea, "room").await;
    let mut bea_on_b = ws_open(&b, &format!("token={bea}")).await;
    expect_frame(&mut alice_ws, "bea online", presence_of("bea", true)).await;
    drop(bob_on_b);
    wait_until("B to close bob's stream", || b.open_streams() == 1).await;
    ws_send(
        &mut bea_on_b,
        &ClientFrame::Typing {
            conv: "room".into(),
        },
    )
    .await;
    let marker = expect_frame(&mut alice_ws, "bea typing", |f| {
        presence_of("bob", false)(f)
            || matches!(f, ServerFrame::Typing { user, .. } if user == "bea")
    })
    .await;
    assert!(
        matches!(marker, ServerFrame::Typing { .. }),
        "bob announced offline while A still has him"
    );
    assert!(
        a.is_online("bob") && b.is_online("bob"),
        "online while either instance has him"
    );

    // bob gone everywhere: offline on both, and alice is told.
    drop(bob_on_a);
    expect_frame(&mut alice_ws, "bob offline", presence_of("bob", false)).await;
    wait_until("B to see bob offline", || !b.is_online("bob")).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_instance_users_go_offline_within_two_heartbeats() {
    let redis = Redis::start();
    let pg = new_database().await;
    let a = instance(&pg, &redis.url()).await;
    let mut b = ChildInstance::start(&pg, &redis.url()).await;
    let (alice, bob) = (token(&a, "alice"), token(&a, "bob"));
    join(&a, &alice, "room").await;
    join(&a, &bob, "room").await;
    let mut alice_ws = ws_open(&a, &format!("token={alice}")).await;
    let _bob_ws = ws_at(
        &format!("ws://127.0.0.1:{}", b.port),
        &format!("token={bob}"),
    )
    .await;
    expect_frame(&mut alice_ws, "bob online", presence_of("bob", true)).await;

    let killed = Instant::now();
    b.kill9();
    expect_frame(
        &mut alice_ws,
        "bob offline after the kill",
        presence_of("bob", false),
    )
    .await;
    let took = killed.elapsed();
    println!("bob offline {took:?} after kill -9 of his instance (heartbeat {HEARTBEAT:?})");
    // Twice the heartbeat, plus a second of slack for a loaded 2-core machine.
    assert!(
        took <= 2 * HEARTBEAT + Duration::from_secs(1),
        "offline only after {took:?}"
    );
    assert!(!a.is_online("bob"));
    a.shutdown().await;
}

// ---------------------------------------------------------------- the bus

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_joins_cross_instances_through_the_bus_not_polling() {
    let redis = Redis::start();
    let pg = new_database().await;
    // PostgreSQL polled once a minute: anything that arrives sooner came over the bus.
    let (a, b) = pair(ServerConfig {
        tail_poll_ms: 60_000,
        ..config(&pg, &redis.url())
    })
    .await;
    let (alice, reader) = (token(&a, "alice"), token(&a, "reader"));
    join(&a, &alice, "room").await;
    let mut on_b = ws_open(&b, &format!("token={reader}")).await;
    // The reader joins through A; B learns of it from the bus (a membership-change wake-up).
    join(&a, &reader, "room").await;
    let began = Instant::now();
    let mut sent = Vec::new();
    for i in 0..50 {
        sent.push(send_one(&a, &alice, &format!("m{i}"), "room", &format!("hello {i}")).await);
    }
    let mut got = Vec::new();
    while got.len() < sent.len() {
        if let ServerFrame::Msg(m) = ws_next_durable(&mut on_b).await {
            got.push(m.seq);
        }
    }
    println!(
        "50 messages sent on A reached a stream on B in {:?} (PostgreSQL polled every 60 s)",
        began.elapsed()
    );
    assert_eq!(got, sent);
    a.shutdown().await;
    b.shutdown().await;
}

// ---------------------------------------------------------------- shared limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_rate_limit_is_shared_across_instances() {
    let redis = Redis::start();
    let pg = new_database().await;
    let (a, b) = pair(ServerConfig {
        rate_per_sec: 1,
        rate_burst: 10,
        ..config(&pg, &redis.url())
    })
    .await;
    let carol = token(&a, "carol");
    join(&a, &carol, "room").await;
    let (mut acked, mut refused) = (0, 0);
    let began = Instant::now();
    for i in 0..20 {
        let s = if i % 2 == 0 { &a } else { &b };
        // A fresh id each time: the penalty rule is per instance, the bucket is shared.
        let (status, body) = post_frames(s, &carol, &[send(&format!("m{i}"), "room", "x")]).await;
        match status.as_u16() {
            200 if body.contains("\"ack\"") => acked += 1,
            429 if body.contains("rate_limited") => refused += 1,
            _ => panic!("unexpected answer {status} {body}"),
        }
    }
    let refill = began.elapsed().as_secs() as usize + 1;
    println!("20 sends over two instances: {acked} acked, {refused} refused (burst 10)");
    assert!(
        acked <= 10 + refill,
        "{acked} sends acked: each instance applied its own bucket"
    );
    assert!(refused >= 20 - 10 - refill);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_cap_per_user_is_shared_across_instances() {
    let redis = Redis::start();
    let pg = new_database().await;
    let (a, b) = pair(ServerConfig {
        max_streams_per_user: 2,
        ..config(&pg, &redis.url())
    })
    .await;
    let dave = token(&a, "dave");
    let first = ws_open(&a, &format!("token={dave}")).await;
    let _second = ws_open(&b, &format!("token={dave}")).await;
    assert_eq!(ws_refused(&a, &format!("token={dave}")).await, 429);
    assert_eq!(ws_refused(&b, &format!("token={dave}")).await, 429);
    // One closes: a new one may open (once the close has reached Redis).
    drop(first);
    let deadline = Instant::now() + WAIT;
    loop {
        let url = format!("{}/v1/ws?v=1&token={dave}", b.ws_base_url());
        if tokio_tungstenite::connect_async(url).await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream was never uncounted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

// ---------------------------------------------------------------- Redis outages

/// Sends `count` messages as `user` through `s`, `batch` per request, pausing `pace` between
/// requests; returns the acknowledged seqs.
async fn sender(
    s: Arc<RunningServer>,
    user: &'static str,
    count: usize,
    batch: usize,
    pace: Duration,
) -> Vec<u64> {
    let t = token(&s, user);
    let mut seqs = Vec::with_capacity(count);
    let mut i = 0;
    while i < count {
        let n = batch.min(count - i);
        let frames: Vec<ClientFrame> = (i..i + n)
            .map(|k| send(&format!("{user}-{k}"), "room", &format!("{user} {k}")))
            .collect();
        for f in send_ok(&s, &t, &frames).await {
            match f {
                ServerFrame::Ack { seq, .. } => seqs.push(seq),
                other => panic!("{user}: unexpected answer {other:?}"),
            }
        }
        i += n;
        tokio::time::sleep(pace).await;
    }
    seqs
}

/// Reads `ws` until `count` messages arrived or `limit` passed; returns their seqs.
async fn receive(mut ws: Ws, count: usize, limit: Duration) -> Vec<u64> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut seqs = Vec::with_capacity(count);
    while seqs.len() < count {
        let next = tokio::time::timeout_at(deadline, ws.next()).await;
        match next {
            Ok(Some(Ok(Message::Text(t)))) => {
                if let Ok(ServerFrame::Msg(m)) = decode_server_frame(t.as_str()) {
                    seqs.push(m.seq);
                }
            }
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    drop(ws);
    seqs
}

/// Every acked seq delivered exactly once, in increasing order.
fn check_delivery(who: &str, got: &[u64], mut acked: Vec<u64>) {
    acked.sort_unstable();
    let dups = got.len() - got.iter().collect::<std::collections::HashSet<_>>().len();
    let reordered = got.windows(2).filter(|w| w[0] >= w[1]).count();
    let lost = acked.iter().filter(|s| !got.contains(s)).count();
    println!(
        "{who}: {} of {} messages, lost {lost}, duplicated {dups}, reordered {reordered}",
        got.len(),
        acked.len()
    );
    assert_eq!((lost, dups, reordered), (0, 0, 0), "{who}");
    assert_eq!(got, acked.as_slice(), "{who}");
}

/// Alice and bob send through A and B while `fault` runs; readers on both instances must get
/// everything once and in order.
async fn traffic_through(
    a: Arc<RunningServer>,
    b: Arc<RunningServer>,
    per_sender: usize,
    pace: Duration,
    fault: impl std::future::Future<Output = ()>,
) {
    let (alice, bob, reader) = (token(&a, "alice"), token(&b, "bob"), token(&a, "reader"));
    join(&a, &alice, "room").await;
    join(&b, &bob, "room").await;
    join(&a, &reader, "room").await;
    let on_a = ws_open(&a, &format!("token={reader}")).await;
    let on_b = ws_open(&b, &format!("token={reader}")).await;
    let total = 2 * per_sender;
    let limit = Duration::from_secs(90);
    let read_a = tokio::spawn(receive(on_a, total, limit));
    let read_b = tokio::spawn(receive(on_b, total, limit));
    let send_a = tokio::spawn(sender(Arc::clone(&a), "alice", per_sender, 25, pace));
    let send_b = tokio::spawn(sender(Arc::clone(&b), "bob", per_sender, 25, pace));
    fault.await;
    let mut acked = send_a.await.expect("alice");
    acked.extend(send_b.await.expect("bob"));
    check_delivery(
        "reader on A",
        &read_a.await.expect("reader A"),
        acked.clone(),
    );
    check_delivery("reader on B", &read_b.await.expect("reader B"), acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_stream_loses_nothing() {
    let redis = Arc::new(Mutex::new(Redis::start()));
    let url = redis.lock().unwrap().url();
    let pg = new_database().await;
    let a = Arc::new(instance(&pg, &url).await);
    let b = Arc::new(instance(&pg, &url).await);
    let fault = {
        let redis = Arc::clone(&redis);
        async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            tokio::task::spawn_blocking(move || redis.lock().unwrap().restart())
                .await
                .expect("restart");
        }
    };
    traffic_through(a, b, 1_500, Duration::from_millis(40), fault).await;
    assert!(ping(redis.lock().unwrap().port));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreachable_from_one_instance_for_20s_loses_nothing() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port).await;
    let pg = new_database().await;
    let a = Arc::new(instance(&pg, &redis.url()).await);
    let b = Arc::new(instance(&pg, &proxy.url()).await);
    let fault = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(20)).await;
        proxy.heal();
    };
    traffic_through(a, b, 1_500, Duration::from_millis(300), fault).await;
}

// ---------------------------------------------------------------- configuration

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_url_is_never_shown_and_needs_postgres() {
    let secret_url = "redis://:hunter2-redis-password@127.0.0.1:1/0";
    let alone = ServerConfig {
        redis: Some(Secret(secret_url.into())),
        ..ServerConfig::for_tests()
    };
    assert!(
        !format!("{alone:?}").contains("hunter2"),
        "Debug shows the URL"
    );
    match start(alone).await {
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("--postgres"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        Ok(_) => panic!("--redis without --postgres was accepted"),
    }
    let pg = new_database().await;
    let bad = config(&pg, "rediss-typo://:hunter2-redis-password@127.0.0.1:1/0");
    match start(bad).await {
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("Redis URL"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        Ok(_) => panic!("a malformed Redis URL was accepted"),
    }
}
