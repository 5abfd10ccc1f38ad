//! docs/PROTOCOL.md held to the server: behaviour a client written from the document alone relies
//! on, where the server once differed from it (issue 11's list of gaps) or where the document now
//! states what the server does. Plain wire clients, no SDK.

mod common;

use common::*;
use futures_util::SinkExt;
use lifeline_core::protocol::{decode_http_error, ErrorCode, ServerFrame, MAX_BODY_BYTES};
use tokio_tungstenite::tungstenite::Message;

fn error(frame: &ServerFrame) -> &lifeline_core::protocol::ErrorFrame {
    match frame {
        ServerFrame::Error(e) => e,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

/// Section 7: an error about one `send` names its `id` (and `conv`) on WebSocket as over HTTP, so
/// that a client with several frames in flight can tell which one failed. (The WebSocket answer
/// carried no `id` before.)
#[tokio::test]
async fn websocket_error_for_a_bad_send_names_its_id_and_conv() {
    let s = server().await;
    let t = token(&s, "alice");
    let mut ws = ws_connect(&s, &format!("token={t}")).await;
    ws_next(&mut ws).await;
    // Valid id and conv, body over its limit: too_large, naming both.
    ws_send(
        &mut ws,
        &send("k-1", "room", &"x".repeat(MAX_BODY_BYTES + 1)),
    )
    .await;
    let frame = ws_next(&mut ws).await;
    let e = error(&frame);
    assert_eq!(e.code, ErrorCode::TooLarge);
    assert_eq!(e.id.as_deref(), Some("k-1"), "{e:?}");
    assert_eq!(e.conv.as_deref(), Some("room"), "{e:?}");
    // A body of the wrong type: bad_frame, naming the id.
    ws.send(Message::text(
        r#"{"type":"send","id":"k-2","conv":"room","body":7}"#,
    ))
    .await
    .unwrap();
    let frame = ws_next(&mut ws).await;
    let e = error(&frame);
    assert_eq!(e.code, ErrorCode::BadFrame);
    assert_eq!(e.id.as_deref(), Some("k-2"), "{e:?}");
    // An invalid id is not echoed (it is not an identifier); the frame is still answered.
    ws.send(Message::text(
        r#"{"type":"send","id":"has space","conv":"room","body":"x"}"#,
    ))
    .await
    .unwrap();
    let frame = ws_next(&mut ws).await;
    let e = error(&frame);
    assert_eq!(e.code, ErrorCode::BadFrame);
    assert_eq!(e.id, None);
    assert_eq!(e.conv.as_deref(), Some("room"));
}

/// Section 3 (HTTP send): the same for a bad frame inside a batch: its `id` and `conv`.
#[tokio::test]
async fn http_error_for_a_bad_send_names_its_id_and_conv() {
    let s = server().await;
    let t = token(&s, "alice");
    join(&s, &t, "room").await;
    let body = format!(
        r#"{{"frames":[{{"type":"send","id":"h-1","conv":"room","body":"{}"}},{{"type":"send","id":"h-2","conv":"room","body":"ok"}}]}}"#,
        "x".repeat(MAX_BODY_BYTES + 1)
    );
    let (status, text) = post_raw(&s, &t, body.into_bytes()).await;
    assert_eq!(status, 200, "{text}");
    let frames = lifeline_core::protocol::decode_server_batch(&text)
        .unwrap()
        .frames;
    let e = error(&frames[0]);
    assert_eq!(e.code, ErrorCode::TooLarge);
    assert_eq!(e.id.as_deref(), Some("h-1"));
    assert_eq!(e.conv.as_deref(), Some("room"));
    assert!(matches!(&frames[1], ServerFrame::Ack { id, .. } if id == "h-2"));
}

/// Section 3 (history): `limit=0` is refused with 400 `bad_frame`, a limit above 100 is served
/// as 100, and `next_before` is absent on the last page.
#[tokio::test]
async fn history_limit_out_of_range_and_next_before() {
    let s = server().await;
    let t = token(&s, "alice");
    join(&s, &t, "room").await;
    for i in 0..3 {
        send_one(&s, &t, &format!("m{i}"), "room", "x").await;
    }
    let get = |query: String| {
        let (s, t) = (&s, &t);
        async move {
            let resp = http()
                .get(format!("{}/v1/history?v=1&conv=room&{query}", s.base_url()))
                .bearer_auth(t)
                .send()
                .await
                .expect("history request");
            (resp.status(), resp.text().await.expect("history body"))
        }
    };
    let (status, text) = get("limit=0".into()).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(decode_http_error(&text).unwrap().code, ErrorCode::BadFrame);
    let (status, text) = get("limit=101".into()).await;
    assert_eq!(status, 200, "{text}");
    let page: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(page["messages"].as_array().unwrap().len(), 3);
    assert!(page.get("next_before").is_none(), "{text}");
    let (_, text) = get("limit=2".into()).await;
    let page: serde_json::Value = serde_json::from_str(&text).unwrap();
    let oldest = page["messages"][0]["seq"].as_u64().unwrap();
    assert_eq!(page["next_before"].as_u64(), Some(oldest), "{text}");
}

/// Section 7: an HTTP error body carries `retry_after_ms` only for `rate_limited` and
/// `going_away`; a 401 has none.
#[tokio::test]
async fn error_bodies_carry_retry_after_ms_only_when_there_is_a_wait() {
    let s = server().await;
    let (status, text) = post_raw(&s, "not-a-token", br#"{"frames":[]}"#.to_vec()).await;
    assert_eq!(status, 401, "{text}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(body["error"].get("retry_after_ms").is_none(), "{text}");
}

/// Section 3: over HTTP the token is taken from `Authorization: Bearer` only; another scheme or a
/// bare token in the header does not count.
#[tokio::test]
async fn authorization_header_must_be_bearer() {
    let s = server().await;
    let t = token(&s, "alice");
    join(&s, &t, "room").await;
    let url = format!("{}/v1/history?v=1&conv=room", s.base_url());
    for (header, expected) in [
        (format!("Bearer {t}"), 200),
        (format!("bearer {t}"), 200),
        (format!("Basic {t}"), 401),
        (t.clone(), 401),
    ] {
        let resp = within(
            "history",
            http().get(&url).header("authorization", &header).send(),
        )
        .await
        .unwrap();
        let scheme = header.split_whitespace().next().unwrap_or_default().len();
        assert_eq!(resp.status(), expected, "scheme of {scheme} chars");
    }
}

/// Section 3 (long polling): a `hello=1` answer holds at most 64 frames counting the `hello`;
/// the rest of the replay comes with the next poll.
#[tokio::test]
async fn hello_poll_answers_64_frames_counting_the_hello() {
    let s = server().await;
    let t = token(&s, "alice");
    join(&s, &t, "room").await;
    for i in 0..70 {
        send_one(&s, &t, &format!("m{i}"), "room", "x").await;
    }
    let first = poll_ok(&s, &format!("token={t}&cursor=0&hello=1")).await;
    assert_eq!(first.len(), 64);
    assert!(matches!(first[0], ServerFrame::Hello(_)));
    let last = match &first[63] {
        ServerFrame::Msg(m) => m.seq,
        other => panic!("{other:?}"),
    };
    let rest = poll_ok(&s, &format!("token={t}&cursor={last}&wait_ms=0")).await;
    assert_eq!(rest.len(), 70 - 63, "{rest:?}");
    assert!(rest.iter().all(|f| matches!(f, ServerFrame::Msg(_))));
}

/// Section 7: after a refusal, a send with another `id` stays refused past the refused send's
/// `retry_after_ms` (the block ends only when the refused send comes back), and the refused one
/// passes once its time has come.
#[tokio::test]
async fn rate_limit_block_lasts_until_the_refused_send_comes_back() {
    let s = server_with(lifeline_server::ServerConfig {
        // One send per second: slow enough that a loaded machine cannot refill the bucket
        // between two requests.
        rate_per_sec: 1,
        rate_burst: 1,
        ..lifeline_server::ServerConfig::for_tests()
    })
    .await;
    let t = token(&s, "alice");
    join(&s, &t, "room").await;
    send_one(&s, &t, "a", "room", "x").await;
    let (status, text) = post_frames(&s, &t, &[send("b", "room", "x")]).await;
    assert_eq!(status, 429, "{text}");
    let wait = decode_http_error(&text).unwrap().retry_after_ms.unwrap();
    assert!(wait <= 1_000, "{wait}");
    // Past the refused send's time, another id is still refused...
    tokio::time::sleep(std::time::Duration::from_millis(wait + 300)).await;
    let (status, text) = post_frames(&s, &t, &[send("c", "room", "x")]).await;
    assert_eq!(status, 429, "{text}");
    // ...and the refused one passes, which ends the block.
    send_one(&s, &t, "b", "room", "x").await;
    // The bucket refills (one send per second), then the other id passes too.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    send_one(&s, &t, "c", "room", "x").await;
}
