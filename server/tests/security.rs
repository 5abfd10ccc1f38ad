//! Credentials, membership, rate limits and bad input, against a real server on loopback.

mod common;

use common::*;
use futures_util::SinkExt;
use lifeline_core::protocol::{
    decode_http_error, ClientFrame, ErrorCode, ServerFrame, MAX_BODY_BYTES, MAX_FRAME_BYTES,
};
use lifeline_server::{make_token, ServerConfig, CLOSE_UNAUTHORIZED};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

fn error_code(f: &ServerFrame) -> ErrorCode {
    match f {
        ServerFrame::Error(e) => e.code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

async fn expect_ws_auth_failure(s: &lifeline_server::RunningServer, query: &str, code: ErrorCode) {
    let mut ws = ws_connect(s, query).await;
    assert_eq!(error_code(&ws_next(&mut ws).await), code);
    match ws_next_any(&mut ws, true).await {
        WsEvent::Closed(c) => assert_eq!(c, Some(CLOSE_UNAUTHORIZED)),
        other => panic!("expected close, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_expired_and_forged_tokens_on_every_endpoint() {
    let s = server().await;
    let secret = lifeline_server::config::TEST_SECRET.to_string();
    let expired = make_token(&secret, "alice", 1);
    let forged = make_token("not-the-secret", "alice", u64::MAX / 2);
    let cases = [
        (String::new(), ErrorCode::Unauthorized),
        (expired, ErrorCode::TokenExpired),
        (forged, ErrorCode::Unauthorized),
        ("garbage.garbage".to_string(), ErrorCode::Unauthorized),
    ];
    for (tok, code) in &cases {
        let q = if tok.is_empty() {
            String::new()
        } else {
            format!("token={tok}")
        };
        for path in ["/v1/sse", "/v1/poll", "/v1/history"] {
            let resp = http()
                .get(format!("{}{path}?v=1&conv=a&{q}", s.base_url()))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 401, "{path} {code}");
            let body = resp.text().await.unwrap();
            assert_eq!(decode_http_error(&body).unwrap().code, *code, "{path}");
        }
        let (status, body) = post_frames(&s, tok, &[subscribe("a")]).await;
        assert_eq!(status, 401);
        assert_eq!(decode_http_error(&body).unwrap().code, *code);
        expect_ws_auth_failure(&s, &q, *code).await;
    }
    s.shutdown().await;
}

#[tokio::test]
async fn membership_is_checked_on_every_read_and_write() {
    let s = server().await;
    let ta = token(&s, "alice");
    let tm = token(&s, "mallory");
    join(&s, &ta, "secret").await;
    // History of a conversation mallory is not in: 403.
    let resp = http()
        .get(format!("{}/v1/history?v=1&conv=secret", s.base_url()))
        .bearer_auth(&tm)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        decode_http_error(&resp.text().await.unwrap()).unwrap().code,
        ErrorCode::Forbidden
    );
    // Sending into it: forbidden frame with the id, over HTTP and over WebSocket.
    let answers = send_ok(&s, &tm, &[send("m1", "secret", "hi")]).await;
    match &answers[..] {
        [ServerFrame::Error(e)] => {
            assert_eq!(e.code, ErrorCode::Forbidden);
            assert_eq!(e.id.as_deref(), Some("m1"));
        }
        other => panic!("{other:?}"),
    }
    let mut ws = ws_connect(&s, &format!("token={tm}")).await;
    ws_next(&mut ws).await;
    ws_send(&mut ws, &send("m2", "secret", "hi")).await;
    ws_send(
        &mut ws,
        &ClientFrame::Typing {
            conv: "secret".into(),
        },
    )
    .await;
    assert_eq!(error_code(&ws_next(&mut ws).await), ErrorCode::Forbidden);
    assert_eq!(error_code(&ws_next(&mut ws).await), ErrorCode::Forbidden);
    // Mallory's stream never sees alice's messages; after joining, she sees new ones.
    let first = send_one(&s, &ta, "a1", "secret", "private").await;
    ws_send(&mut ws, &subscribe("mine")).await;
    assert_eq!(
        ws_next_durable(&mut ws).await,
        ServerFrame::Subscribed {
            conv: "mine".into()
        }
    );
    ws_send(&mut ws, &subscribe("secret")).await;
    assert_eq!(
        ws_next_durable(&mut ws).await,
        ServerFrame::Subscribed {
            conv: "secret".into()
        }
    );
    let second = send_one(&s, &ta, "a2", "secret", "now visible").await;
    match ws_next_durable(&mut ws).await {
        ServerFrame::Msg(m) => {
            assert_eq!(m.seq, second);
            assert!(m.seq > first);
        }
        other => panic!("{other:?}"),
    }
    // A replay from 0 for a non-member shows nothing of "secret"... and after leaving, nothing.
    ws_send(
        &mut ws,
        &ClientFrame::Unsubscribe {
            conv: "secret".into(),
        },
    )
    .await;
    assert_eq!(
        ws_next_durable(&mut ws).await,
        ServerFrame::Unsubscribed {
            conv: "secret".into()
        }
    );
    let frames = poll_ok(&s, &format!("token={tm}&cursor=0&hello=1")).await;
    assert_eq!(frames.len(), 1, "only hello: {frames:?}");
    s.shutdown().await;
}

#[tokio::test]
async fn rate_limits_over_http_and_websocket() {
    let mut config = ServerConfig::for_tests();
    config.rate_per_sec = 1;
    config.rate_burst = 3;
    let s = server_with(config).await;
    let t = token(&s, "rita");
    join(&s, &t, "r").await;
    for i in 0..3 {
        send_one(&s, &t, &format!("r{i}"), "r", "x").await;
    }
    // Bucket empty: the request is refused with 429 and Retry-After.
    let resp = http()
        .post(format!("{}/v1/send?v=1", s.base_url()))
        .bearer_auth(&t)
        .body(r#"{"frames":[{"type":"send","id":"r3","conv":"r","body":"x"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let e = decode_http_error(&resp.text().await.unwrap()).unwrap();
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert!(e.retry_after_ms.unwrap() > 0);
    // Subscribe is not a send and still works.
    join(&s, &t, "other").await;

    // Over WebSocket: a rate_limited frame with the id and retry_after_ms, connection open.
    let tw = token(&s, "walt");
    let mut ws = ws_connect(&s, &format!("token={tw}")).await;
    ws_next(&mut ws).await;
    ws_send(&mut ws, &subscribe("r")).await;
    ws_next_durable(&mut ws).await;
    for i in 0..4 {
        ws_send(&mut ws, &send(&format!("w{i}"), "r", "x")).await;
    }
    let mut acks = 0;
    let mut limited = None;
    for _ in 0..20 {
        match ws_next_durable(&mut ws).await {
            ServerFrame::Ack { .. } => acks += 1,
            ServerFrame::Error(e) => {
                assert_eq!(e.code, ErrorCode::RateLimited);
                limited = Some(e);
            }
            ServerFrame::Msg(_) => {}
            other => panic!("{other:?}"),
        }
        if acks == 3 && limited.is_some() {
            break;
        }
    }
    let limited = limited.expect("a rate_limited frame");
    assert_eq!(limited.id.as_deref(), Some("w3"));
    let wait = limited.retry_after_ms.unwrap();
    assert!(wait > 0 && wait <= 1000, "{wait}");
    // Until retry_after has passed, every further send is refused too.
    ws_send(&mut ws, &send("w4", "r", "x")).await;
    for i in 0..=MAX_SKIP {
        assert!(i < MAX_SKIP, "no rate_limited frame for w4");
        match ws_next_durable(&mut ws).await {
            ServerFrame::Error(e) => {
                assert_eq!(e.code, ErrorCode::RateLimited);
                assert_eq!(e.id.as_deref(), Some("w4"));
                break;
            }
            ServerFrame::Msg(_) => continue,
            other => panic!("{other:?}"),
        }
    }
    // After it, the retransmission goes through.
    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    ws_send(&mut ws, &send("w3", "r", "x")).await;
    for i in 0..=MAX_SKIP {
        assert!(i < MAX_SKIP, "no ack for w3");
        match ws_next_durable(&mut ws).await {
            ServerFrame::Ack { id, .. } => {
                assert_eq!(id, "w3");
                break;
            }
            ServerFrame::Msg(_) => continue,
            other => panic!("{other:?}"),
        }
    }
    s.shutdown().await;
}

#[tokio::test]
async fn malformed_oversized_and_non_utf8_input() {
    let s = server().await;
    let t = token(&s, "ivan");
    join(&s, &t, "b").await;
    let mut ws = ws_connect(&s, &format!("token={t}")).await;
    ws_next(&mut ws).await;
    let bad_texts = [
        "not json".to_string(),
        "{}".to_string(),
        r#"{"type":"send","id":"has space","conv":"b","body":"x"}"#.to_string(),
        r#"{"type":"subscribe"}"#.to_string(),
    ];
    for text in &bad_texts {
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(
            error_code(&ws_next(&mut ws).await),
            ErrorCode::BadFrame,
            "{text}"
        );
    }
    ws.send(Message::binary(vec![0xff, 0xfe, 0x00]))
        .await
        .unwrap();
    assert_eq!(error_code(&ws_next(&mut ws).await), ErrorCode::BadFrame);
    // Body over 16 KiB, and a frame over 64 KiB: too_large.
    ws_send(&mut ws, &send("big", "b", &"x".repeat(MAX_BODY_BYTES + 1))).await;
    match ws_next(&mut ws).await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::TooLarge),
        other => panic!("{other:?}"),
    }
    ws.send(Message::text("y".repeat(MAX_FRAME_BYTES + 10)))
        .await
        .unwrap();
    assert_eq!(error_code(&ws_next(&mut ws).await), ErrorCode::TooLarge);
    // The connection survived all of it.
    ws_send(&mut ws, &ClientFrame::Ping { t: 5 }).await;
    assert_eq!(ws_next(&mut ws).await, ServerFrame::Pong { t: 5 });

    // HTTP send: non-UTF-8, not JSON, wrong shape, too many frames → 400 bad_frame.
    let many = format!(
        "{{\"frames\":[{}]}}",
        vec![r#"{"type":"typing","conv":"b"}"#; 65].join(",")
    );
    for body in [
        vec![0xff, 0xfe, b'{'],
        b"nope".to_vec(),
        br#"{"frame":[]}"#.to_vec(),
        many.into_bytes(),
    ] {
        let (status, text) = post_raw(&s, &t, body).await;
        assert_eq!(status, 400, "{text}");
        assert_eq!(decode_http_error(&text).unwrap().code, ErrorCode::BadFrame);
    }
    // Body over max_body_bytes → 413 too_large.
    let huge = vec![b' '; s.config().max_body_bytes + 1];
    let (status, text) = post_raw(&s, &t, huge).await;
    assert_eq!(status, 413);
    assert_eq!(decode_http_error(&text).unwrap().code, ErrorCode::TooLarge);
    // One bad frame among good ones: an error frame for it, the others are handled.
    let (status, text) = post_raw(
        &s,
        &t,
        format!(
            r#"{{"frames":[{{"type":"send","id":"ok1","conv":"b","body":"x"}},{{"type":"send","id":"bad id!","conv":"b","body":"x"}},{{"type":"send","id":"big2","conv":"b","body":"{}"}}]}}"#,
            "z".repeat(MAX_BODY_BYTES + 1)
        )
        .into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let frames = lifeline_core::protocol::decode_server_batch(&text)
        .unwrap()
        .frames;
    assert!(matches!(&frames[0], ServerFrame::Ack { id, .. } if id == "ok1"));
    assert_eq!(error_code(&frames[1]), ErrorCode::BadFrame);
    assert_eq!(error_code(&frames[2]), ErrorCode::TooLarge);
    // Bad query values.
    let resp = http()
        .get(format!("{}/v1/poll?v=1&token={t}&cursor=abc", s.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    s.shutdown().await;
}
