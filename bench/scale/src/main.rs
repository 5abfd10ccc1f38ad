//! Storm and scale benchmarks (issue 12): native SDK clients spread over several processes (each
//! may hold 20,000 file descriptors) against the real `lifeline-server` binary, started, killed
//! with SIGKILL and restarted by this process. Run by `cargo xtask bench storm|fanout`
//! (release builds); figures and commands in docs/BENCHMARKS.md. Not part of the test suite.
//!
//! - `storm [CLIENTS] [PROCS]` (default 2,000 in 4): every client subscribed to one
//!   conversation, one more client sending a numbered message every 50 ms; the server is killed
//!   and started again on the same port and storage. Prints arrivals per 100 ms after the kill
//!   (a client arrives when it is `connected` again), peak ÷ mean, the time until all are back,
//!   and whether every client received every message exactly once and in order. Two rounds in
//!   the same run: the server with the flags of [`BEFORE`] (what the scale fixes changed) and
//!   with its defaults.
//! - `storm-cluster [CLIENTS] [PROCS] [redis]`: the same on two instances sharing one PostgreSQL
//!   (started by the benchmark; with `redis`, also one `redis-server`, as in cluster mode),
//!   clients spread over both, the second killed and restarted; arrivals are those of the killed
//!   instance's clients.
//! - `fanout [CLIENTS] [PROCS] [MESSAGES] [before]` (default 10,000 in 5, 10 messages; `before`
//!   first runs the same with the server flags of [`BEFORE`], in the same run): all clients
//!   connect at once and subscribe to one conversation; the time until all are connected; the
//!   server's resident memory per connection; then one message a second to that conversation,
//!   and when it reaches p50 / p99 / all clients.
//! - `throughput [PER_SENDER] [LISTENERS]` (default 2,000 from each of 3 senders, 100
//!   listeners): messages/s stored and fanned out, SQLite next to 1, 2, 3 instances on PostgreSQL
//!   and 2, 3 on PostgreSQL and Redis (see [`throughput`]).
//! - `fanout-cluster [CLIENTS] [PROCS] [MESSAGES] [redis]`: the same on two instances sharing
//!   one PostgreSQL (with `redis`, also one `redis-server`: cluster mode), the clients spread over
//!   both (memory summed over the instances).
//! - `clients …`: a client process (see [`worker`]).
//!
//! `LIFELINE_SCALE_BEFORE_SERVER=PATH` runs the `before` rounds on that server binary (built
//! at commit 2b6bd51, before the accept-loop fix, which has no flag; still with [`BEFORE`]).
//! `LIFELINE_SCALE_BEFORE_CLIENTS=PATH` (a `lifeline-scale` binary of another build) makes
//! `storm-cluster` alternate rounds whose client processes run that build's SDK with rounds of
//! this one, to compare client policies (the backoff) in one run.
//!
//! Every wait is bounded; every line printed is `name value [unit or baseline]`.

mod crowd;
#[allow(dead_code)]
#[path = "../../../server/tests/common/redis.rs"]
mod redis;
mod server;
mod stats;
mod throughput;
mod worker;

use crowd::{Crowd, Report};
use lifeline::Client;
use server::{server_binary, ServerProcess};
use stats::{percentile, Arrivals};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::{token, unix_us};

/// How long all clients may take to connect and subscribe.
const CONNECT_WITHIN: Duration = Duration::from_secs(200);
/// How long all clients may take to come back after the restart.
const RESUME_WITHIN: Duration = Duration::from_secs(60);
/// The server flags that restore what the scale fixes changed: the listen backlog tokio's bind
/// asks for, and presence in conversations of any size.
const BEFORE: &[&str] = &[
    "--listen-backlog",
    "128",
    "--presence-max-members",
    "18446744073709551615",
];
/// The sender's pace during the storm.
const STORM_PACE: Duration = Duration::from_millis(50);

fn arg(args: &[String], i: usize, default: usize) -> usize {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    // Client processes run their clients on one worker thread; the benchmark itself on two.
    let workers = if mode == "clients" { 1 } else { 2 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    match mode {
        "clients" if args.len() == 6 => rt.block_on(worker::run(
            &args[1],
            args[2].parse().expect("FIRST"),
            args[3].parse().expect("COUNT"),
            &args[4],
            args[5].parse().expect("EVERY"),
        )),
        "storm" => {
            let (clients, procs) = (arg(&args, 1, 2_000), arg(&args, 2, 4));
            rt.block_on(storm(clients, procs, "before", BEFORE));
            rt.block_on(storm(clients, procs, "defaults", &[]));
        }
        "storm-cluster" => {
            let (clients, procs) = (arg(&args, 1, 2_000), arg(&args, 2, 4));
            let redis = args.get(3).map(String::as_str) == Some("redis");
            let before = std::env::var_os("LIFELINE_SCALE_BEFORE_CLIENTS").map(PathBuf::from);
            let me = std::env::current_exe().expect("own path");
            // With another build's clients: alternate, so both see the same machine.
            let rounds: Vec<(&Path, &str)> = match &before {
                Some(old) => vec![
                    (old, "clients-before"),
                    (&me, "defaults"),
                    (old, "clients-before"),
                    (&me, "defaults"),
                ],
                None => vec![(&me, "defaults")],
            };
            let engines = if redis {
                "postgres+redis-x2"
            } else {
                "postgres-x2"
            };
            for (clients_bin, label) in rounds {
                let label = format!("{engines} {label}");
                rt.block_on(storm_cluster(clients, procs, clients_bin, &label, redis));
            }
        }
        "fanout-cluster" => rt.block_on(fanout_cluster(
            arg(&args, 1, 10_000),
            arg(&args, 2, 5),
            arg(&args, 3, 10),
            args.get(4).map(String::as_str) == Some("redis"),
        )),
        "fanout" => {
            let (clients, procs, messages) =
                (arg(&args, 1, 10_000), arg(&args, 2, 5), arg(&args, 3, 10));
            if args.get(4).map(String::as_str) == Some("before") {
                rt.block_on(fanout(clients, procs, messages, "before", BEFORE));
            }
            rt.block_on(fanout(clients, procs, messages, "defaults", &[]));
        }
        "throughput" => rt.block_on(throughput::run(
            arg(&args, 1, 2_000) as u64,
            arg(&args, 2, 100),
        )),
        _ => {
            eprintln!(
                "usage: lifeline-scale storm [CLIENTS] [PROCS] | storm-cluster [CLIENTS] [PROCS] [redis] | fanout [CLIENTS] [PROCS] [MESSAGES] [before] | fanout-cluster [CLIENTS] [PROCS] [MESSAGES] [redis] \
                 | throughput [PER_SENDER] [LISTENERS]"
            );
            std::process::exit(2);
        }
    }
}

/// A connected client of `user`, subscribed to `conv`.
pub(crate) async fn sender(url: &str, conv: &str, user: &str) -> Client {
    let client = Client::builder(url)
        .token(token(user))
        .seed(u64::MAX)
        .build()
        .expect("sender builds");
    client.connect();
    tokio::time::timeout(Duration::from_secs(60), client.subscribe(conv))
        .await
        .expect("the sender subscribes within 60 s")
        .expect("the sender subscribes");
    client
}

/// Waits for every client process to be ready (all subscribed, or their time is up), counting
/// each client's first `connected`.
/// Returns the first-connect times (µs since the Unix epoch) and the server's peak thread count.
pub(crate) async fn gather(crowd: &mut Crowd, server: &ServerProcess) -> (Vec<u64>, u64) {
    let deadline = Instant::now() + CONNECT_WITHIN;
    let mut first_up = vec![0u64; crowd.clients];
    let mut peak_threads = 0;
    let mut ready = 0;
    let mut failed = 0;
    while ready < crowd.processes() {
        let tick = (Instant::now() + Duration::from_millis(100)).min(deadline);
        peak_threads = peak_threads.max(server.status_field("Threads"));
        match crowd.next(tick).await {
            Some(Report::Ready { failed: f }) => {
                ready += 1;
                failed += f;
            }
            Some(Report::Up { client, at_us }) if first_up[client] == 0 => {
                first_up[client] = at_us;
            }
            Some(_) => {}
            None if Instant::now() >= deadline => {
                println!("WARNING not every client process was ready within {CONNECT_WITHIN:?}");
                break;
            }
            None => {}
        }
    }
    if failed > 0 {
        println!(
            "WARNING {failed} of {} subscribes failed or timed out",
            crowd.clients
        );
    }
    (first_up, peak_threads)
}

/// The server binary of a round: for the `before` round, `LIFELINE_SCALE_BEFORE_SERVER` when set
/// (a binary built before the accept-loop fix, which has no flag), else this build.
fn round_server(label: &str) -> std::path::PathBuf {
    match std::env::var_os("LIFELINE_SCALE_BEFORE_SERVER") {
        Some(bin) if label == "before" => bin.into(),
        _ => server_binary(),
    }
}

/// One storm round on one SQLite instance: connect, kill the server mid-stream, restart it,
/// measure the comeback.
async fn storm(clients: usize, procs: usize, label: &str, flags: &[&str]) {
    let bin = round_server(label);
    let servers = vec![ServerProcess::start(&bin, None, flags)];
    let me = std::env::current_exe().expect("own path");
    storm_on(servers, clients, procs, &me, label).await;
}

/// `n` instances on a new PostgreSQL database; with `redis`, also sharing a new `redis-server`
/// (cluster mode; new, so no earlier round's bus is read), returned so that it lives as long as
/// the caller holds it.
fn on_postgres(n: usize, redis: bool) -> (Vec<ServerProcess>, Option<redis::Redis>) {
    let bin = server_binary();
    let url = throughput::postgres::pg().new_database();
    let redis = redis.then(redis::Redis::start);
    let redis_url = redis.as_ref().map(redis::Redis::url);
    let flags: Vec<&str> = match &redis_url {
        Some(r) => vec!["--redis", r.as_str()],
        None => vec![],
    };
    let servers = (0..n)
        .map(|_| ServerProcess::start(&bin, Some(url.clone()), &flags))
        .collect();
    (servers, redis)
}

/// The storm on two instances sharing one PostgreSQL (started by the benchmark): the clients
/// are spread over both, the sender is on the first, the second is killed and restarted. The
/// client processes run the `lifeline-scale` binary at `clients_bin`. With `redis`, the instances
/// also share a `redis-server` the benchmark starts (cluster mode).
async fn storm_cluster(clients: usize, procs: usize, clients_bin: &Path, label: &str, redis: bool) {
    let (servers, _redis) = on_postgres(2, redis);
    storm_on(servers, clients, procs, clients_bin, label).await;
}

/// Clients whose SDK event queue overflowed (`Event::Lagged`): the application missed events,
/// messages among them, so the check counts those as lost.
#[derive(Default)]
struct LaggedClients {
    clients: std::collections::BTreeSet<usize>,
    missed: u64,
}

impl LaggedClients {
    fn note(&mut self, client: usize, missed: u64) {
        self.clients.insert(client);
        self.missed += missed;
    }
}

/// Kills and restarts the last of `servers` while a sender on the first sends; the clients of the
/// killed instance (client process `p` is on instance `p % n`) are the ones counted coming back.
async fn storm_on(
    mut servers: Vec<ServerProcess>,
    clients: usize,
    procs: usize,
    clients_bin: &Path,
    label: &str,
) {
    let urls: Vec<String> = servers.iter().map(ServerProcess::url).collect();
    let conv = "storm";
    let mut crowd = Crowd::spawn_from(clients_bin, &urls, clients, procs, conv, 0);
    let t0 = unix_us();
    let (first_up, _) = gather(&mut crowd, &servers[0]).await;
    let connect_ms = (first_up.iter().max().copied().unwrap_or(t0) - t0) / 1000;
    println!(
        "storm[{label}] clients {clients} in {procs} processes on {} instance(s); all connected \
         in {connect_ms} ms",
        servers.len()
    );
    let per_proc = clients.div_ceil(procs.max(1));
    let victim = servers.len() - 1;
    let expected = (0..clients)
        .filter(|i| (i / per_proc) % servers.len() == victim)
        .count();

    let sender = sender(&urls[0], conv, "sender").await;
    let stop = Arc::new(AtomicBool::new(false));
    let sending = {
        let stop = Arc::clone(&stop);
        let sender = sender.clone();
        tokio::spawn(async move {
            let mut pending = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let k = pending.len();
                pending.push(tokio::spawn(sender.send(conv, &format!("m{k}"))));
                tokio::time::sleep(STORM_PACE).await;
            }
            pending
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    let killed_at = unix_us();
    tokio::task::block_in_place(|| {
        servers[victim].kill();
        servers[victim].start_again();
    });
    let serving_at = unix_us();
    let deadline = Instant::now() + RESUME_WITHIN;
    let server = &servers[victim];
    let mut back = vec![0u64; clients];
    let mut lagged = LaggedClients::default();
    let mut missing = expected;
    let mut peak_threads = 0;
    while missing > 0 {
        let tick = (Instant::now() + Duration::from_millis(100)).min(deadline);
        peak_threads = peak_threads.max(server.status_field("Threads"));
        match crowd.next(tick).await {
            Some(Report::Up { client, at_us }) if at_us > killed_at && back[client] == 0 => {
                back[client] = at_us;
                missing -= 1;
            }
            Some(Report::Lagged { client, missed }) => lagged.note(client, missed),
            Some(_) => {}
            None if Instant::now() >= deadline => break,
            None => {}
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let pending = sending.await.expect("sending task");
    let sent = pending.len();
    let mut acked = 0;
    for send in pending {
        if let Ok(Ok(Ok(_))) = tokio::time::timeout(Duration::from_secs(60), send).await {
            acked += 1;
        }
    }
    let check = crowd
        .check(
            sent as u64,
            1,
            Instant::now() + Duration::from_secs(90),
            |report| {
                if let Report::Lagged { client, missed } = report {
                    lagged.note(*client, *missed);
                }
            },
        )
        .await
        .expect("the client processes answer the check");
    crowd.stop().await;
    sender.close().await;
    if !lagged.clients.is_empty() {
        println!(
            "storm[{label}] WARNING {} clients' event queues overflowed ({} events missed by \
             the application): their messages count as lost",
            lagged.clients.len(),
            lagged.missed
        );
    }

    let came_back: Vec<u64> = back.iter().copied().filter(|t| *t > 0).collect();
    let arrivals = Arrivals::count(killed_at, &came_back);
    let last = came_back.iter().max().copied().unwrap_or(killed_at);
    let p = |v: f64| format!("{v:.2}");
    println!(
        "storm[{label}] restart_ms {}",
        (serving_at - killed_at) / 1000
    );
    println!(
        "storm[{label}] resumed {} of the killed instance's {expected}",
        came_back.len()
    );
    println!(
        "storm[{label}] all_resumed_after_kill_ms {}",
        (last - killed_at) / 1000
    );
    println!("storm[{label}] peak_per_100ms {}", arrivals.peak());
    println!("storm[{label}] mean_per_100ms {}", p(arrivals.mean()));
    println!(
        "storm[{label}] peak_over_mean {}",
        p(arrivals.peak_over_mean())
    );
    println!(
        "storm[{label}] arrivals_per_100ms_after_kill {}",
        arrivals.histogram()
    );
    println!("storm[{label}] server_threads_peak {peak_threads}");
    println!(
        "storm[{label}] messages sent {sent} acked {acked}; clients with all in order {} of \
         {clients} (after waiting {} ms for the last); lost {} duplicated {} reordered {}",
        check.clients_ok, check.waited_ms, check.lost, check.duplicated, check.reordered
    );
}

/// Many clients on one instance: connect time, memory per connection, fan-out latency.
async fn fanout(clients: usize, procs: usize, messages: usize, label: &str, flags: &[&str]) {
    let bin = round_server(label);
    let servers = vec![ServerProcess::start(&bin, None, flags)];
    fanout_on(servers, clients, procs, messages, label).await;
}

/// The same on two instances sharing one PostgreSQL (started by the benchmark), the clients
/// spread over both (client process `p` on instance `p % 2`), the sender on the first.
async fn fanout_cluster(clients: usize, procs: usize, messages: usize, redis: bool) {
    let (servers, redis) = on_postgres(2, redis);
    let label = if redis.is_some() {
        "postgres+redis-x2"
    } else {
        "postgres-x2"
    };
    fanout_on(servers, clients, procs, messages, label).await;
}

/// Resident memory of all `servers`, in KiB.
fn rss_kib(servers: &[ServerProcess]) -> u64 {
    servers.iter().map(|s| s.status_field("VmRSS")).sum()
}

async fn fanout_on(
    servers: Vec<ServerProcess>,
    clients: usize,
    procs: usize,
    messages: usize,
    label: &str,
) {
    let urls: Vec<String> = servers.iter().map(ServerProcess::url).collect();
    let url = urls[0].clone();
    let conv = "all";
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kib(&servers);
    let mut crowd = Crowd::spawn(&urls, clients, procs, conv, 1);
    let t0 = unix_us();
    let (first_up, peak_threads) = gather(&mut crowd, &servers[0]).await;
    let subscribed_ms = (unix_us() - t0) / 1000;
    let mut connect: Vec<u64> = first_up
        .iter()
        .map(|t| t.saturating_sub(t0) / 1000)
        .collect();
    connect.sort_unstable();
    // Let the connect burst's presence settle before measuring.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_connected = rss_kib(&servers);
    let sender = sender(&url, conv, "sender").await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut sent_at = vec![0u64; messages];
    let mut latencies: Vec<Vec<u64>> = vec![Vec::with_capacity(clients); messages];
    let mut sends = Vec::new();
    let collect = |r: Report, sent_at: &[u64], lat: &mut Vec<Vec<u64>>| {
        if let Report::Msg { body, at_us, .. } = r {
            if let Some((_, k)) = worker::parse_body(&body) {
                let k = k as usize;
                if k < sent_at.len() && sent_at[k] > 0 {
                    lat[k].push(at_us.saturating_sub(sent_at[k]));
                }
            }
        }
    };
    for k in 0..messages {
        sent_at[k] = unix_us();
        sends.push(tokio::spawn(sender.send(conv, &format!("m{k}"))));
        let next = Instant::now() + Duration::from_secs(1);
        while let Some(r) = crowd.next(next).await {
            collect(r, &sent_at, &mut latencies);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while latencies.iter().map(Vec::len).sum::<usize>() < clients * messages {
        match crowd.next(deadline).await {
            Some(r) => collect(r, &sent_at, &mut latencies),
            None => break,
        }
    }
    let rss_after = rss_kib(&servers);
    for send in sends {
        let _ = tokio::time::timeout(Duration::from_secs(10), send).await;
    }
    crowd.stop().await;
    sender.close().await;

    println!(
        "fanout[{label}] clients {clients} in {procs} processes on {} instance(s)",
        servers.len()
    );
    println!(
        "fanout[{label}] connected_ms p50 {} p99 {} all {}; all subscribed {subscribed_ms}",
        percentile(&connect, 50.0),
        percentile(&connect, 99.0),
        connect.last().copied().unwrap_or(0)
    );
    println!("fanout[{label}] server_threads_peak {peak_threads}");
    println!(
        "fanout[{label}] server_rss_kib idle {rss_idle} connected {rss_connected} after_messages \
         {rss_after}; per_connection_kib {:.1}",
        (rss_connected.saturating_sub(rss_idle)) as f64 / clients as f64
    );
    let mut all: Vec<u64> = Vec::new();
    for (k, lat) in latencies.iter_mut().enumerate() {
        lat.sort_unstable();
        println!(
            "fanout[{label}] message m{k} reached {} of {clients}: p50 {} ms p99 {} ms all {} ms",
            lat.len(),
            percentile(lat, 50.0) / 1000,
            percentile(lat, 99.0) / 1000,
            lat.last().copied().unwrap_or(0) / 1000
        );
        all.extend_from_slice(lat);
    }
    all.sort_unstable();
    println!(
        "fanout[{label}] all_messages reached {} of {}: p50 {} ms p99 {} ms max {} ms",
        all.len(),
        clients * messages,
        percentile(&all, 50.0) / 1000,
        percentile(&all, 99.0) / 1000,
        all.last().copied().unwrap_or(0) / 1000
    );
}
