//! Property tests of the session: random fault schedules over many seeds, each replayable from its
//! seed alone. After the faults stop and the network heals, every run must show: no message lost
//! or delivered twice, order kept, every send resolved exactly once, every backoff delay within its
//! bounds, and the session back on WebSocket. The harness itself asserts, after every step, at most
//! one live transport plus one other and that `poll_timeout` is later than the time just handled.

mod sim;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use lifeline_core::{Event, Input, MsgId, State, TransportKind};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sim::{config, Net, Sim};
use std::collections::HashMap;
use std::time::Duration;
use TransportKind::{LongPoll, Sse, WebSocket};

#[cfg(not(target_arch = "wasm32"))]
const SEEDS: u64 = 300;
#[cfg(target_arch = "wasm32")]
const SEEDS: u64 = 40;

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

fn toggle<T: std::hash::Hash + Eq>(set: &mut std::collections::HashSet<T>, item: T) {
    if !set.remove(&item) {
        set.insert(item);
    }
}

/// Runs one random fault schedule and checks every property. Panics name the seed.
fn run_schedule(seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let mut c = config(seed);
    c.initial_transport = match rng.random_range(0..4) {
        0 => Some(Sse),
        1 => Some(LongPoll),
        _ => None,
    };
    let mut sim = Sim::new(c);
    let latency = ms(rng.random_range(1..150));
    sim.net.latency = latency;
    sim.connect();
    sim.run_until(Duration::from_secs(10), |s| s.is_connected());
    let mut accepted: Vec<MsgId> = Vec::new();
    let mut online = true;
    let kinds = [WebSocket, Sse, LongPoll];
    for _ in 0..120 {
        match rng.random_range(0..20) {
            0 => toggle(&mut sim.net.refuse, WebSocket),
            1 => toggle(&mut sim.net.refuse, Sse),
            2 => toggle(&mut sim.net.blackhole_open, kinds[rng.random_range(0..3)]),
            3 => sim.drop_all(),
            4 => sim.net.down = !sim.net.down,
            5 => toggle(
                &mut sim.net.blackhole_streams,
                kinds[rng.random_range(0..3)],
            ),
            6 => toggle(&mut sim.net.mute, kinds[rng.random_range(0..2)]),
            7 => {
                online = !online;
                sim.input(Input::Network { online });
            }
            8 => {
                sim.freeze_for(ms(rng.random_range(0..60_000)));
                if rng.random_bool(0.5) {
                    sim.input(Input::Resumed);
                }
            }
            9 => sim.input(Input::Visibility {
                visible: rng.random_bool(0.5),
            }),
            10 => sim.going_away(ms(rng.random_range(0..3_000))),
            11 => sim.net.no_heartbeats = !sim.net.no_heartbeats,
            12 if sim.is_connected() => {
                // Every token in use expires; the provider hands out fresh ones.
                let valid: Vec<String> = sim.server.valid_tokens.drain().collect();
                sim.server.expired_tokens.extend(valid);
                sim.drop_all();
            }
            13 => {
                sim.net.latency = ms(rng.random_range(1..400));
            }
            19 => sim.net.lose_send_answers = !sim.net.lose_send_answers,
            14..=16 => {
                let body = format!("s{}-{}", seed, accepted.len());
                if let Ok(id) = sim.try_send("general", &body) {
                    accepted.push(id);
                }
            }
            _ => {
                let body = format!("p{}", sim.server.messages.len());
                sim.publish("general", &body);
            }
        }
        sim.run_for(ms(rng.random_range(0..3_000)));
    }

    // Heal everything and let the session settle.
    sim.net = Net {
        latency,
        ..Default::default()
    };
    if !online {
        sim.input(Input::Network { online: true });
    }
    sim.run_until(Duration::from_secs(600), |s| {
        s.is_connected_on(WebSocket) && s.session.outbox_len() == 0
    });
    sim.run_for(Duration::from_secs(2));

    check(&sim, &accepted, seed);
}

fn check(sim: &Sim, accepted: &[MsgId], seed: u64) {
    if std::env::var("DUMP").is_ok() {
        for (at, e) in &sim.events {
            eprintln!("{:>10?} {e:?}", *at - sim.start);
        }
    }
    assert!(
        !sim.session.state().is_final(),
        "seed {seed}: ended {:?}",
        sim.session.state()
    );
    // Exactly once, in order, nothing lost (no retention limit here, so no gap is allowed).
    sim.assert_delivered_exactly_once_in_order();
    assert_eq!(
        sim.count_events(|e| matches!(e, Event::Discontinuity { .. })),
        0,
        "seed {seed}"
    );
    // The session connected before anything was published, so every message counts.
    sim.assert_nothing_lost_after(0);
    // Every send resolved exactly once.
    let mut resolved: HashMap<&MsgId, usize> = HashMap::new();
    for (_, e) in &sim.events {
        match e {
            Event::Acked { id, .. } | Event::SendFailed { id, .. } => {
                *resolved.entry(id).or_default() += 1;
            }
            _ => {}
        }
    }
    for id in accepted {
        assert_eq!(
            resolved.get(id).copied().unwrap_or(0),
            1,
            "seed {seed}: send {id} resolved {:?} times",
            resolved.get(id)
        );
    }
    // Every acknowledged send is stored once and came back on the stream.
    let delivered_ids: HashMap<&str, u64> = sim
        .delivered
        .iter()
        .map(|m| (m.id.as_str(), m.seq))
        .collect();
    for (_, e) in &sim.events {
        if let Event::Acked { id, seq } = e {
            assert_eq!(
                delivered_ids.get(id.0.as_str()),
                Some(seq),
                "seed {seed}: acked {id} as {seq} but not delivered so"
            );
        }
    }
    // Every backoff delay within bounds.
    let (floor, cap) = sim.session.config().backoff.bounds();
    for (at, e) in &sim.events {
        if let Event::StateChanged {
            to:
                State::Reconnecting {
                    next_attempt_at: Some(next),
                    ..
                },
            ..
        } = e
        {
            let d = *next - *at;
            assert!(
                d >= floor && d <= cap,
                "seed {seed}: delay {d:?} outside [{floor:?}, {cap:?}]"
            );
        }
    }
}

#[test]
fn random_fault_schedules_lose_nothing_duplicate_nothing_and_recover() {
    for seed in 0..SEEDS {
        run_schedule(seed);
    }
}

#[test]
fn messages_from_the_app_are_never_lost_across_random_drops() {
    // A denser variant: the app sends steadily while the connection is dropped at random.
    for seed in 0..SEEDS / 3 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut sim = Sim::new(config(seed + 10_000));
        sim.net.latency = ms(rng.random_range(1..100));
        sim.connect();
        sim.run_until(Duration::from_secs(10), |s| s.is_connected());
        let mut accepted = Vec::new();
        for i in 0..200 {
            accepted.push(sim.send("general", &format!("{i}")));
            if rng.random_bool(0.05) {
                sim.drop_all();
            }
            sim.run_for(ms(rng.random_range(0..300)));
        }
        sim.run_until(Duration::from_secs(120), |s| s.session.outbox_len() == 0);
        sim.run_for(Duration::from_secs(1));
        check(&sim, &accepted, seed);
        let bodies: Vec<String> = sim.delivered.iter().map(|m| m.body.clone()).collect();
        let expected: Vec<String> = (0..200).map(|i| i.to_string()).collect();
        assert_eq!(bodies, expected, "seed {seed}: the app's own order");
    }
}

#[test]
#[ignore]
fn debug_seed() {
    let seed: u64 = std::env::var("SEED").unwrap().parse().unwrap();
    run_schedule(seed);
}

/// Whether `id` is a UUID version 4 in its lowercase text form, and a legal protocol id.
fn is_uuid_v4(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
        && lifeline_core::protocol::validate_id("id", id).is_ok()
}

#[test]
fn message_ids_never_collide_across_sessions_even_with_the_same_seed() {
    // The drivers' OS generator, played by one seeded generator here. Sessions share seeds as two
    // clients built with the same `seed` would: their ids must still differ.
    let mut os = SmallRng::seed_from_u64(0x05);
    let now = lifeline_core::Instant::from_micros(0);
    let mut seen = std::collections::HashSet::new();
    for session in 0..SEEDS {
        let seed = if session % 2 == 0 { 7 } else { session };
        let mut s = lifeline_core::Session::new(config(seed), now);
        for i in 0..20 {
            let id = s
                .send(now, "general", &format!("{i}"), os.random())
                .expect("accepted");
            assert!(is_uuid_v4(&id.0), "{id}");
            assert!(seen.insert(id.clone()), "session {session} repeated {id}");
        }
    }
}

#[test]
fn every_one_of_the_122_random_bits_reaches_the_message_id() {
    let mut os = SmallRng::seed_from_u64(0x122);
    for _ in 0..SEEDS {
        let random: [u8; 16] = os.random();
        let id = MsgId::from_random(random);
        assert!(is_uuid_v4(&id.0), "{id}");
        let mut distinct = std::collections::HashSet::new();
        for bit in 0..128 {
            let mut flipped = random;
            flipped[bit / 8] ^= 0x80 >> (bit % 8);
            let other = MsgId::from_random(flipped);
            // The 4 version bits (byte 6, high nibble) and 2 variant bits (byte 8, top two) are
            // fixed; every other bit changes the id.
            let fixed = (48..52).contains(&bit) || (64..66).contains(&bit);
            assert_eq!(other == id, fixed, "bit {bit}");
            if !fixed {
                distinct.insert(other);
            }
        }
        assert_eq!(distinct.len(), 122);
    }
}
