//! Split streams (`carry=messages` and `carry=ephemeral` on `/v1/ws` and `/v1/sse`, what the
//! hybrid strategy opens) against a real server on loopback: the messages stream replays and
//! carries only messages, the ephemeral stream only presence and typing, and a bad `carry` is a
//! typed 400.

mod common;

use common::*;
use lifeline_core::protocol::{ClientFrame, ErrorCode, ServerFrame};

/// The next SSE frame that is not a heartbeat (presence and typing are returned).
async fn sse_next(sse: &mut Sse) -> ServerFrame {
    for _ in 0..MAX_SKIP {
        let f = sse.next_event().await.expect("sse stream ended").frame();
        if f != ServerFrame::Heartbeat {
            return f;
        }
    }
    panic!("only heartbeats for {MAX_SKIP} events");
}

fn msg_seq(f: &ServerFrame) -> u64 {
    match f {
        ServerFrame::Msg(m) => m.seq,
        other => panic!("expected a message on the messages stream, got {other:?}"),
    }
}

#[tokio::test]
async fn messages_on_one_stream_presence_and_typing_on_the_other() {
    let s = server().await;
    let ta = token(&s, "alice");
    let tb = token(&s, "bob");
    join(&s, &ta, "p").await;
    join(&s, &tb, "p").await;
    let stored = send_one(&s, &tb, "m0", "p", "before").await;

    // Alice's two links, both from cursor 0: SSE for messages, WebSocket for the rest.
    let mut messages = sse_connect(&s, &format!("token={ta}&cursor=0&carry=messages"), None).await;
    assert_eq!(messages.status, 200);
    assert!(matches!(
        sse_next(&mut messages).await,
        ServerFrame::Hello(_)
    ));
    let mut ephemeral = ws_connect(&s, &format!("token={ta}&cursor=0&carry=ephemeral")).await;
    assert!(matches!(
        ws_next(&mut ephemeral).await,
        ServerFrame::Hello(_)
    ));

    // Bob comes online, types, sends, types again.
    let mut bob = ws_connect(&s, &format!("token={tb}")).await;
    ws_next(&mut bob).await; // hello
    let typing = ClientFrame::Typing { conv: "p".into() };
    assert!(send_ok(&s, &tb, std::slice::from_ref(&typing))
        .await
        .is_empty());
    let live = send_one(&s, &tb, "m1", "p", "live").await;
    assert!(send_ok(&s, &tb, &[typing]).await.is_empty());

    // The messages stream: the stored message replayed, then the live one, nothing in between.
    assert_eq!(msg_seq(&sse_next(&mut messages).await), stored);
    assert_eq!(msg_seq(&sse_next(&mut messages).await), live);

    // The ephemeral stream: no replay, no message; bob's presence and both typing frames.
    let bob_typing = ServerFrame::Typing {
        conv: "p".into(),
        user: "bob".into(),
    };
    assert_eq!(
        ws_next(&mut ephemeral).await,
        ServerFrame::Presence {
            conv: "p".into(),
            user: "bob".into(),
            online: true
        }
    );
    assert_eq!(ws_next(&mut ephemeral).await, bob_typing);
    assert_eq!(ws_next(&mut ephemeral).await, bob_typing);

    // And the other way: alice types on the ephemeral WebSocket, bob's plain stream sees it.
    ws_send(&mut ephemeral, &ClientFrame::Typing { conv: "p".into() }).await;
    let f = 'typing: {
        for _ in 0..MAX_SKIP {
            match ws_next(&mut bob).await {
                ServerFrame::Typing { user, .. } => break 'typing user,
                _ => continue,
            }
        }
        panic!("alice's typing never reached bob");
    };
    assert_eq!(f, "alice");
    s.shutdown().await;
}

#[tokio::test]
async fn an_unknown_carry_is_a_typed_bad_request() {
    let s = server().await;
    let t = token(&s, "alice");
    let sse = sse_connect(&s, &format!("token={t}&carry=everything"), None).await;
    assert_eq!(sse.status, 400);
    // The WebSocket is told after the upgrade: a bad_frame error frame, then close 1008.
    let mut ws = ws_connect(&s, &format!("token={t}&carry=everything")).await;
    match ws_next_any(&mut ws, true).await {
        WsEvent::Frame(ServerFrame::Error(e)) => assert_eq!(e.code, ErrorCode::BadFrame),
        other => panic!("expected a bad_frame error frame, got {other:?}"),
    }
    assert!(matches!(
        ws_next_any(&mut ws, true).await,
        WsEvent::Closed(Some(1008))
    ));
    s.shutdown().await;
}

/// Long polling with `carry=messages` (messages falling back from SSE while the WebSocket carries
/// the rest): a waiting poll is answered by the message, not by the typing that came first.
#[tokio::test]
async fn a_messages_poll_is_not_answered_by_typing() {
    let s = server().await;
    let ta = token(&s, "alice");
    let tb = token(&s, "bob");
    join(&s, &ta, "p").await;
    join(&s, &tb, "p").await;
    let mut bob = ws_connect(&s, &format!("token={tb}&carry=ephemeral")).await;
    ws_next(&mut bob).await; // hello
    let query = format!("token={ta}&cursor=0&wait_ms=4000&carry=messages");
    let (frames, live) = tokio::join!(poll_ok(&s, &query), async {
        // Alice's poll is waiting once she shows online (her stream opens right after).
        assert_eq!(
            ws_next(&mut bob).await,
            ServerFrame::Presence {
                conv: "p".into(),
                user: "alice".into(),
                online: true
            }
        );
        let typing = ClientFrame::Typing { conv: "p".into() };
        assert!(send_ok(&s, &tb, &[typing]).await.is_empty());
        send_one(&s, &tb, "m1", "p", "live").await
    });
    assert!(!frames.is_empty(), "the poll was answered empty");
    assert_eq!(msg_seq(&frames[0]), live);
    for f in &frames {
        msg_seq(f);
    }
    s.shutdown().await;
}
