//! The class JavaScript sees (`Core`, driven by js/driver.js and wrapped by the package's
//! `Client`): [`Core::open`] taking the options, [`Core::call`] for every call of the application,
//! [`Core::report`] for whatever the browser saw, and [`Core::drain`], which hands the driver what
//! to do after each. Few methods on purpose: each costs its own shim in the `.wasm` and its own
//! wrapper in the glue.
//!
//! Nothing here throws: [`storage_key`] and a refused call answer the JSON of a `LifelineError`
//! (see [`answer`]), and [`Core::open`] answers `undefined` for options it refuses (the wrapper
//! has checked them before).
//!
//! Only the boundary lives here: no logic beyond translating arguments and results. Ids cross as
//! JavaScript numbers (`f64`; they count up from 1, far below 2^53).

use crate::inputs::{self, Report};
use crate::options::{self, Options};
use crate::runner::Runner;
use crate::view::{self, Clock};
use lifeline_core::{text, Config, Input, Instant, SendError, Session};
use std::time::Duration;
use wasm_bindgen::prelude::*;

/// One connection to a Lifeline server. Use it through the package's `Client`.
#[wasm_bindgen]
pub struct Core {
    runner: Runner,
}

#[wasm_bindgen]
extern "C" {
    /// `performance.now()`: milliseconds on the page's monotonic clock.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// The session's clock: the page's monotonic clock in microseconds.
fn now() -> Instant {
    Instant::from_micros((performance_now() * 1000.0) as u64)
}

/// A call's answer: what it gives (an id, or nothing), or, when the session refused it, the JSON
/// of the `LifelineError` — a text that starts with `{`, which no id does. Returned rather than
/// thrown: a throwing method costs its own shim in the `.wasm` and more glue.
fn answer(result: Result<String, SendError>) -> String {
    result.unwrap_or_else(|e| view::send_error(&e))
}

/// The `localStorage` key under which the transport that last worked for `url` is remembered, or,
/// for a URL that is not a server URL, the JSON of the `bad_options` error (a text that starts
/// with `{`, which no key does). The wrapper calls it before [`Core::open`], which therefore
/// never has to explain a bad URL.
#[wasm_bindgen(js_name = storageKey)]
pub fn storage_key(url: &str) -> String {
    match Config::new(url) {
        Ok(c) => options::storage_key(&c),
        Err(e) => view::plain_error("bad_options", &e.describe()),
    }
}

#[wasm_bindgen]
impl Core {
    /// `token` is the token to start with (`""`: none); `transports` is a comma-separated list
    /// (empty for all); `numbers` are the numeric options in the order of `options::NUMERIC`
    /// (`NaN` when absent); `remembered` is the rung stored under [`storage_key`] (`""`: none);
    /// `seed` seeds the jitter unless the options carry one. Texts rather than optional texts:
    /// fewer branches in the shim and the glue.
    ///
    /// `undefined` when the options are refused. The wrapper has checked them all by then (the
    /// URL through [`storage_key`], the token and the transport names itself), so that no error
    /// crosses here: a fallible constructor costs the module its externref table and the glue
    /// that throws from it (about 0.4 KB gzip, docs/BENCHMARKS.md).
    pub fn open(
        url: String,
        token: String,
        transports: String,
        numbers: Vec<f64>,
        token_provider: bool,
        remembered: &str,
        seed: f64,
    ) -> Option<Core> {
        let opts = Options {
            url,
            token: Some(token),
            token_provider,
            transports,
            numbers,
        };
        let config = opts.to_config(seed as u64, Some(remembered)).ok()?;
        Some(Core {
            runner: Runner::new(Session::with_decoder(
                config,
                now(),
                crate::Decoder::default(),
            )),
        })
    }

    /// What to do and to tell after the last call: `[[action…], [event…], delayMs, final]` (see
    /// the `runner` module). `wall_ms` is `Date.now()`.
    pub fn drain(&mut self, wall_ms: f64) -> String {
        self.runner.drain(Clock {
            now: now(),
            wall_ms,
        })
    }

    /// Every call of the application, answering what it gives or, refused, the error JSON (see
    /// [`answer`]). `op` says which; the arguments it does not use are ignored:
    ///
    /// | `op` | call | uses | answers |
    /// |---|---|---|---|
    /// | 0 | join `conversation` | | `""` |
    /// | 1 | leave `conversation` | | `""` |
    /// | 2 | tell `conversation` the user is typing | | `""` |
    /// | 3 | ask for a page of `conversation`'s history | `a` (before), `limit` | the request id of the `history` event |
    /// | 4 | queue `body` for `conversation` | `r0`..`r3` | the message id of its `ack` or `sendFailed` event |
    /// | 5 | start connecting | `a`: `navigator.onLine` (0 or 1) | `""` |
    /// | 6 | close at once (unacknowledged sends fail with `closed`) | | `""` |
    /// | 7 | refuse new sends, wait up to `a` ms for the pending ones, then close | `a` | `""` |
    /// | 8 | the highest sequence number delivered | | it, or `""` for none |
    /// | 9 | how many messages are sent but not yet acknowledged | | the count |
    ///
    /// `r0`..`r3` are four words from `crypto.getRandomValues`, the random bits of a message id;
    /// an absent `a` is `undefined`, which crosses as `NaN`. One method for all: each method costs its own shim in the `.wasm` and its own glue.
    #[allow(clippy::too_many_arguments)]
    pub fn call(
        &mut self,
        op: u32,
        conversation: &str,
        body: &str,
        a: f64,
        limit: u32,
        r0: u32,
        r1: u32,
        r2: u32,
        r3: u32,
    ) -> String {
        let now = now();
        let runner = &mut self.runner;
        let s = &mut runner.session;
        let done = |r: Result<(), SendError>| r.map(|()| String::new());
        answer(match op {
            0 => done(s.subscribe(now, conversation)),
            1 => done(s.unsubscribe(now, conversation)),
            2 => done(s.typing(now, conversation)),
            3 => s
                .history(now, conversation, (!a.is_nan()).then_some(a as u64), limit)
                .map(|r| text!(r.0)),
            4 => {
                let mut random = [0u8; 16];
                for (chunk, word) in random.chunks_exact_mut(4).zip([r0, r1, r2, r3]) {
                    chunk.copy_from_slice(&word.to_le_bytes());
                }
                s.send(now, conversation, body, random).map(|id| id.0)
            }
            5 => {
                if a == 0.0 {
                    runner.input(now, Input::Network { online: false });
                }
                runner.session.connect(now);
                Ok(String::new())
            }
            6 => {
                s.close(now);
                Ok(String::new())
            }
            7 => {
                let timeout = Duration::from_millis(a.max(0.0) as u64);
                s.close_gracefully(now, timeout);
                Ok(String::new())
            }
            8 => Ok(s.cursor().map(|c| text!(c)).unwrap_or_default()),
            _ => Ok(text!(s.outbox_len() as u64)),
        })
    }

    /// One thing the browser saw: see the `inputs` module for the kinds and their arguments. An
    /// absent `a` or `b` is `undefined`, which crosses as `NaN` (plain numbers: an `Option<f64>`
    /// costs a flag per argument in the shim and the glue).
    pub fn report(&mut self, kind: u32, id: f64, a: f64, b: f64, text: Option<String>) {
        let given = |v: f64| (!v.is_nan()).then_some(v);
        match inputs::decode(kind, id, given(a), given(b), text) {
            Some(Report::Input(input)) => self.runner.input(now(), input),
            Some(Report::Timer) => self.runner.timer(now()),
            None => {}
        }
    }
}
