//! What a [`crate::Client`] handle asks of the driver task: one message per public call, each with
//! the channel its answer goes back on.
//!
//! Types only; the driver carries them out.

use crate::client::Acked;
use crate::error::{CallError, HistoryError, SendError};
use lifeline_core::{HistoryPage, Seq};
use std::time::Duration;
use tokio::sync::oneshot;

/// How many calls may wait for the driver task. `send` refuses a message beyond that
/// ([`SendError::QueueFull`]); the other calls wait for room.
pub const COMMAND_QUEUE: usize = 1024;

/// Facts the application tells without waiting for an answer, kept as the latest value (so they
/// need no queue): how many times `connect`, `network_changed` and `resumed` were called, and the
/// last network state given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Control {
    pub connects: u64,
    pub network_changes: u64,
    pub online: bool,
    pub resumes: u64,
}

pub(crate) enum Command {
    Send {
        conv: String,
        body: String,
        reply: oneshot::Sender<Result<Acked, SendError>>,
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
    Close {
        timeout: Duration,
        reply: oneshot::Sender<()>,
    },
}
