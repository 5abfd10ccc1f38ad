//! Delivery without faults, on each transport: the baseline the fault scenarios build on.
//! Several clients send while others listen; every message arrives once, in order, everywhere.

use lifeline::TransportKind;
use lifeline_tests::{crowd, harness};
use std::time::Duration;

async fn on(transport: TransportKind) {
    let server = harness::server().await;
    let url = server.base_url();
    let crowd = crowd::gather(&server, &url, "room", 3, 2, |b| b.transports([transport])).await;
    for (name, _, rec) in crowd.clients() {
        assert!(
            rec.connected_transports().iter().all(|t| *t == transport),
            "{name} used another transport: {}",
            rec.state_log()
        );
    }
    crowd
        .talk_through(30, Duration::from_millis(2), async {})
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_delivers_every_message_once_in_order() {
    on(TransportKind::WebSocket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_delivers_every_message_once_in_order() {
    on(TransportKind::Sse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_delivers_every_message_once_in_order() {
    on(TransportKind::LongPoll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_back_through_a_conversation() {
    let server = harness::server().await;
    let url = server.base_url();
    let crowd = crowd::gather(&server, &url, "hist", 1, 0, |b| b).await;
    crowd
        .talk_through(25, Duration::from_millis(1), async {})
        .await;
    let (_, client, _) = &crowd.senders[0];
    let newest = client.history("hist", None, 10).await.expect("page 1");
    assert_eq!(newest.messages.len(), 10);
    assert_eq!(newest.messages.last().unwrap().body, "s0#24");
    let mut before = newest.next_before;
    let mut seen = newest.messages.len();
    for _ in 0..5 {
        let Some(b) = before else { break };
        let page = client
            .history("hist", Some(b), 10)
            .await
            .expect("older page");
        seen += page.messages.len();
        before = page.next_before;
    }
    assert_eq!(seen, 25);
    assert!(before.is_none());
    let err = client.history("not-a-member", None, 10).await.unwrap_err();
    assert!(
        matches!(err, lifeline::HistoryError::Server { status: 403, .. }),
        "{err:?}"
    );
    client.close().await;
    assert!(client.state().is_final());
    assert!(matches!(
        client.send("hist", "late").await,
        Err(lifeline::SendError::Closed)
    ));
}
