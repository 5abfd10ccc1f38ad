//! The session's [`Action`]s as the JavaScript driver reads them: one JSON array per action, its
//! first element a number naming the kind (the `ACT_*` constants of js/driver.js):
//!
//! | kind | array |
//! |---|---|
//! | 0 open a socket | `[0, socket, "ws" \| "sse", url]` |
//! | 1 send a text frame | `[1, socket, text]` |
//! | 2 close a socket | `[2, socket]` |
//! | 3 start an HTTP request | `[3, request, "GET" \| "POST", url, bearer \| null, body \| null]` |
//! | 4 abandon an HTTP request | `[4, request]` |
//! | 5 fetch a token | `[5]` |
//!
//! Arrays rather than objects: fewer bytes to write here and to read there. Pure translation,
//! compiled on every target and tested natively; nothing is decided here.

use lifeline_core::json::{write_str, write_u64};
use lifeline_core::{Action, HttpMethod, SocketKind};

fn str_or_null(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) => write_str(out, v),
        None => out.push_str("null"),
    }
}

/// Appends `action` to `out` as its JSON array.
pub fn write(out: &mut String, action: &Action) {
    out.push('[');
    match action {
        // The browser keeps the token in a stream's query (`StreamToken::Query`): no bearer here.
        Action::OpenSocket {
            socket, kind, url, ..
        } => {
            out.push_str("0,");
            write_u64(out, socket.0);
            out.push_str(match kind {
                SocketKind::WebSocket => ",\"ws\",",
                SocketKind::EventSource => ",\"sse\",",
            });
            write_str(out, url);
        }
        Action::SendText { socket, text } => {
            out.push_str("1,");
            write_u64(out, socket.0);
            out.push(',');
            write_str(out, text);
        }
        Action::CloseSocket { socket } => {
            out.push_str("2,");
            write_u64(out, socket.0);
        }
        Action::Http {
            request,
            method,
            url,
            bearer,
            body,
        } => {
            out.push_str("3,");
            write_u64(out, request.0);
            out.push_str(match method {
                HttpMethod::Get => ",\"GET\",",
                HttpMethod::Post => ",\"POST\",",
            });
            write_str(out, url);
            out.push(',');
            str_or_null(out, bearer.as_deref());
            out.push(',');
            str_or_null(out, body.as_deref());
        }
        Action::AbortHttp { request } => {
            out.push_str("4,");
            write_u64(out, request.0);
        }
        Action::FetchToken => out.push('5'),
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeline_core::{RequestId, SocketId};
    use serde_json::{json, Value};

    fn encoded(action: Action) -> Value {
        let mut out = String::new();
        write(&mut out, &action);
        serde_json::from_str(&out).expect("valid JSON")
    }

    #[test]
    fn every_action_is_an_array_tagged_by_kind() {
        assert_eq!(
            encoded(Action::OpenSocket {
                socket: SocketId(3),
                kind: SocketKind::WebSocket,
                url: "ws://h/v1/ws?v=1".into(),
                bearer: None,
            }),
            json!([0, 3, "ws", "ws://h/v1/ws?v=1"])
        );
        assert_eq!(
            encoded(Action::OpenSocket {
                socket: SocketId(4),
                kind: SocketKind::EventSource,
                url: "http://h/v1/sse".into(),
                bearer: None,
            }),
            json!([0, 4, "sse", "http://h/v1/sse"])
        );
        assert_eq!(
            encoded(Action::SendText {
                socket: SocketId(3),
                text: "{\"t\":\"ping\"}\n\u{2028}".into()
            }),
            json!([1, 3, "{\"t\":\"ping\"}\n\u{2028}"])
        );
        assert_eq!(
            encoded(Action::CloseSocket {
                socket: SocketId(3)
            }),
            json!([2, 3])
        );
        assert_eq!(
            encoded(Action::Http {
                request: RequestId(9),
                method: HttpMethod::Post,
                url: "http://h/v1/send".into(),
                bearer: Some("tok".into()),
                body: Some("[]".into()),
            }),
            json!([3, 9, "POST", "http://h/v1/send", "tok", "[]"])
        );
        assert_eq!(
            encoded(Action::Http {
                request: RequestId(10),
                method: HttpMethod::Get,
                url: "http://h/v1/poll".into(),
                bearer: None,
                body: None,
            }),
            json!([3, 10, "GET", "http://h/v1/poll", null, null])
        );
        assert_eq!(
            encoded(Action::AbortHttp {
                request: RequestId(10)
            }),
            json!([4, 10])
        );
        assert_eq!(encoded(Action::FetchToken), json!([5]));
    }
}
