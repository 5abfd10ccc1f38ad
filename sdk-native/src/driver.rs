//! The driver task: the one tokio task that owns the [`Session`]. It `select!`s over the
//! application's commands, the reports of the socket and HTTP tasks, and one timer at
//! `poll_timeout`; after every `handle_*` call it drains `poll_action` (carrying each out) and
//! `poll_event` (publishing each, and resolving the futures of `send`, `subscribe`, `history` and
//! `close`).
//!
//! It makes no decision about states, timing or transports: those belong to the core. What it
//! keeps is bookkeeping only: the handles of the tasks it started and the callers waiting for an
//! answer.

use crate::client::{Acked, Links};
use crate::clock::{self, now};
use crate::command::{Command, Control, COMMAND_QUEUE};
use crate::error::{CallError, HistoryError, SendError};
use crate::event::{Event as AppEvent, Listener};
use crate::http::{self, HttpHandle};
use crate::sse::{self, SseHandle};
use crate::tls::Tls;
use crate::token::TokenProvider;
use crate::ws::{self, WsHandle};
use lifeline_core::{
    Action, Event, HistoryPage, Input, MsgId, RequestId, Session, SocketId, SocketKind, State,
    TransportKind,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};

/// The readers of a client's events, shared by the driver (which fills their queues) and every
/// [`crate::Client`] handle (which adds readers without a round trip through the driver).
pub(crate) type Listeners = Arc<Mutex<Vec<Listener>>>;

/// How many queued reports one loop turn handles before it looks at commands and timers again.
const MAX_INPUTS_PER_TURN: usize = 64;

/// How many reports of socket and HTTP tasks may wait for the driver. A task that finds the queue
/// full waits (it stops reading its socket), so a fast server cannot make the client buffer
/// without bound: TCP's own flow control takes over.
pub const INPUT_QUEUE: usize = 256;

/// Where socket and HTTP tasks report to the driver.
pub(crate) type Inputs = mpsc::Sender<Box<Input>>;

enum SocketHandle {
    Ws(WsHandle),
    Sse(#[allow(dead_code)] SseHandle),
}

/// Everything the driver task owns.
pub(crate) struct Driver {
    session: Session,
    inputs: Inputs,
    tokens: Option<TokenProvider>,
    tls: Tls,
    http: Option<reqwest::Client>,
    sockets: HashMap<SocketId, SocketHandle>,
    requests: HashMap<RequestId, HttpHandle>,
    sends: HashMap<MsgId, oneshot::Sender<Result<Acked, SendError>>>,
    histories: HashMap<RequestId, oneshot::Sender<Result<HistoryPage, HistoryError>>>,
    subscribes: HashMap<String, Vec<oneshot::Sender<Result<(), CallError>>>>,
    closers: Vec<oneshot::Sender<()>>,
    listeners: Listeners,
    /// The application's facts as last handled.
    control: Control,
    state: watch::Sender<State>,
    worked: watch::Sender<Option<TransportKind>>,
    links: watch::Sender<Links>,
}

/// The channels a [`crate::Client`] keeps.
pub(crate) struct Channels {
    pub commands: mpsc::Sender<Box<Command>>,
    pub control: Arc<watch::Sender<Control>>,
    pub listeners: Listeners,
    pub state: watch::Receiver<State>,
    pub worked: watch::Receiver<Option<TransportKind>>,
    pub links: watch::Receiver<Links>,
}

/// Spawns the driver task on the current runtime.
pub(crate) fn spawn(session: Session, tokens: Option<TokenProvider>, tls: Tls) -> Channels {
    // Channel items are boxed: tokio allocates each channel's first block of 32 slots up front,
    // and with `Input` (64 bytes) and `Command` inline that alone cost an idle client ~4 KiB.
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let (control_tx, control_rx) = watch::channel(Control::default());
    let listeners = Listeners::default();
    let (inputs_tx, inputs_rx) = mpsc::channel(INPUT_QUEUE);
    let (state_tx, state_rx) = watch::channel(session.state().clone());
    let (worked_tx, worked_rx) = watch::channel(session.last_worked_transport());
    let (links_tx, links_rx) = watch::channel(Links::of(&session));
    let span = tracing::info_span!("lifeline", endpoint = %session.config().endpoint.key());
    let driver = Driver {
        session,
        inputs: inputs_tx,
        tokens,
        tls,
        http: None,
        sockets: HashMap::new(),
        requests: HashMap::new(),
        sends: HashMap::new(),
        histories: HashMap::new(),
        subscribes: HashMap::new(),
        closers: Vec::new(),
        listeners: Arc::clone(&listeners),
        control: Control::default(),
        state: state_tx,
        worked: worked_tx,
        links: links_tx,
    };
    tokio::spawn(tracing::Instrument::instrument(
        Box::pin(driver.run(commands_rx, control_rx, inputs_rx)),
        span,
    ));
    Channels {
        commands: commands_tx,
        control: Arc::new(control_tx),
        listeners,
        state: state_rx,
        worked: worked_rx,
        links: links_rx,
    }
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Box<Command>>,
        mut control: watch::Receiver<Control>,
        mut inputs: mpsc::Receiver<Box<Input>>,
    ) {
        let mut control_open = true;
        loop {
            self.drain();
            let deadline = self.session.poll_timeout();
            let sleep = tokio::time::sleep_until(match deadline {
                Some(at) => clock::to_tokio(at),
                // Never polled: the branch below is disabled without a deadline.
                None => tokio::time::Instant::now(),
            });
            tokio::select! {
                input = inputs.recv() => {
                    // The driver holds a sender itself, so the channel never closes.
                    let Some(input) = input else { return };
                    self.report(*input);
                    for _ in 1..MAX_INPUTS_PER_TURN {
                        let Ok(input) = inputs.try_recv() else { break };
                        self.drain();
                        self.report(*input);
                    }
                }
                changed = control.changed(), if control_open => match changed {
                    Ok(()) => {
                        let latest = *control.borrow_and_update();
                        self.control_changed(latest);
                    }
                    // Every handle is gone; `commands` closes too and ends the loop.
                    Err(_) => control_open = false,
                },
                command = commands.recv() => match command {
                    Some(command) => self.command(*command),
                    None => {
                        // Every handle is gone: nobody can hear from this session again.
                        self.session.close(now());
                        self.drain();
                        return;
                    }
                },
                () = sleep, if deadline.is_some() => {
                    self.session.handle_timeout(now());
                    if let Some(reason) = self.session.last_timeout_reason() {
                        tracing::trace!(?reason, "timer fired");
                    }
                }
            }
        }
    }

    /// Hands a task's report to the session, forgetting the task if it has finished.
    fn report(&mut self, input: Input) {
        match &input {
            Input::HttpResponse { request, .. } | Input::HttpFailed { request, .. } => {
                self.requests.remove(request);
            }
            Input::SocketClosed { socket, .. } | Input::SocketFailed { socket, .. } => {
                self.sockets.remove(socket);
            }
            _ => {}
        }
        self.session.handle_input(now(), input);
    }

    /// Hands the session what changed in the application's facts since the last look.
    fn control_changed(&mut self, latest: Control) {
        let seen = std::mem::replace(&mut self.control, latest);
        if latest.connects != seen.connects {
            self.session.connect(now());
        }
        if latest.network_changes != seen.network_changes {
            self.session.handle_input(
                now(),
                Input::Network {
                    online: latest.online,
                },
            );
        }
        if latest.resumes != seen.resumes {
            self.session.handle_input(now(), Input::Resumed);
        }
    }

    fn command(&mut self, command: Command) {
        let now = now();
        match command {
            Command::Send { conv, body, reply } => {
                // The id's 16 random bytes come from the operating system for every send, never
                // from the session's seed, which two clients may share.
                let mut random = [0u8; 16];
                let sent = match getrandom::fill(&mut random) {
                    Ok(()) => self
                        .session
                        .send(now, &conv, &body, random)
                        .map_err(Into::into),
                    Err(_) => Err(SendError::NoRandomness),
                };
                match sent {
                    Ok(id) => {
                        self.sends.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Subscribe { conv, reply } => {
                let already = self.session.subscriptions().any(|c| c == conv);
                match self.session.subscribe(now, &conv) {
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                    Ok(()) if already && !self.subscribes.contains_key(&conv) => {
                        let _ = reply.send(Ok(()));
                    }
                    // Resolved by the server's `subscribed` (or an error) on some transport.
                    Ok(()) => self.subscribes.entry(conv).or_default().push(reply),
                }
            }
            Command::Unsubscribe { conv, reply } => {
                let result = self
                    .session
                    .unsubscribe(now, &conv)
                    .map_err(CallError::from);
                if result.is_ok() {
                    for waiter in self.subscribes.remove(&conv).unwrap_or_default() {
                        let _ = waiter.send(Err(CallError::Closed));
                    }
                }
                let _ = reply.send(result);
            }
            Command::Typing { conv, reply } => {
                let _ = reply.send(self.session.typing(now, &conv).map_err(CallError::from));
            }
            Command::History {
                conv,
                before,
                limit,
                reply,
            } => match self.session.history(now, &conv, before, limit) {
                Ok(request) => {
                    self.histories.insert(request, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::Close { timeout, reply } => {
                if self.session.state().is_final() {
                    let _ = reply.send(());
                } else {
                    self.closers.push(reply);
                    self.session.close_gracefully(now, timeout);
                }
            }
        }
    }

    /// Carries out every queued action and publishes every queued event.
    fn drain(&mut self) {
        while let Some(action) = self.session.poll_action() {
            self.act(action);
        }
        while let Some(event) = self.session.poll_event() {
            self.publish(event);
        }
        let links = Links::of(&self.session);
        self.links.send_if_modified(|old| {
            let changed = *old != links;
            *old = links;
            changed
        });
    }

    fn http(&mut self) -> reqwest::Client {
        let tls = &self.tls;
        self.http
            .get_or_insert_with(|| {
                tls.http(reqwest::Client::builder().pool_max_idle_per_host(2))
                    .build()
                    .unwrap_or_else(|error| {
                        // Only a TLS backend mismatch can fail here, and `Tls` rules it out.
                        tracing::error!(%error, "HTTP client setup failed");
                        reqwest::Client::default()
                    })
            })
            .clone()
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::OpenSocket {
                socket,
                kind,
                url,
                bearer,
            } => {
                let handle = match kind {
                    SocketKind::WebSocket => SocketHandle::Ws(ws::open(
                        socket,
                        url,
                        bearer,
                        &self.tls,
                        self.inputs.clone(),
                    )),
                    SocketKind::EventSource => {
                        let http = self.http();
                        SocketHandle::Sse(sse::open(socket, url, bearer, http, self.inputs.clone()))
                    }
                };
                self.sockets.insert(socket, handle);
            }
            Action::SendText { socket, text } => {
                if let Some(SocketHandle::Ws(ws)) = self.sockets.get(&socket) {
                    ws.send(text);
                }
            }
            Action::CloseSocket { socket } => {
                self.sockets.remove(&socket);
            }
            Action::Http {
                request,
                method,
                url,
                bearer,
                body,
            } => {
                let http = self.http();
                let handle = http::start(
                    http::Request {
                        id: request,
                        method,
                        url,
                        bearer,
                        body,
                    },
                    http,
                    self.inputs.clone(),
                );
                self.requests.insert(request, handle);
            }
            Action::AbortHttp { request } => {
                self.requests.remove(&request);
            }
            Action::FetchToken => {
                let inputs = self.inputs.clone();
                let provider = self.tokens.clone();
                tokio::spawn(async move {
                    let result = match provider {
                        Some(provider) => provider.fetch().await,
                        None => Err("no token provider is configured".to_owned()),
                    };
                    tracing::info!(ok = result.is_ok(), "token fetched");
                    let _ = inputs.send(Box::new(Input::Token(result))).await;
                });
            }
        }
    }

    fn publish(&mut self, event: Event) {
        match &event {
            Event::StateChanged { from, to, cause } => {
                let transport = match to {
                    State::Connecting { transport, .. } | State::Connected { transport, .. } => {
                        Some(transport.as_str())
                    }
                    _ => None,
                };
                let span = tracing::info_span!(
                    "state_change",
                    from = from.name(),
                    to = to.name(),
                    transport
                );
                span.in_scope(|| tracing::info!(%cause, "state changed"));
                self.state.send_replace(to.clone());
                if to.is_final() {
                    for closer in self.closers.drain(..) {
                        let _ = closer.send(());
                    }
                    for (_, waiters) in self.subscribes.drain() {
                        for waiter in waiters {
                            let _ = waiter.send(Err(CallError::Closed));
                        }
                    }
                }
            }
            Event::Acked { id, seq } => {
                if let Some(reply) = self.sends.remove(id) {
                    let _ = reply.send(Ok(Acked {
                        id: id.clone(),
                        seq: *seq,
                    }));
                }
            }
            Event::SendFailed { id, failure } => {
                if let Some(reply) = self.sends.remove(id) {
                    let _ = reply.send(Err(failure.clone().into()));
                }
            }
            Event::Subscribed { conv } => {
                for waiter in self.subscribes.remove(conv).unwrap_or_default() {
                    let _ = waiter.send(Ok(()));
                }
            }
            Event::SubscribeFailed { conv, code } => {
                for waiter in self.subscribes.remove(conv).unwrap_or_default() {
                    let _ = waiter.send(Err(CallError::Rejected { code: *code }));
                }
            }
            Event::TransportWorked { transport } => {
                self.worked.send_replace(Some(*transport));
            }
            Event::History { request, result } => {
                // Answered to its caller only: a page is not news for every listener.
                if let Some(reply) = self.histories.remove(request) {
                    let _ = reply.send(result.clone().map_err(HistoryError::from));
                }
                return;
            }
            _ => {}
        }
        let Some(event) = AppEvent::from_core(event) else {
            return;
        };
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        listeners.retain(|l| l.offer(&event));
    }
}
