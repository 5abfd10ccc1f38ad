//! The WebSocket transport, `GET /v1/ws`: upgrade, authenticate after the upgrade (error frame and
//! close 4401), then `hello`, replay and live frames out, client frames in, heartbeats, idle drop,
//! faults and `going_away` at shutdown.
//!
//! Frame semantics live in [`crate::commands`] and [`crate::feed`]; this module only moves text
//! messages.

use crate::commands::{self, Handled, Via};
use crate::conns::ConnGuard;
use crate::errors::frame_error;
use crate::feed::Feed;
use crate::request::{authenticate, check_version, opt_u64, stream_gate, Params};
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::stream::{FuturesOrdered, SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use lifeline_core::protocol::{decode_client_frame, encode, ErrorCode, Seq, ServerFrame};
use std::time::Duration;
use tokio::time::{sleep_until, timeout, Instant};

/// Close code for authentication failures (docs/PROTOCOL.md section 3).
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
/// Close code when the server shuts down.
pub const CLOSE_RESTART: u16 = 1012;
/// Close code for a request that breaks the protocol (bad version, bad cursor).
pub const CLOSE_POLICY: u16 = 1008;
/// Close code for a client silent for three heartbeats.
pub const CLOSE_IDLE: u16 = 1001;

/// Largest WebSocket message the socket layer accepts; the protocol limit (64 KiB) is enforced
/// per frame with a `too_large` error frame, so the connection survives frames up to this size.
const SOCKET_MAX_MESSAGE: usize = 1024 * 1024;

type Sink = SplitSink<WebSocket, Message>;
type Source = SplitStream<WebSocket>;

/// `GET /v1/ws`.
pub async fn handler(
    State(shared): State<AppState>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let faults = shared.faults.get();
    if let Err(e) = stream_gate(&shared, faults.refuse_ws, "WebSocket") {
        return e.into_response();
    }
    let pre = check_version(&params)
        .and_then(|_| authenticate(&shared, &params, Some(&headers)))
        .and_then(|user| Ok((user, opt_u64(&params, "cursor")?)));
    let blackhole = faults.blackhole_ws;
    let tracker = shared.conns.tracker().clone();
    ws.max_message_size(SOCKET_MAX_MESSAGE)
        .max_frame_size(SOCKET_MAX_MESSAGE)
        .on_upgrade(move |socket| {
            tracker.track_future(async move {
                let guard = shared.conns.open();
                let (sink, source) = socket.split();
                if blackhole {
                    black_hole(source, guard).await;
                    return;
                }
                match pre {
                    Ok((user, cursor)) => session(shared, sink, source, guard, user, cursor).await,
                    Err(e) => {
                        let code = if e.code.is_auth() {
                            CLOSE_UNAUTHORIZED
                        } else {
                            CLOSE_POLICY
                        };
                        let mut sink = sink;
                        let _ = send(&mut sink, &e.frame()).await;
                        close(sink, source, code, e.code.as_str()).await;
                    }
                }
            })
        })
}

async fn send(sink: &mut Sink, frame: &ServerFrame) -> Result<(), axum::Error> {
    sink.send(Message::Text(encode(frame).into())).await
}

/// Sends a close frame and waits (briefly) for the client's close reply.
async fn close(mut sink: Sink, mut source: Source, code: u16, reason: &str) {
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_string().into(),
        })))
        .await;
    let _ = timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = source.next().await {}
    })
    .await;
}

/// Accepts and discards everything, never answers, until dropped or shut down.
async fn black_hole(mut source: Source, guard: ConnGuard) {
    loop {
        tokio::select! {
            _ = guard.shutdown.cancelled() => return,
            _ = guard.dropped.cancelled() => return,
            m = source.next() => if !matches!(m, Some(Ok(_))) { return },
        }
    }
}

async fn session(
    shared: AppState,
    mut sink: Sink,
    mut source: Source,
    guard: ConnGuard,
    user: String,
    cursor: Option<Seq>,
) {
    let _presence = shared.hub.online(&user);
    let (hello, mut feed) = Feed::open(&shared, &user, cursor);
    tracing::debug!(%user, cursor = hello.cursor, resumed = hello.resumed, "websocket open");
    if send(&mut sink, &ServerFrame::Hello(hello)).await.is_err() {
        return;
    }
    let hb = Duration::from_millis(shared.config.heartbeat_ms.max(1));
    let mut last_sent = Instant::now();
    let mut last_recv = Instant::now();
    let mut pending = FuturesOrdered::new();
    loop {
        let out: ServerFrame = tokio::select! {
            biased;
            _ = guard.shutdown.cancelled() => {
                let f = frame_error(ErrorCode::GoingAway, "server is shutting down; reconnect",
                    None, None, Some(shared.config.going_away_retry_ms));
                let _ = send(&mut sink, &f).await;
                close(sink, source, CLOSE_RESTART, "going away").await;
                return;
            }
            _ = guard.dropped.cancelled() => {
                tracing::debug!(%user, "websocket dropped by fault switch");
                return;
            }
            Some(answer) = pending.next(), if !pending.is_empty() => match answer {
                Some(f) => f,
                None => continue,
            },
            incoming = source.next() => {
                last_recv = Instant::now();
                match incoming {
                    Some(Ok(Message::Text(text))) => match decode_client_frame(text.as_str()) {
                        Err(e) => frame_error(e.code(), e.to_string(), None, None, None),
                        Ok(frame) => match commands::handle(&shared, &user, frame, Via::WebSocket).await {
                            Handled::Reply(f) => f,
                            Handled::Later(fut) => { pending.push_back(fut); continue; }
                            Handled::Nothing => continue,
                        },
                    },
                    Some(Ok(Message::Binary(_))) => frame_error(ErrorCode::BadFrame,
                        "binary messages are not frames; send JSON text", None, None, None),
                    Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                }
            }
            f = feed.next() => match f {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(%user, error = %e, "replay failed");
                    let f = frame_error(ErrorCode::Internal, "storage failed", None, None, None);
                    let _ = send(&mut sink, &f).await;
                    close(sink, source, 1011, "internal").await;
                    return;
                }
            },
            _ = sleep_until(last_sent + hb) => {
                if shared.faults.get().stop_heartbeats {
                    last_sent = Instant::now();
                    continue;
                }
                // A client that hears our heartbeats may never need to `ping` (PROTOCOL.md
                // section 5), yet a socket silent for three heartbeats is dropped. A WebSocket
                // Ping control frame makes every live client answer (browsers do so
                // automatically), so only dead peers are dropped.
                if last_recv.elapsed() >= hb
                    && sink.send(Message::Ping(Default::default())).await.is_err()
                {
                    return;
                }
                ServerFrame::Heartbeat
            }
            _ = sleep_until(last_recv + hb * 3) => {
                tracing::debug!(%user, "websocket silent for three heartbeats; closing");
                close(sink, source, CLOSE_IDLE, "no traffic").await;
                return;
            }
        };
        if send(&mut sink, &out).await.is_err() {
            return;
        }
        last_sent = Instant::now();
    }
}
