//! The single writer: one thread that owns every write of this instance to storage, takes
//! sequence numbers inside the committing transaction (see [`crate::store::WriteTx::next_seq`]),
//! and commits pending requests in groups (group commit) before answering them.
//!
//! Answers (`ack`, `subscribed`, …) are sent only after the transaction is durable; committed
//! messages are then published to the [`crate::hub`] in sequence order. Rate limits, frame
//! validation and presence are not decided here.

use crate::hub::{Hub, Live};
use crate::members::Members;
use crate::store::{Change, Prior, Store, StoreError, WriteTx};
use crate::tail::Tail;
use lifeline_core::protocol::{ErrorCode, ErrorFrame, Message, Seq, ServerFrame};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// The most requests one transaction commits.
const MAX_GROUP: usize = 512;

/// A write to perform.
#[derive(Debug, Clone)]
pub enum WriteOp {
    Send {
        user: String,
        id: String,
        conv: String,
        body: String,
    },
    /// Join `conv`; allowed when `by_token` (the user's token grants it, checked by the caller)
    /// or when the application granted it (admin API), checked here in write order. An allowed
    /// join is still refused with `forbidden` when `user` is already a member of
    /// `max_memberships` conversations (a join of a conversation the user is in always succeeds).
    Join {
        user: String,
        conv: String,
        by_token: bool,
        max_memberships: usize,
    },
    /// Admin API: the application lets `user` join `conv`. Answered `None`.
    Grant {
        user: String,
        conv: String,
    },
    /// Admin API: the application removes `user` from `conv` (grant and membership); the user's
    /// streams get a `forbidden` error frame for `conv` at once. Answered `None`.
    Revoke {
        user: String,
        conv: String,
    },
    Leave {
        user: String,
        conv: String,
    },
    /// Not a write: a typing notice, ordered after the user's earlier joins and leaves and
    /// checked against membership at that point; published once the group commits.
    Typing {
        user: String,
        conv: String,
    },
}

/// The answer to a [`WriteOp`]: `None` for a typing notice that was published.
pub type Answer = Option<ServerFrame>;

enum Request {
    Op(WriteOp, oneshot::Sender<Answer>),
    Close(oneshot::Sender<()>),
}

/// A handle to submit writes to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Request>,
}

fn error(code: ErrorCode, message: &str, id: Option<&str>, conv: Option<&str>) -> ServerFrame {
    ServerFrame::Error(ErrorFrame {
        code,
        message: message.to_string(),
        id: id.map(str::to_string),
        conv: conv.map(str::to_string),
        retry_after_ms: None,
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Writer {
    /// Starts the writer thread.
    pub fn spawn(
        store: Arc<Store>,
        members: Arc<Members>,
        grants: Arc<Members>,
        hub: Arc<Hub>,
        tail: Option<Arc<Tail>>,
        hold: std::time::Duration,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(8192);
        std::thread::Builder::new()
            .name("lifeline-writer".into())
            .spawn(move || run(store, members, grants, (hub, tail), hold, rx))
            .expect("spawning the writer thread");
        Writer { tx }
    }

    /// Queues `op`; the returned receiver gets the answer once it is durable (or an `error`).
    /// Requests are applied in the order they are submitted.
    pub async fn submit(&self, op: WriteOp) -> oneshot::Receiver<Answer> {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(Request::Op(op, reply))) =
            self.tx.send(Request::Op(op, reply)).await
        {
            let _ = reply.send(closed_error(&op));
        }
        rx
    }

    /// Commits everything queued so far, checkpoints the database and stops the thread.
    pub async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Request::Close(done)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

fn op_ids(op: &WriteOp) -> (Option<&str>, Option<&str>) {
    match op {
        WriteOp::Send { id, conv, .. } => (Some(id.as_str()), Some(conv.as_str())),
        WriteOp::Join { conv, .. }
        | WriteOp::Leave { conv, .. }
        | WriteOp::Typing { conv, .. }
        | WriteOp::Grant { conv, .. }
        | WriteOp::Revoke { conv, .. } => (None, Some(conv.as_str())),
    }
}

fn closed_error(op: &WriteOp) -> Answer {
    let (id, conv) = op_ids(op);
    let mut f = error(ErrorCode::GoingAway, "server is shutting down", id, conv);
    if let ServerFrame::Error(e) = &mut f {
        e.retry_after_ms = Some(2_000);
    }
    Some(f)
}

enum Effect {
    Msg(Message),
    Typing(String, String),
    Join(String, String),
    Leave(String, String),
    Grant(String, String),
    Revoke(String, String),
}

fn run(
    store: Arc<Store>,
    members: Arc<Members>,
    grants: Arc<Members>,
    (hub, tail): (Arc<Hub>, Option<Arc<Tail>>),
    hold: std::time::Duration,
    mut rx: mpsc::Receiver<Request>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = Vec::new();
        let mut close = None;
        match first {
            Request::Op(op, reply) => batch.push((op, reply)),
            Request::Close(done) => close = Some(done),
        }
        while close.is_none() && batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(Request::Op(op, reply)) => batch.push((op, reply)),
                Ok(Request::Close(done)) => close = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            commit_group(
                &store,
                (&members, &grants),
                (&hub, tail.as_deref()),
                hold,
                batch,
            );
        }
        if let Some(done) = close {
            rx.close();
            // Anything that raced in behind the close is refused.
            while let Ok(req) = rx.try_recv() {
                if let Request::Op(op, reply) = req {
                    let _ = reply.send(closed_error(&op));
                }
            }
            if let Err(e) = store.checkpoint() {
                tracing::warn!(error = %e, "WAL checkpoint at shutdown failed");
            }
            let _ = done.send(());
            return;
        }
    }
}

fn commit_group(
    store: &Store,
    (members, grants): (&Members, &Members),
    (hub, tail): (&Hub, Option<&Tail>),
    hold: std::time::Duration,
    batch: Vec<(WriteOp, oneshot::Sender<Answer>)>,
) {
    let mut answers = Vec::with_capacity(batch.len());
    let mut effects = Vec::new();
    let mut last_seq: Seq = 0;
    let mut body = |t: &mut dyn WriteTx| -> Result<(), StoreError> {
        // A failed attempt leaves nothing behind.
        answers.clear();
        effects.clear();
        let ts = now_ms();
        for (op, _) in &batch {
            match op {
                WriteOp::Send {
                    user,
                    id,
                    conv,
                    body,
                } => {
                    if let Some(prior) = t.prior(user, id, conv, body)? {
                        // A retransmission is acknowledged again; another message under the same
                        // id is refused, never acknowledged with the stored message's seq.
                        answers.push(Some(match prior {
                            Prior::Same(seq) => ServerFrame::Ack {
                                id: id.clone(),
                                seq,
                            },
                            Prior::Different => error(
                                ErrorCode::IdReused,
                                "this id was already used for another message; send it under a new id",
                                Some(id),
                                Some(conv),
                            ),
                        }));
                    } else if !t.is_member(user, conv)? {
                        answers.push(Some(error(
                            ErrorCode::Forbidden,
                            "not a member of this conversation",
                            Some(id),
                            Some(conv),
                        )));
                    } else {
                        let (seq, ts) = t.next_seq_at(ts)?;
                        let m = Message {
                            seq,
                            conv: conv.clone(),
                            from: user.clone(),
                            id: id.clone(),
                            body: body.clone(),
                            ts,
                        };
                        last_seq = m.seq;
                        t.insert(&m)?;
                        answers.push(Some(ServerFrame::Ack {
                            id: id.clone(),
                            seq: m.seq,
                        }));
                        effects.push(Effect::Msg(m));
                    }
                }
                WriteOp::Join {
                    user,
                    conv,
                    by_token,
                    max_memberships,
                } => {
                    if !(*by_token || t.is_granted(user, conv)?) {
                        answers.push(Some(error(
                            ErrorCode::Forbidden,
                            "not allowed to join this conversation",
                            None,
                            Some(conv),
                        )));
                        continue;
                    }
                    if t.is_member(user, conv)? {
                        // A re-subscribe (every client sends one per conversation when it
                        // reconnects): nothing to store and no change to log, so it takes no
                        // lock that a message's sequence number needs. The cache still learns it
                        // (the join may have come through another instance and not reached this
                        // one's cache yet).
                        answers.push(Some(ServerFrame::Subscribed { conv: conv.clone() }));
                        effects.push(Effect::Join(user.clone(), conv.clone()));
                        continue;
                    }
                    if t.membership_count(user)? >= *max_memberships {
                        answers.push(Some(error(
                            ErrorCode::Forbidden,
                            "membership limit reached; unsubscribe from a conversation first",
                            None,
                            Some(conv),
                        )));
                        continue;
                    }
                    t.join(user, conv)?;
                    t.log_change(Change::Join, user, conv)?;
                    answers.push(Some(ServerFrame::Subscribed { conv: conv.clone() }));
                    effects.push(Effect::Join(user.clone(), conv.clone()));
                }
                WriteOp::Grant { user, conv } => {
                    t.grant(user, conv)?;
                    t.log_change(Change::Grant, user, conv)?;
                    answers.push(None);
                    effects.push(Effect::Grant(user.clone(), conv.clone()));
                }
                WriteOp::Revoke { user, conv } => {
                    t.revoke(user, conv)?;
                    t.leave(user, conv)?;
                    t.log_change(Change::Revoke, user, conv)?;
                    answers.push(None);
                    effects.push(Effect::Revoke(user.clone(), conv.clone()));
                }
                WriteOp::Leave { user, conv } => {
                    t.leave(user, conv)?;
                    t.log_change(Change::Leave, user, conv)?;
                    answers.push(Some(ServerFrame::Unsubscribed { conv: conv.clone() }));
                    effects.push(Effect::Leave(user.clone(), conv.clone()));
                }
                WriteOp::Typing { user, conv } => {
                    if t.is_member(user, conv)? {
                        answers.push(None);
                        effects.push(Effect::Typing(user.clone(), conv.clone()));
                    } else {
                        answers.push(Some(error(
                            ErrorCode::Forbidden,
                            "not a member of this conversation",
                            None,
                            Some(conv),
                        )));
                    }
                }
            }
        }
        Ok(())
    };
    let result = store.write(&mut body, hold);
    match result {
        Ok(()) => {
            store.set_head(last_seq);
            let mut stored = Vec::new();
            let mut changed = false;
            for effect in effects {
                changed |= matches!(
                    effect,
                    Effect::Join(..) | Effect::Leave(..) | Effect::Grant(..) | Effect::Revoke(..)
                );
                match effect {
                    // With shared storage the tail publishes every instance's messages in seq
                    // order; publishing ours here could overtake another instance's.
                    Effect::Msg(m) => match tail {
                        Some(_) => stored.push(m),
                        None => hub.publish(Live::Msg(m)),
                    },
                    Effect::Join(u, c) => members.join(&u, &c),
                    Effect::Leave(u, c) => members.leave(&u, &c),
                    Effect::Grant(u, c) => grants.join(&u, &c),
                    Effect::Revoke(u, c) => {
                        grants.leave(&u, &c);
                        members.leave(&u, &c);
                        // After the caches changed: from here on no stream of `u` passes a frame
                        // of `c`, and the client learns why.
                        hub.publish(Live::Direct {
                            frame: error(
                                ErrorCode::Forbidden,
                                "membership revoked",
                                None,
                                Some(&c),
                            ),
                            to: u,
                        });
                    }
                    Effect::Typing(user, conv) => hub.typing(conv, user),
                }
            }
            if let Some(tail) = tail {
                tail.committed(stored, changed);
            }
            for ((_, reply), answer) in batch.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "group commit failed; answering internal");
            if let Ok(head) = store.stored_head() {
                store.set_head(head);
            }
            for (op, reply) in batch {
                let (id, conv) = op_ids(&op);
                let _ = reply.send(Some(error(ErrorCode::Internal, "storage failed", id, conv)));
            }
        }
    }
}
