//! The hand-written JSON codec (`lifeline_core::json`, used by `protocol`) checked against
//! serde_json, the reference: the same texts are accepted and refused and read as the same
//! values, and every frame the codec writes is JSON that serde_json reads back field for field.
//! The reference refuses a repeated member name, as serde_json's derived structs do.
//! Random inputs come from seeded generators, so a failure replays from its seed; the bounded
//! differential run also draws a few fresh seeds per run and prints them when it fails. Deeper
//! runs: the `json_differential` cargo-fuzz target (`cargo xtask fuzz SECS json_differential`).
//! Native only: the reference does not run in the browser build.

#![cfg(not(target_arch = "wasm32"))]

use lifeline_core::json;
use lifeline_core::protocol::{
    self, ClientFrame, ErrorCode, ErrorFrame, Hello, Message, ServerFrame,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

mod reference;
use reference::{agree, from_serde, sorted, strict_serde};

const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u",
    "\\ud83d",
    "\\ude00",
    "0",
    "1",
    "-",
    ".",
    "e",
    "E",
    "+",
    "true",
    "false",
    "null",
    " ",
    "\n",
    "\"a\"",
    "\"type\"",
    "\"type\":",
    ",\"a\":1",
    "12345678901234567890",
    "é",
    "\u{1}",
    "\\n",
    "\\x",
    "00",
    "-0",
    "1.5",
    "2e3",
];

fn random_json(rng: &mut SmallRng, depth: u32) -> String {
    match rng.random_range(0..if depth > 4 { 4 } else { 7 }) {
        0 => rng.random_range(0..u64::MAX).to_string(),
        1 => format!("-{}", rng.random_range(0..1000u32)),
        2 => random_string_literal(rng),
        3 => ["true", "false", "null", "1.25", "3e2"][rng.random_range(0..5)].to_string(),
        4 | 5 => {
            let n = rng.random_range(0..4);
            let members: Vec<String> = (0..n)
                .map(|i| format!("\"k{i}\" : {}", random_json(rng, depth + 1)))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        _ => {
            let n = rng.random_range(0..4);
            let items: Vec<String> = (0..n).map(|_| random_json(rng, depth + 1)).collect();
            format!("[ {} ]", items.join(" , "))
        }
    }
}

fn random_text(rng: &mut SmallRng) -> String {
    let n = rng.random_range(0..12);
    let chars = [
        'a', 'é', '"', '\\', '\n', '\u{0}', '\u{1f}', '😀', '/', ' ', '\u{7f}',
    ];
    (0..n)
        .map(|_| chars[rng.random_range(0..chars.len())])
        .collect()
}

fn random_string_literal(rng: &mut SmallRng) -> String {
    serde_json::to_string(&random_text(rng)).unwrap()
}

#[test]
fn the_reader_agrees_with_serde_json_on_valid_json() {
    let mut rng = SmallRng::seed_from_u64(1);
    for _ in 0..20_000 {
        let text = random_json(&mut rng, 0);
        let reference = strict_serde(&text).unwrap();
        let ours = json::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(sorted(ours), from_serde(&reference), "{text:?}");
    }
}

#[test]
fn the_reader_accepts_and_refuses_what_serde_json_does() {
    let mut rng = SmallRng::seed_from_u64(2);
    for _ in 0..50_000 {
        let n = rng.random_range(1..10);
        let text: String = (0..n)
            .map(|_| PIECES[rng.random_range(0..PIECES.len())])
            .collect();
        let reference = strict_serde(&text);
        if reference
            .as_ref()
            .is_err_and(|e| e.to_string().starts_with("number out of range"))
        {
            // The one known difference: a number beyond a double's range is only "some number"
            // to us (no protocol field can hold it), an error to serde_json.
            continue;
        }
        let ours = json::parse(&text);
        assert_eq!(
            ours.is_ok(),
            reference.is_ok(),
            "{text:?}: ours {ours:?}, serde_json {reference:?}"
        );
        if let (Ok(ours), Ok(reference)) = (ours, reference) {
            assert_eq!(sorted(ours), from_serde(&reference), "{text:?}");
        }
    }
}

fn random_frames(rng: &mut SmallRng) -> (ClientFrame, ServerFrame) {
    let s = |rng: &mut SmallRng| random_text(rng);
    let client = match rng.random_range(0..5) {
        0 => ClientFrame::Send {
            id: s(rng),
            conv: s(rng),
            body: s(rng),
        },
        1 => ClientFrame::Subscribe { conv: s(rng) },
        2 => ClientFrame::Unsubscribe { conv: s(rng) },
        3 => ClientFrame::Typing { conv: s(rng) },
        _ => ClientFrame::Ping { t: rng.random() },
    };
    let server = match rng.random_range(0..10) {
        0 => ServerFrame::Hello(Hello {
            v: rng.random(),
            user: s(rng),
            heartbeat_ms: rng.random(),
            cursor: rng.random(),
            resumed: rng.random(),
            max_body_bytes: rng.random::<bool>().then(|| rng.random()),
            max_frames: rng.random::<bool>().then(|| rng.random()),
        }),
        1 => ServerFrame::Msg(Message {
            seq: rng.random(),
            conv: s(rng),
            from: s(rng),
            id: s(rng),
            body: s(rng),
            ts: rng.random(),
        }),
        2 => ServerFrame::Ack {
            id: s(rng),
            seq: rng.random(),
        },
        3 => ServerFrame::Subscribed { conv: s(rng) },
        4 => ServerFrame::Presence {
            conv: s(rng),
            user: s(rng),
            online: rng.random(),
        },
        5 => ServerFrame::Typing {
            conv: s(rng),
            user: s(rng),
        },
        6 => ServerFrame::Pong { t: rng.random() },
        7 => ServerFrame::Heartbeat,
        8 => ServerFrame::Unsubscribed { conv: s(rng) },
        _ => ServerFrame::Error(ErrorFrame {
            code: [
                ErrorCode::RateLimited,
                ErrorCode::GoingAway,
                ErrorCode::Forbidden,
            ][rng.random_range(0..3)],
            message: s(rng),
            id: rng.random_bool(0.5).then(|| s(rng)),
            conv: rng.random_bool(0.5).then(|| s(rng)),
            retry_after_ms: rng.random_bool(0.5).then(|| rng.random()),
        }),
    };
    (client, server)
}

#[test]
fn every_frame_written_is_json_that_reads_back_the_same() {
    let mut rng = SmallRng::seed_from_u64(3);
    for _ in 0..20_000 {
        let (client, server) = random_frames(&mut rng);
        let text = protocol::encode(&client);
        let reference = strict_serde(&text).unwrap();
        assert!(reference.get("type").is_some(), "{text}");
        // Our reader and serde_json see the same document.
        assert_eq!(sorted(json::parse(&text).unwrap()), from_serde(&reference));
        let back: ClientFrame = protocol::FromJson::from_json(json::parse(&text).unwrap()).unwrap();
        assert_eq!(back, client);

        let text = protocol::encode(&server);
        let reference = strict_serde(&text).unwrap();
        assert_eq!(sorted(json::parse(&text).unwrap()), from_serde(&reference));
        assert_eq!(protocol::decode_server_frame(&text).unwrap(), server);
    }
}

#[test]
fn frames_with_extra_members_null_options_and_any_member_order_decode() {
    let text = r#"{"extra":{"deep":[1,2,{"x":null}]},"retry_after_ms":null,"id":"a","code":"rate_limited","type":"error"}"#;
    let frame = protocol::decode_server_frame(text).unwrap();
    assert_eq!(
        frame,
        ServerFrame::Error(ErrorFrame {
            code: ErrorCode::RateLimited,
            message: String::new(),
            id: Some("a".into()),
            conv: None,
            retry_after_ms: None,
        })
    );
    for bad in [
        r#"{"type":"ack","id":"a"}"#,
        r#"{"type":"ack","id":"a","seq":-1}"#,
        r#"{"type":"ack","id":"a","seq":1.5}"#,
        r#"{"type":"ack","id":1,"seq":1}"#,
        r#"{"type":"hello","v":4294967296,"user":"u","heartbeat_ms":1,"cursor":1,"resumed":true}"#,
        r#"["type","ack"]"#,
    ] {
        assert!(protocol::decode_server_frame(bad).is_err(), "{bad}");
    }
}

/// A valid frame with one to three edits: a piece inserted, a span deleted, a member repeated.
fn mutated_frame(rng: &mut SmallRng) -> String {
    let (client, server) = random_frames(rng);
    let mut text = if rng.random() {
        protocol::encode(&client)
    } else {
        protocol::encode(&server)
    };
    for _ in 0..rng.random_range(1..4) {
        let boundaries: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        let at = boundaries[rng.random_range(0..boundaries.len())];
        match rng.random_range(0..3) {
            0 => text.insert_str(at, PIECES[rng.random_range(0..PIECES.len())]),
            1 => {
                let end = boundaries[rng.random_range(0..boundaries.len())];
                let (from, to) = (at.min(end), at.max(end));
                if to - from <= 8 {
                    text.replace_range(from..to, "");
                }
            }
            _ if text.is_char_boundary(1) => {
                // Repeat a member the frame already has (or a fresh one) just after its `{`.
                let name = ["type", "id", "conv", "seq", "body", "fresh"][rng.random_range(0..6)];
                text.insert_str(1, &format!("\"{name}\":\"x\","));
            }
            _ => {}
        }
    }
    text
}

#[test]
fn bounded_differential_run_on_mutated_frames_and_random_texts() {
    // Fixed seeds replay the same cases on every run; two fresh ones widen the search a little.
    let mut seeds = vec![11, 12, 13, 14];
    let fresh = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    seeds.extend([fresh, fresh.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15]);
    const CASES_PER_SEED: u32 = 20_000;
    const BUDGET_PER_SEED: Duration = Duration::from_secs(3);
    let mut cases = 0u64;
    for seed in seeds {
        let mut rng = SmallRng::seed_from_u64(seed);
        let started = Instant::now();
        for i in 0..CASES_PER_SEED {
            let text = if i % 4 == 3 {
                let n = rng.random_range(1..16);
                (0..n)
                    .map(|_| PIECES[rng.random_range(0..PIECES.len())])
                    .collect()
            } else {
                mutated_frame(&mut rng)
            };
            agree(&text).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            cases += 1;
            if started.elapsed() > BUDGET_PER_SEED {
                break;
            }
        }
    }
    // The budget is generous: on any machine that runs the suite, thousands of cases run.
    assert!(cases >= 6 * 1000, "only {cases} cases ran");
}

#[test]
fn a_frame_repeating_a_member_is_refused_like_serde_json_refuses_it() {
    for text in [
        r#"{"type":"ack","id":"a","seq":1,"type":"msg"}"#,
        r#"{"type":"ack","id":"a","id":"b","seq":1}"#,
        r#"{"type":"ack","id":"a","seq":1,"seq":2}"#,
        r#"{"type":"error","code":"forbidden","extra":1,"extra":2}"#,
        r#"{"type":"error","code":"forbidden","id":"a","i\u0064":"b"}"#,
    ] {
        assert!(strict_serde(text).is_err(), "{text}");
        let e = protocol::decode_server_frame(text).unwrap_err();
        assert!(
            matches!(&e, protocol::FrameError::Malformed { detail } if detail == "duplicate member"),
            "{text}: {e:?}"
        );
    }
}
