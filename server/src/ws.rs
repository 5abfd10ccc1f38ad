//! The WebSocket transport, `GET /v1/ws` (all frames, or only messages or only presence and typing
//! with `carry=`): upgrade, authenticate after the upgrade (error frame and
//! close 4401), then `hello`, replay and live frames out, client frames in, heartbeats, idle drop,
//! faults, `token_expired` + 4401 when the token expires, and `going_away` at shutdown.
//!
//! Frame semantics live in [`crate::commands`] and [`crate::feed`]; this module only moves text
//! messages.

use crate::access::Access;
use crate::commands::{self, Handled, Via};
use crate::conns::ConnGuard;
use crate::errors::{frame_error, rejected_frame};
use crate::feed::{carry_from_params, Carry, Feed};
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
/// Close code for a client silent for three heartbeats (after a `going_away` error frame).
pub const CLOSE_IDLE: u16 = 1001;
/// Close code for a slow consumer: the client took no bytes for `slow_consumer_ms` while frames
/// waited for it. It reconnects from its cursor and loses nothing.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;

/// The longest the server waits for a closing handshake (or to write a last frame) to go out.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Largest WebSocket message the socket layer accepts; the protocol limit (64 KiB) is enforced
/// per frame with a `too_large` error frame, so the connection survives frames up to this size.
const SOCKET_MAX_MESSAGE: usize = 1024 * 1024;

/// The socket layer's read buffer (it grows for a larger message while one is read). The default
/// (128 KiB per connection) is what 300 idle or stalled connections would mostly be made of.
const SOCKET_READ_BUFFER: usize = 8 * 1024;

/// Bytes the socket layer gathers before writing; every frame is flushed on its own anyway, so
/// this only bounds what a stalled connection holds besides the frame being written.
const SOCKET_WRITE_BUFFER: usize = 8 * 1024;

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
        .and_then(|_| authenticate(&shared, &params, &headers))
        .and_then(|access| {
            let cursor = opt_u64(&params, "cursor")?;
            Ok((access, (cursor, carry_from_params(&params)?)))
        });
    let blackhole = faults.blackhole_ws;
    // The stream caps are checked before the upgrade, so a refusal is a plain 429/503 with
    // Retry-After. (Bad credentials are told after the upgrade: browsers cannot read the body
    // of a refused upgrade.)
    let guard = match &pre {
        Ok((access, _)) if !blackhole => match shared.conns.try_open_shared(&access.user).await {
            Ok(g) => g,
            Err(e) => return e.into_response(),
        },
        _ => shared.conns.open(),
    };
    let tracker = shared.conns.tracker().clone();
    ws.max_message_size(SOCKET_MAX_MESSAGE)
        .max_frame_size(SOCKET_MAX_MESSAGE)
        .read_buffer_size(SOCKET_READ_BUFFER)
        .write_buffer_size(SOCKET_WRITE_BUFFER)
        .on_upgrade(move |socket| {
            tracker.track_future(async move {
                let (sink, source) = socket.split();
                if blackhole {
                    black_hole(source, guard).await;
                    return;
                }
                match pre {
                    Ok((access, start)) => {
                        session(shared, sink, source, guard, access, start).await
                    }
                    Err(e) => {
                        let code = if e.code.is_auth() {
                            CLOSE_UNAUTHORIZED
                        } else {
                            CLOSE_POLICY
                        };
                        let mut sink = sink;
                        let _ = timeout(CLOSE_GRACE, send(&mut sink, &e.frame())).await;
                        close(sink, source, code, e.code.as_str()).await;
                    }
                }
            })
        })
}

async fn send(sink: &mut Sink, frame: &ServerFrame) -> Result<(), axum::Error> {
    sink.send(Message::Text(encode(frame).into())).await
}

/// Sends a close frame and waits (briefly) for the client's close reply. Bounded in time even
/// when the client reads nothing.
async fn close(mut sink: Sink, mut source: Source, code: u16, reason: &str) {
    let sent = timeout(
        CLOSE_GRACE,
        sink.send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_string().into(),
        }))),
    )
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    let _ = timeout(CLOSE_GRACE, async {
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
    access: Access,
    (cursor, carry): (Option<Seq>, Carry),
) {
    let user = access.user.clone();
    let expires_at = access.expires_at();
    let _presence = shared.hub.online(&user);
    shared.store.learn_head(cursor).await;
    let (hello, feed) = Feed::open(&shared, &access, cursor);
    let mut feed = feed.carrying(carry);
    tracing::debug!(%user, cursor = hello.cursor, resumed = hello.resumed, "websocket open");
    if send(&mut sink, &ServerFrame::Hello(hello)).await.is_err() {
        return;
    }
    let hb = Duration::from_millis(shared.config.heartbeat_ms.max(1));
    let stall = Duration::from_millis(shared.config.slow_consumer_ms.max(1));
    let mut last_sent = Instant::now();
    let mut last_recv = Instant::now();
    // Liveness runs on its own timer, whatever else flows: every heartbeat, a client we have
    // not heard from for a heartbeat gets a WebSocket Ping (every live client answers it,
    // browsers included), and any inbound frame, Pong included, proves it alive.
    let mut next_ping = Instant::now() + hb;
    let mut pending = FuturesOrdered::new();
    loop {
        let out: ServerFrame = tokio::select! {
            biased;
            _ = guard.shutdown.cancelled() => {
                let f = frame_error(ErrorCode::GoingAway, "server is shutting down; reconnect",
                    None, None, Some(shared.config.going_away_retry_ms));
                let _ = timeout(CLOSE_GRACE, send(&mut sink, &f)).await;
                close(sink, source, CLOSE_RESTART, "going away").await;
                return;
            }
            _ = guard.dropped.cancelled() => {
                tracing::debug!(%user, "websocket dropped by fault switch");
                return;
            }
            _ = sleep_until(expires_at) => {
                tracing::debug!(%user, "token expired on an open websocket; closing with 4401");
                let f = frame_error(ErrorCode::TokenExpired, "token has expired", None, None, None);
                let _ = timeout(CLOSE_GRACE, send(&mut sink, &f)).await;
                close(sink, source, CLOSE_UNAUTHORIZED, "token_expired").await;
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
                        Err(e) => rejected_frame(text.as_str(), &e),
                        Ok(frame) => match commands::handle(&shared, &access, frame, Via::WebSocket).await {
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
                    let _ = timeout(CLOSE_GRACE, send(&mut sink, &f)).await;
                    close(sink, source, 1011, "internal").await;
                    return;
                }
            },
            _ = sleep_until(next_ping) => {
                next_ping = Instant::now() + hb;
                if shared.faults.get().stop_heartbeats || last_recv.elapsed() < hb {
                    continue;
                }
                match timeout(stall, sink.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) => return,
                    Err(_) => {
                        shared.conns.note_slow_consumer();
                        slow_consumer(&user, sink, source).await;
                        return;
                    }
                }
            }
            _ = sleep_until(last_sent + hb) => {
                if shared.faults.get().stop_heartbeats {
                    last_sent = Instant::now();
                    continue;
                }
                ServerFrame::Heartbeat
            }
            _ = sleep_until(last_recv + hb * 3) => {
                tracing::debug!(%user, "websocket silent for three heartbeats; closing");
                let f = frame_error(ErrorCode::GoingAway,
                    "nothing heard from the client for three heartbeats (not even a pong); reconnect",
                    None, None, Some(0));
                let _ = timeout(CLOSE_GRACE, send(&mut sink, &f)).await;
                close(sink, source, CLOSE_IDLE, "no traffic").await;
                return;
            }
        };
        match timeout(stall, send(&mut sink, &out)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                shared.conns.note_slow_consumer();
                slow_consumer(&user, sink, source).await;
                return;
            }
        }
        last_sent = Instant::now();
    }
}

/// Closes a stream whose client stopped taking bytes: close code 4008 if the socket still has
/// room for it, else the connection is just cut. Nothing more is queued for it.
async fn slow_consumer(user: &str, sink: Sink, source: Source) {
    tracing::info!(%user, "websocket client is not reading; closing it as a slow consumer");
    close(sink, source, CLOSE_SLOW_CONSUMER, "slow consumer").await;
}
