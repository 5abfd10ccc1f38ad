//! What the JavaScript driver reports, as it crosses into the `.wasm`: one call,
//! `core.report(kind, id, a, b, text)`, whose `kind` (the `IN_*` constants of js/driver.js) says
//! what happened and which of the other arguments carry it:
//!
//! | kind | what happened | `id` | `a` | `b` | `text` |
//! |---|---|---|---|---|---|
//! | 0 | a socket opened | socket | | | |
//! | 1 | a text frame arrived | socket | | | the frame |
//! | 2 | a binary message arrived | socket | its length | | |
//! | 3 | an open socket closed | socket | close code? | | reason |
//! | 4 | a socket failed | socket | HTTP status? | | detail |
//! | 5 | an HTTP response | request | status | `Retry-After` s? | body |
//! | 6 | an HTTP request got no response | request | | | detail |
//! | 7 | `getToken` gave a token | | | | the token |
//! | 8 | `getToken` failed | | | | why |
//! | 9 | `online` (`a` = 1) or `offline` (`a` = 0) | | 0 or 1 | | |
//! | 10 | the page became visible (`a` = 1) or hidden | | 0 or 1 | | |
//! | 11 | a frozen page came back (`resume`, `pageshow`) | | | | |
//! | 12 | the timer fired | | | | |
//!
//! One entry point instead of one per kind: each `#[wasm_bindgen]` method costs its own shim in
//! the `.wasm` and its own wrapper in the glue. Pure translation into [`Input`], compiled on every
//! target and tested natively; nothing is decided here.

use lifeline_core::{Input, RequestId, SocketId, TransportFailure};
use std::time::Duration;

/// One report, decoded.
#[derive(Debug, PartialEq)]
pub enum Report {
    /// A fact for the session.
    Input(Input),
    /// The `setTimeout` armed after the last turn fired.
    Timer,
}

/// Decodes one report; `None` for a kind this version does not know.
pub fn decode(
    kind: u32,
    id: f64,
    a: Option<f64>,
    b: Option<f64>,
    text: Option<String>,
) -> Option<Report> {
    let socket = SocketId(id as u64);
    let request = RequestId(id as u64);
    let text = text.unwrap_or_default();
    let flag = a.is_some_and(|v| v != 0.0);
    let input = match kind {
        0 => Input::SocketOpened { socket },
        1 => Input::SocketText { socket, text },
        2 => Input::SocketBinary {
            socket,
            len: a.unwrap_or(0.0) as usize,
        },
        3 => Input::SocketClosed {
            socket,
            code: a.map(|c| c as u16),
            reason: text,
        },
        4 => Input::SocketFailed {
            socket,
            failure: TransportFailure {
                kind: if a.is_some() {
                    lifeline_core::FailureKind::Status
                } else {
                    lifeline_core::FailureKind::Other
                },
                status: a.map(|s| s as u16),
                retry_after: None,
                detail: text,
            },
        },
        5 => Input::HttpResponse {
            request,
            status: a.unwrap_or(0.0) as u16,
            retry_after: b.map(|s| Duration::from_secs(s as u64)),
            body: text,
        },
        6 => Input::HttpFailed {
            request,
            kind: lifeline_core::FailureKind::Other,
            detail: text,
        },
        7 => Input::Token(Ok(text)),
        8 => Input::Token(Err(text)),
        9 => Input::Network { online: flag },
        10 => Input::Visibility { visible: flag },
        11 => Input::Resumed,
        12 => return Some(Report::Timer),
        _ => return None,
    };
    Some(Report::Input(input))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(kind: u32, id: f64, a: Option<f64>, b: Option<f64>, text: &str) -> Input {
        match decode(kind, id, a, b, Some(text.into())) {
            Some(Report::Input(input)) => input,
            other => panic!("kind {kind}: {other:?}"),
        }
    }

    #[test]
    fn every_kind_decodes_to_its_input() {
        let s = SocketId(7);
        let r = RequestId(9);
        assert_eq!(
            input(0, 7.0, None, None, ""),
            Input::SocketOpened { socket: s }
        );
        assert_eq!(
            input(1, 7.0, None, None, "{}"),
            Input::SocketText {
                socket: s,
                text: "{}".into()
            }
        );
        assert_eq!(
            input(2, 7.0, Some(12.0), None, ""),
            Input::SocketBinary { socket: s, len: 12 }
        );
        assert_eq!(
            input(3, 7.0, Some(4401.0), None, "bye"),
            Input::SocketClosed {
                socket: s,
                code: Some(4401),
                reason: "bye".into()
            }
        );
        assert_eq!(
            input(3, 7.0, None, None, "ended"),
            Input::SocketClosed {
                socket: s,
                code: None,
                reason: "ended".into()
            }
        );
        assert_eq!(
            input(4, 7.0, Some(401.0), None, "refused"),
            Input::SocketFailed {
                socket: s,
                failure: TransportFailure::status(401, None, "refused")
            }
        );
        assert_eq!(
            input(4, 7.0, None, None, "reset"),
            Input::SocketFailed {
                socket: s,
                failure: TransportFailure::network("reset")
            }
        );
        assert_eq!(
            input(5, 9.0, Some(429.0), Some(2.0), "[]"),
            Input::HttpResponse {
                request: r,
                status: 429,
                retry_after: Some(Duration::from_secs(2)),
                body: "[]".into()
            }
        );
        assert_eq!(
            input(6, 9.0, None, None, "offline"),
            Input::HttpFailed {
                request: r,
                kind: lifeline_core::FailureKind::Other,
                detail: "offline".into()
            }
        );
        assert_eq!(
            input(7, 0.0, None, None, "tok"),
            Input::Token(Ok("tok".into()))
        );
        assert_eq!(
            input(8, 0.0, None, None, "no"),
            Input::Token(Err("no".into()))
        );
        assert_eq!(
            input(9, 0.0, Some(0.0), None, ""),
            Input::Network { online: false }
        );
        assert_eq!(
            input(9, 0.0, Some(1.0), None, ""),
            Input::Network { online: true }
        );
        assert_eq!(
            input(10, 0.0, Some(1.0), None, ""),
            Input::Visibility { visible: true }
        );
        assert_eq!(input(11, 0.0, None, None, ""), Input::Resumed);
        assert_eq!(decode(12, 0.0, None, None, None), Some(Report::Timer));
        assert_eq!(decode(13, 0.0, None, None, None), None);
    }
}
