//! The class JavaScript sees (`Core`, driven by js/driver.js and wrapped by the package's
//! `Client`): a constructor taking the options, one method per session call, one per fact the
//! browser reports, and [`Core::drain`], which hands the driver what to do after each of them.
//! Refusals are thrown as the JSON of a `LifelineError`.
//!
//! Only the boundary lives here: no logic beyond translating arguments and results. Ids cross as
//! JavaScript numbers (`f64`; they count up from 1, far below 2^53).

use crate::options::{self, Options};
use crate::runner::Runner;
use crate::view::{self, Clock};
use lifeline_core::{
    Config, Input, Instant, RequestId, SendError, Session, SocketId, TransportFailure,
};
use std::time::Duration;
use wasm_bindgen::prelude::*;

/// One connection to a Lifeline server. Use it through the package's `Client`.
#[wasm_bindgen]
pub struct Core {
    runner: Runner,
}

fn refused(e: SendError) -> JsValue {
    JsValue::from_str(&view::send_error(&e))
}

/// The `localStorage` key under which the transport that last worked for `url` is remembered, or
/// `undefined` for a URL that is not a server URL (the constructor then says why).
#[wasm_bindgen(js_name = storageKey)]
pub fn storage_key(url: &str) -> Option<String> {
    Config::new(url).ok().map(|c| options::storage_key(&c))
}

#[wasm_bindgen]
impl Core {
    /// `transports` is a comma-separated list (empty for all); `numbers` are the numeric options
    /// in the order of `options::NUMERIC` (`NaN` when absent); `remembered` is the rung stored
    /// under [`storage_key`]; `seed` seeds the jitter unless the options carry one.
    #[wasm_bindgen(constructor)]
    pub fn new(
        url: String,
        token: Option<String>,
        transports: &str,
        numbers: Vec<f64>,
        token_provider: bool,
        remembered: Option<String>,
        seed: f64,
    ) -> Result<Core, JsValue> {
        let opts = Options {
            url,
            token,
            token_provider,
            transports: transports
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            numbers,
        };
        let config = opts
            .to_config(seed as u64, remembered.as_deref())
            .map_err(|m| JsValue::from_str(&view::plain_error("bad_options", &m)))?;
        Ok(Core {
            runner: Runner::new(Session::new(config, Instant::now())),
        })
    }

    /// What to do and to tell after the last call: `[[action…], [event…], delayMs, final]` (see
    /// the `runner` module). `wall_ms` is `Date.now()`.
    pub fn drain(&mut self, wall_ms: f64) -> String {
        self.runner.drain(Clock {
            now: Instant::now(),
            wall_ms,
        })
    }

    /// Starts connecting; `online` is `navigator.onLine`.
    pub fn connect(&mut self, online: bool) {
        let now = Instant::now();
        if !online {
            self.input(Input::Network { online: false });
        }
        self.runner.session.connect(now);
    }

    /// Queues a message; returns its id (the `ack` and `sendFailed` events carry it).
    pub fn send(&mut self, conversation: &str, body: &str) -> Result<String, JsValue> {
        let s = &mut self.runner.session;
        s.send(Instant::now(), conversation, body)
            .map(|id| id.0)
            .map_err(refused)
    }

    /// Joins a conversation.
    pub fn subscribe(&mut self, conversation: &str) -> Result<(), JsValue> {
        let s = &mut self.runner.session;
        s.subscribe(Instant::now(), conversation).map_err(refused)
    }

    /// Leaves a conversation.
    pub fn unsubscribe(&mut self, conversation: &str) -> Result<(), JsValue> {
        let s = &mut self.runner.session;
        s.unsubscribe(Instant::now(), conversation).map_err(refused)
    }

    /// Tells the conversation the user is typing.
    pub fn typing(&mut self, conversation: &str) -> Result<(), JsValue> {
        let s = &mut self.runner.session;
        s.typing(Instant::now(), conversation).map_err(refused)
    }

    /// Asks for a page of history; returns the request id the `history` event carries.
    pub fn history(
        &mut self,
        conversation: &str,
        before: Option<f64>,
        limit: u32,
    ) -> Result<f64, JsValue> {
        let s = &mut self.runner.session;
        s.history(
            Instant::now(),
            conversation,
            before.map(|b| b as u64),
            limit,
        )
        .map(|r| r.0 as f64)
        .map_err(refused)
    }

    /// The state now, as the JSON of a `state` event without `previous` and `cause`.
    pub fn status(&self, wall_ms: f64) -> String {
        view::state(
            &self.runner.session,
            Clock {
                now: Instant::now(),
                wall_ms,
            },
        )
    }

    /// The highest sequence number delivered, if any.
    pub fn cursor(&self) -> Option<f64> {
        self.runner.session.cursor().map(|c| c as f64)
    }

    /// Messages sent but not yet acknowledged.
    #[wasm_bindgen(js_name = pendingCount)]
    pub fn pending_count(&self) -> u32 {
        self.runner.session.outbox_len() as u32
    }

    /// Closes at once; unacknowledged sends fail with `closed`.
    pub fn close(&mut self) {
        self.runner.session.close(Instant::now());
    }

    /// Refuses new sends, waits up to `timeout_ms` for the pending ones, then closes.
    #[wasm_bindgen(js_name = closeGracefully)]
    pub fn close_gracefully(&mut self, timeout_ms: f64) {
        let timeout = Duration::from_millis(timeout_ms.max(0.0) as u64);
        self.runner
            .session
            .close_gracefully(Instant::now(), timeout);
    }

    // ----- what the browser reports (see lifeline_core::Input) ------------------------------

    fn input(&mut self, input: Input) {
        self.runner.input(Instant::now(), input);
    }

    /// The socket opened.
    pub fn opened(&mut self, socket: f64) {
        self.input(Input::SocketOpened {
            socket: SocketId(socket as u64),
        });
    }

    /// A text frame arrived.
    pub fn text(&mut self, socket: f64, text: String) {
        self.input(Input::SocketText {
            socket: SocketId(socket as u64),
            text,
        });
    }

    /// A binary WebSocket message of `len` bytes arrived.
    pub fn binary(&mut self, socket: f64, len: u32) {
        self.input(Input::SocketBinary {
            socket: SocketId(socket as u64),
            len: len as usize,
        });
    }

    /// The socket closed after it had opened.
    pub fn closed(&mut self, socket: f64, code: Option<u16>, reason: String) {
        self.input(Input::SocketClosed {
            socket: SocketId(socket as u64),
            code,
            reason,
        });
    }

    /// The socket failed (to open, or while open); `status` when an HTTP refusal was seen.
    pub fn failed(&mut self, socket: f64, status: Option<u16>, detail: String) {
        self.input(Input::SocketFailed {
            socket: SocketId(socket as u64),
            failure: TransportFailure {
                status,
                retry_after: None,
                detail,
            },
        });
    }

    /// An HTTP request got a response; `retry_after_s` is its `Retry-After` in seconds, if any.
    pub fn response(
        &mut self,
        request: f64,
        status: u16,
        retry_after_s: Option<f64>,
        body: String,
    ) {
        self.input(Input::HttpResponse {
            request: RequestId(request as u64),
            status,
            retry_after: retry_after_s.map(|s| Duration::from_secs(s as u64)),
            body,
        });
    }

    /// An HTTP request got no response.
    pub fn unanswered(&mut self, request: f64, detail: String) {
        self.input(Input::HttpFailed {
            request: RequestId(request as u64),
            detail,
        });
    }

    /// `getToken` answered: a token, or (`token` undefined) the error text.
    pub fn token(&mut self, token: Option<String>, error: String) {
        self.input(Input::Token(token.ok_or(error)));
    }

    /// `online` / `offline`.
    pub fn network(&mut self, online: bool) {
        self.input(Input::Network { online });
    }

    /// `visibilitychange`.
    pub fn visibility(&mut self, visible: bool) {
        self.input(Input::Visibility { visible });
    }

    /// A frozen or back-forward-cached page came back (`resume`, `pageshow`).
    pub fn resumed(&mut self) {
        self.input(Input::Resumed);
    }

    /// The `setTimeout` armed after the last turn fired.
    pub fn timer(&mut self) {
        self.runner.timer(Instant::now());
    }
}
