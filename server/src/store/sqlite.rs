//! The embedded SQLite backend (the default): one file in the data directory (or memory), one
//! writer connection and a pool of reader connections (WAL lets them read while the writer
//! commits). Sequence numbers come from the single writer's transaction, so they commit in order.

use super::{Backend, Before, Prior, StoreError, TxBody, WriteTx};
use lifeline_core::protocol::{Message, Seq};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

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
CREATE INDEX IF NOT EXISTS messages_conv_ts ON messages(conv, ts);
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

/// Reader connections kept open.
const READERS: usize = 8;

/// The SQLite database.
pub struct Sqlite {
    writer: Mutex<Connection>,
    readers: Option<Mutex<Vec<Connection>>>,
    path: Option<PathBuf>,
}

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

fn clamp_i64(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

impl Sqlite {
    /// Opens (creating if needed) `<dir>/lifeline.sqlite3`, or an in-memory database for `None`.
    pub fn open(dir: Option<&Path>) -> Result<Sqlite, StoreError> {
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
        Ok(Sqlite {
            writer: Mutex::new(conn),
            readers: path.as_ref().map(|_| Mutex::new(Vec::new())),
            path,
        })
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
                if pool.len() < READERS {
                    pool.push(conn);
                }
                Ok(result?)
            }
            _ => Ok(f(&lock(&self.writer))?),
        }
    }

    fn pairs(&self, sql: &'static str) -> Result<Vec<(String, String)>, StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare(sql)?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }
}

impl Backend for Sqlite {
    fn max_seq(&self) -> Result<Seq, StoreError> {
        self.with_reader(|c| {
            c.query_row("SELECT COALESCE(MAX(seq), 0) FROM messages", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|s| s as u64)
        })
    }

    fn replay(
        &self,
        user: &str,
        after: Seq,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Message>, StoreError> {
        self.with_reader(|c| {
            // Sequence numbers first (from the covering index, so the sort holds integers, not
            // bodies), then the rows one by one until the page holds `max_bytes` of bodies
            // (always at least one message): a page of large messages stays small in memory.
            let seqs: Vec<i64> = c
                .prepare_cached(
                    "SELECT m.seq FROM messages m
                     JOIN members b ON b.conv = m.conv AND b.user = ?1
                     WHERE m.seq > ?2 ORDER BY m.seq LIMIT ?3",
                )?
                .query_map(params![user, clamp_i64(after), limit as i64], |r| r.get(0))?
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
    }

    fn history(
        &self,
        conv: &str,
        before: Before,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        let (sql, bound) = match before {
            Before::Seq(s) => (
                "SELECT seq, conv, sender, client_id, body, ts FROM messages
                 WHERE conv = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
                clamp_i64(s),
            ),
            Before::Ts(t) => (
                "SELECT seq, conv, sender, client_id, body, ts FROM messages
                 WHERE conv = ?1 AND ts < ?2 ORDER BY ts DESC, seq DESC LIMIT ?3",
                clamp_i64(t),
            ),
        };
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(sql)?;
            let rows = stmt.query_map(params![conv, bound, (limit + 1) as i64], row_to_message)?;
            let mut msgs: Vec<Message> = rows.collect::<rusqlite::Result<_>>()?;
            let more = msgs.len() > limit;
            msgs.truncate(limit);
            msgs.sort_by_key(|m| m.seq);
            Ok((msgs, more))
        })
    }

    fn history_after(
        &self,
        conv: &str,
        after: Seq,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, conv, sender, client_id, body, ts FROM messages
                 WHERE conv = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![conv, clamp_i64(after), (limit + 1) as i64],
                row_to_message,
            )?;
            let mut msgs: Vec<Message> = rows.collect::<rusqlite::Result<_>>()?;
            let more = msgs.len() > limit;
            msgs.truncate(limit);
            Ok((msgs, more))
        })
    }

    fn first_at(&self, conv: &str, ts: u64) -> Result<Option<Seq>, StoreError> {
        self.with_reader(|c| {
            c.prepare_cached(
                "SELECT seq FROM messages WHERE conv = ?1 AND ts >= ?2
                 ORDER BY ts, seq LIMIT 1",
            )?
            .query_row(params![conv, clamp_i64(ts)], |r| r.get::<_, i64>(0))
            .optional()
            .map(|s| s.map(|s| s.max(0) as u64))
        })
    }

    fn messages_after(&self, after: Seq, limit: usize) -> Result<Vec<Message>, StoreError> {
        self.with_reader(|c| {
            c.prepare_cached(
                "SELECT seq, conv, sender, client_id, body, ts FROM messages
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?
            .query_map(params![clamp_i64(after), limit as i64], row_to_message)?
            .collect()
        })
    }

    fn all_members(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.pairs("SELECT user, conv FROM members")
    }

    fn all_grants(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.pairs("SELECT user, conv FROM grants")
    }

    fn write(&self, body: &mut TxBody<'_>, hold: std::time::Duration) -> Result<(), StoreError> {
        let mut conn = lock(&self.writer);
        let t = conn.transaction()?;
        body(&mut SqliteTx(&t))?;
        if !hold.is_zero() {
            std::thread::sleep(hold);
        }
        t.commit()?;
        Ok(())
    }

    /// Flushes the WAL into the main database file.
    fn checkpoint(&self) -> Result<(), StoreError> {
        if self.path.is_some() {
            lock(&self.writer).query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }
}

/// The writer's open SQLite transaction.
struct SqliteTx<'a>(&'a rusqlite::Transaction<'a>);

impl SqliteTx<'_> {
    fn exists(&self, sql: &str, user: &str, conv: &str) -> Result<bool, StoreError> {
        Ok(self
            .0
            .prepare_cached(sql)?
            .query_row(params![user, conv], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn exec(&self, sql: &str, user: &str, conv: &str) -> Result<(), StoreError> {
        self.0.prepare_cached(sql)?.execute(params![user, conv])?;
        Ok(())
    }
}

impl WriteTx for SqliteTx<'_> {
    fn prior(
        &mut self,
        sender: &str,
        client_id: &str,
        conv: &str,
        body: &str,
    ) -> Result<Option<Prior>, StoreError> {
        let found = self
            .0
            .prepare_cached(
                "SELECT seq, conv, body FROM messages WHERE sender = ?1 AND client_id = ?2",
            )?
            .query_row(params![sender, client_id], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .optional()?;
        Ok(found.map(|(seq, c, b)| {
            if c == conv && b == body {
                Prior::Same(seq)
            } else {
                Prior::Different
            }
        }))
    }

    /// One writer holds the database's write lock for the whole transaction, so the next
    /// number is simply one past the newest row (its own inserts included).
    fn next_seq(&mut self) -> Result<Seq, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM messages")?
            .query_row([], |r| r.get::<_, i64>(0))? as u64)
    }

    /// One clock (this process's), kept from running backwards: `ts` is at least the newest
    /// row's, so pages by time and by `seq` agree even across a clock step.
    fn next_seq_at(&mut self, local_ms: u64) -> Result<(Seq, u64), StoreError> {
        let newest = self
            .0
            .prepare_cached("SELECT seq, ts FROM messages ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .optional()?;
        Ok(match newest {
            Some((seq, ts)) => (seq.max(0) as u64 + 1, local_ms.max(ts.max(0) as u64)),
            None => (1, local_ms),
        })
    }

    fn insert(&mut self, m: &Message) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO messages (seq, conv, sender, client_id, body, ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                clamp_i64(m.seq),
                m.conv,
                m.from,
                m.id,
                m.body,
                clamp_i64(m.ts)
            ])?;
        Ok(())
    }

    fn is_member(&mut self, user: &str, conv: &str) -> Result<bool, StoreError> {
        self.exists(
            "SELECT 1 FROM members WHERE user = ?1 AND conv = ?2",
            user,
            conv,
        )
    }

    fn membership_count(&mut self, user: &str) -> Result<usize, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT COUNT(*) FROM members WHERE user = ?1")?
            .query_row(params![user], |r| r.get::<_, i64>(0))?
            .max(0) as usize)
    }

    fn join(&mut self, user: &str, conv: &str) -> Result<(), StoreError> {
        self.exec(
            "INSERT OR IGNORE INTO members (user, conv) VALUES (?1, ?2)",
            user,
            conv,
        )
    }

    fn leave(&mut self, user: &str, conv: &str) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM members WHERE user = ?1 AND conv = ?2",
            user,
            conv,
        )
    }

    fn grant(&mut self, user: &str, conv: &str) -> Result<(), StoreError> {
        self.exec(
            "INSERT OR IGNORE INTO grants (user, conv) VALUES (?1, ?2)",
            user,
            conv,
        )
    }

    fn revoke(&mut self, user: &str, conv: &str) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM grants WHERE user = ?1 AND conv = ?2",
            user,
            conv,
        )
    }

    fn is_granted(&mut self, user: &str, conv: &str) -> Result<bool, StoreError> {
        self.exists(
            "SELECT 1 FROM grants WHERE user = ?1 AND conv = ?2",
            user,
            conv,
        )
    }
}
