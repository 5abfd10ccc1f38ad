//! The session: the one state machine that keeps an application connected. It is a dispatcher:
//! each input, application call and timer goes to the concern it belongs to, and each concern
//! owns its state and its decisions in a module of its own (`sdk-core/src/<name>.rs`; the
//! session's side of each in `session/<name>.rs`):
//!
//! | concern | rules and state | the session's side |
//! |---|---|---|
//! | deadlines | `timer` (one table, one `poll_timeout`) | `next_timer`, `fire` here |
//! | is a link alive? | `liveness` (silence, freezes, checks, pings, held-back SSE) | `verify_active`, `send_ping` here |
//! | attempts, racing, probing, failures | `ladder` (rungs), `probe` (which rung, when) | `connect` |
//! | when to retry | `retry` (backoff, limits, hints, resets) | `connect::schedule_retry` |
//! | the send pipe | `outbox`, `batch` | `send` |
//! | long polling | `keepalive` (poll wait) | `poll` |
//! | the stream's position | `resume` (cursor, delivery, resume point) | `frames` |
//! | tokens | `credentials` | `auth` |
//!
//! It is sans-IO: facts come in through `handle_input` and `handle_timeout`, requests from the
//! application through `send`, `subscribe`, `close` and friends, and everything the session wants
//! done or said comes out of `poll_action`, `poll_event` and `poll_timeout`. It reads no clock,
//! opens nothing and never blocks. The run loop a driver follows:
//!
//! 1. Call `handle_*` (or an application method) with the current time.
//! 2. Drain `poll_action` (carry each out) and `poll_event` (hand each to the application).
//! 3. Sleep until `poll_timeout`, or until the next input, whichever comes first; on waking at the
//!    deadline call `handle_timeout(now)`. Go to 2.

use crate::batch::BatchLimits;
use crate::config::Config;
use crate::credentials::{Credentials, Rejection};
use crate::event::{Event, HistoryError, MsgId, SendError, SendFailure};
use crate::hybrid::{ephemeral_slot, Carry, EphemeralSlot};
use crate::io::{Action, FailureKind, HttpMethod, Input, TransportFailure};
use crate::keepalive::KeepAlive;
use crate::ladder::{FailureWeight, Ladder};
use crate::link::{Link, Phase, PollRequest, SendRequest};
use crate::liveness::Silence;
use crate::outbox::{Outbox, Pending};
use crate::probe::Probing;
use crate::protocol::{
    self, Batch, ClientFrame, ErrorCode, ErrorFrame, FrameDecoder, Hello, Message, OwnJson, Seq,
    ServerFrame, PROTOCOL_VERSION,
};
use crate::resume::Resume;
use crate::retry::{DelayHint, Retries};
use crate::state::{Cause, State};
use crate::text;
use crate::time::Instant;
use crate::timer::{TimerReason, Timers};
use crate::transport::{RequestId, SocketId, SocketKind, TransportKind};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::collections::VecDeque;
use std::time::Duration;

/// How long to wait before retrying an HTTP send batch that failed.
const SEND_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The most timers one `handle_timeout` call fires; a guard against a busy loop.
const MAX_TIMERS_PER_CALL: usize = 256;

mod auth;
mod connect;
mod frames;
mod hybrid;
mod poll;
mod send;

use connect::held_back;

/// A due timer: what it is for and, for a link's timer, which link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timer {
    reason: TimerReason,
    link: Option<u64>,
}

/// What an HTTP request the session started is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Poll {
        link: u64,
    },
    Send {
        link: u64,
    },
    /// The status of an SSE stream that failed without one.
    SseStatus {
        link: u64,
    },
    History,
}

/// The HTTP requests in flight and what each is for, oldest first (ids only grow). Only a few at a
/// time: a list is far less code in the browser bundle than a hash map, and keeps the order in
/// which `finish` reports them.
#[derive(Debug, Default)]
struct Requests(Vec<(RequestId, Purpose)>);

impl Requests {
    fn insert(&mut self, request: RequestId, purpose: Purpose) {
        self.0.push((request, purpose));
    }

    fn remove(&mut self, request: &RequestId) -> Option<Purpose> {
        let i = self.0.iter().position(|(r, _)| r == request)?;
        Some(self.0.remove(i).1)
    }
}

/// Conversation ids in sorted order, without repeats: the `BTreeSet` interface the session needs,
/// on a sorted list (a handful of entries; no B-tree code in the browser bundle).
#[derive(Debug, Default)]
struct ConvSet(Vec<String>);

impl ConvSet {
    /// Adds `conv`; false if it was there already.
    fn insert(&mut self, conv: &str) -> bool {
        match self.0.binary_search_by(|c| c.as_str().cmp(conv)) {
            Ok(_) => false,
            Err(i) => {
                self.0.insert(i, conv.to_string());
                true
            }
        }
    }

    /// Removes `conv`; false if it was not there.
    fn remove(&mut self, conv: &str) -> bool {
        match self.0.binary_search_by(|c| c.as_str().cmp(conv)) {
            Ok(i) => {
                self.0.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    fn contains(&self, conv: &str) -> bool {
        self.0.binary_search_by(|c| c.as_str().cmp(conv)).is_ok()
    }

    fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }
}

/// The connection state machine. See the module documentation for the run loop.
///
/// `D` reads the JSON the session receives: [`OwnJson`] (this crate's reader, [`Session::new`])
/// unless the driver brings the platform's ([`Session::with_decoder`]).
#[derive(Debug)]
pub struct Session<D = OwnJson> {
    /// Reads frames, poll and send responses, history pages and HTTP error bodies.
    decoder: D,
    config: Config,
    rng: SmallRng,
    ladder: Ladder,
    retries: Retries,
    probing: Probing,
    keepalive: KeepAlive,
    creds: Credentials,
    outbox: Outbox,
    state: State,
    events: VecDeque<Event>,
    actions: VecDeque<Action>,
    links: Vec<Link>,
    active: Option<u64>,
    next_id: u64,
    batch_limits: BatchLimits,
    resume: Resume,
    subscriptions: ConvSet,
    unsubscriptions: ConvSet,
    pending_ops: Vec<ClientFrame>,
    requests: Requests,
    /// The session-wide deadlines (see [`crate::timer`]).
    timers: Timers,
    online: bool,
    ping_counter: u64,
    last_timeout_reason: Option<TimerReason>,
    /// The ephemeral WebSocket of the hybrid strategy (`None` under the single strategy).
    hybrid: EphemeralSlot,
}

fn at_least_1ms(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

impl Session {
    /// A new session in state `idle`, reading JSON with this crate's reader. Nothing happens
    /// until [`Session::connect`].
    pub fn new(config: Config, now: Instant) -> Self {
        Session::with_decoder(config, now, OwnJson)
    }
}

impl<D: FrameDecoder> Session<D> {
    /// [`Session::new`] with another reader of the JSON the session receives (the browser's
    /// `JSON.parse`, in lifeline-wasm).
    pub fn with_decoder(mut config: Config, _now: Instant, decoder: D) -> Self {
        for d in [
            &mut config.connect_timeout,
            &mut config.first_frame_timeout,
            &mut config.race_after,
            &mut config.first_visit_race_after,
            &mut config.ping_interval,
            &mut config.liveness_timeout,
            &mut config.verify_grace,
            &mut config.poll_wait,
            &mut config.send_timeout,
            &mut config.stable_after,
        ] {
            *d = at_least_1ms(*d);
        }
        let rng = SmallRng::seed_from_u64(config.seed);
        let ladder = Ladder::new(
            config.ladder(),
            config.initial_transport,
            config.step_down_after,
        );
        let hybrid = ephemeral_slot(&config);
        Session {
            decoder,
            hybrid,
            retries: Retries::new(&config),
            probing: Probing::new(config.probe_backoff),
            keepalive: KeepAlive::new(config.poll_wait),
            creds: Credentials::new(config.token.clone(), config.token_provider),
            outbox: Outbox::new(config.outbox_max_messages, config.outbox_max_bytes),
            rng,
            ladder,
            config,
            state: State::Idle,
            events: VecDeque::new(),
            actions: VecDeque::new(),
            links: Vec::new(),
            active: None,
            next_id: 1,
            batch_limits: BatchLimits::default(),
            resume: Resume::new(),
            subscriptions: ConvSet::default(),
            unsubscriptions: ConvSet::default(),
            pending_ops: Vec::new(),
            requests: Requests::default(),
            timers: Timers::default(),
            online: true,
            ping_counter: 0,
            last_timeout_reason: None,
        }
    }

    // ----- getters -------------------------------------------------------------------------

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The highest sequence number delivered to the application.
    pub fn cursor(&self) -> Option<Seq> {
        self.resume.cursor()
    }

    /// The transport carrying the session now, if any.
    pub fn transport(&self) -> Option<TransportKind> {
        self.active_link().map(|l| l.kind)
    }

    /// The rung that last delivered the server's `hello`, for a driver to remember per endpoint.
    pub fn last_worked_transport(&self) -> Option<TransportKind> {
        self.ladder.last_worked()
    }

    /// Messages accepted but not yet acknowledged.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// The conversations this session subscribes to.
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> {
        self.subscriptions.iter().map(String::as_str)
    }

    /// The transports currently opening or open, with whether each is the live one. At most one is
    /// live, plus at most one other (a racing attempt or a probe).
    pub fn links(&self) -> Vec<(TransportKind, bool)> {
        self.links
            .iter()
            .map(|l| (l.kind, Some(l.id) == self.active))
            .collect()
    }

    /// The hybrid strategy's ephemeral WebSocket (presence and typing), if one is opening
    /// (`false`) or live (`true`). Always `None` under the single strategy.
    pub fn ephemeral(&self) -> Option<(TransportKind, bool)> {
        let link = self.hybrid.as_ref()?.link.as_ref()?;
        Some((link.kind, link.is_live()))
    }

    /// What the last `handle_timeout` fired for ("why did it wake?").
    pub fn last_timeout_reason(&self) -> Option<TimerReason> {
        self.last_timeout_reason
    }

    // ----- poll_* --------------------------------------------------------------------------

    /// The next thing for the driver to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next thing to tell the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call `handle_timeout` next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(t, _)| t)
    }

    // ----- application calls ---------------------------------------------------------------

    /// Starts connecting. Does nothing unless the session is idle.
    pub fn connect(&mut self, now: Instant) {
        if self.state == State::Idle {
            self.start_attempt(now, Cause::AppConnect);
            self.open_ephemeral(now);
        }
    }

    /// Queues a message for `conv`. It is transmitted when a transport is live, retransmitted after
    /// every reconnect until acknowledged, and resolves with `Event::Acked` or `Event::SendFailed`.
    ///
    /// `random` makes the message's id ([`MsgId::from_random`]): 16 bytes the driver takes from
    /// the operating system's random number generator for every send (tests pass bytes from a
    /// seeded generator). They must never repeat: the server refuses a reused id (`id_reused`).
    pub fn send(
        &mut self,
        now: Instant,
        conv: &str,
        body: &str,
        random: [u8; 16],
    ) -> Result<MsgId, SendError> {
        if self.state.is_final() || self.timers.is_set(TimerReason::Drain) {
            return Err(SendError::Closed);
        }
        validate_conv(conv)?;
        if body.len() > protocol::MAX_BODY_BYTES {
            return Err(SendError::TooLarge {
                len: body.len(),
                max: protocol::MAX_BODY_BYTES,
            });
        }
        let id = MsgId::from_random(random);
        self.outbox.push(Pending {
            id: id.clone(),
            conv: conv.to_string(),
            body: body.to_string(),
            deadline: now + self.config.send_timeout,
            sent_on: None,
            not_before: None,
        })?;
        self.flush(now);
        Ok(id)
    }

    /// Subscribes to `conv` (joining it). The subscription is re-asserted on every new transport.
    pub fn subscribe(&mut self, now: Instant, conv: &str) -> Result<(), SendError> {
        self.check_open()?;
        validate_conv(conv)?;
        self.unsubscriptions.remove(conv);
        if self.subscriptions.insert(conv) {
            self.transmit_op(
                now,
                ClientFrame::Subscribe {
                    conv: conv.to_string(),
                },
            );
        }
        Ok(())
    }

    /// Unsubscribes from `conv` (leaving it).
    pub fn unsubscribe(&mut self, now: Instant, conv: &str) -> Result<(), SendError> {
        self.check_open()?;
        validate_conv(conv)?;
        self.subscriptions.remove(conv);
        self.unsubscriptions.insert(conv);
        self.transmit_op(
            now,
            ClientFrame::Unsubscribe {
                conv: conv.to_string(),
            },
        );
        Ok(())
    }

    /// Tells the members of `conv` that the user is typing. Ephemeral: refused while no transport
    /// is live, never queued, never retransmitted.
    pub fn typing(&mut self, now: Instant, conv: &str) -> Result<(), SendError> {
        self.check_open()?;
        validate_conv(conv)?;
        let frame = ClientFrame::Typing {
            conv: conv.to_string(),
        };
        if let Some(socket) = self.ephemeral_socket() {
            let text = protocol::encode(&frame);
            self.actions.push_back(Action::SendText { socket, text });
            return Ok(());
        }
        if self.active_link().is_none() {
            return Err(SendError::NotConnected);
        }
        self.transmit_op(now, frame);
        Ok(())
    }

    /// Asks for a page of `conv`'s history: the newest `limit` messages before `before`. The answer
    /// comes as `Event::History` with the returned id.
    pub fn history(
        &mut self,
        _now: Instant,
        conv: &str,
        before: Option<Seq>,
        limit: u32,
    ) -> Result<RequestId, SendError> {
        self.check_open()?;
        validate_conv(conv)?;
        let request = RequestId(self.fresh_id());
        self.requests.insert(request, Purpose::History);
        self.actions.push_back(Action::Http {
            request,
            method: HttpMethod::Get,
            url: self
                .config
                .endpoint
                .history_url(conv, before, limit.clamp(1, 100)),
            bearer: self.creds.token().map(str::to_string),
            body: None,
        });
        Ok(request)
    }

    /// Closes at once. Unacknowledged sends fail with `SendFailure::Closed`.
    pub fn close(&mut self, now: Instant) {
        self.finish(now, State::Closed, Cause::AppClose);
    }

    /// Refuses new sends, waits up to `timeout` for the outbox to be acknowledged, then closes.
    pub fn close_gracefully(&mut self, now: Instant, timeout: Duration) {
        if self.state.is_final() {
            return;
        }
        if self.outbox.is_empty() {
            self.close(now);
        } else {
            self.timers.set(TimerReason::Drain, Some(now + timeout));
        }
    }

    // ----- handle_* ------------------------------------------------------------------------

    /// Reports a fact from the driver.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        if self.state.is_final() {
            return;
        }
        match input {
            Input::SocketOpened { socket } => self.on_socket_opened(now, socket),
            Input::SocketText { socket, text } => self.on_socket_text(now, socket, &text),
            Input::SocketBinary { socket, len } => self.on_socket_binary(now, socket, len),
            Input::SocketRetryHint { socket, delay } => {
                if let Some(link) = self.link_by_socket_mut(socket) {
                    link.retry_hint = Some(delay);
                }
            }
            Input::SocketClosed {
                socket,
                code,
                reason,
            } => self.on_socket_closed(now, socket, code, &reason),
            Input::SocketFailed { socket, failure } => {
                if let Some(id) = self.link_by_socket(socket).map(|l| l.id) {
                    self.on_transport_failure(now, id, failure);
                }
            }
            Input::HttpResponse {
                request,
                status,
                retry_after,
                body,
            } => self.on_http_response(now, request, status, retry_after, &body),
            Input::HttpFailed {
                request,
                kind,
                detail,
            } => self.on_http_failed(now, request, kind, detail),
            Input::Token(result) => self.on_token(now, result),
            Input::Network { online } => self.on_network(now, online),
            Input::Visibility { visible } => {
                if visible {
                    let quiet_for = self.config.ping_interval;
                    self.verify_active(now, quiet_for);
                }
            }
            Input::Resumed => self.on_resumed(now),
        }
    }

    // ----- sockets -------------------------------------------------------------------------

    fn on_socket_opened(&mut self, now: Instant, socket: SocketId) {
        if let Some(link) = self.link_by_socket_mut(socket) {
            if matches!(link.phase, Phase::Opening) {
                link.phase = Phase::AwaitingHello { opened_at: now };
                link.liveness.opened(now);
            }
        }
    }

    fn on_socket_text(&mut self, now: Instant, socket: SocketId, text: &str) {
        let Some(link) = self.link_by_socket_mut(socket) else {
            return;
        };
        if link.is_live() && link.liveness.held_back(now) {
            // Alive, yet silent for longer than the server ever is: frames are being held
            // back on the way (a buffering proxy). This rung cannot be trusted here; the
            // frame is replayed on the next link.
            let id = link.id;
            self.link_failed(now, id, held_back(), FailureWeight::Definitive, None);
            return;
        }
        link.liveness.heard(now);
        let (id, kind) = (link.id, link.kind);
        match self.decoder.server_frame(text) {
            Ok(frame) => self.on_frame(now, id, frame),
            Err(error) => self.events.push_back(Event::BadFrame {
                transport: kind,
                error,
            }),
        }
    }

    fn on_socket_binary(&mut self, now: Instant, socket: SocketId, len: usize) {
        let Some(link) = self.link_by_socket_mut(socket) else {
            return;
        };
        link.liveness.heard(now);
        let kind = link.kind;
        self.events.push_back(Event::BadFrame {
            transport: kind,
            error: protocol::FrameError::Malformed {
                detail: text!("a binary message of ", len, " bytes"),
            },
        });
    }

    fn on_socket_closed(
        &mut self,
        now: Instant,
        socket: SocketId,
        code: Option<u16>,
        reason: &str,
    ) {
        let Some(link) = self.link_by_socket(socket) else {
            return;
        };
        let (id, kind) = (link.id, link.kind);
        if code == Some(4401) {
            self.auth_rejected(now, text!(kind, " closed with 4401: ", reason));
            return;
        }
        let detail = match code {
            Some(code) => text!("closed with code ", code, ": ", reason),
            None => text!("closed: ", reason),
        };
        self.link_failed(
            now,
            id,
            self.loss_cause(id, detail),
            FailureWeight::Ordinary,
            None,
        );
    }

    // ----- HTTP answers --------------------------------------------------------------------

    fn on_http_response(
        &mut self,
        now: Instant,
        request: RequestId,
        status: u16,
        retry_after: Option<Duration>,
        body: &str,
    ) {
        match self.requests.remove(&request) {
            Some(Purpose::Poll { link }) => {
                self.on_poll_response(now, link, status, retry_after, body)
            }
            Some(Purpose::Send { link }) => {
                self.on_send_response(now, link, status, retry_after, body)
            }
            Some(Purpose::SseStatus { link }) => {
                let failure = if status == 200 {
                    TransportFailure::network("the event stream could not be opened")
                } else {
                    TransportFailure::status(
                        status,
                        retry_after,
                        http_detail(&self.decoder, status, body),
                    )
                };
                self.on_transport_failure(now, link, failure)
            }
            Some(Purpose::History) => self.on_history_response(request, status, body),
            None => {}
        }
    }

    fn on_http_failed(
        &mut self,
        now: Instant,
        request: RequestId,
        kind: FailureKind,
        detail: String,
    ) {
        match self.requests.remove(&request) {
            Some(Purpose::Poll { link } | Purpose::SseStatus { link }) => {
                self.on_transport_failure(now, link, TransportFailure::of_kind(kind, detail))
            }
            // A certificate refused here would have failed the link's own open first.
            Some(Purpose::Send { link }) => self.send_batch_failed(now, link, None),
            Some(Purpose::History) => self.events.push_back(Event::History {
                request,
                result: Err(HistoryError::Network { detail }),
            }),
            None => {}
        }
    }

    // ----- the platform --------------------------------------------------------------------

    fn on_network(&mut self, now: Instant, online: bool) {
        self.online = online;
        if online {
            if self.links.is_empty()
                && matches!(self.state, State::Reconnecting { .. })
                && !self.creds.is_fetching()
            {
                self.start_attempt(now, Cause::Online);
            } else {
                self.verify_active(now, Duration::ZERO);
            }
        } else if let State::Reconnecting { attempt, .. } = self.state {
            // `attempt` already names the next try.
            self.timers.clear(TimerReason::Retry);
            self.set_state(
                State::Reconnecting {
                    attempt,
                    next_attempt_at: None,
                    last_error: Some(Cause::Offline),
                },
                Cause::Offline,
            );
        } else {
            self.verify_active(now, Duration::ZERO);
        }
    }

    /// The platform says the process or page was frozen or asleep: check the live link at once,
    /// and retry now rather than at a deadline that passed while asleep.
    fn on_resumed(&mut self, now: Instant) {
        self.verify_active(now, Duration::from_secs(1));
        if self.timers.is_set(TimerReason::Retry) {
            self.timers.clear(TimerReason::Retry);
            self.start_attempt(now, Cause::Resumed);
        }
    }

    /// Fires every timer that is due at `now`. Calling it early is harmless. Afterwards
    /// `poll_timeout()` is `None` or later than `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for _ in 0..MAX_TIMERS_PER_CALL {
            let Some((at, timer)) = self.next_timer() else {
                return;
            };
            if at > now {
                return;
            }
            self.last_timeout_reason = Some(timer.reason);
            self.fire(now, at, timer);
        }
    }

    // ----- timers --------------------------------------------------------------------------

    /// The next timer to fire: the earliest session-wide one, then each link's, the first of
    /// equal deadlines winning.
    fn next_timer(&self) -> Option<(Instant, Timer)> {
        let outbox_release = self.active_link().and_then(|link| {
            let can_transmit = link.kind == TransportKind::WebSocket
                || (link.send.is_none() && link.send_retry_at.is_none());
            can_transmit.then(|| self.outbox.next_release()).flatten()
        });
        let derived = |reason| match reason {
            TimerReason::SendTimeout => self.outbox.next_deadline(),
            TimerReason::OutboxRelease => outbox_release,
            _ => None,
        };
        let mut best = self
            .timers
            .earliest(&derived)
            .map(|(at, reason)| (at, Timer { reason, link: None }));
        for link in self.links.iter().chain(self.ephemeral_link()) {
            if let Some((at, reason)) =
                link.next_timer(self.config.connect_timeout, self.config.first_frame_timeout)
            {
                if best.is_none_or(|(b, _)| at < b) {
                    let link = Some(link.id);
                    best = Some((at, Timer { reason, link }));
                }
            }
        }
        best
    }

    fn fire(&mut self, now: Instant, at: Instant, timer: Timer) {
        if let Some(id) = timer.link {
            self.fire_link(now, at, id, timer.reason);
            return;
        }
        self.timers.clear(timer.reason);
        match timer.reason {
            TimerReason::Retry => self.start_attempt(now, Cause::RetryDue),
            TimerReason::Race => self.start_race(now),
            TimerReason::Probe => self.start_probe(now),
            TimerReason::Stable => self.forget_failures(),
            TimerReason::SendTimeout => {
                for entry in self.outbox.take_expired(now) {
                    self.events.push_back(Event::SendFailed {
                        id: entry.id,
                        failure: SendFailure::Timeout,
                    });
                }
                self.check_drained(now);
            }
            TimerReason::OutboxRelease => self.flush(now),
            TimerReason::Drain => self.close(now),
            TimerReason::Unreachable => self.give_up_unreachable_attempt(now),
            TimerReason::EphemeralRetry => self.open_ephemeral(now),
            _ => {}
        }
    }

    fn fire_link(&mut self, now: Instant, at: Instant, id: u64, timer: TimerReason) {
        let Some(link) = self.link(id) else {
            return;
        };
        let kind = link.kind;
        match timer {
            TimerReason::Connect => self.link_failed(
                now,
                id,
                Cause::ConnectTimeout { transport: kind },
                FailureWeight::Ordinary,
                None,
            ),
            TimerReason::FirstFrame => self.link_failed(
                now,
                id,
                Cause::FirstFrameTimeout { transport: kind },
                FailureWeight::Definitive,
                None,
            ),
            TimerReason::Silence => match link.liveness.on_silence_deadline(now, at) {
                Silence::Check => self.start_verify(now, id),
                Silence::Dead => self.link_failed(
                    now,
                    id,
                    Cause::HeartbeatTimeout { transport: kind },
                    FailureWeight::Ordinary,
                    None,
                ),
            },
            TimerReason::Ping => self.send_ping(now, id),
            TimerReason::Proof => {
                self.link_failed(now, id, held_back(), FailureWeight::Neutral, None)
            }
            TimerReason::Proven => {
                // Proven prompt: a fresh probe (from the current cursor, so the switch is
                // lossless) moves the session there as soon as it says hello.
                self.drop_link(id);
                self.probing.proven(kind);
                self.timers.set(TimerReason::Probe, Some(now));
            }
            TimerReason::SendRetry => {
                if let Some(link) = self.link_mut(id) {
                    link.send_retry_at = None;
                }
                self.flush(now);
            }
            TimerReason::SendDeadline => self.send_deadline_passed(now, id),
            _ => {}
        }
    }

    // ----- liveness checks (the rules are crate::liveness's) --------------------------------

    fn send_ping(&mut self, now: Instant, id: u64) {
        self.ping_counter += 1;
        let t = self.ping_counter;
        let Some(link) = self.link_mut(id) else {
            return;
        };
        link.liveness.pinged(t, now);
        if let Some(socket) = link.socket {
            self.actions.push_back(Action::SendText {
                socket,
                text: protocol::encode(&ClientFrame::Ping { t }),
            });
        }
    }

    /// Starts a liveness check of the live link (and of the hybrid strategy's ephemeral one) if
    /// it has been quiet for at least `quiet_for`.
    fn verify_active(&mut self, now: Instant, quiet_for: Duration) {
        self.verify_link(now, self.active, quiet_for);
        let ephemeral = self.ephemeral_link().map(|l| l.id);
        self.verify_link(now, ephemeral, quiet_for);
    }

    fn verify_link(&mut self, now: Instant, id: Option<u64>, quiet_for: Duration) {
        let Some(link) = id.and_then(|id| self.link(id)) else {
            return;
        };
        if link.is_live() && link.liveness.needs_check(now, quiet_for) {
            let id = link.id;
            self.start_verify(now, id);
        }
    }

    fn start_verify(&mut self, now: Instant, id: u64) {
        let grace = self.config.verify_grace;
        let Some(link) = self.link_mut(id) else {
            return;
        };
        if link.liveness.start_check(now, grace) {
            self.send_ping(now, id);
        }
    }

    // ----- the end -------------------------------------------------------------------------

    /// Ends the session for good: closes every link, fails every pending send and request.
    fn finish(&mut self, _now: Instant, to: State, cause: Cause) {
        if self.state.is_final() {
            return;
        }
        self.drop_links_except(None);
        self.drop_ephemeral();
        // The final state comes first: whoever learns that a send failed with `Closed` (an
        // awaiting caller, the CLI choosing its exit code) already sees why the session ended.
        self.set_state(to, cause);
        for entry in self.outbox.take_all() {
            self.events.push_back(Event::SendFailed {
                id: entry.id,
                failure: SendFailure::Closed,
            });
        }
        for (request, purpose) in std::mem::take(&mut self.requests.0) {
            self.actions.push_back(Action::AbortHttp { request });
            if purpose == Purpose::History {
                self.events.push_back(Event::History {
                    request,
                    result: Err(HistoryError::Closed),
                });
            }
        }
        self.timers.clear(TimerReason::Retry);
        self.timers.clear(TimerReason::Race);
        self.timers.clear(TimerReason::Unreachable);
        self.timers.clear(TimerReason::Probe);
        self.timers.clear(TimerReason::Stable);
        self.timers.clear(TimerReason::Drain);
        self.pending_ops.clear();
    }

    fn check_drained(&mut self, now: Instant) {
        if self.timers.is_set(TimerReason::Drain) && self.outbox.is_empty() {
            self.close(now);
        }
    }

    // ----- bookkeeping ---------------------------------------------------------------------

    /// Moves to `reconnecting`, naming the next try.
    fn set_reconnecting(
        &mut self,
        next_attempt_at: Option<Instant>,
        last_error: Option<Cause>,
        cause: Cause,
    ) {
        let attempt = self.retries.next_attempt();
        let to = State::Reconnecting {
            attempt,
            next_attempt_at,
            last_error,
        };
        self.set_state(to, cause);
    }

    fn set_state(&mut self, to: State, cause: Cause) {
        if self.state == to {
            return;
        }
        let from = std::mem::replace(&mut self.state, to.clone());
        self.events
            .push_back(Event::StateChanged { from, to, cause });
    }

    fn check_open(&self) -> Result<(), SendError> {
        if self.state.is_final() {
            Err(SendError::Closed)
        } else {
            Ok(())
        }
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The hybrid strategy's ephemeral link, if there is one.
    #[cfg_attr(not(feature = "hybrid"), inline(always))]
    fn ephemeral_link(&self) -> Option<&Link> {
        self.hybrid.as_ref()?.link.as_ref()
    }

    /// The link with id `id`: a link of the messages side, or the ephemeral one.
    fn link(&self, id: u64) -> Option<&Link> {
        let found = self.links.iter().find(|l| l.id == id);
        found.or(self.ephemeral_link().filter(|l| l.id == id))
    }

    fn link_mut(&mut self, id: u64) -> Option<&mut Link> {
        if self.ephemeral_link().is_some_and(|l| l.id == id) {
            return self.hybrid.as_mut()?.link.as_mut();
        }
        self.links.iter_mut().find(|l| l.id == id)
    }

    fn link_by_socket(&self, socket: SocketId) -> Option<&Link> {
        let found = self.links.iter().find(|l| l.socket == Some(socket));
        found.or(self.ephemeral_link().filter(|l| l.socket == Some(socket)))
    }

    fn link_by_socket_mut(&mut self, socket: SocketId) -> Option<&mut Link> {
        if self
            .ephemeral_link()
            .is_some_and(|l| l.socket == Some(socket))
        {
            return self.hybrid.as_mut()?.link.as_mut();
        }
        self.links.iter_mut().find(|l| l.socket == Some(socket))
    }

    fn active_link(&self) -> Option<&Link> {
        self.active.and_then(|id| self.link(id))
    }

    /// Forgets every link but `keep` (see [`Session::drop_link`]).
    fn drop_links_except(&mut self, keep: Option<u64>) {
        while let Some(id) = self.links.iter().map(|l| l.id).find(|&l| Some(l) != keep) {
            self.drop_link(id);
        }
    }

    /// Forgets a link, telling the driver to close its socket and abandon its requests.
    fn drop_link(&mut self, id: u64) -> Option<Link> {
        let i = self.links.iter().position(|l| l.id == id)?;
        let link = self.links.remove(i);
        if let Some(socket) = link.socket {
            self.actions.push_back(Action::CloseSocket { socket });
        }
        if let Some(poll) = link.poll {
            self.requests.remove(&poll.request);
            self.actions.push_back(Action::AbortHttp {
                request: poll.request,
            });
        }
        if let Some(send) = &link.send {
            self.requests.remove(&send.request);
            self.actions.push_back(Action::AbortHttp {
                request: send.request,
            });
            self.outbox.mark_unsent(&send.ids);
            let ops = send.ops.clone();
            self.pending_ops.splice(0..0, ops);
        }
        if self.active == Some(id) {
            self.active = None;
        }
        Some(link)
    }
}

fn validate_conv(conv: &str) -> Result<(), SendError> {
    protocol::validate_id("conv", conv).map_err(|e| match e {
        protocol::FrameError::Invalid { reason, .. } => SendError::InvalidConversation { reason },
        _ => SendError::InvalidConversation {
            reason: "not a valid id",
        },
    })
}

/// What a failed HTTP response says, for a cause: the error body's code and message, or only the
/// status when the body is not a Lifeline error (a proxy's HTML page has no place in a cause).
fn http_detail(decoder: &impl FrameDecoder, status: u16, body: &str) -> String {
    detail_of(decoder, body, Some(status))
}

fn error_detail(decoder: &impl FrameDecoder, body: &str) -> String {
    detail_of(decoder, body, None)
}

/// The error body's code and message; otherwise the status, or the start of the body.
#[inline(never)]
fn detail_of(decoder: &impl FrameDecoder, body: &str, status: Option<u16>) -> String {
    match (decoder.http_error(body), status) {
        (Some(e), _) => text!(e.code, ": ", e.message),
        (None, Some(status)) => text!("HTTP ", status, " from the server or a proxy"),
        (None, None) => body.chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connects on `rung` only and reports that its first attempt failed with `kind`.
    fn first_attempt_fails(rung: TransportKind, kind: FailureKind) -> Session {
        let mut config = Config::new("https://chat.test").unwrap();
        config.token = Some("t".into());
        config.transports = vec![rung];
        let start = Instant::from_micros(1_000_000);
        let mut session = Session::new(config, start);
        session.connect(start);
        let detail = "the certificate of chat.test:443 was refused: UnknownIssuer";
        let input = match session.poll_action() {
            Some(Action::OpenSocket { socket, .. }) => Input::SocketFailed {
                socket,
                failure: TransportFailure::of_kind(kind, detail),
            },
            Some(Action::Http { request, .. }) => Input::HttpFailed {
                request,
                kind,
                detail: detail.into(),
            },
            other => panic!("expected an attempt, got {other:?}"),
        };
        session.handle_input(start + Duration::from_millis(5), input);
        session
    }

    #[test]
    fn a_refused_certificate_fails_the_session_at_once_on_every_rung() {
        for rung in TransportKind::ALL {
            let mut session = first_attempt_fails(rung, FailureKind::Certificate);
            match session.state() {
                State::Failed {
                    error: Cause::TlsRejected { transport, detail },
                } => {
                    assert_eq!(*transport, rung);
                    assert!(detail.contains("UnknownIssuer"), "{detail}");
                }
                other => panic!("{rung:?}: expected failed, got {other:?}"),
            }
            assert_eq!(
                session.poll_timeout(),
                None,
                "{rung:?}: nothing left to retry"
            );
            while let Some(action) = session.poll_action() {
                assert!(
                    !matches!(action, Action::OpenSocket { .. } | Action::Http { .. }),
                    "{rung:?}: retried with {action:?}"
                );
            }
        }
    }

    #[test]
    fn other_failures_still_retry() {
        let session = first_attempt_fails(TransportKind::WebSocket, FailureKind::Refused);
        assert!(!session.state().is_final(), "{:?}", session.state());
    }
}
