//! Protocol errors as HTTP responses and as error frames (docs/PROTOCOL.md section 7): the status
//! for each code, the `{"error":{…}}` body, and `Retry-After` for 429 and 503.
//!
//! Deciding *when* something is an error is the caller's job; this module only shapes it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lifeline_core::protocol::{
    encode, validate_id, ErrorCode, ErrorFrame, FrameError, HttpError, ServerFrame,
};

/// An error about a whole HTTP request.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    pub fn retry_after(mut self, ms: u64) -> ApiError {
        self.retry_after_ms = Some(ms);
        self
    }

    /// The same error as a frame (for WebSocket and SSE streams).
    pub fn frame(&self) -> ServerFrame {
        ServerFrame::Error(ErrorFrame {
            code: self.code,
            message: self.message.clone(),
            id: None,
            conv: None,
            retry_after_ms: self.retry_after_ms,
        })
    }
}

/// The HTTP status for an error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Unauthorized | ErrorCode::TokenExpired => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::BadFrame | ErrorCode::UnsupportedVersion => StatusCode::BAD_REQUEST,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::GoingAway => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.code);
        let body = encode(&HttpError {
            error: ErrorFrame {
                code: self.code,
                message: self.message,
                id: None,
                conv: None,
                retry_after_ms: self.retry_after_ms,
            },
        });
        let mut resp = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            let secs = self.retry_after_ms.unwrap_or(1000).div_ceil(1000).max(1);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// An error frame about one client frame.
pub fn frame_error(
    code: ErrorCode,
    message: impl Into<String>,
    id: Option<String>,
    conv: Option<String>,
    retry_after_ms: Option<u64>,
) -> ServerFrame {
    ServerFrame::Error(ErrorFrame {
        code,
        message: message.into(),
        id,
        conv,
        retry_after_ms,
    })
}

/// The `id` and `conv` a client frame names, when it is a JSON object carrying them as valid
/// identifiers (strings of the protocol's identifier alphabet and length), even if the frame as a
/// whole is bad.
pub fn named_in(value: &serde_json::Value) -> (Option<String>, Option<String>) {
    let field = |name: &'static str| {
        value
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|s| validate_id(name, s).is_ok())
            .map(str::to_string)
    };
    (field("id"), field("conv"))
}

/// The error frame for a client frame that was rejected (`bad_frame`, `too_large`): it names the
/// frame's `id` and `conv` when the text carries them, so that a client with several frames in
/// flight can tell which one failed (docs/PROTOCOL.md section 7).
pub fn rejected_frame(text: &str, error: &FrameError) -> ServerFrame {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let (id, conv) = named_in(&value);
    frame_error(error.code(), error.to_string(), id, conv, None)
}
