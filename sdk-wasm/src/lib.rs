//! # lifeline-wasm
//!
//! The browser driver of [`lifeline_core::Session`], compiled to WebAssembly and wrapped by the
//! `@lifeline/client` npm package (`cargo xtask npm`). It carries out the session's actions with
//! the browser's own APIs — `WebSocket`, `EventSource`, `fetch` with `AbortController`, one
//! `setTimeout` — and turns browser signals (`online`/`offline`, `visibilitychange`, a frozen tab
//! coming back) into session inputs. It decides nothing: every move on the transport ladder, every
//! retry and every timeout is the core's.
//!
//! Layout:
//! - [`options`] and [`view`]: the JSON that crosses into and out of JavaScript. Pure, compiled and
//!   tested on every target.
//! - `driver` (the run loop), `sockets`, `http`, `platform` and `api` (the `#[wasm_bindgen]`
//!   class): browser-only, compiled for `wasm32` alone.
//!
//! What must not live here: protocol rules, retry policy, or any state the session already keeps.

pub mod options;
pub mod view;

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod driver;
#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
mod platform;
#[cfg(target_arch = "wasm32")]
mod sockets;

#[cfg(target_arch = "wasm32")]
pub use api::Core;

/// The module's allocator: talc in place of the standard library's dlmalloc, which is several
/// kilobytes larger in the `.wasm` (single-threaded: the module is built without atomics).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
