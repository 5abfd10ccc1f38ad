//! Fan-out from shared storage (PostgreSQL mode): this instance's streams get every committed
//! message — its own and other instances' — by reading the store in `seq` order and publishing
//! to the [`crate::hub`]. The store makes sequence numbers visible in commit order (see
//! [`crate::store::WriteTx::next_seq`]), so reading "everything after the last published seq"
//! never skips one.
//!
//! It wakes when this instance's writer commits and otherwise every `poll` (other instances'
//! messages); after a storage outage it simply resumes from the last published seq.

use crate::hub::{Hub, Live};
use crate::store::Store;
use lifeline_core::protocol::Seq;
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
    /// Starts the tail task from the store's current head; it ends when the store is dropped.
    pub fn spawn(store: &Arc<Store>, hub: &Arc<Hub>, poll: Duration) -> Arc<Tail> {
        let tail = Arc::new(Tail::default());
        tokio::spawn(run(
            Arc::downgrade(store),
            Arc::downgrade(hub),
            Arc::clone(&tail),
            store.head(),
            poll,
        ));
        tail
    }

    /// New messages were committed here: read them now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

async fn run(
    store: Weak<Store>,
    hub: Weak<Hub>,
    tail: Arc<Tail>,
    mut published: Seq,
    poll: Duration,
) {
    loop {
        tokio::select! {
            _ = tail.wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
        let (Some(store), Some(hub)) = (store.upgrade(), hub.upgrade()) else {
            return;
        };
        loop {
            match store.messages_after(published, PAGE).await {
                Ok(page) if page.is_empty() => break,
                Ok(page) => {
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
