//! Storage: one interface ([`Backend`] for reads, [`WriteTx`] for the writer's transaction) and
//! its two implementations, embedded SQLite ([`sqlite`], the default: no other service needed)
//! and PostgreSQL ([`postgres`], `--postgres URL`: several instances on one database).
//!
//! [`Store`] is what the rest of the server holds: it runs reads on the blocking pool (bounded by
//! a semaphore), keeps the newest committed sequence number and hands the single writer
//! ([`crate::writer`]) a transaction. No query here decides who may read what: membership checks
//! live in the callers.

pub mod postgres;
pub mod sqlite;

use lifeline_core::protocol::{Message, Seq};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A storage failure. Its text never holds a connection string or a password.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// What an earlier `send` under the same (sender, client id) decides for a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    /// The same conversation and body were stored under this seq: acknowledge it again.
    Same(Seq),
    /// Another message was stored under this id: refuse with `id_reused`.
    Different,
}

/// Where a history page ends (exclusive): before a sequence number or before a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    /// Messages with `seq` below this (`u64::MAX`: the newest).
    Seq(Seq),
    /// Messages with `ts` (milliseconds since the Unix epoch) below this.
    Ts(u64),
}

/// A history page around a moment (`around_ts`): the messages just before the first message
/// stored at or after it and those from it on, one contiguous run in `seq` order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Around {
    /// In increasing `seq` order.
    pub messages: Vec<Message>,
    /// Older messages exist (before the first on the page).
    pub older: bool,
    /// Newer messages exist (after the last on the page).
    pub newer: bool,
}

/// A change of who may read a conversation, as other instances must learn it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Join,
    Leave,
    Grant,
    /// Grant and membership removed.
    Revoke,
}

impl Change {
    /// The name stored for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Join => "join",
            Change::Leave => "leave",
            Change::Grant => "grant",
            Change::Revoke => "revoke",
        }
    }

    /// The change a stored name stands for.
    pub fn parse(s: &str) -> Option<Change> {
        [Change::Join, Change::Leave, Change::Grant, Change::Revoke]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// A membership change another instance made: `(id, change, user, conversation)`.
pub type RemoteChange = (u64, Change, String, String);

/// A page of the membership change log.
#[derive(Debug, Default)]
pub struct ChangesPage {
    /// Other instances' changes, in id order.
    pub changes: Vec<RemoteChange>,
    /// The highest id looked at (own changes included).
    pub seen: u64,
    /// Changes right after the requested id were pruned already: the caches must be reloaded.
    pub gap: bool,
}

/// The queries the single writer runs inside one transaction.
pub trait WriteTx {
    /// What an earlier message of `sender` under `client_id` decides (see [`Prior`]).
    fn prior(
        &mut self,
        sender: &str,
        client_id: &str,
        conv: &str,
        body: &str,
    ) -> Result<Option<Prior>, StoreError>;
    /// The next sequence number. Taken under a lock held until this transaction ends, so numbers
    /// become visible to readers in increasing order (no reader sees 11 before 10 commits).
    fn next_seq(&mut self) -> Result<Seq, StoreError>;
    /// The next sequence number and the `ts` to store with it, given the writer's clock
    /// `local_ms`. Backends keep `ts` non-decreasing in `seq` order (PostgreSQL takes it from
    /// the database's clock, so instances' clocks do not matter).
    fn next_seq_at(&mut self, local_ms: u64) -> Result<(Seq, u64), StoreError> {
        Ok((self.next_seq()?, local_ms))
    }
    /// Stores a message (and its idempotency key).
    fn insert(&mut self, m: &Message) -> Result<(), StoreError>;
    fn is_member(&mut self, user: &str, conv: &str) -> Result<bool, StoreError>;
    /// How many conversations `user` is a member of.
    fn membership_count(&mut self, user: &str) -> Result<usize, StoreError>;
    fn join(&mut self, user: &str, conv: &str) -> Result<(), StoreError>;
    fn leave(&mut self, user: &str, conv: &str) -> Result<(), StoreError>;
    fn grant(&mut self, user: &str, conv: &str) -> Result<(), StoreError>;
    fn revoke(&mut self, user: &str, conv: &str) -> Result<(), StoreError>;
    fn is_granted(&mut self, user: &str, conv: &str) -> Result<bool, StoreError>;
    /// Logs a membership change for the other instances sharing this store (in commit order);
    /// a store only one instance uses logs nothing.
    fn log_change(&mut self, _change: Change, _user: &str, _conv: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Every (user, conversation) membership and every grant.
pub type MembershipPairs = (Vec<(String, String)>, Vec<(String, String)>);

/// The body of one write transaction: commits when it returns `Ok`, rolls back otherwise.
pub type TxBody<'a> = dyn FnMut(&mut dyn WriteTx) -> Result<(), StoreError> + 'a;

/// One storage engine. Every method blocks: [`Store`] calls them on the blocking pool or from
/// the writer thread.
pub trait Backend: Send + Sync {
    /// The highest committed sequence number.
    fn max_seq(&self) -> Result<Seq, StoreError>;
    /// Messages of the conversations `user` is a member of with `seq > after`, increasing, at
    /// most `limit` and about `max_bytes` of text (at least one message).
    fn replay(
        &self,
        user: &str,
        after: Seq,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Message>, StoreError>;
    /// The newest `limit` messages of `conv` before `before`, in increasing `seq` order, and
    /// whether older ones exist.
    fn history(
        &self,
        conv: &str,
        before: Before,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), StoreError>;
    /// The oldest `limit` messages of `conv` with `seq > after`, in increasing `seq` order, and
    /// whether newer ones exist.
    fn history_after(
        &self,
        conv: &str,
        after: Seq,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), StoreError>;
    /// The `seq` of the first message of `conv` (by `ts`, then `seq`) stored at or after `ts`
    /// (read through the (conv, ts) index).
    fn first_at(&self, conv: &str, ts: u64) -> Result<Option<Seq>, StoreError>;
    /// Every conversation's messages with `seq > after`, increasing, at most `limit`.
    fn messages_after(&self, after: Seq, limit: usize) -> Result<Vec<Message>, StoreError>;
    /// The id of the newest logged membership change (0: none, or no log).
    fn changes_head(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
    /// Membership changes logged with an id above `after`, at most `limit` (see
    /// [`ChangesPage`]).
    fn changes_after(&self, after: u64, _limit: usize) -> Result<ChangesPage, StoreError> {
        Ok(ChangesPage {
            seen: after,
            ..ChangesPage::default()
        })
    }
    /// Every (user, conversation) membership.
    fn all_members(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// Every (user, conversation) grant of the admin API.
    fn all_grants(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// Runs `body` in one transaction; commits after waiting `hold` (tests inject commit delays
    /// with it; zero otherwise).
    fn write(&self, body: &mut TxBody<'_>, hold: std::time::Duration) -> Result<(), StoreError>;
    /// Periodic upkeep at `now_ms` (PostgreSQL: create the upcoming partitions).
    fn maintain(&self, _now_ms: u64) -> Result<(), StoreError> {
        Ok(())
    }
    /// Flushes what the engine buffers (at shutdown).
    fn checkpoint(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The storage the server holds: a backend, the newest committed seq and the read bound.
pub struct Store {
    backend: Box<dyn Backend>,
    head: AtomicU64,
    /// Reads running at once: many streams opening together (a reconnect storm, stalled readers)
    /// queue here instead of each taking a blocking thread (and its allocator arena). A permit
    /// is held by the blocking read itself, so a caller that stops waiting does not free it
    /// while the query still runs.
    reads: Arc<tokio::sync::Semaphore>,
}

/// Storage reads running at once.
const CONCURRENT_READS: usize = 8;

impl Store {
    /// Wraps an opened backend (blocking: reads the newest seq).
    pub fn new(backend: Box<dyn Backend>) -> Result<Store, StoreError> {
        let head = backend.max_seq()?;
        Ok(Store {
            backend,
            head: AtomicU64::new(head),
            reads: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_READS)),
        })
    }

    /// The highest sequence number committed so far.
    pub fn head(&self) -> Seq {
        self.head.load(Ordering::SeqCst)
    }

    /// Records that everything up to `seq` is committed (called by the writer after a commit).
    pub(crate) fn set_head(&self, seq: Seq) {
        self.head.fetch_max(seq, Ordering::SeqCst);
    }

    /// Runs a blocking read on the blocking pool.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&dyn Backend) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = Arc::clone(&self.reads)
            .acquire_owned()
            .await
            .map_err(|_| StoreError("storage reads closed".into()))?;
        let store = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(store.backend.as_ref())
        })
        .await
        .map_err(|e| StoreError(format!("read task failed: {e}")))?
    }

    /// See [`Backend::replay`].
    pub async fn replay(
        self: &Arc<Self>,
        user: &str,
        after: Seq,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let user = user.to_string();
        self.read(move |b| b.replay(&user, after, limit, max_bytes))
            .await
    }

    /// See [`Backend::history`].
    pub async fn history(
        self: &Arc<Self>,
        conv: &str,
        before: Before,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        let conv = conv.to_string();
        self.read(move |b| b.history(&conv, before, limit)).await
    }

    /// See [`Backend::history_after`].
    pub async fn history_after(
        self: &Arc<Self>,
        conv: &str,
        after: Seq,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        let conv = conv.to_string();
        self.read(move |b| b.history_after(&conv, after, limit))
            .await
    }

    /// At most `limit` messages of `conv` around the moment `ts`: the first message stored at or
    /// after `ts` is the pivot; up to half the page (more when fewer newer ones exist) are the
    /// messages right before it, the rest the pivot and those after it. Without a pivot (every
    /// message is older), the newest `limit`.
    pub async fn history_around(
        self: &Arc<Self>,
        conv: &str,
        ts: u64,
        limit: usize,
    ) -> Result<Around, StoreError> {
        let conv = conv.to_string();
        self.read(move |b| {
            let pivot = b.first_at(&conv, ts)?;
            let (mut older, more_older) =
                b.history(&conv, Before::Seq(pivot.unwrap_or(u64::MAX)), limit)?;
            let (newer, more_newer) = match pivot {
                Some(p) => b.history_after(&conv, p.saturating_sub(1), limit)?,
                None => (Vec::new(), false),
            };
            let take_newer = newer.len().min(limit - older.len().min(limit / 2));
            let take_older = older.len().min(limit - take_newer);
            let older_dropped = older.len() - take_older;
            older.drain(..older_dropped);
            let newer_dropped = newer.len() > take_newer;
            older.extend(newer.into_iter().take(take_newer));
            Ok(Around {
                messages: older,
                older: more_older || older_dropped > 0,
                newer: more_newer || newer_dropped,
            })
        })
        .await
    }

    /// See [`Backend::messages_after`].
    pub async fn messages_after(
        self: &Arc<Self>,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        self.read(move |b| b.messages_after(after, limit)).await
    }

    /// See [`Backend::changes_after`].
    pub async fn changes_after(
        self: &Arc<Self>,
        after: u64,
        limit: usize,
    ) -> Result<ChangesPage, StoreError> {
        self.read(move |b| b.changes_after(after, limit)).await
    }

    /// Every membership and every grant, read again (see [`ChangesPage::gap`]).
    pub async fn memberships(self: &Arc<Self>) -> Result<MembershipPairs, StoreError> {
        self.read(|b| Ok((b.all_members()?, b.all_grants()?))).await
    }

    /// Before a stream resumes `cursor`: if it is beyond the newest seq this instance knows
    /// (another instance stored it), learn the stored head first so the cursor is honoured.
    pub async fn learn_head(self: &Arc<Self>, cursor: Option<Seq>) {
        if cursor.is_some_and(|c| c > self.head()) {
            match self.read(|b| b.max_seq()).await {
                Ok(head) => self.set_head(head),
                Err(e) => tracing::warn!(error = %e, "reading the stored head failed"),
            }
        }
    }

    /// See [`Backend::all_members`] (blocking).
    pub fn all_members(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.backend.all_members()
    }

    /// See [`Backend::all_grants`] (blocking).
    pub fn all_grants(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.backend.all_grants()
    }

    /// See [`Backend::maintain`].
    pub async fn maintain(self: &Arc<Self>, now_ms: u64) -> Result<(), StoreError> {
        self.read(move |b| b.maintain(now_ms)).await
    }

    /// Runs `body` in one write transaction (the writer thread only); see [`Backend::write`].
    pub(crate) fn write(
        &self,
        body: &mut TxBody<'_>,
        hold: std::time::Duration,
    ) -> Result<(), StoreError> {
        self.backend.write(body, hold)
    }

    /// The newest committed seq as storage has it (after a failed commit).
    pub(crate) fn stored_head(&self) -> Result<Seq, StoreError> {
        self.backend.max_seq()
    }

    /// See [`Backend::checkpoint`].
    pub(crate) fn checkpoint(&self) -> Result<(), StoreError> {
        self.backend.checkpoint()
    }
}
