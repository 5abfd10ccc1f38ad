//! Operator and test endpoints: `/healthz`, the development token issuer (`--dev-tokens`), the
//! fault switches (`--faults`) and the admin API of the application's backend (members of
//! conversations, authenticated by the admin secret).
//!
//! Whether these routes exist at all is decided by [`crate::server`]'s router; the switches'
//! state lives in [`crate::faults`], grants are written by [`crate::writer`].

use crate::errors::ApiError;
use crate::faults::{FaultState, FaultUpdate};
use crate::request::bearer;
use crate::state::AppState;
use crate::token::{mint, unix_now, Claims};
use crate::writer::WriteOp;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lifeline_core::protocol::{validate_id, ErrorCode, ServerFrame};
use serde::Serialize;
use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// The largest body the operator endpoints (dev tokens, faults, admin API) read: 64 KiB.
pub const MAX_OPERATOR_BODY_BYTES: usize = 64 * 1024;

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
        Some(Ok(t)) => t.clamp(1, shared.config.max_token_ttl_secs),
        Some(Err(_)) => {
            return ApiError::new(
                ErrorCode::BadFrame,
                "`ttl_secs` must be an unsigned integer",
            )
            .into_response()
        }
    };
    let token = mint(
        &shared.config.token_keys[0],
        &Claims::everything(user, unix_now().saturating_add(ttl)),
    );
    Json(TokenBody { token }).into_response()
}

/// `GET /v1/faults`.
pub async fn get_faults(State(shared): State<AppState>) -> Json<FaultState> {
    Json(shared.faults.get())
}

/// `POST /v1/faults` with a partial [`FaultUpdate`].
pub async fn set_faults(
    State(shared): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_error(e),
    };
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

/// A body the extractor refused: 413 `too_large` past the limit, else 400.
fn body_error(e: BytesRejection) -> Response {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::TooLarge,
            format!("request body is larger than {MAX_OPERATOR_BODY_BYTES} bytes"),
        )
        .into_response()
    } else {
        ApiError::new(ErrorCode::BadFrame, "cannot read the request body").into_response()
    }
}

/// Checks `Authorization: Bearer <admin secret>` in constant time.
fn admin_auth(shared: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = shared
        .config
        .admin_secret
        .as_ref()
        .map(|s| s.0.as_bytes())
        .unwrap_or_default();
    let given = bearer(headers).unwrap_or_default().as_bytes();
    if expected.is_empty() || !bool::from(given.ct_eq(expected)) {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "missing or wrong admin secret",
        ));
    }
    Ok(())
}

#[derive(Serialize)]
struct Membership {
    conv: String,
    user: String,
    member: bool,
}

async fn change_member(
    shared: AppState,
    headers: HeaderMap,
    conv: String,
    user: String,
    add: bool,
) -> Response {
    if let Err(e) = admin_auth(&shared, &headers) {
        return e.into_response();
    }
    for (what, id) in [("conv", &conv), ("user", &user)] {
        if let Err(e) = validate_id(what, id) {
            return ApiError::new(ErrorCode::BadFrame, e.to_string()).into_response();
        }
    }
    let op = if add {
        WriteOp::Grant {
            user: user.clone(),
            conv: conv.clone(),
        }
    } else {
        WriteOp::Revoke {
            user: user.clone(),
            conv: conv.clone(),
        }
    };
    match shared.writer.submit(op).await.await {
        Ok(None) => {
            tracing::info!(%conv, %user, member = add, "membership changed by the admin API");
            Json(Membership {
                conv,
                user,
                member: add,
            })
            .into_response()
        }
        Ok(Some(ServerFrame::Error(e))) => ApiError::new(e.code, e.message).into_response(),
        _ => ApiError::new(ErrorCode::Internal, "the write was lost").into_response(),
    }
}

/// `PUT /v1/admin/conversations/{conv}/members/{user}`: `user` may join `conv`.
pub async fn put_member(
    State(shared): State<AppState>,
    Path((conv, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    change_member(shared, headers, conv, user, true).await
}

/// `DELETE /v1/admin/conversations/{conv}/members/{user}`: `user` leaves `conv` and may no
/// longer join it (unless its token allows it); its live streams stop getting `conv` at once.
pub async fn delete_member(
    State(shared): State<AppState>,
    Path((conv, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    change_member(shared, headers, conv, user, false).await
}
