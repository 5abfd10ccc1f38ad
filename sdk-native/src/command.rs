//! What a [`crate::Client`] handle asks of the driver task: one message per public call, each with
//! the channel its answer goes back on.
//!
//! Types only; the driver carries them out.

use crate::error::{CallError, HistoryError, SendError};
use lifeline_core::{Event, HistoryPage, Input, Seq};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub(crate) enum Command {
    Connect,
    Send {
        conv: String,
        body: String,
        reply: oneshot::Sender<Result<Seq, SendError>>,
    },
    Subscribe {
        conv: String,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    Unsubscribe {
        conv: String,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    Typing {
        conv: String,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    History {
        conv: String,
        before: Option<Seq>,
        limit: u32,
        reply: oneshot::Sender<Result<HistoryPage, HistoryError>>,
    },
    /// Register a listener for every event from now on.
    Listen {
        events: mpsc::UnboundedSender<Event>,
    },
    /// A platform fact the application knows and the driver cannot see (network, sleep).
    Platform(Input),
    Close {
        timeout: Duration,
        reply: oneshot::Sender<()>,
    },
}
