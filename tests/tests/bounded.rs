//! Bounded memory in the native SDK: a slow event reader gets `Lagged(n)` instead of an unbounded
//! queue (and a fast reader of the same client misses nothing); an SSE event or an HTTP body
//! larger than the limits fails the transport instead of being buffered.

use futures_util::{FutureExt, StreamExt};
use lifeline::{Cause, Event, State, TransportKind, MAX_BODY_BYTES, MAX_EVENT_BYTES};
use lifeline_tests::harness::{self, WAIT};
use lifeline_tests::recorder::Recorder;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_told_how_many_events_it_missed() {
    const QUEUE: usize = 16;
    const SENT: usize = 100;
    let server = harness::server().await;
    let reader = harness::client(&server.base_url(), 71)
        .token(harness::token(&server, "slow"))
        .build()
        .unwrap();
    let mut slow = reader.events_with_capacity(QUEUE);
    let fast = Recorder::start(&reader);
    reader.connect();
    reader.subscribe("flood").await.unwrap();
    let sender = harness::client(&server.base_url(), 72)
        .token(harness::token(&server, "fast"))
        .build()
        .unwrap();
    sender.connect();
    sender.subscribe("flood").await.unwrap();
    let sends: Vec<_> = (0..SENT)
        .map(|i| sender.send("flood", &format!("m{i}")))
        .collect();
    for result in futures_util::future::join_all(sends).await {
        result.unwrap();
    }
    // The fast reader of the same client gets every message.
    // The fast reader of the same client (default queue) gets every message.
    fast.wait_messages(SENT, WAIT).await;
    // The slow one holds at most its queue, then is told how many it missed.
    let mut received = Vec::new();
    let mut missed = 0;
    let mut queued = 0;
    while let Some(Some(event)) = slow.next().now_or_never() {
        match event {
            Event::Message(m) => received.push(m.seq),
            Event::Lagged { missed: n } => {
                assert_eq!(missed, 0, "one notice per lag");
                assert_eq!(queued, QUEUE, "the notice comes after what was queued");
                missed = n;
            }
            _ => {}
        }
        queued += 1;
    }
    assert_eq!(queued, QUEUE + 1, "{QUEUE} queued events and the notice");
    assert!(missed > 0, "nothing reported missed");
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "out of order: {received:?}"
    );
    // Every event that did not fit was counted: what was read and what was missed cover all the
    // messages (the rest is state changes and acks).
    assert!(
        received.len() as u64 + missed >= SENT as u64,
        "{} read + {missed} missed < {SENT}",
        received.len()
    );
    // Caught up, the reader gets new events again.
    sender.send("flood", "after").await.unwrap();
    let after = async {
        while let Some(event) = slow.next().await {
            assert!(!matches!(event, Event::Lagged { .. }), "lagged again");
            if matches!(event, Event::Message(ref m) if m.body == "after") {
                return;
            }
        }
        panic!("the stream ended");
    };
    tokio::time::timeout(WAIT, after).await.unwrap();
}

/// A server on loopback that answers every connection with `head` and then `body_len` bytes of
/// `fill` (written in chunks), then holds the connection. Returns its address.
async fn oversized_server(head: String, fill: Vec<u8>, body_len: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (head, fill) = (head.clone(), fill.clone());
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = tcp.read(&mut request).await;
                if tcp.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut written = 0;
                while written < body_len {
                    let n = fill.len().min(body_len - written);
                    if tcp.write_all(&fill[..n]).await.is_err() {
                        return;
                    }
                    written += n;
                }
                // Hold the connection open until the client gives up on it.
                let _ = tcp.read(&mut request).await;
            });
        }
    });
    addr
}

/// Waits until the client leaves `connecting` with a cause whose text contains `needle`.
async fn wait_for_cause(rec: &Recorder, needle: &str) {
    let needle = needle.to_owned();
    rec.wait_for(
        &format!("a cause mentioning {needle:?}"),
        WAIT,
        move |events| {
            events.iter().any(|e| match e {
                Event::StateChanged {
                    to: State::Reconnecting { .. },
                    cause,
                    ..
                } => cause.to_string().contains(&needle),
                _ => false,
            })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_event_over_the_limit_fails_the_stream() {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: ".to_string();
    // One event that never ends: far more than the limit, without a newline.
    let addr = oversized_server(head, vec![b'x'; 16 * 1024], 8 * MAX_EVENT_BYTES).await;
    let client = harness::client(&format!("http://{addr}"), 73)
        .token("t")
        .transports([TransportKind::Sse])
        .build()
        .unwrap();
    let rec = Recorder::start(&client);
    client.connect();
    wait_for_cause(&rec, &format!("larger than {MAX_EVENT_BYTES} bytes")).await;
    assert!(rec
        .states()
        .iter()
        .any(|(_, c)| matches!(c, Cause::TransportLost { .. } | Cause::OpenFailed { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_body_over_the_limit_fails_the_request() {
    let len = MAX_BODY_BYTES + 64 * 1024;
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
    );
    let addr = oversized_server(head, vec![b' '; 64 * 1024], len).await;
    let client = harness::client(&format!("http://{addr}"), 74)
        .token("t")
        .transports([TransportKind::LongPoll])
        .build()
        .unwrap();
    let rec = Recorder::start(&client);
    client.connect();
    wait_for_cause(&rec, &format!("larger than {MAX_BODY_BYTES} bytes")).await;
}

#[tokio::test(flavor = "current_thread")]
async fn sends_beyond_the_command_queue_are_refused_not_buffered() {
    let client = lifeline::Client::builder("http://127.0.0.1:9")
        .token("t")
        .build()
        .unwrap();
    // On this one thread the client's task cannot run until we await: its queue fills up.
    let mut sends: Vec<_> = (0..=lifeline::COMMAND_QUEUE)
        .map(|i| client.send("general", &format!("m{i}")))
        .collect();
    let over = sends.pop().unwrap();
    assert_eq!(over.await, Err(lifeline::SendError::QueueFull));
    // The ones that fit were queued and resolve (here: closed, as the client goes away).
    client.close_within(std::time::Duration::ZERO).await;
    let first = sends.swap_remove(0).await;
    assert_eq!(first, Err(lifeline::SendError::Closed));
}
