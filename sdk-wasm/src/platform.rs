//! The page and the network as session inputs: `online`/`offline` (`Input::Network`),
//! `visibilitychange` (`Input::Visibility`), and a frozen or back-forward-cached page coming back
//! (`resume`, `pageshow` → `Input::Resumed`). Also the browser's storage and randomness: the rung
//! that last worked, remembered per endpoint in `localStorage`, and the session's seed.
//!
//! Listeners only report; what a signal means is the session's business.

use crate::driver::{self, Driver};
use lifeline_core::Input;
use std::cell::RefCell;
use std::rc::Weak;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{EventTarget, VisibilityState};

type Listener = (EventTarget, &'static str, Closure<dyn FnMut(JsValue)>);

/// The page listeners a driver installed; removed by [`Listeners::remove`].
pub(crate) struct Listeners(Vec<Listener>);

impl Listeners {
    /// Listens to the window and the document, reporting to `weak`'s driver.
    pub(crate) fn install(weak: &Weak<RefCell<Driver>>) -> Listeners {
        let mut all = Vec::new();
        let Some(window) = web_sys::window() else {
            return Listeners(all);
        };
        let document = window.document();
        let mut add = |target: &EventTarget, name: &'static str, input: fn() -> Input| {
            let w = weak.clone();
            let cb = Closure::<dyn FnMut(JsValue)>::new(move |_| driver::report(&w, input()));
            if target
                .add_event_listener_with_callback(name, cb.as_ref().unchecked_ref())
                .is_ok()
            {
                all.push((target.clone(), name, cb));
            }
        };
        add(&window, "online", || Input::Network { online: true });
        add(&window, "offline", || Input::Network { online: false });
        add(&window, "pageshow", || Input::Resumed);
        if let Some(document) = &document {
            add(document, "resume", || Input::Resumed);
            add(document, "visibilitychange", || Input::Visibility {
                visible: is_visible(),
            });
        }
        Listeners(all)
    }

    pub(crate) fn remove(self) {
        for (target, name, cb) in self.0 {
            let _ = target.remove_event_listener_with_callback(name, cb.as_ref().unchecked_ref());
        }
    }
}

fn is_visible() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_none_or(|d| d.visibility_state() == VisibilityState::Visible)
}

/// Whether the browser believes it is online now (`navigator.onLine`).
pub(crate) fn online() -> bool {
    web_sys::window().is_none_or(|w| w.navigator().on_line())
}

/// The rung remembered under `key`, if storage is available.
pub(crate) fn remembered(key: &str) -> Option<String> {
    let storage = web_sys::window()?.local_storage().ok()??;
    storage.get_item(key).ok()?
}

/// Remembers `transport` under `key`; storage that is full or forbidden is ignored.
pub(crate) fn remember(key: &str, transport: &str) {
    if let Some(Ok(Some(storage))) = web_sys::window().map(|w| w.local_storage()) {
        let _ = storage.set_item(key, transport);
    }
}

/// 64 random bits for the session's seed (`Math.random`: jitter needs spread, not secrecy).
pub(crate) fn seed() -> u64 {
    let half = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (half() << 32) | half()
}
