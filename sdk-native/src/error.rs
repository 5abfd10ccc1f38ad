//! The typed errors of the public API: why a call was refused or did not complete.
//!
//! Types only. Trouble on the network is not an error of any call: the client reconnects by itself
//! and reports it as [`crate::Event::StateChanged`]. These errors are about one call.

use lifeline_core::ErrorCode;

/// Why [`crate::ClientBuilder::build`] refused a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The URL is not an `http(s)://` or `ws(s)://` base URL.
    #[error("bad server URL: {0}")]
    BadUrl(String),
    /// `build` was called outside a tokio runtime.
    #[error("the client must be built inside a tokio runtime")]
    NoRuntime,
    /// TLS could not be set up: an added CA certificate is unreadable, or no CA is trusted at all.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The URL is `https://` or `wss://` (or a CA was added) but this build has no TLS (the `tls`
    /// feature of the `lifeline` crate is off).
    #[error("https:// and wss:// need the `tls` feature of the lifeline crate, which is off")]
    TlsNotCompiled,
}

/// Why [`crate::Client::send`] did not resolve with the server's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The outbox already holds its maximum of messages or bytes; nothing was queued.
    #[error("the outbox is full ({messages} messages, {bytes} bytes waiting)")]
    OutboxFull { messages: usize, bytes: usize },
    /// The body is larger than the protocol allows; nothing was queued.
    #[error("the body is {len} bytes, more than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    /// The conversation id breaks the protocol's rules; nothing was queued.
    #[error("invalid conversation id: {reason}")]
    InvalidConversation { reason: &'static str },
    /// No acknowledgement within the send timeout. The server may or may not have stored it.
    #[error("no acknowledgement before the send timeout")]
    Timeout,
    /// The server refused the message for good (for example `forbidden`, `too_large`, or
    /// `id_reused`: it holds another message under this id, so this one was not stored).
    #[error("rejected by the server ({code}): {message}")]
    Rejected { code: ErrorCode, message: String },
    /// The operating system's random number generator failed, so the message could not get an id
    /// that no other message has; nothing was queued.
    #[error("no random bytes from the operating system for the message id")]
    NoRandomness,
    /// The client closed (or failed for good) before the acknowledgement.
    #[error("the client is closed")]
    Closed,
    /// [`crate::COMMAND_QUEUE`] calls are already waiting for the client's task; nothing was
    /// queued. Slow down and retry.
    #[error("too many calls are waiting for the client; nothing was queued")]
    QueueFull,
}

/// Why [`crate::Client::subscribe`], [`crate::Client::unsubscribe`] or [`crate::Client::typing`]
/// did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The conversation id breaks the protocol's rules.
    #[error("invalid conversation id: {reason}")]
    InvalidConversation { reason: &'static str },
    /// `typing` is ephemeral and is refused while no transport is live.
    #[error("not connected")]
    NotConnected,
    /// The server refused the subscription (for example `forbidden`).
    #[error("refused by the server ({code})")]
    Rejected { code: ErrorCode },
    /// The client is closed or failed for good.
    #[error("the client is closed")]
    Closed,
}

/// Why [`crate::Client::history`] did not return a page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The conversation id breaks the protocol's rules.
    #[error("invalid conversation id: {reason}")]
    InvalidConversation { reason: &'static str },
    /// The server answered with an error status (403 `forbidden` when not a member).
    #[error("HTTP {status}: {message}")]
    Server {
        status: u16,
        code: Option<ErrorCode>,
        message: String,
    },
    /// The request failed on the network.
    #[error("network error: {0}")]
    Network(String),
    /// The response was not a history page.
    #[error("bad response: {0}")]
    BadResponse(String),
    /// The client is closed or failed for good.
    #[error("the client is closed")]
    Closed,
}

impl From<lifeline_core::SendError> for SendError {
    fn from(e: lifeline_core::SendError) -> Self {
        use lifeline_core::SendError as E;
        match e {
            E::OutboxFull { messages, bytes } => SendError::OutboxFull { messages, bytes },
            E::TooLarge { len, max } => SendError::TooLarge { len, max },
            E::InvalidConversation { reason } => SendError::InvalidConversation { reason },
            // `NotConnected` only concerns ephemeral frames; `Closed` and anything newer end here.
            _ => SendError::Closed,
        }
    }
}

impl From<lifeline_core::SendFailure> for SendError {
    fn from(f: lifeline_core::SendFailure) -> Self {
        use lifeline_core::SendFailure as F;
        match f {
            F::Timeout => SendError::Timeout,
            F::Rejected { code, message } => SendError::Rejected { code, message },
            _ => SendError::Closed,
        }
    }
}

impl From<lifeline_core::SendError> for CallError {
    fn from(e: lifeline_core::SendError) -> Self {
        use lifeline_core::SendError as E;
        match e {
            E::InvalidConversation { reason } => CallError::InvalidConversation { reason },
            E::NotConnected => CallError::NotConnected,
            _ => CallError::Closed,
        }
    }
}

impl From<lifeline_core::SendError> for HistoryError {
    fn from(e: lifeline_core::SendError) -> Self {
        match e {
            lifeline_core::SendError::InvalidConversation { reason } => {
                HistoryError::InvalidConversation { reason }
            }
            _ => HistoryError::Closed,
        }
    }
}

impl From<lifeline_core::HistoryError> for HistoryError {
    fn from(e: lifeline_core::HistoryError) -> Self {
        use lifeline_core::HistoryError as H;
        match e {
            H::Server {
                status,
                code,
                message,
            } => HistoryError::Server {
                status,
                code,
                message,
            },
            H::Network { detail } => HistoryError::Network(detail),
            H::BadResponse { detail } => HistoryError::BadResponse(detail),
            _ => HistoryError::Closed,
        }
    }
}
