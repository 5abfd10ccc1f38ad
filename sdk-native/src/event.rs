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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
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
    /// Events dropped since the reader last heard of a lag, shared with its [`crate::Events`].
    /// While it is above zero, every new event is dropped too, so that the reader's stream stays
    /// in order: what it had, then `Lagged`, then what came after the notice.
    missed: Arc<AtomicU64>,
}

impl Listener {
    /// A queue of `capacity` events, and the reader's end of it.
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::Receiver<Event>, Arc<AtomicU64>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let missed = Arc::new(AtomicU64::new(0));
        let listener = Listener {
            tx,
            missed: Arc::clone(&missed),
        };
        (listener, rx, missed)
    }

    /// Queues `event` without waiting; `false` once the reader is gone.
    pub(crate) fn offer(&self, event: &Event) -> bool {
        use mpsc::error::TrySendError;
        let lagging = self
            .missed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| {
                (m > 0).then_some(m + 1)
            })
            .is_ok();
        if lagging {
            return !self.tx.is_closed();
        }
        match self.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.missed.fetch_add(1, Ordering::AcqRel);
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// The reader's side: the next queued event, or, once the queue is empty after a lag, the
/// [`Event::Lagged`] notice.
pub(crate) fn poll_next(
    rx: &mut mpsc::Receiver<Event>,
    missed: &AtomicU64,
    cx: &mut Context<'_>,
) -> Poll<Option<Event>> {
    match rx.poll_recv(cx) {
        Poll::Pending => match missed.swap(0, Ordering::AcqRel) {
            0 => Poll::Pending,
            n => Poll::Ready(Some(Event::Lagged { missed: n })),
        },
        ready => ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_counts_what_it_drops_and_says_so_after_what_it_had() {
        let (listener, mut rx, missed) = Listener::new(2);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut next = || match poll_next(&mut rx, &missed, &mut cx) {
            Poll::Ready(event) => event,
            Poll::Pending => None,
        };
        let rtt = |ms| Event::RoundTrip {
            rtt: Duration::from_millis(ms),
        };
        for ms in 0..5 {
            assert!(listener.offer(&rtt(ms)));
        }
        assert_eq!(next(), Some(rtt(0)));
        // Still lagging: dropped, to keep the order.
        assert!(listener.offer(&rtt(5)));
        assert_eq!(next(), Some(rtt(1)));
        assert_eq!(next(), Some(Event::Lagged { missed: 4 }));
        assert_eq!(next(), None);
        assert!(listener.offer(&rtt(6)));
        assert_eq!(next(), Some(rtt(6)));
        drop(rx);
        assert!(!listener.offer(&rtt(7)));
    }
}
