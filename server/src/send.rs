//! HTTP send, `POST /v1/send`: a batch of client frames handled in order, answered with one
//! `ack` / `subscribed` / `unsubscribed` / `error` frame per frame that has an answer.
//!
//! Errors about the whole request (auth, size, encoding, a rate-limited first frame) are HTTP
//! errors; errors about one frame are frames. Frame semantics live in [`crate::commands`].

use crate::commands::{self, Handled, Via};
use crate::errors::{frame_error, named_in, ApiError};
use crate::request::{authenticate, check_version, Params};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use lifeline_core::protocol::{
    decode_client_frame, encode, Batch, ErrorCode, ServerFrame, MAX_FRAMES_PER_REQUEST,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct RawBatch {
    frames: Vec<serde_json::Value>,
}

enum Answer {
    Now(ServerFrame),
    Later(BoxFuture<'static, Option<ServerFrame>>),
}

/// `POST /v1/send`.
pub async fn handler(
    State(shared): State<AppState>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(shared, params, headers, body).await {
        Ok(frames) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            encode(&Batch { frames }),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn handle(
    shared: AppState,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Vec<ServerFrame>, ApiError> {
    if shared.conns.is_shutting_down() {
        return Err(
            ApiError::new(ErrorCode::GoingAway, "server is shutting down")
                .retry_after(shared.config.going_away_retry_ms),
        );
    }
    check_version(&params)?;
    let access = authenticate(&shared, &params, &headers)?;
    let max = shared.config.max_body_bytes;
    // A body trickled in byte by byte must not hold the connection: it has a deadline as a whole.
    let deadline = std::time::Duration::from_millis(shared.config.body_read_timeout_ms);
    let bytes = tokio::time::timeout(deadline, axum::body::to_bytes(body, max))
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::BadFrame,
                format!(
                    "request body not received within {} ms",
                    shared.config.body_read_timeout_ms
                ),
            )
        })?
        .map_err(|_| {
            ApiError::new(
                ErrorCode::TooLarge,
                format!("request body is larger than {max} bytes"),
            )
        })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::new(ErrorCode::BadFrame, "request body is not valid UTF-8"))?;
    let raw: RawBatch = serde_json::from_str(text).map_err(|e| {
        ApiError::new(
            ErrorCode::BadFrame,
            format!("expected {{\"frames\":[...]}}: {e}"),
        )
    })?;
    if raw.frames.len() > MAX_FRAMES_PER_REQUEST {
        return Err(ApiError::new(
            ErrorCode::BadFrame,
            format!("at most {MAX_FRAMES_PER_REQUEST} frames per request"),
        ));
    }
    let mut answers = Vec::new();
    for (i, value) in raw.frames.into_iter().enumerate() {
        let frame = match decode_client_frame(&value.to_string()) {
            Ok(f) => f,
            Err(e) => {
                let (id, conv) = named_in(&value);
                answers.push(Answer::Now(frame_error(
                    e.code(),
                    e.to_string(),
                    id,
                    conv,
                    None,
                )));
                continue;
            }
        };
        match commands::handle(&shared, &access, frame, Via::Http).await {
            Handled::Reply(ServerFrame::Error(e)) if i == 0 && e.code == ErrorCode::RateLimited => {
                return Err(ApiError::new(ErrorCode::RateLimited, e.message)
                    .retry_after(e.retry_after_ms.unwrap_or(1000)));
            }
            Handled::Reply(f) => answers.push(Answer::Now(f)),
            Handled::Later(fut) => answers.push(Answer::Later(fut)),
            Handled::Nothing => {}
        }
    }
    let mut frames = Vec::with_capacity(answers.len());
    for a in answers {
        match a {
            Answer::Now(f) => frames.push(f),
            Answer::Later(fut) => frames.extend(fut.await),
        }
    }
    Ok(frames)
}
