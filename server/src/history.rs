//! History, `GET /v1/history`: pages of one conversation's messages, newest first by page and in
//! increasing `seq` within a page, for members whose token (or the application's grants) still
//! allows the conversation and whose token allows `history` (403 otherwise).
//!
//! Streams and replay are elsewhere ([`crate::feed`]); this is a plain request/response read.

use crate::access::Op;
use crate::errors::ApiError;
use crate::limits::ceil_ms;
use crate::request::{authenticate, check_version, opt_u64, Params};
use crate::state::AppState;
use crate::store::Before;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use lifeline_core::protocol::{encode, validate_id, ErrorCode, HistoryPage};

/// Default and largest page sizes (docs/PROTOCOL.md section 8).
pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 100;

/// `GET /v1/history`.
pub async fn handler(
    State(shared): State<AppState>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    match page(shared, params, headers).await {
        Ok(p) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            encode(&p),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn page(
    shared: AppState,
    params: Params,
    headers: HeaderMap,
) -> Result<HistoryPage, ApiError> {
    check_version(&params)?;
    let access = authenticate(&shared, &params, &headers)?;
    if let Err(wait) = shared.limits.check_history(&access.user).await {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "too many history requests; retry later",
        )
        .retry_after(ceil_ms(wait)));
    }
    let conv = params
        .get("conv")
        .ok_or_else(|| ApiError::new(ErrorCode::BadFrame, "missing `conv`"))?;
    validate_id("conv", conv).map_err(|e| ApiError::new(ErrorCode::BadFrame, e.to_string()))?;
    let limit = opt_u64(&params, "limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 {
        return Err(ApiError::new(
            ErrorCode::BadFrame,
            "`limit` must be 1 to 100",
        ));
    }
    let limit = limit.min(MAX_LIMIT) as usize;
    let before = match (opt_u64(&params, "before")?, opt_u64(&params, "before_ts")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::BadFrame,
                "give `before` or `before_ts`, not both",
            ))
        }
        (_, Some(ts)) => Before::Ts(ts),
        (seq, None) => Before::Seq(seq.unwrap_or(u64::MAX)),
    };
    let allowed = access.may(Op::History)
        && shared.members.is_member(&access.user, conv)
        && access.may_join(&shared.grants, conv);
    if !allowed {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "not allowed to read this conversation",
        ));
    }
    let (messages, more) = shared
        .store
        .history(conv, before, limit)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "history read failed");
            ApiError::new(ErrorCode::Internal, "storage failed")
        })?;
    let next_before = if more {
        messages.first().map(|m| m.seq)
    } else {
        None
    };
    Ok(HistoryPage {
        messages,
        next_before,
    })
}
