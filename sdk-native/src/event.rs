//! [`Event`]: what the client tells the application, with this crate's own error types, and the
//! per-listener queue that delivers it ([`Listener`]) with its policy for a slow reader.
//!
//! # A slow reader
//! Each [`crate::Events`] stream has a queue of at most [`DEFAULT_EVENT_QUEUE`] events
//! ([`crate::ClientBuilder::event_queue`]). The driver never waits for a reader: when a queue is
//! full, further events for that reader are counted and dropped, and the next event the reader
//! gets is [`Event::Lagged`] with the number it missed (like tokio's `broadcast`). Nothing is lost
//! silently: a reader that sees `Lagged` can fetch the messages it missed with
//! [`crate::Client::history`]. Sends resolve through their own futures, whatever the listeners do.

use crate::error::SendError;
use lifeline_core::{Cause, ErrorCode, Message, MsgId, Seq, State, TransportKind};
use std::time::Duration;
use tokio::sync::mpsc;

/// How many events wait for one [`crate::Events`] reader by default.
pub const DEFAULT_EVENT_QUEUE: usize = 1024;

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
    /// The server stored a message this client sent (the same `id` and `seq` as the
    /// [`crate::Acked`] its `send` resolved with).
    Acked { id: MsgId, seq: Seq },
    /// A message this client sent will not be acknowledged.
    SendFailed { id: MsgId, error: SendError },
    /// Messages between `last_seen` and `resumed_after` are not on the stream: the server could
    /// not resume from the cursor. Fetch them with [`crate::Client::history`] if they matter.
    Discontinuity { last_seen: Seq, resumed_after: Seq },
    /// A subscription took effect on the server.
    Subscribed { conv: String },
    /// The server refused a subscription.
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
    /// The transport that last worked for this endpoint changed (see
    /// [`crate::Client::last_worked_transport`]).
    TransportWorked { transport: TransportKind },
    /// The server reported an error that is not about one send or one subscription.
    ServerError { code: ErrorCode, message: String },
    /// The server sent a frame that breaks the protocol; it was dropped.
    BadFrame {
        transport: TransportKind,
        error: String,
    },
    /// This reader fell behind: `missed` events were dropped from its queue (see the module
    /// documentation). Messages among them can be fetched with [`crate::Client::history`].
    Lagged { missed: u64 },
}

impl Event {
    /// The application's view of a core event; `None` for what is answered to one caller only
    /// (history pages).
    pub(crate) fn from_core(event: lifeline_core::Event) -> Option<Event> {
        use lifeline_core::Event as E;
        Some(match event {
            E::StateChanged { from, to, cause } => Event::StateChanged { from, to, cause },
            E::Message(m) => Event::Message(m),
            E::Acked { id, seq } => Event::Acked { id, seq },
            E::SendFailed { id, failure } => Event::SendFailed {
                id,
                error: failure.into(),
            },
            E::Discontinuity {
                last_seen,
                resumed_after,
            } => Event::Discontinuity {
                last_seen,
                resumed_after,
            },
            E::Subscribed { conv } => Event::Subscribed { conv },
            E::SubscribeFailed { conv, code } => Event::SubscribeFailed { conv, code },
            E::Presence { conv, user, online } => Event::Presence { conv, user, online },
            E::Typing { conv, user } => Event::Typing { conv, user },
            E::RoundTrip { rtt } => Event::RoundTrip { rtt },
            E::TransportWorked { transport } => Event::TransportWorked { transport },
            E::ServerError { code, message } => Event::ServerError { code, message },
            E::BadFrame { transport, error } => Event::BadFrame {
                transport,
                error: error.to_string(),
            },
            _ => return None,
        })
    }
}

/// One reader's queue, as the driver holds it.
pub(crate) struct Listener {
    tx: mpsc::Sender<Event>,
    /// Events dropped since the reader last got one.
    missed: u64,
}

impl Listener {
    pub(crate) fn new(tx: mpsc::Sender<Event>) -> Self {
        Listener { tx, missed: 0 }
    }

    /// Queues `event` without waiting; `false` once the reader is gone.
    pub(crate) fn offer(&mut self, event: &Event) -> bool {
        use mpsc::error::TrySendError;
        if self.missed > 0 {
            match self.tx.try_send(Event::Lagged {
                missed: self.missed,
            }) {
                Ok(()) => self.missed = 0,
                Err(TrySendError::Full(_)) => {
                    self.missed += 1;
                    return true;
                }
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        match self.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.missed += 1;
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_counts_what_it_drops_and_says_so_first() {
        let (tx, mut rx) = mpsc::channel(2);
        let mut listener = Listener::new(tx);
        let rtt = |ms| Event::RoundTrip {
            rtt: Duration::from_millis(ms),
        };
        for ms in 0..5 {
            assert!(listener.offer(&rtt(ms)));
        }
        assert_eq!(rx.try_recv().unwrap(), rtt(0));
        assert_eq!(rx.try_recv().unwrap(), rtt(1));
        assert!(rx.try_recv().is_err());
        assert!(listener.offer(&rtt(5)));
        assert_eq!(rx.try_recv().unwrap(), Event::Lagged { missed: 3 });
        assert_eq!(rx.try_recv().unwrap(), rtt(5));
        drop(rx);
        assert!(!listener.offer(&rtt(6)));
    }
}
