//! The hand-written JSON codec (`lifeline_core::json`, used by `protocol`) checked against
//! serde_json, the reference: the same texts are accepted and refused and read as the same
//! values, and every frame the codec writes is JSON that serde_json reads back field for field.
//! Random inputs come from seeded generators, so a failure replays from its seed. Native only:
//! the reference does not run in the browser build.

#![cfg(not(target_arch = "wasm32"))]

use lifeline_core::json::{self, Number, Value};
use lifeline_core::protocol::{
    self, ClientFrame, ErrorCode, ErrorFrame, Hello, Message, ServerFrame,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn from_serde(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Number(if let Some(u) = n.as_u64() {
            Number::Unsigned(u)
        } else if let Some(i) = n.as_i64() {
            Number::Negative(i)
        } else {
            Number::Other
        }),
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(from_serde).collect()),
        serde_json::Value::Object(o) => {
            let mut members: Vec<(String, Value)> =
                o.iter().map(|(k, v)| (k.clone(), from_serde(v))).collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(members)
        }
    }
}

fn sorted(v: Value) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        Value::Object(o) => {
            let mut members: Vec<(String, Value)> =
                o.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(members)
        }
        other => other,
    }
}

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
        let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
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
        let reference = serde_json::from_str::<serde_json::Value>(&text);
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
        let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(reference.get("type").is_some(), "{text}");
        // Our reader and serde_json see the same document.
        assert_eq!(sorted(json::parse(&text).unwrap()), from_serde(&reference));
        let back: ClientFrame = protocol::FromJson::from_json(json::parse(&text).unwrap()).unwrap();
        assert_eq!(back, client);

        let text = protocol::encode(&server);
        let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
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
