//! `throughput`: messages per second stored and fanned out, one SQLite instance next to 1, 2 and 3
//! instances sharing one PostgreSQL (started by the benchmark, as the tests start it), then 2 and
//! 3 instances in cluster mode (PostgreSQL and a `redis-server` of their own per round, the bus
//! carrying messages between them), in the same run and with the same offered load: [`SENDERS`]
//! SDK clients each pipelining numbered messages ([`WINDOW`] unacknowledged at most) to one
//! conversation, listeners spread over the instances.
//! A message is stored when its sender has its `ack`; it is fanned out when every listener has
//! it. Every listener must have every message exactly once and in each sender's order.

#[allow(dead_code)]
#[path = "../../../server/tests/common/postgres.rs"]
pub(crate) mod postgres;

use crate::crowd::{Crowd, Report};
use crate::server::{server_binary, ServerProcess};
use crate::worker::{parse_body, unix_us};
use crate::{gather, sender};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Clients sending at once, spread over the instances.
pub const SENDERS: usize = 3;
/// Messages a sender has in flight (sent, not yet acknowledged) at most.
pub const WINDOW: usize = 200;
/// Client processes the listeners are spread over (process `p` on instance `p % n`).
const PROCS: usize = 3;
/// How long a round's messages may take to be stored and fanned out.
const ROUND_WITHIN: Duration = Duration::from_secs(180);

/// All six rounds: SQLite, then PostgreSQL with 1, 2 and 3 instances, then PostgreSQL and Redis
/// with 2 and 3.
pub async fn run(per_sender: u64, listeners: usize) {
    let bin = server_binary();
    round(
        "sqlite x1",
        vec![ServerProcess::start(&bin, None, &[])],
        per_sender,
        listeners,
    )
    .await;
    for n in 1..=3 {
        let (servers, _) = crate::on_postgres(n, false);
        round(&format!("postgres x{n}"), servers, per_sender, listeners).await;
    }
    for n in 2..=3 {
        let (servers, _redis) = crate::on_postgres(n, true);
        let label = format!("postgres+redis x{n}");
        round(&label, servers, per_sender, listeners).await;
    }
}

async fn round(label: &str, servers: Vec<ServerProcess>, per_sender: u64, listeners: usize) {
    let urls: Vec<String> = servers.iter().map(ServerProcess::url).collect();
    let conv = "tp";
    // Each listener reports only each sender's last message (in order, it implies the others).
    let mut crowd = Crowd::spawn(&urls, listeners, PROCS, conv, per_sender);
    gather(&mut crowd, &servers[0]).await;
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        senders.push(sender(&urls[s % urls.len()], conv, &format!("sender{s}")).await);
    }
    let t0 = Instant::now();
    let t0_us = unix_us();
    let mut sending = Vec::new();
    for (s, client) in senders.iter().enumerate() {
        let client = client.clone();
        sending.push(tokio::spawn(async move {
            let mut in_flight = VecDeque::new();
            let mut acked = 0u64;
            for k in 0..per_sender {
                if in_flight.len() >= WINDOW {
                    let oldest: tokio::task::JoinHandle<_> = in_flight.pop_front().unwrap();
                    acked += u64::from(matches!(oldest.await, Ok(Ok(_))));
                }
                in_flight.push_back(tokio::spawn(client.send(conv, &format!("m{k}:{s}"))));
            }
            for send in in_flight {
                acked += u64::from(matches!(send.await, Ok(Ok(_))));
            }
            (acked, t0.elapsed())
        }));
    }
    let deadline = Instant::now() + ROUND_WITHIN;
    let (mut acked, mut stored_in) = (0, Duration::ZERO);
    for task in sending {
        if let Ok(Ok((n, took))) = tokio::time::timeout_at(deadline.into(), task).await {
            acked += n;
            stored_in = stored_in.max(took);
        }
    }
    let mut last_msgs = 0;
    let mut fanned_out_us = 0;
    while last_msgs < listeners * SENDERS {
        match crowd.next(deadline).await {
            Some(Report::Msg { body, at_us }) => {
                if parse_body(&body).is_some_and(|(_, k)| k + 1 == per_sender) {
                    last_msgs += 1;
                    fanned_out_us = fanned_out_us.max(at_us.saturating_sub(t0_us));
                }
            }
            Some(Report::Lagged { client, missed }) => {
                println!("throughput[{label}] WARNING client {client} lagged by {missed} events");
            }
            Some(_) => {}
            None => break,
        }
    }
    let check = crowd
        .check(
            per_sender,
            SENDERS,
            Instant::now() + Duration::from_secs(60),
            |_| {},
        )
        .await
        .expect("the client processes answer the check");
    crowd.stop().await;
    for client in &senders {
        client.close().await;
    }
    drop(servers);

    let total = per_sender * SENDERS as u64;
    let fanned = Duration::from_micros(fanned_out_us);
    println!(
        "throughput[{label}] {total} messages from {SENDERS} senders to {listeners} listeners: \
         acked {acked}; stored in {} ms = {:.0} msg/s; fanned out to all in {} ms = {:.0} msg/s \
         ({:.0} deliveries/s); listeners with all in order {} of {listeners}, lost {} \
         duplicated {} reordered {} (check waited {} ms)",
        stored_in.as_millis(),
        total as f64 / stored_in.as_secs_f64().max(1e-9),
        fanned.as_millis(),
        total as f64 / fanned.as_secs_f64().max(1e-9),
        (total * listeners as u64) as f64 / fanned.as_secs_f64().max(1e-9),
        check.clients_ok,
        check.lost,
        check.duplicated,
        check.reordered,
        check.waited_ms
    );
}
