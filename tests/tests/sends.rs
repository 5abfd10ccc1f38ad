//! Sends against the real server: every message gets an id of its own and its own seq, even from
//! two clients of one user built with the same `seed`; and HTTP send batches fit the server's body
//! limit, so 64 legal 16 KiB messages sent at once on SSE or long polling are all acknowledged.

use lifeline::{Event, TransportKind};
use lifeline_core::protocol::MAX_BODY_BYTES;
use lifeline_tests::harness::{self, WAIT};
use lifeline_tests::recorder::Recorder;
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_of_one_user_with_the_same_seed_each_get_their_own_seq() {
    let server = harness::server().await;
    let url = server.base_url();
    let token = harness::token(&server, "twin");
    let twins: Vec<_> = (0..2)
        .map(|_| {
            let client = harness::client(&url, 7)
                .token(token.clone())
                .build()
                .expect("client builds");
            let recorder = Recorder::start(&client);
            client.connect();
            (client, recorder)
        })
        .collect();
    for (client, _) in &twins {
        tokio::time::timeout(WAIT, client.subscribe("twins"))
            .await
            .expect("subscribe in time")
            .expect("subscribed");
    }
    for (i, (client, _)) in twins.iter().enumerate() {
        tokio::time::timeout(WAIT, client.send("twins", &format!("from twin {i}")))
            .await
            .expect("acknowledged in time")
            .expect("acknowledged");
    }
    for (client, recorder) in &twins {
        recorder.wait_messages(2, WAIT).await;
        let messages = recorder.messages();
        let bodies: BTreeSet<&str> = messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, BTreeSet::from(["from twin 0", "from twin 1"]));
        assert_ne!(messages[0].seq, messages[1].seq);
        assert_ne!(messages[0].id, messages[1].id, "two messages, two ids");
        // Each twin's ack names a seq of its own message.
        let acked: Vec<u64> = recorder
            .events()
            .iter()
            .filter_map(|e| match e {
                Event::Acked { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(acked.len(), 1);
        assert!(messages.iter().any(|m| m.seq == acked[0]));
        let page = client.history("twins", None, 10).await.expect("history");
        assert_eq!(page.messages.len(), 2, "both messages are stored");
    }
    for (client, _) in &twins {
        client.close().await;
    }
}

async fn sixty_four_full_bodies_on(transport: TransportKind) {
    let server = harness::server().await;
    let url = server.base_url();
    let token = harness::token(&server, "bulk");
    // Membership is durable: join once, from another client.
    let joiner = harness::client(&url, 10)
        .token(token.clone())
        .build()
        .expect("client builds");
    joiner.connect();
    tokio::time::timeout(WAIT, joiner.subscribe("bulk"))
        .await
        .expect("subscribe in time")
        .expect("subscribed");
    joiner.close().await;
    let client = harness::client(&url, 11)
        .token(token)
        .transports([transport])
        .build()
        .expect("client builds");
    let recorder = Recorder::start(&client);
    // Sent before connecting, as an app offline for a while does: all 64 wait in the outbox and
    // go out together once the transport is live (in one POST of 1,052,547 bytes before batches
    // were bounded by bytes: 413, and all 64 failed).
    let sends: Vec<_> = (0..64)
        .map(|i| {
            let body = format!("{i:02}{}", "x".repeat(MAX_BODY_BYTES - 2));
            client.send("bulk", &body)
        })
        .collect();
    client.connect();
    for (i, send) in sends.into_iter().enumerate() {
        tokio::time::timeout(WAIT, send)
            .await
            .unwrap_or_else(|_| panic!("send {i}: no answer in time"))
            .unwrap_or_else(|e| panic!("send {i} failed: {e}"));
    }
    recorder.wait_messages(64, WAIT).await;
    assert!(
        recorder
            .connected_transports()
            .iter()
            .all(|t| *t == transport),
        "{}",
        recorder.state_log()
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_messages_of_16_kib_on_sse_are_all_acknowledged() {
    sixty_four_full_bodies_on(TransportKind::Sse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_messages_of_16_kib_on_long_polling_are_all_acknowledged() {
    sixty_four_full_bodies_on(TransportKind::LongPoll).await;
}
