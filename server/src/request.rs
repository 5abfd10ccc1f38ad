//! What every endpoint reads from a request before doing anything: the protocol version, the
//! token (query or `Authorization: Bearer`), and numeric query parameters; and the gate every
//! stream endpoint passes first (shutting down, or refused by a fault switch).
//!
//! Endpoint-specific parameters and bodies are read by the endpoints themselves.

use crate::errors::ApiError;
use crate::state::Shared;
use crate::token::{unix_now, verify_token};
use axum::http::{header, HeaderMap};
use lifeline_core::protocol::{ErrorCode, PROTOCOL_VERSION};
use std::collections::HashMap;

/// The gate of the three stream endpoints: `going_away` while shutting down, and `forbidden` when
/// `refused` (the transport's fault switch) is on. `Err` is the error to answer with.
pub fn stream_gate(shared: &Shared, refused: bool, what: &str) -> Result<(), ApiError> {
    if shared.conns.is_shutting_down() {
        return Err(
            ApiError::new(ErrorCode::GoingAway, "server is shutting down")
                .retry_after(shared.config.going_away_retry_ms),
        );
    }
    if refused {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("{what} refused (fault switch)"),
        ));
    }
    Ok(())
}

/// Query parameters, percent-decoded.
pub type Params = HashMap<String, String>;

/// Checks `v=1`.
pub fn check_version(params: &Params) -> Result<(), ApiError> {
    match params.get("v").map(String::as_str) {
        Some(v) if v == PROTOCOL_VERSION.to_string() => Ok(()),
        Some(v) => Err(ApiError::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "protocol version {v} is not supported; this server speaks v={PROTOCOL_VERSION}"
            ),
        )),
        None => Err(ApiError::new(
            ErrorCode::UnsupportedVersion,
            format!("missing protocol version; pass v={PROTOCOL_VERSION}"),
        )),
    }
}

/// Authenticates the request: the `token` query parameter, or `Authorization: Bearer` when
/// `headers` are given. Returns the user.
pub fn authenticate(
    shared: &Shared,
    params: &Params,
    headers: Option<&HeaderMap>,
) -> Result<String, ApiError> {
    let from_header = headers
        .and_then(|h| h.get(header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110 §11.1).
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(|t| t.trim().to_string());
    let token = from_header
        .or_else(|| params.get("token").cloned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "missing token"))?;
    verify_token(&shared.config.token_secret, &token, unix_now())
        .map_err(|e| ApiError::new(e.code(), e.message()))
}

/// Reads an optional unsigned number from the query.
pub fn opt_u64(params: &Params, name: &str) -> Result<Option<u64>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s.parse::<u64>().map(Some).map_err(|_| {
            ApiError::new(
                ErrorCode::BadFrame,
                format!("query parameter `{name}` must be an unsigned integer"),
            )
        }),
    }
}
