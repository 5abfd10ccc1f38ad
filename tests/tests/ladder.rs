//! The transport ladder under faults injected from outside the client (the fault proxy and the
//! server's switches): WebSocket refused → SSE; SSE refused too → long polling; WebSocket back →
//! climbs back up; a WebSocket black-holed at connect; a WebSocket or an SSE stream black-holed mid-stream. Every
//! scenario carries traffic and checks delivery.

use lifeline::{Cause, Event, State, TransportKind};
use lifeline_server::FaultUpdate;
use lifeline_tests::crowd;
use lifeline_tests::harness::{self, WAIT};
use lifeline_tests::proxy::{FaultProxy, Policy, Which};
use lifeline_tests::recorder::Recorder;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falls_down_the_ladder_and_climbs_back_while_delivering() {
    let server = harness::server().await;
    let proxy = FaultProxy::start(server.addr()).await;
    // A reverse proxy that does not pass upgrades: 502 to every WebSocket request.
    proxy.websocket(Policy::Refuse(502));
    let crowd = crowd::gather(&server, &proxy.url(), "ladder", 2, 2, |b| b).await;
    crowd
        .wait_all_connected_after(&[0; 4], TransportKind::Sse)
        .await;
    crowd
        .talk_through(150, Duration::from_millis(15), async {
            // SSE refused too: long polling.
            let marks = crowd.marks();
            server.set_faults(FaultUpdate {
                refuse_sse: Some(true),
                ..FaultUpdate::default()
            });
            proxy.reset_all();
            crowd
                .wait_all_connected_after(&marks, TransportKind::LongPoll)
                .await;
            // Everything back: the clients probe and climb back to WebSocket.
            let marks = crowd.marks();
            server.set_faults(FaultUpdate {
                refuse_sse: Some(false),
                ..FaultUpdate::default()
            });
            proxy.websocket(Policy::Pass);
            crowd
                .wait_all_connected_after(&marks, TransportKind::WebSocket)
                .await;
        })
        .await;
    for (name, _, rec) in crowd.clients() {
        let transports = rec.connected_transports();
        assert_eq!(
            transports.last(),
            Some(&TransportKind::WebSocket),
            "{name}: {}",
            rec.state_log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_blackholed_at_connect_first_message_well_under_connect_timeout() {
    let server = harness::server().await;
    let proxy = FaultProxy::start(server.addr()).await;
    proxy.websocket(Policy::Blackhole);
    let connect_timeout = Duration::from_secs(10);
    let client = harness::client(&proxy.url(), 7)
        .connect_timeout(connect_timeout)
        .token(harness::token(&server, "eve"))
        .build()
        .unwrap();
    let rec = Recorder::start(&client);
    let started = Instant::now();
    client.connect();
    client.subscribe("bh").await.unwrap();
    client.send("bh", "first").await.unwrap();
    rec.wait_messages(1, WAIT).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < connect_timeout / 4,
        "first message after {elapsed:?}; states:\n  {}",
        rec.state_log()
    );
    assert_eq!(
        rec.connected_transports().first(),
        Some(&TransportKind::Sse)
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_mid_stream_is_noticed_within_the_heartbeat_deadline_and_replaced() {
    blackholed_mid_stream(TransportKind::WebSocket, Which::WebSockets, "midbh").await;
}

/// The same over Server-Sent Events: the stream and the pooled connections of the HTTP sends are
/// black-holed together; the server's heartbeats stop arriving and the stuck sends are abandoned
/// and sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_blackholed_mid_stream_is_noticed_within_the_heartbeat_deadline_and_replaced() {
    blackholed_mid_stream(TransportKind::Sse, Which::Http, "ssebh").await;
}

async fn blackholed_mid_stream(transport: TransportKind, which: Which, conv: &str) {
    let server = harness::server().await;
    let proxy = FaultProxy::start(server.addr()).await;
    let crowd = crowd::gather(&server, &proxy.url(), conv, 2, 1, |b| {
        b.transports([transport])
    })
    .await;
    crowd.wait_all_connected_after(&[0, 0, 0], transport).await;
    crowd
        .talk_through(120, Duration::from_millis(20), async {
            // Let traffic flow first.
            let (_, _, rec) = &crowd.listeners[0];
            rec.wait_messages(20, WAIT).await;
            let marks = crowd.marks();
            let cut = Instant::now();
            assert!(proxy.blackhole_live(which) >= 3);
            crowd
                .wait_all_state_after(&marks, "a heartbeat timeout", |_, cause| {
                    matches!(cause, Cause::HeartbeatTimeout { .. })
                })
                .await;
            crowd.wait_all_connected_after(&marks, transport).await;
            for ((name, _, rec), &mark) in crowd.clients().zip(&marks) {
                let noticed = rec
                    .timed()
                    .into_iter()
                    .skip(mark)
                    .find(|(_, e)| {
                        matches!(
                            e,
                            Event::StateChanged {
                                cause: Cause::HeartbeatTimeout { .. },
                                ..
                            }
                        )
                    })
                    .map(|(at, _)| at.duration_since(cut))
                    .unwrap();
                assert!(
                    noticed <= harness::silence_limit() + Duration::from_millis(750),
                    "{name} noticed after {noticed:?}"
                );
            }
        })
        .await;
    for (name, _, rec) in crowd.clients() {
        assert!(
            matches!(rec.states().last(), Some((State::Connected { .. }, _))),
            "{name}: {}",
            rec.state_log()
        );
    }
}
