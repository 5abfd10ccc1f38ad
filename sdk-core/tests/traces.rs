//! Recorded traces: a few long seeded simulator scenarios whose full trace — every input the
//! session was handed, every timeout it handled, every action it asked for and every event it
//! emitted, each with its simulated time in milliseconds — is kept in `tests/traces/*.trace` and
//! compared line by line. They pin the session's observable behaviour so that a refactoring of
//! `sdk-core` can be checked against it: a refactoring must leave every trace identical.
//!
//! A mismatch fails with a readable diff of the first differing lines. When a change of behaviour
//! is intended, rewrite the files with
//!
//! ```text
//! LIFELINE_BLESS=1 cargo test -p lifeline-core --test traces
//! ```
//!
//! and say in the commit why the traces changed.

mod sim;

use lifeline_core::protocol::ServerFrame;
use lifeline_core::{Input, TransportKind::*};
use sim::{config, Sim};
use std::path::PathBuf;
use std::time::Duration;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// A simulation that records its trace.
fn recording(c: lifeline_core::Config) -> Sim {
    let mut sim = Sim::new(c);
    sim.trace = Some(Vec::new());
    sim
}

/// Compares the recorded trace with `tests/traces/<name>.trace`, or rewrites that file under
/// `LIFELINE_BLESS=1`.
fn check(name: &str, sim: &Sim) {
    let lines = sim.trace.as_ref().expect("trace recorded");
    let mut got = lines.join("\n");
    got.push('\n');
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/traces")
        .join(format!("{name}.trace"));
    if std::env::var_os("LIFELINE_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; record it with LIFELINE_BLESS=1 cargo test -p lifeline-core --test traces",
            path.display()
        )
    });
    if want == got {
        return;
    }
    let want: Vec<&str> = want.lines().collect();
    let got: Vec<&str> = got.lines().collect();
    let first = want
        .iter()
        .zip(&got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    let from = first.saturating_sub(3);
    let mut diff = String::new();
    for line in &want[from..want.len().min(first + 8)] {
        diff.push_str(&format!("- {line}\n"));
    }
    for line in &got[from..got.len().min(first + 8)] {
        diff.push_str(&format!("+ {line}\n"));
    }
    panic!(
        "trace {name} differs from {} at line {} ({} lines recorded, {} expected):\n{diff}",
        path.display(),
        first + 1,
        got.len(),
        want.len()
    );
}

/// The ladder: refused upgrades walk down to long polling, the session climbs back when they
/// are allowed again, a black-holed WebSocket is found dead, a freeze, a hidden and shown page,
/// going offline and back, sends on every rung.
#[test]
fn ladder_walks_freezes_and_sends() {
    let mut sim = recording(config(9001));
    sim.net.refuse.extend([WebSocket, Sse]);
    sim.connect();
    sim.run_for(secs(10));
    for i in 0..5 {
        sim.publish("general", &format!("lp{i}"));
        sim.send("general", &format!("s-lp{i}"));
        sim.run_for(ms(700));
    }
    sim.net.refuse.clear();
    for i in 0..40 {
        sim.publish("general", &format!("climb{i}"));
        sim.run_for(secs(2));
    }
    sim.net.blackhole_streams.insert(WebSocket);
    sim.send("general", "into the hole");
    sim.run_for(secs(40));
    sim.net.blackhole_streams.clear();
    sim.run_for(secs(60));
    sim.freeze_for(secs(30));
    sim.run_for(secs(5));
    sim.input(Input::Visibility { visible: false });
    sim.run_for(secs(20));
    sim.input(Input::Visibility { visible: true });
    sim.run_for(secs(5));
    sim.input(Input::Network { online: false });
    sim.net.down = true;
    sim.run_for(secs(10));
    sim.net.down = false;
    sim.input(Input::Network { online: true });
    sim.run_for(secs(10));
    sim.input(Input::Resumed);
    sim.send("general", "back");
    sim.run_for(secs(10));
    check("ladder", &sim);
}

/// Tokens and limits: an expired token refreshed, a failing provider, a server down with backoff
/// and its reset, rate-limited opens and sends, a going-away window, lost send answers.
#[test]
fn tokens_rate_limits_and_backoff() {
    let mut sim = recording(config(9002));
    sim.connect();
    sim.run_for(secs(3));
    sim.subscribe("general");
    sim.server.valid_tokens.remove("tok-0");
    sim.server.expired_tokens.insert("tok-0".into());
    sim.drop_all();
    sim.run_for(secs(10));
    sim.token_source = None;
    let valid: Vec<String> = sim.server.valid_tokens.drain().collect();
    sim.server.expired_tokens.extend(valid);
    sim.drop_all();
    sim.run_for(secs(20));
    sim.token_source = Some("tok-b".into());
    sim.run_for(secs(30));
    sim.net.down = true;
    sim.drop_all();
    sim.run_for(secs(60));
    sim.net.down = false;
    sim.net.rate_limit_opens = Some(secs(4));
    sim.run_for(secs(15));
    sim.net.rate_limit_opens = None;
    sim.run_for(secs(30));
    sim.server.rate_limit_sends = Some(secs(2));
    for i in 0..4 {
        sim.send("general", &format!("r{i}"));
    }
    sim.run_for(ms(300));
    sim.server.rate_limit_sends = None;
    sim.run_for(secs(10));
    sim.going_away(secs(5));
    sim.run_for(secs(20));
    sim.send("elsewhere", "not a member");
    sim.broadcast(ServerFrame::Heartbeat);
    sim.run_for(secs(5));
    check("tokens", &sim);
}

/// Proxies and middleboxes: a buffering proxy on SSE with a muted WebSocket, reset upgrades,
/// a WebSocket cut when idle, slow opens.
#[test]
fn buffering_proxies_and_middleboxes() {
    let mut c = config(9003);
    c.transports = vec![WebSocket, Sse, LongPoll];
    let mut sim = recording(c);
    sim.net.mute.insert(WebSocket);
    sim.net.buffer_frames.insert(Sse, 4);
    sim.connect();
    sim.run_for(secs(30));
    for i in 0..10 {
        sim.publish("general", &format!("b{i}"));
        sim.send("general", &format!("sb{i}"));
        sim.run_for(secs(1));
    }
    sim.run_for(secs(30));
    sim.net.mute.clear();
    sim.net.buffer_frames.clear();
    sim.net.reset_open.insert(WebSocket);
    sim.drop_all();
    sim.run_for(secs(30));
    sim.net.reset_open.clear();
    sim.net.ws_idle_cut = Some(secs(15));
    sim.net.slow_open.insert(WebSocket, ms(2500));
    sim.run_for(secs(120));
    for i in 0..5 {
        sim.publish("general", &format!("i{i}"));
        sim.run_for(secs(3));
    }
    sim.run_for(secs(60));
    check("proxies", &sim);
}

/// Long polling behind a gateway with a timeout, HTTP sends batched within advertised limits,
/// a 413 that splits a batch, sends whose answers are lost.
#[test]
fn long_polling_and_the_http_send_pipe() {
    let mut c = config(9004);
    c.transports = vec![LongPoll];
    let mut sim = recording(c);
    sim.server.advertise_limits = true;
    sim.server.max_body_bytes = Some(2_000);
    sim.net.gateway_timeout = Some(secs(20));
    sim.connect();
    sim.run_for(secs(5));
    for i in 0..12 {
        sim.publish("general", &format!("p{i}"));
        sim.run_for(ms(400));
    }
    let body = "x".repeat(300);
    for i in 0..10 {
        sim.send("general", &format!("{i}{body}"));
    }
    sim.run_for(secs(5));
    sim.net.lose_send_answers = true;
    sim.send("general", "lost answer");
    sim.run_for(secs(40));
    sim.net.lose_send_answers = false;
    sim.run_for(secs(60));
    sim.net.latency = ms(150);
    for i in 0..6 {
        sim.send("general", &format!("late{i}"));
        sim.publish("general", &format!("q{i}"));
        sim.run_for(ms(250));
    }
    sim.run_for(secs(90));
    check("long_poll", &sim);
}
