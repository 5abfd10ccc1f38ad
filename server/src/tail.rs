//! Fan-out from shared storage (PostgreSQL mode): this instance's streams get every committed
//! message — its own and other instances' — by reading the store in `seq` order and publishing
//! to the [`crate::hub`]. The store makes sequence numbers visible in commit order (see
//! [`crate::store::WriteTx::next_seq`]), so reading "everything after the last published seq"
//! never skips one.
//!
//! It also applies the membership changes other instances logged (joins, leaves, the admin API's
//! grants and revokes) to this instance's caches, which every stream filters by: a revoke
//! through one instance cuts the user's streams on all of them within one `poll`.
//!
//! It wakes when this instance's writer commits and otherwise every `poll` (other instances'
//! messages); after a storage outage it simply resumes from the last published seq.

use crate::hub::{Hub, Live};
use crate::members::Members;
use crate::store::{Change, RemoteChange, Store};
use lifeline_core::protocol::{ErrorCode, ErrorFrame, Seq, ServerFrame};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// Messages read per storage round trip.
const PAGE: usize = 256;

/// The tail's wake-up: the writer pokes it after each commit that stored messages.
#[derive(Default)]
pub struct Tail {
    wake: Notify,
}

impl Tail {
    /// Starts the tail task from the store's current head and change log position (read
    /// before the caches were loaded); it ends when the store is dropped.
    pub fn spawn(
        store: &Arc<Store>,
        hub: &Arc<Hub>,
        (members, grants): (&Arc<Members>, &Arc<Members>),
        changes_seen: u64,
        poll: Duration,
    ) -> Arc<Tail> {
        let tail = Arc::new(Tail::default());
        let caches = Caches {
            hub: Arc::downgrade(hub),
            members: Arc::clone(members),
            grants: Arc::clone(grants),
        };
        tokio::spawn(run(
            Arc::downgrade(store),
            caches,
            Arc::clone(&tail),
            (store.head(), changes_seen),
            poll,
        ));
        tail
    }

    /// New messages were committed here: read them now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// What the tail updates besides the fan-out.
struct Caches {
    hub: Weak<Hub>,
    members: Arc<Members>,
    grants: Arc<Members>,
}

impl Caches {
    fn apply(&self, hub: &Hub, (_, change, user, conv): RemoteChange) {
        match change {
            Change::Join => {
                self.members.join(&user, &conv);
                hub.announce_join(&user, &conv);
            }
            Change::Leave => self.members.leave(&user, &conv),
            Change::Grant => self.grants.join(&user, &conv),
            Change::Revoke => {
                self.grants.leave(&user, &conv);
                self.members.leave(&user, &conv);
                hub.publish(Live::Direct {
                    frame: ServerFrame::Error(ErrorFrame {
                        code: ErrorCode::Forbidden,
                        message: "membership revoked".to_string(),
                        id: None,
                        conv: Some(conv),
                        retry_after_ms: None,
                    }),
                    to: user,
                });
            }
        }
    }
}

async fn run(
    store: Weak<Store>,
    caches: Caches,
    tail: Arc<Tail>,
    (mut published, mut changes_seen): (Seq, u64),
    poll: Duration,
) {
    loop {
        tokio::select! {
            _ = tail.wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
        let (Some(store), Some(hub)) = (store.upgrade(), caches.hub.upgrade()) else {
            return;
        };
        // Membership first: a message stored after a join must find the joiner in the cache.
        apply_changes(&store, &caches, &hub, &mut changes_seen).await;
        loop {
            match store.messages_after(published, PAGE).await {
                Ok(page) if page.is_empty() => break,
                Ok(page) => {
                    // A change committed before one of these messages may have been committed
                    // after the read above: read the log again, now that the messages are read,
                    // so that no message overtakes the join, leave or revoke stored before it
                    // (nor the join's presence announcement).
                    apply_changes(&store, &caches, &hub, &mut changes_seen).await;
                    for m in page {
                        published = m.seq;
                        store.set_head(m.seq);
                        hub.publish(Live::Msg(m));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, after = published, "reading new messages failed; retrying");
                    break;
                }
            }
        }
    }
}

/// Applies every membership change logged after `changes_seen` to the caches (and announces
/// joins, tells revoked users), then moves `changes_seen` past them.
async fn apply_changes(store: &Arc<Store>, caches: &Caches, hub: &Hub, changes_seen: &mut u64) {
    loop {
        match store.changes_after(*changes_seen, PAGE).await {
            Ok(page) if page.gap => {
                // Part of the log was pruned before this instance read it: start over from
                // the tables (streams of a user revoked meanwhile stop carrying the
                // conversation, without the `forbidden` frame).
                tracing::warn!(after = *changes_seen, "membership log pruned; reloading");
                match store.memberships().await {
                    Ok((members, grants)) => {
                        caches.members.replace(members);
                        caches.grants.replace(grants);
                        *changes_seen = page.seen;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reloading memberships failed");
                        return;
                    }
                }
            }
            Ok(page) => {
                for change in page.changes {
                    caches.apply(hub, change);
                }
                let done = page.seen == *changes_seen;
                *changes_seen = page.seen;
                if done {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading membership changes failed; retrying");
                return;
            }
        }
    }
}
