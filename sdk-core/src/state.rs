//! The connection states an application can observe, and the causes that move a session between
//! them.
//!
//! Types only: the transitions themselves are made by [`crate::Session`].

use crate::text;
use crate::time::Instant;
use crate::transport::TransportKind;
use std::fmt;

/// Where the session is, as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Created; `connect` has not been called.
    Idle,
    /// Trying to open `transport`; `attempt` counts the tries since the last healthy connection
    /// (1 for the first).
    Connecting {
        transport: TransportKind,
        attempt: u32,
    },
    /// Connected: frames flow on `transport`. `degraded` is true when a better rung is allowed
    /// but not in use (the session probes it in the background).
    Connected {
        transport: TransportKind,
        degraded: bool,
    },
    /// Between attempts. `attempt` is the number the next try will have; `next_attempt_at` is
    /// `None` while paused (offline, or waiting for a token).
    Reconnecting {
        attempt: u32,
        next_attempt_at: Option<Instant>,
        last_error: Option<Cause>,
    },
    /// Closed by the application. Final.
    Closed,
    /// Given up: credentials refused twice, an unsupported protocol version, or a retry limit
    /// reached. Final.
    Failed { error: Cause },
}

impl State {
    /// A short name: `idle`, `connecting`, `connected`, `reconnecting`, `closed`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting { .. } => "connecting",
            State::Connected { .. } => "connected",
            State::Reconnecting { .. } => "reconnecting",
            State::Closed => "closed",
            State::Failed { .. } => "failed",
        }
    }

    /// Whether the state is final (`closed` or `failed`).
    pub fn is_final(&self) -> bool {
        matches!(self, State::Closed | State::Failed { .. })
    }
}

/// Why a state changed. Carried by every [`crate::Event::StateChanged`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// The application called `connect`.
    AppConnect,
    /// The application called `close`.
    AppClose,
    /// A transport delivered the server's `hello`.
    Opened,
    /// The session moved to a better transport in the middle of a session.
    Upgraded { from: TransportKind },
    /// A retry timer was due.
    RetryDue,
    /// A transport could not be opened.
    OpenFailed {
        transport: TransportKind,
        status: Option<u16>,
        detail: String,
    },
    /// A transport that was open closed or broke.
    TransportLost {
        transport: TransportKind,
        detail: String,
    },
    /// A transport opened but did not deliver the server's first frame in time.
    FirstFrameTimeout { transport: TransportKind },
    /// A transport did not open in time.
    ConnectTimeout { transport: TransportKind },
    /// An open transport stayed silent past its deadline.
    HeartbeatTimeout { transport: TransportKind },
    /// The server said it is going away.
    ServerGoingAway,
    /// The server's TLS certificate was not accepted: fatal, since retrying cannot change it.
    /// `detail` names the certificate's host and why it was refused (unknown issuer, expired,
    /// wrong name, ...).
    TlsRejected {
        transport: TransportKind,
        detail: String,
    },
    /// The server refused the credentials.
    AuthRejected { detail: String },
    /// The token provider failed.
    TokenUnavailable { detail: String },
    /// The server asked the client to wait (rate limit, `Retry-After`).
    ServerBusy,
    /// The server speaks another protocol version.
    UnsupportedVersion,
    /// A configured retry limit was reached.
    RetryLimit,
    /// The platform reported the network offline.
    Offline,
    /// The platform reported the network online.
    Online,
    /// The driver reported a freeze, sleep or clock jump.
    Resumed,
}

impl Cause {
    /// What happened, in words (also the `Display` text).
    pub fn describe(&self) -> String {
        match self {
            Cause::AppConnect => "the app asked to connect".into(),
            Cause::AppClose => "the app closed the client".into(),
            Cause::Opened => "the server said hello".into(),
            Cause::Upgraded { from } => text!("moved up from ", from),
            Cause::RetryDue => "retry due".into(),
            Cause::OpenFailed {
                transport,
                status,
                detail,
            } => match status {
                Some(status) => text!(transport, " refused with HTTP ", status, ": ", detail),
                None => text!(transport, " failed to open: ", detail),
            },
            Cause::TransportLost { transport, detail } => text!(transport, " lost: ", detail),
            Cause::FirstFrameTimeout { transport } => {
                text!(transport, " opened but the server never spoke")
            }
            Cause::ConnectTimeout { transport } => text!(transport, " did not open in time"),
            Cause::HeartbeatTimeout { transport } => {
                text!(transport, " went silent past its deadline")
            }
            Cause::ServerGoingAway => "the server is going away".into(),
            // The driver's detail names the certificate's host and the reason.
            Cause::TlsRejected { transport, detail } => text!(transport, ": ", detail),
            Cause::AuthRejected { detail } => text!("credentials rejected: ", detail),
            Cause::TokenUnavailable { detail } => text!("no token: ", detail),
            Cause::ServerBusy => "the server asked to wait".into(),
            Cause::UnsupportedVersion => "the server speaks another protocol version".into(),
            Cause::RetryLimit => "the retry limit was reached".into(),
            Cause::Offline => "the network is offline".into(),
            Cause::Online => "the network is back online".into(),
            Cause::Resumed => "resumed after a freeze or a clock jump".into(),
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}
