//! What every endpoint reads from a request before doing anything: the protocol version, the
//! token (`Authorization: Bearer`, scheme in any case, or the query), and numeric query parameters; and the gate every
//! stream endpoint passes first (shutting down, or refused by a fault switch).
//!
//! Endpoint-specific parameters and bodies are read by the endpoints themselves.

use crate::access::Access;
use crate::errors::ApiError;
use crate::state::Shared;
use crate::token::{unix_now, verify};
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

/// The token of `Authorization: <scheme> <token>` when the scheme is `Bearer` in any case.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Authenticates the request: `Authorization: Bearer` (the scheme in any case), else the `token`
/// query parameter (browsers cannot set headers on WebSocket and EventSource). Returns what the
/// token allows.
pub fn authenticate(
    shared: &Shared,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Access, ApiError> {
    let token = bearer(headers)
        .or_else(|| params.get("token").map(String::as_str))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "missing token"))?;
    verify(
        &shared.config.token_keys,
        token,
        unix_now(),
        shared.config.max_token_ttl_secs,
    )
    .map(Access::from_claims)
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
