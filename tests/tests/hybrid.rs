//! The hybrid strategy (issue 14) end to end: native clients with `Strategy::Hybrid` against the
//! real server through the fault proxy. Messages ride SSE (`carry=messages`), presence and typing
//! a WebSocket (`carry=ephemeral`); the WebSocket is blocked mid-stream (new upgrades refused, the
//! open ones black-holed) and restored while numbered messages flow: nothing lost, duplicated or
//! reordered, typing from another client still arrives while the WebSocket is blocked, and the
//! split comes back.

use lifeline::{Client, Event, Links, State, Strategy, TransportKind};
use lifeline_tests::crowd::{self, Crowd};
use lifeline_tests::harness::{self, WAIT};
use lifeline_tests::proxy::{FaultProxy, Policy, Which};
use lifeline_tests::recorder::Recorder;
use std::time::Duration;

const SSE: TransportKind = TransportKind::Sse;
const WS: TransportKind = TransportKind::WebSocket;

/// The split is whole: messages on a live SSE stream, the ephemeral WebSocket live.
fn split(state: &State, links: &Links) -> bool {
    *state
        == State::Connected {
            transport: SSE,
            degraded: false,
        }
        && links.messages == [(SSE, true)]
        && links.ephemeral == Some((WS, true))
}

/// Everything on SSE: the WebSocket is down, the state says degraded.
fn all_on_sse(state: &State, links: &Links) -> bool {
    *state
        == State::Connected {
            transport: SSE,
            degraded: true,
        }
        && links.messages.contains(&(SSE, true))
        && links.ephemeral != Some((WS, true))
}

/// Waits (bounded) until every member's state and links satisfy `pred`.
async fn wait_all(crowd: &Crowd, what: &str, pred: fn(&State, &Links) -> bool) {
    for (name, client, rec) in crowd.clients() {
        let mut links = client.watch_links();
        let reached = tokio::time::timeout(WAIT, async {
            loop {
                if pred(&client.state(), &links.borrow_and_update()) {
                    return;
                }
                // Links change on every turn that changes the state, so this wakes for both.
                links.changed().await.expect("client alive");
            }
        })
        .await;
        assert!(
            reached.is_ok(),
            "{name}: not {what} within {WAIT:?}: {:?} {:?}\n  {}",
            client.state(),
            client.links(),
            rec.state_log()
        );
    }
}

fn typing_from(events: &[Event], who: &str) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Typing { user, .. } if user == who))
        .count()
}

/// `typist` types in `conv` (again every 300 ms: the server coalesces repeats) until `watcher`
/// has seen one more typing event from them; bounded by `WAIT`.
async fn typing_arrives(typist: (&str, &Client), watcher: (&str, &Recorder), conv: &str) {
    let (who, client) = typist;
    let before = typing_from(&watcher.1.events(), who);
    let reached = tokio::time::timeout(WAIT, async {
        loop {
            client.typing(conv).await.expect("typing accepted");
            let seen = tokio::time::timeout(
                Duration::from_millis(300),
                watcher
                    .1
                    .wait_for("typing", WAIT, |e| typing_from(e, who) > before),
            )
            .await;
            if seen.is_ok() {
                return;
            }
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "{}: no typing from {who} within {WAIT:?}; states:\n  {}",
        watcher.0,
        watcher.1.state_log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_blocked_then_restored_mid_stream_loses_nothing_and_typing_still_arrives() {
    let server = harness::server().await;
    let proxy = FaultProxy::start(server.addr()).await;
    let conv = "hybrid";
    let crowd = crowd::gather(&server, &proxy.url(), conv, 2, 2, |b| {
        b.strategy(Strategy::Hybrid)
    })
    .await;
    wait_all(&crowd, "split", split).await;
    let (typist, watcher) = (&crowd.senders[0], &crowd.listeners[0]);
    typing_arrives((&typist.0, &typist.1), (&watcher.0, &watcher.2), conv).await;
    crowd
        .talk_through(150, Duration::from_millis(15), async {
            // The WebSocket is blocked: upgrades refused by the proxy, open ones black-holed.
            proxy.websocket(Policy::Refuse(502));
            proxy.blackhole_live(Which::WebSockets);
            wait_all(&crowd, "all on SSE", all_on_sse).await;
            // Typing still arrives: sent over HTTP, received on the SSE stream (carry=all).
            typing_arrives((&typist.0, &typist.1), (&watcher.0, &watcher.2), conv).await;
            proxy.websocket(Policy::Pass);
            wait_all(&crowd, "split again", split).await;
        })
        .await;
    typing_arrives((&typist.0, &typist.1), (&watcher.0, &watcher.2), conv).await;
    // The messages side never left SSE: one state for the app, degraded only while the
    // WebSocket was away.
    for (name, _, rec) in crowd.clients() {
        let transports = rec.connected_transports();
        assert!(
            transports.iter().all(|t| *t == SSE),
            "{name}: {}",
            rec.state_log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_single_strategy_opens_no_ephemeral_link() {
    let server = harness::server().await;
    let url = format!("http://{}", server.addr());
    let crowd = crowd::gather(&server, &url, "single", 1, 0, |b| b).await;
    let (name, client, rec) = &crowd.senders[0];
    rec.wait_connected(WS, WAIT).await;
    let links = client.links();
    assert_eq!(links.ephemeral, None, "{name}");
    assert_eq!(links.messages, [(WS, true)], "{name}");
}
