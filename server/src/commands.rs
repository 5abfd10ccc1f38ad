//! What a client frame does, whichever transport it came in on (WebSocket or `/v1/send`):
//! check what the user's token and the application's grants allow ([`crate::access`]),
//! rate-limit and queue sends, rate-limit joins and leaves, coalesce and fan out typing, ping.
//!
//! Decoding the frame and writing the answer belong to the transport; durability belongs to the
//! writer.

use crate::access::{Access, Op};
use crate::errors::frame_error;
use crate::limits::ceil_ms;
use crate::state::Shared;
use crate::writer::WriteOp;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use lifeline_core::protocol::{ClientFrame, ErrorCode, ServerFrame};
use std::sync::Arc;

/// Which transport a frame came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    WebSocket,
    Http,
}

/// The outcome of one client frame.
pub enum Handled {
    /// Answer at once.
    Reply(ServerFrame),
    /// Answer once this resolves (after the write is durable); `None`: no answer after all.
    Later(BoxFuture<'static, Option<ServerFrame>>),
    /// No answer.
    Nothing,
}

fn internal(id: Option<String>, conv: Option<String>) -> ServerFrame {
    frame_error(ErrorCode::Internal, "the write was lost", id, conv, None)
}

fn membership_rate_limited(conv: String, wait: std::time::Duration) -> ServerFrame {
    frame_error(
        ErrorCode::RateLimited,
        "too many subscribe/unsubscribe frames; retry later",
        None,
        Some(conv),
        Some(ceil_ms(wait)),
    )
}

fn forbidden(what: &str, id: Option<String>, conv: String) -> Handled {
    Handled::Reply(frame_error(
        ErrorCode::Forbidden,
        what,
        id,
        Some(conv),
        None,
    ))
}

/// Handles one decoded, valid client frame from the holder of `access`.
pub async fn handle(
    shared: &Arc<Shared>,
    access: &Access,
    frame: ClientFrame,
    via: Via,
) -> Handled {
    let user = access.user.as_str();
    match frame {
        ClientFrame::Send { id, conv, .. }
            if !(access.may(Op::Send) && access.may_join(&shared.grants, &conv)) =>
        {
            forbidden("not allowed to send in this conversation", Some(id), conv)
        }
        ClientFrame::Typing { conv }
            if !(access.may(Op::Typing) && access.may_join(&shared.grants, &conv)) =>
        {
            forbidden("not allowed to type in this conversation", None, conv)
        }
        ClientFrame::Send { id, conv, body } => {
            if let Err(wait) = shared.limits.check_send(user, &id).await {
                return Handled::Reply(frame_error(
                    ErrorCode::RateLimited,
                    "too many messages; retry later",
                    Some(id),
                    None,
                    Some(ceil_ms(wait)),
                ));
            }
            let (eid, econv) = (id.clone(), conv.clone());
            let rx = shared
                .writer
                .submit(WriteOp::Send {
                    user: user.to_string(),
                    id,
                    conv,
                    body,
                })
                .await;
            Handled::Later(
                async move {
                    rx.await
                        .unwrap_or_else(|_| Some(internal(Some(eid), Some(econv))))
                }
                .boxed(),
            )
        }
        ClientFrame::Subscribe { conv } => {
            if let Err(wait) = shared.limits.check_membership(user).await {
                return Handled::Reply(membership_rate_limited(conv, wait));
            }
            let rx = shared
                .writer
                .submit(WriteOp::Join {
                    user: user.to_string(),
                    conv: conv.clone(),
                    by_token: access.token_allows(&conv),
                    max_memberships: shared.config.max_memberships_per_user,
                })
                .await;
            let shared = Arc::clone(shared);
            let user = user.to_string();
            Handled::Later(
                async move {
                    let answer = rx
                        .await
                        .unwrap_or_else(|_| Some(internal(None, Some(conv.clone()))));
                    if matches!(answer, Some(ServerFrame::Subscribed { .. })) {
                        shared.hub.announce_join(&user, &conv);
                    }
                    answer
                }
                .boxed(),
            )
        }
        ClientFrame::Unsubscribe { conv } => {
            if let Err(wait) = shared.limits.check_membership(user).await {
                return Handled::Reply(membership_rate_limited(conv, wait));
            }
            let rx = shared
                .writer
                .submit(WriteOp::Leave {
                    user: user.to_string(),
                    conv: conv.clone(),
                })
                .await;
            Handled::Later(
                async move {
                    rx.await
                        .unwrap_or_else(|_| Some(internal(None, Some(conv))))
                }
                .boxed(),
            )
        }
        ClientFrame::Typing { conv } => {
            if !shared.limits.allow_typing(user, &conv).await {
                // Coalesced: the others heard this user type here less than an interval ago.
                return Handled::Nothing;
            }
            // Through the writer, so it is ordered after this user's earlier joins and leaves.
            let rx = shared
                .writer
                .submit(WriteOp::Typing {
                    user: user.to_string(),
                    conv: conv.clone(),
                })
                .await;
            Handled::Later(async move { rx.await.unwrap_or(None) }.boxed())
        }
        ClientFrame::Ping { t } => {
            if via == Via::WebSocket && !shared.faults.get().stop_heartbeats {
                Handled::Reply(ServerFrame::Pong { t })
            } else {
                Handled::Nothing
            }
        }
    }
}
