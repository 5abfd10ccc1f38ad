//! The cluster bus: one Redis Stream (`lifeline:bus`, trimmed to about [`BUS_MAXLEN`] entries)
//! that every instance appends to and reads with a blocking `XREAD`. Each entry names its origin
//! instance (`i`) and its kind (`k`):
//!
//! | `k` | fields | meaning |
//! |---|---|---|
//! | `m` | `f`: the encoded `msg` frame | a message committed in PostgreSQL |
//! | `c` | | membership changes were logged in PostgreSQL: read the log |
//! | `p` | `u`, `o` (`1`/`0`) | the user's first stream on the origin opened / last closed |
//! | `t` | `c`, `u` | the user is typing in the conversation |
//! | `s` | | the origin rewrote its registration: read its online users again |
//!
//! Messages go to the [`crate::tail`], which publishes them only in contiguous seq order and
//! fills any gap from PostgreSQL. While the stream cannot be read the tail polls PostgreSQL; when
//! it can again, the reader resumes after the last entry it saw, reloads every instance's online
//! users and wakes the tail, which catches up from PostgreSQL. Nothing is lost, duplicated or
//! reordered: the bus only carries and wakes, PostgreSQL decides.

use super::{key, Cluster};
use crate::hub::{Hub, Live};
use crate::state::Shared;
use crate::tail::Tail;
use lifeline_core::protocol::{decode_server_frame, ServerFrame};
use redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Entries the bus keeps (approximately: `MAXLEN ~`); an instance more than this far behind reads
/// the rest from PostgreSQL.
pub const BUS_MAXLEN: usize = 100_000;

/// How long one blocking read waits for entries.
const BLOCK: Duration = Duration::from_millis(2_000);

/// Entries read per round trip.
const READ_COUNT: usize = 1_024;

/// Pause between attempts while Redis is unreachable.
const RETRY: Duration = Duration::from_millis(200);

/// The stream's key.
fn stream() -> String {
    key(&["bus"])
}

/// Appends one entry from instance `id` to `pipe`.
pub(super) fn add(pipe: &mut redis::Pipeline, id: &str, fields: &[(&str, &str)]) {
    let mut all: Vec<(&str, &str)> = Vec::with_capacity(fields.len() + 1);
    all.push(("i", id));
    all.extend_from_slice(fields);
    pipe.xadd_maxlen(
        stream(),
        redis::streams::StreamMaxlen::Approx(BUS_MAXLEN),
        "*",
        &all,
    )
    .ignore();
}

/// Reads the bus until `shared` is dropped.
pub(super) async fn read(cluster: Arc<Cluster>, weak: Weak<Shared>, tail: Arc<Tail>) {
    let config = super::manager_config(BLOCK + Duration::from_secs(3));
    let Ok(mut conn) =
        redis::aio::ConnectionManager::new_lazy_with_config(cluster.client.clone(), config)
    else {
        tracing::error!("cannot create the bus connection; cluster bus disabled");
        return;
    };
    let mut last: Option<String> = None;
    let mut live = false;
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        if !live {
            // (Re)connecting: start after the newest entry if this is the first read, reload
            // who is online on the other instances, then let the tail catch up from storage.
            let start = match &last {
                Some(id) => Ok(id.clone()),
                None => newest(&mut conn).await,
            };
            let synced = match start {
                Ok(id) => {
                    last = Some(id);
                    super::liveness::reload_all(&cluster, &mut conn, &shared.hub).await
                }
                Err(e) => Err(e),
            };
            match synced {
                Ok(()) => {
                    live = true;
                    tail.set_bus_live(true);
                    tail.wake();
                }
                Err(e) => {
                    cluster.failed("reading the bus", &e);
                    drop(shared);
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        drop(shared);
        let from = last.clone().unwrap_or_else(|| "$".to_string());
        let options = StreamReadOptions::default()
            .block(BLOCK.as_millis() as usize)
            .count(READ_COUNT);
        let read: redis::RedisResult<Option<StreamReadReply>> =
            conn.xread_options(&[stream()], &[from], &options).await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        match read {
            Ok(reply) => {
                let entries: Vec<StreamId> = reply
                    .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                    .unwrap_or_default();
                if let Some(e) = entries.last() {
                    last = Some(e.id.clone());
                }
                handle(&cluster, &mut conn, &shared.hub, &tail, entries).await;
            }
            Err(e) => {
                live = false;
                tail.set_bus_live(false);
                cluster.failed("reading the bus", &e);
                drop(shared);
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// The id of the newest entry, or `0-0` when the stream is empty.
async fn newest(conn: &mut redis::aio::ConnectionManager) -> redis::RedisResult<String> {
    let reply: StreamRangeReply = conn.xrevrange_count(stream(), "+", "-", 1).await?;
    Ok(reply
        .ids
        .into_iter()
        .next()
        .map(|e| e.id)
        .unwrap_or_else(|| "0-0".to_string()))
}

async fn handle(
    cluster: &Cluster,
    conn: &mut redis::aio::ConnectionManager,
    hub: &Hub,
    tail: &Tail,
    entries: Vec<StreamId>,
) {
    let mut carried = Vec::new();
    let mut wake = false;
    for entry in entries {
        let field = |name: &str| entry.get::<String>(name).unwrap_or_default();
        let origin = field("i");
        if origin == cluster.id {
            continue;
        }
        match field("k").as_str() {
            "m" => match decode_server_frame(&field("f")) {
                Ok(ServerFrame::Msg(m)) => carried.push(m),
                // Not ours to understand (another version): the store has it.
                _ => wake = true,
            },
            "c" => wake = true,
            "p" => hub.remote_presence(&origin, &field("u"), field("o") == "1"),
            "t" => hub.publish(Live::Typing {
                conv: field("c"),
                user: field("u"),
            }),
            "s" => {
                let users: redis::RedisResult<HashSet<String>> =
                    conn.smembers(key(&["users", &origin])).await;
                match users {
                    Ok(users) => hub.remote_replace(&origin, &users),
                    Err(e) => cluster.failed("reloading an instance's users", &e),
                }
            }
            _ => {}
        }
    }
    if !carried.is_empty() {
        tail.carry(carried);
    } else if wake {
        tail.wake();
    }
}
