//! The `.wasm`'s JSON reader (the browser's `JSON.parse`, `lifeline_wasm::Decoder`) against the
//! core's own (`OwnJson`, what every native client uses), in Chromium: on every frame a server
//! writes, on poll and send responses, history pages and HTTP error bodies, and on broken ones,
//! both must give the same frame or the same typed error. Only the differences docs/PROTOCOL.md
//! lists ("Decoding in the browser") are allowed, and each is checked to be what it says.
//!
//! Runs with `cargo test -p lifeline-wasm --target wasm32-unknown-unknown --test browser_json`
//! (what `cargo xtask test` does, with wasm-bindgen-test-runner and chromedriver).

#![cfg(target_arch = "wasm32")]

use lifeline_core::protocol::{
    encode, Batch, ErrorCode, ErrorFrame, FrameDecoder, FrameError, Hello, HistoryPage, HttpError,
    Message, OwnJson, ServerFrame, MAX_BATCH_BYTES, MAX_FRAME_BYTES,
};
use lifeline_wasm::browser_json::BrowserJson as Decoder;
use wasm_bindgen_test::wasm_bindgen_test as test;

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

fn message(seq: u64, body: &str) -> Message {
    Message {
        seq,
        conv: "general".into(),
        from: "bob".into(),
        id: "b-1".into(),
        body: body.into(),
        ts: 1_700_000_000_000,
    }
}

fn error(code: ErrorCode, retry: Option<u64>) -> ErrorFrame {
    ErrorFrame {
        code,
        message: "slow \"down\" \u{e9}\u{1f600}".into(),
        id: Some("c1".into()),
        conv: None,
        retry_after_ms: retry,
    }
}

/// One of each frame a server writes, with escapes and non-ASCII text in the strings.
fn frames() -> Vec<ServerFrame> {
    vec![
        ServerFrame::Hello(Hello {
            v: 1,
            user: "alice".into(),
            heartbeat_ms: 10_000,
            cursor: 7,
            resumed: true,
            max_body_bytes: None,
            max_frames: Some(64),
        }),
        ServerFrame::Msg(message(8, "line\nbreak \\ tab\t \u{1f600} \u{0}")),
        ServerFrame::Ack {
            id: "c1".into(),
            seq: 9_007_199_254_740_991,
        },
        ServerFrame::Subscribed { conv: "a".into() },
        ServerFrame::Unsubscribed { conv: "a".into() },
        ServerFrame::Presence {
            conv: "a".into(),
            user: "bob".into(),
            online: false,
        },
        ServerFrame::Typing {
            conv: "a".into(),
            user: "bob".into(),
        },
        ServerFrame::Pong { t: 0 },
        ServerFrame::Heartbeat,
        ServerFrame::Error(error(ErrorCode::RateLimited, Some(250))),
        ServerFrame::Error(error(ErrorCode::Unknown, None)),
    ]
}

/// Valid JSON that is not a valid frame: both readers must refuse it with the same error.
const BAD_FRAMES: &[&str] = &[
    "[]",
    "null",
    "\"hello\"",
    "7",
    "{}",
    r#"{"type":7}"#,
    r#"{"type":"nope"}"#,
    r#"{"type":"msg"}"#,
    r#"{"type":"msg","seq":-1,"conv":"a","from":"b","id":"c","body":"d","ts":1}"#,
    r#"{"type":"msg","seq":1.5,"conv":"a","from":"b","id":"c","body":"d","ts":1}"#,
    r#"{"type":"msg","seq":"1","conv":"a","from":"b","id":"c","body":"d","ts":1}"#,
    r#"{"type":"msg","seq":1,"conv":null,"from":"b","id":"c","body":"d","ts":1}"#,
    r#"{"type":"ack","id":"c1"}"#,
    r#"{"type":"ack","id":["c1"],"seq":1}"#,
    r#"{"type":"presence","conv":"a","user":"b","online":1}"#,
    r#"{"type":"hello","v":4294967296,"user":"a","heartbeat_ms":1,"cursor":0,"resumed":true}"#,
    r#"{"type":"hello","v":1,"user":"a","heartbeat_ms":1,"cursor":0,"resumed":true,"max_frames":"64"}"#,
    r#"{"type":"error"}"#,
    r#"{"type":"error","code":"going_away","retry_after_ms":true}"#,
    r#"{"type":"pong","t":{}}"#,
    // Unknown members, nested or not, are ignored.
    r#"{"type":"pong","t":3,"extra":{"deep":[1,{"x":null}]}}"#,
    // `null` for an optional member is absent.
    r#"{"type":"error","code":"internal","message":null,"id":null,"conv":null,"retry_after_ms":null}"#,
];

/// Not JSON: both refuse it as malformed (the browser's detail is "not JSON").
const NOT_JSON: &[&str] = &[
    "",
    "{",
    "{\"type\":\"heartbeat\"",
    "{\"type\":\"heartbeat\"} x",
    "{'type':'heartbeat'}",
    "{\"type\":\"heartbeat\",}",
    "\u{0}",
    "[1,]",
];

fn same_frame(text: &str) {
    assert_eq!(
        Decoder.server_frame(text),
        OwnJson.server_frame(text),
        "{text}"
    );
}

#[test]
fn every_frame_a_server_writes_reads_the_same() {
    for frame in frames() {
        let text = encode(&frame);
        assert_eq!(Decoder.server_frame(&text), Ok(frame), "{text}");
        same_frame(&text);
        // Whitespace and member order are the writer's business.
        same_frame(&format!(
            " \n{} ",
            text.replacen("{\"type\"", "{ \"type\" ", 1)
        ));
    }
}

#[test]
fn frames_that_break_the_schema_give_the_same_error() {
    for text in BAD_FRAMES {
        same_frame(text);
    }
}

#[test]
fn text_that_is_not_json_is_malformed() {
    for text in NOT_JSON {
        assert!(
            matches!(
                OwnJson.server_frame(text),
                Err(FrameError::Malformed { .. })
            ),
            "{text:?}"
        );
        assert_eq!(
            Decoder.server_frame(text),
            Err(FrameError::Malformed {
                detail: "not JSON".into()
            }),
            "{text:?}"
        );
    }
}

#[test]
fn size_limits_are_the_cores() {
    let big = format!(
        r#"{{"type":"typing","conv":"a","user":"{}"}}"#,
        "x".repeat(MAX_FRAME_BYTES)
    );
    assert!(matches!(
        Decoder.server_frame(&big),
        Err(FrameError::TooLarge { .. })
    ));
    same_frame(&big);
    let batch = format!(r#"{{"frames":[],"pad":"{}"}}"#, "x".repeat(MAX_BATCH_BYTES));
    assert_eq!(Decoder.server_batch(&batch), OwnJson.server_batch(&batch));
    assert!(Decoder.server_batch(&batch).is_err());
}

#[test]
fn batches_history_pages_and_error_bodies_read_the_same() {
    let batch = encode(&Batch { frames: frames() });
    assert_eq!(Decoder.server_batch(&batch).unwrap().frames, frames());
    let page = encode(&HistoryPage {
        messages: vec![message(1, "a"), message(2, "b")],
        next_before: Some(1),
    });
    assert_eq!(Decoder.history(&page), OwnJson.history(&page));
    assert_eq!(Decoder.history(&page).unwrap().messages.len(), 2);
    let body = encode(&HttpError {
        error: error(ErrorCode::Forbidden, None),
    });
    assert_eq!(Decoder.http_error(&body), OwnJson.http_error(&body));
    assert_eq!(
        Decoder.http_error(&body).unwrap().code,
        ErrorCode::Forbidden
    );
    for text in [
        r#"{"frames":{}}"#,
        r#"{"frames":[{"type":"heartbeat"},{"type":"nope"}]}"#,
        r#"{"frames":[7]}"#,
        r#"{}"#,
        r#"[]"#,
    ] {
        assert_eq!(
            Decoder.server_batch(text),
            OwnJson.server_batch(text),
            "{text}"
        );
    }
    for text in [
        r#"{"messages":[],"next_before":"1"}"#,
        r#"{"messages":[{}]}"#,
    ] {
        assert_eq!(Decoder.history(text), OwnJson.history(text), "{text}");
    }
    for text in [
        "<html>502</html>",
        r#"{"error":{}}"#,
        r#"{"error":[]}"#,
        "{}",
    ] {
        assert_eq!(Decoder.http_error(text), None, "{text}");
        assert_eq!(OwnJson.http_error(text), None, "{text}");
    }
}

/// The differences docs/PROTOCOL.md lists: numbers are doubles, and a repeated member keeps its
/// last value. No server writes either.
#[test]
fn the_documented_differences_are_what_they_say() {
    let past_2_53 = r#"{"type":"pong","t":9007199254740993}"#;
    assert_eq!(
        OwnJson.server_frame(past_2_53),
        Ok(ServerFrame::Pong {
            t: 9_007_199_254_740_993
        })
    );
    assert_eq!(
        Decoder.server_frame(past_2_53),
        Err(FrameError::Malformed {
            detail: "expected an unsigned integer for `t`".into()
        })
    );
    let fraction_zero = r#"{"type":"pong","t":1.0}"#;
    assert!(OwnJson.server_frame(fraction_zero).is_err());
    assert_eq!(
        Decoder.server_frame(fraction_zero),
        Ok(ServerFrame::Pong { t: 1 })
    );
    let repeated = r#"{"type":"pong","t":1,"t":2}"#;
    assert!(OwnJson.server_frame(repeated).is_err());
    assert_eq!(
        Decoder.server_frame(repeated),
        Ok(ServerFrame::Pong { t: 2 })
    );
}
