//! Two server instances on one real PostgreSQL, one of them holding every write transaction open
//! for a while (`commit_hold_ms`): sequence numbers must become visible in increasing order (a
//! reader never sees a later seq while an earlier one is uncommitted, which would make it skip
//! the earlier one for good), one idempotency key sent to both instances stores one message, and
//! a stream on one instance gets the messages stored through the other, once and in order; a
//! re-subscribe writes nothing.

mod common;

use common::postgres::pg;
use common::*;
use lifeline_core::protocol::{decode_server_batch, ServerFrame};
use lifeline_server::{RunningServer, Secret, ServerConfig};
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

/// How long instance A holds each write transaction open.
const HOLD_MS: u64 = 1_500;

async fn instance(url: &str, hold_ms: u64) -> RunningServer {
    server_with(ServerConfig {
        postgres: Some(Secret(url.to_string())),
        commit_hold_ms: hold_ms,
        ..ServerConfig::for_tests()
    })
    .await
}

/// POSTs one frame to `{base_url}/v1/send` and returns the answer's body (in a spawned task).
async fn post_send(
    base_url: String,
    token: String,
    frame: lifeline_core::protocol::ClientFrame,
) -> String {
    http()
        .post(format!("{base_url}/v1/send?v=1"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"frames\":[{}]}}",
            lifeline_core::protocol::encode(&frame)
        ))
        .send()
        .await
        .expect("send request")
        .text()
        .await
        .expect("send answer")
}

async fn database() -> (String, tokio_postgres::Client) {
    let url = tokio::task::spawn_blocking(|| pg().new_database())
        .await
        .unwrap();
    let (client, conn) = tokio_postgres::connect(&url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    (url, client)
}

/// Waits (bounded) until instance A's writer holds its commit: a session of the database idle
/// inside a transaction whose last statement stored an idempotency key (the last one before the
/// hold; between earlier statements a session is briefly idle in transaction too).
async fn until_a_transaction_is_held(observer: &tokio_postgres::Client) {
    let deadline = Instant::now() + WAIT;
    loop {
        let held: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND state = 'idle in transaction'
                   AND query LIKE 'INSERT INTO send_keys%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if held > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "instance A never held a transaction"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seqs_become_visible_in_order_across_instances_despite_commit_delays() {
    let (url, observer) = database().await;
    let a = instance(&url, HOLD_MS).await;
    let b = instance(&url, 0).await;
    let ta = token(&a, "ann");
    let tb = token(&b, "bob");
    join(&b, &tb, "room").await;
    // ann joins through B (A would hold the join too); A's writer checks membership in the
    // database, so A accepts her sends.
    let tann_b = token(&b, "ann");
    join(&b, &tann_b, "room").await;
    let base = send_one(&b, &tb, "b0", "room", "before").await;

    // A takes the next number and holds its transaction; B sends meanwhile.
    let a_task = tokio::spawn(post_send(a.base_url(), ta, send("a1", "room", "from A")));
    until_a_transaction_is_held(&observer).await;
    let b_task = tokio::spawn(post_send(
        b.base_url(),
        tb.clone(),
        send("b1", "room", "from B"),
    ));

    // A reader polling storage all along: what it sees above `base` is always a gap-free run.
    let deadline = Instant::now() + Duration::from_millis(HOLD_MS) + WAIT;
    let mut observations = 0;
    loop {
        let seqs: Vec<i64> = observer
            .query(
                "SELECT seq FROM messages WHERE seq > $1 ORDER BY seq",
                &[&(base as i64)],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        observations += 1;
        let expected: Vec<i64> = (1..=seqs.len() as i64).map(|i| base as i64 + i).collect();
        assert_eq!(
            seqs, expected,
            "a reader saw a later seq before an earlier one committed"
        );
        if seqs.len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both messages not committed in time: {seqs:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        observations > 10,
        "the reader looked only {observations} times"
    );
    let ack = |body: &str| -> u64 {
        match decode_server_batch(body).expect("batch").frames[..] {
            [ServerFrame::Ack { seq, .. }] => seq,
            ref other => panic!("expected an ack, got {other:?}"),
        }
    };
    let seq_a = ack(&within("A's answer", a_task).await.unwrap());
    let seq_b = ack(&within("B's answer", b_task).await.unwrap());
    assert_eq!((seq_a, seq_b), (base + 1, base + 2));

    // B's history and a stream resuming from `base` on B see both, in order.
    let mut ws = ws_connect(&b, &format!("token={tb}&cursor={base}")).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        if let ServerFrame::Msg(m) = ws_next_durable(&mut ws).await {
            got.push(m.seq);
        }
    }
    assert_eq!(got, vec![seq_a, seq_b]);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_sent_to_two_instances_stores_one_message() {
    let (url, observer) = database().await;
    let a = instance(&url, HOLD_MS).await;
    let b = instance(&url, 0).await;
    let tb = token(&b, "cid");
    join(&b, &tb, "room").await;
    let ta = token(&a, "cid");
    let a_task = tokio::spawn(post_send(a.base_url(), ta, send("k1", "room", "once")));
    until_a_transaction_is_held(&observer).await;
    // While A holds the key's transaction open, the same key arrives at B.
    let seq_b = send_one(&b, &tb, "k1", "room", "once").await;
    let answer_a = within("A's answer", a_task).await.unwrap();
    let frames = decode_server_batch(&answer_a).expect("batch").frames;
    assert_eq!(
        frames,
        vec![ServerFrame::Ack {
            id: "k1".into(),
            seq: seq_b
        }]
    );
    let stored: i64 = observer
        .query_one("SELECT count(*) FROM messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_one_instance_gets_messages_stored_through_another_in_order() {
    let (url, _observer) = database().await;
    let a = instance(&url, 0).await;
    let b = instance(&url, 0).await;
    let rita = token(&a, "rita");
    join(&a, &rita, "room").await;
    let will_a = token(&a, "will");
    let will_b = token(&b, "will");
    join(&b, &will_b, "room").await;
    let mut ws = ws_connect(&a, &format!("token={rita}")).await;
    assert!(matches!(ws_next(&mut ws).await, ServerFrame::Hello(_)));

    // Two senders, one per instance, at once: their messages interleave in storage.
    const EACH: usize = 100;
    let via = |s: &RunningServer, t: String, tag: &'static str| {
        let base_url = s.base_url();
        tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                let body = post_send(
                    base_url.clone(),
                    t.clone(),
                    send(&format!("{tag}{i}"), "room", tag),
                )
                .await;
                match decode_server_batch(&body).expect("batch").frames[..] {
                    [ServerFrame::Ack { seq, .. }] => seqs.push(seq),
                    ref other => panic!("expected an ack, got {other:?}"),
                }
            }
            seqs
        })
    };
    // The stream is read while the sends go on: a client that stops reading stops answering
    // pings, and the server closes it after three silent heartbeats.
    let reading = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 2 * EACH {
            if let ServerFrame::Msg(m) = ws_next_durable(&mut ws).await {
                got.push(m.seq);
            }
        }
        got
    });
    let from_a = via(&a, will_a, "a");
    let from_b = via(&b, will_b, "b");
    let mut acked: Vec<u64> = within("sends via A", from_a).await.unwrap();
    acked.extend(within("sends via B", from_b).await.unwrap());
    acked.sort_unstable();

    let got = within("the stream on A", reading).await.unwrap();
    assert_eq!(
        got, acked,
        "every message once, in seq order, on instance A"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_revokes_through_one_instance_reach_streams_on_another() {
    let (url, _observer) = database().await;
    let a = instance(&url, 0).await;
    let b = instance(&url, 0).await;
    let tina_a = token(&a, "tina");
    let tina_b = token(&b, "tina");
    let sam = token(&b, "sam");
    join(&b, &sam, "room").await;
    join(&b, &sam, "other").await;
    join(&a, &tina_a, "other").await;
    let mut ws = ws_connect(&a, &format!("token={tina_a}")).await;
    assert!(matches!(ws_next(&mut ws).await, ServerFrame::Hello(_)));

    // tina joins `room` through B; her stream on A gets what is sent there.
    join(&b, &tina_b, "room").await;
    let s1 = send_one(&b, &sam, "s1", "room", "hello tina").await;
    let m = loop {
        if let ServerFrame::Msg(m) = ws_next_durable(&mut ws).await {
            break m;
        }
    };
    assert_eq!((m.seq, m.conv.as_str()), (s1, "room"));

    // The application revokes her membership through B: her stream on A is told at once and
    // carries nothing of `room` any more.
    let status = http()
        .delete(format!(
            "{}/v1/admin/conversations/room/members/tina",
            b.base_url()
        ))
        .bearer_auth(lifeline_server::config::TEST_ADMIN_SECRET)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    let revoked = loop {
        match ws_next_durable(&mut ws).await {
            ServerFrame::Error(e) => break e,
            ServerFrame::Msg(m) => panic!("unexpected message {m:?}"),
            _ => {}
        }
    };
    assert_eq!(
        (revoked.code, revoked.conv.as_deref()),
        (lifeline_core::protocol::ErrorCode::Forbidden, Some("room"))
    );
    send_one(&b, &sam, "s2", "room", "not for tina").await;
    let marker = send_one(&b, &sam, "s3", "other", "still for tina").await;
    let next = loop {
        if let ServerFrame::Msg(m) = ws_next_durable(&mut ws).await {
            break m;
        }
    };
    assert_eq!((next.seq, next.conv.as_str()), (marker, "other"));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_subscribe_stores_and_logs_nothing() {
    // Every client re-subscribes to each of its conversations when it reconnects: in a reconnect
    // storm those must not each write a change row under the lock that sequence numbers take.
    let (url, observer) = database().await;
    let a = instance(&url, 0).await;
    let b = instance(&url, 0).await;
    let changes = || async {
        observer
            .query_one("SELECT count(*) FROM member_changes", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let ta = token(&a, "rex");
    join(&a, &ta, "room").await;
    assert_eq!(changes().await, 1);
    join(&a, &ta, "room").await;
    join(&b, &token(&b, "rex"), "room").await;
    assert_eq!(
        changes().await,
        1,
        "a re-subscribe logged a membership change"
    );
    a.shutdown().await;
    b.shutdown().await;
}
