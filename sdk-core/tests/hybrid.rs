//! The hybrid strategy (issue 14) on simulated time: the ladder scenarios of `scenarios.rs` run
//! again with messages on SSE (then long polling) and presence and typing on a WebSocket of their
//! own. Each checks exactly-once delivery across the faults, where typing travels both ways, what
//! each stream carries at the server (`carry`), and that the split comes back.

#![cfg(feature = "hybrid")]

mod sim;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use lifeline_core::protocol::ServerFrame;
use lifeline_core::{Event, State, Strategy, TransportKind};
use sim::{config, Sim, PEER};
use std::time::Duration;
use TransportKind::{LongPoll, Sse, WebSocket};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn hybrid(seed: u64) -> Sim {
    let mut c = config(seed);
    c.strategy = Strategy::Hybrid;
    Sim::new(c)
}

fn stream(kind: TransportKind, carry: &str) -> (TransportKind, String) {
    (kind, carry.to_string())
}

/// The split is whole: messages on `messages_on` carrying messages only, presence and typing on
/// the live ephemeral WebSocket, and the state says so (degraded only for a rung below SSE).
fn split_on(sim: &Sim, messages_on: TransportKind) -> bool {
    let streams = sim.open_streams();
    let messages_stream_ok = match messages_on {
        LongPoll => streams == [stream(WebSocket, "ephemeral")],
        kind => {
            streams.contains(&stream(kind, "messages"))
                && streams.contains(&stream(WebSocket, "ephemeral"))
                && streams.len() == 2
        }
    };
    sim.session.ephemeral() == Some((WebSocket, true))
        && sim.session.state()
            == &State::Connected {
                transport: messages_on,
                degraded: messages_on != Sse,
            }
        && messages_stream_ok
}

/// Everything on SSE with `carry=all`, the WebSocket down, the state degraded.
fn all_on_sse(sim: &Sim) -> bool {
    sim.session.ephemeral().is_none_or(|(_, live)| !live)
        && sim.session.state()
            == &State::Connected {
                transport: Sse,
                degraded: true,
            }
        && sim.open_streams().contains(&stream(Sse, "all"))
}

fn typing_events(sim: &Sim) -> usize {
    sim.count_events(|e| matches!(e, Event::Typing { .. }))
}

/// A peer types: the event reaches the application once, whichever stream carries it.
fn peer_types_and_it_arrives_once(sim: &mut Sim) {
    let before = typing_events(sim);
    sim.broadcast(ServerFrame::Typing {
        conv: "general".into(),
        user: PEER.into(),
    });
    sim.drain();
    sim.run_for(secs(1));
    assert_eq!(
        typing_events(sim),
        before + 1,
        "typing from a peer, streams {:?}",
        sim.open_streams()
    );
}

fn type_now(sim: &mut Sim) {
    let now = sim.now;
    sim.session.typing(now, "general").expect("typing accepted");
    sim.drain();
    sim.run_for(secs(1));
}

fn publish_some(sim: &mut Sim, n: usize, tag: &str) {
    for i in 0..n {
        sim.publish("general", &format!("{tag}-{i}"));
        sim.run_for(Duration::from_millis(300));
    }
}

fn assert_exactly_once(sim: &Sim) {
    sim.assert_delivered_exactly_once_in_order();
    sim.assert_nothing_lost_after(0);
}

#[test]
fn messages_ride_sse_and_typing_the_websocket_both_ways() {
    let mut sim = hybrid(1);
    sim.connect();
    sim.run_until(secs(5), |s| split_on(s, Sse));
    publish_some(&mut sim, 5, "a");
    peer_types_and_it_arrives_once(&mut sim);
    type_now(&mut sim);
    assert_eq!(
        (sim.server.typing_over_ws, sim.server.typing_over_http),
        (1, 0)
    );
    // An application's send goes over HTTP with the messages link, and comes back once on SSE.
    sim.send("general", "mine");
    sim.run_for(secs(2));
    assert_eq!(sim.acked().len(), 1);
    assert!(!sim.server.send_requests.is_empty(), "sent over /v1/send");
    assert_eq!(sim.delivered.len(), 6);
    assert_exactly_once(&sim);
    assert!(split_on(&sim, Sse));
}

#[test]
fn a_refused_websocket_puts_typing_on_sse_and_http_until_it_is_back() {
    let mut sim = hybrid(2);
    sim.net.refuse.insert(WebSocket);
    sim.connect();
    sim.run_until(secs(5), all_on_sse);
    publish_some(&mut sim, 3, "a");
    peer_types_and_it_arrives_once(&mut sim);
    type_now(&mut sim);
    assert_eq!(
        (sim.server.typing_over_ws, sim.server.typing_over_http),
        (0, 1)
    );
    // Still refused after a minute of retries: the messages link never stopped.
    sim.run_for(secs(60));
    assert!(all_on_sse(&sim));
    sim.net.refuse.remove(&WebSocket);
    for i in 0..20 {
        sim.publish("general", &format!("b-{i}"));
        sim.run_for(secs(1));
    }
    // Retried with the reconnect backoff (cap 15 s): back within the 20 s above.
    assert!(split_on(&sim, Sse), "streams {:?}", sim.open_streams());
    peer_types_and_it_arrives_once(&mut sim);
    type_now(&mut sim);
    assert_eq!(sim.server.typing_over_ws, 1);
    assert_eq!(sim.delivered.len(), 23);
    assert_exactly_once(&sim);
}

#[test]
fn a_refused_event_stream_puts_messages_on_long_polling_beside_the_websocket() {
    let mut sim = hybrid(3);
    sim.net.refuse.insert(Sse);
    sim.connect();
    sim.run_until(secs(10), |s| split_on(s, LongPoll));
    publish_some(&mut sim, 5, "a");
    peer_types_and_it_arrives_once(&mut sim);
    type_now(&mut sim);
    assert_eq!(sim.server.typing_over_ws, 1);
    let last_poll = sim
        .server
        .carries
        .iter()
        .rev()
        .find(|(kind, _)| *kind == LongPoll)
        .cloned();
    assert_eq!(last_poll, Some(stream(LongPoll, "messages")));
    assert_eq!(sim.delivered.len(), 5);
    assert_exactly_once(&sim);
}

#[test]
fn a_black_holed_websocket_at_connect_and_mid_stream_loses_no_message() {
    let mut sim = hybrid(4);
    sim.net.blackhole_open.insert(WebSocket);
    sim.connect();
    // Messages do not wait for the WebSocket.
    let took = sim.run_until(secs(5), all_on_sse);
    assert!(took < secs(1), "connected after {took:?}");
    publish_some(&mut sim, 3, "a");
    peer_types_and_it_arrives_once(&mut sim);
    sim.net.blackhole_open.remove(&WebSocket);
    sim.run_until(secs(40), |s| split_on(s, Sse));
    // Now the live WebSocket goes silent: its liveness rules find it dead, everything moves
    // back to SSE, and typing still arrives meanwhile.
    sim.net.blackhole_streams.insert(WebSocket);
    sim.drain();
    for i in 0..40 {
        sim.publish("general", &format!("b-{i}"));
        sim.run_for(Duration::from_millis(500));
    }
    assert!(all_on_sse(&sim), "streams {:?}", sim.open_streams());
    peer_types_and_it_arrives_once(&mut sim);
    sim.net.blackhole_streams.remove(&WebSocket);
    sim.run_until(secs(40), |s| split_on(s, Sse));
    publish_some(&mut sim, 3, "c");
    assert_eq!(sim.delivered.len(), 46);
    assert_exactly_once(&sim);
}

#[test]
fn a_drop_mid_stream_reconnects_both_links_exactly_once() {
    let mut sim = hybrid(5);
    sim.connect();
    sim.run_until(secs(5), |s| split_on(s, Sse));
    publish_some(&mut sim, 3, "a");
    sim.drop_all();
    // Messages published while both links reconnect are replayed from the cursor.
    sim.publish("general", "during-1");
    sim.publish("general", "during-2");
    sim.run_until(secs(30), |s| split_on(s, Sse));
    publish_some(&mut sim, 3, "b");
    assert_eq!(sim.delivered.len(), 8);
    assert_exactly_once(&sim);
}

#[test]
fn both_refused_then_restored_brings_the_split_back() {
    let mut sim = hybrid(6);
    sim.net.refuse.insert(WebSocket);
    sim.net.refuse.insert(Sse);
    sim.connect();
    sim.run_until(secs(10), |s| s.is_connected_on(LongPoll));
    publish_some(&mut sim, 3, "a");
    sim.net.refuse.clear();
    for i in 0..90 {
        sim.publish("general", &format!("b-{i}"));
        sim.run_for(secs(1));
    }
    // The WebSocket comes back on its own backoff, SSE through the ladder's probe.
    sim.run_until(secs(120), |s| split_on(s, Sse));
    assert_eq!(sim.delivered.len(), 93);
    assert_exactly_once(&sim);
}

#[test]
fn the_single_strategy_keeps_one_link_and_plain_urls() {
    let mut sim = Sim::new(config(7));
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected_on(WebSocket));
    assert_eq!(sim.session.ephemeral(), None);
    assert_eq!(sim.open_streams(), [stream(WebSocket, "all")]);
}

#[test]
fn after_a_freeze_the_ephemeral_websocket_is_checked_at_once_too() {
    let mut sim = hybrid(8);
    sim.connect();
    sim.run_until(secs(5), |s| split_on(s, Sse));
    // The laptop sleeps; the WebSocket's connection died meanwhile (nothing passes any more),
    // while SSE is fine. On waking, the platform says so.
    sim.net.blackhole_streams.insert(WebSocket);
    sim.drain();
    sim.freeze_for(secs(2));
    sim.input(lifeline_core::Input::Resumed);
    // The check's grace (verify_grace, 3 s) later, not the silence limit (15 s and more).
    let took = sim.run_until(secs(30), all_on_sse);
    assert!(took <= secs(4), "the dead WebSocket found after {took:?}");
    peer_types_and_it_arrives_once(&mut sim);
}

#[test]
fn an_expired_token_refused_on_both_links_is_refreshed_once_not_fatal() {
    for seed in 0..20 {
        let mut sim = hybrid(100 + seed);
        sim.connect();
        sim.run_until(secs(5), |s| split_on(s, Sse));
        // The token expires: both links are cut and refused when they come back, one after the
        // other (the WebSocket's handshake is slower); the provider answers at once.
        sim.token_delay = Duration::from_millis(1);
        sim.net
            .slow_open
            .insert(WebSocket, Duration::from_millis(30));
        sim.server.valid_tokens.remove("tok-0");
        sim.server.expired_tokens.insert("tok-0".into());
        sim.drop_all();
        sim.run_until(secs(30), |s| {
            split_on(s, Sse) || s.session.state().is_final()
        });
        assert!(
            split_on(&sim, Sse),
            "seed {seed}: {:?} after {:?}",
            sim.session.state(),
            sim.state_trail()
        );
        assert_eq!(sim.server.token_fetches, 1, "seed {seed}");
    }
}
