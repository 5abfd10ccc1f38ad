//! History, `GET /v1/history`: pages of one conversation's messages, newest first by page and in
//! increasing `seq` within a page, for members whose token (or the application's grants) still
//! allows the conversation and whose token allows `history` (403 otherwise). A page ends before
//! a `seq` (`before`) or a moment (`before_ts`), starts after a `seq` (`after`, paging forward),
//! or sits around a moment (`around_ts`); the last two answer `next_after` for the newer side.
//!
//! Streams and replay are elsewhere ([`crate::feed`]); this is a plain request/response read.

use crate::access::Op;
use crate::errors::ApiError;
use crate::limits::ceil_ms;
use crate::request::{authenticate, check_version, opt_u64, Params};
use crate::state::AppState;
use crate::store::{Around, Before};
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
            p.to_json(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Where a requested page lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    /// The newest messages before a `seq` or a moment.
    Before(Before),
    /// The oldest messages after a `seq`.
    After(u64),
    /// The messages around a moment.
    AroundTs(u64),
}

/// The page to answer: the protocol's history page, plus the cursor to the newer side when the
/// request can have one (`after`, `around_ts`).
struct Answer {
    page: HistoryPage,
    next_after: Option<u64>,
}

impl Answer {
    fn to_json(&self) -> String {
        let mut json = encode(&self.page);
        if let Some(seq) = self.next_after {
            // `encode` writes one JSON object: the cursor goes in before its closing brace.
            if json.ends_with('}') {
                json.pop();
                json.push_str(&format!(",\"next_after\":{seq}}}"));
            }
        }
        json
    }
}

/// The page the query parameters ask for: at most one of `before`, `before_ts`, `after`,
/// `around_ts` (none: the newest messages).
fn range(params: &Params) -> Result<Range, ApiError> {
    let given = [
        opt_u64(params, "before")?.map(|s| Range::Before(Before::Seq(s))),
        opt_u64(params, "before_ts")?.map(|t| Range::Before(Before::Ts(t))),
        opt_u64(params, "after")?.map(Range::After),
        opt_u64(params, "around_ts")?.map(Range::AroundTs),
    ];
    let mut given = given.into_iter().flatten();
    let first = given.next();
    if given.next().is_some() {
        return Err(ApiError::new(
            ErrorCode::BadFrame,
            "give at most one of `before`, `before_ts`, `after`, `around_ts`",
        ));
    }
    Ok(first.unwrap_or(Range::Before(Before::Seq(u64::MAX))))
}

async fn page(shared: AppState, params: Params, headers: HeaderMap) -> Result<Answer, ApiError> {
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
    let range = range(&params)?;
    let allowed = access.may(Op::History)
        && shared.members.is_member(&access.user, conv)
        && access.may_join(&shared.grants, conv);
    if !allowed {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "not allowed to read this conversation",
        ));
    }
    let failed = |e| {
        tracing::error!(error = %e, "history read failed");
        ApiError::new(ErrorCode::Internal, "storage failed")
    };
    let store = &shared.store;
    let (messages, older, newer) = match range {
        Range::Before(before) => {
            let (messages, more) = store.history(conv, before, limit).await.map_err(failed)?;
            (messages, more, None)
        }
        Range::After(after) => {
            let (messages, more) = store
                .history_after(conv, after, limit)
                .await
                .map_err(failed)?;
            (messages, false, Some(more))
        }
        Range::AroundTs(ts) => {
            let Around {
                messages,
                older,
                newer,
            } = store
                .history_around(conv, ts, limit)
                .await
                .map_err(failed)?;
            (messages, older, Some(newer))
        }
    };
    let next_before = if older {
        messages.first().map(|m| m.seq)
    } else {
        None
    };
    let next_after = if newer == Some(true) {
        messages.last().map(|m| m.seq)
    } else {
        None
    };
    Ok(Answer {
        page: HistoryPage {
            messages,
            next_before,
        },
        next_after,
    })
}
