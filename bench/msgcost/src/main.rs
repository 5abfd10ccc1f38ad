//! Per-message client cost (issue 13): the native SDK's path for one message next to the floor,
//! raw tungstenite (the framing tokio-tungstenite runs) + serde_json decoding into a derived
//! struct with owned strings, in the same run. No server: the server's frames are encoded once,
//! before the count starts, and read from memory through the same 4 KiB read buffer on both
//! sides, so only the client's work is counted.
//!
//! Two measures, each printed as `case  sdk  raw  ratio`:
//! - `lifeline-msgcost` (or `cpu`): thread CPU time (CLOCK_THREAD_CPUTIME_ID) per message, the best
//!   of several interleaved rounds; run it pinned (`cargo xtask bench msgcost` uses `taskset -c 1`).
//!   Then the allocations per message (a counting global allocator), from two runs' difference.
//! - `lifeline-msgcost callgrind`: instructions per message, counted by valgrind's callgrind
//!   (they do not drift with the machine's load). Each side of each case runs in its own process
//!   under callgrind twice, with [`CALLGRIND_SHORT`] and [`CALLGRIND_LONG`] messages; the
//!   difference divided by the difference in messages leaves out start-up and set-up.
//!
//! Cases:
//! - `ws-receive`: one incoming `msg` frame. SDK: frame read, the copy into `Input::SocketText`
//!   that the native driver makes, `Session::handle_input` (decode, exactly-once delivery) and the
//!   `Event::Message`. Raw: frame read and serde_json decode.
//! - `send-64-in-flight`: one message sent with 64 unacknowledged. SDK: `Session::send` (id,
//!   outbox, encode), the frame written, then its `ack` and its echo (`msg`) read and handled.
//!   Raw: serde_json encode, frame written, the ack and the echo read and decoded.
//! - `sse-receive`: one incoming `msg` event on an event stream, from 4 KiB chunks. SDK: the
//!   native driver's SSE decoder (the same source file, `sdk-native/src/sse_decoder.rs`) and
//!   `Session::handle_input`. Raw: lines split out of the chunks with memchr, `data: ` stripped,
//!   serde_json from the bytes.
//! - `decode-msg-frame`: one `msg` frame's text decoded, `protocol::decode_server_frame` vs
//!   serde_json (owned strings).
//!
//! The native driver's channel hop between its socket task and the session (tokio mpsc) is not
//! counted on either side. Not part of the test suite.

use lifeline_core::protocol::{self, Message, ServerFrame};
use lifeline_core::{Action, Config, Event, Input, MsgId, Session, SocketId, TransportKind};
use serde::{Deserialize, Serialize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Cursor, Read, Write};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tungstenite::Message as WsMessage;

/// The native driver's SSE decoder, compiled from its own source (it has no dependencies), so that
/// the benchmark needs none of the driver's network stack.
#[path = "../../../sdk-native/src/sse_decoder.rs"]
#[allow(dead_code)]
mod sse_decoder;

/// The system allocator, counting allocations (and reallocations) for the allocations-per-message
/// figure. A plain load and store, no atomic read-modify-write: the benchmark runs on one thread,
/// and the count costs both sides the same two instructions per allocation.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn count_one() {
    ALLOCATIONS.store(ALLOCATIONS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

// SAFETY: every call is passed on to `System` unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Messages per round of the CPU-time measure.
const MESSAGES: u64 = 50_000;
const ROUNDS: usize = 7;
/// Messages in the shorter and the longer callgrind run of each side.
const CALLGRIND_SHORT: u64 = 1_000;
const CALLGRIND_LONG: u64 = 3_000;
/// The chunk an event stream arrives in.
const SSE_CHUNK: usize = 4096;
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

/// A session with a live stream of `transport`, past its `hello`.
fn live_session(transport: TransportKind) -> (Session, SocketId) {
    let mut config = Config::new("http://bench.test").unwrap();
    config.token = Some("t".into());
    config.transports = vec![transport];
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

fn sdk_receive(bytes: &[u8], n: u64) -> u64 {
    let (mut session, socket) = live_session(TransportKind::WebSocket);
    let mut ws = client_reader(bytes.to_vec());
    let now = lifeline_core::Instant::from_micros(1);
    let mut delivered = 0;
    let started = cpu_ns();
    for _ in 0..n {
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
    assert_eq!(delivered, n, "the session delivered every message");
    spent
}

fn raw_receive(bytes: &[u8], n: u64) -> u64 {
    let mut ws = client_reader(bytes.to_vec());
    let started = cpu_ns();
    for _ in 0..n {
        let text = read_text(&mut ws);
        let m: RawMsg = serde_json::from_str(text.as_str()).unwrap();
        std::hint::black_box(m);
    }
    cpu_ns() - started
}

/// The server's answers to message i: its ack, then its echo to the sender.
fn send_answers(total: u64) -> Vec<u8> {
    server_bytes((0..total).flat_map(|i| {
        let id = id_of(i).0;
        let ack = protocol::encode(&ServerFrame::Ack {
            id: id.clone(),
            seq: i + 1,
        });
        [ack, msg_frame(i + 1, "me", &id)]
    }))
}

fn sdk_send(answers: &[u8], n: u64) -> u64 {
    let (mut session, socket) = live_session(TransportKind::WebSocket);
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
    for i in 0..n {
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
        if i + IN_FLIGHT < n {
            send(&mut session, i + IN_FLIGHT, &mut writer);
        }
    }
    let spent = cpu_ns() - started;
    assert_eq!(
        (sent, acked, echoed),
        (n, n, n),
        "every message was sent, acknowledged and echoed"
    );
    spent
}

fn raw_send(answers: &[u8], n: u64) -> u64 {
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
    for i in 0..n {
        let ack: RawAck = serde_json::from_str(read_text(&mut reader).as_str()).unwrap();
        std::hint::black_box(ack);
        let echo: RawMsg = serde_json::from_str(read_text(&mut reader).as_str()).unwrap();
        std::hint::black_box(echo);
        if i + IN_FLIGHT < n {
            send(i + IN_FLIGHT, &mut writer);
        }
    }
    cpu_ns() - started
}

fn sdk_decode(text: &str, n: u64) -> u64 {
    let started = cpu_ns();
    for _ in 0..n {
        let frame = protocol::decode_server_frame(std::hint::black_box(text)).unwrap();
        std::hint::black_box(frame);
    }
    cpu_ns() - started
}

fn raw_decode(text: &str, n: u64) -> u64 {
    let started = cpu_ns();
    for _ in 0..n {
        let m: RawMsg = serde_json::from_str(std::hint::black_box(text)).unwrap();
        std::hint::black_box(m);
    }
    cpu_ns() - started
}

/// The bytes of an event stream carrying `frames`, one event each.
fn sse_bytes(frames: impl Iterator<Item = String>) -> Vec<u8> {
    let mut out = Vec::new();
    for text in frames {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\n\n");
    }
    out
}

fn sdk_sse_receive(bytes: &[u8], n: u64) -> u64 {
    let (mut session, socket) = live_session(TransportKind::Sse);
    let now = lifeline_core::Instant::from_micros(1);
    let mut decoder = sse_decoder::Decoder::default();
    let mut items = Vec::new();
    let mut delivered = 0;
    let started = cpu_ns();
    for chunk in bytes.chunks(SSE_CHUNK) {
        decoder.feed(chunk, &mut items).unwrap();
        for item in items.drain(..) {
            if let sse_decoder::Item::Data(text) = item {
                session.handle_input(now, Input::SocketText { socket, text });
            }
        }
        while let Some(event) = session.poll_event() {
            if let Event::Message(m) = event {
                delivered += 1;
                std::hint::black_box(m);
            }
        }
        while let Some(action) = session.poll_action() {
            std::hint::black_box(action);
        }
        if delivered >= n {
            break;
        }
    }
    let spent = cpu_ns() - started;
    assert!(delivered >= n, "the session delivered every message");
    spent
}

/// A plain event-stream reader: lines split out of the chunks (memchr), each `data: ` line
/// decoded straight from the chunk.
fn raw_sse_receive(bytes: &[u8], n: u64) -> u64 {
    let mut line: Vec<u8> = Vec::new();
    let mut decoded = 0;
    let started = cpu_ns();
    for chunk in bytes.chunks(SSE_CHUNK) {
        let mut rest = chunk;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let whole: &[u8] = if line.is_empty() {
                &rest[..end]
            } else {
                line.extend_from_slice(&rest[..end]);
                &line
            };
            if let Some(data) = whole.strip_prefix(b"data: ") {
                let m: RawMsg = serde_json::from_slice(data).unwrap();
                std::hint::black_box(m);
                decoded += 1;
            }
            line.clear();
            rest = &rest[end + 1..];
        }
        line.extend_from_slice(rest);
        if decoded >= n {
            break;
        }
    }
    let spent = cpu_ns() - started;
    assert!(decoded >= n, "every event was decoded");
    spent
}

/// One case's inputs, built before anything is counted for `total` messages.
struct Inputs {
    ws_incoming: Vec<u8>,
    answers: Vec<u8>,
    sse_incoming: Vec<u8>,
    frame: String,
}

impl Inputs {
    fn new(total: u64) -> Self {
        let incoming = || (1..=total).map(|seq| msg_frame(seq, "alice", &id_of(seq).0));
        Inputs {
            ws_incoming: server_bytes(incoming()),
            answers: send_answers(total),
            sse_incoming: sse_bytes(incoming()),
            frame: msg_frame(42, "alice", &id_of(42).0),
        }
    }

    /// Runs `side` ("sdk" or "raw") of `case` over `n` messages; its CPU time.
    fn run(&self, case: &str, side: &str, n: u64) -> u64 {
        match (case, side) {
            ("ws-receive", "sdk") => sdk_receive(&self.ws_incoming, n),
            ("ws-receive", "raw") => raw_receive(&self.ws_incoming, n),
            ("send-64-in-flight", "sdk") => sdk_send(&self.answers, n),
            ("send-64-in-flight", "raw") => raw_send(&self.answers, n),
            ("sse-receive", "sdk") => sdk_sse_receive(&self.sse_incoming, n),
            ("sse-receive", "raw") => raw_sse_receive(&self.sse_incoming, n),
            ("decode-msg-frame", "sdk") => sdk_decode(&self.frame, n),
            ("decode-msg-frame", "raw") => raw_decode(&self.frame, n),
            _ => panic!("unknown case {case} {side}"),
        }
    }
}

const CASES: [&str; 4] = [
    "ws-receive",
    "send-64-in-flight",
    "sse-receive",
    "decode-msg-frame",
];

/// The best of `ROUNDS` interleaved rounds of each side, in ns per message.
fn cpu_time() {
    println!(
        "per-message client CPU time, best of {ROUNDS} rounds of {MESSAGES} messages (raw = tungstenite + serde_json)"
    );
    let inputs = Inputs::new(MESSAGES);
    for case in CASES {
        let (mut best_sdk, mut best_raw) = (u64::MAX, u64::MAX);
        for _ in 0..ROUNDS {
            best_sdk = best_sdk.min(inputs.run(case, "sdk", MESSAGES));
            best_raw = best_raw.min(inputs.run(case, "raw", MESSAGES));
        }
        let per = |ns: u64| ns as f64 / MESSAGES as f64;
        println!(
            "{case:<20} sdk {:>8.0} ns  raw {:>8.0} ns  ratio {:.2}x",
            per(best_sdk),
            per(best_raw),
            best_sdk as f64 / best_raw as f64
        );
    }
    println!(
        "allocations and reallocations per message (runs of {CALLGRIND_LONG} minus {CALLGRIND_SHORT} messages)"
    );
    for case in CASES {
        let per = |side| {
            let count = |n| {
                let before = ALLOCATIONS.load(Ordering::Relaxed);
                inputs.run(case, side, n);
                ALLOCATIONS.load(Ordering::Relaxed) - before
            };
            let (long, short) = (count(CALLGRIND_LONG), count(CALLGRIND_SHORT));
            long.saturating_sub(short) as f64 / (CALLGRIND_LONG - CALLGRIND_SHORT) as f64
        };
        println!(
            "{case:<20} sdk {:>8.1}     raw {:>8.1}",
            per("sdk"),
            per("raw")
        );
    }
}

/// The instructions callgrind counts for one side of one case over `n` messages (this program,
/// re-run under valgrind with `one CASE SIDE N`).
fn instructions(case: &str, side: &str, n: u64) -> u64 {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let output = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .args(["one", case, side, &n.to_string()])
        .output()
        .unwrap_or_else(|e| {
            panic!("valgrind could not be run ({e}); install it: `apt-get install valgrind`")
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "valgrind failed: {stderr}");
    stderr
        .lines()
        .find_map(|line| {
            let (_, count) = line.split_once("Collected : ")?;
            count.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no instruction count in callgrind's output: {stderr}"))
}

fn callgrind() {
    let extra = CALLGRIND_LONG - CALLGRIND_SHORT;
    println!(
        "per-message client instructions (callgrind; runs of {CALLGRIND_LONG} minus {CALLGRIND_SHORT} messages, over {extra}; raw = tungstenite + serde_json)"
    );
    for case in CASES {
        let per = |side| {
            let long = instructions(case, side, CALLGRIND_LONG);
            let short = instructions(case, side, CALLGRIND_SHORT);
            long.saturating_sub(short) as f64 / extra as f64
        };
        let (sdk, raw) = (per("sdk"), per("raw"));
        println!(
            "{case:<20} sdk {sdk:>8.0} instr  raw {raw:>8.0} instr  ratio {:.2}x",
            sdk / raw
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        [] | ["cpu"] => cpu_time(),
        ["callgrind"] => callgrind(),
        ["one", case, side, n] => {
            let n = n.parse().expect("a number of messages");
            // The same inputs whatever `n`, so that the difference of two runs is `n`'s work only.
            Inputs::new(CALLGRIND_LONG).run(case, side, n);
        }
        _ => {
            eprintln!("usage: lifeline-msgcost [cpu | callgrind | one CASE sdk|raw N]");
            std::process::exit(2);
        }
    }
}
