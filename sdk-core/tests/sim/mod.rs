//! The deterministic simulation harness for the session: a fake clock, a fake Lifeline server
//! that speaks the protocol at the frame level, and a scripted network whose faults tests switch on
//! and off. Everything is driven by simulated time and seeded randomness, so a failing seed
//! replays exactly.
//!
//! The harness carries out the session's actions the way a driver would and checks the session's
//! invariants after every step (at most one live link plus one other; `poll_timeout` later than
//! the time just handled). It makes no decisions for the session.

#![allow(dead_code)]

use lifeline_core::protocol::{
    self, Batch, ClientFrame, ErrorCode, ErrorFrame, Hello, HistoryPage, Message, ServerFrame,
};
use lifeline_core::Instant;
use lifeline_core::{
    Action, Config, Event, FailureKind, HttpMethod, Input, MsgId, RequestId, SendError, Session,
    SocketId, SocketKind, State, Strategy, TransportFailure, TransportKind,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

pub const USER: &str = "me";
pub const PEER: &str = "peer";

/// What the network and the server do to each transport.
#[derive(Debug, Clone, Default)]
pub struct Net {
    /// One-way delay of every frame and response.
    pub latency: Duration,
    /// The server is unreachable: every open and request fails at once (connection refused).
    pub down: bool,
    /// How the driver classifies a failure while `down`: `Refused` (the native driver, the
    /// default) or `Other` (a browser, which cannot tell).
    pub down_kind: FailureKind,
    /// Opens of these transports get HTTP 403 (a proxy that refuses them).
    pub refuse: HashSet<TransportKind>,
    /// Opens of these transports never complete (black-holed at connect).
    pub blackhole_open: HashSet<TransportKind>,
    /// Opens of these transports are reset (a middlebox that resets upgrades): the driver reports
    /// a failure it cannot classify.
    pub reset_open: HashSet<TransportKind>,
    /// Opens of these transports reach the server this much later (a slow handshake).
    pub slow_open: HashMap<TransportKind, Duration>,
    /// Frames on streams of these transports take this much longer than `latency`.
    pub extra_latency: HashMap<TransportKind, Duration>,
    /// A middlebox cuts a WebSocket on which nothing moved, either way, for this long (HAProxy's
    /// `timeout tunnel`).
    pub ws_idle_cut: Option<Duration>,
    /// A gateway answers a long poll held this long with `504` and an HTML page.
    pub gateway_timeout: Option<Duration>,
    /// A buffering proxy holds the responses of streams of these transports, headers included,
    /// until this many frames piled up, then passes them all at once.
    pub buffer_frames: HashMap<TransportKind, usize>,
    /// These transports open but the server's frames never arrive (a buffering proxy).
    pub mute: HashSet<TransportKind>,
    /// Frames on open streams of these transports stop arriving (black-holed mid-stream). Like a
    /// dead TCP connection, a stream caught by this never recovers, even after the switch is off.
    pub blackhole_streams: HashSet<TransportKind>,
    /// The server stops sending heartbeats.
    pub no_heartbeats: bool,
    /// Answer opens and HTTP requests with 429 and this `Retry-After`.
    pub rate_limit_opens: Option<Duration>,
    /// HTTP sends reach the server (which stores them) but their answers never come back, as on
    /// a dead pooled connection.
    pub lose_send_answers: bool,
    /// The driver is a browser's: an event stream refused with an HTTP status is reported as a
    /// failure of unknown kind without the status (`EventSource` hides it).
    pub opaque_sse_failures: bool,
}

#[derive(Debug, Clone)]
struct Stream {
    kind: TransportKind,
    muted: bool,
    next_heartbeat: Instant,
    /// When a frame last passed, either way (for `Net::ws_idle_cut`).
    last_activity: Instant,
    /// Frames a buffering proxy holds (`Net::buffer_frames`).
    held: Vec<ServerFrame>,
    /// Whether the client was told the stream opened (a buffering proxy holds that too).
    opened: bool,
    /// The stream's `carry` (`all`, `messages`, `ephemeral`), as the reference server filters.
    carry: String,
}

#[derive(Debug, Clone)]
struct HeldPoll {
    request: RequestId,
    cursor: u64,
    expires: Instant,
    /// Expires by the gateway's timeout: answered 504.
    gateway: bool,
}

#[derive(Debug, Clone)]
enum Pending {
    Input(Input),
    /// A frame for a socket, dropped if the socket's transport is black-holed by then.
    Frame(SocketId, TransportKind, ServerFrame),
    /// A slow open reaches the server.
    Open(SocketId, SocketKind, String),
}

/// The fake server's durable state.
#[derive(Debug, Default)]
pub struct FakeServer {
    pub messages: Vec<Message>,
    pub by_client_id: HashMap<(String, String), u64>,
    pub members: BTreeMap<String, BTreeSet<String>>,
    /// Messages at or below this sequence number can no longer be replayed.
    pub forgotten_up_to: u64,
    pub valid_tokens: HashSet<String>,
    pub expired_tokens: HashSet<String>,
    pub heartbeat: Duration,
    /// Sends are answered with `rate_limited` while this is set.
    pub rate_limit_sends: Option<Duration>,
    /// The number of sends the server stored (not counting idempotent repeats).
    pub stored_sends: usize,
    /// The number of `send` frames received, repeats included.
    pub received_sends: usize,
    pub opens: Vec<TransportKind>,
    /// When the server received each frame the client sent on a WebSocket.
    pub ws_frames_received: Vec<Instant>,
    /// WebSockets a middlebox cut for idleness.
    pub idle_cuts: usize,
    /// Long polls a gateway answered 504.
    pub gateway_timeouts: usize,
    /// The `wait_ms` of every follow-up poll.
    pub poll_waits: Vec<u64>,
    /// Follow-up long polls (without `hello`) the server received.
    pub follow_up_polls: usize,
    /// Follow-up long polls answered with at least one frame.
    pub non_empty_polls: usize,
    /// The most long polls the server held at once for this client.
    pub max_polls_held: usize,
    pub token_fetches: usize,
    /// Every token is refused, fresh ones included.
    pub reject_all_tokens: bool,
    /// HTTP send requests with a larger body get 413 `too_large` (a server or proxy limit).
    pub max_body_bytes: Option<usize>,
    /// The `hello` advertises `max_body_bytes` and `max_frames` (64).
    pub advertise_limits: bool,
    /// Every HTTP send request received: (frames, body bytes), refused ones included.
    pub send_requests: Vec<(usize, usize)>,
    /// `typing` frames received on a WebSocket and in HTTP sends.
    pub typing_over_ws: usize,
    pub typing_over_http: usize,
    /// The `carry` of every stream and long poll opened (`all` when absent).
    pub carries: Vec<(TransportKind, String)>,
}

impl FakeServer {
    fn head(&self) -> u64 {
        self.messages.last().map_or(0, |m| m.seq)
    }

    fn is_member(&self, user: &str, conv: &str) -> bool {
        self.members.get(conv).is_some_and(|m| m.contains(user))
    }

    pub fn is_member_of(&self, conv: &str) -> bool {
        self.is_member(USER, conv)
    }

    fn after(&self, cursor: u64) -> Vec<Message> {
        self.messages
            .iter()
            .filter(|m| m.seq > cursor && self.is_member(USER, &m.conv))
            .cloned()
            .collect()
    }

    /// Stores a message: `Ok((seq, stored))`, `stored` false for a repeat of a stored message, or
    /// `Err(())` for an id already used for another conversation or body (`id_reused`).
    fn store(
        &mut self,
        from: &str,
        id: &str,
        conv: &str,
        body: &str,
        ts: u64,
    ) -> Result<(u64, bool), ()> {
        if let Some(seq) = self.by_client_id.get(&(from.to_string(), id.to_string())) {
            let m = self.messages.iter().find(|m| m.seq == *seq).ok_or(())?;
            return if m.conv == conv && m.body == body {
                Ok((*seq, false))
            } else {
                Err(())
            };
        }
        let seq = self.head() + 1;
        self.messages.push(Message {
            seq,
            conv: conv.into(),
            from: from.into(),
            id: id.into(),
            body: body.into(),
            ts,
        });
        self.by_client_id
            .insert((from.to_string(), id.to_string()), seq);
        Ok((seq, true))
    }
}

pub struct Sim {
    pub now: Instant,
    pub start: Instant,
    pub session: Session,
    pub server: FakeServer,
    pub net: Net,
    /// Every event the session emitted, with the time.
    pub events: Vec<(Instant, Event)>,
    /// Messages delivered to the application, in order.
    pub delivered: Vec<Message>,
    queue: BTreeMap<(Instant, u64), Pending>,
    queue_seq: u64,
    /// Ordered, so that the order in which streams are served is the same on every run.
    streams: BTreeMap<SocketId, Stream>,
    /// Sockets whose frames never arrive any more.
    dead: HashSet<SocketId>,
    polls: Vec<HeldPoll>,
    live_requests: HashSet<RequestId>,
    /// Slow opens on their way to the server.
    slow_opens: HashSet<SocketId>,
    /// Token the provider hands out next; `None` makes it fail.
    pub token_source: Option<String>,
    /// Provider answers after this long.
    pub token_delay: Duration,
    pub steps: u64,
    token_counter: u64,
    /// Where message ids come from (the OS's generator in a real driver), seeded apart from the
    /// session's seed.
    id_rng: SmallRng,
    /// When set, every input, timeout, action and event, one line each with its time in
    /// milliseconds since the start (see `tests/traces.rs`).
    pub trace: Option<Vec<String>>,
}

/// A configuration with short, test-friendly numbers left at their defaults and a fixed seed.
pub fn config(seed: u64) -> Config {
    let mut c = Config::new("http://lifeline.test").unwrap();
    c.token = Some("tok-0".into());
    c.token_provider = true;
    c.seed = seed;
    c
}

/// The error the fake server answers a refused token with, on every transport.
fn bad_token(code: ErrorCode) -> ErrorFrame {
    ErrorFrame {
        code,
        message: "bad token".into(),
        id: None,
        conv: None,
        retry_after_ms: None,
    }
}

fn query(url: &str, key: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

impl Sim {
    pub fn new(config: Config) -> Self {
        let config_seed = config.seed;
        // Any origin will do; this one leaves room to look back from the start.
        let start = Instant::from_micros(1_000_000_000_000);
        let mut server = FakeServer {
            heartbeat: Duration::from_secs(10),
            ..Default::default()
        };
        server.valid_tokens.insert("tok-0".into());
        for user in [USER, PEER] {
            server
                .members
                .entry("general".into())
                .or_default()
                .insert(user.into());
        }
        Sim {
            now: start,
            start,
            session: Session::new(config, start),
            server,
            net: Net {
                latency: Duration::from_millis(20),
                down_kind: FailureKind::Refused,
                ..Default::default()
            },
            events: Vec::new(),
            delivered: Vec::new(),
            queue: BTreeMap::new(),
            queue_seq: 0,
            streams: BTreeMap::new(),
            dead: HashSet::new(),
            polls: Vec::new(),
            live_requests: HashSet::new(),
            slow_opens: HashSet::new(),
            token_source: Some("tok-1".into()),
            token_delay: Duration::from_millis(50),
            steps: 0,
            token_counter: 1,
            id_rng: SmallRng::seed_from_u64(config_seed ^ 0x1d5_1d5),
            trace: None,
        }
    }

    /// Seconds of simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Appends one line to the trace, if one is being recorded.
    fn record(&mut self, what: &str, detail: &dyn std::fmt::Debug) {
        if let Some(trace) = &mut self.trace {
            let t = (self.now - self.start).as_millis();
            trace.push(format!("{t:>9} {what} {detail:?}"));
        }
    }

    /// Hands an input to the session, recording it.
    fn feed(&mut self, input: Input) {
        self.record("in ", &input);
        self.session.handle_input(self.now, input);
    }

    fn schedule(&mut self, at: Instant, p: Pending) {
        self.queue_seq += 1;
        self.queue.insert((at, self.queue_seq), p);
    }

    fn reply(&mut self, input: Input) {
        let at = self.now + self.net.latency;
        self.schedule(at, Pending::Input(input));
    }

    fn frame_to(&mut self, socket: SocketId, frame: ServerFrame) {
        let Some(stream) = self.streams.get_mut(&socket) else {
            return;
        };
        // What the stream's `carry` leaves out (the reference server's filter).
        let left_out = matches!(
            (&frame, stream.carry.as_str()),
            (ServerFrame::Msg(_), "ephemeral")
                | (
                    ServerFrame::Presence { .. } | ServerFrame::Typing { .. },
                    "messages"
                )
        );
        if left_out {
            return;
        }
        stream.last_activity = self.now;
        // Like the reference server, a heartbeat goes out only after a heartbeat of silence.
        stream.next_heartbeat = self.now + self.server.heartbeat;
        if stream.muted || self.dead.contains(&socket) {
            return;
        }
        let kind = stream.kind;
        let extra = self
            .net
            .extra_latency
            .get(&kind)
            .copied()
            .unwrap_or_default();
        let at = self.now + self.net.latency + extra;
        if let Some(&n) = self.net.buffer_frames.get(&kind) {
            stream.held.push(frame);
            if stream.held.len() < n {
                return;
            }
            let held = std::mem::take(&mut stream.held);
            if !std::mem::replace(&mut stream.opened, true) {
                self.schedule(at, Pending::Input(Input::SocketOpened { socket }));
            }
            for frame in held {
                self.schedule(at, Pending::Frame(socket, kind, frame));
            }
            return;
        }
        self.schedule(at, Pending::Frame(socket, kind, frame));
    }

    fn ts(&self) -> u64 {
        (self.now - self.start).as_millis() as u64
    }

    fn check_token(&self, token: Option<&str>) -> Result<(), ErrorCode> {
        match token {
            _ if self.server.reject_all_tokens => Err(ErrorCode::Unauthorized),
            Some(t) if self.server.valid_tokens.contains(t) => Ok(()),
            Some(t) if self.server.expired_tokens.contains(t) => Err(ErrorCode::TokenExpired),
            _ => Err(ErrorCode::Unauthorized),
        }
    }

    fn hello(&self, cursor: Option<u64>) -> (Hello, Vec<Message>) {
        let head = self.server.head();
        let (cursor, resumed) = match cursor {
            None => (head, true),
            Some(c) if c > head || c < self.server.forgotten_up_to => {
                (self.server.forgotten_up_to.min(head), false)
            }
            Some(c) => (c, true),
        };
        let hello = Hello {
            v: 1,
            user: USER.into(),
            heartbeat_ms: self.server.heartbeat.as_millis() as u64,
            cursor,
            resumed,
            max_body_bytes: self
                .server
                .advertise_limits
                .then(|| self.server.max_body_bytes.unwrap_or(1 << 20) as u64),
            max_frames: self.server.advertise_limits.then_some(64),
        };
        (hello, self.server.after(cursor))
    }

    // ----- the driver side -----------------------------------------------------------------

    fn carry_out(&mut self, action: Action) {
        self.record("act", &action);
        match action {
            Action::OpenSocket {
                socket, kind, url, ..
            } => self.open_socket(socket, kind, &url),
            Action::SendText { socket, text } => {
                if let Some(stream) = self.streams.get_mut(&socket) {
                    stream.last_activity = self.now;
                    self.server.ws_frames_received.push(self.now);
                    let frame = protocol::decode_client_frame(&text).expect("client frames valid");
                    if matches!(frame, ClientFrame::Typing { .. }) {
                        self.server.typing_over_ws += 1;
                    }
                    let answers = self.server_handle(frame);
                    for a in answers {
                        self.frame_to(socket, a);
                    }
                }
            }
            Action::CloseSocket { socket } => {
                self.slow_opens.remove(&socket);
                self.streams.remove(&socket);
            }
            Action::Http {
                request,
                method,
                url,
                bearer,
                body,
            } => self.http(request, method, &url, bearer, body),
            Action::AbortHttp { request } => {
                self.live_requests.remove(&request);
                self.polls.retain(|p| p.request != request);
            }
            Action::FetchToken => {
                self.server.token_fetches += 1;
                let result = match &self.token_source {
                    Some(t) => {
                        self.token_counter += 1;
                        let token = format!("{t}-{}", self.token_counter);
                        self.server.valid_tokens.insert(token.clone());
                        Ok(token)
                    }
                    None => Err("provider failed".to_string()),
                };
                let at = self.now + self.token_delay;
                self.schedule(at, Pending::Input(Input::Token(result)));
            }
        }
    }

    /// Reports that `socket` failed, as the driver sees it.
    fn socket_failed(&mut self, socket: SocketId, kind: TransportKind, failure: TransportFailure) {
        let failure = if kind == TransportKind::Sse
            && self.net.opaque_sse_failures
            && failure.status.is_some()
        {
            TransportFailure::network("the event stream could not be opened")
        } else {
            failure
        };
        self.reply(Input::SocketFailed { socket, failure });
    }

    fn open_socket(&mut self, socket: SocketId, kind: SocketKind, url: &str) {
        let transport = match kind {
            SocketKind::WebSocket => TransportKind::WebSocket,
            SocketKind::EventSource => TransportKind::Sse,
        };
        if let Some(&extra) = self.net.slow_open.get(&transport) {
            if self.slow_opens.insert(socket) {
                let at = self.now + extra;
                self.schedule(at, Pending::Open(socket, kind, url.to_string()));
                return;
            }
            self.slow_opens.remove(&socket);
        }
        self.server.opens.push(transport);
        let carry = query(url, "carry").unwrap_or_else(|| "all".into());
        self.server.carries.push((transport, carry));
        if self.net.reset_open.contains(&transport) {
            self.reply(Input::SocketFailed {
                socket,
                failure: TransportFailure::network("connection reset"),
            });
            return;
        }
        if self.net.down {
            self.reply(Input::SocketFailed {
                socket,
                failure: TransportFailure::of_kind(self.net.down_kind, "connection refused"),
            });
            return;
        }
        if self.net.blackhole_open.contains(&transport) {
            return;
        }
        if self.net.refuse.contains(&transport) {
            self.socket_failed(
                socket,
                transport,
                TransportFailure::status(403, None, "refused by proxy"),
            );
            return;
        }
        if let Some(after) = self.net.rate_limit_opens {
            self.socket_failed(
                socket,
                transport,
                TransportFailure::status(429, Some(after), "rate limited"),
            );
            return;
        }
        let token = query(url, "token");
        if transport == TransportKind::Sse && self.check_token(token.as_deref()).is_err() {
            self.socket_failed(
                socket,
                transport,
                TransportFailure::status(401, None, "unauthorized"),
            );
            return;
        }
        let buffered = self.net.buffer_frames.contains_key(&transport);
        if !buffered {
            self.reply(Input::SocketOpened { socket });
        }
        let muted =
            self.net.mute.contains(&transport) || self.net.blackhole_streams.contains(&transport);
        self.streams.insert(
            socket,
            Stream {
                kind: transport,
                muted,
                next_heartbeat: self.now + self.server.heartbeat,
                last_activity: self.now,
                held: Vec::new(),
                opened: !buffered,
                carry: query(url, "carry").unwrap_or_else(|| "all".into()),
            },
        );
        if let Err(code) = self.check_token(token.as_deref()) {
            self.frame_to(socket, ServerFrame::Error(bad_token(code)));
            let at = self.now + self.net.latency;
            self.schedule(
                at,
                Pending::Input(Input::SocketClosed {
                    socket,
                    code: Some(4401),
                    reason: "unauthorized".into(),
                }),
            );
            self.streams.remove(&socket);
            return;
        }
        let cursor = query(url, "cursor").map(|c| c.parse().unwrap());
        let (hello, replay) = self.hello(cursor);
        self.frame_to(socket, ServerFrame::Hello(hello));
        for m in replay {
            self.frame_to(socket, ServerFrame::Msg(m));
        }
    }

    fn http(
        &mut self,
        request: RequestId,
        _method: HttpMethod,
        url: &str,
        bearer: Option<String>,
        body: Option<String>,
    ) {
        self.live_requests.insert(request);
        if url.split('?').next().unwrap().ends_with("/v1/poll") && query(url, "hello").is_some() {
            self.server.opens.push(TransportKind::LongPoll);
            let carry = query(url, "carry").unwrap_or_else(|| "all".into());
            self.server.carries.push((TransportKind::LongPoll, carry));
        }
        if self.net.down {
            self.reply(Input::HttpFailed {
                request,
                kind: self.net.down_kind,
                detail: "connection refused".into(),
            });
            return;
        }
        let path = url.split('?').next().unwrap();
        let token = bearer.or_else(|| query(url, "token"));
        let respond = |sim: &mut Sim, status: u16, body: String| {
            sim.reply(Input::HttpResponse {
                request,
                status,
                retry_after: None,
                body,
            });
        };
        if path.ends_with("/v1/poll") {
            if self.net.refuse.contains(&TransportKind::LongPoll) {
                respond(self, 403, r#"{"error":{"code":"forbidden"}}"#.into());
                return;
            }
            if self.net.blackhole_open.contains(&TransportKind::LongPoll) {
                return;
            }
            if let Some(after) = self.net.rate_limit_opens {
                self.reply(Input::HttpResponse {
                    request,
                    status: 429,
                    retry_after: Some(after),
                    body: String::new(),
                });
                return;
            }
            if let Err(code) = self.check_token(token.as_deref()) {
                let body = protocol::encode(&protocol::HttpError {
                    error: bad_token(code),
                });
                respond(self, 401, body);
                return;
            }
            let cursor = query(url, "cursor").map(|c| c.parse().unwrap());
            if query(url, "hello").is_some() {
                let (hello, replay) = self.hello(cursor);
                let mut frames = vec![ServerFrame::Hello(hello)];
                frames.extend(replay.into_iter().map(ServerFrame::Msg));
                respond(self, 200, protocol::encode(&Batch { frames }));
            } else {
                let wait: u64 = query(url, "wait_ms").unwrap().parse().unwrap();
                self.server.follow_up_polls += 1;
                self.server.poll_waits.push(wait);
                let mut hold = Duration::from_millis(wait);
                let gateway = self.net.gateway_timeout.is_some_and(|g| g < hold);
                if let Some(g) = self.net.gateway_timeout {
                    hold = hold.min(g);
                }
                self.polls.push(HeldPoll {
                    request,
                    cursor: cursor.unwrap_or(0),
                    expires: self.now + hold,
                    gateway,
                });
                let held = self
                    .polls
                    .iter()
                    .filter(|p| self.live_requests.contains(&p.request))
                    .count();
                self.server.max_polls_held = self.server.max_polls_held.max(held);
                self.answer_polls(false);
            }
        } else if path.ends_with("/v1/send") {
            if let Err(code) = self.check_token(token.as_deref()) {
                let body = protocol::encode(&protocol::HttpError {
                    error: bad_token(code),
                });
                respond(self, 401, body);
                return;
            }
            let body = body.unwrap();
            let batch = protocol::decode_client_batch(&body).expect("valid batch");
            self.server
                .send_requests
                .push((batch.frames.len(), body.len()));
            if self
                .server
                .max_body_bytes
                .is_some_and(|max| body.len() > max)
            {
                let error = protocol::HttpError {
                    error: ErrorFrame {
                        code: ErrorCode::TooLarge,
                        message: "request body too large".into(),
                        id: None,
                        conv: None,
                        retry_after_ms: None,
                    },
                };
                respond(self, 413, protocol::encode(&error));
                return;
            }
            let mut frames = Vec::new();
            for f in batch.frames {
                if matches!(f, ClientFrame::Typing { .. }) {
                    self.server.typing_over_http += 1;
                }
                frames.extend(self.server_handle(f));
            }
            if self.net.lose_send_answers {
                return;
            }
            respond(self, 200, protocol::encode(&Batch { frames }));
        } else if path.ends_with("/v1/sse") {
            // A plain GET of the event stream's URL: the status it answers with.
            if self.net.reset_open.contains(&TransportKind::Sse) {
                self.reply(Input::HttpFailed {
                    request,
                    kind: FailureKind::Other,
                    detail: "connection reset".into(),
                });
            } else if self.net.blackhole_open.contains(&TransportKind::Sse) {
            } else if self.net.refuse.contains(&TransportKind::Sse) {
                respond(self, 403, "refused by proxy".into());
            } else if let Some(after) = self.net.rate_limit_opens {
                self.reply(Input::HttpResponse {
                    request,
                    status: 429,
                    retry_after: Some(after),
                    body: String::new(),
                });
            } else if let Err(code) = self.check_token(token.as_deref()) {
                let body = protocol::encode(&protocol::HttpError {
                    error: bad_token(code),
                });
                respond(self, 401, body);
            } else {
                respond(self, 200, String::new());
            }
        } else if path.ends_with("/v1/history") {
            let conv = query(url, "conv").unwrap();
            let messages: Vec<Message> = self
                .server
                .messages
                .iter()
                .filter(|m| m.conv == conv)
                .cloned()
                .collect();
            let page = HistoryPage {
                messages,
                next_before: None,
            };
            respond(self, 200, protocol::encode(&page));
        } else {
            respond(self, 404, String::new());
        }
    }

    /// The server's answer to one client frame, with any fan-out.
    fn server_handle(&mut self, frame: ClientFrame) -> Vec<ServerFrame> {
        match frame {
            ClientFrame::Send { id, conv, body } => {
                self.server.received_sends += 1;
                if let Some(after) = self.server.rate_limit_sends {
                    return vec![ServerFrame::Error(ErrorFrame {
                        code: ErrorCode::RateLimited,
                        message: "slow down".into(),
                        id: Some(id),
                        conv: None,
                        retry_after_ms: Some(after.as_millis() as u64),
                    })];
                }
                if !self.server.is_member(USER, &conv) {
                    return vec![ServerFrame::Error(ErrorFrame {
                        code: ErrorCode::Forbidden,
                        message: "not a member".into(),
                        id: Some(id),
                        conv: Some(conv),
                        retry_after_ms: None,
                    })];
                }
                let ts = self.ts();
                let Ok((seq, new)) = self.server.store(USER, &id, &conv, &body, ts) else {
                    return vec![ServerFrame::Error(ErrorFrame {
                        code: ErrorCode::IdReused,
                        message: "id used for another message".into(),
                        id: Some(id),
                        conv: Some(conv),
                        retry_after_ms: None,
                    })];
                };
                if new {
                    self.server.stored_sends += 1;
                    self.fan_out(seq);
                }
                vec![ServerFrame::Ack { id, seq }]
            }
            ClientFrame::Subscribe { conv } => {
                if conv.starts_with("private") {
                    return vec![ServerFrame::Error(ErrorFrame {
                        code: ErrorCode::Forbidden,
                        message: "private".into(),
                        id: None,
                        conv: Some(conv),
                        retry_after_ms: None,
                    })];
                }
                self.server
                    .members
                    .entry(conv.clone())
                    .or_default()
                    .insert(USER.into());
                vec![ServerFrame::Subscribed { conv }]
            }
            ClientFrame::Unsubscribe { conv } => {
                if let Some(m) = self.server.members.get_mut(&conv) {
                    m.remove(USER);
                }
                vec![ServerFrame::Unsubscribed { conv }]
            }
            ClientFrame::Typing { .. } => vec![],
            ClientFrame::Ping { t } => vec![ServerFrame::Pong { t }],
        }
    }

    /// Another user publishes a message.
    pub fn publish(&mut self, conv: &str, body: &str) -> u64 {
        let ts = self.ts();
        let id = format!("peer-{}", self.server.messages.len() + 1);
        let (seq, _) = self
            .server
            .store(PEER, &id, conv, body, ts)
            .expect("peer ids are unique");
        self.fan_out(seq);
        seq
    }

    fn fan_out(&mut self, seq: u64) {
        let m = self.server.messages[(seq - 1) as usize].clone();
        if !self.server.is_member(USER, &m.conv) {
            return;
        }
        let sockets: Vec<SocketId> = self.streams.keys().copied().collect();
        for s in sockets {
            self.frame_to(s, ServerFrame::Msg(m.clone()));
        }
        self.answer_polls(false);
    }

    fn answer_polls(&mut self, expired_only: bool) {
        let now = self.now;
        let polls = std::mem::take(&mut self.polls);
        for p in polls {
            let pending = self.server.after(p.cursor);
            if (!pending.is_empty() && !expired_only) || p.expires <= now {
                if !self.live_requests.contains(&p.request) {
                    continue;
                }
                if self
                    .net
                    .blackhole_streams
                    .contains(&TransportKind::LongPoll)
                {
                    continue;
                }
                if p.gateway && pending.is_empty() {
                    self.server.gateway_timeouts += 1;
                    self.reply(Input::HttpResponse {
                        request: p.request,
                        status: 504,
                        retry_after: None,
                        body: "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't \
                               respond in time.\n</body></html>\n"
                            .into(),
                    });
                    continue;
                }
                let frames: Vec<ServerFrame> = pending
                    .into_iter()
                    .take(protocol::MAX_FRAMES_PER_REQUEST)
                    .map(ServerFrame::Msg)
                    .collect();
                if !frames.is_empty() {
                    self.server.non_empty_polls += 1;
                }
                self.reply(Input::HttpResponse {
                    request: p.request,
                    status: 200,
                    retry_after: None,
                    body: protocol::encode(&Batch { frames }),
                });
            } else {
                self.polls.push(p);
            }
        }
    }

    /// The server sends an ephemeral frame (presence, typing) on every open stream.
    pub fn broadcast(&mut self, frame: ServerFrame) {
        let sockets: Vec<SocketId> = self.streams.keys().copied().collect();
        for socket in sockets {
            self.frame_to(socket, frame.clone());
        }
    }

    /// The server drops every live connection (streams end, held polls fail).
    pub fn drop_all(&mut self) {
        let sockets: Vec<SocketId> = self.streams.keys().copied().collect();
        for socket in sockets {
            self.streams.remove(&socket);
            self.reply(Input::SocketClosed {
                socket,
                code: Some(1006),
                reason: "dropped".into(),
            });
        }
        for p in std::mem::take(&mut self.polls) {
            self.reply(Input::HttpFailed {
                request: p.request,
                kind: FailureKind::Other,
                detail: "connection reset".into(),
            });
        }
    }

    /// The server says `going_away` on every stream, then closes it.
    pub fn going_away(&mut self, window: Duration) {
        let sockets: Vec<SocketId> = self.streams.keys().copied().collect();
        for socket in sockets {
            self.frame_to(
                socket,
                ServerFrame::Error(ErrorFrame {
                    code: ErrorCode::GoingAway,
                    message: "restarting".into(),
                    id: None,
                    conv: None,
                    retry_after_ms: Some(window.as_millis() as u64),
                }),
            );
            self.streams.remove(&socket);
            let at = self.now + self.net.latency;
            self.schedule(
                at,
                Pending::Input(Input::SocketClosed {
                    socket,
                    code: Some(1012),
                    reason: "going away".into(),
                }),
            );
        }
    }

    // ----- running -------------------------------------------------------------------------

    fn kill_black_holed_streams(&mut self) {
        for (socket, stream) in &self.streams {
            if self.net.blackhole_streams.contains(&stream.kind) {
                self.dead.insert(*socket);
            }
        }
    }

    /// Drains the session's actions and events.
    pub fn drain(&mut self) {
        self.kill_black_holed_streams();
        for _ in 0..10_000 {
            let mut progressed = false;
            while let Some(action) = self.session.poll_action() {
                progressed = true;
                self.carry_out(action);
            }
            while let Some(event) = self.session.poll_event() {
                progressed = true;
                if let Event::Message(m) = &event {
                    self.delivered.push(m.clone());
                }
                self.record("evt", &event);
                self.events.push((self.now, event));
            }
            if !progressed {
                break;
            }
        }
        self.check_invariants();
    }

    /// The streams open at the server: transport and `carry`, in the order they were opened.
    pub fn open_streams(&self) -> Vec<(TransportKind, String)> {
        self.streams
            .values()
            .map(|s| (s.kind, s.carry.clone()))
            .collect()
    }

    fn check_invariants(&self) {
        if let Some((kind, _)) = self.session.ephemeral() {
            assert_eq!(kind, TransportKind::WebSocket, "the ephemeral link");
        }
        if self.session.config().strategy == Strategy::Hybrid {
            assert!(
                self.session
                    .links()
                    .iter()
                    .all(|(kind, _)| *kind != TransportKind::WebSocket),
                "messages on a WebSocket under the hybrid strategy"
            );
        }
        let links = self.session.links();
        assert!(links.len() <= 2, "more than two links: {links:?}");
        assert!(
            links.iter().filter(|(_, live)| *live).count() <= 1,
            "more than one live link: {links:?}"
        );
    }

    fn next_wake(&self) -> Option<Instant> {
        let mut t = self.session.poll_timeout();
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t: Instant| t.min(x)));
            }
        };
        consider(self.queue.keys().next().map(|(t, _)| *t));
        consider(self.polls.iter().map(|p| p.expires).min());
        if !self.net.no_heartbeats {
            consider(self.streams.values().map(|s| s.next_heartbeat).min());
        }
        if let Some(cut) = self.net.ws_idle_cut {
            consider(
                self.streams
                    .values()
                    .filter(|s| s.kind == TransportKind::WebSocket)
                    .map(|s| s.last_activity + cut)
                    .min(),
            );
        }
        t
    }

    /// Advances to the next thing that happens (a delivery, a timer, a heartbeat) and handles it.
    /// Returns false when nothing at all is scheduled.
    pub fn step(&mut self, limit: Instant) -> bool {
        self.steps += 1;
        assert!(self.steps < 2_000_000, "the simulation does not settle");
        self.drain();
        let Some(next) = self.next_wake() else {
            return false;
        };
        if next > limit {
            self.now = limit;
            return false;
        }
        // After a freeze, deliveries that were due during it are handled now.
        self.now = next.max(self.now);
        self.kill_black_holed_streams();
        // Deliveries due now.
        while let Some((&(at, k), _)) = self.queue.iter().next() {
            if at > self.now {
                break;
            }
            let p = self.queue.remove(&(at, k)).unwrap();
            match p {
                Pending::Input(input) => self.feed(input),
                Pending::Open(socket, kind, url) => {
                    if self.slow_opens.contains(&socket) {
                        self.open_socket(socket, kind, &url);
                    }
                }
                Pending::Frame(socket, _kind, frame) => {
                    if self.dead.contains(&socket) {
                        continue;
                    }
                    let text = protocol::encode(&frame);
                    self.feed(Input::SocketText { socket, text });
                }
            }
            self.drain();
        }
        // Server heartbeats and poll expiry.
        if !self.net.no_heartbeats {
            let due: Vec<SocketId> = self
                .streams
                .iter()
                .filter(|(_, s)| s.next_heartbeat <= self.now)
                .map(|(id, _)| *id)
                .collect();
            for socket in due {
                let hb = self.server.heartbeat;
                if let Some(s) = self.streams.get_mut(&socket) {
                    s.next_heartbeat = self.now + hb;
                }
                self.frame_to(socket, ServerFrame::Heartbeat);
            }
        }
        self.answer_polls(true);
        if let Some(cut) = self.net.ws_idle_cut {
            let idle: Vec<SocketId> = self
                .streams
                .iter()
                .filter(|(_, s)| {
                    s.kind == TransportKind::WebSocket && s.last_activity + cut <= self.now
                })
                .map(|(id, _)| *id)
                .collect();
            for socket in idle {
                self.streams.remove(&socket);
                self.server.idle_cuts += 1;
                self.reply(Input::SocketClosed {
                    socket,
                    code: Some(1006),
                    reason: "idle timeout".into(),
                });
            }
        }
        // Timers.
        if self.session.poll_timeout().is_some_and(|t| t <= self.now) {
            self.record(
                "timeout",
                &self.session.poll_timeout().map(|t| t - self.start),
            );
            self.session.handle_timeout(self.now);
            if let Some(t) = self.session.poll_timeout() {
                assert!(
                    t > self.now,
                    "poll_timeout {:?} is not after the time just handled ({:?})",
                    t - self.start,
                    self.now - self.start
                );
            }
        }
        self.drain();
        true
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        while self.now < limit {
            if !self.step(limit) {
                self.now = limit;
                break;
            }
        }
    }

    /// Runs until `pred` holds, at most `max` of simulated time. Returns the time it took.
    pub fn run_until(&mut self, max: Duration, mut pred: impl FnMut(&Sim) -> bool) -> Duration {
        let start = self.now;
        let limit = self.now + max;
        while !pred(self) {
            assert!(
                self.now < limit,
                "condition not reached within {max:?}; state {:?}; last events {:#?}",
                self.session.state(),
                self.events.iter().rev().take(8).collect::<Vec<_>>()
            );
            self.step(limit);
        }
        self.now - start
    }

    /// Jumps the clock without firing anything, as a frozen tab or a sleeping laptop sees it.
    pub fn freeze_for(&mut self, d: Duration) {
        self.record("freeze", &d);
        self.now += d;
    }

    pub fn connect(&mut self) {
        self.record("app", &"connect");
        let now = self.now;
        self.session.connect(now);
        self.drain();
    }

    pub fn send(&mut self, conv: &str, body: &str) -> MsgId {
        self.try_send(conv, body).expect("send accepted")
    }

    /// `Session::send` with fresh random id bytes, as a driver calls it.
    pub fn try_send(&mut self, conv: &str, body: &str) -> Result<MsgId, SendError> {
        let random = self.random_id();
        self.send_with_random(conv, body, random)
    }

    /// `Session::send` with the given id bytes.
    pub fn send_with_random(
        &mut self,
        conv: &str,
        body: &str,
        random: [u8; 16],
    ) -> Result<MsgId, SendError> {
        self.record("app", &("send", conv, body));
        let now = self.now;
        let id = self.session.send(now, conv, body, random);
        self.drain();
        id
    }

    /// 16 random bytes for a message id.
    pub fn random_id(&mut self) -> [u8; 16] {
        self.id_rng.random()
    }

    pub fn subscribe(&mut self, conv: &str) {
        self.record("app", &("subscribe", conv));
        let now = self.now;
        self.session.subscribe(now, conv).unwrap();
        self.drain();
    }

    pub fn input(&mut self, input: Input) {
        self.feed(input);
        self.drain();
    }

    pub fn is_connected_on(&self, kind: TransportKind) -> bool {
        matches!(self.session.state(), State::Connected { transport, .. } if *transport == kind)
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.session.state(), State::Connected { .. })
    }

    /// The states the session went through, as short names with transports.
    pub fn state_trail(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::StateChanged { to, .. } => Some(match to {
                    State::Connected { transport, .. } => format!("connected:{transport}"),
                    State::Connecting { transport, .. } => format!("connecting:{transport}"),
                    other => other.name().to_string(),
                }),
                _ => None,
            })
            .collect()
    }

    pub fn acked(&self) -> Vec<(lifeline_core::MsgId, u64)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Acked { id, seq } => Some((id.clone(), *seq)),
                _ => None,
            })
            .collect()
    }

    pub fn count_events(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| f(e)).count()
    }

    /// Sequence numbers delivered, checked to be strictly increasing (exactly once, in order).
    pub fn assert_delivered_exactly_once_in_order(&self) {
        for w in self.delivered.windows(2) {
            assert!(
                w[0].seq < w[1].seq,
                "delivered out of order or twice: {} then {}",
                w[0].seq,
                w[1].seq
            );
        }
    }

    /// Every message the server holds for the user's conversations after `from` was delivered,
    /// except those inside an announced discontinuity.
    pub fn assert_nothing_lost_after(&self, from: u64) {
        let gaps: Vec<(u64, u64)> = self
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Discontinuity {
                    last_seen,
                    resumed_after,
                } => Some((*last_seen, *resumed_after)),
                _ => None,
            })
            .collect();
        let delivered: HashSet<u64> = self.delivered.iter().map(|m| m.seq).collect();
        for m in &self.server.messages {
            if m.seq <= from || !self.server.is_member(USER, &m.conv) {
                continue;
            }
            let in_gap = gaps.iter().any(|(a, b)| m.seq > *a && m.seq <= *b);
            assert!(
                delivered.contains(&m.seq) || in_gap,
                "message {} ({}) was never delivered; delivered {:?}",
                m.seq,
                m.body,
                self.delivered.iter().map(|m| m.seq).collect::<Vec<_>>()
            );
        }
    }
}
