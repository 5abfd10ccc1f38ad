//! The Server-Sent Events transport, `GET /v1/sse`: `retry:` and `hello`, the replay after the
//! cursor (or `Last-Event-ID`, which wins), live frames as `data:` events with `id: <seq>` on
//! messages, heartbeats, faults and `going_away` at shutdown.
//!
//! Sends do not come in here (they go to [`crate::send`]); frame semantics live in
//! [`crate::feed`].

use crate::conns::ConnGuard;
use crate::errors::frame_error;
use crate::feed::Feed;
use crate::request::{authenticate, check_version, opt_u64, stream_gate, Params};
use crate::state::AppState;
use axum::extract::{Query, State};
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
    headers: HeaderMap,
) -> Response {
    let faults = shared.faults.get();
    if let Err(e) = stream_gate(&shared, faults.refuse_sse, "SSE") {
        return e.into_response();
    }
    if let Err(e) = check_version(&params) {
        return e.into_response();
    }
    let user = match authenticate(&shared, &params, Some(&headers)) {
        Ok(u) => u,
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
    let (tx, rx) = mpsc::channel::<Item>(64);
    let guard = shared.conns.open();
    if faults.blackhole_sse {
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
    shared
        .conns
        .tracker()
        .spawn(run(shared.clone(), tx, guard, user, cursor));
    stream_response(rx)
}

async fn run(
    shared: AppState,
    tx: mpsc::Sender<Item>,
    guard: ConnGuard,
    user: String,
    cursor: Option<Seq>,
) {
    let _presence = shared.hub.online(&user);
    let (hello, mut feed) = Feed::open(&shared, &user, cursor);
    tracing::debug!(%user, cursor = hello.cursor, resumed = hello.resumed, "sse open");
    // The stream starts with `retry:` and `hello`, in one event.
    let first = Event::default()
        .retry(Duration::from_millis(shared.config.sse_retry_ms))
        .data(encode(&ServerFrame::Hello(hello)));
    if tx.send(Ok(first)).await.is_err() {
        return;
    }
    let hb = Duration::from_millis(shared.config.heartbeat_ms.max(1));
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
        if tx.send(Ok(event(&out))).await.is_err() {
            return;
        }
        last_sent = Instant::now();
    }
}
