//! Operator and test endpoints: `/healthz`, the development token issuer (`--dev-tokens`) and the
//! fault switches (`--faults`).
//!
//! Whether these routes exist at all is decided by [`crate::server`]'s router; the switches'
//! state lives in [`crate::faults`].

use crate::errors::ApiError;
use crate::faults::{FaultState, FaultUpdate};
use crate::state::AppState;
use crate::token::{make_token, unix_now};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lifeline_core::protocol::{validate_id, ErrorCode};
use serde::Serialize;
use std::collections::HashMap;

/// The longest a development token may live: 30 days.
pub const MAX_DEV_TTL_SECS: u64 = 30 * 24 * 3600;

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok"
}

#[derive(Serialize)]
struct TokenBody {
    token: String,
}

/// `GET /v1/dev/token?user=alice&ttl_secs=3600`.
pub async fn dev_token(
    State(shared): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(user) = params.get("user") else {
        return ApiError::new(ErrorCode::BadFrame, "missing `user`").into_response();
    };
    if let Err(e) = validate_id("user", user) {
        return ApiError::new(ErrorCode::BadFrame, e.to_string()).into_response();
    }
    let ttl = match params.get("ttl_secs").map(|s| s.parse::<u64>()) {
        None => 3600,
        Some(Ok(t)) => t.min(MAX_DEV_TTL_SECS),
        Some(Err(_)) => {
            return ApiError::new(
                ErrorCode::BadFrame,
                "`ttl_secs` must be an unsigned integer",
            )
            .into_response()
        }
    };
    let token = make_token(
        &shared.config.token_secret,
        user,
        unix_now().saturating_add(ttl),
    );
    Json(TokenBody { token }).into_response()
}

/// `GET /v1/faults`.
pub async fn get_faults(State(shared): State<AppState>) -> Json<FaultState> {
    Json(shared.faults.get())
}

/// `POST /v1/faults` with a partial [`FaultUpdate`].
pub async fn set_faults(State(shared): State<AppState>, body: Bytes) -> Response {
    let update: FaultUpdate = if body.iter().all(|b| b.is_ascii_whitespace()) {
        FaultUpdate::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(u) => u,
            Err(e) => {
                return ApiError::new(ErrorCode::BadFrame, format!("bad fault update: {e}"))
                    .into_response()
            }
        }
    };
    let state = shared.faults.update(update);
    tracing::warn!(?state, "fault switches changed");
    Json(state).into_response()
}

#[derive(Serialize)]
struct Dropped {
    dropped: usize,
}

/// `POST /v1/faults/drop`: drops every live connection on every transport.
pub async fn drop_all(State(shared): State<AppState>) -> Json<impl Serialize> {
    let dropped = shared.conns.open_count();
    shared.conns.drop_all();
    tracing::warn!(dropped, "dropping every live connection (fault switch)");
    Json(Dropped { dropped })
}
