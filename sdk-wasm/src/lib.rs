//! # lifeline-wasm
//!
//! The WebAssembly half of the browser SDK, `@lifeline/client` (`cargo xtask npm`): it runs
//! [`lifeline_core::Session`] for the JavaScript half. The browser driver, `js/driver.js`, carries
//! out the session's actions with the browser's own objects — `WebSocket`, `EventSource`, `fetch`
//! with `AbortController`, one `setTimeout` — and reports what it saw (sockets, responses, tokens,
//! `online`/`offline`, `visibilitychange`, a frozen page coming back) through `Core.report`; after
//! every call, `Core.drain` hands it the next actions, the events for the app and the timer delay.
//! Neither half decides anything: every move on the transport ladder, every retry and every
//! timeout is the core's.
//!
//! Layout:
//! - [`options`], [`view`], [`actions`], [`inputs`] and [`runner`]: the session and the JSON that
//!   crosses into and out of JavaScript. Pure, compiled and tested on every target.
//! - `api` (the `#[wasm_bindgen]` class `Core`): compiled for `wasm32` alone.
//!
//! What must not live here or there: protocol rules, retry policy, or any state the session
//! already keeps.

pub mod actions;
pub mod inputs;
pub mod options;
pub mod runner;
pub mod view;

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
pub mod browser_json;

/// What reads the JSON the session receives: the browser's `JSON.parse` in the `.wasm`
/// (`browser_json`), the core's own reader in native builds and tests of this crate.
#[cfg(target_arch = "wasm32")]
pub type Decoder = browser_json::BrowserJson;
/// What reads the JSON the session receives: the browser's `JSON.parse` in the `.wasm`
/// (`browser_json`), the core's own reader in native builds and tests of this crate.
#[cfg(not(target_arch = "wasm32"))]
pub type Decoder = lifeline_core::protocol::OwnJson;

#[cfg(target_arch = "wasm32")]
pub use api::Core;

/// The module's allocator: talc in place of the standard library's dlmalloc, which is several
/// kilobytes larger in the `.wasm` (single-threaded: the module is built without atomics).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
