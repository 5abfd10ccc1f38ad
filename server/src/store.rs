//! SQLite storage: the schema, the connections and every query.
//!
//! Reads may come from any task (through [`Store::read`], which runs them on the blocking pool);
//! writes happen only in [`crate::writer`], the single writer, through [`Store::write_conn`]. No
//! query here decides who may read what: membership checks live in the callers.

use lifeline_core::protocol::{Message, Seq};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A storage failure.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    conv TEXT NOT NULL,
    sender TEXT NOT NULL,
    client_id TEXT NOT NULL,
    body TEXT NOT NULL,
    ts INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_sender_client ON messages(sender, client_id);
CREATE INDEX IF NOT EXISTS messages_conv_seq ON messages(conv, seq);
CREATE TABLE IF NOT EXISTS members (
    user TEXT NOT NULL,
    conv TEXT NOT NULL,
    PRIMARY KEY (user, conv)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_conv ON members(conv, user);
CREATE TABLE IF NOT EXISTS grants (
    user TEXT NOT NULL,
    conv TEXT NOT NULL,
    PRIMARY KEY (user, conv)
) WITHOUT ROWID;
";

/// The database: one writer connection and, on disk, a pool of reader connections (WAL lets them
/// read while the writer commits). In memory there is a single connection shared by both.
pub struct Store {
    writer: Mutex<Connection>,
    readers: Option<Mutex<Vec<Connection>>>,
    path: Option<PathBuf>,
    head: AtomicU64,
    /// Reads running at once: many streams opening together (a reconnect storm, stalled readers)
    /// queue here instead of each taking a blocking thread (and its allocator arena).
    reads: tokio::sync::Semaphore,
}

/// Storage reads running at once (as many as the reader pool keeps connections).
const CONCURRENT_READS: usize = 8;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn row_to_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        seq: row.get::<_, i64>(0)? as u64,
        conv: row.get(1)?,
        from: row.get(2)?,
        id: row.get(3)?,
        body: row.get(4)?,
        ts: row.get::<_, i64>(5)? as u64,
    })
}

impl Store {
    /// Opens (creating if needed) `<dir>/lifeline.sqlite3`, or an in-memory database for `None`.
    pub fn open(dir: Option<&Path>) -> Result<Store, StoreError> {
        let (conn, path) = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError(format!("creating {}: {e}", dir.display())))?;
                let path = dir.join("lifeline.sqlite3");
                let conn = Connection::open(&path)?;
                let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
                if !mode.eq_ignore_ascii_case("wal") {
                    return Err(StoreError(format!("could not enable WAL (got {mode})")));
                }
                conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;")?;
                (conn, Some(path))
            }
            None => (Connection::open_in_memory()?, None),
        };
        conn.execute_batch(SCHEMA)?;
        let head: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM messages", [], |r| {
            r.get(0)
        })?;
        Ok(Store {
            writer: Mutex::new(conn),
            readers: path.as_ref().map(|_| Mutex::new(Vec::new())),
            reads: tokio::sync::Semaphore::new(CONCURRENT_READS),
            path,
            head: AtomicU64::new(head as u64),
        })
    }

    /// The highest sequence number committed so far.
    pub fn head(&self) -> Seq {
        self.head.load(Ordering::SeqCst)
    }

    /// Records that everything up to `seq` is committed (called by the writer after a commit).
    pub(crate) fn set_head(&self, seq: Seq) {
        self.head.store(seq, Ordering::SeqCst);
    }

    /// The writer connection. Only the single writer (and in-memory reads) may use it.
    pub(crate) fn write_conn(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        match (&self.readers, &self.path) {
            (Some(pool), Some(path)) => {
                let conn = lock(pool).pop();
                let conn = match conn {
                    Some(c) => c,
                    None => {
                        let c = Connection::open(path)?;
                        c.execute_batch("PRAGMA busy_timeout=5000; PRAGMA query_only=1;")?;
                        c
                    }
                };
                let result = f(&conn);
                let mut pool = lock(pool);
                if pool.len() < 8 {
                    pool.push(conn);
                }
                Ok(result?)
            }
            _ => Ok(f(&self.write_conn())?),
        }
    }

    /// Runs a read on the blocking pool.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _permit = self
            .reads
            .acquire()
            .await
            .map_err(|_| StoreError("storage reads closed".into()))?;
        let store = Arc::clone(self);
        tokio::task::spawn_blocking(move || store.with_reader(f))
            .await
            .map_err(|e| StoreError(format!("read task failed: {e}")))?
    }

    /// Messages of the conversations `user` is a member of (in storage), with `seq > after`, in
    /// increasing order, at most `limit` and about `max_bytes` (at least one message).
    pub async fn replay(
        self: &Arc<Self>,
        user: &str,
        after: Seq,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let user = user.to_string();
        self.read(move |c| {
            // Sequence numbers first (from the covering index, so the sort holds integers, not
            // bodies), then the rows one by one until the page holds `max_bytes` of bodies
            // (always at least one message): a page of large messages stays small in memory.
            let seqs: Vec<i64> = c
                .prepare_cached(
                    "SELECT m.seq FROM messages m
                     JOIN members b ON b.conv = m.conv AND b.user = ?1
                     WHERE m.seq > ?2 ORDER BY m.seq LIMIT ?3",
                )?
                .query_map(params![user, after as i64, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut row = c.prepare_cached(
                "SELECT seq, conv, sender, client_id, body, ts FROM messages WHERE seq = ?1",
            )?;
            let mut page = Vec::new();
            let mut bytes = 0;
            for seq in seqs {
                if bytes >= max_bytes {
                    break;
                }
                let m = row.query_row(params![seq], row_to_message)?;
                bytes += m.body.len() + m.conv.len() + m.id.len() + m.from.len();
                page.push(m);
            }
            Ok(page)
        })
        .await
    }

    /// The newest `limit` messages of `conv` with `seq < before`, in increasing order, and whether
    /// older ones exist.
    pub async fn history(
        self: &Arc<Self>,
        conv: &str,
        before: Option<Seq>,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        let conv = conv.to_string();
        let before = before
            .map(|b| b.min(i64::MAX as u64) as i64)
            .unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, conv, sender, client_id, body, ts FROM messages
                 WHERE conv = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![conv, before, (limit + 1) as i64], row_to_message)?;
            let mut msgs: Vec<Message> = rows.collect::<rusqlite::Result<_>>()?;
            let more = msgs.len() > limit;
            msgs.truncate(limit);
            msgs.reverse();
            Ok((msgs, more))
        })
        .await
    }

    /// Every (user, conversation) membership, for warming the cache at start.
    pub fn all_members(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare("SELECT user, conv FROM members")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Every (user, conversation) grant of the admin API, for warming the cache at start.
    pub fn all_grants(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare("SELECT user, conv FROM grants")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Flushes the WAL into the main database file (at shutdown).
    pub(crate) fn checkpoint(&self) -> Result<(), StoreError> {
        if self.path.is_some() {
            self.write_conn()
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }
}

/// Queries the writer runs inside its transaction.
pub(crate) mod tx {
    use super::*;

    /// The message `sender` already stored under `client_id`, if any: its seq, conversation and
    /// body (a repeat is acknowledged only if conversation and body are the same).
    pub fn existing(
        c: &Connection,
        sender: &str,
        client_id: &str,
    ) -> rusqlite::Result<Option<(Seq, String, String)>> {
        c.prepare_cached(
            "SELECT seq, conv, body FROM messages WHERE sender = ?1 AND client_id = ?2",
        )?
        .query_row(params![sender, client_id], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
        })
        .optional()
    }

    pub fn is_member(c: &Connection, user: &str, conv: &str) -> rusqlite::Result<bool> {
        c.prepare_cached("SELECT 1 FROM members WHERE user = ?1 AND conv = ?2")?
            .query_row(params![user, conv], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
    }

    pub fn insert(c: &Connection, m: &Message) -> rusqlite::Result<()> {
        c.prepare_cached(
            "INSERT INTO messages (seq, conv, sender, client_id, body, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![m.seq as i64, m.conv, m.from, m.id, m.body, m.ts as i64])
        .map(|_| ())
    }

    /// How many conversations `user` is a member of.
    pub fn membership_count(c: &Connection, user: &str) -> rusqlite::Result<usize> {
        c.prepare_cached("SELECT COUNT(*) FROM members WHERE user = ?1")?
            .query_row(params![user], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as usize)
    }

    pub fn join(c: &Connection, user: &str, conv: &str) -> rusqlite::Result<()> {
        c.prepare_cached("INSERT OR IGNORE INTO members (user, conv) VALUES (?1, ?2)")?
            .execute(params![user, conv])
            .map(|_| ())
    }

    pub fn leave(c: &Connection, user: &str, conv: &str) -> rusqlite::Result<()> {
        c.prepare_cached("DELETE FROM members WHERE user = ?1 AND conv = ?2")?
            .execute(params![user, conv])
            .map(|_| ())
    }

    pub fn grant(c: &Connection, user: &str, conv: &str) -> rusqlite::Result<()> {
        c.prepare_cached("INSERT OR IGNORE INTO grants (user, conv) VALUES (?1, ?2)")?
            .execute(params![user, conv])
            .map(|_| ())
    }

    pub fn revoke(c: &Connection, user: &str, conv: &str) -> rusqlite::Result<()> {
        c.prepare_cached("DELETE FROM grants WHERE user = ?1 AND conv = ?2")?
            .execute(params![user, conv])
            .map(|_| ())
    }

    pub fn is_granted(c: &Connection, user: &str, conv: &str) -> rusqlite::Result<bool> {
        c.prepare_cached("SELECT 1 FROM grants WHERE user = ?1 AND conv = ?2")?
            .query_row(params![user, conv], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
    }

    pub fn max_seq(c: &Connection) -> rusqlite::Result<Seq> {
        c.query_row("SELECT COALESCE(MAX(seq), 0) FROM messages", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|s| s as u64)
    }
}
