//! What crosses the boundary between the session and a driver: the [`Input`]s a driver reports
//! (facts about sockets, HTTP requests, tokens and the platform) and the [`Action`]s the session asks
//! the driver to carry out.
//!
//! A driver performs actions literally and reports what happened; it decides nothing. Types only.

use crate::transport::{RequestId, SocketId, SocketKind};
use std::time::Duration;

/// A fact reported by the driver. Its `Debug` output hides the token of [`Input::Token`].
#[derive(Clone, PartialEq, Eq)]
pub enum Input {
    /// The socket opened (WebSocket upgrade done, or SSE response `200` with headers received).
    SocketOpened { socket: SocketId },
    /// One frame arrived: a WebSocket text message, or the `data` of one SSE event.
    SocketText { socket: SocketId, text: String },
    /// A WebSocket binary message arrived; the protocol has none, so it is counted as a bad frame.
    SocketBinary { socket: SocketId, len: usize },
    /// An SSE `retry:` field arrived.
    SocketRetryHint { socket: SocketId, delay: Duration },
    /// The socket closed after it had opened: a WebSocket close (with its code) or the end of an
    /// SSE response body.
    SocketClosed {
        socket: SocketId,
        code: Option<u16>,
        reason: String,
    },
    /// The socket failed: it could not open (refused, DNS, TLS, an HTTP status other than the
    /// expected one) or it broke.
    SocketFailed {
        socket: SocketId,
        failure: TransportFailure,
    },
    /// An HTTP request completed with a response, whatever its status.
    HttpResponse {
        request: RequestId,
        status: u16,
        /// The `Retry-After` header, if present and in seconds.
        retry_after: Option<Duration>,
        body: String,
    },
    /// An HTTP request failed without a response (network error, aborted). `kind` says what the
    /// driver could tell about the failure; the session decides what it means.
    HttpFailed {
        request: RequestId,
        kind: FailureKind,
        detail: String,
    },
    /// The application's token provider answered a [`Action::FetchToken`].
    Token(Result<String, String>),
    /// The platform's network state changed (`online` / `offline` events).
    Network { online: bool },
    /// The page became visible or hidden.
    Visibility { visible: bool },
    /// The process or page was frozen or asleep, or the clock jumped: timers may have fired late
    /// and sockets may be dead. The session checks liveness at once.
    Resumed,
}

/// What a driver could tell about a failure without a response, as far as its platform lets it
/// see (a browser sees almost nothing: it reports [`FailureKind::Other`]). The driver only
/// classifies; what each kind means (a dead host, a bad rung, a fatal error) is the session's
/// decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailureKind {
    /// Anything else, or unknown: a reset, a broken stream, a browser's opaque error event.
    #[default]
    Other,
    /// The TCP connection was refused: nothing listens on the server's address.
    Refused,
    /// The server's host name did not resolve.
    Dns,
    /// No route to the host, or the network is unreachable.
    Unreachable,
    /// The server's TLS certificate was not accepted (unknown issuer, expired, wrong name, ...).
    Certificate,
    /// Another TLS failure (handshake, protocol), or TLS is not available in this build.
    Tls,
    /// The server answered with an unexpected HTTP status (see [`TransportFailure::status`]).
    Status,
}

/// How a socket failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportFailure {
    /// What kind of failure it was, as far as the driver could tell.
    pub kind: FailureKind,
    /// The HTTP status of a refused upgrade or SSE request, when the driver could see one.
    pub status: Option<u16>,
    /// The `Retry-After` header of that response, if any.
    pub retry_after: Option<Duration>,
    /// A human-readable description for logs.
    pub detail: String,
}

impl TransportFailure {
    /// A failure without an HTTP status (connection refused, reset, DNS, a browser error event).
    pub fn network(detail: impl Into<String>) -> Self {
        TransportFailure::of_kind(FailureKind::Other, detail)
    }

    /// A failure without an HTTP status, of a known kind.
    pub fn of_kind(kind: FailureKind, detail: impl Into<String>) -> Self {
        TransportFailure {
            kind,
            status: None,
            retry_after: None,
            detail: detail.into(),
        }
    }

    /// A failure with an HTTP status.
    pub fn status(status: u16, retry_after: Option<Duration>, detail: impl Into<String>) -> Self {
        TransportFailure {
            kind: FailureKind::Status,
            status: Some(status),
            retry_after,
            detail: detail.into(),
        }
    }
}

/// The HTTP method of an [`Action::Http`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
}

/// Something the session asks the driver to do. Its `Debug` output hides every token (`bearer`
/// and a `token` query parameter).
#[derive(Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a socket to `url`. Report `SocketOpened`, then `SocketText`s, then `SocketClosed` or
    /// `SocketFailed`, all tagged with `socket`. For an SSE stream, the driver must not reconnect
    /// by itself: when the stream ends or fails, it reports that and stops. `bearer`, when
    /// present, goes in `Authorization: Bearer …` on the upgrade or stream request
    /// ([`crate::StreamToken::Header`]); with [`crate::StreamToken::Query`] it is `None` and the
    /// token is in `url`.
    OpenSocket {
        socket: SocketId,
        kind: SocketKind,
        url: String,
        bearer: Option<String>,
    },
    /// Send one text frame on an open WebSocket.
    SendText { socket: SocketId, text: String },
    /// Close the socket and forget it; report nothing more about it.
    CloseSocket { socket: SocketId },
    /// Perform an HTTP request and report `HttpResponse` or `HttpFailed`. `bearer`, when present,
    /// goes in `Authorization: Bearer …`; a `body` is JSON (`Content-Type: application/json`).
    Http {
        request: RequestId,
        method: HttpMethod,
        url: String,
        bearer: Option<String>,
        body: Option<String>,
    },
    /// Abandon an HTTP request (the session no longer waits for it); report nothing more about it.
    AbortHttp { request: RequestId },
    /// Ask the application's token provider for a fresh token; report it with `Input::Token`.
    /// The session never has more than one such request in flight.
    FetchToken,
}

/// What `Debug` shows instead of a secret.
const HIDDEN: &str = "***";

/// `url` with the value of a `token` query parameter hidden.
fn hide_query_token(url: &str) -> String {
    match url.find("token=") {
        Some(at) if at > 0 && matches!(url.as_bytes()[at - 1], b'?' | b'&') => {
            let value_at = at + "token=".len();
            let end = url[value_at..]
                .find('&')
                .map_or(url.len(), |i| value_at + i);
            let mut out = String::with_capacity(url.len());
            out.push_str(&url[..value_at]);
            out.push_str(HIDDEN);
            out.push_str(&hide_query_token(&url[end..]));
            out
        }
        _ => url.to_string(),
    }
}

fn hide(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| HIDDEN)
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::OpenSocket {
                socket,
                kind,
                url,
                bearer,
            } => f
                .debug_struct("OpenSocket")
                .field("socket", socket)
                .field("kind", kind)
                .field("url", &hide_query_token(url))
                .field("bearer", &hide(bearer))
                .finish(),
            Action::SendText { socket, text } => f
                .debug_struct("SendText")
                .field("socket", socket)
                .field("text", text)
                .finish(),
            Action::CloseSocket { socket } => f
                .debug_struct("CloseSocket")
                .field("socket", socket)
                .finish(),
            Action::Http {
                request,
                method,
                url,
                bearer,
                body,
            } => f
                .debug_struct("Http")
                .field("request", request)
                .field("method", method)
                .field("url", &hide_query_token(url))
                .field("bearer", &hide(bearer))
                .field("body", body)
                .finish(),
            Action::AbortHttp { request } => f
                .debug_struct("AbortHttp")
                .field("request", request)
                .finish(),
            Action::FetchToken => f.write_str("FetchToken"),
        }
    }
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::SocketOpened { socket } => f
                .debug_struct("SocketOpened")
                .field("socket", socket)
                .finish(),
            Input::SocketText { socket, text } => f
                .debug_struct("SocketText")
                .field("socket", socket)
                .field("text", text)
                .finish(),
            Input::SocketBinary { socket, len } => f
                .debug_struct("SocketBinary")
                .field("socket", socket)
                .field("len", len)
                .finish(),
            Input::SocketRetryHint { socket, delay } => f
                .debug_struct("SocketRetryHint")
                .field("socket", socket)
                .field("delay", delay)
                .finish(),
            Input::SocketClosed {
                socket,
                code,
                reason,
            } => f
                .debug_struct("SocketClosed")
                .field("socket", socket)
                .field("code", code)
                .field("reason", reason)
                .finish(),
            Input::SocketFailed { socket, failure } => f
                .debug_struct("SocketFailed")
                .field("socket", socket)
                .field("failure", failure)
                .finish(),
            Input::HttpResponse {
                request,
                status,
                retry_after,
                body,
            } => f
                .debug_struct("HttpResponse")
                .field("request", request)
                .field("status", status)
                .field("retry_after", retry_after)
                .field("body", body)
                .finish(),
            Input::HttpFailed {
                request,
                kind,
                detail,
            } => f
                .debug_struct("HttpFailed")
                .field("request", request)
                .field("kind", kind)
                .field("detail", detail)
                .finish(),
            Input::Token(result) => f
                .debug_tuple("Token")
                .field(&result.as_ref().map(|_| HIDDEN))
                .finish(),
            Input::Network { online } => f.debug_struct("Network").field("online", online).finish(),
            Input::Visibility { visible } => f
                .debug_struct("Visibility")
                .field("visible", visible)
                .finish(),
            Input::Resumed => f.write_str("Resumed"),
        }
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_output_hides_every_token() {
        let action = Action::OpenSocket {
            socket: SocketId(1),
            kind: SocketKind::WebSocket,
            url: "ws://h/v1/ws?v=1&token=s3cret&cursor=2".into(),
            bearer: Some("s3cret".into()),
        };
        let http = Action::Http {
            request: RequestId(2),
            method: HttpMethod::Get,
            url: "http://h/v1/poll?token=s3cret".into(),
            bearer: Some("s3cret".into()),
            body: None,
        };
        let input = Input::Token(Ok("s3cret".into()));
        for text in [
            format!("{action:?}"),
            format!("{http:?}"),
            format!("{input:?}"),
        ] {
            assert!(!text.contains("s3cret"), "{text}");
            assert!(text.contains("***"), "{text}");
        }
        assert_eq!(
            hide_query_token("ws://h/v1/ws?v=1&token=a&cursor=2"),
            "ws://h/v1/ws?v=1&token=***&cursor=2"
        );
        assert_eq!(
            hide_query_token("http://h/x?mytoken=a"),
            "http://h/x?mytoken=a"
        );
    }
}
