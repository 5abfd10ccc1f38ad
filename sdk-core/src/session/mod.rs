//! The session: the one state machine that keeps an application connected. It ties together the
//! ladder, the backoff, the links and their liveness, the resume cursor, the outbox, the
//! subscriptions and the credentials.
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

use crate::backoff::Backoff;
use crate::batch::BatchLimits;
use crate::config::Config;
use crate::credentials::{Credentials, Rejection};
use crate::event::{Event, HistoryError, MsgId, SendError, SendFailure};
use crate::io::{Action, FailureKind, HttpMethod, Input, TransportFailure};
use crate::keepalive::KeepAlive;
use crate::ladder::{FailureWeight, Ladder};
use crate::link::{Link, Phase, PollRequest, SendRequest};
use crate::liveness::Silence;
use crate::outbox::{Outbox, Pending};
use crate::protocol::{
    self, Batch, ClientFrame, ErrorCode, ErrorFrame, Hello, Message, Seq, ServerFrame,
    PROTOCOL_VERSION,
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

/// How long a long poll may run past the time the server may hold it.
const POLL_GRACE: Duration = Duration::from_secs(5);

/// A proving probe's copy of a message arriving this much later than the live link's shows a
/// rung that holds frames back.
const PROOF_LAG: Duration = Duration::from_secs(1);

/// The most timers one `handle_timeout` call fires; a guard against a busy loop.
const MAX_TIMERS_PER_CALL: usize = 256;

/// A due timer: what it is for and, for a link's timer, which link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timer {
    reason: TimerReason,
    link: Option<u64>,
}

/// What an HTTP request the session started is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Poll { link: u64 },
    Send { link: u64 },
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
#[derive(Debug)]
pub struct Session {
    config: Config,
    rng: SmallRng,
    ladder: Ladder,
    retries: Retries,
    probe_backoff: Backoff,
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
    /// A rung whose probe proved prompt delivery: the next probe of it moves on `hello`.
    proven: Option<TransportKind>,
    /// An SSE probe failed to prove itself: the next probe goes past SSE (to WebSocket).
    probe_past_sse: bool,
}

fn at_least_1ms(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

impl Session {
    /// A new session in state `idle`. Nothing happens until [`Session::connect`].
    pub fn new(mut config: Config, _now: Instant) -> Self {
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
        Session {
            retries: Retries::new(&config),
            probe_backoff: Backoff::new(config.probe_backoff),
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
            proven: None,
            probe_past_sse: false,
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
        if self.active_link().is_none() {
            return Err(SendError::NotConnected);
        }
        self.transmit_op(
            now,
            ClientFrame::Typing {
                conv: conv.to_string(),
            },
        );
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
        match protocol::decode_server_frame(text) {
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
            Some(Purpose::Poll { link }) => {
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
        for link in &self.links {
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
            _ => {}
        }
    }

    /// The connection proved itself (it stayed up `stable_after`, or it delivered data): past
    /// failures are forgotten, the backoff and the attempt counter start over.
    fn forget_failures(&mut self) {
        self.timers.clear(TimerReason::Stable);
        self.retries.forget();
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
                self.proven = Some(kind);
                self.timers.set(TimerReason::Probe, Some(now));
            }
            TimerReason::SendRetry => {
                if let Some(link) = self.link_mut(id) {
                    link.send_retry_at = None;
                }
                self.flush(now);
            }
            TimerReason::SendDeadline => {
                let batch = self.link_mut(id).and_then(|l| l.send.take());
                if let Some(batch) = batch {
                    self.requests.remove(&batch.request);
                    self.actions.push_back(Action::AbortHttp {
                        request: batch.request,
                    });
                    self.send_batch_failed(now, id, Some(batch));
                }
            }
            _ => {}
        }
    }

    // ----- connecting ----------------------------------------------------------------------

    fn start_attempt(&mut self, now: Instant, cause: Cause) {
        if self.state.is_final() {
            return;
        }
        self.timers.clear(TimerReason::Retry);
        if let Some(fetch) = self.creds.needs_fetch() {
            if fetch {
                self.actions.push_back(Action::FetchToken);
            }
            self.set_reconnecting(None, None, cause);
            return;
        }
        if !self.online {
            self.set_reconnecting(None, Some(Cause::Offline), Cause::Offline);
            return;
        }
        let attempt = self.retries.begin(now);
        let kind = self.ladder.current();
        self.open_link(now, kind);
        // On a first visit nothing says whether the best rung works here: the rung below starts
        // racing after a short head start (and at once if the best rung fails first, see
        // `link_failed`); whichever says `hello` first carries the session, and a better rung
        // still opening is probed again at once, from the cursor (see `on_hello`).
        let race_after = if self.is_first_visit() {
            self.config.first_visit_race_after
        } else {
            self.config.race_after
        };
        let race_at = self.ladder.below(kind).map(|_| now + race_after);
        self.timers.set(TimerReason::Race, race_at);
        self.timers.set(
            TimerReason::Unreachable,
            Some(now + self.config.race_after + self.config.race_after),
        );
        self.set_state(
            State::Connecting {
                transport: kind,
                attempt,
            },
            cause,
        );
    }

    /// The first attempt of a session that has no remembered rung and to which nothing has
    /// worked yet.
    fn is_first_visit(&self) -> bool {
        self.retries.attempt() == 1
            && self.ladder.last_worked().is_none()
            && self.config.initial_transport.is_none()
    }

    /// No link of the attempt has opened `2 × race_after` after it began: nothing answers at the
    /// server's address (a black hole, a dead network). Waiting out every link's connect timeout
    /// would only delay the next attempt, whose fresh connection is what succeeds once the path is
    /// back; no rung is blamed.
    fn give_up_unreachable_attempt(&mut self, now: Instant) {
        if self.active.is_some()
            || self.links.is_empty()
            || self
                .links
                .iter()
                .any(|l| !matches!(l.phase, Phase::Opening))
        {
            return;
        }
        let transport = self.ladder.current();
        self.drop_links_except(None);
        self.timers.clear(TimerReason::Race);
        self.schedule_retry(now, Cause::ConnectTimeout { transport }, None);
    }

    fn start_race(&mut self, now: Instant) {
        if self.active.is_some() || self.links.len() != 1 {
            return;
        }
        let kind = self.links[0].kind;
        if self.links[0].is_live() {
            return;
        }
        if let Some(below) = self.ladder.below(kind) {
            self.open_link(now, below);
        }
    }

    fn start_probe(&mut self, now: Instant) {
        let Some(active) = self.active_link() else {
            return;
        };
        if self.links.len() > 1 {
            return;
        }
        let mut above = self.ladder.above(active.kind);
        if above == Some(TransportKind::Sse) && std::mem::take(&mut self.probe_past_sse) {
            // SSE failed to prove itself last time: this probe tries the rung above it, so a
            // WebSocket that works again is found even while SSE stays held back.
            above = self.ladder.above(TransportKind::Sse).or(above);
        }
        if let Some(above) = above {
            // SSE is the rung a buffering proxy holds back (a WebSocket is a tunnel, a poll
            // answer is complete): the session moves there only after a probe proved it prompt.
            let needs_proof = above == TransportKind::Sse && self.proven.take() != Some(above);
            let id = self.open_link(now, above);
            if let Some(link) = self.link_mut(id) {
                link.needs_proof = needs_proof;
            }
        }
    }

    fn open_link(&mut self, now: Instant, kind: TransportKind) -> u64 {
        let id = self.fresh_id();
        let mut link = Link::new(id, kind, now, self.config.liveness_timeout);
        link.opened_with_cursor = self.resume.cursor();
        let token = self.creds.token().map(str::to_string);
        let endpoint = self.config.endpoint.clone();
        let placement = self.config.stream_token;
        match kind {
            TransportKind::WebSocket | TransportKind::Sse => {
                let socket = SocketId(id);
                link.socket = Some(socket);
                let in_query = placement.in_query(token.as_deref());
                let (socket_kind, url) = if kind == TransportKind::WebSocket {
                    (
                        SocketKind::WebSocket,
                        endpoint.websocket_url(in_query, self.resume.cursor()),
                    )
                } else {
                    (
                        SocketKind::EventSource,
                        endpoint.sse_url(in_query, self.resume.cursor()),
                    )
                };
                self.actions.push_back(Action::OpenSocket {
                    socket,
                    kind: socket_kind,
                    url,
                    bearer: placement.in_header(token.as_deref()),
                });
            }
            TransportKind::LongPoll => {
                let request = RequestId(self.fresh_id());
                self.requests.insert(request, Purpose::Poll { link: id });
                link.poll = Some(PollRequest {
                    request,
                    sent_at: now,
                    deadline: now + self.config.connect_timeout,
                });
                let url =
                    endpoint.poll_url(self.resume.cursor(), self.keepalive.poll_wait_ms(), true);
                self.actions.push_back(Action::Http {
                    request,
                    method: HttpMethod::Get,
                    url,
                    bearer: token,
                    body: None,
                });
            }
        }
        self.links.push(link);
        id
    }

    fn issue_poll(&mut self, now: Instant, id: u64) {
        let request = RequestId(self.fresh_id());
        let wait_ms = self.keepalive.poll_wait_ms();
        let url = self
            .config
            .endpoint
            .poll_url(self.resume.cursor(), wait_ms, false);
        let bearer = self.creds.token().map(str::to_string);
        let deadline = Instant::from_micros(
            now.as_micros()
                .saturating_add(wait_ms.saturating_mul(1_000)),
        ) + POLL_GRACE;
        let Some(link) = self.link_mut(id) else {
            return;
        };
        link.poll = Some(PollRequest {
            request,
            sent_at: now,
            deadline,
        });
        self.requests.insert(request, Purpose::Poll { link: id });
        self.actions.push_back(Action::Http {
            request,
            method: HttpMethod::Get,
            url,
            bearer,
            body: None,
        });
    }

    // ----- frames --------------------------------------------------------------------------

    fn on_frame(&mut self, now: Instant, id: u64, frame: ServerFrame) {
        if self
            .link(id)
            .is_some_and(|l| matches!(l.phase, Phase::Proving { .. }))
        {
            // Judged, never delivered: a proving link is not the live one, so the match below
            // ignores its heartbeats and messages.
            self.on_proving_frame(now, id, &frame);
        }
        let is_active = self.active == Some(id);
        if is_active
            && self.timers.is_set(TimerReason::Stable)
            && matches!(frame, ServerFrame::Ack { .. } | ServerFrame::Msg(_))
        {
            // A link that delivers data works end to end, however soon a middlebox cuts it: the
            // next reconnect starts from the first backoff step.
            self.forget_failures();
        }
        match frame {
            ServerFrame::Hello(hello) => self.on_hello(now, id, hello),
            ServerFrame::Error(error) => self.on_error_frame(now, id, error),
            ServerFrame::Ack { id: msg, seq } => {
                if let Some(entry) = self.outbox.remove(&msg) {
                    self.events.push_back(Event::Acked { id: entry.id, seq });
                    self.check_drained(now);
                }
            }
            ServerFrame::Msg(message) if is_active => self.deliver(now, message),
            ServerFrame::Subscribed { conv } if self.subscriptions.contains(&conv) => {
                self.events.push_back(Event::Subscribed { conv });
            }
            ServerFrame::Unsubscribed { conv } => {
                self.unsubscriptions.remove(&conv);
            }
            ServerFrame::Presence { conv, user, online } if is_active => {
                self.events
                    .push_back(Event::Presence { conv, user, online });
            }
            ServerFrame::Typing { conv, user } if is_active => {
                self.events.push_back(Event::Typing { conv, user });
            }
            ServerFrame::Pong { t } => {
                if let Some(rtt) = self.link(id).and_then(|l| l.liveness.pong(t, now)) {
                    self.events.push_back(Event::RoundTrip { rtt });
                }
            }
            // Heartbeats only refresh liveness, done on arrival. Stream frames on a link that is
            // not (or no longer) the live one are dropped: the live link delivers them.
            _ => {}
        }
    }

    /// A heartbeat or message on a probe proving prompt delivery: it is judged, never delivered
    /// (the live link delivers).
    fn on_proving_frame(&mut self, now: Instant, id: u64, frame: &ServerFrame) {
        let (late, prompt) = match frame {
            ServerFrame::Msg(m) => {
                // Behind the live link's copy, or ahead of the live link.
                let copy_at = self.resume.delivered_at(m.seq);
                (
                    copy_at.is_some_and(|at| now > at + PROOF_LAG),
                    self.resume.is_ahead(m.seq),
                )
            }
            ServerFrame::Heartbeat => (false, true),
            _ => return,
        };
        if late {
            self.link_failed(now, id, held_back(), FailureWeight::Neutral, None);
        } else if let Some(Link {
            phase:
                Phase::Proving {
                    judged_from,
                    settles_at,
                    ..
                },
            ..
        }) = self.link_mut(id)
        {
            // A heartbeat, or (a busy stream has none) a message ahead of the live link, half a
            // heartbeat into the stream: prompt, unless a late copy shows up meanwhile.
            if prompt && now >= *judged_from {
                settles_at.get_or_insert(now + PROOF_LAG);
            }
        }
    }

    fn deliver(&mut self, now: Instant, message: Message) {
        if self.resume.deliver(now, message.seq) {
            self.events.push_back(Event::Message(message));
        }
    }

    /// The server's `hello` on link `id`: the link goes live (or, as a probe that must prove
    /// prompt delivery first, starts proving).
    fn on_hello(&mut self, now: Instant, id: u64, hello: Hello) {
        if hello.v != PROTOCOL_VERSION {
            let error = Cause::UnsupportedVersion;
            self.finish(now, State::Failed { error }, Cause::UnsupportedVersion);
            return;
        }
        let Some(link) = self.link_mut(id) else {
            return;
        };
        if link.is_live() || matches!(link.phase, Phase::Proving { .. }) {
            return;
        }
        if link.needs_proof {
            link.phase = Phase::proving(now, hello.heartbeat_ms);
            return;
        }
        let kind = link.kind;
        let previous = self.active_link().map(|l| l.kind);
        let better_pending = previous.is_none() && self.better_rung_opening(id, kind);
        self.go_live(now, id, &hello);
        self.schedule_after_connecting(now, kind, previous, better_pending);
        let degraded = self.ladder.is_degraded(kind);
        let cause = match previous {
            Some(from) if from != kind => Cause::Upgraded { from },
            _ => Cause::Opened,
        };
        let transport = kind;
        self.set_state(
            State::Connected {
                transport,
                degraded,
            },
            cause,
        );
        self.batch_limits = BatchLimits::advertised(&hello);
        self.rebuild_ops();
        self.flush(now);
        // A long poll's `hello` always comes in a poll response, and `on_poll_response` issues the
        // next poll once the response's frames are handled: issuing one here too would keep two
        // polls running for the rest of the session.
    }

    /// A better rung than `kind` of the same attempt is still opening on a link other than `id`
    /// (it lost the race, or the first visit's head start was too short).
    fn better_rung_opening(&self, id: u64, kind: TransportKind) -> bool {
        let above = self.ladder.above(kind);
        self.links
            .iter()
            .any(|l| l.id != id && Some(l.kind) == above)
    }

    /// Link `id` carries the session from now on: every other link goes, its liveness starts,
    /// the token and the rung are known to work, the cursor follows the server's resume point.
    fn go_live(&mut self, now: Instant, id: u64, hello: &Hello) {
        self.drop_links_except(Some(id));
        let ping_every_us = self.ping_interval_for(hello.heartbeat_ms);
        let liveness_timeout = self.config.liveness_timeout;
        let Some(link) = self.link_mut(id) else {
            return;
        };
        link.phase = Phase::Live;
        link.liveness
            .went_live(now, hello.heartbeat_ms, liveness_timeout, ping_every_us);
        let (kind, opened_with) = (link.kind, link.opened_with_cursor);
        self.active = Some(id);
        self.creds.accepted();
        if self.ladder.record_success(kind) {
            self.events
                .push_back(Event::TransportWorked { transport: kind });
        }
        self.resume_from(hello, opened_with);
    }

    /// The timers once a link on `kind` went live: no retry, race or unreachable deadline any
    /// more; a stable period for a fresh connection (an upgrade continues a healthy session);
    /// a probe of a better rung at once if one was still opening (from the cursor, so that it
    /// takes over losslessly), later while degraded, never otherwise.
    fn schedule_after_connecting(
        &mut self,
        now: Instant,
        kind: TransportKind,
        previous: Option<TransportKind>,
        better_pending: bool,
    ) {
        self.timers.clear(TimerReason::Retry);
        self.timers.clear(TimerReason::Race);
        self.timers.clear(TimerReason::Unreachable);
        if previous.is_none() {
            self.timers
                .set(TimerReason::Stable, Some(now + self.config.stable_after));
        }
        self.timers.clear(TimerReason::Probe);
        if better_pending {
            self.timers.set(TimerReason::Probe, Some(now));
        } else if self.ladder.is_degraded(kind) && self.ladder.above(kind).is_some() {
            let delay = self.probe_backoff.next_delay(&mut self.rng);
            self.timers.set(TimerReason::Probe, Some(now + delay));
        } else {
            self.probe_backoff.reset();
        }
    }

    /// How often a live WebSocket pings, in microseconds: the configured interval, but at most
    /// half the server's `heartbeat_ms` and under a middlebox idle timeout learned from cuts.
    fn ping_interval_for(&self, heartbeat_ms: u64) -> u64 {
        // `Instant + Duration` is the one (not inlined) conversion of a duration to microseconds.
        let configured_us = (Instant::from_micros(0) + self.config.ping_interval).as_micros();
        self.keepalive
            .ping_interval_ms(configured_us / 1_000, heartbeat_ms)
            .saturating_mul(1_000)
    }

    /// Applies the server's resume point to the cursor, telling the application about a gap.
    fn resume_from(&mut self, hello: &Hello, opened_with: Option<Seq>) {
        if let Some((last_seen, resumed_after)) = self.resume.resume_from(hello, opened_with) {
            self.events.push_back(Event::Discontinuity {
                last_seen,
                resumed_after,
            });
        }
    }

    fn on_error_frame(&mut self, now: Instant, link: u64, error: ErrorFrame) {
        let retry_after = error.retry_after_ms.map(Duration::from_millis);
        match error.code {
            code if code.is_auth() => {
                self.auth_rejected(now, text!(code, ": ", error.message));
            }
            ErrorCode::GoingAway => {
                if let Some(l) = self.link_mut(link) {
                    l.going_away = Some(retry_after.unwrap_or(Duration::ZERO));
                }
                let cause = Cause::ServerGoingAway;
                self.link_failed(now, link, cause, FailureWeight::Neutral, None);
            }
            ErrorCode::UnsupportedVersion => self.finish(
                now,
                State::Failed {
                    error: Cause::UnsupportedVersion,
                },
                Cause::UnsupportedVersion,
            ),
            code => {
                if let Some(msg) = error.id {
                    match code {
                        ErrorCode::RateLimited | ErrorCode::Internal => {
                            let wait = retry_after.unwrap_or(SEND_RETRY_DELAY);
                            self.outbox.hold_from(&msg, now + wait);
                        }
                        _ => {
                            if let Some(entry) = self.outbox.remove(&msg) {
                                self.events.push_back(Event::SendFailed {
                                    id: entry.id,
                                    failure: SendFailure::Rejected {
                                        code,
                                        message: error.message,
                                    },
                                });
                                self.check_drained(now);
                            }
                        }
                    }
                } else if let Some(conv) = error.conv {
                    if self.subscriptions.remove(&conv) {
                        self.events.push_back(Event::SubscribeFailed { conv, code });
                    }
                } else {
                    self.events.push_back(Event::ServerError {
                        code,
                        message: error.message,
                    });
                }
            }
        }
    }

    // ----- HTTP ----------------------------------------------------------------------------

    fn on_poll_response(
        &mut self,
        now: Instant,
        id: u64,
        status: u16,
        retry_after: Option<Duration>,
        body: &str,
    ) {
        let Some(link) = self.link_mut(id) else {
            return;
        };
        let sent_at = link.poll.take().map_or(now, |p| p.sent_at);
        let live = link.is_live();
        if status == 504 && live && self.active == Some(id) {
            // A gateway gave up holding the poll: its timeout is shorter than our wait. Poll on
            // with a shorter wait; the link itself is fine.
            let elapsed_ms = now.as_micros().saturating_sub(sent_at.as_micros()) / 1_000;
            if self.keepalive.gateway_timeout(elapsed_ms) {
                self.issue_poll(now, id);
                return;
            }
        }
        if status != 200 {
            let failure = TransportFailure::status(status, retry_after, http_detail(status, body));
            self.on_transport_failure(now, id, failure);
            return;
        }
        let Some(link) = self.link_mut(id) else {
            return;
        };
        link.liveness.heard(now);
        let batch: Batch<ServerFrame> = match protocol::decode_server_batch(body) {
            Ok(batch) => batch,
            Err(e) => {
                let kind = link.kind;
                self.events.push_back(Event::BadFrame {
                    transport: kind,
                    error: e.clone(),
                });
                let cause = self.loss_cause(id, text!("bad poll response: ", e.describe()));
                self.link_failed(now, id, cause, FailureWeight::Ordinary, None);
                return;
            }
        };
        for frame in batch.frames {
            if self.link(id).is_none() {
                return;
            }
            self.on_frame(now, id, frame);
        }
        match self.link(id).map(Link::is_live) {
            // Only the live link polls on; a link that lost a race is gone already.
            Some(true) if self.active == Some(id) => self.issue_poll(now, id),
            Some(true) => {}
            Some(false) => {
                // The first poll must answer with hello.
                self.link_failed(
                    now,
                    id,
                    Cause::FirstFrameTimeout {
                        transport: TransportKind::LongPoll,
                    },
                    FailureWeight::Definitive,
                    None,
                );
            }
            None => {}
        }
    }

    fn on_send_response(
        &mut self,
        now: Instant,
        id: u64,
        status: u16,
        retry_after: Option<Duration>,
        body: &str,
    ) {
        let Some(link) = self.link_mut(id) else {
            return;
        };
        let Some(batch) = link.send.take() else {
            return;
        };
        match status {
            200 => match protocol::decode_server_batch(body) {
                Ok(response) => {
                    for frame in response.frames {
                        self.on_frame(now, id, frame);
                    }
                    // A send the server did not answer is sent again shortly.
                    let unanswered: Vec<MsgId> = batch
                        .ids
                        .iter()
                        .filter(|m| self.outbox_contains(m))
                        .cloned()
                        .collect();
                    if !unanswered.is_empty() {
                        self.outbox.mark_unsent(&unanswered);
                        if let Some(link) = self.link_mut(id) {
                            link.send_retry_at = Some(now + SEND_RETRY_DELAY);
                        }
                    }
                    self.flush(now);
                }
                Err(_) => self.send_batch_failed(now, id, Some(batch)),
            },
            401 => {
                self.requeue_batch(batch);
                self.auth_rejected(now, error_detail(body));
            }
            429 | 503 => {
                let wait = retry_after.unwrap_or(SEND_RETRY_DELAY);
                if let Some(first) = batch.ids.first() {
                    self.outbox.hold_from(&first.0, now + wait);
                }
                self.pending_ops.splice(0..0, batch.ops);
                if let Some(link) = self.link_mut(id) {
                    link.send_retry_at = Some(now + wait);
                }
            }
            413 if self
                .batch_limits
                .split_after_too_large(batch.ids.len() + batch.ops.len(), batch.bytes) =>
            {
                // Each frame may be legal on its own: send them again in smaller batches.
                self.requeue_batch(batch);
                self.flush(now);
            }
            400 | 403 | 413 => {
                let code = protocol::decode_http_error(body)
                    .map(|e| e.code)
                    .unwrap_or(ErrorCode::BadFrame);
                for msg in batch.ids {
                    if let Some(entry) = self.outbox.remove(&msg.0) {
                        self.events.push_back(Event::SendFailed {
                            id: entry.id,
                            failure: SendFailure::Rejected {
                                code,
                                message: error_detail(body),
                            },
                        });
                    }
                }
                self.check_drained(now);
                self.flush(now);
            }
            _ => self.send_batch_failed(now, id, Some(batch)),
        }
    }

    fn outbox_contains(&self, id: &MsgId) -> bool {
        self.outbox.iter().any(|p| &p.id == id)
    }

    fn send_batch_failed(&mut self, now: Instant, id: u64, batch: Option<SendRequest>) {
        let batch = match batch {
            Some(b) => Some(b),
            None => self.link_mut(id).and_then(|l| l.send.take()),
        };
        if let Some(batch) = batch {
            self.requeue_batch(batch);
        }
        if let Some(link) = self.link_mut(id) {
            link.send_retry_at = Some(now + SEND_RETRY_DELAY);
        }
    }

    fn requeue_batch(&mut self, batch: SendRequest) {
        self.outbox.mark_unsent(&batch.ids);
        self.pending_ops.splice(0..0, batch.ops);
    }

    fn on_history_response(&mut self, request: RequestId, status: u16, body: &str) {
        let result = if status == 200 {
            protocol::decode_history(body).map_err(|e| HistoryError::BadResponse {
                detail: e.describe(),
            })
        } else {
            let error = protocol::decode_http_error(body);
            Err(HistoryError::Server {
                status,
                code: error.as_ref().map(|e| e.code),
                message: error.map(|e| e.message).unwrap_or_default(),
            })
        };
        self.events.push_back(Event::History { request, result });
    }

    // ----- transmitting --------------------------------------------------------------------

    /// Frames that must reach the server on every new link: the subscriptions.
    fn rebuild_ops(&mut self) {
        self.pending_ops.clear();
        for conv in self.unsubscriptions.iter() {
            self.pending_ops
                .push(ClientFrame::Unsubscribe { conv: conv.clone() });
        }
        for conv in self.subscriptions.iter() {
            self.pending_ops
                .push(ClientFrame::Subscribe { conv: conv.clone() });
        }
    }

    fn transmit_op(&mut self, now: Instant, frame: ClientFrame) {
        if self.active_link().is_none() {
            // Subscriptions are re-asserted on the next link; typing is never queued.
            return;
        }
        self.pending_ops.push(frame);
        self.flush(now);
    }

    /// Transmits pending frames and due messages on the live link.
    fn flush(&mut self, now: Instant) {
        let Some(id) = self.active else {
            return;
        };
        let Some(link) = self.link(id) else {
            return;
        };
        if !link.is_live() {
            return;
        }
        match link.kind {
            TransportKind::WebSocket => {
                let socket = link.socket.expect("a WebSocket link has a socket");
                let mut frames: Vec<ClientFrame> = std::mem::take(&mut self.pending_ops);
                frames.extend(
                    self.outbox
                        .due_while(id, now, |_| true)
                        .iter()
                        .map(Pending::frame),
                );
                for frame in frames {
                    self.actions.push_back(Action::SendText {
                        socket,
                        text: protocol::encode(&frame),
                    });
                }
            }
            TransportKind::Sse | TransportKind::LongPoll => {
                if link.send.is_some() || link.send_retry_at.is_some() {
                    return;
                }
                let mut body = self.batch_limits.body();
                let taken = self
                    .pending_ops
                    .iter()
                    .take_while(|op| body.push(op))
                    .count();
                let ops: Vec<ClientFrame> = self.pending_ops.drain(..taken).collect();
                let due = self.outbox.due_while(id, now, |p| body.push(&p.frame()));
                if body.frames() == 0 {
                    return;
                }
                let body = body.finish();
                let request = RequestId(self.fresh_id());
                self.requests.insert(request, Purpose::Send { link: id });
                let deadline = now + self.config.connect_timeout;
                let link = self.link_mut(id).expect("the link was found above");
                link.send = Some(SendRequest {
                    request,
                    ids: due.into_iter().map(|p| p.id).collect(),
                    ops,
                    bytes: body.len(),
                    deadline,
                });
                self.actions.push_back(Action::Http {
                    request,
                    method: HttpMethod::Post,
                    url: self.config.endpoint.send_url(),
                    bearer: self.creds.token().map(str::to_string),
                    body: Some(body),
                });
            }
        }
    }

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

    /// Starts a liveness check of the live link if it has been quiet for at least `quiet_for`.
    fn verify_active(&mut self, now: Instant, quiet_for: Duration) {
        let Some(link) = self.active_link() else {
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

    // ----- failures ------------------------------------------------------------------------

    fn loss_cause(&self, id: u64, detail: String) -> Cause {
        let link = self.link(id);
        let transport = link.map_or(TransportKind::WebSocket, |l| l.kind);
        if link.is_some_and(Link::is_live) {
            Cause::TransportLost { transport, detail }
        } else {
            Cause::OpenFailed {
                transport,
                status: None,
                detail,
            }
        }
    }

    fn on_transport_failure(&mut self, now: Instant, id: u64, failure: TransportFailure) {
        let Some(link) = self.link(id) else {
            return;
        };
        let transport = link.kind;
        if let Some(cause) = tls_rejection(transport, &failure) {
            self.finish(
                now,
                State::Failed {
                    error: cause.clone(),
                },
                cause,
            );
            return;
        }
        match failure.status {
            Some(401) => self.auth_rejected(now, failure.detail),
            Some(status @ (429 | 503)) => {
                let hint = failure.retry_after.map(DelayHint::AtLeast);
                let cause = if status == 429 {
                    Cause::ServerBusy
                } else {
                    self.loss_cause(id, failure.detail)
                };
                self.link_failed(now, id, cause, FailureWeight::Neutral, hint);
            }
            Some(status) if (400..500).contains(&status) => {
                let cause = Cause::OpenFailed {
                    transport,
                    status: Some(status),
                    detail: failure.detail,
                };
                self.link_failed(now, id, cause, FailureWeight::Definitive, None);
            }
            status => {
                // Refused, unresolved or unreachable: nothing answers at the server's address, so
                // every rung would fail alike. Retry the same rung; do not walk down the ladder.
                let host_down = matches!(
                    failure.kind,
                    FailureKind::Refused | FailureKind::Dns | FailureKind::Unreachable
                );
                let weight = if host_down {
                    FailureWeight::Neutral
                } else {
                    FailureWeight::Ordinary
                };
                let cause = if link.is_live() {
                    Cause::TransportLost {
                        transport,
                        detail: failure.detail,
                    }
                } else {
                    Cause::OpenFailed {
                        transport,
                        status,
                        detail: failure.detail,
                    }
                };
                self.link_failed(now, id, cause, weight, None);
            }
        }
    }

    fn link_failed(
        &mut self,
        now: Instant,
        id: u64,
        cause: Cause,
        weight: FailureWeight,
        hint: Option<DelayHint>,
    ) {
        let was_active = self.active == Some(id);
        let Some(link) = self.drop_link(id) else {
            return;
        };
        if was_active
            && link.kind == TransportKind::WebSocket
            && link.going_away.is_none()
            && matches!(cause, Cause::TransportLost { .. })
        {
            // A cut after the same idle age twice is a middlebox's idle timeout: ping under it.
            self.keepalive.websocket_cut(link.liveness.idle_ms(now));
        }
        let hint = hint
            .or(link.going_away.map(DelayHint::Within))
            .or(link.retry_hint.map(DelayHint::AtLeast));
        // An attempt's failure counts against its rung; so does a live link's failure that says
        // the rung cannot work here (frames held back); a probe's does not.
        let counts = if was_active {
            weight == FailureWeight::Definitive
        } else {
            self.active.is_none()
        };
        if counts {
            self.ladder.record_failure(link.kind, weight);
        }
        if was_active {
            self.timers.clear(TimerReason::Stable);
            self.timers.clear(TimerReason::Probe);
            self.drop_links_except(None);
            self.schedule_retry(now, cause, hint);
        } else if self.active.is_some() {
            // A probe failed: the live link carries on; probe again later.
            self.probe_past_sse = link.needs_proof;
            let delay = self.probe_backoff.next_delay(&mut self.rng);
            self.timers.set(TimerReason::Probe, Some(now + delay));
        } else {
            let below = self.ladder.below(link.kind);
            if self.links.is_empty()
                && self.timers.is_set(TimerReason::Race)
                && weight != FailureWeight::Neutral
                && self.is_first_visit()
                && below.is_some()
            {
                // A first visit whose best rung failed (a reset or refused upgrade) before the
                // race: the rung below starts now, not after a backoff.
                self.timers.clear(TimerReason::Race);
                if let Some(below) = below {
                    self.open_link(now, below);
                    let race_at = self
                        .ladder
                        .below(below)
                        .map(|_| now + self.config.first_visit_race_after);
                    self.timers.set(TimerReason::Race, race_at);
                }
            }
            if let Some(other) = self.links.first() {
                let transport = other.kind;
                let attempt = self.retries.attempt();
                self.set_state(State::Connecting { transport, attempt }, cause);
            } else {
                self.timers.clear(TimerReason::Race);
                self.timers.clear(TimerReason::Unreachable);
                self.schedule_retry(now, cause, hint);
            }
        }
    }

    fn schedule_retry(&mut self, now: Instant, cause: Cause, hint: Option<DelayHint>) {
        if self.state.is_final() {
            return;
        }
        let Some(delay) = self.retries.next_delay(now, hint, &mut self.rng) else {
            let error = Cause::RetryLimit;
            self.finish(now, State::Failed { error }, cause);
            return;
        };
        let retry_at = (self.online && !self.creds.is_fetching()).then(|| now + delay);
        self.timers.set(TimerReason::Retry, retry_at);
        self.set_reconnecting(retry_at, Some(cause.clone()), cause);
    }

    /// The application's token provider answered.
    fn on_token(&mut self, now: Instant, result: Result<String, String>) {
        match self.creds.fetched(result) {
            Ok(()) => {
                if self.links.is_empty() && matches!(self.state, State::Reconnecting { .. }) {
                    self.start_attempt(now, Cause::RetryDue);
                }
            }
            Err(detail) => {
                if self.links.is_empty() {
                    self.schedule_retry(now, Cause::TokenUnavailable { detail }, None);
                }
            }
        }
    }

    /// The server refused the token: refresh it and reconnect, or fail for good.
    fn auth_rejected(&mut self, now: Instant, detail: String) {
        match self.creds.rejected() {
            Rejection::Fatal => {
                let cause = Cause::AuthRejected { detail };
                self.finish(
                    now,
                    State::Failed {
                        error: cause.clone(),
                    },
                    cause,
                );
            }
            Rejection::Refresh { fetch } => {
                if fetch {
                    self.actions.push_back(Action::FetchToken);
                }
                self.drop_links_except(None);
                self.timers.clear(TimerReason::Stable);
                self.timers.clear(TimerReason::Probe);
                self.timers.clear(TimerReason::Race);
                self.timers.clear(TimerReason::Unreachable);
                self.timers.clear(TimerReason::Retry);
                let cause = Cause::AuthRejected { detail };
                self.set_reconnecting(None, Some(cause.clone()), cause);
            }
        }
    }

    /// Ends the session for good: closes every link, fails every pending send and request.
    fn finish(&mut self, _now: Instant, to: State, cause: Cause) {
        if self.state.is_final() {
            return;
        }
        self.drop_links_except(None);
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
        self.set_state(to, cause);
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

    fn link(&self, id: u64) -> Option<&Link> {
        self.links.iter().find(|l| l.id == id)
    }

    fn link_mut(&mut self, id: u64) -> Option<&mut Link> {
        self.links.iter_mut().find(|l| l.id == id)
    }

    fn link_by_socket(&self, socket: SocketId) -> Option<&Link> {
        self.links.iter().find(|l| l.socket == Some(socket))
    }

    fn link_by_socket_mut(&mut self, socket: SocketId) -> Option<&mut Link> {
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

/// The loss of an SSE stream (live or proving) that holds frames back: only SSE is judged so.
#[inline(never)]
fn held_back() -> Cause {
    Cause::TransportLost {
        transport: TransportKind::Sse,
        detail: "frames arrive late (held back by a proxy?)".into(),
    }
}

/// What a failed HTTP response says, for a cause: the error body's code and message, or only the
/// status when the body is not a Lifeline error (a proxy's HTML page has no place in a cause).
fn http_detail(status: u16, body: &str) -> String {
    detail_of(body, Some(status))
}

fn error_detail(body: &str) -> String {
    detail_of(body, None)
}

/// The error body's code and message; otherwise the status, or the start of the body.
#[inline(never)]
fn detail_of(body: &str, status: Option<u16>) -> String {
    match (protocol::decode_http_error(body), status) {
        (Some(e), _) => text!(e.code, ": ", e.message),
        (None, Some(status)) => text!("HTTP ", status, " from the server or a proxy"),
        (None, None) => body.chars().take(200).collect(),
    }
}

/// A failure that retrying cannot cure: the server's certificate was refused (the same
/// certificate would be refused on every rung and every retry). The session fails at once with a
/// cause naming it. Other TLS failures ([`FailureKind::Tls`]) are left to the ladder; a driver
/// without TLS refuses `https://` before a session exists.
fn tls_rejection(transport: TransportKind, failure: &TransportFailure) -> Option<Cause> {
    match failure.kind {
        FailureKind::Certificate if failure.status.is_none() => Some(Cause::TlsRejected {
            transport,
            detail: failure.detail.clone(),
        }),
        _ => None,
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
