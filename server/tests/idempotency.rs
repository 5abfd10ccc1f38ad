//! A client message id is an idempotency key for one message, not a name any message may take: a
//! retransmission (same id, conversation and body) is acknowledged with the original seq; the same
//! id with another conversation or body is refused with `id_reused`, on WebSocket and on HTTP
//! send, and also after a restart on an existing data directory. Against a real server on
//! loopback.

mod common;

use common::*;
use lifeline_core::protocol::{ErrorCode, ServerFrame};
use lifeline_server::ServerConfig;

fn on_disk(dir: &std::path::Path) -> ServerConfig {
    let mut c = ServerConfig::for_tests();
    c.data_dir = Some(dir.to_path_buf());
    c
}

/// Asserts that `frame` refuses the id `id` as reused, without echoing the body.
fn assert_id_reused(frame: &ServerFrame, id: &str, body: &str) {
    match frame {
        ServerFrame::Error(e) => {
            assert_eq!(e.code, ErrorCode::IdReused, "{frame:?}");
            assert_eq!(e.code.as_str(), "id_reused");
            assert_eq!(e.id.as_deref(), Some(id), "{frame:?}");
            assert!(!e.message.contains(body), "{frame:?}");
        }
        other => panic!("expected id_reused for {id}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reused_id_is_acknowledged_only_for_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with(on_disk(dir.path())).await;
    let t = token(&s, "erin");
    join(&s, &t, "room").await;
    join(&s, &t, "other").await;
    let seq = send_one(&s, &t, "m1", "room", "hello").await;

    // HTTP send: the retransmission is acked with the original seq, the others are refused.
    let answers = send_ok(
        &s,
        &t,
        &[
            send("m1", "room", "hello"),
            send("m1", "room", "secret other body"),
            send("m1", "other", "hello"),
        ],
    )
    .await;
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert_eq!(
        answers[0],
        ServerFrame::Ack {
            id: "m1".into(),
            seq
        }
    );
    assert_id_reused(&answers[1], "m1", "secret other body");
    assert_id_reused(&answers[2], "m1", "hello");

    // WebSocket: the same.
    let mut ws = ws_connect(&s, &format!("token={t}")).await;
    assert!(matches!(ws_next(&mut ws).await, ServerFrame::Hello(_)));
    ws_send(&mut ws, &send("m1", "room", "hello")).await;
    assert_eq!(
        ws_next_durable(&mut ws).await,
        ServerFrame::Ack {
            id: "m1".into(),
            seq
        }
    );
    ws_send(&mut ws, &send("m1", "room", "secret other body")).await;
    assert_id_reused(&ws_next_durable(&mut ws).await, "m1", "secret other body");
    ws_send(&mut ws, &send("m1", "other", "hello")).await;
    assert_id_reused(&ws_next_durable(&mut ws).await, "m1", "hello");
    drop(ws);

    // Nothing was stored under the reused id; another user may use the same id freely.
    assert_eq!(s.head_seq(), seq);
    let t2 = token(&s, "frank");
    join(&s, &t2, "room").await;
    let other_seq = send_one(&s, &t2, "m1", "room", "frank's own").await;
    assert!(other_seq > seq);
    s.shutdown().await;

    // After a restart on the same data directory, the stored message still decides.
    let s = server_with(on_disk(dir.path())).await;
    let t = token(&s, "erin");
    let answers = send_ok(
        &s,
        &t,
        &[
            send("m1", "room", "hello"),
            send("m1", "room", "secret other body"),
        ],
    )
    .await;
    assert_eq!(
        answers[0],
        ServerFrame::Ack {
            id: "m1".into(),
            seq
        }
    );
    assert_id_reused(&answers[1], "m1", "secret other body");
    assert_eq!(s.head_seq(), other_seq);
    s.shutdown().await;
}
