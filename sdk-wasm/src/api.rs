//! The class JavaScript sees (`Core`, wrapped by the package's `Client`): a constructor taking the
//! options as JSON, the event callback and `getToken`, and one method per session call. Every
//! method is one turn of the run loop; refusals are thrown as the JSON of a `LifelineError`.
//!
//! Only the boundary lives here: no logic beyond translating arguments and results.

use crate::driver::{self, Driver, Shared};
use crate::options::{self, Options};
use crate::{platform, view};
use js_sys::Function;
use lifeline_core::{Input, Instant, SendError, Session};
use std::time::Duration;
use wasm_bindgen::prelude::*;

/// One connection to a Lifeline server. Use it through the package's `Client`.
#[wasm_bindgen]
pub struct Core {
    shared: Shared,
}

fn refused(e: SendError) -> JsValue {
    JsValue::from_str(&view::send_error(&e))
}

impl Drop for Core {
    /// A client freed without `close` (or collected) still lets go of its sockets and timer, so
    /// that no browser callback reaches a dropped closure.
    fn drop(&mut self) {
        if self.shared.try_borrow_mut().is_ok() {
            driver::close(&self.shared);
        }
    }
}

#[wasm_bindgen]
impl Core {
    /// `transports` is a comma-separated list (empty for all); `numbers` are the numeric options
    /// in the order of `options::NUMERIC` (`NaN` when absent); `emit` is called with the JSON of
    /// every event; `get_token` returns a token or a promise of one.
    #[wasm_bindgen(constructor)]
    pub fn new(
        url: String,
        token: Option<String>,
        transports: &str,
        numbers: Vec<f64>,
        remember: bool,
        emit: Function,
        get_token: Option<Function>,
    ) -> Result<Core, JsValue> {
        let opts = Options {
            url,
            token,
            token_provider: get_token.is_some(),
            transports: transports
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            numbers,
        };
        let bad = |m: String| JsValue::from_str(&view::plain_error("bad_options", &m));
        let probe = opts.to_config(0, None).map_err(bad)?;
        let key = remember.then(|| options::storage_key(&probe));
        let remembered = key.as_deref().and_then(platform::remembered);
        let config = opts
            .to_config(platform::seed(), remembered.as_deref())
            .map_err(bad)?;
        let session = Session::new(config, Instant::now());
        Ok(Core {
            shared: Driver::start(session, emit, get_token, key),
        })
    }

    /// Starts connecting.
    pub fn connect(&self) {
        let online = platform::online();
        driver::turn(&self.shared, |s, now| {
            if !online {
                s.handle_input(now, Input::Network { online: false });
            }
            s.connect(now);
        });
    }

    /// Queues a message; returns its id (the `ack` and `sendFailed` events carry it).
    pub fn send(&self, conversation: &str, body: &str) -> Result<String, JsValue> {
        driver::turn(&self.shared, |s, now| s.send(now, conversation, body))
            .map(|id| id.0)
            .map_err(refused)
    }

    /// Joins a conversation.
    pub fn subscribe(&self, conversation: &str) -> Result<(), JsValue> {
        driver::turn(&self.shared, |s, now| s.subscribe(now, conversation)).map_err(refused)
    }

    /// Leaves a conversation.
    pub fn unsubscribe(&self, conversation: &str) -> Result<(), JsValue> {
        driver::turn(&self.shared, |s, now| s.unsubscribe(now, conversation)).map_err(refused)
    }

    /// Tells the conversation the user is typing.
    pub fn typing(&self, conversation: &str) -> Result<(), JsValue> {
        driver::turn(&self.shared, |s, now| s.typing(now, conversation)).map_err(refused)
    }

    /// Asks for a page of history; returns the request id the `history` event carries.
    pub fn history(
        &self,
        conversation: &str,
        before: Option<f64>,
        limit: u32,
    ) -> Result<f64, JsValue> {
        let before = before.map(|b| b as u64);
        driver::turn(&self.shared, |s, now| {
            s.history(now, conversation, before, limit)
        })
        .map(|r| r.0 as f64)
        .map_err(refused)
    }

    /// The state now, as the JSON of a `state` event without `previous` and `cause`.
    pub fn status(&self) -> String {
        let d = self.shared.borrow();
        view::state(
            &d.session,
            view::Clock {
                now: Instant::now(),
                wall_ms: js_sys::Date::now(),
            },
        )
    }

    /// The highest sequence number delivered, if any.
    pub fn cursor(&self) -> Option<f64> {
        self.shared.borrow().session.cursor().map(|c| c as f64)
    }

    /// Messages sent but not yet acknowledged.
    #[wasm_bindgen(js_name = pendingCount)]
    pub fn pending_count(&self) -> u32 {
        self.shared.borrow().session.outbox_len() as u32
    }

    /// Closes at once; unacknowledged sends fail with `closed`.
    pub fn close(&self) {
        driver::close(&self.shared);
    }

    /// Refuses new sends, waits up to `timeout_ms` for the pending ones, then closes.
    #[wasm_bindgen(js_name = closeGracefully)]
    pub fn close_gracefully(&self, timeout_ms: f64) {
        let timeout = Duration::from_millis(timeout_ms.max(0.0) as u64);
        driver::turn(&self.shared, |s, now| s.close_gracefully(now, timeout));
    }
}
