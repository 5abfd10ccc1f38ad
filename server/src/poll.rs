//! The long-polling transport, `GET /v1/poll`: with `hello=1` it answers at once with `hello` and
//! the replay; otherwise it answers as soon as there are frames after the cursor, or after
//! `wait_ms` with an empty list (the heartbeat). Faults, drops and shutdown answer or cut pending
//! polls; a poll pending when its token expires is answered 401 `token_expired`.
//!
//! A long-polling client is "online" while a poll is pending and for one heartbeat after it.
//! The resume window applies to `hello=1` polls only (see [`poll`]'s comment). `carry` picks the
//! frames as on the other streams ([`crate::feed::Carry`]).

use crate::access::Access;
use crate::conns::ConnGuard;
use crate::errors::{frame_error, ApiError};
use crate::feed::{carry_from_params, Carry, Feed};
use crate::request::{authenticate, check_version, opt_u64, stream_gate, Params};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lifeline_core::endpoints::DEFAULT_POLL_WAIT_MS;
use lifeline_core::protocol::{encode, Batch, ErrorCode, Seq, ServerFrame, MAX_FRAMES_PER_REQUEST};
use std::io;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest a poll may be held, per docs/PROTOCOL.md section 8.
pub const MAX_WAIT_MS: u64 = 30_000;

/// About how many bytes of message bodies one poll answer carries at most (besides the frame
/// count limit): the rest follows on the next poll.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

fn json(frames: Vec<ServerFrame>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        encode(&Batch { frames }),
    )
        .into_response()
}

/// A 200 whose body never completes: it ends in an error (a cut connection) when `until` fires.
/// `guard` keeps the connection counted as open meanwhile.
fn cut_when(until: Vec<CancellationToken>, guard: Option<ConnGuard>) -> Response {
    let body = futures_util::stream::once(async move {
        let _guard = guard;
        let waits = until.iter().map(|t| Box::pin(t.cancelled()));
        futures_util::future::select_all(waits).await;
        Err::<Bytes, io::Error>(io::Error::other("connection dropped"))
    });
    let mut resp = Response::new(Body::from_stream(body));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// `GET /v1/poll`.
pub async fn handler(
    State(shared): State<AppState>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let faults = shared.faults.get();
    if let Err(e) = stream_gate(&shared, faults.refuse_poll, "long polling") {
        return e.into_response();
    }
    let parsed = check_version(&params)
        .and_then(|_| authenticate(&shared, &params, &headers))
        .and_then(|access| {
            Ok((
                access,
                opt_u64(&params, "cursor")?,
                opt_u64(&params, "wait_ms")?,
                carry_from_params(&params)?,
            ))
        });
    let (access, cursor, wait_ms, carry) = match parsed {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let hello = matches!(
        params.get("hello").map(String::as_str),
        Some("1") | Some("true")
    );
    let wait = Duration::from_millis(wait_ms.unwrap_or(DEFAULT_POLL_WAIT_MS).min(MAX_WAIT_MS));
    if faults.blackhole_poll {
        let guard = shared.conns.open();
        return cut_when(
            vec![guard.shutdown.clone(), guard.dropped.clone()],
            Some(guard),
        );
    }
    let tracker = shared.conns.tracker().clone();
    tracker
        .track_future(poll(shared, access, (cursor, carry), wait, hello))
        .await
}

async fn poll(
    shared: AppState,
    access: Access,
    (cursor, carry): (Option<Seq>, Carry),
    wait: Duration,
    hello: bool,
) -> Response {
    let user = access.user.clone();
    let expires_at = access.expires_at();
    let guard = match shared.conns.try_open_shared(&user).await {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    let presence = shared.hub.online(&user);
    // The resume window only bounds where a session starts (`hello=1`). A follow-up poll is
    // served from its cursor however far behind (everything is stored), because a client ignores
    // a `hello` in the middle of a session and would skip the gap silently. Only a cursor above
    // the head (data loss) gets a `hello` with `resumed:false`.
    let window = if hello {
        shared.config.resume_window
    } else {
        u64::MAX
    };
    shared.store.learn_head(cursor).await;
    let (h, feed) = Feed::open_with_window(&shared, &access, cursor, window);
    let mut feed = feed.carrying(carry);
    let mut frames = Vec::new();
    if hello || !h.resumed {
        frames.push(ServerFrame::Hello(h));
    }
    let result = async {
        frames.extend(feed.ready(MAX_FRAMES_PER_REQUEST - frames.len(), MAX_ANSWER_BYTES).await?);
        if hello || !frames.is_empty() {
            return Ok(None);
        }
        let hb = Duration::from_millis(shared.config.heartbeat_ms.max(1));
        let hold = async {
            tokio::time::sleep(wait).await;
            // With heartbeats stopped, an empty answer (the heartbeat) is withheld.
            while shared.faults.get().stop_heartbeats {
                tokio::time::sleep(hb.min(Duration::from_millis(200))).await;
            }
        };
        tokio::select! {
            biased;
            _ = guard.shutdown.cancelled() => {
                frames.push(frame_error(ErrorCode::GoingAway, "server is shutting down; reconnect",
                    None, None, Some(shared.config.going_away_retry_ms)));
            }
            _ = guard.dropped.cancelled() => return Ok(Some(cut_when(vec![guard.dropped.clone()], None))),
            _ = tokio::time::sleep_until(expires_at) => {
                return Ok(Some(ApiError::new(ErrorCode::TokenExpired, "token has expired").into_response()));
            }
            f = feed.next() => {
                frames.push(f?);
                frames.extend(feed.ready(MAX_FRAMES_PER_REQUEST - 1, MAX_ANSWER_BYTES).await?);
            }
            _ = hold => {}
        }
        Ok::<_, crate::store::StoreError>(None)
    }
    .await;
    // Stay online a little after the answer, so a polling client does not flicker offline between
    // two polls.
    let linger = Duration::from_millis(shared.config.heartbeat_ms);
    let shutdown = guard.shutdown.clone();
    shared.conns.tracker().spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(linger) => {}
            _ = shutdown.cancelled() => {}
        }
        drop(presence);
    });
    match result {
        Ok(Some(cut)) => cut,
        Ok(None) => json(frames),
        Err(e) => {
            tracing::error!(%user, error = %e, "poll failed");
            ApiError::new(ErrorCode::Internal, "storage failed").into_response()
        }
    }
}
