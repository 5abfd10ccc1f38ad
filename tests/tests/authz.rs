//! Authorization and token expiry through the native SDK against the real server: messages keep
//! arriving exactly once while short-lived tokens expire on open streams (every transport), and a
//! refused or revoked subscription reaches the application as a typed `forbidden`.

use lifeline::{CallError, Cause, ErrorCode, Event, TransportKind};
use lifeline_server::config::{TEST_ADMIN_SECRET, TEST_SECRET};
use lifeline_server::token::unix_now;
use lifeline_server::{mint, Claims, TokenKey};
use lifeline_tests::harness::{self, WAIT};
use lifeline_tests::recorder::Recorder;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the provider's tokens live.
const TOKEN_TTL_SECS: u64 = 2;

async fn exactly_once_across_expiries(transport: TransportKind, seed: u64) {
    let server = harness::server().await;
    let key = TokenKey::new("test", TEST_SECRET).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let provider_calls = Arc::clone(&calls);
    let first = mint(
        &key,
        &Claims::everything("lena", unix_now() + TOKEN_TTL_SECS),
    );
    let client = harness::client(&server.base_url(), seed)
        .transports([transport])
        .token(first)
        .token_provider(move || {
            provider_calls.fetch_add(1, Ordering::SeqCst);
            let token = mint(
                &key,
                &Claims::everything("lena", unix_now() + TOKEN_TTL_SECS),
            );
            async move { Ok::<_, String>(token) }
        })
        .build()
        .unwrap();
    let rec = Recorder::start(&client);
    client.connect();
    rec.wait_connected(transport, WAIT).await;
    client.subscribe("expiring").await.unwrap();

    // Another user writes steadily for about 8 s: the listener's token expires 3+ times meanwhile.
    // (One message per 400 ms, slower than the client's 300 ms ping beat: a client that hears
    // something more often than its ping interval never pings and the server drops it for
    // silence, which would refresh the token at reconnect and hide what this test is about.)
    let writer = harness::token(&server, "wes");
    let writer_client = harness::client(&server.base_url(), seed + 1)
        .token(writer)
        .build()
        .unwrap();
    writer_client.connect();
    writer_client.subscribe("expiring").await.unwrap();
    const N: usize = 20;
    for i in 0..N {
        writer_client
            .send("expiring", &format!("m{i}"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    rec.wait_messages(N, WAIT).await;
    let bodies: Vec<String> = rec.messages().into_iter().map(|m| m.body).collect();
    let expected: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, expected, "{}", rec.state_log());
    let expiries = rec
        .states()
        .iter()
        .filter(|(_, c)| matches!(c, Cause::AuthRejected { .. }))
        .count();
    assert!(expiries >= 3, "{}", rec.state_log());
    assert!(
        calls.load(Ordering::SeqCst) >= 3,
        "the token should have been refreshed at least three times, was {}: {}",
        calls.load(Ordering::SeqCst),
        rec.state_log()
    );
    client.close().await;
    writer_client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_messages_arrive_exactly_once_across_token_expiries() {
    exactly_once_across_expiries(TransportKind::WebSocket, 91).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_messages_arrive_exactly_once_across_token_expiries() {
    exactly_once_across_expiries(TransportKind::Sse, 93).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_messages_arrive_exactly_once_across_token_expiries() {
    exactly_once_across_expiries(TransportKind::LongPoll, 95).await;
}

async fn admin(server: &lifeline_server::RunningServer, method: reqwest::Method, path: &str) {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .request(
            method,
            format!("{}/v1/admin/conversations/{path}", server.base_url()),
        )
        .header("authorization", format!("Bearer {TEST_ADMIN_SECRET}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

fn forbidden_for(events: &[Event], conv: &str) -> usize {
    events
        .iter()
        .filter(|e| {
            matches!(e, Event::SubscribeFailed { conv: c, code: ErrorCode::Forbidden } if c == conv)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_revoked_subscriptions_reach_the_app_as_forbidden() {
    let server = harness::server().await;
    let token = server.issue_token_with(Claims {
        sub: "pia".into(),
        exp: unix_now() + 3600,
        kid: None,
        convs: vec!["lobby".into()],
        ops: None,
    });
    let client = harness::client(&server.base_url(), 97)
        .token(token)
        .build()
        .unwrap();
    let rec = Recorder::start(&client);
    client.connect();
    rec.wait_connected(TransportKind::WebSocket, WAIT).await;
    // Not allowed by the token: a typed error from `subscribe` and an event.
    assert_eq!(
        client.subscribe("private").await,
        Err(CallError::Rejected {
            code: ErrorCode::Forbidden
        })
    );
    rec.wait_for("SubscribeFailed(private)", WAIT, |e| {
        forbidden_for(e, "private") == 1
    })
    .await;
    // Granted by the application's backend: allowed.
    admin(&server, reqwest::Method::PUT, "private/members/pia").await;
    client.subscribe("private").await.unwrap();
    // Revoked: the app is told with the same typed event, at once.
    admin(&server, reqwest::Method::DELETE, "private/members/pia").await;
    rec.wait_for("SubscribeFailed(private) after the revocation", WAIT, |e| {
        forbidden_for(e, "private") == 2
    })
    .await;
    client.close().await;
}
