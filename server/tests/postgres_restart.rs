//! PostgreSQL restarted under a running server (every connection cut): sends fail with a typed
//! `internal` error while it is gone, a client retrying under the same id gets exactly one
//! message stored, and storage, streams and history work again without restarting the server.

mod common;

use common::postgres::pg;
use common::*;
use lifeline_core::protocol::{ErrorCode, ServerFrame};
use lifeline_server::{Secret, ServerConfig};
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_rides_out_a_postgres_restart() {
    let url = tokio::task::spawn_blocking(|| pg().new_database())
        .await
        .unwrap();
    let s = server_with(ServerConfig {
        postgres: Some(Secret(url)),
        ..ServerConfig::for_tests()
    })
    .await;
    let t = token(&s, "pat");
    join(&s, &t, "room").await;
    let s1 = send_one(&s, &t, "m1", "room", "before the restart").await;

    tokio::task::spawn_blocking(|| pg().restart())
        .await
        .unwrap();

    // The first write after the restart may meet the cut connection: a typed error, never a
    // panic or a hang; retrying under the same id (as the SDK does) ends in one ack.
    let deadline = Instant::now() + WAIT;
    let mut failures = 0;
    let s2 = loop {
        match send_ok(&s, &t, &[send("m2", "room", "after the restart")])
            .await
            .as_slice()
        {
            [ServerFrame::Ack { seq, .. }] => break *seq,
            [ServerFrame::Error(e)] if e.code == ErrorCode::Internal => failures += 1,
            other => panic!("expected an ack or `internal`, got {other:?}"),
        }
        assert!(Instant::now() < deadline, "no ack after the restart");
    };
    assert!(
        failures <= 1,
        "{failures} failed attempts after the restart"
    );
    let s3 = send_one(&s, &t, "m3", "room", "and later").await;
    assert!(s1 < s2 && s2 < s3, "{s1} < {s2} < {s3}");

    // A stream resuming from before the restart gets each message once, in order.
    let mut ws = ws_connect(&s, &format!("token={t}&cursor={}", s1 - 1)).await;
    let mut got = Vec::new();
    while got.len() < 3 {
        if let ServerFrame::Msg(m) = ws_next_durable(&mut ws).await {
            got.push((m.seq, m.id));
        }
    }
    assert_eq!(
        got,
        vec![(s1, "m1".into()), (s2, "m2".into()), (s3, "m3".into())]
    );
    s.shutdown().await;
}
