//! The three transports of the ladder, and the identifiers that name one attempt to use a
//! transport or one HTTP request.
//!
//! Identifiers are generation counters handed out by the session: a report about an id the
//! session has already given up on is recognised as late and ignored. Nothing here decides anything.

use std::fmt;

/// A rung of the transport ladder, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransportKind {
    /// A WebSocket: full duplex, cheapest per message.
    WebSocket,
    /// A Server-Sent Events stream, with sends over HTTP POST.
    Sse,
    /// Long polling, with sends over HTTP POST.
    LongPoll,
}

impl TransportKind {
    /// Every rung, best first.
    pub const ALL: [TransportKind; 3] = [
        TransportKind::WebSocket,
        TransportKind::Sse,
        TransportKind::LongPoll,
    ];

    /// The name used in logs, in the JavaScript API and when a driver remembers the rung:
    /// `websocket`, `sse` or `long-poll`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::WebSocket => "websocket",
            TransportKind::Sse => "sse",
            TransportKind::LongPoll => "long-poll",
        }
    }

    /// The inverse of [`TransportKind::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "websocket" | "ws" => Some(TransportKind::WebSocket),
            "sse" => Some(TransportKind::Sse),
            "long-poll" | "longpoll" | "poll" => Some(TransportKind::LongPoll),
            _ => None,
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names one attempt to open a socket (a WebSocket or an SSE stream), from the `Open` action until
/// the session lets go of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u64);

/// Names one HTTP request (a poll, a send batch, a history page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

impl crate::text::Piece for TransportKind {
    fn push_to(&self, out: &mut String) {
        out.push_str(self.as_str());
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "socket#{}", self.0)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request#{}", self.0)
    }
}

/// The kind of socket a driver is asked to open. Long polling needs no socket: the session drives
/// it with HTTP requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketKind {
    /// A WebSocket carrying text frames.
    WebSocket,
    /// A Server-Sent Events stream (`EventSource`); each event's data is one frame.
    EventSource,
}
