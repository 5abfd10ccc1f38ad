//! Scenario tests of the session, one behaviour each, on simulated time through the harness in
//! `sim/`. The groups follow the numbered points of the sdk-core issue: lifecycle, backoff,
//! heartbeats, the ladder, delivery, subscriptions, credentials, platform signals.

mod sim;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use lifeline_core::{
    Cause, Event, Input, SendError, SendFailure, State, TimerReason, TransportKind,
};
use sim::{config, Sim};
use std::time::Duration;
use TransportKind::{LongPoll, Sse, WebSocket};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

fn connected(seed: u64) -> Sim {
    let mut sim = Sim::new(config(seed));
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected_on(WebSocket));
    sim
}

// ----- 1. lifecycle ---------------------------------------------------------------------------

#[test]
fn connects_over_websocket_and_reports_every_transition_with_its_cause() {
    let mut sim = Sim::new(config(1));
    assert_eq!(sim.session.state(), &State::Idle);
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected());
    let transitions: Vec<(State, Cause)> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::StateChanged { to, cause, .. } => Some((to.clone(), cause.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        transitions,
        vec![
            (
                State::Connecting {
                    transport: WebSocket,
                    attempt: 1
                },
                Cause::AppConnect
            ),
            (
                State::Connected {
                    transport: WebSocket,
                    degraded: false
                },
                Cause::Opened
            ),
        ]
    );
}

#[test]
fn close_is_final_and_fails_unacknowledged_sends() {
    let mut sim = connected(2);
    sim.net.blackhole_streams.insert(WebSocket);
    let id = sim.send("general", "never acked");
    let now = sim.now;
    sim.session.close(now);
    sim.drain();
    assert_eq!(sim.session.state(), &State::Closed);
    assert!(sim.events.iter().any(|(_, e)| matches!(e,
        Event::SendFailed { id: failed, failure: SendFailure::Closed } if *failed == id)));
    assert_eq!(sim.try_send("general", "x"), Err(SendError::Closed));
    assert_eq!(sim.session.poll_timeout(), None);
}

#[test]
fn a_retry_limit_ends_in_failed() {
    let mut c = config(3);
    c.max_attempts = Some(3);
    let mut sim = Sim::new(c);
    sim.net.down = true;
    sim.connect();
    sim.run_until(secs(120), |s| s.session.state().is_final());
    assert!(matches!(
        sim.session.state(),
        State::Failed {
            error: Cause::RetryLimit
        }
    ));
    assert_eq!(sim.server.opens.len(), 3);
}

/// Whoever learns that a send failed because the session ended (an awaiting caller, the CLI
/// choosing its exit code) must already be able to read why it ended: `failed` comes first.
#[test]
fn the_final_state_is_announced_before_the_sends_it_fails() {
    let mut c = config(5);
    c.max_attempts = Some(2);
    let mut sim = Sim::new(c);
    sim.net.down = true;
    sim.connect();
    let id = sim.send("general", "never delivered");
    sim.run_until(secs(120), |s| s.session.state().is_final());
    let position = |wanted: &dyn Fn(&Event) -> bool| sim.events.iter().position(|(_, e)| wanted(e));
    let failed_at = position(&|e| {
        matches!(
            e,
            Event::StateChanged {
                to: State::Failed { .. },
                ..
            }
        )
    })
    .expect("the session failed");
    let send_failed_at = position(&|e| matches!(e, Event::SendFailed { id: i, .. } if *i == id))
        .expect("the send failed");
    assert!(failed_at < send_failed_at, "{:#?}", sim.events);
}

#[test]
fn graceful_close_waits_for_the_outbox() {
    let mut sim = connected(4);
    sim.net.latency = ms(200);
    let id = sim.send("general", "last words");
    let now = sim.now;
    sim.session.close_gracefully(now, secs(5));
    sim.drain();
    assert!(!sim.session.state().is_final());
    sim.run_until(secs(5), |s| s.session.state().is_final());
    assert_eq!(sim.session.state(), &State::Closed);
    assert!(sim.acked().iter().any(|(a, _)| *a == id));
}

// ----- 2. backoff -----------------------------------------------------------------------------

/// (time of the Reconnecting transition, its delay) for each retry.
fn retry_delays(sim: &Sim) -> Vec<Duration> {
    sim.events
        .iter()
        .filter_map(|(at, e)| match e {
            Event::StateChanged {
                to:
                    State::Reconnecting {
                        next_attempt_at: Some(next),
                        ..
                    },
                ..
            } => Some(*next - *at),
            _ => None,
        })
        .collect()
}

#[test]
fn retry_delays_grow_within_their_jittered_bounds_while_the_server_is_down() {
    let mut sim = Sim::new(config(5));
    sim.net.down = true;
    sim.connect();
    sim.run_for(secs(300));
    let delays = retry_delays(&sim);
    assert!(delays.len() > 20, "{}", delays.len());
    let policy = sim.session.config().backoff;
    for (n, d) in delays.iter().enumerate() {
        assert!(*d >= policy.floor, "delay {n} {d:?} under the floor");
        assert!(
            *d <= policy.ceiling(n as u32).max(policy.floor),
            "delay {n} {d:?} over its ceiling"
        );
    }
    // Jitter stays after the cap: late delays are spread, not all equal to the cap.
    let late: std::collections::BTreeSet<_> = delays[10..].iter().collect();
    assert!(late.len() > delays.len() / 2);
}

#[test]
fn different_seeds_retry_at_different_times() {
    let run = |seed| {
        let mut sim = Sim::new(config(seed));
        sim.net.down = true;
        sim.connect();
        sim.run_for(secs(60));
        retry_delays(&sim)
    };
    assert_ne!(run(10), run(11));
    assert_eq!(run(12), run(12), "the same seed replays exactly");
}

#[test]
fn the_attempt_counter_resets_only_after_a_stable_period() {
    let mut sim = Sim::new(config(6));
    sim.net.down = true;
    sim.connect();
    sim.run_until(
        secs(60),
        |s| matches!(s.session.state(), State::Reconnecting { attempt, .. } if *attempt >= 4),
    );
    sim.net.down = false;
    sim.run_until(secs(30), |s| s.is_connected());
    // Dropped before it was stable: the count goes on.
    sim.drop_all();
    sim.run_until(secs(1), |s| !s.is_connected());
    assert!(
        matches!(sim.session.state(), State::Reconnecting { attempt, .. } if *attempt >= 5),
        "{:?}",
        sim.session.state()
    );
    sim.run_until(secs(30), |s| s.is_connected());
    sim.run_for(secs(11));
    sim.drop_all();
    sim.run_until(secs(1), |s| !s.is_connected());
    assert!(
        matches!(sim.session.state(), State::Reconnecting { attempt: 1, .. }),
        "{:?}",
        sim.session.state()
    );
}

#[test]
fn retry_after_from_the_server_is_honoured() {
    let mut sim = Sim::new(config(7));
    sim.net.rate_limit_opens = Some(secs(20));
    sim.connect();
    sim.run_until(secs(1), |s| {
        matches!(s.session.state(), State::Reconnecting { .. })
    });
    let delays = retry_delays(&sim);
    assert!(delays[0] >= secs(20), "{delays:?}");
    assert!(matches!(
        sim.session.state(),
        State::Reconnecting {
            last_error: Some(Cause::ServerBusy),
            ..
        }
    ));
}

#[test]
fn going_away_spreads_reconnects_over_the_servers_window() {
    let mut sim = connected(8);
    let before = sim.now;
    sim.going_away(secs(2));
    sim.run_until(secs(1), |s| !s.is_connected());
    sim.run_until(secs(5), |s| s.is_connected());
    assert!(sim.now - before <= secs(3), "{:?}", sim.now - before);
    assert!(sim.events.iter().any(|(_, e)| matches!(
        e,
        Event::StateChanged {
            cause: Cause::ServerGoingAway,
            ..
        }
    )));
}

// ----- 3. heartbeats --------------------------------------------------------------------------

#[test]
fn a_websocket_silent_mid_stream_is_noticed_within_twenty_seconds() {
    let mut sim = connected(9);
    sim.run_for(secs(30));
    assert!(sim.is_connected(), "pings keep an idle WebSocket alive");
    let cut = sim.now;
    sim.net.blackhole_streams.insert(WebSocket);
    let took = sim.run_until(secs(30), |s| !s.is_connected());
    assert!(took <= secs(20), "noticed after {took:?}");
    assert!(sim.events.iter().any(|(_, e)| matches!(
        e,
        Event::StateChanged {
            cause: Cause::HeartbeatTimeout {
                transport: WebSocket
            },
            ..
        }
    )));
    assert!(sim.now - cut <= secs(20));
}

#[test]
fn server_heartbeats_keep_sse_alive_and_their_absence_kills_it() {
    let mut c = config(10);
    c.transports = vec![Sse];
    let mut sim = Sim::new(c);
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected_on(Sse));
    sim.run_for(secs(60));
    assert!(sim.is_connected_on(Sse));
    assert_eq!(
        sim.server.opens.len(),
        1,
        "no reconnects while heartbeats flow"
    );
    sim.net.no_heartbeats = true;
    let took = sim.run_until(secs(30), |s| !s.is_connected());
    assert!(took <= secs(20), "{took:?}");
}

#[test]
fn a_long_poll_that_never_answers_is_dead_after_its_own_deadline() {
    let mut c = config(11);
    c.transports = vec![LongPoll];
    let mut sim = Sim::new(c);
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected_on(LongPoll));
    sim.run_for(secs(45));
    assert!(sim.is_connected_on(LongPoll), "empty polls are heartbeats");
    sim.net.blackhole_streams.insert(LongPoll);
    let took = sim.run_until(secs(30), |s| !s.is_connected());
    assert!(took <= secs(20), "{took:?}");
}

#[test]
fn a_transport_that_opens_but_never_speaks_fails_on_the_first_frame_deadline() {
    let mut sim = Sim::new(config(12));
    sim.net.mute.insert(WebSocket);
    sim.connect();
    sim.run_until(secs(20), |s| s.is_connected());
    assert!(sim.is_connected_on(Sse));
    assert!(sim.events.iter().any(|(_, e)| matches!(
        e,
        Event::StateChanged {
            cause: Cause::FirstFrameTimeout {
                transport: WebSocket
            },
            ..
        }
    ) || matches!(
        e,
        Event::StateChanged {
            to: State::Connected { transport: Sse, .. },
            ..
        }
    )));
}

#[test]
fn a_late_timer_after_a_freeze_checks_liveness_instead_of_killing_a_live_link() {
    let mut sim = connected(13);
    sim.freeze_for(secs(60));
    // The timer fires before the frames that piled up are read.
    let now = sim.now;
    sim.session.handle_timeout(now);
    sim.drain();
    assert!(
        sim.is_connected(),
        "a late timer alone is no proof of death"
    );
    assert_eq!(
        sim.session.last_timeout_reason(),
        Some(TimerReason::Silence)
    );
    sim.run_for(secs(30));
    assert!(sim.is_connected());
    assert_eq!(sim.server.opens.len(), 1);
}

#[test]
fn a_late_timer_still_finds_a_dead_link_within_the_grace_period() {
    let mut sim = connected(14);
    sim.net.blackhole_streams.insert(WebSocket);
    sim.freeze_for(secs(60));
    let took = sim.run_until(secs(10), |s| !s.is_connected());
    assert!(
        took <= sim.session.config().verify_grace + ms(100),
        "{took:?}"
    );
}

// ----- 4. the transport ladder ----------------------------------------------------------------

#[test]
fn websocket_refused_steps_down_to_sse_at_once() {
    let mut sim = Sim::new(config(15));
    sim.net.refuse.insert(WebSocket);
    sim.connect();
    let took = sim.run_until(secs(10), |s| s.is_connected());
    assert!(sim.is_connected_on(Sse));
    assert!(took < secs(2), "{took:?}");
    assert_eq!(
        sim.state_trail(),
        ["connecting:websocket", "connecting:sse", "connected:sse"]
    );
    assert!(matches!(
        sim.session.state(),
        State::Connected { degraded: true, .. }
    ));
}

#[test]
fn websocket_and_sse_refused_fall_back_to_long_polling() {
    let mut sim = Sim::new(config(16));
    sim.net.refuse.extend([WebSocket, Sse]);
    sim.connect();
    sim.run_until(secs(10), |s| s.is_connected());
    assert!(sim.is_connected_on(LongPoll));
    sim.publish("general", "over polling");
    sim.run_for(secs(1));
    assert_eq!(sim.delivered.len(), 1);
}

#[test]
fn climbs_back_to_websocket_mid_session_without_losing_or_repeating_a_message() {
    let mut sim = Sim::new(config(17));
    sim.net.refuse.extend([WebSocket, Sse]);
    sim.connect();
    sim.run_until(secs(10), |s| s.is_connected_on(LongPoll));
    let start = sim.session.cursor().unwrap();
    sim.net.refuse.clear();
    // Messages keep flowing while the session climbs.
    let mut n = 0;
    sim.run_until(secs(300), |s| s.is_connected_on(WebSocket));
    for _ in 0..3 {
        for _ in 0..20 {
            n += 1;
            sim.publish("general", &format!("m{n}"));
            sim.run_for(ms(150));
        }
    }
    sim.run_for(secs(2));
    assert!(sim.is_connected_on(WebSocket));
    assert!(sim.events.iter().any(|(_, e)| matches!(
        e,
        Event::StateChanged {
            cause: Cause::Upgraded { from: Sse },
            ..
        }
    )));
    sim.assert_delivered_exactly_once_in_order();
    sim.assert_nothing_lost_after(start);
}

#[test]
fn messages_published_during_the_hand_over_arrive_exactly_once() {
    let mut c = config(18);
    c.initial_transport = Some(Sse);
    let mut sim = Sim::new(c);
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected_on(Sse));
    let start = sim.session.cursor().unwrap();
    // Publish continuously, every 50 ms, until well after the probe promoted the WebSocket.
    let mut n = 0;
    while !sim.is_connected_on(WebSocket) || n < 400 {
        n += 1;
        sim.publish("general", &format!("m{n}"));
        sim.run_for(ms(50));
        assert!(n < 5_000, "never climbed");
    }
    sim.run_for(secs(1));
    assert_eq!(sim.delivered.len(), n);
    sim.assert_delivered_exactly_once_in_order();
    sim.assert_nothing_lost_after(start);
}

#[test]
fn a_black_holed_websocket_costs_far_less_than_the_connect_timeout() {
    let mut sim = Sim::new(config(19));
    sim.net.blackhole_open.insert(WebSocket);
    sim.connect();
    let took = sim.run_until(secs(30), |s| s.is_connected());
    assert!(sim.is_connected_on(Sse));
    let race = sim.session.config().race_after;
    assert!(took < race + secs(1), "{took:?}");
    assert!(took < sim.session.config().connect_timeout / 2);
}

#[test]
fn the_app_can_restrict_the_ladder() {
    let mut c = config(20);
    c.transports = vec![Sse, LongPoll];
    let mut sim = Sim::new(c);
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected());
    sim.run_for(secs(120));
    assert!(sim.is_connected_on(Sse));
    assert!(!sim.server.opens.contains(&WebSocket));
    assert!(matches!(
        sim.session.state(),
        State::Connected {
            degraded: false,
            ..
        }
    ));
}

#[test]
fn the_rung_that_worked_is_reported_for_the_driver_to_remember() {
    let mut sim = Sim::new(config(21));
    sim.net.refuse.insert(WebSocket);
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected());
    assert_eq!(sim.session.last_worked_transport(), Some(Sse));
    assert!(sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::TransportWorked { transport: Sse })));
    // A new session started from the remembered rung does not try WebSocket first.
    let mut c = config(22);
    c.initial_transport = sim.session.last_worked_transport();
    let mut next = Sim::new(c);
    next.net.refuse.insert(WebSocket);
    next.connect();
    next.run_until(secs(5), |s| s.is_connected());
    assert_eq!(next.server.opens.first(), Some(&Sse));
}

#[test]
fn ordinary_failures_step_down_only_after_they_repeat() {
    let mut c = config(23);
    c.race_after = secs(60);
    // Not a first visit: a first visit hands over to the rung below at the first failure.
    c.initial_transport = Some(WebSocket);
    let mut sim = Sim::new(c);
    sim.net.blackhole_open.insert(WebSocket);
    sim.connect();
    sim.run_until(secs(60), |s| s.is_connected());
    let ws_opens = sim.server.opens.iter().filter(|k| **k == WebSocket).count();
    assert_eq!(ws_opens, 2, "{:?}", sim.server.opens);
    assert!(sim.is_connected_on(Sse));
}

// ----- 5. delivery ----------------------------------------------------------------------------

#[test]
fn messages_missed_while_disconnected_are_replayed_once() {
    let mut sim = connected(24);
    let start = sim.session.cursor().unwrap();
    sim.publish("general", "a");
    sim.run_for(secs(1));
    sim.net.down = true;
    sim.drop_all();
    sim.run_for(ms(100));
    sim.publish("general", "b");
    sim.publish("general", "c");
    sim.net.down = false;
    sim.run_until(secs(30), |s| s.is_connected());
    sim.run_for(secs(1));
    let bodies: Vec<&str> = sim.delivered.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["a", "b", "c"]);
    sim.assert_nothing_lost_after(start);
}

#[test]
fn a_cursor_too_old_to_resume_is_an_explicit_discontinuity() {
    let mut sim = connected(25);
    sim.publish("general", "a");
    sim.run_for(secs(1));
    sim.drop_all();
    sim.net.down = true;
    sim.run_for(ms(100));
    for i in 0..5 {
        sim.publish("general", &format!("lost {i}"));
    }
    sim.server.forgotten_up_to = 4;
    sim.net.down = false;
    sim.run_until(secs(30), |s| s.is_connected());
    sim.run_for(secs(1));
    let gap = sim.events.iter().find_map(|(_, e)| match e {
        Event::Discontinuity {
            last_seen,
            resumed_after,
        } => Some((*last_seen, *resumed_after)),
        _ => None,
    });
    assert_eq!(gap, Some((1, 4)));
    let seqs: Vec<u64> = sim.delivered.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 5, 6]);
}

#[test]
fn sends_made_offline_wait_in_the_outbox_and_are_acknowledged_once() {
    let mut sim = Sim::new(config(26));
    sim.net.down = true;
    sim.connect();
    let ids: Vec<_> = (0..5)
        .map(|i| sim.send("general", &format!("q{i}")))
        .collect();
    sim.run_for(secs(3));
    assert_eq!(sim.session.outbox_len(), 5);
    sim.net.down = false;
    sim.run_until(secs(30), |s| s.session.outbox_len() == 0);
    let acked: Vec<_> = sim.acked().into_iter().map(|(id, _)| id).collect();
    assert_eq!(acked, ids);
    assert_eq!(sim.server.stored_sends, 5);
    sim.run_for(secs(1));
    let bodies: Vec<&str> = sim.delivered.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["q0", "q1", "q2", "q3", "q4"]);
}

#[test]
fn a_send_whose_ack_was_lost_is_retransmitted_and_stored_once() {
    let mut sim = connected(27);
    // The server stores it; the ack is lost and the connection dies.
    sim.net.blackhole_streams.insert(WebSocket);
    let id = sim.send("general", "once");
    sim.drop_all();
    sim.run_until(secs(1), |s| !s.is_connected());
    sim.net.blackhole_streams.clear();
    sim.run_until(secs(30), |s| s.session.outbox_len() == 0);
    assert!(sim.server.received_sends >= 2, "it was retransmitted");
    assert_eq!(sim.server.stored_sends, 1);
    assert_eq!(sim.acked().iter().filter(|(a, _)| *a == id).count(), 1);
    sim.run_for(secs(1));
    assert_eq!(sim.delivered.len(), 1);
}

#[test]
fn a_full_outbox_is_a_typed_error_and_drops_nothing() {
    let mut c = config(28);
    c.outbox_max_messages = 3;
    let mut sim = Sim::new(c);
    sim.net.down = true;
    sim.connect();
    for i in 0..3 {
        sim.send("general", &format!("{i}"));
    }
    assert!(matches!(
        sim.try_send("general", "one too many"),
        Err(SendError::OutboxFull { messages: 3, .. })
    ));
    let big = "x".repeat(lifeline_core::protocol::MAX_BODY_BYTES + 1);
    assert!(matches!(
        sim.try_send("general", &big),
        Err(SendError::TooLarge { .. })
    ));
    assert!(matches!(
        sim.try_send("not a conv", "x"),
        Err(SendError::InvalidConversation { .. })
    ));
    sim.net.down = false;
    sim.run_until(secs(30), |s| s.session.outbox_len() == 0);
    assert_eq!(sim.server.stored_sends, 3);
}

#[test]
fn a_send_never_acknowledged_fails_with_a_timeout() {
    let mut c = config(29);
    c.send_timeout = secs(20);
    let mut sim = Sim::new(c);
    sim.net.down = true;
    sim.connect();
    let id = sim.send("general", "late");
    sim.run_for(secs(21));
    assert!(sim.events.iter().any(|(_, e)| matches!(e,
        Event::SendFailed { id: f, failure: SendFailure::Timeout } if *f == id)));
    assert_eq!(sim.session.outbox_len(), 0);
}

#[test]
fn rate_limited_sends_wait_and_keep_their_order() {
    let mut sim = connected(30);
    sim.server.rate_limit_sends = Some(secs(2));
    let ids: Vec<_> = (0..4)
        .map(|i| sim.send("general", &format!("r{i}")))
        .collect();
    sim.run_for(ms(100));
    sim.server.rate_limit_sends = None;
    sim.run_until(secs(10), |s| s.session.outbox_len() == 0);
    let acked: Vec<_> = sim.acked().into_iter().map(|(id, _)| id).collect();
    assert_eq!(acked, ids);
    sim.run_for(secs(1));
    let bodies: Vec<&str> = sim.delivered.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["r0", "r1", "r2", "r3"]);
}

#[test]
fn a_send_the_server_refuses_fails_with_its_code() {
    let mut sim = connected(31);
    let id = sim.send("elsewhere", "not a member");
    sim.run_for(secs(1));
    assert!(sim.events.iter().any(|(_, e)| matches!(e,
        Event::SendFailed { id: f, failure: SendFailure::Rejected { code: lifeline_core::ErrorCode::Forbidden, .. } } if *f == id)));
}

#[test]
fn sends_over_sse_and_long_polling_go_by_http_and_are_acknowledged() {
    for kind in [Sse, LongPoll] {
        let mut c = config(32);
        c.transports = vec![kind];
        let mut sim = Sim::new(c);
        sim.connect();
        sim.run_until(secs(5), |s| s.is_connected_on(kind));
        for i in 0..100 {
            sim.send("general", &format!("h{i}"));
        }
        sim.run_until(secs(10), |s| s.session.outbox_len() == 0);
        sim.run_for(secs(1));
        assert_eq!(sim.acked().len(), 100, "{kind}");
        assert_eq!(sim.delivered.len(), 100, "{kind}");
        sim.assert_delivered_exactly_once_in_order();
    }
}

/// A session on `kind` with `n` messages of 16 KiB queued before it connected, so that they go out
/// together; runs until the outbox is empty.
fn full_bodies_on(kind: TransportKind, seed: u64, n: usize, tune: impl FnOnce(&mut Sim)) -> Sim {
    let mut c = config(seed);
    c.transports = vec![kind];
    let mut sim = Sim::new(c);
    tune(&mut sim);
    let body = "x".repeat(lifeline_core::protocol::MAX_BODY_BYTES);
    for _ in 0..n {
        sim.send("general", &body);
    }
    sim.connect();
    sim.run_until(secs(30), |s| s.session.outbox_len() == 0);
    sim
}

#[test]
fn http_batches_stay_within_the_limits_the_hello_advertises() {
    for kind in [Sse, LongPoll] {
        let sim = full_bodies_on(kind, 34, 64, |sim| {
            sim.server.max_body_bytes = Some(100_000);
            sim.server.advertise_limits = true;
        });
        assert_eq!(sim.acked().len(), 64, "{kind}");
        assert_eq!(
            sim.count_events(|e| matches!(e, Event::SendFailed { .. })),
            0
        );
        let requests = &sim.server.send_requests;
        assert!(
            requests.iter().all(|(_, bytes)| *bytes <= 100_000),
            "{kind}: {requests:?}"
        );
        assert!(
            requests.iter().any(|(frames, _)| *frames > 1),
            "{kind}: still batched"
        );
    }
}

#[test]
fn without_advertised_limits_64_full_bodies_fit_the_default_limit() {
    // The reported failure: 64 legal 16 KiB messages in one 1,052,547-byte POST.
    for kind in [Sse, LongPoll] {
        let sim = full_bodies_on(kind, 35, 64, |sim| {
            sim.server.max_body_bytes = Some(lifeline_core::protocol::DEFAULT_MAX_BODY_BYTES);
        });
        assert_eq!(sim.acked().len(), 64, "{kind}");
        let requests = &sim.server.send_requests;
        assert!(
            requests
                .iter()
                .all(|(_, bytes)| *bytes <= lifeline_core::protocol::DEFAULT_MAX_BODY_BYTES),
            "{kind}: {requests:?}"
        );
    }
}

#[test]
fn a_413_for_a_batch_splits_it_and_every_legal_message_is_acknowledged() {
    // A proxy in front of the server takes less than the server advertises.
    for kind in [Sse, LongPoll] {
        let sim = full_bodies_on(kind, 36, 40, |sim| {
            sim.server.max_body_bytes = Some(150_000);
        });
        assert_eq!(sim.acked().len(), 40, "{kind}");
        assert_eq!(
            sim.count_events(|e| matches!(e, Event::SendFailed { .. })),
            0
        );
        let requests = &sim.server.send_requests;
        // Halved until it fits (40 frames, then 19), then every batch fits.
        let refused = requests.iter().take_while(|(_, b)| *b > 150_000).count();
        assert!((1..=3).contains(&refused), "{kind}: {requests:?}");
        assert!(
            requests[refused..].iter().all(|(_, b)| *b <= 150_000),
            "{kind}: {requests:?}"
        );
        assert!(
            requests.len() < 20,
            "{kind}: split, not sent one by one: {requests:?}"
        );
        sim.assert_delivered_exactly_once_in_order();
    }
}

#[test]
fn a_single_message_too_large_for_the_server_fails_typed_and_the_others_go_through() {
    let mut c = config(37);
    c.transports = vec![Sse];
    let mut sim = Sim::new(c);
    sim.server.max_body_bytes = Some(2_000);
    let small = sim.send("general", "small");
    let big = sim.send("general", &"x".repeat(5_000));
    let after = sim.send("general", "after");
    sim.connect();
    sim.run_until(secs(30), |s| s.session.outbox_len() == 0);
    let acked: Vec<_> = sim.acked().into_iter().map(|(id, _)| id).collect();
    assert_eq!(acked, [small, after]);
    assert!(sim.events.iter().any(|(_, e)| matches!(e,
        Event::SendFailed { id, failure: SendFailure::Rejected { code: lifeline_core::ErrorCode::TooLarge, .. } } if *id == big)));
}

#[test]
fn a_reused_id_fails_the_send_typed_and_is_never_acknowledged() {
    for kind in [WebSocket, Sse, LongPoll] {
        let mut c = config(38);
        c.transports = vec![kind];
        let mut sim = Sim::new(c);
        sim.connect();
        sim.run_until(secs(5), |s| s.is_connected_on(kind));
        let random = sim.random_id();
        let first = sim.send_with_random("general", "first", random).unwrap();
        sim.run_until(secs(5), |s| s.session.outbox_len() == 0);
        // The same 16 bytes again (a broken generator): the server holds another body under it.
        let again = sim.send_with_random("general", "second", random).unwrap();
        assert_eq!(again, first);
        sim.run_until(secs(5), |s| s.session.outbox_len() == 0);
        assert_eq!(sim.acked().len(), 1, "{kind}");
        assert!(
            sim.events.iter().any(|(_, e)| matches!(
                e,
                Event::SendFailed {
                    failure: SendFailure::Rejected {
                        code: lifeline_core::ErrorCode::IdReused,
                        ..
                    },
                    ..
                }
            )),
            "{kind}"
        );
        assert_eq!(sim.server.stored_sends, 1, "{kind}");
    }
}

// ----- 6. subscriptions, presence, typing -----------------------------------------------------

#[test]
fn subscriptions_are_reasserted_on_every_new_transport() {
    let mut sim = connected(33);
    sim.subscribe("room");
    sim.run_for(secs(1));
    assert!(sim.server.is_member_of("room"));
    // The server forgets the membership (say, it lost its state); the next transport restores it.
    sim.server.members.get_mut("room").unwrap().clear();
    sim.drop_all();
    sim.run_until(secs(30), |s| s.is_connected());
    sim.run_for(secs(1));
    assert!(sim.server.is_member_of("room"));
    assert_eq!(
        sim.count_events(|e| matches!(e, Event::Subscribed { conv } if conv == "room")),
        2
    );
}

#[test]
fn a_refused_subscription_is_reported() {
    let mut sim = connected(34);
    sim.subscribe("private-1");
    sim.run_for(secs(1));
    assert!(sim.events.iter().any(|(_, e)| matches!(e,
        Event::SubscribeFailed { conv, .. } if conv == "private-1")));
    assert!(sim.session.subscriptions().all(|c| c != "private-1"));
}

#[test]
fn typing_is_ephemeral_and_refused_while_offline() {
    let mut sim = Sim::new(config(35));
    sim.net.down = true;
    sim.connect();
    let now = sim.now;
    assert_eq!(
        sim.session.typing(now, "general"),
        Err(SendError::NotConnected)
    );
    sim.net.down = false;
    sim.run_until(secs(30), |s| s.is_connected());
    let now = sim.now;
    assert_eq!(sim.session.typing(now, "general"), Ok(()));
    assert_eq!(
        sim.session.outbox_len(),
        0,
        "typing never enters the outbox"
    );
}

// ----- 7. credentials -------------------------------------------------------------------------

#[test]
fn an_expired_token_is_refreshed_once_and_the_session_continues() {
    let mut sim = connected(36);
    sim.server.valid_tokens.remove("tok-0");
    sim.server.expired_tokens.insert("tok-0".into());
    sim.drop_all();
    sim.run_until(secs(30), |s| {
        s.is_connected() && s.server.token_fetches == 1
    });
    assert_eq!(sim.server.token_fetches, 1);
    sim.run_for(secs(30));
    assert!(sim.is_connected());
}

#[test]
fn a_fresh_token_rejected_again_is_fatal_without_a_retry_loop() {
    let mut sim = Sim::new(config(37));
    sim.server.reject_all_tokens = true;
    sim.connect();
    sim.run_until(secs(30), |s| s.session.state().is_final());
    assert!(matches!(
        sim.session.state(),
        State::Failed {
            error: Cause::AuthRejected { .. }
        }
    ));
    assert_eq!(sim.server.token_fetches, 1);
    assert_eq!(sim.server.opens.len(), 2);
}

#[test]
fn without_a_token_provider_a_rejection_is_fatal_at_once() {
    let mut c = config(38);
    c.token_provider = false;
    let mut sim = Sim::new(c);
    sim.server.reject_all_tokens = true;
    sim.connect();
    sim.run_until(secs(5), |s| s.session.state().is_final());
    assert_eq!(sim.server.opens.len(), 1);
    assert_eq!(sim.server.token_fetches, 0);
}

#[test]
fn a_session_without_a_token_asks_the_provider_first() {
    let mut c = config(39);
    c.token = None;
    let mut sim = Sim::new(c);
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected());
    assert_eq!(sim.server.token_fetches, 1);
}

#[test]
fn a_failing_token_provider_is_retried_with_backoff() {
    let mut c = config(40);
    c.token = None;
    let mut sim = Sim::new(c);
    sim.token_source = None;
    sim.connect();
    sim.run_for(secs(10));
    assert!(!sim.session.state().is_final());
    let fetches = sim.server.token_fetches;
    assert!((2..40).contains(&fetches), "{fetches}");
    sim.token_source = Some("tok-9".into());
    sim.run_until(secs(30), |s| s.is_connected());
}

#[test]
fn tokens_over_http_transports_are_refreshed_too() {
    let mut c = config(41);
    c.transports = vec![LongPoll];
    let mut sim = Sim::new(c);
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected());
    sim.server.valid_tokens.remove("tok-0");
    sim.server.expired_tokens.insert("tok-0".into());
    sim.send("general", "needs a new token");
    sim.run_until(secs(30), |s| s.session.outbox_len() == 0);
    assert_eq!(sim.server.token_fetches, 1);
    assert!(sim.is_connected());
}

// ----- 8. platform signals --------------------------------------------------------------------

#[test]
fn retries_pause_while_offline_and_resume_at_once_when_back_online() {
    let mut sim = connected(42);
    sim.net.down = true;
    sim.drop_all();
    sim.run_until(secs(2), |s| !s.is_connected());
    sim.input(Input::Network { online: false });
    assert!(matches!(
        sim.session.state(),
        State::Reconnecting {
            next_attempt_at: None,
            ..
        }
    ));
    let opens = sim.server.opens.len();
    sim.run_for(secs(120));
    assert_eq!(sim.server.opens.len(), opens, "no attempts while offline");
    sim.net.down = false;
    sim.input(Input::Network { online: true });
    assert!(matches!(sim.session.state(), State::Connecting { .. }));
    let took = sim.run_until(secs(5), |s| s.is_connected());
    assert!(took < secs(1));
}

#[test]
fn a_page_becoming_visible_checks_liveness_at_once() {
    let mut sim = connected(43);
    sim.net.blackhole_streams.insert(WebSocket);
    sim.run_for(secs(8));
    assert!(sim.is_connected());
    sim.input(Input::Visibility { visible: true });
    let took = sim.run_until(secs(20), |s| !s.is_connected());
    assert!(
        took <= sim.session.config().verify_grace + ms(50),
        "{took:?}"
    );
}

#[test]
fn waking_from_sleep_retries_at_once() {
    let mut sim = connected(44);
    sim.net.down = true;
    sim.drop_all();
    sim.run_for(secs(40));
    assert!(matches!(sim.session.state(), State::Reconnecting { .. }));
    sim.net.down = false;
    sim.freeze_for(secs(3600));
    sim.input(Input::Resumed);
    let took = sim.run_until(secs(5), |s| s.is_connected());
    assert!(took < secs(1), "{took:?}");
}

#[test]
fn late_reports_about_abandoned_transports_are_ignored() {
    let mut sim = Sim::new(config(45));
    sim.net.blackhole_open.insert(WebSocket);
    sim.connect();
    sim.run_until(secs(10), |s| s.is_connected_on(Sse));
    // The first WebSocket (socket id 1) finally "opens" long after it was abandoned.
    sim.input(Input::SocketOpened {
        socket: lifeline_core::SocketId(1),
    });
    sim.input(Input::SocketText {
        socket: lifeline_core::SocketId(1),
        text: r#"{"type":"hello","v":1,"user":"me","heartbeat_ms":1,"cursor":0,"resumed":true}"#
            .into(),
    });
    assert!(sim.is_connected_on(Sse));
}

#[test]
fn malformed_frames_are_reported_not_fatal() {
    let mut sim = connected(46);
    let socket = lifeline_core::SocketId(1);
    for text in ["", "{", "[1,2]", "\u{0}", &"x".repeat(70_000)] {
        sim.input(Input::SocketText {
            socket,
            text: text.to_string(),
        });
    }
    sim.input(Input::SocketBinary { socket, len: 10 });
    assert!(sim.is_connected());
    assert_eq!(sim.count_events(|e| matches!(e, Event::BadFrame { .. })), 6);
}

// ----- more of the same points ----------------------------------------------------------------

#[test]
fn a_retry_time_limit_ends_in_failed() {
    let mut c = config(47);
    c.max_retry_duration = Some(secs(30));
    let mut sim = Sim::new(c);
    sim.net.down = true;
    sim.connect();
    sim.run_until(secs(60), |s| s.session.state().is_final());
    assert!(sim.elapsed() >= secs(30) && sim.elapsed() <= secs(30) + secs(16));
    assert!(matches!(
        sim.session.state(),
        State::Failed {
            error: Cause::RetryLimit
        }
    ));
}

#[test]
fn decorrelated_jitter_is_an_option_and_stays_within_bounds() {
    let mut c = config(48);
    c.backoff.jitter = lifeline_core::Jitter::Decorrelated;
    let mut sim = Sim::new(c);
    sim.net.down = true;
    sim.connect();
    sim.run_for(secs(300));
    let (floor, cap) = sim.session.config().backoff.bounds();
    let delays = retry_delays(&sim);
    assert!(delays.len() > 20);
    assert!(
        delays.iter().all(|d| *d >= floor && *d <= cap),
        "{delays:?}"
    );
}

#[test]
fn an_sse_retry_hint_is_a_floor_for_the_next_attempt() {
    let mut c = config(49);
    c.transports = vec![Sse];
    let mut sim = Sim::new(c);
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected());
    sim.input(Input::SocketRetryHint {
        socket: lifeline_core::SocketId(1),
        delay: secs(9),
    });
    sim.drop_all();
    sim.run_until(secs(1), |s| !s.is_connected());
    assert!(retry_delays(&sim)[0] >= secs(9));
}

#[test]
fn presence_and_typing_reach_the_app_only_from_the_live_link() {
    use lifeline_core::protocol::ServerFrame;
    let mut sim = connected(50);
    sim.broadcast(ServerFrame::Presence {
        conv: "general".into(),
        user: "peer".into(),
        online: true,
    });
    sim.broadcast(ServerFrame::Typing {
        conv: "general".into(),
        user: "peer".into(),
    });
    sim.run_for(secs(1));
    assert_eq!(
        sim.count_events(|e| matches!(e, Event::Presence { online: true, .. })),
        1
    );
    assert_eq!(sim.count_events(|e| matches!(e, Event::Typing { .. })), 1);
    // Ephemeral frames are never replayed: a reconnect brings no second copy.
    sim.drop_all();
    sim.run_until(secs(30), |s| s.is_connected());
    sim.run_for(secs(1));
    assert_eq!(sim.count_events(|e| matches!(e, Event::Typing { .. })), 1);
}

#[test]
fn a_server_speaking_another_version_is_fatal() {
    let mut sim = Sim::new(config(51));
    sim.connect();
    sim.input(Input::SocketOpened {
        socket: lifeline_core::SocketId(1),
    });
    sim.input(Input::SocketText {
        socket: lifeline_core::SocketId(1),
        text: r#"{"type":"hello","v":2,"user":"me","heartbeat_ms":1000,"cursor":0,"resumed":true}"#
            .into(),
    });
    assert!(matches!(
        sim.session.state(),
        State::Failed {
            error: Cause::UnsupportedVersion
        }
    ));
}

#[test]
fn history_pages_come_back_as_events() {
    let mut sim = connected(52);
    sim.publish("general", "old");
    sim.run_for(secs(1));
    let now = sim.now;
    let request = sim.session.history(now, "general", None, 50).unwrap();
    sim.drain();
    sim.run_for(secs(1));
    let page = sim.events.iter().find_map(|(_, e)| match e {
        Event::History {
            request: r,
            result: Ok(page),
        } if *r == request => Some(page.clone()),
        _ => None,
    });
    assert_eq!(page.unwrap().messages[0].body, "old");
}

#[test]
fn a_timer_handled_early_is_harmless() {
    let mut sim = connected(53);
    let before = sim.session.poll_timeout().unwrap();
    let now = sim.now;
    sim.session.handle_timeout(now);
    sim.drain();
    assert_eq!(sim.session.poll_timeout(), Some(before));
    assert!(sim.is_connected());
}

#[test]
fn an_http_send_that_never_answers_is_abandoned_and_sent_again() {
    let mut c = config(54);
    c.transports = vec![Sse];
    let mut sim = Sim::new(c);
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected());
    sim.net.lose_send_answers = true;
    let id = sim.send("general", "stuck");
    sim.run_for(secs(2));
    assert_eq!(sim.session.outbox_len(), 1);
    sim.net.lose_send_answers = false;
    let took = sim.run_until(secs(30), |s| s.session.outbox_len() == 0);
    assert!(
        took <= sim.session.config().connect_timeout + secs(2),
        "{took:?}"
    );
    assert!(
        sim.is_connected_on(Sse),
        "the stream itself was never in doubt"
    );
    assert_eq!(
        sim.server.stored_sends, 1,
        "the retransmission was recognised"
    );
    assert!(sim.acked().iter().any(|(a, _)| *a == id));
}

// ----- 9. behind middleboxes (issue 11) -------------------------------------------------------

fn long_polling(seed: u64) -> Sim {
    let mut c = config(seed);
    c.transports = vec![LongPoll];
    let mut sim = Sim::new(c);
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected_on(LongPoll));
    sim
}

#[test]
fn one_long_poll_at_a_time_while_messages_flow() {
    let mut sim = long_polling(101);
    let start = sim.session.cursor().unwrap();
    for n in 0..70 {
        sim.publish("general", &format!("m{n}"));
        sim.run_for(ms(500));
    }
    sim.run_for(secs(1));
    assert_eq!(sim.delivered.len(), 70);
    sim.assert_delivered_exactly_once_in_order();
    sim.assert_nothing_lost_after(start);
    assert_eq!(sim.server.max_polls_held, 1, "two polls ran at once");
    assert!(
        sim.server.non_empty_polls <= 70,
        "{} non-empty polls for 70 messages",
        sim.server.non_empty_polls
    );
}

#[test]
fn an_idle_long_poller_makes_one_poll_per_wait() {
    let mut sim = long_polling(102);
    let before = sim.server.follow_up_polls;
    sim.run_for(secs(30));
    let wait = sim.session.config().poll_wait;
    let due = (secs(30).as_millis() / wait.as_millis()) as usize;
    let made = sim.server.follow_up_polls - before;
    assert!(
        made <= due + 1,
        "{made} follow-up polls in 30 s where {due} are due"
    );
    assert_eq!(sim.server.max_polls_held, 1);
}

/// The longest time the server went without a frame from the client on a WebSocket, from `from`.
fn longest_client_silence(sim: &Sim, from: lifeline_core::Instant) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for &t in sim.server.ws_frames_received.iter().filter(|t| **t >= from) {
        longest = longest.max(t - last);
        last = t;
    }
    longest.max(sim.now - last)
}

#[test]
fn a_listen_only_websocket_pings_under_half_the_heartbeat_while_messages_flow() {
    let mut sim = Sim::new(config(103));
    sim.server.heartbeat = secs(4);
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected_on(WebSocket));
    let from = sim.now;
    // One message a second flows in; the client itself has nothing to say.
    for n in 0..60 {
        sim.publish("general", &format!("m{n}"));
        sim.run_for(secs(1));
    }
    assert_eq!(sim.delivered.len(), 60);
    let silence = longest_client_silence(&sim, from);
    assert!(
        silence <= secs(2) + ms(100),
        "the server heard nothing from the client for {silence:?} (heartbeat 4 s)"
    );
}

/// The server restarts: every connection drops and nothing listens for `down`.
fn restart_server(sim: &mut Sim, down: Duration) {
    sim.net.down = true;
    sim.drop_all();
    sim.run_for(down);
    sim.net.down = false;
}

#[test]
fn a_refused_host_is_retried_on_the_same_rung_not_walked_down_the_ladder() {
    let mut sim = connected(104);
    let opens_before = sim.server.opens.len();
    restart_server(&mut sim, secs(10));
    sim.run_until(secs(30), |s| s.is_connected());
    let opens: Vec<_> = sim.server.opens[opens_before..].to_vec();
    assert!(opens.len() >= 3, "{opens:?}");
    assert!(opens.iter().all(|k| *k == WebSocket), "{opens:?}");
    assert_eq!(
        sim.session.state(),
        &State::Connected {
            transport: WebSocket,
            degraded: false
        }
    );
}

#[test]
fn a_browser_that_cannot_tell_refused_from_blocked_does_not_walk_to_long_polling() {
    let mut sim = connected(105);
    sim.net.down_kind = lifeline_core::FailureKind::Other;
    let opens_before = sim.server.opens.len();
    restart_server(&mut sim, secs(20));
    sim.run_until(secs(30), |s| s.is_connected());
    let opens: Vec<_> = sim.server.opens[opens_before..].to_vec();
    assert!(opens.len() >= 4, "{opens:?}");
    assert!(!opens.contains(&LongPoll), "{opens:?}");
    // Whatever rung it came back on, it is on WebSocket soon after.
    sim.run_until(secs(90), |s| s.is_connected_on(WebSocket));
}

#[test]
fn backoff_starts_over_after_a_connection_that_delivered_data() {
    let mut sim = connected(106);
    // A middlebox cuts the connection every 5 s while a message a second flows.
    for n in 0..60 {
        sim.publish("general", &format!("m{n}"));
        sim.run_for(secs(1));
        if n % 5 == 4 {
            sim.drop_all();
        }
    }
    sim.run_until(secs(30), |s| s.is_connected());
    let highest = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::StateChanged {
                to: State::Reconnecting { attempt, .. },
                ..
            } => Some(*attempt),
            _ => None,
        })
        .max();
    assert!(
        highest.is_some_and(|a| a <= 2),
        "attempt counter reached {highest:?}"
    );
}

/// A first visit (no remembered rung) with the network set up by `setup`; returns the time from
/// `connect` until the first message published after it reached the app.
fn first_message_time(seed: u64, setup: impl FnOnce(&mut Sim)) -> (Sim, Duration) {
    let mut sim = Sim::new(config(seed));
    setup(&mut sim);
    let start = sim.now;
    sim.connect();
    let mut n = 0;
    while sim.delivered.is_empty() {
        n += 1;
        sim.publish("general", &format!("m{n}"));
        sim.run_for(ms(5));
        assert!(sim.now - start < secs(30), "no message within 30 s");
    }
    let took = sim.now - start;
    (sim, took)
}

#[test]
fn the_first_message_is_fast_when_websocket_upgrades_are_reset() {
    let (sim, took) = first_message_time(107, |s| {
        s.net.reset_open.insert(WebSocket);
    });
    assert!(took <= ms(100), "first message after {took:?}");
    assert!(sim.is_connected_on(Sse));
}

#[test]
fn the_first_message_is_fast_when_websocket_upgrades_are_black_holed() {
    let (sim, took) = first_message_time(108, |s| {
        s.net.blackhole_open.insert(WebSocket);
    });
    assert!(took <= ms(100), "first message after {took:?}");
    assert!(sim.is_connected_on(Sse));
}

#[test]
fn the_first_message_is_as_fast_as_before_on_a_normal_network() {
    let (sim, took) = first_message_time(109, |_| {});
    // One latency for the open and hello, one for a message published just after it.
    assert!(took <= ms(50), "first message after {took:?}");
    assert!(sim.is_connected_on(WebSocket));
    assert!(!sim.events.iter().any(|(_, e)| matches!(
        e,
        Event::StateChanged {
            to: State::Connected { transport: Sse, .. },
            ..
        }
    )));
}

#[test]
fn a_websocket_slower_than_sse_takes_over_without_losing_or_repeating_a_message() {
    for seed in 110..120 {
        let mut sim = Sim::new(config(seed));
        sim.net
            .slow_open
            .insert(WebSocket, ms(100 + 10 * (seed - 110)));
        if seed % 2 == 0 {
            // SSE lags: when the WebSocket speaks, its stream starts past what SSE delivered.
            sim.net.extra_latency.insert(Sse, ms(50));
        }
        sim.connect();
        for n in 0..400 {
            sim.publish("general", &format!("m{n}"));
            sim.run_for(ms(3));
        }
        sim.run_for(secs(1));
        assert!(
            sim.is_connected_on(WebSocket),
            "seed {seed}: {:?}",
            sim.state_trail()
        );
        assert!(sim.state_trail().contains(&"connected:sse".to_string()));
        sim.assert_delivered_exactly_once_in_order();
        sim.assert_nothing_lost_after(sim.delivered[0].seq - 1);
        assert_eq!(
            sim.delivered.last().map(|m| m.seq),
            Some(400),
            "seed {seed}"
        );
    }
}

#[test]
fn attempts_into_a_black_hole_do_not_wait_out_the_connect_timeout() {
    let mut sim = connected(120);
    // Every packet is dropped for 40 s: opens never complete, open streams go silent.
    let all = [WebSocket, Sse, LongPoll];
    sim.net.blackhole_open.extend(all);
    sim.net.blackhole_streams.extend(all);
    let outage_end = sim.now + secs(40);
    sim.run_for(secs(40));
    sim.net.blackhole_open.clear();
    sim.net.blackhole_streams.clear();
    let back = sim.run_until(secs(60), |s| s.is_connected());
    // Each attempt during the outage: from `connecting` to the next `reconnecting`.
    let mut attempts = Vec::new();
    let mut started = None;
    for (at, e) in &sim.events {
        match e {
            Event::StateChanged {
                to: State::Connecting { .. },
                ..
            } => {
                started.get_or_insert(*at);
            }
            Event::StateChanged {
                to: State::Connected { .. },
                ..
            } => started = None,
            Event::StateChanged {
                to: State::Reconnecting { .. },
                ..
            } => {
                if let Some(s) = started.take() {
                    if *at <= outage_end {
                        attempts.push(*at - s);
                    }
                }
            }
            _ => {}
        }
    }
    assert!(attempts.len() >= 3, "{attempts:?}");
    let limit = sim.session.config().race_after * 2 + ms(100);
    assert!(
        attempts.iter().all(|d| *d <= limit),
        "attempts into the black hole took {attempts:?}"
    );
    assert!(
        back <= secs(20),
        "reconnected {back:?} after the outage ended"
    );
}

#[test]
fn pings_learn_to_go_under_a_middlebox_idle_timeout() {
    let mut sim = connected(121);
    // HAProxy `timeout tunnel 4s`: shorter than the ping beat the heartbeat allows (5 s).
    sim.net.ws_idle_cut = Some(secs(4));
    sim.run_for(secs(120));
    assert!(
        sim.server.idle_cuts <= 3,
        "{} idle cuts in 120 s",
        sim.server.idle_cuts
    );
    let cuts = sim.server.idle_cuts;
    sim.run_for(secs(60));
    assert_eq!(sim.server.idle_cuts, cuts, "still cut after learning");
    assert!(sim.is_connected_on(WebSocket));
}

#[test]
fn a_gateway_timeout_on_a_long_poll_shortens_the_wait_instead_of_dropping_the_link() {
    let mut sim = long_polling(122);
    sim.net.gateway_timeout = Some(secs(5));
    sim.run_for(secs(60));
    let reconnects = sim.count_events(|e| {
        matches!(
            e,
            Event::StateChanged {
                to: State::Reconnecting { .. },
                ..
            }
        )
    });
    assert_eq!(reconnects, 0, "{:?}", sim.state_trail());
    assert!(
        sim.server.gateway_timeouts <= 1,
        "{}",
        sim.server.gateway_timeouts
    );
    let last = *sim.server.poll_waits.last().unwrap();
    assert!(last < 5_000, "still asking for {last} ms");
    // Messages still flow, and promptly.
    let seq = sim.publish("general", "after the 504");
    sim.run_for(ms(100));
    assert_eq!(sim.delivered.last().map(|m| m.seq), Some(seq));
}

#[test]
fn a_proxy_error_page_does_not_end_up_in_a_cause() {
    let mut sim = long_polling(123);
    // The gateway times out even the shortest poll: the link fails, and says so briefly.
    sim.net.gateway_timeout = Some(ms(10));
    sim.run_until(secs(60), |s| !s.is_connected());
    let causes: Vec<String> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::StateChanged { cause, .. } => Some(cause.describe()),
            _ => None,
        })
        .collect();
    assert!(causes.iter().any(|c| c.contains("504")), "{causes:?}");
    assert!(causes.iter().all(|c| !c.contains('<')), "{causes:?}");
}

/// How long each delivered message took from the server (its `ts`) to the app.
fn delivery_latencies(sim: &Sim) -> Vec<Duration> {
    sim.events
        .iter()
        .filter_map(|(at, e)| match e {
            Event::Message(m) => Some(*at - (sim.start + ms(m.ts))),
            _ => None,
        })
        .collect()
}

#[test]
fn a_buffering_proxy_keeps_the_session_off_sse_and_messages_prompt() {
    let mut sim = Sim::new(config(124));
    // A reverse proxy without WebSocket support that buffers responses: SSE frames (and the
    // response headers) are held until eight pile up.
    sim.net.refuse.insert(WebSocket);
    sim.net.buffer_frames.insert(Sse, 8);
    sim.connect();
    sim.run_until(secs(10), |s| s.is_connected());
    let start = sim.session.cursor().unwrap();
    for n in 0..400 {
        sim.publish("general", &format!("m{n}"));
        sim.run_for(ms(300));
    }
    // The tail: nothing more is published.
    sim.run_for(secs(30));
    sim.assert_delivered_exactly_once_in_order();
    sim.assert_nothing_lost_after(start);
    assert_eq!(sim.delivered.len(), 400);
    let worst = delivery_latencies(&sim).into_iter().max().unwrap();
    assert!(worst <= ms(500), "a message took {worst:?}");
    assert!(
        !sim.state_trail().contains(&"connected:sse".to_string()),
        "{:?}",
        sim.state_trail()
    );
    // It did try: probes of SSE ran, and none was trusted.
    assert!(sim.server.opens.iter().filter(|k| **k == Sse).count() >= 3);
}

#[test]
fn a_live_sse_stream_whose_frames_arrive_late_is_left_for_the_rung_below() {
    let mut c = config(125);
    c.transports = vec![Sse, LongPoll];
    let mut sim = Sim::new(c);
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected_on(Sse));
    let start = sim.session.cursor().unwrap();
    // A proxy on the path starts buffering: frames come in bursts of six, 13 s apart.
    sim.net.buffer_frames.insert(Sse, 6);
    for n in 0..30 {
        sim.publish("general", &format!("m{n}"));
        sim.run_for(ms(2_600));
    }
    sim.run_for(secs(5));
    assert!(sim.is_connected_on(LongPoll), "{:?}", sim.state_trail());
    assert!(sim.events.iter().any(|(_, e)| matches!(
        e,
        Event::StateChanged { cause: Cause::TransportLost { detail, .. }, .. } if detail.contains("late")
    )));
    sim.assert_delivered_exactly_once_in_order();
    sim.assert_nothing_lost_after(start);
}

#[test]
fn a_prompt_sse_is_climbed_to_from_long_polling_while_messages_flow() {
    let mut c = config(126);
    c.transports = vec![Sse, LongPoll];
    c.initial_transport = Some(LongPoll);
    let mut sim = Sim::new(c);
    sim.connect();
    sim.run_until(secs(5), |s| s.is_connected_on(LongPoll));
    let start = sim.session.cursor().unwrap();
    // A message every 300 ms: the server never has a heartbeat's silence to fill on SSE.
    let mut n = 0;
    while !sim.is_connected_on(Sse) {
        n += 1;
        sim.publish("general", &format!("m{n}"));
        sim.run_for(ms(300));
        assert!(n < 400, "never climbed: {:?}", sim.state_trail());
    }
    for _ in 0..20 {
        n += 1;
        sim.publish("general", &format!("m{n}"));
        sim.run_for(ms(300));
    }
    sim.run_for(secs(1));
    assert_eq!(sim.delivered.len(), n);
    sim.assert_delivered_exactly_once_in_order();
    sim.assert_nothing_lost_after(start);
}

#[test]
fn a_websocket_that_works_again_is_found_while_sse_stays_held_back() {
    let mut sim = Sim::new(config(127));
    sim.net.refuse.insert(WebSocket);
    sim.net.buffer_frames.insert(Sse, 8);
    sim.connect();
    sim.run_until(secs(10), |s| s.is_connected_on(LongPoll));
    let start = sim.session.cursor().unwrap();
    sim.run_for(secs(30));
    // The WebSocket works again; SSE is still buffered.
    sim.net.refuse.clear();
    let mut n = 0;
    while !sim.is_connected_on(WebSocket) {
        n += 1;
        sim.publish("general", &format!("m{n}"));
        sim.run_for(ms(500));
        assert!(
            n < 600,
            "never found the WebSocket: {:?}",
            sim.state_trail()
        );
    }
    sim.run_for(secs(1));
    assert!(!sim.state_trail().contains(&"connected:sse".to_string()));
    sim.assert_delivered_exactly_once_in_order();
    sim.assert_nothing_lost_after(start);
}

// ----- a browser's event stream hides why it failed -----------------------------------------

/// A browser's `EventSource` reports a refused stream as a bare error. The core (not the
/// driver) asks the stream's URL for its status with a plain GET, once, and judges the answer.
fn browser_on_sse(seed: u64, transports: Vec<TransportKind>) -> Sim {
    let mut c = config(seed);
    c.transports = transports;
    let mut sim = Sim::new(c);
    sim.net.opaque_sse_failures = true;
    sim
}

#[test]
fn a_browser_learns_that_its_event_stream_token_expired_and_refreshes_it() {
    let mut sim = browser_on_sse(140, vec![Sse]);
    sim.server.valid_tokens.remove("tok-0");
    sim.server.expired_tokens.insert("tok-0".into());
    sim.connect();
    sim.run_until(secs(10), |s| s.is_connected_on(Sse));
    assert_eq!(sim.server.token_fetches, 1);
}

#[test]
fn a_browser_steps_down_at_once_from_an_event_stream_a_proxy_refuses() {
    // Not a first visit (SSE worked here before), so no race hides an ordinary failure.
    let mut c = config(141);
    c.transports = vec![Sse, LongPoll];
    c.initial_transport = Some(Sse);
    let mut sim = Sim::new(c);
    sim.net.opaque_sse_failures = true;
    sim.net.refuse.insert(Sse);
    sim.connect();
    sim.run_until(secs(10), |s| s.is_connected_on(LongPoll));
    let sse_opens = sim.server.opens.iter().filter(|k| **k == Sse).count();
    assert_eq!(
        sse_opens, 1,
        "a refusal is definitive: {:?}",
        sim.server.opens
    );
}
