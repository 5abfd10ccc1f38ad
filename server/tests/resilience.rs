//! Durability across restarts, idempotent retransmits, fault switches, shutdown, and the
//! replay→live hand-over under concurrent sends, against a real server on loopback.

mod common;

use common::*;
use futures_util::StreamExt;
use lifeline_core::protocol::{ClientFrame, ErrorCode, HistoryPage, ServerFrame};
use lifeline_server::{FaultUpdate, RunningServer, ServerConfig, CLOSE_RESTART};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite;

/// How long a test watches a black-holed or silenced stream to see that nothing arrives.
const QUIET: Duration = Duration::from_millis(400);

fn on_disk(dir: &std::path::Path) -> ServerConfig {
    let mut c = ServerConfig::for_tests();
    c.data_dir = Some(dir.to_path_buf());
    c
}

async fn history(s: &RunningServer, token: &str, conv: &str) -> (u16, Option<HistoryPage>) {
    let resp = http()
        .get(format!(
            "{}/v1/history?v=1&conv={conv}&limit=100",
            s.base_url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    let page = (status == 200).then(|| lifeline_core::protocol::decode_history(&body).unwrap());
    (status, page)
}

#[tokio::test]
async fn acknowledged_messages_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with(on_disk(dir.path())).await;
    let t = token(&s, "alice");
    join(&s, &t, "d").await;
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(send_one(&s, &t, &format!("a{i}"), "d", &format!("body {i}")).await);
    }
    // And some over WebSocket: acked means durable.
    let mut ws = ws_connect(&s, &format!("token={t}")).await;
    ws_next(&mut ws).await;
    ws_send(&mut ws, &send("w1", "d", "via ws")).await;
    let ws_seq = 'ack: {
        for _ in 0..MAX_SKIP {
            if let ServerFrame::Ack { seq, .. } = ws_next_durable(&mut ws).await {
                break 'ack seq;
            }
        }
        panic!("no ack within {MAX_SKIP} frames");
    };
    seqs.push(ws_seq);
    drop(ws);
    s.shutdown().await;

    let s = server_with(on_disk(dir.path())).await;
    let t = token(&s, "alice");
    assert_eq!(s.head_seq(), ws_seq);
    let (status, page) = history(&s, &t, "d").await;
    assert_eq!(status, 200, "membership survived the restart");
    let page = page.unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        seqs
    );
    assert_eq!(page.messages[0].body, "body 0");
    // A retransmit after the restart gets the original seq; new messages continue the sequence.
    assert_eq!(send_one(&s, &t, "a2", "d", "body 2").await, seqs[2]);
    assert_eq!(send_one(&s, &t, "w1", "d", "via ws").await, ws_seq);
    let next = send_one(&s, &t, "a-new", "d", "after restart").await;
    assert!(next > ws_seq);
    // Resume across the restart from a cursor.
    let frames = poll_ok(&s, &format!("token={t}&cursor={}&hello=1", seqs[3])).await;
    let got: Vec<u64> = frames[1..]
        .iter()
        .map(|f| match f {
            ServerFrame::Msg(m) => m.seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, vec![seqs[4], ws_seq, next]);
    s.shutdown().await;
}

#[tokio::test]
async fn concurrent_retransmits_are_stored_once() {
    let s = Arc::new(server().await);
    let t = token(&s, "bob");
    join(&s, &t, "i").await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (s, t) = (Arc::clone(&s), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..10 {
                seqs.push(send_one(&s, &t, &format!("same-{i}"), "i", "x").await);
            }
            seqs
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
    let (_, page) = history(&s, &t, "i").await;
    assert_eq!(page.unwrap().messages.len(), 10);
    Arc::try_unwrap(s).ok().unwrap().shutdown().await;
}

async fn set_faults_http(s: &RunningServer, json: &str) -> serde_json::Value {
    let resp = http()
        .post(format!("{}/v1/faults", s.base_url()))
        .header("content-type", "application/json")
        .body(json.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn refuse_switches_answer_403_and_can_be_cleared() {
    let s = server().await;
    let t = token(&s, "alice");
    let state: serde_json::Value = http()
        .get(format!("{}/v1/faults", s.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["refuse_ws"], false);
    let state = set_faults_http(&s, r#"{"refuse_ws":true,"refuse_sse":true}"#).await;
    assert_eq!(
        (state["refuse_ws"].clone(), state["refuse_poll"].clone()),
        (true.into(), false.into())
    );
    let state = set_faults_http(&s, r#"{"refuse_poll":true}"#).await;
    assert_eq!(
        state["refuse_ws"], true,
        "partial updates keep other switches"
    );

    let url = format!("{}/v1/ws?v=1&token={t}", s.ws_base_url());
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("the upgrade should have been refused"),
    }
    let sse = sse_connect(&s, &format!("token={t}"), None).await;
    assert_eq!(sse.status, 403);
    let (status, _) = poll(&s, &format!("token={t}&hello=1")).await;
    assert_eq!(status, 403);

    // Unknown switches are refused.
    let resp = http()
        .post(format!("{}/v1/faults", s.base_url()))
        .body(r#"{"refuse_everything":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    set_faults_http(
        &s,
        r#"{"refuse_ws":false,"refuse_sse":false,"refuse_poll":false}"#,
    )
    .await;
    let mut ws = ws_connect(&s, &format!("token={t}")).await;
    assert!(matches!(ws_next(&mut ws).await, ServerFrame::Hello(_)));
    assert_eq!(
        sse_connect(&s, &format!("token={t}"), None).await.status,
        200
    );
    poll_ok(&s, &format!("token={t}&hello=1")).await;
    s.shutdown().await;
}

#[tokio::test]
async fn black_holes_accept_then_never_answer() {
    let s = server().await;
    let t = token(&s, "alice");
    s.set_faults(FaultUpdate {
        blackhole_ws: Some(true),
        blackhole_sse: Some(true),
        blackhole_poll: Some(true),
        ..FaultUpdate::default()
    });
    let mut ws = ws_connect(&s, &format!("token={t}")).await;
    assert!(
        tokio::time::timeout(QUIET, ws.next()).await.is_err(),
        "a black-holed WebSocket sends nothing"
    );
    let mut sse = sse_connect(&s, &format!("token={t}"), None).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    assert!(tokio::time::timeout(QUIET, sse.next_event()).await.is_err());
    let resp = within(
        "poll headers",
        http()
            .get(format!("{}/v1/poll?v=1&token={t}&hello=1", s.base_url()))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(tokio::time::timeout(QUIET, resp.bytes()).await.is_err());
    // Dropping connections ends the black holes too.
    wait_until("three open streams", || s.open_streams() >= 3).await;
    s.drop_connections();
    wait_until("streams closed", || s.open_streams() == 0).await;
    s.shutdown().await;
}

#[tokio::test]
async fn stop_heartbeats_silences_heartbeats_and_pongs() {
    let mut config = ServerConfig::for_tests();
    config.heartbeat_ms = 150;
    let s = server_with(config).await;
    let t = token(&s, "alice");
    set_faults_http(&s, r#"{"stop_heartbeats":true}"#).await;
    // An empty long poll is withheld.
    let resp = http()
        .get(format!("{}/v1/poll?v=1&token={t}&wait_ms=50", s.base_url()))
        .send();
    assert!(tokio::time::timeout(QUIET, resp).await.is_err());
    let mut ws = ws_connect(&s, &format!("token={t}")).await;
    assert!(matches!(ws_next(&mut ws).await, ServerFrame::Hello(_)));
    let mut sse = sse_connect(&s, &format!("token={t}"), None).await;
    sse.next_event().await.unwrap();
    // The ping is not answered, and nothing else comes for well over a heartbeat interval.
    ws_send(&mut ws, &ClientFrame::Ping { t: 1 }).await;
    assert!(tokio::time::timeout(Duration::from_millis(250), ws.next())
        .await
        .is_err());
    assert!(
        tokio::time::timeout(Duration::from_millis(20), sse.next_event())
            .await
            .is_err()
    );
    // Back on: heartbeats resume (before the socket idles out).
    set_faults_http(&s, r#"{"stop_heartbeats":false}"#).await;
    match ws_next_any(&mut ws, false).await {
        WsEvent::Frame(ServerFrame::Heartbeat) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sse.next_event().await.unwrap().frame(),
        ServerFrame::Heartbeat
    );
    s.shutdown().await;
}

#[tokio::test]
async fn drop_cuts_every_live_connection_at_once() {
    let s = server().await;
    let t = token(&s, "alice");
    let mut ws = ws_connect(&s, &format!("token={t}")).await;
    ws_next(&mut ws).await;
    let mut sse = sse_connect(&s, &format!("token={t}"), None).await;
    sse.next_event().await.unwrap();
    let pending = http()
        .get(format!(
            "{}/v1/poll?v=1&token={t}&wait_ms=20000",
            s.base_url()
        ))
        .send();
    let pending = tokio::spawn(async move {
        match pending.await {
            Ok(resp) => resp.bytes().await.is_err(),
            Err(_) => true,
        }
    });
    wait_until("three open streams", || s.open_streams() == 3).await;
    let resp = http()
        .post(format!("{}/v1/faults/drop", s.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    match ws_next_any(&mut ws, true).await {
        WsEvent::Closed(None) => {}
        other => panic!("expected an abrupt close, got {other:?}"),
    }
    assert!(sse.next_event().await.is_none(), "SSE stream cut");
    assert!(within("poll cut", pending).await.unwrap(), "poll cut");
    // New connections work.
    let mut ws = ws_connect(&s, &format!("token={t}")).await;
    assert!(matches!(ws_next(&mut ws).await, ServerFrame::Hello(_)));
    s.shutdown().await;
}

#[tokio::test]
async fn shutdown_tells_every_stream_to_go_away() {
    let s = server().await;
    let t = token(&s, "alice");
    let mut ws = ws_connect(&s, &format!("token={t}")).await;
    ws_next(&mut ws).await;
    let mut sse = sse_connect(&s, &format!("token={t}"), None).await;
    sse.next_event().await.unwrap();
    let url = format!("{}/v1/poll?v=1&token={t}&wait_ms=20000", s.base_url());
    let pending = tokio::spawn(async move { http().get(url).send().await.unwrap().text().await });
    wait_until("three open streams", || s.open_streams() == 3).await;
    let retry = s.config().going_away_retry_ms;
    let stopping = tokio::spawn(s.shutdown());

    let going_away = |f: ServerFrame| match f {
        ServerFrame::Error(e) => {
            assert_eq!(e.code, ErrorCode::GoingAway);
            assert_eq!(e.retry_after_ms, Some(retry));
        }
        other => panic!("expected going_away, got {other:?}"),
    };
    going_away(ws_next(&mut ws).await);
    match ws_next_any(&mut ws, true).await {
        WsEvent::Closed(c) => assert_eq!(c, Some(CLOSE_RESTART)),
        other => panic!("{other:?}"),
    }
    going_away(sse.next_durable().await);
    assert!(sse.next_event().await.is_none());
    let body = within("poll answer", pending).await.unwrap().unwrap();
    let frames = lifeline_core::protocol::decode_server_batch(&body)
        .unwrap()
        .frames;
    assert_eq!(frames.len(), 1);
    going_away(frames[0].clone());
    within("shutdown", stopping).await.unwrap();
}

/// Reads messages from one transport until `total` is reached; returns their seqs.
async fn read_ws(s: &RunningServer, t: &str, cursor: u64, total: u64) -> Vec<u64> {
    let mut ws = ws_connect(s, &format!("token={t}&cursor={cursor}")).await;
    let mut seqs = Vec::new();
    for _ in 0..=total * 2 {
        match ws_next_durable(&mut ws).await {
            ServerFrame::Msg(m) => {
                seqs.push(m.seq);
                if m.seq >= total {
                    break;
                }
            }
            ServerFrame::Hello(h) => assert_eq!((h.cursor, h.resumed), (cursor, true)),
            // A stream that fell behind the tiny live buffer is told that ephemeral events were
            // skipped; its messages are re-read from storage.
            ServerFrame::Error(e) if e.code == ErrorCode::Skipped => {}
            other => panic!("{other:?}"),
        }
    }
    seqs
}

async fn read_sse(s: &RunningServer, t: &str, cursor: u64, total: u64) -> Vec<u64> {
    let mut sse = sse_connect(s, &format!("token={t}&cursor={cursor}"), None).await;
    let mut seqs = Vec::new();
    for _ in 0..=total * 2 {
        match sse.next_durable().await {
            ServerFrame::Msg(m) => {
                seqs.push(m.seq);
                if m.seq >= total {
                    break;
                }
            }
            ServerFrame::Hello(h) => assert_eq!((h.cursor, h.resumed), (cursor, true)),
            // A stream that fell behind the tiny live buffer is told that ephemeral events were
            // skipped; its messages are re-read from storage.
            ServerFrame::Error(e) if e.code == ErrorCode::Skipped => {}
            other => panic!("{other:?}"),
        }
    }
    seqs
}

async fn read_poll(s: &RunningServer, t: &str, mut cursor: u64, total: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    for _ in 0..=total {
        if cursor >= total {
            break;
        }
        for f in poll_ok(s, &format!("token={t}&cursor={cursor}&wait_ms=2000")).await {
            if let ServerFrame::Msg(m) = f {
                seqs.push(m.seq);
                cursor = m.seq;
            }
        }
    }
    seqs
}

#[tokio::test]
async fn replay_to_live_hand_over_has_no_gap_and_no_duplicate() {
    let mut config = ServerConfig::for_tests();
    // A tiny live buffer forces slow streams through the storage catch-up path too.
    config.live_buffer = 8;
    let s = Arc::new(server_with(config).await);
    let t = token(&s, "reader");
    let tw = token(&s, "writer");
    join(&s, &t, "h").await;
    join(&s, &tw, "h").await;
    const SENDERS: u64 = 4;
    const PER_SENDER: u64 = 60;
    const TOTAL: u64 = SENDERS * PER_SENDER;
    let mut senders = Vec::new();
    for k in 0..SENDERS {
        let (s, tw) = (Arc::clone(&s), tw.clone());
        senders.push(tokio::spawn(async move {
            for i in 0..PER_SENDER / 3 {
                let frames: Vec<ClientFrame> = (0..3)
                    .map(|j| send(&format!("s{k}-{i}-{j}"), "h", "x"))
                    .collect();
                let answers = send_ok(&s, &tw, &frames).await;
                assert!(answers.iter().all(|a| matches!(a, ServerFrame::Ack { .. })));
            }
        }));
    }
    // Readers join at staggered points while the sends are in flight, each from a cursor behind
    // the head, so their replay overlaps with live traffic.
    let mut readers = Vec::new();
    for (n, at) in [0u64, 40, 90, 150].into_iter().enumerate() {
        let s2 = Arc::clone(&s);
        wait_until("the head to advance", || s2.head_seq() >= at).await;
        let cursor = s.head_seq().saturating_sub(10);
        for kind in 0..3 {
            let (s, t) = (Arc::clone(&s), t.clone());
            readers.push(tokio::spawn(async move {
                let seqs = match kind {
                    0 => read_ws(&s, &t, cursor, TOTAL).await,
                    1 => read_sse(&s, &t, cursor, TOTAL).await,
                    _ => read_poll(&s, &t, cursor, TOTAL).await,
                };
                (n, kind, cursor, seqs)
            }));
        }
    }
    for sender in senders {
        within("senders", sender).await.unwrap();
    }
    assert_eq!(s.head_seq(), TOTAL);
    for reader in readers {
        let (n, kind, cursor, seqs) = within("reader", reader).await.unwrap();
        let expected: Vec<u64> = (cursor + 1..=TOTAL).collect();
        assert_eq!(
            seqs, expected,
            "reader {n} on transport {kind} from cursor {cursor}"
        );
    }
    Arc::try_unwrap(s).ok().unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_made_while_the_server_opens_storage_wait_and_are_served() {
    // The socket is bound before storage opens: a client reconnecting to a restarting instance
    // waits in the listen backlog instead of being refused. Storage is held back for 3 s; a
    // connect must succeed well within that (before the fix, nothing listened until storage
    // was open).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = ServerConfig::for_tests();
    config.listen = ([127, 0, 0, 1], port).into();
    config.open_hold_ms = 3_000;
    let starting = tokio::spawn(lifeline_server::start(config));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut socket = loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => break s,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "nothing accepted connects while the server opened storage: {e}"
                );
                tokio::task::yield_now().await;
            }
        }
    };
    assert!(!starting.is_finished(), "connected only after the start");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let server = within("the start", starting)
        .await
        .unwrap()
        .expect("starts");
    let mut answer = String::new();
    within("the answer", socket.read_to_string(&mut answer))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.shutdown().await;
}
