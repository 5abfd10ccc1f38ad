//! The two socket transports as the browser offers them: `WebSocket` and `EventSource`. Each
//! socket owns the JS closures behind its handlers and reports what happened, literally, as
//! session inputs.
//!
//! An `EventSource` is closed on its first error, so the browser never reconnects behind the
//! session's back; when it failed before opening, a plain `fetch` of the same URL learns the HTTP
//! status the `EventSource` API hides (so that a 401 reads as "refresh the token", not as a
//! network failure). No retry, no timeout and no decision lives here.

use crate::driver::{self, Driver};
use lifeline_core::{Input, SocketId, TransportFailure};
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{BinaryType, CloseEvent, EventSource, MessageEvent, WebSocket};

type Handler = Closure<dyn FnMut(JsValue)>;

/// An open or opening socket and the closures its handlers point at.
pub(crate) enum Socket {
    WebSocket {
        ws: WebSocket,
        _handlers: [Handler; 3],
    },
    EventSource {
        es: EventSource,
        _handlers: [Handler; 3],
    },
}

impl Socket {
    /// Sends one text frame (WebSocket only; the session never asks this of an SSE stream).
    pub(crate) fn send(&self, text: &str) -> Result<(), String> {
        match self {
            Socket::WebSocket { ws, .. } => {
                ws.send_with_str(text).map_err(|e| driver::describe(&e))
            }
            Socket::EventSource { .. } => Err("an event stream cannot send".into()),
        }
    }

    /// Detaches every handler and closes: nothing more is reported about this socket.
    pub(crate) fn close(&self) {
        match self {
            Socket::WebSocket { ws, .. } => {
                ws.set_onopen(None);
                ws.set_onmessage(None);
                ws.set_onclose(None);
                let _ = ws.close_with_code(1000);
            }
            Socket::EventSource { es, .. } => {
                es.set_onopen(None);
                es.set_onmessage(None);
                es.set_onerror(None);
                es.close();
            }
        }
    }
}

fn handler(f: impl FnMut(JsValue) + 'static) -> Handler {
    Closure::new(f)
}

/// `new WebSocket(url)` with its handlers.
pub(crate) fn open_websocket(
    weak: &Weak<RefCell<Driver>>,
    socket: SocketId,
    url: &str,
) -> Result<Socket, String> {
    let ws = WebSocket::new(url).map_err(|e| driver::describe(&e))?;
    ws.set_binary_type(BinaryType::Arraybuffer);
    let opened = Rc::new(Cell::new(false));

    let (w, o) = (weak.clone(), opened.clone());
    let on_open = handler(move |_| {
        o.set(true);
        driver::report(&w, Input::SocketOpened { socket });
    });
    let w = weak.clone();
    let on_message = handler(move |e| {
        let data = e.unchecked_into::<MessageEvent>().data();
        let input = match data.as_string() {
            Some(text) => Input::SocketText { socket, text },
            None => Input::SocketBinary {
                socket,
                len: js_sys::ArrayBuffer::from(data).byte_length() as usize,
            },
        };
        driver::report(&w, input);
    });
    let w = weak.clone();
    let on_close = handler(move |e| {
        let e = e.unchecked_into::<CloseEvent>();
        let input = if opened.get() {
            Input::SocketClosed {
                socket,
                code: Some(e.code()),
                reason: e.reason(),
            }
        } else {
            Input::SocketFailed {
                socket,
                failure: TransportFailure::network(format!(
                    "the WebSocket closed before opening (code {})",
                    e.code()
                )),
            }
        };
        driver::report(&w, input);
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    Ok(Socket::WebSocket {
        ws,
        _handlers: [on_open, on_message, on_close],
    })
}

/// `new EventSource(url)` with its handlers; see the module doc for what happens on error.
pub(crate) fn open_event_source(
    weak: &Weak<RefCell<Driver>>,
    socket: SocketId,
    url: &str,
) -> Result<Socket, String> {
    let es = EventSource::new(url).map_err(|e| driver::describe(&e))?;
    let opened = Rc::new(Cell::new(false));

    let (w, o) = (weak.clone(), opened.clone());
    let on_open = handler(move |_| {
        o.set(true);
        driver::report(&w, Input::SocketOpened { socket });
    });
    let w = weak.clone();
    let on_message = handler(move |e| {
        if let Some(text) = e.unchecked_into::<MessageEvent>().data().as_string() {
            driver::report(&w, Input::SocketText { socket, text });
        }
    });
    let (w, target, url) = (weak.clone(), es.clone(), url.to_string());
    let on_error = handler(move |_| {
        // Stop the browser's own reconnection first; the session decides what happens next.
        target.close();
        if opened.get() {
            driver::report(
                &w,
                Input::SocketClosed {
                    socket,
                    code: None,
                    reason: "the event stream ended or broke".into(),
                },
            );
        } else {
            let (w, url) = (w.clone(), url.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let status = crate::http::status_of(&url).await;
                let failure = match status {
                    Some(status) if status != 200 => TransportFailure::status(
                        status,
                        None,
                        format!("the event stream was refused with HTTP {status}"),
                    ),
                    _ => TransportFailure::network("the event stream could not be opened"),
                };
                driver::report(&w, Input::SocketFailed { socket, failure });
            });
        }
    });
    es.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    es.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    es.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    Ok(Socket::EventSource {
        es,
        _handlers: [on_open, on_message, on_error],
    })
}
