//! Records every event of one client, and waits (with a bounded timeout) for a condition on what
//! was recorded. Tests read states, messages and causes from here.
//!
//! No assertions about delivery live here (see `checker`).

use futures_util::StreamExt;
use lifeline::{Cause, Client, Event, Message, State, TransportKind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The events of one client, as they arrive.
pub struct Recorder {
    events: Arc<Mutex<Vec<(Instant, Event)>>>,
    version: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    /// Starts recording `client`'s events (call it before `connect`).
    pub fn start(client: &Client) -> Recorder {
        let mut stream = client.events();
        let events = Arc::new(Mutex::new(Vec::new()));
        let (tx, version) = watch::channel(0usize);
        let sink = Arc::clone(&events);
        let task = tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                let n = {
                    let mut v = sink.lock().unwrap();
                    v.push((Instant::now(), event));
                    v.len()
                };
                tx.send_replace(n);
            }
        });
        Recorder {
            events,
            version,
            task,
        }
    }

    /// Everything so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// The events with the time each arrived.
    pub fn timed(&self) -> Vec<(Instant, Event)> {
        self.events.lock().unwrap().clone()
    }

    /// The messages so far, in arrival order.
    pub fn messages(&self) -> Vec<Message> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// Every state entered, with its cause.
    pub fn states(&self) -> Vec<(State, Cause)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::StateChanged { to, cause, .. } => Some((to, cause)),
                _ => None,
            })
            .collect()
    }

    /// The transports the client connected on, in order (repeats kept).
    pub fn connected_transports(&self) -> Vec<TransportKind> {
        self.states()
            .into_iter()
            .filter_map(|(s, _)| match s {
                State::Connected { transport, .. } => Some(transport),
                _ => None,
            })
            .collect()
    }

    /// A readable summary of the state changes, for failure messages.
    pub fn state_log(&self) -> String {
        self.states()
            .iter()
            .map(|(s, c)| format!("{s:?} <- {c}"))
            .collect::<Vec<_>>()
            .join("\n  ")
    }

    /// Waits until `pred` holds for the events recorded so far; panics after `timeout`, naming
    /// `what` and the state log.
    pub async fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&[Event]) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut version = self.version.clone();
        loop {
            let ok = {
                let v = self.events.lock().unwrap();
                let events: Vec<Event> = v.iter().map(|(_, e)| e.clone()).collect();
                pred(&events)
            };
            if ok {
                return;
            }
            match tokio::time::timeout_at(deadline, version.changed()).await {
                Ok(Ok(())) => {}
                _ => panic!(
                    "timed out after {timeout:?} waiting for {what}; states:\n  {}",
                    self.state_log()
                ),
            }
        }
    }

    /// Waits for `n` messages in total.
    pub async fn wait_messages(&self, n: usize, timeout: Duration) {
        self.wait_for(&format!("{n} messages"), timeout, |events| {
            events
                .iter()
                .filter(|e| matches!(e, Event::Message(_)))
                .count()
                >= n
        })
        .await;
    }

    /// Waits until the client is connected on `transport` (after any earlier event).
    pub async fn wait_connected(&self, transport: TransportKind, timeout: Duration) {
        self.wait_connected_after(0, transport, timeout).await;
    }

    /// Waits until the client connects on `transport` in an event after the first `skip` events.
    pub async fn wait_connected_after(
        &self,
        skip: usize,
        transport: TransportKind,
        timeout: Duration,
    ) {
        self.wait_for(&format!("connected on {transport}"), timeout, move |events| {
            events.iter().skip(skip).any(|e| {
                matches!(e, Event::StateChanged { to: State::Connected { transport: t, .. }, .. } if *t == transport)
            })
        })
        .await;
    }

    /// How many events have been recorded.
    pub fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
