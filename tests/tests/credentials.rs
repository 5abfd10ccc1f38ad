//! Credentials and server pushback: an expired token is refreshed (at connect and mid-session), a
//! bad token fails without a retry loop, and a 429 (on connect, and on sends) is honoured.

use lifeline::{Cause, Event, State, TransportKind};
use lifeline_server::{make_token, ServerConfig};
use lifeline_tests::crowd;
use lifeline_tests::harness::{self, WAIT};
use lifeline_tests::proxy::{FaultProxy, Policy, RETRY_AFTER_SECS};
use lifeline_tests::recorder::Recorder;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_refreshed_at_connect_and_mid_session() {
    let server = harness::server().await;
    let secret = lifeline_server::config::TEST_SECRET.to_string();
    let calls = Arc::new(AtomicUsize::new(0));
    // The first token has expired already; the provider hands out tokens that live 2 s.
    let expired = make_token(&secret, "tia", unix_now() - 10);
    let (provider_calls, provider_secret) = (Arc::clone(&calls), secret.clone());
    let client = harness::client(&server.base_url(), 11)
        .token(expired)
        .token_provider(move || {
            provider_calls.fetch_add(1, Ordering::SeqCst);
            let token = make_token(&provider_secret, "tia", unix_now() + 2);
            async move { Ok::<_, String>(token) }
        })
        .build()
        .unwrap();
    let rec = Recorder::start(&client);
    client.connect();
    rec.wait_connected(TransportKind::WebSocket, WAIT).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "{}", rec.state_log());
    assert!(rec
        .states()
        .iter()
        .any(|(_, c)| matches!(c, Cause::AuthRejected { .. })));
    client.subscribe("tok").await.unwrap();
    assert!(client.send("tok", "before").await.is_ok());

    // Mid-session: wait (bounded) until the 2 s token has expired, then drop the connection.
    let deadline = Instant::now() + Duration::from_secs(5);
    let expiry = unix_now() + 3;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while unix_now() < expiry {
        assert!(Instant::now() < deadline);
        tick.tick().await;
    }
    let mark = rec.len();
    server.drop_connections();
    let after = client.send("tok", "after");
    rec.wait_connected_after(mark, TransportKind::WebSocket, WAIT)
        .await;
    assert!(after.await.is_ok());
    // At least one refresh mid-session; the server also ends a stream when its token expires, so
    // a 2 s token may have run out once more by now.
    assert!(calls.load(Ordering::SeqCst) >= 2, "{}", rec.state_log());
    rec.wait_messages(2, WAIT).await;
    let bodies: Vec<String> = rec.messages().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, ["before", "after"]);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_fails_without_a_retry_loop() {
    let server = harness::server().await;
    let proxy = FaultProxy::start(server.addr()).await;
    // Without a provider: fatal at the first refusal.
    let client = harness::client(&proxy.url(), 12)
        .token("not-a-token")
        .build()
        .unwrap();
    let rec = Recorder::start(&client);
    client.connect();
    let mut state = client.watch_state();
    tokio::time::timeout(WAIT, state.wait_for(|s| s.is_final()))
        .await
        .expect("fails")
        .unwrap();
    assert!(
        matches!(
            client.state(),
            State::Failed {
                error: Cause::AuthRejected { .. }
            }
        ),
        "{}",
        rec.state_log()
    );
    let without_provider = proxy.accepted();

    // With a provider that also hands out bad tokens: one refresh, then fatal.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let client = harness::client(&proxy.url(), 13)
        .token("still-not-a-token")
        .token_provider(move || {
            c.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, String>("forged".to_string()) }
        })
        .build()
        .unwrap();
    client.connect();
    let mut state = client.watch_state();
    tokio::time::timeout(WAIT, state.wait_for(|s| s.is_final()))
        .await
        .expect("fails")
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let with_provider = proxy.accepted() - without_provider;
    // One connection per attempt, and perhaps one racing rung each: no loop.
    assert!(without_provider <= 2, "{without_provider} connections");
    assert!(with_provider <= 4, "{with_provider} connections");
    assert!(matches!(
        client.send("x", "y").await,
        Err(lifeline::SendError::Closed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_on_connect_is_honoured() {
    let server = harness::server().await;
    let proxy = FaultProxy::start(server.addr()).await;
    proxy.websocket(Policy::Refuse(429));
    proxy.http(Policy::Refuse(429));
    let client = harness::client(&proxy.url(), 14)
        .token(harness::token(&server, "rita"))
        .build()
        .unwrap();
    let rec = Recorder::start(&client);
    client.connect();
    rec.wait_for("a ServerBusy wait", WAIT, |events| {
        events.iter().any(|e| {
            matches!(
                e,
                Event::StateChanged {
                    to: State::Reconnecting { .. },
                    cause: Cause::ServerBusy,
                    ..
                }
            )
        })
    })
    .await;
    let (at, next) = rec
        .timed()
        .into_iter()
        .find_map(|(at, e)| match e {
            Event::StateChanged {
                to:
                    State::Reconnecting {
                        next_attempt_at: Some(next),
                        ..
                    },
                cause: Cause::ServerBusy,
                ..
            } => Some((at, next)),
            _ => None,
        })
        .expect("a scheduled retry");
    let wait = lifeline::clock::to_std(next).saturating_duration_since(at);
    // The backoff alone would be at most 500 ms here; Retry-After asks for a second.
    assert!(
        wait >= Duration::from_secs(RETRY_AFTER_SECS) - Duration::from_millis(50),
        "retried after {wait:?}"
    );
    proxy.websocket(Policy::Pass);
    proxy.http(Policy::Pass);
    rec.wait_connected(TransportKind::WebSocket, WAIT).await;
    client.close().await;
}

async fn rate_limited(transport: TransportKind) {
    let server = harness::start(ServerConfig {
        rate_per_sec: 40,
        rate_burst: 10,
        ..harness::server_config()
    })
    .await;
    let url = server.base_url();
    let crowd = crowd::gather(&server, &url, "busy", 2, 1, |b| b.transports([transport])).await;
    let started = Instant::now();
    // 2 senders × 60 messages at once: far past the burst, so the server answers rate_limited.
    crowd
        .talk_through(60, Duration::from_millis(1), async {})
        .await;
    // 50 messages beyond the burst at 40/s take more than a second for each sender.
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_sends_wait_and_keep_their_order_over_sse() {
    rate_limited(TransportKind::Sse).await;
}

/// On a WebSocket, sends are pipelined: some reach the server after it refused an earlier one.
/// The protocol's penalty rule (refuse a user's other sends until the refused one comes back)
/// keeps them from being stored ahead of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_sends_wait_and_keep_their_order_over_websocket() {
    rate_limited(TransportKind::WebSocket).await;
}
