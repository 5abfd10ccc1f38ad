//! Fan-out from shared storage (PostgreSQL mode): this instance's streams get every committed
//! message — its own and other instances' — in `seq` order, published to the [`crate::hub`].
//! The store makes sequence numbers visible in commit order (see
//! [`crate::store::WriteTx::next_seq`]), so reading "everything after the last published seq"
//! never skips one.
//!
//! Messages arrive carried (this instance's writer hands over what it committed; in cluster mode
//! the Redis bus brings the other instances', see [`crate::cluster`]) or are read from the store.
//! A carried message is published only if its seq is the last published + 1; any other gap is
//! filled from the store first, so ordering never skips, and a seq at or below the last
//! published is dropped, so nothing is duplicated.
//!
//! It also applies the membership changes other instances logged (joins, leaves, the admin API's
//! grants and revokes) to this instance's caches, which every stream filters by: a revoke
//! through one instance cuts the user's streams on all of them within one `poll`. The log is
//! read before each batch of messages is published (after the messages were committed), so no
//! message overtakes the join, leave or revoke stored before it.
//!
//! It wakes when messages are carried to it and otherwise every `poll` (other instances'
//! messages), or every [`BUS_SAFETY_POLL`] while the cluster bus is live; after a storage or bus
//! outage it simply resumes from the last published seq.

use crate::hub::{Hub, Live};
use crate::members::Members;
use crate::store::{Change, RemoteChange, Store};
use lifeline_core::protocol::{ErrorCode, ErrorFrame, Message, Seq, ServerFrame};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// Messages read per storage round trip.
const PAGE: usize = 256;

/// Carried messages waiting for the tail; beyond it the oldest are dropped (the store fills the
/// gap they leave).
const MAX_CARRIED: usize = 8_192;

/// While the cluster bus is live, how often the store is read anyway: it catches the messages of
/// an instance that could not put them on the bus (its Redis link down).
pub const BUS_SAFETY_POLL: Duration = Duration::from_secs(1);

/// Where the messages and membership changes this instance committed go for the other instances
/// (cluster mode). Calls must not block: they run on the writer thread.
pub trait Forward: Send + Sync {
    /// Messages this instance committed, in seq order.
    fn messages(&self, stored: &[Message]);
    /// This instance logged membership changes.
    fn changes(&self);
}

/// The tail's inputs: wake-ups, carried messages, and whether the cluster bus is live.
#[derive(Default)]
pub struct Tail {
    wake: Notify,
    carried: Mutex<VecDeque<Message>>,
    bus_live: AtomicBool,
    forward: OnceLock<Arc<dyn Forward>>,
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

    /// New messages or membership changes may be in the store: read them now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Sends what this instance commits to the other instances from now on.
    pub fn set_forward(&self, forward: Arc<dyn Forward>) {
        let _ = self.forward.set(forward);
    }

    /// Whether the cluster bus delivers (the store is then read only every
    /// [`BUS_SAFETY_POLL`]).
    pub fn set_bus_live(&self, live: bool) {
        self.bus_live.store(live, Ordering::Relaxed);
    }

    /// This instance's writer committed `stored` (in seq order) and, if `changed`, membership
    /// changes.
    pub fn committed(&self, stored: Vec<Message>, changed: bool) {
        if let Some(forward) = self.forward.get() {
            if !stored.is_empty() {
                forward.messages(&stored);
            }
            if changed {
                forward.changes();
            }
        }
        if !stored.is_empty() {
            self.carry(stored);
        }
    }

    /// Committed messages (from this instance or the bus) to publish, checked for contiguity.
    pub fn carry(&self, messages: Vec<Message>) {
        {
            let mut carried = self.carried.lock().unwrap_or_else(|p| p.into_inner());
            carried.extend(messages);
            while carried.len() > MAX_CARRIED {
                carried.pop_front();
            }
        }
        self.wake();
    }

    fn take_carried(&self) -> Vec<Message> {
        let mut carried = self.carried.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<Message> = carried.drain(..).collect();
        all.sort_by_key(|m| m.seq);
        all
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
        let interval = if tail.bus_live.load(Ordering::Relaxed) {
            BUS_SAFETY_POLL.max(poll)
        } else {
            poll
        };
        let mut timed_out = false;
        tokio::select! {
            _ = tail.wake.notified() => {}
            _ = tokio::time::sleep(interval) => timed_out = true,
        }
        let (Some(store), Some(hub)) = (store.upgrade(), caches.hub.upgrade()) else {
            return;
        };
        // Membership first: a message stored after a join must find the joiner in the cache.
        // Carried messages were committed before this read, so it sees every change logged
        // before them.
        let carried = tail.take_carried();
        apply_changes(&store, &caches, &hub, &mut changes_seen).await;
        let mut gap = timed_out;
        for m in carried {
            if m.seq <= published {
                continue;
            }
            if m.seq != published + 1 {
                // Another instance's message (or one the bus lost) comes before it: the store
                // has it, since seqs become visible in commit order.
                gap = true;
                break;
            }
            published = m.seq;
            store.set_head(m.seq);
            hub.publish(Live::Msg(m));
        }
        if !gap && tail.bus_live.load(Ordering::Relaxed) {
            continue;
        }
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
