//! Test helpers: plain clients for every transport (tokio-tungstenite, reqwest), bounded waits,
//! and server start-up. Not the SDK: these speak the wire protocol directly.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use lifeline_core::protocol::{
    decode_server_batch, decode_server_frame, encode, ClientFrame, ServerFrame,
};
use lifeline_server::{start, RunningServer, Secret, ServerConfig};
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// The most frames a test skips while looking for a particular one.
pub const MAX_SKIP: usize = 1_000;

pub async fn server() -> RunningServer {
    server_with(ServerConfig::for_tests()).await
}

pub mod postgres;

/// Starts a server; in the test binary that runs on PostgreSQL ([`postgres::ON_POSTGRES`]) a
/// configuration without a database URL gets one (see [`postgres::Pg::database_for`]).
pub async fn server_with(mut config: ServerConfig) -> RunningServer {
    if postgres::ON_POSTGRES && config.postgres.is_none() {
        let dir = config.data_dir.clone();
        let url = tokio::task::spawn_blocking(move || postgres::pg().database_for(dir.as_deref()))
            .await
            .expect("database for the test");
        config.postgres = Some(Secret(url));
    }
    start(config).await.expect("server starts")
}

pub fn token(s: &RunningServer, user: &str) -> String {
    s.issue_token(user, Duration::from_secs(3600))
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client")
}

/// Waits (bounded by `WAIT`, polling every 10 ms) until `cond` holds.
pub async fn wait_until<F: FnMut() -> bool>(what: &str, mut cond: F) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Awaits `fut`, failing the test if it takes longer than `WAIT`.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

pub fn send(id: &str, conv: &str, body: &str) -> ClientFrame {
    ClientFrame::Send {
        id: id.into(),
        conv: conv.into(),
        body: body.into(),
    }
}

pub fn subscribe(conv: &str) -> ClientFrame {
    ClientFrame::Subscribe { conv: conv.into() }
}

// ---------------------------------------------------------------- HTTP send, poll, history

/// POSTs frames to /v1/send; returns (status, body text).
pub async fn post_frames(
    s: &RunningServer,
    token: &str,
    frames: &[ClientFrame],
) -> (reqwest::StatusCode, String) {
    let body = format!(
        "{{\"frames\":[{}]}}",
        frames.iter().map(encode).collect::<Vec<_>>().join(",")
    );
    post_raw(s, token, body.into_bytes()).await
}

pub async fn post_raw(
    s: &RunningServer,
    token: &str,
    body: Vec<u8>,
) -> (reqwest::StatusCode, String) {
    let resp = within(
        "POST /v1/send",
        http()
            .post(format!("{}/v1/send?v=1", s.base_url()))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send(),
    )
    .await
    .expect("send request");
    let status = resp.status();
    (status, resp.text().await.expect("send body"))
}

/// POSTs frames and decodes the answer frames (asserting 200).
pub async fn send_ok(s: &RunningServer, token: &str, frames: &[ClientFrame]) -> Vec<ServerFrame> {
    let (status, body) = post_frames(s, token, frames).await;
    assert_eq!(status, 200, "{body}");
    decode_server_batch(&body).expect("batch").frames
}

/// Joins `conv` over HTTP.
pub async fn join(s: &RunningServer, token: &str, conv: &str) {
    let answers = send_ok(s, token, &[subscribe(conv)]).await;
    assert_eq!(answers, vec![ServerFrame::Subscribed { conv: conv.into() }]);
}

/// Sends one message over HTTP and returns its seq.
pub async fn send_one(s: &RunningServer, token: &str, id: &str, conv: &str, body: &str) -> u64 {
    match send_ok(s, token, &[send(id, conv, body)]).await.as_slice() {
        [ServerFrame::Ack { id: got, seq }] if got == id => *seq,
        other => panic!("expected one ack, got {other:?}"),
    }
}

/// One long poll; returns (status, frames or error body).
pub async fn poll(s: &RunningServer, query: &str) -> (reqwest::StatusCode, String) {
    let resp = within(
        "GET /v1/poll",
        http()
            .get(format!("{}/v1/poll?v=1&{query}", s.base_url()))
            .send(),
    )
    .await
    .expect("poll request");
    let status = resp.status();
    (
        status,
        within("poll body", resp.text()).await.expect("poll body"),
    )
}

pub async fn poll_ok(s: &RunningServer, query: &str) -> Vec<ServerFrame> {
    let (status, body) = poll(s, query).await;
    assert_eq!(status, 200, "{body}");
    decode_server_batch(&body).expect("poll batch").frames
}

// ---------------------------------------------------------------- WebSocket

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn ws_connect(s: &RunningServer, query: &str) -> Ws {
    let url = format!("{}/v1/ws?v=1&{query}", s.ws_base_url());
    let (ws, _) = within("ws connect", tokio_tungstenite::connect_async(url))
        .await
        .expect("ws upgrade");
    ws
}

/// Opens a WebSocket and checks that its first frame is `hello`.
pub async fn ws_open(s: &RunningServer, query: &str) -> Ws {
    let mut ws = ws_connect(s, query).await;
    match ws_next(&mut ws).await {
        ServerFrame::Hello(_) => ws,
        f => panic!("expected hello first, got {f:?}"),
    }
}

pub async fn ws_send(ws: &mut Ws, frame: &ClientFrame) {
    ws.send(Message::text(encode(frame)))
        .await
        .expect("ws send");
}

/// What arrived on a WebSocket.
#[derive(Debug)]
pub enum WsEvent {
    Frame(ServerFrame),
    Closed(Option<u16>),
}

/// The next frame or close, skipping heartbeats and pongs when `skip_ephemeral`.
pub async fn ws_next_any(ws: &mut Ws, skip_heartbeats: bool) -> WsEvent {
    within("ws frame", async {
        for _ in 0..MAX_SKIP {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let f = decode_server_frame(t.as_str()).expect("server frame");
                    if skip_heartbeats && f == ServerFrame::Heartbeat {
                        continue;
                    }
                    return WsEvent::Frame(f);
                }
                Some(Ok(Message::Close(c))) => return WsEvent::Closed(c.map(|c| c.code.into())),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return WsEvent::Closed(None),
            }
        }
        panic!("no frame within {MAX_SKIP} messages");
    })
    .await
}

/// The next non-heartbeat frame (fails on close).
pub async fn ws_next(ws: &mut Ws) -> ServerFrame {
    match ws_next_any(ws, true).await {
        WsEvent::Frame(f) => f,
        WsEvent::Closed(c) => panic!("websocket closed ({c:?}) while a frame was expected"),
    }
}

/// Skips presence and typing frames too (at most `MAX_SKIP` of them).
pub async fn ws_next_durable(ws: &mut Ws) -> ServerFrame {
    for _ in 0..MAX_SKIP {
        match ws_next(ws).await {
            ServerFrame::Presence { .. } | ServerFrame::Typing { .. } => continue,
            f => return f,
        }
    }
    panic!("only ephemeral frames for {MAX_SKIP} frames");
}

// ---------------------------------------------------------------- SSE

/// A minimal Server-Sent Events reader over a reqwest byte stream.
pub struct Sse {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    stream: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = reqwest::Result<bytes_alias::Bytes>> + Send>,
    >,
    buf: String,
}

pub mod bytes_alias {
    pub use axum::body::Bytes;
}

/// One SSE event.
#[derive(Debug, Default, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub retry: Option<u64>,
    pub data: Option<String>,
}

impl SseEvent {
    pub fn frame(&self) -> ServerFrame {
        decode_server_frame(self.data.as_deref().expect("event has data")).expect("frame")
    }
}

pub async fn sse_connect(s: &RunningServer, query: &str, last_event_id: Option<&str>) -> Sse {
    let mut req = http().get(format!("{}/v1/sse?v=1&{query}", s.base_url()));
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    let resp = within("sse connect", req.send())
        .await
        .expect("sse request");
    Sse {
        status: resp.status(),
        headers: resp.headers().clone(),
        stream: Box::pin(resp.bytes_stream()),
        buf: String::new(),
    }
}

impl Sse {
    /// The next event, or `None` when the stream ended (or was cut).
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        within("sse event", async {
            for _ in 0..MAX_SKIP {
                if let Some(end) = self.buf.find("\n\n") {
                    let raw: String = self.buf.drain(..end + 2).collect();
                    let mut ev = SseEvent::default();
                    for line in raw.lines() {
                        if let Some(v) = line.strip_prefix("data:") {
                            ev.data = Some(v.trim_start().to_string());
                        } else if let Some(v) = line.strip_prefix("id:") {
                            ev.id = Some(v.trim_start().to_string());
                        } else if let Some(v) = line.strip_prefix("retry:") {
                            ev.retry = v.trim().parse().ok();
                        }
                    }
                    if ev.data.is_none() && ev.retry.is_none() && ev.id.is_none() {
                        continue; // comment-only event
                    }
                    return Some(ev);
                }
                match self.stream.next().await {
                    Some(Ok(chunk)) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                    Some(Err(_)) | None => return None,
                }
            }
            panic!("no complete event within {MAX_SKIP} reads");
        })
        .await
    }

    /// The next frame that is not a heartbeat, presence or typing frame.
    pub async fn next_durable(&mut self) -> ServerFrame {
        for _ in 0..MAX_SKIP {
            let ev = self.next_event().await.expect("sse stream ended");
            match ev.frame() {
                ServerFrame::Heartbeat
                | ServerFrame::Presence { .. }
                | ServerFrame::Typing { .. } => continue,
                f => return f,
            }
        }
        panic!("only ephemeral events for {MAX_SKIP} events");
    }
}
