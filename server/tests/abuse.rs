//! Abuse tests (issue 9, the rows about resources): each reproduces an attack against the real
//! server (in-process on a real socket, or the `lifeline-server` binary where memory and file
//! descriptors are measured) and fails if the attack succeeds again. Scaled down: 300 stalled
//! readers, 2,000 idle sockets, bounded loops; timeouts in the configurations are short so the
//! tests wait for conditions, never for fixed times.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use lifeline_core::protocol::{decode_server_frame, encode, ClientFrame, ErrorCode, ServerFrame};
use lifeline_server::{mint, Claims, RunningServer, ServerConfig, TokenKey, CLOSE_SLOW_CONSUMER};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

const BIN: &str = env!("CARGO_BIN_EXE_lifeline-server");

/// The token key the binary is started with in these tests (`--token-secret KID:SECRET`; the
/// secret is over the 32-byte minimum).
const KID: &str = "abuse";
const SECRET: &str = "abuse-tests-secret-0123456789-abcdefghijklmnopqrstuvwxyz";

/// A receive buffer small enough that a client that does not read stalls the server quickly.
const SMALL_RCVBUF: u32 = 4096;

type RawWs = WebSocketStream<TcpStream>;

/// A WebSocket whose client socket has a small receive buffer (for stalled readers).
async fn ws_small_buffer(addr: SocketAddr, query: &str) -> RawWs {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(SMALL_RCVBUF).expect("SO_RCVBUF");
    let tcp = within("tcp connect", sock.connect(addr))
        .await
        .expect("connect");
    let url = format!("ws://{addr}/v1/ws?v=1&{query}");
    let (ws, _) = within("ws upgrade", tokio_tungstenite::client_async(url, tcp))
        .await
        .expect("ws upgrade");
    ws
}

/// An SSE request on a raw socket with a small receive buffer; nothing is read.
async fn sse_small_buffer(addr: SocketAddr, query: &str) -> TcpStream {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(SMALL_RCVBUF).expect("SO_RCVBUF");
    let mut tcp = within("tcp connect", sock.connect(addr))
        .await
        .expect("connect");
    let req = format!(
        "GET /v1/sse?v=1&{query} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.expect("write request");
    tcp
}

/// Reads until the peer closes or resets the connection (bounded by `WAIT`); returns the bytes.
async fn read_to_end(tcp: &mut TcpStream) -> usize {
    within("the server to close the connection", async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    })
    .await
}

/// `n` frames of `size`-byte bodies in `conv`, stored by `user` over HTTP (64 per request).
async fn store_messages(s: &RunningServer, token: &str, conv: &str, n: usize, size: usize) {
    let body = "x".repeat(size);
    let mut i = 0;
    while i < n {
        let frames: Vec<ClientFrame> = (i..(i + 32).min(n))
            .map(|k| send(&format!("m{k}"), conv, &body))
            .collect();
        i += frames.len();
        let answers = send_ok(s, token, &frames).await;
        assert!(
            answers.iter().all(|f| matches!(f, ServerFrame::Ack { .. })),
            "every message stored"
        );
    }
}

/// The next text frame of a raw WebSocket, skipping heartbeats, or `Err(close code)`.
async fn next_frame<S>(ws: &mut WebSocketStream<S>) -> Result<ServerFrame, Option<u16>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    within("ws frame", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let f = decode_server_frame(t.as_str()).expect("server frame");
                    if f != ServerFrame::Heartbeat {
                        return Ok(f);
                    }
                }
                Some(Ok(Message::Close(c))) => return Err(c.map(|c| c.code.into())),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    })
    .await
}

// ------------------------------------------------------------------------- slow consumers

/// A server that cuts a slow consumer after 300 ms, with `stored` messages of 16 KB in `big` from
/// a writer; returns it and the token of a reader who is a member of `big`.
async fn slow_consumer_server(stored: usize) -> (RunningServer, String) {
    let s = server_with(ServerConfig {
        slow_consumer_ms: 300,
        ..ServerConfig::for_tests()
    })
    .await;
    let (tw, tr) = (token(&s, "writer"), token(&s, "reader"));
    join(&s, &tw, "big").await;
    join(&s, &tr, "big").await;
    store_messages(&s, &tw, "big", stored, 16 * 1024).await;
    (s, tr)
}

#[tokio::test]
async fn a_websocket_that_stops_reading_is_closed_and_resumes_from_its_cursor() {
    // 6.4 MB: more than the kernel buffers of both ends can hold for a client reading nothing.
    let (s, tr) = slow_consumer_server(400).await;
    let head = s.head_seq();
    let before = s.open_streams();
    let mut stalled = ws_small_buffer(s.addr(), &format!("token={tr}&cursor=0")).await;
    wait_until("the stalled stream to open", || s.open_streams() > before).await;
    wait_until("the server to close the stalled stream", || {
        s.open_streams() == before
    })
    .await;
    assert!(s.slow_consumers() >= 1, "closed as a slow consumer");
    // The client reads what reached it, then sees the end: close 4008 if it fit, else a cut.
    let mut last = 0;
    let end = loop {
        match next_frame(&mut stalled).await {
            Ok(ServerFrame::Msg(m)) => last = m.seq,
            Ok(_) => {}
            Err(code) => break code,
        }
    };
    assert!(
        end.is_none() || end == Some(CLOSE_SLOW_CONSUMER),
        "closed with {end:?}"
    );
    assert!(last < head, "the reader really was behind");
    // Nothing is lost: a reader taking its frames resumes from its cursor to the head.
    let mut ws = ws_connect(&s, &format!("token={tr}&cursor={last}")).await;
    match ws_next(&mut ws).await {
        ServerFrame::Hello(h) => assert!(h.resumed),
        f => panic!("expected hello, got {f:?}"),
    }
    let mut expected = last + 1;
    while expected <= head {
        match ws_next_durable(&mut ws).await {
            ServerFrame::Msg(m) => {
                assert_eq!(m.seq, expected, "no gap, no duplicate");
                expected += 1;
            }
            f => panic!("unexpected {f:?}"),
        }
    }
}

/// A stream that falls behind the live fan-out (here: stuck writing a 6.4 MB replay to a reader
/// that does not read, while 40 more messages are published into an 8-event live buffer) loses
/// no message — they are re-read from storage — and is told, with an `error` frame of code
/// `skipped`, that presence and typing events meant for it were skipped, instead of losing them
/// silently.
#[tokio::test]
async fn a_stream_that_falls_behind_is_told_ephemeral_events_were_skipped() {
    let s = server_with(ServerConfig {
        live_buffer: 8,
        ..ServerConfig::for_tests()
    })
    .await;
    let (tw, tr) = (token(&s, "writer"), token(&s, "reader"));
    join(&s, &tw, "big").await;
    join(&s, &tr, "big").await;
    store_messages(&s, &tw, "big", 400, 16 * 1024).await;
    let before = s.open_streams();
    let mut behind = ws_small_buffer(s.addr(), &format!("token={tr}&cursor=0")).await;
    wait_until("the stream to open", || s.open_streams() > before).await;
    // While its replay waits on the socket, five live buffers' worth of events go by.
    for i in 0..40 {
        send_one(&s, &tw, &format!("late-{i}"), "big", "late").await;
    }
    // The replay may reach those 40 in storage before the stream turns to its live buffer and
    // learns it fell behind: read every message, then on until the notice (a stream that is
    // never told fails on the frame wait's deadline).
    let head = s.head_seq();
    let (mut expected, mut told) = (1, 0);
    while expected <= head || told == 0 {
        match next_frame(&mut behind).await {
            Ok(ServerFrame::Msg(m)) => {
                assert_eq!(m.seq, expected, "no gap, no duplicate");
                expected += 1;
            }
            Ok(ServerFrame::Error(e)) if e.code == ErrorCode::Skipped => {
                assert!(e.id.is_none() && e.conv.is_none(), "{e:?}");
                told += 1;
            }
            Ok(ServerFrame::Hello(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        told >= 1,
        "the stream was not told that events were skipped"
    );
}

#[tokio::test]
async fn an_sse_reader_that_stops_reading_is_cut() {
    let (s, tr) = slow_consumer_server(400).await;
    let before = s.open_streams();
    let mut stalled = sse_small_buffer(s.addr(), &format!("token={tr}&cursor=0")).await;
    wait_until("the stalled stream to open", || s.open_streams() > before).await;
    wait_until("the server to end the stalled stream", || {
        s.open_streams() == before
    })
    .await;
    assert!(s.slow_consumers() >= 1, "ended as a slow consumer");
    let got = read_to_end(&mut stalled).await;
    assert!(
        got < 400 * 16 * 1024,
        "the connection was cut before everything was written ({got} bytes read)"
    );
}

#[tokio::test]
async fn long_poll_answers_that_are_not_read_are_cut() {
    let (s, tr) = slow_consumer_server(64).await;
    // Answers of about 256 KB each, 40 of them pipelined on one connection (10 MB, more than the
    // kernel buffers hold), that the client never reads.
    let sock = TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(SMALL_RCVBUF).expect("SO_RCVBUF");
    let mut stalled = within("tcp connect", sock.connect(s.addr()))
        .await
        .expect("connect");
    let req = format!("GET /v1/poll?v=1&hello=1&cursor=0&token={tr} HTTP/1.1\r\nHost: x\r\n\r\n")
        .repeat(40);
    stalled.write_all(req.as_bytes()).await.expect("requests");
    wait_until("the server to cut the unread poll answer", || {
        s.slow_consumers() >= 1
    })
    .await;
    let got = read_to_end(&mut stalled).await;
    // All 40 answers would be more than 40 × 256 KB (each carries 16 bodies of 16 KB and JSON).
    assert!(
        got < 40 * 256 * 1024,
        "cut before the end ({got} bytes read)"
    );
}

// ------------------------------------------------------------------------- liveness (issue 11)

#[tokio::test]
async fn a_listen_only_websocket_stays_open_while_messages_flow() {
    let s = server_with(ServerConfig {
        heartbeat_ms: 300,
        ..ServerConfig::for_tests()
    })
    .await;
    let (tw, tl) = (token(&s, "talker"), token(&s, "listener"));
    join(&s, &tw, "c").await;
    join(&s, &tl, "c").await;
    let mut listener = ws_open(&s, &format!("token={tl}")).await;
    // Messages every 100 ms for 3 s: ten heartbeats during which the server always has something
    // to send. The listener never sends a frame of its own; it only answers WebSocket pings
    // (tungstenite does that while reading).
    let talker = {
        let base = s.base_url();
        tokio::spawn(async move {
            let http = http();
            for i in 0..30 {
                let body = format!(
                    "{{\"frames\":[{}]}}",
                    encode(&send(&format!("t{i}"), "c", "tick"))
                );
                let resp = http
                    .post(format!("{base}/v1/send?v=1"))
                    .bearer_auth(&tw)
                    .body(body)
                    .send()
                    .await
                    .expect("send");
                assert_eq!(resp.status(), 200);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut got = 0;
    while got < 30 {
        match ws_next_any(&mut listener, true).await {
            WsEvent::Frame(ServerFrame::Msg(_)) => got += 1,
            WsEvent::Frame(_) => {}
            WsEvent::Closed(code) => panic!("listen-only client closed ({code:?}) after {got}"),
        }
    }
    talker.await.expect("talker");
}

// ------------------------------------------------------------------------- slowloris, idle sockets

#[tokio::test]
async fn slowloris_headers_idle_sockets_and_trickled_bodies_are_closed() {
    let s = server_with(ServerConfig {
        header_read_timeout_ms: 500,
        body_read_timeout_ms: 500,
        ..ServerConfig::for_tests()
    })
    .await;
    // A socket that sends nothing.
    let mut idle = TcpStream::connect(s.addr()).await.expect("connect");
    read_to_end(&mut idle).await;

    // Partial headers, one byte every 100 ms, never finished (bounded: at most 200 bytes).
    let mut loris = TcpStream::connect(s.addr()).await.expect("connect");
    let partial = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ".repeat(5);
    let deadline = Instant::now() + WAIT;
    let mut closed = false;
    for b in partial.iter().take(200) {
        if loris.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match timeout(Duration::from_millis(100), loris.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) | Err(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "slowloris still open after {WAIT:?}"
        );
    }
    assert!(closed, "the server closed the slowloris connection");

    // Complete headers, then a body trickled one byte every 100 ms.
    let mut trickle = TcpStream::connect(s.addr()).await.expect("connect");
    let head = format!(
        "POST /v1/send?v=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        token(&s, "u")
    );
    trickle.write_all(head.as_bytes()).await.expect("head");
    let reply = within("the server to answer a trickled body", async {
        let mut reply = Vec::new();
        loop {
            let _ = trickle.write_all(b" ").await;
            let mut buf = [0u8; 1024];
            match timeout(Duration::from_millis(100), trickle.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return reply,
                Ok(Ok(n)) => {
                    reply.extend_from_slice(&buf[..n]);
                    if reply.ends_with(b"}}") {
                        return reply;
                    }
                }
                Err(_) => {}
            }
        }
    })
    .await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("not received within"), "{reply}");
}

/// Starts the binary with `args` (plus a token key, in memory, port 0, not in development
/// mode); returns it and its URL.
async fn start_binary(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["--memory", "--listen", "127.0.0.1:0", "--token-secret"])
        .arg(format!("{KID}:{SECRET}"))
        .args(args)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the server binary starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let base = within("the ready line", async {
        for _ in 0..1_000 {
            let line = lines
                .next_line()
                .await
                .expect("stderr")
                .expect("server exited early");
            if let Some(i) = line.find("url=") {
                return line[i + 4..].trim().to_string();
            }
        }
        panic!("no ready line in the first 1000 log lines");
    })
    .await;
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}

fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc fd")
        .count()
}

fn bin_token(user: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let key = TokenKey::new(KID, SECRET).expect("the test key is valid");
    mint(&key, &Claims::everything(user, exp))
}

async fn bin_send(base: &str, token: &str, frames: &[ClientFrame]) -> String {
    let body = format!(
        "{{\"frames\":[{}]}}",
        frames.iter().map(encode).collect::<Vec<_>>().join(",")
    );
    let resp = within(
        "POST /v1/send",
        http()
            .post(format!("{base}/v1/send?v=1"))
            .bearer_auth(token)
            .body(body)
            .send(),
    )
    .await
    .expect("send");
    assert_eq!(resp.status(), 200);
    resp.text().await.expect("body")
}

#[tokio::test]
async fn help_names_every_limit_flag() {
    let out = Command::new(BIN)
        .arg("--help")
        .output()
        .await
        .expect("--help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--header-read-timeout-ms",
        "--body-read-timeout-ms",
        "--max-connections",
        "--max-idle-connections",
        "--listen-backlog",
        "--presence-max-members",
        "--max-streams",
        "--max-streams-per-user",
        "--slow-consumer-ms",
        "--membership-rate-per-sec",
        "--membership-rate-burst",
        "--history-rate-per-sec",
        "--history-rate-burst",
        "--typing-interval-ms",
        "--max-memberships-per-user",
        "--max-body-bytes",
    ] {
        assert!(text.contains(flag), "--help names {flag}");
    }
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn two_thousand_idle_sockets_hold_few_descriptors_and_lock_out_nobody() {
    let (child, base) = start_binary(&["--max-idle-connections", "500"]).await;
    let pid = child.id().expect("pid");
    let addr: SocketAddr = base.trim_start_matches("http://").parse().expect("addr");
    let mut idle = Vec::with_capacity(2_000);
    for _ in 0..2_000 {
        idle.push(
            within("connect", TcpStream::connect(addr))
                .await
                .expect("connect"),
        );
    }
    // A new client still gets through: health, then a WebSocket with its hello.
    let health = within("healthz", http().get(format!("{base}/healthz")).send())
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let url = format!("ws://{addr}/v1/ws?v=1&token={}", bin_token("newcomer"));
    let (mut ws, _) = within("ws", tokio_tungstenite::connect_async(url))
        .await
        .expect("ws upgrade while 2,000 sockets idle");
    match ws.next().await {
        Some(Ok(Message::Text(t))) => assert!(t.as_str().contains("\"hello\"")),
        other => panic!("expected hello, got {other:?}"),
    }
    // The server holds at most the idle cap of them (plus its own files and the clients above).
    let fds = open_fds(pid);
    assert!(
        fds < 500 + 100,
        "the server holds {fds} descriptors for 2,000 idle sockets"
    );
    drop(idle);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_connect_burst_beyond_the_idle_cap_is_served_not_evicted() {
    // 300 clients connect and send their request while the server is not scheduled (SIGSTOP):
    // when it runs again they are all waiting in the backlog with their request already there.
    // The accept loop used to accept them all at once and close all but the newest 50 (the idle
    // cap) before reading a single request.
    let (child, base) = start_binary(&["--max-idle-connections", "50"]).await;
    let pid = child.id().expect("pid").to_string();
    let addr: SocketAddr = base.trim_start_matches("http://").parse().expect("addr");
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill {sig} {pid}");
    };
    signal("-STOP");
    let mut burst = Vec::with_capacity(300);
    for _ in 0..300 {
        let mut tcp = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect into the backlog");
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("request written");
        burst.push(tcp);
    }
    signal("-CONT");
    let mut served = 0;
    for mut tcp in burst {
        let mut answer = Vec::new();
        let _ = timeout(Duration::from_secs(20), tcp.read_to_end(&mut answer)).await;
        served += usize::from(answer.starts_with(b"HTTP/1.1 200"));
    }
    assert_eq!(
        served, 300,
        "only {served} of 300 requests in the burst were answered"
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn three_hundred_stalled_readers_stay_within_a_memory_bound() {
    let (child, base) = start_binary(&[
        "--rate-per-sec",
        "100000",
        "--rate-burst",
        "100000",
        "--max-streams-per-user",
        "1000",
    ])
    .await;
    let pid = child.id().expect("pid");
    let addr: SocketAddr = base.trim_start_matches("http://").parse().expect("addr");
    let (tw, tr) = (bin_token("writer"), bin_token("reader"));
    bin_send(&base, &tw, &[subscribe("big")]).await;
    bin_send(&base, &tr, &[subscribe("big")]).await;
    let body = "x".repeat(16 * 1024);
    for batch in 0..(1_000 / 25) {
        let frames: Vec<ClientFrame> = (0..25)
            .map(|k| send(&format!("m{batch}-{k}"), "big", &body))
            .collect();
        bin_send(&base, &tw, &frames).await;
    }
    let idle_kb = status_kb(pid, "VmRSS:");
    let mut ws_readers = Vec::new();
    let mut sse_readers = Vec::new();
    for i in 0..300 {
        if i % 2 == 0 {
            ws_readers.push(ws_small_buffer(addr, &format!("token={tr}&cursor=0")).await);
        } else {
            sse_readers.push(sse_small_buffer(addr, &format!("token={tr}&cursor=0")).await);
        }
    }
    // A reader that takes everything: once it has all 1,000 messages, every stalled stream has
    // had its turn at reading storage too.
    let url = format!("ws://{addr}/v1/ws?v=1&token={tr}&cursor=0");
    let (mut ws, _) = within("ws", tokio_tungstenite::connect_async(url))
        .await
        .expect("ws");
    let mut got = 0;
    while got < 1_000 {
        match next_frame(&mut ws).await {
            Ok(ServerFrame::Msg(_)) => got += 1,
            Ok(_) => {}
            Err(code) => panic!("the reading client was closed ({code:?}) after {got}"),
        }
    }
    let stalled_kb = status_kb(pid, "VmRSS:");
    let above_mb = stalled_kb.saturating_sub(idle_kb) / 1024;
    println!(
        "server RSS: {idle_kb} kB idle, {stalled_kb} kB with 300 stalled readers (+{above_mb} MB)"
    );
    assert!(
        above_mb < 256,
        "300 stalled readers cost {above_mb} MB above the idle server"
    );
    drop((ws_readers, sse_readers));
}

// ------------------------------------------------------------------------- caps

#[tokio::test]
async fn streams_beyond_the_caps_are_refused_with_a_typed_error() {
    let s = server_with(ServerConfig {
        max_streams_per_user: 3,
        max_streams: 5,
        ..ServerConfig::for_tests()
    })
    .await;
    let tu = token(&s, "u");
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(ws_open(&s, &format!("token={tu}")).await);
    }
    // The fourth stream of `u`: 429 rate_limited with Retry-After, before any upgrade.
    let url = format!("{}/v1/ws?v=1&token={tu}", s.ws_base_url());
    match tokio_tungstenite::connect_async(url).await {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 429);
            assert!(resp.headers().contains_key("retry-after"));
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default());
            assert!(body.contains("rate_limited"), "{body}");
        }
        other => panic!("a fourth WebSocket of one user was not refused: {other:?}"),
    }
    let sse = sse_connect(&s, &format!("token={tu}"), None).await;
    assert_eq!(sse.status, 429, "SSE counts against the same cap");
    let (status, body) = poll(&s, &format!("token={tu}&wait_ms=1")).await;
    assert_eq!(status, 429, "{body}");
    // Other users are not affected, up to the server's cap: then 503 going_away.
    let mut others = Vec::new();
    for name in ["a", "b"] {
        others.push(ws_open(&s, &format!("token={}", token(&s, name))).await);
    }
    let url = format!("{}/v1/ws?v=1&token={}", s.ws_base_url(), token(&s, "c"));
    match tokio_tungstenite::connect_async(url).await {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            assert!(resp.headers().contains_key("retry-after"));
        }
        other => panic!("a stream beyond the server's cap was not refused: {other:?}"),
    }
    // A closed stream frees its place.
    let open = s.open_streams();
    drop(held.pop());
    wait_until("the stream to close", || s.open_streams() < open).await;
    let _again = ws_open(&s, &format!("token={tu}")).await;
}

// ------------------------------------------------------------------------- floods

#[tokio::test]
async fn subscribe_floods_are_rate_limited_and_memberships_bounded() {
    let s = server_with(ServerConfig {
        membership_rate_per_sec: 10,
        membership_rate_burst: 50,
        history_rate_per_sec: 1,
        history_rate_burst: 3,
        ..ServerConfig::for_tests()
    })
    .await;
    let tu = token(&s, "flooder");
    let mut ws = ws_open(&s, &format!("token={tu}")).await;
    let started = Instant::now();
    for i in 0..500 {
        ws_send(&mut ws, &subscribe(&format!("c{i}"))).await;
    }
    let (mut joined, mut limited) = (0, 0);
    for _ in 0..500 {
        match ws_next_durable(&mut ws).await {
            ServerFrame::Subscribed { .. } => joined += 1,
            ServerFrame::Error(e) if e.code == ErrorCode::RateLimited => {
                assert!(e.conv.is_some() && e.retry_after_ms.is_some());
                limited += 1;
            }
            f => panic!("unexpected {f:?}"),
        }
    }
    let allowed = 50 + 10 * (started.elapsed().as_secs() as usize + 1);
    assert!(
        joined <= allowed,
        "{joined} subscribes accepted in {:?}",
        started.elapsed()
    );
    assert_eq!(joined + limited, 500);

    // History: a burst of 3, then 429 with Retry-After.
    let history = |conv: &str| {
        http()
            .get(format!("{}/v1/history?v=1&conv={conv}", s.base_url()))
            .bearer_auth(&tu)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(history("c0").await.expect("history").status(), 200);
    }
    let refused = history("c0").await.expect("history");
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));

    // Memberships per user are bounded, whatever the rate.
    let s = server_with(ServerConfig {
        max_memberships_per_user: 100,
        ..ServerConfig::for_tests()
    })
    .await;
    let tu = token(&s, "hoarder");
    let frames: Vec<ClientFrame> = (0..60).map(|i| subscribe(&format!("c{i}"))).collect();
    send_ok(&s, &tu, &frames).await;
    let frames: Vec<ClientFrame> = (60..120).map(|i| subscribe(&format!("c{i}"))).collect();
    let answers = send_ok(&s, &tu, &frames).await;
    let refused = answers
        .iter()
        .filter(|f| matches!(f, ServerFrame::Error(e) if e.code == ErrorCode::Forbidden))
        .count();
    assert_eq!(refused, 20, "memberships 101 to 120 refused");
    // A conversation already joined can be joined again; leaving one makes room.
    join(&s, &tu, "c0").await;
    send_ok(&s, &tu, &[ClientFrame::Unsubscribe { conv: "c1".into() }]).await;
    join(&s, &tu, "c100").await;
}

#[tokio::test]
async fn twenty_thousand_typing_frames_deliver_a_bounded_number() {
    let s = server_with(ServerConfig {
        typing_interval_ms: 1_000,
        ..ServerConfig::for_tests()
    })
    .await;
    let (ta, tb) = (token(&s, "typist"), token(&s, "victim"));
    join(&s, &ta, "t").await;
    join(&s, &tb, "t").await;
    let mut victim = ws_open(&s, &format!("token={tb}")).await;
    let mut typist = ws_open(&s, &format!("token={ta}")).await;
    let started = Instant::now();
    for _ in 0..20_000 {
        typist
            .feed(Message::text(encode(&ClientFrame::Typing {
                conv: "t".into(),
            })))
            .await
            .expect("typing");
    }
    typist.flush().await.expect("flush");
    // A message after the typing frames marks the end of what the victim must look at.
    ws_send(&mut typist, &send("marker", "t", "done")).await;
    let mut typing = 0;
    for _ in 0..20_100 {
        match ws_next(&mut victim).await {
            ServerFrame::Typing { .. } => typing += 1,
            ServerFrame::Msg(m) if m.id == "marker" => break,
            _ => {}
        }
    }
    let bound = started.elapsed().as_secs() as usize + 2;
    assert!(typing >= 1, "typing is still delivered");
    assert!(
        typing <= bound,
        "{typing} typing events delivered in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn eight_flooding_connections_do_not_starve_another_users_acks() {
    let s = server_with(ServerConfig {
        membership_rate_per_sec: 10,
        membership_rate_burst: 50,
        ..ServerConfig::for_tests()
    })
    .await;
    let tf = token(&s, "flooder");
    // The flood lasts until the victim is done (at most 1,000 frames per connection): how long
    // the rest would take on a loaded machine is not what this test is about.
    let victim_done = Arc::new(AtomicBool::new(false));
    let mut flooders = Vec::new();
    for f in 0..8 {
        let mut ws = ws_open(&s, &format!("token={tf}")).await;
        let victim_done = Arc::clone(&victim_done);
        flooders.push(tokio::spawn(async move {
            let mut limited = 0;
            for i in 0..1_000 {
                if victim_done.load(Ordering::Relaxed) {
                    break;
                }
                let conv = format!("f{f}-{}", i % 10);
                let frame = if i % 2 == 0 {
                    subscribe(&conv)
                } else {
                    ClientFrame::Unsubscribe { conv }
                };
                if ws.send(Message::text(encode(&frame))).await.is_err() {
                    break;
                }
                // Take whatever answers are already there, without waiting for them.
                while let Ok(Some(Ok(m))) = timeout(Duration::ZERO, ws.next()).await {
                    if let Message::Text(t) = m {
                        if t.as_str().contains("rate_limited") {
                            limited += 1;
                        }
                    }
                }
            }
            // The answers still on their way come before the server's reply to our close.
            let _ = ws.close(None).await;
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    if t.as_str().contains("rate_limited") {
                        limited += 1;
                    }
                }
            }
            limited
        }));
    }
    let tv = token(&s, "victim");
    join(&s, &tv, "v").await;
    let mut victim = ws_open(&s, &format!("token={tv}")).await;
    let mut latencies = Vec::new();
    for i in 0..20 {
        let id = format!("v{i}");
        let sent = Instant::now();
        ws_send(&mut victim, &send(&id, "v", "hello")).await;
        loop {
            match ws_next_durable(&mut victim).await {
                ServerFrame::Ack { id: got, .. } if got == id => break,
                _ => {}
            }
        }
        latencies.push(sent.elapsed());
    }
    victim_done.store(true, Ordering::Relaxed);
    let mut limited = 0;
    for f in flooders {
        limited += within("flooder", f).await.expect("flooder");
    }
    latencies.sort();
    println!(
        "victim ack latency while 8 connections flood: median {:?}, max {:?}; {limited} flood frames refused",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert!(limited > 0, "the flood was rate limited");
}

// ------------------------------------------------------------------------- presence

#[tokio::test]
async fn presence_of_a_user_with_thousands_of_memberships_is_one_event() {
    let s = server_with(ServerConfig {
        max_memberships_per_user: 5_000,
        live_buffer: 64,
        ..ServerConfig::for_tests()
    })
    .await;
    let (ta, tb) = (token(&s, "many"), token(&s, "peer"));
    for chunk in 0..63 {
        let frames: Vec<ClientFrame> = (0..64)
            .map(|i| subscribe(&format!("m{}", chunk * 64 + i)))
            .collect();
        send_ok(&s, &ta, &frames).await;
    }
    join(&s, &ta, "shared").await;
    join(&s, &tb, "shared").await;
    let mut peer = ws_open(&s, &format!("token={tb}")).await;
    let mut many = ws_open(&s, &format!("token={ta}")).await;
    // 4,000 conversations, one shared: the peer hears exactly that one, and then the typing that
    // follows (nothing pushed out of its live buffer by an announcement storm).
    ws_send(
        &mut many,
        &ClientFrame::Typing {
            conv: "shared".into(),
        },
    )
    .await;
    assert_eq!(
        ws_next(&mut peer).await,
        ServerFrame::Presence {
            conv: "shared".into(),
            user: "many".into(),
            online: true
        }
    );
    assert_eq!(
        ws_next(&mut peer).await,
        ServerFrame::Typing {
            conv: "shared".into(),
            user: "many".into()
        }
    );
    drop(many);
    assert_eq!(
        ws_next(&mut peer).await,
        ServerFrame::Presence {
            conv: "shared".into(),
            user: "many".into(),
            online: false
        }
    );
}

#[tokio::test]
async fn a_conversation_above_the_presence_limit_carries_no_presence() {
    // Per-member presence in a room of N costs N² frames when its members connect: above
    // `presence_max_members` the server sends none for that room (typing still flows), while a
    // small room the same users share keeps its presence.
    let s = server_with(ServerConfig {
        presence_max_members: 3,
        ..ServerConfig::for_tests()
    })
    .await;
    let users = ["a", "b", "c", "d"];
    for user in users {
        join(&s, &token(&s, user), "big").await;
    }
    join(&s, &token(&s, "a"), "small").await;
    join(&s, &token(&s, "b"), "small").await;
    let mut peer = ws_open(&s, &format!("token={}", token(&s, "b"))).await;
    let mut joiner = ws_open(&s, &format!("token={}", token(&s, "a"))).await;
    ws_send(&mut joiner, &ClientFrame::Typing { conv: "big".into() }).await;
    assert_eq!(
        ws_next(&mut peer).await,
        ServerFrame::Presence {
            conv: "small".into(),
            user: "a".into(),
            online: true
        }
    );
    assert_eq!(
        ws_next(&mut peer).await,
        ServerFrame::Typing {
            conv: "big".into(),
            user: "a".into()
        }
    );
    // A fifth member joining the big room while a and b are online: no snapshot for the
    // joiner, no announcement to the others (the typing that follows arrives first).
    let mut late = ws_open(&s, &format!("token={}", token(&s, "e"))).await;
    ws_send(&mut late, &subscribe("big")).await;
    ws_send(&mut late, &ClientFrame::Typing { conv: "big".into() }).await;
    assert_eq!(
        ws_next(&mut peer).await,
        ServerFrame::Typing {
            conv: "big".into(),
            user: "e".into()
        }
    );
    ws_send(&mut joiner, &ClientFrame::Typing { conv: "big".into() }).await;
    loop {
        match ws_next(&mut late).await {
            ServerFrame::Typing { user, .. } if user == "a" => break,
            ServerFrame::Presence { conv, user, .. } => {
                panic!("presence of {user} in {conv} reached a member of a room above the limit")
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn the_listen_backlog_takes_a_connect_burst() {
    // tokio's `TcpListener::bind` asks for a backlog of 128: a fleet reconnecting at once lost
    // SYNs (retried by the kernel after 1 s, then 3 s). `ss` shows a listener's backlog as its
    // Send-Q.
    let s = server().await;
    let port = s.addr().port();
    let out = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("`ss` is needed to read the listen backlog: apt-get install iproute2");
    let text = String::from_utf8_lossy(&out.stdout);
    let backlog: u32 = text
        .split_whitespace()
        .nth(2)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no listener on port {port} in `ss` output: {text:?}"));
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("net.core.somaxconn")
        .trim()
        .parse()
        .expect("a number");
    let expected = lifeline_server::DEFAULT_LISTEN_BACKLOG.min(somaxconn);
    assert!(
        backlog >= expected,
        "listen backlog {backlog}, expected {expected} (somaxconn {somaxconn})"
    );
}
