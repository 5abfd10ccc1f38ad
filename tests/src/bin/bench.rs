//! The native benchmark (`cargo xtask bench`): the SDK next to the raw libraries on the same
//! server in the same run. Prints each figure as `name sdk raw ratio` on its own line.
//!
//! Modes: no argument runs everything (it starts the server as a child process of this binary,
//! `bench serve`, and measures memory in child processes, `bench mem sdk|raw URL N`, so that one
//! measurement's freed memory cannot flatter the next). `bench first-message` measures only the
//! first visit's time to the first message with WebSocket working, reset and black-holed (the
//! median of five runs each; the working case is the baseline). Not part of the test suite.
//!
//! `bench server-mem` measures the *server's* resident memory instead (issue 9): above the idle
//! server, under 300 stalled WebSocket readers and under 300 stalled SSE readers after 1,000
//! stored 16 KB messages, and per idle WebSocket connection; each case in a fresh server child,
//! printed as `name value idle_baseline`.
//!
//! `bench slowmem slow|fast URL` measures a client that receives a flood of messages with one
//! event stream never read, next to the same client whose only stream keeps up.

use futures_util::{SinkExt, StreamExt};
use lifeline::{Client, Event, TransportKind};
use lifeline_server::{make_token, ServerConfig, TokenKey};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const SECRET: &str = "lifeline-bench-secret-0123456789abcdef";
const ROUNDS: usize = 5;
const RTT_SAMPLES: usize = 2_000;
const THROUGHPUT_MSGS: usize = 10_000;
const SSE_MSGS: usize = 10_000;
const BODY: &str = "hello, this is a small chat message";

fn token(user: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    make_token(SECRET, user, exp)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // One worker: client tasks on one thread (with taskset, on one core). A current-thread
    // runtime stalled in this benchmark (see docs/BENCHMARKS.md); under investigation.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    match args.first().map(String::as_str) {
        // The server's storage writer wants a multi-threaded runtime; one worker is enough.
        Some("serve") => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
            .block_on(serve()),
        Some("server-mem") => rt.block_on(server_mem()),
        Some("mem") => {
            let n: usize = args[3].parse().unwrap();
            let kib = rt.block_on(memory(&args[1], &args[2], n));
            println!("{kib:.1}");
        }
        Some("first-message") => rt.block_on(first_message()),
        Some("slowmem") => {
            let kib = rt.block_on(slow_reader_memory(&args[1], &args[2]));
            println!("{kib:.1}");
        }
        _ => rt.block_on(all()),
    }
}

async fn serve() {
    let config = ServerConfig {
        data_dir: None,
        token_keys: vec![TokenKey::new("bench", SECRET).unwrap()],
        rate_per_sec: 1_000_000,
        rate_burst: 1_000_000,
        heartbeat_ms: 10_000,
        faults: false,
        dev_tokens: false,
        // The memory figures hold many streams of few users, and stalled readers stay until
        // measured.
        max_streams_per_user: 100_000,
        max_streams: 100_000,
        slow_consumer_ms: 600_000,
        ..ServerConfig::for_tests()
    };
    let server = lifeline_server::start(config).await.unwrap();
    println!("{}", server.addr());
    std::io::stdout().flush().unwrap();
    // Run until the parent closes our standard input.
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin()
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await
    .unwrap();
}

/// `first_message_<case>_ms median normal ratio`: the first visit's first message behind the
/// fault proxy, WebSocket upgrades passed, reset or black-holed, the SDK's default timings.
async fn first_message() {
    use lifeline_tests::first_message::{median_of, WebSocketPath};
    const RUNS: usize = 5;
    let (normal, all) = median_of(WebSocketPath::Works, RUNS).await;
    eprintln!("bench: first message, normal: {all:?}");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    line("first_message_normal_ms", ms(normal), ms(normal));
    for (name, path) in [
        ("first_message_ws_reset_ms", WebSocketPath::Reset),
        ("first_message_ws_blackholed_ms", WebSocketPath::Blackholed),
    ] {
        let (median, all) = median_of(path, RUNS).await;
        eprintln!("bench: {name}: {all:?}");
        line(name, ms(median), ms(normal));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn line(name: &str, sdk: f64, raw: f64) {
    println!("{name} {sdk:.1} {raw:.1} {:.2}", sdk / raw);
}

async fn all() {
    let exe = std::env::current_exe().unwrap();
    let mut server = Command::new(&exe)
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut addr = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut addr)
        .unwrap();
    let addr = addr.trim().to_string();
    let url = format!("http://{addr}");
    eprintln!("bench: server at {url}");

    // This VM's speed drifts by tens of percent from one second to the next, so the SDK and the
    // raw library take turns, ROUNDS times, and each figure is the median of its rounds.
    let mut rtt50 = (Vec::new(), Vec::new());
    let mut rtt99 = (Vec::new(), Vec::new());
    let mut tput = (Vec::new(), Vec::new());
    let mut sse = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        eprintln!("bench: round {} of {ROUNDS}", round + 1);
        let (sdk50, sdk99) = sdk_rtt(&url).await;
        let (raw50, raw99) = raw_rtt(&addr).await;
        rtt50.0.push(sdk50);
        rtt50.1.push(raw50);
        rtt99.0.push(sdk99);
        rtt99.1.push(raw99);
        tput.0.push(sdk_throughput(&url).await);
        tput.1.push(raw_throughput(&addr).await);
        sse.0.push(sdk_sse(&url, &addr).await);
        sse.1.push(raw_sse(&url, &addr).await);
    }
    line("ws_rtt_p50_us", median(rtt50.0), median(rtt50.1));
    line("ws_rtt_p99_us", median(rtt99.0), median(rtt99.1));
    line("ws_throughput_msgs_per_s", median(tput.0), median(tput.1));
    line("sse_receive_msgs_per_s", median(sse.0), median(sse.1));

    let n = 2_000;
    let mem = |kind: &str| {
        let out = Command::new(&exe)
            .args(["mem", kind, &url, &n.to_string()])
            .output()
            .expect("memory child");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<f64>()
            .unwrap_or(f64::NAN)
    };
    let sdk = mem("sdk");
    let raw = mem("raw");
    let raw4k = mem("raw4k");
    line("idle_conn_kib_2000", sdk, raw);
    line("idle_conn_kib_2000_vs_raw_4k", sdk, raw4k);

    let slowmem = |kind: &str| {
        let out = Command::new(&exe)
            .args(["slowmem", kind, &url])
            .output()
            .expect("memory child");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<f64>()
            .unwrap_or(f64::NAN)
    };
    // The baseline is the same client with no stream left unread: the difference is what a
    // reader that never reads costs (bounded by its queue, not by the number of messages).
    let slow = slowmem("slow");
    let fast = slowmem("fast");
    line(
        &format!("unread_stream_rss_growth_kib_{SLOW_READER_MSGS}_msgs"),
        slow,
        fast,
    );

    drop(server.stdin.take());
    let _ = server.wait();
}

async fn sdk_client(url: &str, user: &str, transport: TransportKind) -> (Client, lifeline::Events) {
    let client = Client::builder(url)
        .token(token(user))
        .transports([transport])
        .outbox_limits(100_000, 64 << 20)
        .build()
        .unwrap();
    let events = client.events();
    client.connect();
    eprintln!("bench: {user} subscribing");
    client.subscribe("bench").await.unwrap();
    eprintln!("bench: {user} subscribed ({})", client.state().name());
    (client, events)
}

async fn next_message(events: &mut lifeline::Events) -> lifeline::Message {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("events");
        match event {
            Event::Message(m) => return m,
            other => {
                if std::env::var_os("BENCH_DEBUG").is_some() {
                    eprintln!("bench: {other:?}");
                }
            }
        }
    }
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50).as_secs_f64() * 1e6, at(0.99).as_secs_f64() * 1e6)
}

async fn sdk_rtt(url: &str) -> (f64, f64) {
    let (client, mut events) = sdk_client(url, "sdk-rtt", TransportKind::WebSocket).await;
    let mut samples = Vec::with_capacity(RTT_SAMPLES);
    for i in 0..RTT_SAMPLES + 200 {
        let start = Instant::now();
        let ack = client.send("bench", BODY);
        next_message(&mut events).await;
        if i >= 200 {
            samples.push(start.elapsed());
        }
        ack.await.unwrap();
    }
    client.close().await;
    percentiles(samples)
}

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw_ws(addr: &str, user: &str) -> RawWs {
    let url = format!("ws://{addr}/v1/ws?v=1&token={}", token(user));
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    ws.send(WsMessage::text(r#"{"type":"subscribe","conv":"bench"}"#))
        .await
        .unwrap();
    loop {
        let m = ws.next().await.unwrap().unwrap();
        if m.to_text().unwrap_or("").contains("\"subscribed\"") {
            return ws;
        }
    }
}

/// A raw `send` frame. Ids are unique across the whole run: the server stores a repeated id
/// only once (idempotent sends), so a second round reusing ids would wait for nothing.
fn send_frame(_i: usize) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(r#"{{"type":"send","id":"raw-{id}","conv":"bench","body":"{BODY}"}}"#)
}

/// Reads frames until a stored message arrives (acks, presence and heartbeats are skipped).
async fn raw_next_msg(ws: &mut RawWs) {
    loop {
        let m = ws.next().await.unwrap().unwrap();
        if let WsMessage::Text(t) = m {
            if t.as_str().starts_with(r#"{"type":"msg""#) || t.as_str().contains(r#""type":"msg""#)
            {
                return;
            }
        }
    }
}

async fn raw_rtt(addr: &str) -> (f64, f64) {
    let mut ws = raw_ws(addr, "raw-rtt").await;
    let mut samples = Vec::with_capacity(RTT_SAMPLES);
    for i in 0..RTT_SAMPLES + 200 {
        let start = Instant::now();
        ws.send(WsMessage::text(send_frame(i))).await.unwrap();
        raw_next_msg(&mut ws).await;
        if i >= 200 {
            samples.push(start.elapsed());
        }
    }
    percentiles(samples)
}

async fn sdk_throughput(url: &str) -> f64 {
    let (client, mut events) = sdk_client(url, "sdk-tp", TransportKind::WebSocket).await;
    let start = Instant::now();
    let acks: Vec<_> = (0..THROUGHPUT_MSGS)
        .map(|_| client.send("bench", BODY))
        .collect();
    for _ in 0..THROUGHPUT_MSGS {
        next_message(&mut events).await;
    }
    let rate = THROUGHPUT_MSGS as f64 / start.elapsed().as_secs_f64();
    for ack in acks {
        ack.await.unwrap();
    }
    client.close().await;
    rate
}

async fn raw_throughput(addr: &str) -> f64 {
    let ws = raw_ws(addr, "raw-tp").await;
    let (mut tx, mut rx) = ws.split();
    let start = Instant::now();
    let writer = async {
        for i in 0..THROUGHPUT_MSGS {
            tx.feed(WsMessage::text(send_frame(i))).await.unwrap();
        }
        tx.flush().await.unwrap();
    };
    let reader = async {
        let mut got = 0;
        while got < THROUGHPUT_MSGS {
            if let WsMessage::Text(t) = rx.next().await.unwrap().unwrap() {
                if t.as_str().contains(r#""type":"msg""#) {
                    got += 1;
                }
            }
        }
    };
    tokio::join!(writer, reader);
    THROUGHPUT_MSGS as f64 / start.elapsed().as_secs_f64()
}

/// Pushes `SSE_MSGS` messages into the conversation from a raw WebSocket.
async fn blast(addr: &str, user: &str) {
    let ws = raw_ws(addr, user).await;
    let (mut tx, mut rx) = ws.split();
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    for i in 0..SSE_MSGS {
        tx.feed(WsMessage::text(send_frame(i))).await.unwrap();
    }
    tx.flush().await.unwrap();
    // Keep the sender open until the receiver is done (the caller drops the task).
    std::mem::forget(tx);
    drop(drain);
}

async fn sdk_sse(url: &str, addr: &str) -> f64 {
    let (client, mut events) = sdk_client(url, "sdk-sse", TransportKind::Sse).await;
    let start = Instant::now();
    let sender = tokio::spawn(blast(addr.to_string().leak(), "blaster-1"));
    for _ in 0..SSE_MSGS {
        next_message(&mut events).await;
    }
    let rate = SSE_MSGS as f64 / start.elapsed().as_secs_f64();
    sender.abort();
    client.close().await;
    rate
}

async fn raw_sse(url: &str, addr: &str) -> f64 {
    use reqwest_eventsource::{Event as SseEvent, EventSource};
    let http = reqwest::Client::new();
    let t = token("raw-sse");
    http.post(format!("{url}/v1/send?v=1"))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body(r#"{"frames":[{"type":"subscribe","conv":"bench"}]}"#)
        .send()
        .await
        .unwrap();
    let mut es = EventSource::new(http.get(format!("{url}/v1/sse?v=1&token={t}"))).unwrap();
    es.set_retry_policy(Box::new(reqwest_eventsource::retry::Never));
    // Wait for hello before starting the clock.
    loop {
        if let Some(Ok(SseEvent::Message(m))) = es.next().await {
            if m.data.contains("\"hello\"") {
                break;
            }
        }
    }
    let start = Instant::now();
    let sender = tokio::spawn(blast(addr.to_string().leak(), "blaster-2"));
    let mut got = 0;
    while got < SSE_MSGS {
        if let Some(Ok(SseEvent::Message(m))) = es.next().await {
            if m.data.contains(r#""type":"msg""#) {
                got += 1;
            }
        }
    }
    let rate = SSE_MSGS as f64 / start.elapsed().as_secs_f64();
    sender.abort();
    es.close();
    rate
}

fn rss_kib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap()
}

/// Opens `n` idle WebSocket connections of `kind` and returns the resident memory each adds.
async fn memory(kind: &str, url: &str, n: usize) -> f64 {
    let addr = url.trim_start_matches("http://").to_string();
    // Warm up the allocator and the runtime with one connection first.
    let mut keep_sdk = Vec::new();
    let mut keep_raw = Vec::new();
    let open_one = |i: usize| {
        let kind = kind.to_string();
        let url = url.to_string();
        let addr = addr.clone();
        async move {
            let user = format!("idle{}", i % 50);
            match kind.as_str() {
                "sdk" => {
                    let c = Client::builder(&url)
                        .token(token(&user))
                        .transports([TransportKind::WebSocket])
                        .build()
                        .unwrap();
                    c.connect();
                    let mut s = c.watch_state();
                    s.wait_for(|s| s.name() == "connected").await.unwrap();
                    (Some(c), None)
                }
                other => {
                    let url = format!("ws://{addr}/v1/ws?v=1&token={}", token(&user));
                    let config = (other == "raw4k").then(lifeline::ws_config);
                    let (ws, _) =
                        tokio_tungstenite::connect_async_with_config(url.as_str(), config, true)
                            .await
                            .unwrap();
                    (None, Some(ws))
                }
            }
        }
    };
    let (a, b) = open_one(n).await;
    keep_sdk.extend(a);
    keep_raw.extend(b);
    let before = rss_kib();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let opened = futures_util::future::join_all(chunk.iter().map(|&i| open_one(i))).await;
        for (a, b) in opened {
            keep_sdk.extend(a);
            keep_raw.extend(b);
        }
    }
    // Let the hello frames and any first heartbeat be read into the buffers.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(500) {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = rss_kib();
    (after - before) / n as f64
}

/// A server child (`bench serve`): the process, its address, its pid.
fn server_child() -> (std::process::Child, String, u32) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(&exe)
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut addr = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut addr)
        .unwrap();
    let pid = child.id();
    (child, addr.trim().to_string(), pid)
}

fn rss_of_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap()
}

/// Stores `n` messages of 16 KB in `bench` (pipelined, then every ack awaited).
async fn store_16k(addr: &str, n: usize) {
    let mut ws = raw_ws(addr, "mem-writer").await;
    let body = "x".repeat(16 * 1024);
    for i in 0..n {
        let f = format!(r#"{{"type":"send","id":"big-{i}","conv":"bench","body":"{body}"}}"#);
        ws.feed(WsMessage::text(f)).await.unwrap();
    }
    ws.flush().await.unwrap();
    let mut acks = 0;
    while acks < n {
        if let WsMessage::Text(t) = ws.next().await.unwrap().unwrap() {
            if t.as_str().contains(r#""type":"ack""#) {
                acks += 1;
            }
        }
    }
}

/// A socket with a 4 KB receive buffer, connected to `addr`.
async fn small_socket(addr: &str) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(addr.parse().unwrap()).await.unwrap()
}

/// Opens 300 readers of `kind` (`ws` or `sse`) from cursor 0 that never read, then a reader that
/// takes all `n` messages (by then every stalled stream has had its turn at storage).
async fn stall_readers(addr: &str, kind: &str, n: usize) -> Vec<Box<dyn std::any::Any>> {
    use tokio::io::AsyncWriteExt;
    drop(raw_ws(addr, "mem-stalled").await); // joins `bench`
    let query = format!("v=1&token={}&cursor=0", token("mem-stalled"));
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
    for _ in 0..300 {
        let mut tcp = small_socket(addr).await;
        if kind == "ws" {
            let url = format!("ws://{addr}/v1/ws?{query}");
            let (ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
            held.push(Box::new(ws));
        } else {
            let req = format!("GET /v1/sse?{query} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            tcp.write_all(req.as_bytes()).await.unwrap();
            held.push(Box::new(tcp));
        }
    }
    let url = format!("ws://{addr}/v1/ws?{query}");
    let (mut reader, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let mut got = 0;
    while got < n {
        if let WsMessage::Text(t) = reader.next().await.unwrap().unwrap() {
            if t.as_str().contains(r#""type":"msg""#) {
                got += 1;
            }
        }
    }
    held.push(Box::new(reader));
    held
}

/// `bench server-mem`: the server's memory under stalled readers and idle connections.
async fn server_mem() {
    const STORED: usize = 1_000;
    for kind in ["ws", "sse"] {
        let (mut child, addr, pid) = server_child();
        store_16k(&addr, STORED).await;
        let idle = rss_of_kib(pid);
        let held = stall_readers(&addr, kind, STORED).await;
        let loaded = rss_of_kib(pid);
        println!(
            "server_rss_above_idle_mib_300_stalled_{kind} {:.1} {:.1}",
            (loaded - idle) / 1024.0,
            idle / 1024.0
        );
        drop(held);
        drop(child.stdin.take());
        let _ = child.wait();
    }
    let (mut child, addr, pid) = server_child();
    let idle = rss_of_kib(pid);
    let n = 2_000;
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let url = format!(
            "ws://{addr}/v1/ws?v=1&token={}",
            token(&format!("idle{}", i % 50))
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        ws.next().await.unwrap().unwrap(); // hello
        held.push(ws);
    }
    let loaded = rss_of_kib(pid);
    println!(
        "server_kib_per_idle_ws_2000 {:.1} {:.1}",
        (loaded - idle) / n as f64,
        idle / 1024.0
    );
    drop(held);
    drop(child.stdin.take());
    let _ = child.wait();
}

/// Messages that flow past the unread stream in `bench slowmem`.
const SLOW_READER_MSGS: usize = 20_000;

/// Resident memory growth (KiB) of a client while `SLOW_READER_MSGS` messages arrive: with an
/// extra event stream that is never read (`slow`), or without it (`fast`). One stream that keeps
/// up counts the messages in both cases.
async fn slow_reader_memory(kind: &str, url: &str) -> f64 {
    let addr = url.trim_start_matches("http://").to_string();
    let client = Client::builder(url)
        .token(token("slowmem-reader"))
        .transports([TransportKind::WebSocket])
        .build()
        .unwrap();
    let mut counted = client.events();
    let unread = (kind == "slow").then(|| client.events());
    client.connect();
    client.subscribe("slowmem").await.unwrap();
    let before = rss_kib();
    let mut ws = raw_ws(&addr, "slowmem-writer").await;
    ws.send(WsMessage::text(r#"{"type":"subscribe","conv":"slowmem"}"#))
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    let pid = std::process::id();
    let writer = tokio::spawn(async move {
        for i in 0..SLOW_READER_MSGS {
            let frame = format!(
                r#"{{"type":"send","id":"slow-{pid}-{i}","conv":"slowmem","body":"{BODY}"}}"#
            );
            tx.feed(WsMessage::text(frame)).await.unwrap();
        }
        tx.flush().await.unwrap();
        tx
    });
    // Messages read plus messages this (keeping-up) stream was told it missed in a burst.
    let mut seen = 0;
    while seen < SLOW_READER_MSGS as u64 {
        match tokio::time::timeout(Duration::from_secs(10), counted.next()).await {
            Ok(Some(Event::Message(_))) => seen += 1,
            Ok(Some(Event::Lagged { missed })) => seen += missed,
            Ok(Some(_)) => {}
            _ => panic!("bench: {seen} of {SLOW_READER_MSGS} messages, then nothing"),
        }
    }
    let after = rss_kib();
    drop(writer.await);
    drain.abort();
    drop(unread);
    client.close().await;
    after - before
}
