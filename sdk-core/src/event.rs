//! What the session tells the application: [`Event`]s, and the typed errors of the calls an
//! application makes ([`SendError`]) and of sends that did not make it ([`SendFailure`]).
//!
//! Types only. Trouble on the network reaches the application as an event, never as a `Result`;
//! `Result` is for mistakes by the caller.

use crate::protocol::{ErrorCode, FrameError, HistoryPage, Message, Seq};
use crate::state::{Cause, State};
use crate::text;
use crate::transport::{RequestId, TransportKind};
use std::fmt;
use std::time::Duration;

/// The id the session gave an outgoing message; it is also the message's idempotency key on the
/// wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId(pub String);

impl MsgId {
    /// The id for a new message, made of 16 random bytes that the driver took from the operating
    /// system's random number generator (never from the session's seeded generator, which two
    /// sessions may share): a UUID version 4 in its 36-character text form, 122 of its bits
    /// random, so ids from any number of sessions, processes and devices do not collide.
    pub fn from_random(random: [u8; 16]) -> MsgId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut bytes = random;
        bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // variant 10xx (RFC 9562)
        let mut id = String::with_capacity(36);
        for (i, b) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                id.push('-');
            }
            id.push(char::from(HEX[usize::from(b >> 4)]));
            id.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        MsgId(id)
    }
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Something the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The state changed, and why.
    StateChanged {
        from: State,
        to: State,
        cause: Cause,
    },
    /// A message, delivered exactly once and in sequence order.
    Message(Message),
    /// The server stored a message the application sent.
    Acked { id: MsgId, seq: Seq },
    /// A message the application sent will not be acknowledged.
    SendFailed { id: MsgId, failure: SendFailure },
    /// Messages between `last_seen` and `resumed_after` are not on the stream: the server could not
    /// resume from the cursor. Fetch them from history if they matter.
    Discontinuity { last_seen: Seq, resumed_after: Seq },
    /// A subscription took effect on the server.
    Subscribed { conv: String },
    /// The server refused a subscription (not allowed) or the frame was bad.
    SubscribeFailed { conv: String, code: ErrorCode },
    /// A member of `conv` came online or went offline.
    Presence {
        conv: String,
        user: String,
        online: bool,
    },
    /// A member of `conv` is typing.
    Typing { conv: String, user: String },
    /// A round trip was measured (WebSocket ping/pong).
    RoundTrip { rtt: Duration },
    /// The transport that last worked for this endpoint changed; a driver may remember it for the
    /// next session (see `Config::initial_transport`).
    TransportWorked { transport: TransportKind },
    /// A history request finished.
    History {
        request: RequestId,
        result: Result<HistoryPage, HistoryError>,
    },
    /// The server reported an error that is not about one send or one subscription.
    ServerError { code: ErrorCode, message: String },
    /// The server sent a frame that breaks the protocol; it was dropped.
    BadFrame {
        transport: TransportKind,
        error: FrameError,
    },
}

/// Why `send` refused a message. The message was not accepted: nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The outbox holds `max_messages` messages or `max_bytes` bytes already.
    OutboxFull { messages: usize, bytes: usize },
    /// The body is larger than the protocol allows.
    TooLarge { len: usize, max: usize },
    /// The conversation id breaks the protocol's rules.
    InvalidConversation { reason: &'static str },
    /// The session is closed or failed.
    Closed,
    /// An ephemeral frame (typing) cannot be queued while no transport is live.
    NotConnected,
}

impl SendError {
    /// Why the call was refused, in words (also the `Display` text).
    pub fn describe(&self) -> String {
        match self {
            SendError::OutboxFull { messages, bytes } => text!(
                "the outbox is full (",
                messages,
                " messages, ",
                bytes,
                " bytes waiting)"
            ),
            SendError::TooLarge { len, max } => {
                text!("the body is ", len, " bytes, more than the limit of ", max)
            }
            SendError::InvalidConversation { reason } => {
                text!("invalid conversation id: ", reason)
            }
            SendError::Closed => "the client is closed".into(),
            SendError::NotConnected => "not connected".into(),
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::error::Error for SendError {}

/// Why an accepted message was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendFailure {
    /// No acknowledgement within the send timeout. The server may or may not have stored it.
    Timeout,
    /// The server refused the message for good (for example `forbidden`, `too_large`, or
    /// `id_reused`: the server holds another message under this id, so this one was not stored).
    Rejected { code: ErrorCode, message: String },
    /// The session was closed or failed before the message was acknowledged.
    Closed,
}

impl SendFailure {
    /// Why the message was not acknowledged, in words (also the `Display` text).
    pub fn describe(&self) -> String {
        match self {
            SendFailure::Timeout => "no acknowledgement before the send timeout".into(),
            SendFailure::Rejected { code, message } => {
                text!("rejected by the server (", code, "): ", message)
            }
            SendFailure::Closed => "the client closed before the acknowledgement".into(),
        }
    }
}

impl fmt::Display for SendFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::error::Error for SendFailure {}

/// Why a history request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HistoryError {
    /// The server answered with an error.
    Server {
        status: u16,
        code: Option<ErrorCode>,
        message: String,
    },
    /// The request failed on the network.
    Network { detail: String },
    /// The response was not a history page.
    BadResponse { detail: String },
    /// The session closed first.
    Closed,
}

impl HistoryError {
    /// Why the request failed, in words (also the `Display` text).
    pub fn describe(&self) -> String {
        match self {
            HistoryError::Server {
                status,
                code,
                message,
            } => match code {
                Some(code) => text!("HTTP ", status, " (", code, "): ", message),
                None => text!("HTTP ", status, ": ", message),
            },
            HistoryError::Network { detail } => text!("network error: ", detail),
            HistoryError::BadResponse { detail } => text!("bad response: ", detail),
            HistoryError::Closed => "the client is closed".into(),
        }
    }
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::error::Error for HistoryError {}
