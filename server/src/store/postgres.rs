//! The PostgreSQL backend (`--postgres URL`): the durable store several server instances share.
//!
//! - Sequence numbers come from one counter row, locked (`SELECT … FOR UPDATE`) by the first
//!   `send` of a write transaction and bumped (`UPDATE … RETURNING`) per message: the lock is held
//!   until commit, so transactions that store messages commit one after another in seq order and
//!   no reader ever sees seq 11 before seq 10 is committed (a database sequence would hand out
//!   numbers in one order and commit them in another). The same lock orders idempotency checks:
//!   a key sent to two instances at once stores one message.
//! - `messages` is partitioned by time (`ts`, one partition per UTC day, declarative range
//!   partitioning) and indexed by (conv, seq) and (conv, ts); [`Backend::maintain`] creates the
//!   partitions from yesterday to a week ahead (at start and periodically, see [`crate::server`]).
//! - Idempotency keys live in their own table (a unique key on a partitioned table would have to
//!   include the partition key), with the conversation and a SHA-256 of the body for the
//!   `id_reused` comparison.
//!
//! Queries run on the server's tokio runtime through a [`Handle`]: every method here blocks and is
//! called from the writer thread or the blocking pool, never from an async task. Each connection
//! keeps the statements it has prepared ([`Conn`], used through [`Sql`]): a query is parsed and
//! described once per connection, and each later call is one round trip instead of two.

use super::{Backend, Before, Change, ChangesPage, Prior, StoreError, TxBody, WriteTx};
use lifeline_core::protocol::{Message, Seq};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use tokio::runtime::Handle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, GenericClient, NoTls, Row, Statement};

/// One day in milliseconds: the width of a `messages` partition.
pub const PARTITION_MS: u64 = 86_400_000;

/// Partitions created ahead of today (and one behind, for a clock that runs late).
pub const PARTITIONS_AHEAD: u64 = 7;

/// How long logged membership changes are kept: an instance that falls further behind reloads its
/// caches from the tables (pruned at each [`Backend::maintain`]).
pub const CHANGES_KEPT_MS: u64 = 3_600_000;

/// Reader connections kept open per instance.
const READERS: usize = 8;

/// Serializes schema changes and partition creation between instances.
const DDL_LOCK: i64 = 0x6c69_6665_6c69_6e65;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS seq_counter (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    head BIGINT NOT NULL
);
INSERT INTO seq_counter (id, head) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
ALTER TABLE seq_counter ADD COLUMN IF NOT EXISTS changes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE seq_counter ADD COLUMN IF NOT EXISTS last_ts BIGINT NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS member_changes (
    id BIGINT PRIMARY KEY,
    origin TEXT NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT NOT NULL,
    conv TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    seq BIGINT NOT NULL,
    conv TEXT NOT NULL,
    sender TEXT NOT NULL,
    client_id TEXT NOT NULL,
    body TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (seq, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX IF NOT EXISTS messages_conv_seq ON messages (conv, seq);
CREATE INDEX IF NOT EXISTS messages_conv_ts ON messages (conv, ts);
CREATE TABLE IF NOT EXISTS send_keys (
    sender TEXT NOT NULL,
    client_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    conv TEXT NOT NULL,
    body_sha256 BYTEA NOT NULL,
    PRIMARY KEY (sender, client_id)
);
CREATE TABLE IF NOT EXISTS members (
    user_id TEXT NOT NULL,
    conv TEXT NOT NULL,
    PRIMARY KEY (user_id, conv)
);
CREATE INDEX IF NOT EXISTS members_conv ON members (conv, user_id);
CREATE TABLE IF NOT EXISTS grants (
    user_id TEXT NOT NULL,
    conv TEXT NOT NULL,
    PRIMARY KEY (user_id, conv)
);
";

const COLUMNS: &str = "seq, conv, sender, client_id, body, ts";

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The driver's text names the failing step and the server's message, never the
        // connection string.
        StoreError(format!("postgres: {e}"))
    }
}

/// The shared PostgreSQL database.
pub struct Postgres {
    config: Config,
    /// Names this instance in the membership change log (its own changes are not replayed).
    origin: String,
    rt: Handle,
    writer: Mutex<Option<Conn>>,
    readers: Mutex<Vec<Conn>>,
}

/// Statements prepared on one connection, by their SQL text. Bounded: the texts are this file's
/// queries (a fixed set; none is built from input), so a connection holds a few dozen at most.
type Statements = HashMap<String, Statement>;

/// One connection to PostgreSQL and the statements prepared on it.
struct Conn {
    client: Client,
    statements: Statements,
}

impl Conn {
    /// Queries on this connection, from blocking code.
    fn sql<'a>(&'a mut self, rt: &'a Handle) -> Sql<'a, Client> {
        Sql {
            client: &self.client,
            statements: &mut self.statements,
            rt,
        }
    }
}

/// Queries from blocking code on `client` (a connection, or a transaction open on it) with that
/// connection's prepared statements: each SQL text is prepared on first use, then reused.
struct Sql<'a, C> {
    client: &'a C,
    statements: &'a mut Statements,
    rt: &'a Handle,
}

impl<C: GenericClient> Sql<'_, C> {
    fn statement(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.rt.block_on(self.client.prepare(sql))?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    fn query(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Row>, tokio_postgres::Error> {
        let s = self.statement(sql)?;
        self.rt.block_on(self.client.query(&s, params))
    }

    fn query_opt(
        &mut self,
        sql: &str,
        params: &[Param],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let s = self.statement(sql)?;
        self.rt.block_on(self.client.query_opt(&s, params))
    }

    fn query_one(&mut self, sql: &str, params: &[Param]) -> Result<Row, tokio_postgres::Error> {
        let s = self.statement(sql)?;
        self.rt.block_on(self.client.query_one(&s, params))
    }

    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, tokio_postgres::Error> {
        let s = self.statement(sql)?;
        self.rt.block_on(self.client.execute(&s, params))
    }
}

/// A query parameter.
type Param<'p> = &'p (dyn ToSql + Sync);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn clamp_i64(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn row_to_message(r: &Row) -> Message {
    Message {
        seq: r.get::<_, i64>(0).max(0) as u64,
        conv: r.get(1),
        from: r.get(2),
        id: r.get(3),
        body: r.get(4),
        ts: r.get::<_, i64>(5).max(0) as u64,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Postgres {
    /// Connects to `url` (a `postgres://` URL or `key=value` string), creates the schema and
    /// the partitions around today. Blocking: call it off the async tasks, with `rt` the
    /// server's runtime.
    pub fn open(url: &str, rt: Handle) -> Result<Postgres, StoreError> {
        let config: Config = url
            .parse()
            .map_err(|_| StoreError("the PostgreSQL URL does not parse".into()))?;
        static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let origin = format!(
            "{}-{}-{}",
            std::process::id(),
            now_ms(),
            STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let pg = Postgres {
            config,
            origin,
            rt,
            writer: Mutex::new(None),
            readers: Mutex::new(Vec::new()),
        };
        let mut conn = pg.connect()?;
        pg.rt.block_on(async {
            let t = conn.client.transaction().await?;
            t.execute("SELECT pg_advisory_xact_lock($1)", &[&DDL_LOCK])
                .await?;
            t.batch_execute(SCHEMA).await?;
            t.commit().await
        })?;
        *lock(&pg.writer) = Some(conn);
        pg.maintain(now_ms())?;
        Ok(pg)
    }

    fn connect(&self) -> Result<Conn, StoreError> {
        let (client, connection) = self.rt.block_on(self.config.connect(NoTls))?;
        self.rt.spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "postgres connection ended");
            }
        });
        Ok(Conn {
            client,
            statements: Statements::new(),
        })
    }

    /// Runs `f` with a reader connection (opened anew when the pool is empty or a connection
    /// was lost, e.g. across a PostgreSQL restart).
    fn with_reader<T>(
        &self,
        f: impl FnOnce(&mut Sql<'_, Client>) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        let pooled = {
            let mut pool = lock(&self.readers);
            pool.retain(|c| !c.client.is_closed());
            pool.pop()
        };
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        let result = f(&mut conn.sql(&self.rt));
        let mut pool = lock(&self.readers);
        if pool.len() < READERS && !conn.client.is_closed() {
            pool.push(conn);
        }
        Ok(result?)
    }

    fn pairs(&self, sql: &'static str) -> Result<Vec<(String, String)>, StoreError> {
        self.with_reader(|c| {
            let rows = c.query(sql, &[])?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }
}

impl Backend for Postgres {
    fn max_seq(&self) -> Result<Seq, StoreError> {
        self.with_reader(|c| {
            let row = c.query_one("SELECT head FROM seq_counter WHERE id = 1", &[])?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
    }

    fn replay(
        &self,
        user: &str,
        after: Seq,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Message>, StoreError> {
        // The byte bound is applied by the database (a running sum), so a page of large
        // messages never crosses the wire: a row is kept while the rows before it hold fewer
        // than `max_bytes` (the first row always).
        let sql = "SELECT seq, conv, sender, client_id, body, ts FROM (
                SELECT p.*, SUM(p.len) OVER (ORDER BY p.seq) - p.len AS before_bytes FROM (
                    SELECT m.seq, m.conv, m.sender, m.client_id, m.body, m.ts,
                           octet_length(m.body) + octet_length(m.conv)
                           + octet_length(m.client_id) + octet_length(m.sender) AS len
                    FROM messages m JOIN members b ON b.conv = m.conv AND b.user_id = $1
                    WHERE m.seq > $2 ORDER BY m.seq LIMIT $3
                ) p
            ) q WHERE before_bytes < $4 ORDER BY seq";
        self.with_reader(|c| {
            let rows = c.query(
                sql,
                &[
                    &user,
                    &clamp_i64(after),
                    &(limit as i64),
                    &(max_bytes.min(i64::MAX as usize) as i64),
                ],
            )?;
            Ok(rows.iter().map(row_to_message).collect())
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
                format!(
                    "SELECT {COLUMNS} FROM messages WHERE conv = $1 AND seq < $2
                     ORDER BY seq DESC LIMIT $3"
                ),
                clamp_i64(s),
            ),
            Before::Ts(t) => (
                format!(
                    "SELECT {COLUMNS} FROM messages WHERE conv = $1 AND ts < $2
                     ORDER BY ts DESC, seq DESC LIMIT $3"
                ),
                clamp_i64(t),
            ),
        };
        self.with_reader(|c| {
            let rows = c.query(&sql, &[&conv, &bound, &((limit + 1) as i64)])?;
            let mut msgs: Vec<Message> = rows.iter().map(row_to_message).collect();
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
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE conv = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        self.with_reader(|c| {
            let rows = c.query(&sql, &[&conv, &clamp_i64(after), &((limit + 1) as i64)])?;
            let mut msgs: Vec<Message> = rows.iter().map(row_to_message).collect();
            let more = msgs.len() > limit;
            msgs.truncate(limit);
            Ok((msgs, more))
        })
    }

    fn first_at(&self, conv: &str, ts: u64) -> Result<Option<Seq>, StoreError> {
        self.with_reader(|c| {
            let row = c.query_opt(
                "SELECT seq FROM messages WHERE conv = $1 AND ts >= $2 ORDER BY ts, seq LIMIT 1",
                &[&conv, &clamp_i64(ts)],
            )?;
            Ok(row.map(|r| r.get::<_, i64>(0).max(0) as u64))
        })
    }

    fn messages_after(&self, after: Seq, limit: usize) -> Result<Vec<Message>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM messages WHERE seq > $1 ORDER BY seq LIMIT $2");
        self.with_reader(|c| {
            let rows = c.query(&sql, &[&clamp_i64(after), &(limit as i64)])?;
            Ok(rows.iter().map(row_to_message).collect())
        })
    }

    fn changes_head(&self) -> Result<u64, StoreError> {
        self.with_reader(|c| {
            let row = c.query_one("SELECT changes FROM seq_counter WHERE id = 1", &[])?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
    }

    fn changes_after(&self, after: u64, limit: usize) -> Result<ChangesPage, StoreError> {
        self.with_reader(|c| {
            let rows = c.query(
                "SELECT id, origin, kind, user_id, conv FROM member_changes
                 WHERE id > $1 ORDER BY id LIMIT $2",
                &[&clamp_i64(after), &(limit as i64)],
            )?;
            let mut seen = after;
            let mut changes = Vec::new();
            let gap = rows
                .first()
                .is_some_and(|r| r.get::<_, i64>(0).max(0) as u64 > after + 1);
            for r in &rows {
                let id = r.get::<_, i64>(0).max(0) as u64;
                seen = seen.max(id);
                if r.get::<_, &str>(1) == self.origin {
                    continue;
                }
                if let Some(change) = Change::parse(r.get(2)) {
                    changes.push((id, change, r.get(3), r.get(4)));
                }
            }
            Ok(ChangesPage { changes, seen, gap })
        })
    }

    fn all_members(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.pairs("SELECT user_id, conv FROM members")
    }

    fn all_grants(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.pairs("SELECT user_id, conv FROM grants")
    }

    fn write(&self, body: &mut TxBody<'_>, hold: std::time::Duration) -> Result<(), StoreError> {
        let mut slot = lock(&self.writer);
        if slot.as_ref().is_none_or(|c| c.client.is_closed()) {
            *slot = None;
            *slot = Some(self.connect()?);
        }
        let Some(Conn { client, statements }) = slot.as_mut() else {
            return Err(StoreError("no writer connection".into()));
        };
        let t = self.rt.block_on(client.transaction())?;
        let mut tx = PgTx {
            sql: Sql {
                client: &t,
                statements,
                rt: &self.rt,
            },
            origin: &self.origin,
            seq_locked: false,
        };
        body(&mut tx)?;
        if !hold.is_zero() {
            std::thread::sleep(hold);
        }
        self.rt.block_on(t.commit())?;
        Ok(())
    }

    fn maintain(&self, now_ms: u64) -> Result<(), StoreError> {
        let today = now_ms / PARTITION_MS;
        let mut ddl = String::new();
        for day in today.saturating_sub(1)..=today + PARTITIONS_AHEAD {
            // Only integers go into this statement (DDL takes no parameters).
            ddl.push_str(&format!(
                "CREATE TABLE IF NOT EXISTS messages_d{day} PARTITION OF messages \
                 FOR VALUES FROM ({}) TO ({});\n",
                day * PARTITION_MS,
                (day + 1) * PARTITION_MS
            ));
        }
        let mut conn = self.connect()?;
        self.rt.block_on(async {
            let t = conn.client.transaction().await?;
            t.execute("SELECT pg_advisory_xact_lock($1)", &[&DDL_LOCK])
                .await?;
            t.batch_execute(&ddl).await?;
            let oldest = clamp_i64(now_ms.saturating_sub(CHANGES_KEPT_MS));
            t.execute("DELETE FROM member_changes WHERE at_ms < $1", &[&oldest])
                .await?;
            t.commit().await
        })?;
        Ok(())
    }
}

/// The writer's open PostgreSQL transaction.
struct PgTx<'a> {
    /// Queries in the transaction, with the writer connection's prepared statements (a
    /// statement outlives the transaction).
    sql: Sql<'a, tokio_postgres::Transaction<'a>>,
    origin: &'a str,
    /// Whether this transaction holds the counter row's lock.
    seq_locked: bool,
}

impl PgTx<'_> {
    fn exists(&mut self, sql: &str, user: &str, conv: &str) -> Result<bool, StoreError> {
        Ok(self.sql.query_opt(sql, &[&user, &conv])?.is_some())
    }

    fn exec(&mut self, sql: &str, user: &str, conv: &str) -> Result<(), StoreError> {
        self.sql.execute(sql, &[&user, &conv])?;
        Ok(())
    }

    /// Takes the counter row's lock (once per transaction): from here to commit, no other
    /// instance stores a message or checks an idempotency key.
    fn lock_seq(&mut self) -> Result<(), StoreError> {
        if !self.seq_locked {
            self.sql
                .execute("SELECT head FROM seq_counter WHERE id = 1 FOR UPDATE", &[])?;
            self.seq_locked = true;
        }
        Ok(())
    }
}

impl WriteTx for PgTx<'_> {
    fn prior(
        &mut self,
        sender: &str,
        client_id: &str,
        conv: &str,
        body: &str,
    ) -> Result<Option<Prior>, StoreError> {
        self.lock_seq()?;
        let row = self.sql.query_opt(
            "SELECT seq, conv, body_sha256 FROM send_keys WHERE sender = $1 AND client_id = $2",
            &[&sender, &client_id],
        )?;
        Ok(row.map(|r| {
            let same = r.get::<_, String>(1) == conv
                && r.get::<_, Vec<u8>>(2) == Sha256::digest(body.as_bytes()).as_slice();
            if same {
                Prior::Same(r.get::<_, i64>(0).max(0) as u64)
            } else {
                Prior::Different
            }
        }))
    }

    fn next_seq(&mut self) -> Result<Seq, StoreError> {
        self.lock_seq()?;
        let row = self.sql.query_one(
            "UPDATE seq_counter SET head = head + 1 WHERE id = 1 RETURNING head",
            &[],
        )?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// `ts` from the database's clock, not the instance's (whose clock may be off by seconds),
    /// and never below the previous message's: taken with the number, under the counter row's
    /// lock, so `ts` is non-decreasing in `seq` order across every instance.
    fn next_seq_at(&mut self, _local_ms: u64) -> Result<(Seq, u64), StoreError> {
        self.lock_seq()?;
        let row = self.sql.query_one(
            "UPDATE seq_counter SET head = head + 1, last_ts = GREATEST(last_ts,
                 (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT)
             WHERE id = 1 RETURNING head, last_ts",
            &[],
        )?;
        Ok((
            row.get::<_, i64>(0).max(0) as u64,
            row.get::<_, i64>(1).max(0) as u64,
        ))
    }

    fn insert(&mut self, m: &Message) -> Result<(), StoreError> {
        let (seq, ts) = (clamp_i64(m.seq), clamp_i64(m.ts));
        self.sql.execute(
            "INSERT INTO messages (seq, conv, sender, client_id, body, ts)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&seq, &m.conv, &m.from, &m.id, &m.body, &ts],
        )?;
        let digest = Sha256::digest(m.body.as_bytes()).to_vec();
        self.sql.execute(
            "INSERT INTO send_keys (sender, client_id, seq, conv, body_sha256)
             VALUES ($1, $2, $3, $4, $5)",
            &[&m.from, &m.id, &seq, &m.conv, &digest],
        )?;
        Ok(())
    }

    fn is_member(&mut self, user: &str, conv: &str) -> Result<bool, StoreError> {
        self.exists(
            "SELECT 1 FROM members WHERE user_id = $1 AND conv = $2",
            user,
            conv,
        )
    }

    fn membership_count(&mut self, user: &str) -> Result<usize, StoreError> {
        let row = self
            .sql
            .query_one("SELECT COUNT(*) FROM members WHERE user_id = $1", &[&user])?;
        Ok(row.get::<_, i64>(0).max(0) as usize)
    }

    fn join(&mut self, user: &str, conv: &str) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO members (user_id, conv) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            user,
            conv,
        )
    }

    fn leave(&mut self, user: &str, conv: &str) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM members WHERE user_id = $1 AND conv = $2",
            user,
            conv,
        )
    }

    fn grant(&mut self, user: &str, conv: &str) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO grants (user_id, conv) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            user,
            conv,
        )
    }

    fn revoke(&mut self, user: &str, conv: &str) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM grants WHERE user_id = $1 AND conv = $2",
            user,
            conv,
        )
    }

    fn is_granted(&mut self, user: &str, conv: &str) -> Result<bool, StoreError> {
        self.exists(
            "SELECT 1 FROM grants WHERE user_id = $1 AND conv = $2",
            user,
            conv,
        )
    }

    /// Numbered under the counter row's lock, so changes become visible in id order.
    fn log_change(&mut self, change: Change, user: &str, conv: &str) -> Result<(), StoreError> {
        self.lock_seq()?;
        let row = self.sql.query_one(
            "UPDATE seq_counter SET changes = changes + 1 WHERE id = 1 RETURNING changes",
            &[],
        )?;
        let id: i64 = row.get(0);
        let at = clamp_i64(now_ms());
        let origin = self.origin;
        self.sql.execute(
            "INSERT INTO member_changes (id, origin, kind, user_id, conv, at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&id, &origin, &change.as_str(), &user, &conv, &at],
        )?;
        Ok(())
    }
}
