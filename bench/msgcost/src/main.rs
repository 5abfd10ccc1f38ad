//! Per-message client cost (issue 13): the native SDK's path for one message next to the floor,
//! raw tungstenite (the framing tokio-tungstenite runs) + serde_json decoding into a derived
//! struct with owned strings, in the same run. No server: the server's frames are encoded once,
//! before the clock starts, and read from memory through the same 4 KiB read buffer on both
//! sides, so only the client's work is counted. Thread CPU time (CLOCK_THREAD_CPUTIME_ID), the
//! best of several rounds; run it pinned (`cargo xtask bench msgcost` uses `taskset -c 1`).
//!
//! Cases, each printed as `name sdk_ns raw_ns ratio`:
//! - `ws-receive`: one incoming `msg` frame. SDK: frame read, the copy into `Input::SocketText`
//!   that the native driver makes, `Session::handle_input` (decode, exactly-once delivery) and the
//!   `Event::Message`. Raw: frame read and serde_json decode.
//! - `send-64-in-flight`: one message sent with 64 unacknowledged. SDK: `Session::send` (id,
//!   outbox, encode), the frame written, then its `ack` and its echo (`msg`) read and handled.
//!   Raw: serde_json encode, frame written, the ack and the echo read and decoded.
//! - `decode-msg-frame`: one `msg` frame's text decoded, `protocol::decode_server_frame` vs
//!   serde_json (owned strings).
//!
//! The native driver's channel hop between its socket task and the session (tokio mpsc) is not
//! counted on either side. Not part of the test suite.

use lifeline_core::protocol::{self, Message, ServerFrame};
use lifeline_core::{Action, Config, Event, Input, MsgId, Session, SocketId};
use serde::{Deserialize, Serialize};
use std::io::{Cursor, Read, Write};
use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tungstenite::Message as WsMessage;

const MESSAGES: u64 = 50_000;
const ROUNDS: usize = 7;
const IN_FLIGHT: u64 = 64;
const BODY: &str = "hello, this is a small chat message";
const CONV: &str = "room-1";

/// The raw client's reading of a `msg` frame.
#[derive(Deserialize)]
#[allow(dead_code)]
struct RawMsg {
    #[serde(rename = "type")]
    kind: String,
    seq: u64,
    conv: String,
    from: String,
    id: String,
    body: String,
    ts: u64,
}

/// The raw client's reading of an `ack` frame.
#[derive(Deserialize)]
#[allow(dead_code)]
struct RawAck {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    seq: u64,
}

#[derive(Serialize)]
struct RawSend<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    conv: &'a str,
    body: &'a str,
}

fn ws_config() -> Option<WebSocketConfig> {
    Some(
        WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(4096),
    )
}

/// This thread's CPU time, in nanoseconds.
fn cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A socket whose writes vanish: the client's outgoing frames are encoded and masked, then dropped.
struct Discard;

impl Read for Discard {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Ok(0)
    }
}

impl Write for Discard {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The bytes a server writes for `frames`, as WebSocket text frames.
fn server_bytes(frames: impl Iterator<Item = String>) -> Vec<u8> {
    let mut ws = WebSocket::from_raw_socket(Cursor::new(Vec::new()), Role::Server, ws_config());
    for text in frames {
        ws.write(WsMessage::text(text)).unwrap();
    }
    ws.flush().unwrap();
    ws.get_ref().get_ref().clone()
}

/// A client reading `bytes` as a server's WebSocket stream.
fn client_reader(bytes: Vec<u8>) -> WebSocket<Cursor<Vec<u8>>> {
    WebSocket::from_raw_socket(Cursor::new(bytes), Role::Client, ws_config())
}

fn read_text(ws: &mut WebSocket<Cursor<Vec<u8>>>) -> tungstenite::Utf8Bytes {
    match ws.read().unwrap() {
        WsMessage::Text(text) => text,
        other => panic!("expected a text frame, got {other:?}"),
    }
}

fn id_of(i: u64) -> MsgId {
    let mut random = [0u8; 16];
    random[..8].copy_from_slice(&i.to_le_bytes());
    random[8..].copy_from_slice(&(!i).to_le_bytes());
    MsgId::from_random(random)
}

fn msg_frame(seq: u64, from: &str, id: &str) -> String {
    protocol::encode(&ServerFrame::Msg(Message {
        seq,
        conv: CONV.into(),
        from: from.into(),
        id: id.into(),
        body: BODY.into(),
        ts: 1_780_000_000_000 + seq,
    }))
}

/// A session with a live WebSocket, past its `hello`.
fn live_session() -> (Session, SocketId) {
    let mut config = Config::new("http://bench.test").unwrap();
    config.token = Some("t".into());
    let now = lifeline_core::Instant::from_micros(0);
    let mut session = Session::new(config, now);
    session.connect(now);
    let mut socket = None;
    while let Some(action) = session.poll_action() {
        if let Action::OpenSocket { socket: s, .. } = action {
            socket = Some(s);
        }
    }
    let socket = socket.expect("the session opens a socket");
    session.handle_input(now, Input::SocketOpened { socket });
    let hello =
        r#"{"type":"hello","v":1,"user":"me","heartbeat_ms":30000,"cursor":0,"resumed":true}"#;
    session.handle_input(
        now,
        Input::SocketText {
            socket,
            text: hello.into(),
        },
    );
    while session.poll_action().is_some() {}
    while session.poll_event().is_some() {}
    (session, socket)
}

fn sdk_receive(bytes: &[u8]) -> u64 {
    let (mut session, socket) = live_session();
    let mut ws = client_reader(bytes.to_vec());
    let now = lifeline_core::Instant::from_micros(1);
    let mut delivered = 0;
    let started = cpu_ns();
    for _ in 0..MESSAGES {
        let text = read_text(&mut ws);
        session.handle_input(
            now,
            Input::SocketText {
                socket,
                text: text.as_str().to_owned(),
            },
        );
        while let Some(event) = session.poll_event() {
            if let Event::Message(m) = event {
                delivered += 1;
                std::hint::black_box(m);
            }
        }
        while let Some(action) = session.poll_action() {
            std::hint::black_box(action);
        }
    }
    let spent = cpu_ns() - started;
    assert_eq!(delivered, MESSAGES, "the session delivered every message");
    spent
}

fn raw_receive(bytes: &[u8]) -> u64 {
    let mut ws = client_reader(bytes.to_vec());
    let started = cpu_ns();
    for _ in 0..MESSAGES {
        let text = read_text(&mut ws);
        let m: RawMsg = serde_json::from_str(text.as_str()).unwrap();
        std::hint::black_box(m);
    }
    cpu_ns() - started
}

/// The server's answers to message i: its ack, then its echo to the sender.
fn send_answers() -> Vec<u8> {
    server_bytes((0..MESSAGES).flat_map(|i| {
        let id = id_of(i).0;
        let ack = protocol::encode(&ServerFrame::Ack {
            id: id.clone(),
            seq: i + 1,
        });
        [ack, msg_frame(i + 1, "me", &id)]
    }))
}

fn sdk_send(answers: &[u8]) -> u64 {
    let (mut session, socket) = live_session();
    let mut reader = client_reader(answers.to_vec());
    let mut writer = WebSocket::from_raw_socket(Discard, Role::Client, ws_config());
    let now = lifeline_core::Instant::from_micros(1);
    let (mut sent, mut acked, mut echoed) = (0u64, 0u64, 0u64);
    let mut send = |session: &mut Session, i: u64, writer: &mut WebSocket<Discard>| {
        let mut random = [0u8; 16];
        random[..8].copy_from_slice(&i.to_le_bytes());
        random[8..].copy_from_slice(&(!i).to_le_bytes());
        session.send(now, CONV, BODY, random).unwrap();
        while let Some(action) = session.poll_action() {
            if let Action::SendText { text, .. } = action {
                writer.write(WsMessage::text(text)).unwrap();
                sent += 1;
            }
        }
        writer.flush().unwrap();
    };
    let started = cpu_ns();
    for i in 0..IN_FLIGHT {
        send(&mut session, i, &mut writer);
    }
    for i in 0..MESSAGES {
        for _ in 0..2 {
            let text = read_text(&mut reader);
            session.handle_input(
                now,
                Input::SocketText {
                    socket,
                    text: text.as_str().to_owned(),
                },
            );
        }
        while let Some(event) = session.poll_event() {
            match event {
                Event::Acked { .. } => acked += 1,
                Event::Message(_) => echoed += 1,
                other => {
                    std::hint::black_box(other);
                }
            }
        }
        if i + IN_FLIGHT < MESSAGES {
            send(&mut session, i + IN_FLIGHT, &mut writer);
        }
    }
    let spent = cpu_ns() - started;
    assert_eq!(
        (sent, acked, echoed),
        (MESSAGES, MESSAGES, MESSAGES),
        "every message was sent, acknowledged and echoed"
    );
    spent
}

fn raw_send(answers: &[u8]) -> u64 {
    let mut reader = client_reader(answers.to_vec());
    let mut writer = WebSocket::from_raw_socket(Discard, Role::Client, ws_config());
    let send = |i: u64, writer: &mut WebSocket<Discard>| {
        let id = id_of(i);
        let text = serde_json::to_string(&RawSend {
            kind: "send",
            id: &id.0,
            conv: CONV,
            body: BODY,
        })
        .unwrap();
        writer.write(WsMessage::text(text)).unwrap();
        writer.flush().unwrap();
    };
    let started = cpu_ns();
    for i in 0..IN_FLIGHT {
        send(i, &mut writer);
    }
    for i in 0..MESSAGES {
        let ack: RawAck = serde_json::from_str(read_text(&mut reader).as_str()).unwrap();
        std::hint::black_box(ack);
        let echo: RawMsg = serde_json::from_str(read_text(&mut reader).as_str()).unwrap();
        std::hint::black_box(echo);
        if i + IN_FLIGHT < MESSAGES {
            send(i + IN_FLIGHT, &mut writer);
        }
    }
    cpu_ns() - started
}

fn sdk_decode(text: &str) -> u64 {
    let started = cpu_ns();
    for _ in 0..MESSAGES {
        let frame = protocol::decode_server_frame(std::hint::black_box(text)).unwrap();
        std::hint::black_box(frame);
    }
    cpu_ns() - started
}

fn raw_decode(text: &str) -> u64 {
    let started = cpu_ns();
    for _ in 0..MESSAGES {
        let m: RawMsg = serde_json::from_str(std::hint::black_box(text)).unwrap();
        std::hint::black_box(m);
    }
    cpu_ns() - started
}

/// The best of `ROUNDS` interleaved rounds of each side, in ns per message.
fn compare(name: &str, sdk: impl Fn() -> u64, raw: impl Fn() -> u64) {
    let (mut best_sdk, mut best_raw) = (u64::MAX, u64::MAX);
    for _ in 0..ROUNDS {
        best_sdk = best_sdk.min(sdk());
        best_raw = best_raw.min(raw());
    }
    let per = |ns: u64| ns as f64 / MESSAGES as f64;
    println!(
        "{name:<20} sdk {:>8.0} ns  raw {:>8.0} ns  ratio {:.2}x",
        per(best_sdk),
        per(best_raw),
        best_sdk as f64 / best_raw as f64
    );
}

fn main() {
    println!(
        "per-message client CPU time, best of {ROUNDS} rounds of {MESSAGES} messages (raw = tungstenite + serde_json)"
    );
    let incoming = server_bytes((1..=MESSAGES).map(|seq| msg_frame(seq, "alice", &id_of(seq).0)));
    compare(
        "ws-receive",
        || sdk_receive(&incoming),
        || raw_receive(&incoming),
    );
    let answers = send_answers();
    compare(
        "send-64-in-flight",
        || sdk_send(&answers),
        || raw_send(&answers),
    );
    let frame = msg_frame(42, "alice", &id_of(42).0);
    compare(
        "decode-msg-frame",
        || sdk_decode(&frame),
        || raw_decode(&frame),
    );
}
