//! The run loop: the session in an `Rc<RefCell<_>>`, and [`turn`], which every entry point goes
//! through — apply one input or call, carry out every action, collect every event, re-arm the one
//! `setTimeout`, release the session, and only then hand the events to JavaScript (so that an
//! event handler may call back into the client).
//!
//! Also the timer itself and the clock-jump check that turns a frozen tab into `Input::Resumed`.
//! The transports live in `sockets` and `http`, the page signals in `platform`; nothing here
//! decides what the session should do.

use crate::platform::{self, Listeners};
use crate::sockets::Socket;
use crate::view::{self, Clock};
use crate::{http, sockets};
use js_sys::Function;
use lifeline_core::{
    Action, Event, Input, Instant, RequestId, Session, SocketId, SocketKind, TransportFailure,
};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::AbortController;

/// A timer that fires this much later than asked means the tab was frozen or the machine slept.
const CLOCK_JUMP: Duration = Duration::from_secs(5);

/// The most rounds of "perform actions, feed back what failed at once" in one turn.
const MAX_ROUNDS: usize = 64;

/// The largest delay `setTimeout` accepts (2^31 - 1 ms).
const MAX_TIMEOUT_MS: f64 = 2_147_483_647.0;

pub(crate) type Shared = Rc<RefCell<Driver>>;

/// The open sockets or requests by id: a handful at a time, so a list (far less code in the
/// `.wasm` than a hash map).
pub(crate) struct IdMap<K, V>(Vec<(K, V)>);

impl<K: PartialEq, V> IdMap<K, V> {
    fn insert(&mut self, key: K, value: V) {
        self.remove(&key);
        self.0.push((key, value));
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.swap_remove(i).1)
    }
}

/// Everything the browser driver owns: the session, the live sockets and requests with their JS
/// closures, the timer and the page listeners.
pub(crate) struct Driver {
    pub(crate) session: Session,
    sockets: IdMap<SocketId, Socket>,
    pub(crate) requests: IdMap<RequestId, AbortController>,
    /// Sockets let go of in an earlier turn; their closures are dropped at the start of the next
    /// one, when none of them can be running.
    graveyard: Vec<Socket>,
    timer: Option<i32>,
    timer_cb: Option<Closure<dyn FnMut()>>,
    expected_wake: Option<Instant>,
    emit: Function,
    get_token: Option<Function>,
    storage_key: Option<String>,
    last_transport: String,
    listeners: Option<Listeners>,
    weak: Weak<RefCell<Driver>>,
}

impl Driver {
    /// Wraps a new session; installs the timer callback and the page listeners.
    pub(crate) fn start(
        session: Session,
        emit: Function,
        get_token: Option<Function>,
        storage_key: Option<String>,
    ) -> Shared {
        let shared = Rc::new(RefCell::new(Driver {
            session,
            sockets: IdMap(Vec::new()),
            requests: IdMap(Vec::new()),
            graveyard: Vec::new(),
            timer: None,
            timer_cb: None,
            expected_wake: None,
            emit,
            get_token,
            storage_key,
            last_transport: String::new(),
            listeners: None,
            weak: Weak::new(),
        }));
        let weak = Rc::downgrade(&shared);
        let timer_weak = weak.clone();
        let timer_cb = Closure::<dyn FnMut()>::new(move || on_timer(&timer_weak));
        {
            let mut d = shared.borrow_mut();
            d.weak = weak.clone();
            d.timer_cb = Some(timer_cb);
            d.listeners = Some(Listeners::install(&weak));
        }
        shared
    }

    /// Carries out every queued action and collects every event, as JSON for JavaScript.
    fn settle(&mut self, now: Instant) -> Vec<String> {
        for _ in 0..MAX_ROUNDS {
            let mut failed = Vec::new();
            while let Some(action) = self.session.poll_action() {
                if let Some(input) = self.perform(action) {
                    failed.push(input);
                }
            }
            if failed.is_empty() {
                break;
            }
            for input in failed {
                self.session.handle_input(now, input);
            }
        }
        let clock = Clock {
            now,
            wall_ms: js_sys::Date::now(),
        };
        let mut out = Vec::new();
        while let Some(event) = self.session.poll_event() {
            if let Event::TransportWorked { transport } = &event {
                if let Some(key) = &self.storage_key {
                    platform::remember(key, transport.as_str());
                }
            }
            out.push(view::event(&event, clock));
        }
        let transport = view::transport(&self.session);
        if transport != self.last_transport {
            self.last_transport = transport.clone();
            out.push(transport);
        }
        self.arm_timer(now);
        out
    }

    /// Performs one action. Returns the input to report when it failed on the spot.
    fn perform(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::OpenSocket { socket, kind, url } => {
                let opened = match kind {
                    SocketKind::WebSocket => sockets::open_websocket(&self.weak, socket, &url),
                    SocketKind::EventSource => sockets::open_event_source(&self.weak, socket, &url),
                };
                match opened {
                    Ok(s) => {
                        self.sockets.insert(socket, s);
                        None
                    }
                    Err(detail) => Some(Input::SocketFailed {
                        socket,
                        failure: TransportFailure::network(detail),
                    }),
                }
            }
            Action::SendText { socket, text } => {
                let sent = self.sockets.get(&socket).map(|s| s.send(&text));
                match sent {
                    Some(Err(detail)) => Some(Input::SocketFailed {
                        socket,
                        failure: TransportFailure::network(detail),
                    }),
                    _ => None,
                }
            }
            Action::CloseSocket { socket } => {
                if let Some(s) = self.sockets.remove(&socket) {
                    s.close();
                    self.graveyard.push(s);
                }
                None
            }
            Action::Http {
                request,
                method,
                url,
                bearer,
                body,
            } => match http::start(&self.weak, request, method, &url, bearer, body) {
                Ok(abort) => {
                    self.requests.insert(request, abort);
                    None
                }
                Err(detail) => Some(Input::HttpFailed { request, detail }),
            },
            Action::AbortHttp { request } => {
                if let Some(abort) = self.requests.remove(&request) {
                    abort.abort();
                }
                None
            }
            Action::FetchToken => {
                fetch_token(self.weak.clone(), self.get_token.clone());
                None
            }
        }
    }

    fn arm_timer(&mut self, now: Instant) {
        let window = web_sys::window();
        if let (Some(handle), Some(w)) = (self.timer.take(), &window) {
            w.clear_timeout_with_handle(handle);
        }
        self.expected_wake = None;
        let (Some(at), Some(w), Some(cb)) = (self.session.poll_timeout(), window, &self.timer_cb)
        else {
            return;
        };
        let delay = at.saturating_duration_since(now);
        let ms = (delay.as_secs_f64() * 1000.0).ceil().min(MAX_TIMEOUT_MS);
        if let Ok(handle) = w.set_timeout_with_callback_and_timeout_and_arguments_0(
            cb.as_ref().unchecked_ref(),
            ms as i32,
        ) {
            self.timer = Some(handle);
            self.expected_wake = Some(at.max(now));
        }
    }

    /// Stops everything the driver started: the timer, the page listeners, every socket and
    /// request. The session must already be closed (its close actions performed).
    fn shut_down(&mut self) {
        if let (Some(handle), Some(w)) = (self.timer.take(), web_sys::window()) {
            w.clear_timeout_with_handle(handle);
        }
        if let Some(listeners) = self.listeners.take() {
            listeners.remove();
        }
        for (_, s) in std::mem::take(&mut self.sockets.0) {
            s.close();
            self.graveyard.push(s);
        }
        for (_, abort) in std::mem::take(&mut self.requests.0) {
            abort.abort();
        }
    }
}

/// One turn of the run loop: `f` with the session and the current time, then settle, then emit.
pub(crate) fn turn<R>(shared: &Shared, f: impl FnOnce(&mut Session, Instant) -> R) -> R {
    let (result, events, emit) = {
        let mut d = shared.borrow_mut();
        d.graveyard.clear();
        let now = Instant::now();
        let result = f(&mut d.session, now);
        let events = d.settle(now);
        if d.session.state().is_final() {
            d.shut_down();
        }
        (result, events, d.emit.clone())
    };
    for json in events {
        // A throwing application handler must not break the driver.
        let _ = emit.call1(&JsValue::NULL, &JsValue::from_str(&json));
    }
    result
}

/// Reports one input, if the driver still exists.
pub(crate) fn report(weak: &Weak<RefCell<Driver>>, input: Input) {
    if let Some(shared) = weak.upgrade() {
        turn(&shared, |s, now| s.handle_input(now, input));
    }
}

fn on_timer(weak: &Weak<RefCell<Driver>>) {
    let Some(shared) = weak.upgrade() else {
        return;
    };
    let expected = {
        let mut d = shared.borrow_mut();
        d.timer = None;
        d.expected_wake.take()
    };
    turn(&shared, |s, now| {
        let jumped = expected.is_some_and(|at| now.saturating_duration_since(at) > CLOCK_JUMP);
        if jumped {
            s.handle_input(now, Input::Resumed);
        }
        s.handle_timeout(now);
    });
}

/// Asks the application's `getToken` (in a microtask, never inside a turn) and reports the answer.
fn fetch_token(weak: Weak<RefCell<Driver>>, get_token: Option<Function>) {
    wasm_bindgen_futures::spawn_local(async move {
        let result = match get_token {
            None => Err("no getToken function was given".to_string()),
            Some(f) => match f.call0(&JsValue::NULL) {
                Err(e) => Err(describe(&e)),
                Ok(value) => {
                    let promise = js_sys::Promise::resolve(&value);
                    match wasm_bindgen_futures::JsFuture::from(promise).await {
                        Ok(v) => v
                            .as_string()
                            .filter(|t| !t.is_empty())
                            .ok_or_else(|| "getToken did not give a string".to_string()),
                        Err(e) => Err(describe(&e)),
                    }
                }
            },
        };
        report(&weak, Input::Token(result));
    });
}

/// A JS exception as text.
pub(crate) fn describe(e: &JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    js_sys::Reflect::get(e, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| "unknown error".to_string())
}

/// Closes the session at once and lets go of everything.
pub(crate) fn close(shared: &Shared) {
    turn(shared, |s, now| s.close(now));
    shared.borrow_mut().shut_down();
}
