//! Every endpoint on every transport against a real server on loopback: WebSocket, SSE, long
//! polling, HTTP send, history, health, dev tokens, resume from a cursor, presence, typing,
//! heartbeats.

mod common;

use common::*;
use lifeline_core::protocol::{ClientFrame, Hello, ServerFrame};
use lifeline_server::ServerConfig;

fn hello(f: &ServerFrame) -> &Hello {
    match f {
        ServerFrame::Hello(h) => h,
        other => panic!("expected hello, got {other:?}"),
    }
}

fn msg_seq(f: &ServerFrame) -> u64 {
    match f {
        ServerFrame::Msg(m) => m.seq,
        other => panic!("expected msg, got {other:?}"),
    }
}

#[tokio::test]
async fn healthz_and_cors() {
    let s = server().await;
    let resp = http()
        .get(format!("{}/healthz", s.base_url()))
        .header("Origin", "http://example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("access-control-allow-origin"));
    assert_eq!(resp.text().await.unwrap(), "ok");
    s.shutdown().await;
}

#[tokio::test]
async fn websocket_subscribe_send_ack_and_own_message() {
    let s = server().await;
    let t = token(&s, "alice");
    let mut ws = ws_connect(&s, &format!("token={t}")).await;
    let h = ws_next(&mut ws).await;
    assert_eq!(hello(&h).user, "alice");
    assert!(hello(&h).resumed);
    assert_eq!(hello(&h).v, 1);
    // The send limits, so that a client's HTTP batches never exceed them.
    assert_eq!(
        hello(&h).max_body_bytes,
        Some(s.config().max_body_bytes as u64)
    );
    assert_eq!(hello(&h).max_frames, Some(64));
    ws_send(&mut ws, &subscribe("general")).await;
    assert_eq!(
        ws_next_durable(&mut ws).await,
        ServerFrame::Subscribed {
            conv: "general".into()
        }
    );
    ws_send(&mut ws, &send("c1", "general", "hello")).await;
    // The ack and our own message both arrive, in either order.
    let mut ack = None;
    let mut msg = None;
    for _ in 0..2 {
        match ws_next_durable(&mut ws).await {
            ServerFrame::Ack { id, seq } => ack = Some((id, seq)),
            ServerFrame::Msg(m) => msg = Some(m),
            other => panic!("unexpected {other:?}"),
        }
    }
    let (id, seq) = ack.unwrap();
    let m = msg.unwrap();
    assert_eq!(id, "c1");
    assert_eq!(m.seq, seq);
    assert_eq!((m.from.as_str(), m.body.as_str()), ("alice", "hello"));
    // ping → pong
    ws_send(&mut ws, &ClientFrame::Ping { t: 77 }).await;
    assert_eq!(ws_next_durable(&mut ws).await, ServerFrame::Pong { t: 77 });
    // unsubscribe
    ws_send(
        &mut ws,
        &ClientFrame::Unsubscribe {
            conv: "general".into(),
        },
    )
    .await;
    assert_eq!(
        ws_next_durable(&mut ws).await,
        ServerFrame::Unsubscribed {
            conv: "general".into()
        }
    );
    s.shutdown().await;
}

#[tokio::test]
async fn sse_headers_hello_and_live_messages_with_ids() {
    let s = server().await;
    let t = token(&s, "bob");
    join(&s, &t, "general").await;
    let mut sse = sse_connect(&s, &format!("token={t}"), None).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    assert_eq!(sse.headers["cache-control"], "no-cache");
    assert_eq!(sse.headers["x-accel-buffering"], "no");
    let first = sse.next_event().await.unwrap();
    assert_eq!(first.retry, Some(s.config().sse_retry_ms));
    assert_eq!(hello(&first.frame()).user, "bob");
    let seq = send_one(&s, &t, "b1", "general", "over sse").await;
    let ev = 'msg: {
        for _ in 0..MAX_SKIP {
            let ev = sse.next_event().await.unwrap();
            if matches!(ev.frame(), ServerFrame::Msg(_)) {
                break 'msg ev;
            }
        }
        panic!("no msg event within {MAX_SKIP} events");
    };
    assert_eq!(ev.id.as_deref(), Some(seq.to_string().as_str()));
    assert_eq!(msg_seq(&ev.frame()), seq);
    s.shutdown().await;
}

#[tokio::test]
async fn long_poll_hello_wakes_on_send_and_times_out_empty() {
    let s = server().await;
    let t = token(&s, "carol");
    join(&s, &t, "general").await;
    let frames = poll_ok(&s, &format!("token={t}&hello=1&wait_ms=5000")).await;
    let h = hello(&frames[0]).clone();
    assert!(h.resumed);
    assert_eq!(h.max_body_bytes, Some(s.config().max_body_bytes as u64));
    assert_eq!(frames.len(), 1);
    // Empty answer after wait_ms.
    let frames = poll_ok(&s, &format!("token={t}&cursor={}&wait_ms=100", h.cursor)).await;
    assert!(frames.is_empty(), "{frames:?}");
    // A pending poll is woken by a send.
    let q = format!("token={t}&cursor={}&wait_ms=5000", h.cursor);
    let pending = poll_ok(&s, &q);
    let sender = async {
        wait_until("the poll to be pending", || s.open_streams() >= 1).await;
        send_one(&s, &t, "p1", "general", "wake up").await
    };
    let (frames, seq) = tokio::join!(pending, sender);
    let msgs: Vec<u64> = frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::Msg(_)))
        .map(msg_seq)
        .collect();
    assert_eq!(msgs, vec![seq]);
    // Token in Authorization works too.
    let resp = http()
        .get(format!(
            "{}/v1/poll?v=1&cursor=0&hello=1&wait_ms=0",
            s.base_url()
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    s.shutdown().await;
}

#[tokio::test]
async fn http_send_answers_each_frame_and_is_idempotent() {
    let s = server().await;
    let t = token(&s, "dave");
    let answers = send_ok(
        &s,
        &t,
        &[
            subscribe("room"),
            send("d1", "room", "one"),
            send("d2", "room", "two"),
            send("d1", "room", "one"),
            ClientFrame::Typing {
                conv: "room".into(),
            },
            ClientFrame::Ping { t: 1 },
        ],
    )
    .await;
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert_eq!(
        answers[0],
        ServerFrame::Subscribed {
            conv: "room".into()
        }
    );
    let (s1, s2, s3) = match (&answers[1], &answers[2], &answers[3]) {
        (
            ServerFrame::Ack { seq: a, .. },
            ServerFrame::Ack { seq: b, .. },
            ServerFrame::Ack { id, seq: c },
        ) => {
            assert_eq!(id, "d1");
            (*a, *b, *c)
        }
        other => panic!("{other:?}"),
    };
    assert!(s2 > s1);
    assert_eq!(s3, s1, "a retransmit gets the original seq");
    // Stored once: history shows two messages.
    let page = lifeline_core::protocol::decode_history(
        &http()
            .get(format!("{}/v1/history?v=1&conv=room", s.base_url()))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(page.messages.len(), 2);
    assert_eq!(page.messages[0].body, "one");
    s.shutdown().await;
}

/// GET /v1/history with `before_ts` and the answer as (status, body).
async fn history_at(s: &lifeline_server::RunningServer, t: &str, query: &str) -> (u16, String) {
    let resp = within(
        "GET /v1/history",
        http()
            .get(format!("{}/v1/history?v=1&conv=ht&{query}", s.base_url()))
            .bearer_auth(t)
            .send(),
    )
    .await
    .expect("history request");
    (
        resp.status().as_u16(),
        resp.text().await.expect("history body"),
    )
}

#[tokio::test]
async fn history_pages_by_time() {
    let s = server().await;
    let t = token(&s, "tess");
    join(&s, &t, "ht").await;
    let first = send_one(&s, &t, "t1", "ht", "first").await;
    let (_, body) = history_at(&s, &t, "limit=1").await;
    let ts1 = lifeline_core::protocol::decode_history(&body)
        .unwrap()
        .messages[0]
        .ts;
    // The next message gets a later timestamp: wait (bounded) for the clock to pass ts1.
    let deadline = std::time::Instant::now() + WAIT;
    while lifeline_server::token::unix_now_ms() <= ts1 + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "clock did not advance"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let second = send_one(&s, &t, "t2", "ht", "second").await;
    let (_, body) = history_at(&s, &t, "limit=5").await;
    let page = lifeline_core::protocol::decode_history(&body).unwrap();
    let seqs: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![first, second]);
    let ts2 = page.messages[1].ts;
    assert!(ts2 > ts1, "{ts2} > {ts1}");

    // Before the second message's moment: only the first; just after it: both.
    for (before_ts, want) in [
        (ts2, vec![first]),
        (ts2 + 1, vec![first, second]),
        (ts1, vec![]),
    ] {
        let (status, body) = history_at(&s, &t, &format!("before_ts={before_ts}")).await;
        assert_eq!(status, 200, "{body}");
        let page = lifeline_core::protocol::decode_history(&body).unwrap();
        let got: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
        assert_eq!(got, want, "before_ts={before_ts}");
    }
    // A page that is full says where the older ones continue (by seq).
    let (_, body) = history_at(&s, &t, &format!("before_ts={}&limit=1", ts2 + 1)).await;
    let page = lifeline_core::protocol::decode_history(&body).unwrap();
    assert_eq!(page.messages[0].seq, second);
    assert_eq!(page.next_before, Some(second));
    // Both bounds at once, or a bound that is not a number: a typed 400.
    let (status, body) = history_at(&s, &t, "before=5&before_ts=5").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad_frame"), "{body}");
    let (status, _) = history_at(&s, &t, "before_ts=yesterday").await;
    assert_eq!(status, 400);
    s.shutdown().await;
}

#[tokio::test]
async fn history_paginates_by_cursor() {
    let s = server().await;
    let t = token(&s, "erin");
    join(&s, &t, "h").await;
    let mut seqs = Vec::new();
    for i in 0..7 {
        seqs.push(send_one(&s, &t, &format!("e{i}"), "h", &format!("m{i}")).await);
    }
    let mut before: Option<u64> = None;
    let mut got = Vec::new();
    for _ in 0..10 {
        let mut url = format!("{}/v1/history?v=1&conv=h&limit=3", s.base_url());
        if let Some(b) = before {
            url.push_str(&format!("&before={b}"));
        }
        let page = lifeline_core::protocol::decode_history(
            &http()
                .get(url)
                .bearer_auth(&t)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        assert!(page.messages.len() <= 3);
        assert!(page.messages.windows(2).all(|w| w[0].seq < w[1].seq));
        let mut page_seqs: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
        page_seqs.extend(got);
        got = page_seqs;
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(got, seqs);
    // Query token works as well; limit 0 is a bad request.
    let resp = http()
        .get(format!(
            "{}/v1/history?v=1&conv=h&limit=0&token={t}",
            s.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    s.shutdown().await;
}

#[tokio::test]
async fn dev_token_issuer_only_when_enabled() {
    let s = server().await;
    let body: serde_json::Value = http()
        .get(format!(
            "{}/v1/dev/token?user=alice&ttl_secs=60",
            s.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t = body["token"].as_str().unwrap().to_string();
    join(&s, &t, "general").await;
    s.shutdown().await;

    let mut config = ServerConfig::for_tests();
    config.dev_tokens = false;
    config.faults = false;
    let s = server_with(config).await;
    for path in ["/v1/dev/token?user=alice", "/v1/faults"] {
        let resp = http()
            .get(format!("{}{path}", s.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn unsupported_version_everywhere() {
    let s = server().await;
    let t = token(&s, "alice");
    for path in ["/v1/poll?v=2", "/v1/sse?v=2", "/v1/history?conv=a"] {
        let resp = http()
            .get(format!("{}{path}&token={t}", s.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        assert!(resp.text().await.unwrap().contains("unsupported_version"));
    }
    let url = format!("{}/v1/ws?v=9&token={t}", s.ws_base_url());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    match ws_next(&mut ws).await {
        ServerFrame::Error(e) => assert_eq!(e.code.as_str(), "unsupported_version"),
        other => panic!("{other:?}"),
    }
    s.shutdown().await;
}

#[tokio::test]
async fn resume_from_cursor_on_every_transport() {
    let s = server().await;
    let t = token(&s, "frank");
    join(&s, &t, "r").await;
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(send_one(&s, &t, &format!("f{i}"), "r", "x").await);
    }
    let cursor = seqs[1];
    let expect = seqs[2..].to_vec();

    // WebSocket
    let mut ws = ws_connect(&s, &format!("token={t}&cursor={cursor}")).await;
    let h = ws_next(&mut ws).await;
    assert_eq!((hello(&h).cursor, hello(&h).resumed), (cursor, true));
    let mut got = Vec::new();
    for _ in 0..expect.len() {
        got.push(msg_seq(&ws_next_durable(&mut ws).await));
    }
    assert_eq!(got, expect);

    // SSE, with the cursor parameter, then with Last-Event-ID winning over it.
    let mut sse = sse_connect(&s, &format!("token={t}&cursor={cursor}"), None).await;
    assert_eq!(hello(&sse.next_durable().await).cursor, cursor);
    let mut got = Vec::new();
    for _ in 0..expect.len() {
        got.push(msg_seq(&sse.next_durable().await));
    }
    assert_eq!(got, expect);
    let lei = seqs[3].to_string();
    let mut sse = sse_connect(&s, &format!("token={t}&cursor=0"), Some(&lei)).await;
    assert_eq!(hello(&sse.next_durable().await).cursor, seqs[3]);
    assert_eq!(msg_seq(&sse.next_durable().await), seqs[4]);

    // Long poll, hello=1 then a plain poll from the cursor.
    let frames = poll_ok(&s, &format!("token={t}&cursor={cursor}&hello=1")).await;
    assert_eq!(hello(&frames[0]).cursor, cursor);
    let got: Vec<u64> = frames[1..].iter().map(msg_seq).collect();
    assert_eq!(got, expect);
    let frames = poll_ok(&s, &format!("token={t}&cursor={}&wait_ms=0", seqs[3])).await;
    assert_eq!(
        frames.iter().map(msg_seq).collect::<Vec<_>>(),
        vec![seqs[4]]
    );
    s.shutdown().await;
}

#[tokio::test]
async fn too_old_or_too_new_cursor_is_not_resumed() {
    let mut config = ServerConfig::for_tests();
    config.resume_window = 3;
    let s = server_with(config).await;
    let t = token(&s, "gina");
    join(&s, &t, "w").await;
    let mut seqs = Vec::new();
    for i in 0..8 {
        seqs.push(send_one(&s, &t, &format!("g{i}"), "w", "x").await);
    }
    let head = *seqs.last().unwrap();
    // Too old: resumed:false, cursor = head - window, replay after it.
    let mut ws = ws_connect(&s, &format!("token={t}&cursor=1")).await;
    let h = ws_next(&mut ws).await;
    assert_eq!((hello(&h).cursor, hello(&h).resumed), (head - 3, false));
    for expected in head - 2..=head {
        assert_eq!(msg_seq(&ws_next_durable(&mut ws).await), expected);
    }
    let mut sse = sse_connect(&s, &format!("token={t}&cursor=1"), None).await;
    let h = sse.next_durable().await;
    assert_eq!((hello(&h).cursor, hello(&h).resumed), (head - 3, false));
    let frames = poll_ok(&s, &format!("token={t}&cursor=1&hello=1")).await;
    assert_eq!(
        (hello(&frames[0]).cursor, hello(&frames[0]).resumed),
        (head - 3, false)
    );
    // A follow-up poll (no hello) is served from its cursor, however old: no silent gap.
    let frames = poll_ok(&s, &format!("token={t}&cursor=1&wait_ms=0")).await;
    assert_eq!(
        frames.iter().map(msg_seq).collect::<Vec<_>>(),
        seqs[1..].to_vec()
    );
    // A follow-up poll above the head gets hello resumed:false at once.
    let frames = poll_ok(&s, &format!("token={t}&cursor={}&wait_ms=5000", head + 1)).await;
    assert_eq!(
        (hello(&frames[0]).cursor, hello(&frames[0]).resumed),
        (head, false)
    );
    // Newer than anything stored (after a data loss).
    let frames = poll_ok(&s, &format!("token={t}&cursor={}&hello=1", head + 100)).await;
    assert_eq!(
        (hello(&frames[0]).cursor, hello(&frames[0]).resumed),
        (head, false)
    );
    let mut ws = ws_connect(&s, &format!("token={t}&cursor={}", head + 100)).await;
    let h = ws_next(&mut ws).await;
    assert_eq!((hello(&h).cursor, hello(&h).resumed), (head, false));
    s.shutdown().await;
}

#[tokio::test]
async fn presence_and_typing_fan_out() {
    let s = server().await;
    let ta = token(&s, "alice");
    let tb = token(&s, "bob");
    join(&s, &ta, "p").await;
    join(&s, &tb, "p").await;
    let mut a = ws_connect(&s, &format!("token={ta}")).await;
    ws_next(&mut a).await; // hello
    let mut b = sse_connect(&s, &format!("token={tb}"), None).await;
    b.next_event().await.unwrap(); // hello
                                   // Alice learns that bob came online.
    assert_eq!(
        ws_next(&mut a).await,
        ServerFrame::Presence {
            conv: "p".into(),
            user: "bob".into(),
            online: true
        }
    );
    // Bob types (over HTTP): alice sees it; bob's own stream does not.
    assert!(
        send_ok(&s, &tb, &[ClientFrame::Typing { conv: "p".into() }])
            .await
            .is_empty()
    );
    assert_eq!(
        ws_next(&mut a).await,
        ServerFrame::Typing {
            conv: "p".into(),
            user: "bob".into()
        }
    );
    // Alice types: bob sees it.
    ws_send(&mut a, &ClientFrame::Typing { conv: "p".into() }).await;
    let f = 'typing: {
        for _ in 0..MAX_SKIP {
            let f = b.next_event().await.unwrap().frame();
            if f != ServerFrame::Heartbeat {
                break 'typing f;
            }
        }
        panic!("only heartbeats on bob's stream");
    };
    assert_eq!(
        f,
        ServerFrame::Typing {
            conv: "p".into(),
            user: "alice".into()
        }
    );
    // A new member subscribing is told who is online.
    let tc = token(&s, "carol");
    let mut c = ws_connect(&s, &format!("token={tc}")).await;
    ws_next(&mut c).await;
    ws_send(&mut c, &subscribe("p")).await;
    let mut online = Vec::new();
    for _ in 0..3 {
        match ws_next(&mut c).await {
            ServerFrame::Presence {
                user, online: true, ..
            } => online.push(user),
            ServerFrame::Subscribed { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    online.sort();
    assert_eq!(online, vec!["alice", "bob"]);
    // Bob goes offline when his only stream ends.
    drop(b);
    let f = 'presence: {
        for _ in 0..MAX_SKIP {
            if let ServerFrame::Presence { user, online, .. } = ws_next(&mut a).await {
                if user == "bob" {
                    break 'presence online;
                }
            }
        }
        panic!("no presence for bob within {MAX_SKIP} frames");
    };
    assert!(!f);
    s.shutdown().await;
}

#[tokio::test]
async fn heartbeats_on_every_transport_and_dead_websocket_dropped() {
    let mut config = ServerConfig::for_tests();
    config.heartbeat_ms = 150;
    let s = server_with(config).await;
    let t = token(&s, "hank");
    let mut ws = ws_connect(&s, &format!("token={t}")).await;
    ws_next(&mut ws).await;
    // Heartbeats keep arriving while the client sends no frame of its own: the client library
    // answers the server's WebSocket pings, so the socket is not considered dead (ten
    // heartbeats span more than three heartbeat intervals).
    for _ in 0..10 {
        match ws_next_any(&mut ws, false).await {
            WsEvent::Frame(ServerFrame::Heartbeat) => {}
            other => panic!("{other:?}"),
        }
    }
    drop(ws);

    // A peer that never reads (so never answers pings) is dropped after three heartbeats.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let req = format!(
        "GET /v1/ws?v=1&token={t} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        s.addr()
    );
    raw.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut received = Vec::new();
    within("the server to close a dead socket", async {
        for i in 0..=MAX_SKIP {
            assert!(i < MAX_SKIP, "the socket was not closed");
            let n = raw.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(received.starts_with(b"HTTP/1.1 101"));
    // The close frame (opcode 0x8) with code 1001 was sent before the connection ended.
    let close = [0x88u8, 0x0c, 0x03, 0xe9];
    assert!(
        received.windows(close.len()).any(|w| w == close),
        "close 1001 in the stream"
    );

    let mut sse = sse_connect(&s, &format!("token={t}"), None).await;
    sse.next_event().await.unwrap();
    assert_eq!(
        sse.next_event().await.unwrap().frame(),
        ServerFrame::Heartbeat
    );

    let frames = poll_ok(&s, &format!("token={t}&wait_ms=100")).await;
    assert!(frames.is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn serves_the_demo_directory_and_answers_cors_preflight() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>lifeline demo</h1>").unwrap();
    std::fs::create_dir(dir.path().join("pkg")).unwrap();
    std::fs::write(dir.path().join("pkg").join("lifeline.js"), "export {};").unwrap();
    let mut config = ServerConfig::for_tests();
    config.demo_dir = Some(dir.path().to_path_buf());
    let s = server_with(config).await;
    let index = http()
        .get(format!("{}/", s.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(index.status(), 200);
    assert!(index.text().await.unwrap().contains("lifeline demo"));
    let js = http()
        .get(format!("{}/pkg/lifeline.js", s.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    let missing = http()
        .get(format!("{}/nope.html", s.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // The API still wins over the static files.
    let health = http()
        .get(format!("{}/healthz", s.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    // CORS preflight for an authenticated POST.
    let pre = http()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/send?v=1", s.base_url()),
        )
        .header("Origin", "http://elsewhere.test")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success());
    assert!(pre.headers().contains_key("access-control-allow-origin"));
    assert!(pre.headers().contains_key("access-control-allow-headers"));
    s.shutdown().await;
}

#[tokio::test]
async fn after_shutdown_nothing_is_accepted() {
    let s = server().await;
    let addr = s.addr();
    s.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_pending_long_poll_counts_as_online() {
    let s = server().await;
    let ta = token(&s, "alice");
    let tp = token(&s, "paul");
    join(&s, &ta, "lp").await;
    join(&s, &tp, "lp").await;
    let mut a = ws_connect(&s, &format!("token={ta}")).await;
    ws_next(&mut a).await;
    assert!(!s.is_online("paul"));
    let q = format!("token={tp}&wait_ms=300");
    let polling = poll_ok(&s, &q);
    let watcher = async {
        assert_eq!(
            ws_next(&mut a).await,
            ServerFrame::Presence {
                conv: "lp".into(),
                user: "paul".into(),
                online: true
            }
        );
    };
    tokio::join!(polling, watcher);
    assert!(s.is_online("paul"), "still online right after the answer");
    s.shutdown().await;
}
