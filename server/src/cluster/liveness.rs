//! Which instances are alive, and who is online on each.
//!
//! Each instance keeps `lifeline:alive:ID` (TTL: one heartbeat, refreshed every quarter of it),
//! its id in the set `lifeline:instances`, and the set `lifeline:users:ID` of users with a stream
//! on it. Every instance sweeps as often: an instance whose key has expired is dead, and the
//! sweeper announces its users offline here (unless another instance still has them) and removes
//! its registration and its per-user stream counts. A user of an instance killed with `kill -9`
//! goes offline everywhere within about 1.5 heartbeats.
//!
//! After an outage (or a lost event) the instance rewrites its whole registration and appends a
//! `s` entry to the bus so that the others reload its users.

use super::{bus, key, quota, Cluster};
use crate::hub::Hub;
use crate::state::Shared;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

/// Refreshes this instance's registration and sweeps dead instances until `shared` is dropped.
pub(super) async fn run(cluster: Arc<Cluster>, shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(cluster.heartbeat / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut conn = cluster.conn();
        let result = if cluster.dirty.swap(false, Ordering::Relaxed) {
            register(&cluster, &mut conn, &shared).await
        } else {
            refresh(&cluster, &mut conn).await
        };
        let result = match result {
            Ok(()) => sweep(&cluster, &mut conn, &shared.hub).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => cluster.recovered(),
            Err(e) => cluster.failed("refreshing this instance's registration", &e),
        }
    }
}

fn ttl_ms(cluster: &Cluster) -> u64 {
    cluster.heartbeat.as_millis() as u64
}

async fn refresh(cluster: &Cluster, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
    redis::pipe()
        .cmd("SET")
        .arg(key(&["alive", &cluster.id]))
        .arg(1)
        .arg("PX")
        .arg(ttl_ms(cluster))
        .ignore()
        .sadd(key(&["instances"]), &cluster.id)
        .ignore()
        .query_async(conn)
        .await
}

/// Rewrites the whole registration from this instance's state: alive key, users, stream counts;
/// then tells the others to reload it.
async fn register(
    cluster: &Cluster,
    conn: &mut ConnectionManager,
    shared: &Shared,
) -> redis::RedisResult<()> {
    let users_key = key(&["users", &cluster.id]);
    let before: HashSet<String> = conn.smembers(&users_key).await?;
    let users = shared.hub.local_users();
    let streams = shared.conns.per_user_counts();
    let mut pipe = redis::pipe();
    pipe.atomic();
    for user in &before {
        quota::forget(&mut pipe, &cluster.id, user);
    }
    pipe.del(&users_key).ignore();
    if !users.is_empty() {
        pipe.sadd(&users_key, &users).ignore();
    }
    for (user, n) in &streams {
        quota::set_streams(&mut pipe, &cluster.id, user, *n);
    }
    pipe.query_async::<()>(conn).await?;
    refresh(cluster, conn).await?;
    let mut pipe = redis::pipe();
    bus::add(&mut pipe, &cluster.id, &[("k", "s")]);
    pipe.query_async::<()>(conn).await
}

/// Every instance other than this one that is registered or that `hub` holds users of.
async fn other_instances(
    cluster: &Cluster,
    conn: &mut ConnectionManager,
    hub: &Hub,
) -> redis::RedisResult<HashSet<String>> {
    let mut ids: HashSet<String> = conn.smembers(key(&["instances"])).await?;
    ids.extend(hub.remote_instances());
    ids.remove(&cluster.id);
    Ok(ids)
}

/// Announces the users of every dead instance offline here and removes its registration.
async fn sweep(
    cluster: &Cluster,
    conn: &mut ConnectionManager,
    hub: &Hub,
) -> redis::RedisResult<()> {
    for id in other_instances(cluster, conn, hub).await? {
        let alive: bool = conn.exists(key(&["alive", &id])).await?;
        if alive {
            continue;
        }
        hub.remote_replace(&id, &HashSet::new());
        let users_key = key(&["users", &id]);
        let users: HashSet<String> = conn.smembers(&users_key).await?;
        let mut pipe = redis::pipe();
        for user in &users {
            quota::forget(&mut pipe, &id, user);
        }
        pipe.del(&users_key).ignore();
        pipe.srem(key(&["instances"]), &id).ignore();
        pipe.query_async::<()>(conn).await?;
        tracing::info!(instance = %id, users = users.len(), "instance gone; its users are offline");
    }
    Ok(())
}

/// Reloads who is online on every live instance other than this one (after connecting to the
/// bus), applying the differences to `hub`.
pub(super) async fn reload_all(
    cluster: &Cluster,
    conn: &mut ConnectionManager,
    hub: &Hub,
) -> redis::RedisResult<()> {
    for id in other_instances(cluster, conn, hub).await? {
        let alive: bool = conn.exists(key(&["alive", &id])).await?;
        let users: HashSet<String> = if alive {
            conn.smembers(key(&["users", &id])).await?
        } else {
            HashSet::new()
        };
        hub.remote_replace(&id, &users);
    }
    Ok(())
}
