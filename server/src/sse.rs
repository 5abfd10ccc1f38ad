//! The Server-Sent Events transport, `GET /v1/sse`: `retry:` and `hello`, the replay after the
//! cursor (or `Last-Event-ID`, which wins), live frames as `data:` events with `id: <seq>` on
//! messages (all frames, or only messages or only presence and typing with `carry=`), heartbeats,
//! faults, `token_expired` (then the end of the stream) when the token expires, `going_away` at
//! shutdown, and the end of a stream whose client stopped reading (slow consumer: the connection is
//! cut; it resumes from `Last-Event-ID`).
//!
//! Sends do not come in here (they go to [`crate::send`]); frame semantics live in
//! [`crate::feed`].

use crate::access::Access;
use crate::conns::ConnGuard;
use crate::errors::frame_error;
use crate::feed::{carry_from_params, Carry, Feed};
use crate::listener::ConnCut;
use crate::request::{authenticate, check_version, opt_u64, stream_gate, Params};
use crate::state::AppState;
use axum::extract::{Extension, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use lifeline_core::protocol::{encode, ErrorCode, Seq, ServerFrame};
use std::io;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_stream::wrappers::ReceiverStream;

type Item = Result<Event, io::Error>;

/// Events queued between a stream's task and the connection (with the connection's own bounded
/// buffer, what a client that stops reading can make the server hold).
const QUEUED_EVENTS: usize = 2;

fn event(frame: &ServerFrame) -> Event {
    let e = Event::default();
    let e = match frame {
        ServerFrame::Msg(m) => e.id(m.seq.to_string()),
        _ => e,
    };
    e.data(encode(frame))
}

fn stream_response(rx: mpsc::Receiver<Item>) -> Response {
    let mut resp = Sse::new(ReceiverStream::new(rx)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// `GET /v1/sse`.
pub async fn handler(
    State(shared): State<AppState>,
    Query(params): Query<Params>,
    conn: Option<Extension<ConnCut>>,
    headers: HeaderMap,
) -> Response {
    let faults = shared.faults.get();
    if let Err(e) = stream_gate(&shared, faults.refuse_sse, "SSE") {
        return e.into_response();
    }
    if let Err(e) = check_version(&params) {
        return e.into_response();
    }
    let access = match authenticate(&shared, &params, &headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<Seq>().ok());
    let cursor = match opt_u64(&params, "cursor") {
        Ok(c) => last_event_id.or(c),
        Err(e) => return e.into_response(),
    };
    let carry = match carry_from_params(&params) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let (tx, rx) = mpsc::channel::<Item>(QUEUED_EVENTS);
    if faults.blackhole_sse {
        let guard = shared.conns.open();
        shared.conns.tracker().spawn(async move {
            tokio::select! {
                _ = guard.shutdown.cancelled() => {}
                _ = guard.dropped.cancelled() => {}
                _ = tx.closed() => {}
            }
            // Ends with an error: the connection is cut rather than finished.
            let _ = tx.try_send(Err(io::Error::other("black hole closed")));
        });
        return stream_response(rx);
    }
    let guard = match shared.conns.try_open_shared(&access.user).await {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    let cut = conn.map(|Extension(c)| c);
    shared
        .conns
        .tracker()
        .spawn(run(shared.clone(), tx, guard, access, (cursor, carry), cut));
    stream_response(rx)
}

async fn run(
    shared: AppState,
    tx: mpsc::Sender<Item>,
    guard: ConnGuard,
    access: Access,
    (cursor, carry): (Option<Seq>, Carry),
    cut: Option<ConnCut>,
) {
    let user = access.user.clone();
    let expires_at = access.expires_at();
    let _presence = shared.hub.online(&user);
    shared.store.learn_head(cursor).await;
    let (hello, feed) = Feed::open(&shared, &access, cursor);
    let mut feed = feed.carrying(carry);
    tracing::debug!(%user, cursor = hello.cursor, resumed = hello.resumed, "sse open");
    // The stream starts with `retry:` and `hello`, in one event.
    let first = Event::default()
        .retry(Duration::from_millis(shared.config.sse_retry_ms))
        .data(encode(&ServerFrame::Hello(hello)));
    if tx.send(Ok(first)).await.is_err() {
        return;
    }
    let hb = Duration::from_millis(shared.config.heartbeat_ms.max(1));
    let stall = Duration::from_millis(shared.config.slow_consumer_ms.max(1));
    let mut last_sent = Instant::now();
    loop {
        let out = tokio::select! {
            biased;
            _ = guard.shutdown.cancelled() => {
                let f = frame_error(ErrorCode::GoingAway, "server is shutting down; reconnect",
                    None, None, Some(shared.config.going_away_retry_ms));
                let _ = tx.send(Ok(event(&f))).await;
                return;
            }
            _ = guard.dropped.cancelled() => {
                let _ = tx.send(Err(io::Error::other("dropped by fault switch"))).await;
                return;
            }
            _ = tx.closed() => return,
            _ = sleep_until(expires_at) => {
                tracing::debug!(%user, "token expired on an open SSE stream; ending it");
                let f = frame_error(ErrorCode::TokenExpired, "token has expired", None, None, None);
                // A client that stopped reading does not get to hold the stream past expiry.
                if tokio::time::timeout(stall, tx.send(Ok(event(&f)))).await.is_err() {
                    if let Some(cut) = &cut {
                        cut.cut();
                    }
                }
                return;
            }
            f = feed.next() => match f {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(%user, error = %e, "replay failed");
                    let f = frame_error(ErrorCode::Internal, "storage failed", None, None, None);
                    let _ = tx.send(Ok(event(&f))).await;
                    return;
                }
            },
            _ = sleep_until(last_sent + hb) => {
                if shared.faults.get().stop_heartbeats {
                    last_sent = Instant::now();
                    continue;
                }
                ServerFrame::Heartbeat
            }
        };
        match tokio::time::timeout(stall, tx.send(Ok(event(&out)))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                // The queue stayed full: the client took nothing for `stall`. Hyper never gives
                // up on a write by itself, so the connection is cut here.
                tracing::info!(%user, "sse client is not reading; closing it as a slow consumer");
                shared.conns.note_slow_consumer();
                if let Some(cut) = cut {
                    cut.cut();
                }
                return;
            }
        }
        last_sent = Instant::now();
    }
}
