//! The application's handle: [`Client`] (cheap to clone; every clone talks to the same driver
//! task) and [`Events`], the stream of everything the session reports.
//!
//! Each method sends one command to the driver task and awaits its answer; nothing here touches
//! the session or a socket.

use crate::builder::ClientBuilder;
use crate::command::{Command, Control};
use crate::driver::{Channels, Listeners};
use crate::error::{CallError, HistoryError, SendError};
use crate::event::{Event, Listener};
use futures_core::Stream;
use lifeline_core::{HistoryPage, MsgId, Seq, Session, State, TransportKind};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// What a successful [`Client::send`] resolves with: the id the client gave the message (the
/// same as in the [`Event::Acked`] every listener sees) and the sequence number the server
/// stored it under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Acked {
    pub id: MsgId,
    pub seq: Seq,
}

/// The transports a client holds open or opening, for a connection panel: see [`Client::links`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// The links of the messages side (everything, under the single strategy): each transport
    /// with whether it is the live one. At most one live, plus one racing or probing.
    pub messages: Vec<(TransportKind, bool)>,
    /// Under [`crate::Strategy::Hybrid`], the WebSocket of presence and typing, with whether it is
    /// live; `None` while it is down (or under the single strategy).
    pub ephemeral: Option<(TransportKind, bool)>,
}

impl Links {
    pub(crate) fn of(session: &Session) -> Self {
        Links {
            messages: session.links(),
            ephemeral: session.ephemeral(),
        }
    }
}

/// A connection to a Lifeline server that stays up by itself: it reconnects with backoff, falls
/// back from WebSocket to Server-Sent Events to long polling and climbs back, resumes from its
/// cursor so that every message arrives exactly once and in order, and retransmits unacknowledged
/// sends.
///
/// Build one with [`Client::builder`]. The client runs on a tokio task of its own; the handle is
/// cheap to clone, and the session closes when the last clone is dropped.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use futures_util::StreamExt;
/// use lifeline::{Client, Event};
///
/// let client = Client::builder("http://127.0.0.1:8787").token("my-token").build()?;
/// let mut events = client.events(); // before connect, so that nothing is missed
/// client.connect();
/// client.subscribe("general").await?;
/// let acked = client.send("general", "hello").await?;
/// println!("{} stored as #{}", acked.id, acked.seq);
/// while let Some(event) = events.next().await {
///     if let Event::Message(m) = event {
///         println!("{}: {}", m.from, m.body);
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    commands: mpsc::Sender<Box<Command>>,
    control: Arc<watch::Sender<Control>>,
    listeners: Listeners,
    event_queue: usize,
    state: watch::Receiver<State>,
    worked: watch::Receiver<Option<TransportKind>>,
    links: watch::Receiver<Links>,
    close_timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder for a client of the server at `url` (`http(s)://host[:port][/base]`; `ws(s)://`
    /// works too).
    ///
    /// ```
    /// let builder = lifeline::Client::builder("http://127.0.0.1:8787").token("t");
    /// # drop(builder);
    /// ```
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    pub(crate) fn from_channels(
        channels: Channels,
        close_timeout: Duration,
        event_queue: usize,
    ) -> Self {
        Client {
            commands: channels.commands,
            control: channels.control,
            listeners: channels.listeners,
            event_queue,
            state: channels.state,
            worked: channels.worked,
            links: channels.links,
            close_timeout,
        }
    }

    /// Queues `command`, waiting for room in the driver's queue.
    async fn command(&self, command: Command) {
        // The driver only stops when every handle is gone, so this cannot fail while `self` lives.
        let _ = self.commands.send(Box::new(command)).await;
    }

    /// Starts connecting (does nothing unless the client is idle). Returns at once; watch
    /// [`Client::state`] or the [`Event::StateChanged`] events to see it happen.
    pub fn connect(&self) {
        self.control.send_modify(|c| c.connects += 1);
    }

    /// Sends `body` to `conv` and resolves when the server has stored it, with the message's id
    /// and sequence number ([`Acked`]; the id matches the [`Event::Acked`] listeners see). The message waits in the outbox while no transport is live and is retransmitted
    /// after every reconnect until acknowledged; the server deduplicates retransmissions, so it is
    /// stored exactly once.
    ///
    /// The message is queued when `send` is called, not when the future is first polled: messages
    /// sent from one task keep their call order even when their futures are awaited together.
    /// If [`crate::COMMAND_QUEUE`] calls are already waiting for the client's task, the message is
    /// refused with [`SendError::QueueFull`] (nothing queued) rather than buffered without bound.
    ///
    /// ```no_run
    /// # async fn demo(client: lifeline::Client) {
    /// match client.send("general", "hi").await {
    ///     Ok(acked) => println!("stored as #{}", acked.seq),
    ///     Err(lifeline::SendError::OutboxFull { .. }) => println!("slow down"),
    ///     Err(e) => println!("not sent: {e}"),
    /// }
    /// // Pipelined, still stored in this order:
    /// let a = client.send("general", "one");
    /// let b = client.send("general", "two");
    /// let (a, b) = tokio::join!(a, b);
    /// # }
    /// ```
    pub fn send(
        &self,
        conv: &str,
        body: &str,
    ) -> impl Future<Output = Result<Acked, SendError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let queued = self.commands.try_send(Box::new(Command::Send {
            conv: conv.to_owned(),
            body: body.to_owned(),
            reply,
        }));
        async move {
            match queued {
                Ok(()) => answer.await.unwrap_or(Err(SendError::Closed)),
                Err(mpsc::error::TrySendError::Full(_)) => Err(SendError::QueueFull),
                Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Closed),
            }
        }
    }

    /// Joins `conv` (a durable membership on the server) and resolves when the server has
    /// confirmed it; if no transport is live yet, that happens after the next connection. The
    /// subscription is re-asserted on every new transport.
    ///
    /// ```no_run
    /// # async fn demo(client: lifeline::Client) -> Result<(), lifeline::CallError> {
    /// client.subscribe("general").await?;
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(&self, conv: &str) -> Result<(), CallError> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Subscribe {
            conv: conv.to_owned(),
            reply,
        })
        .await;
        answer.await.unwrap_or(Err(CallError::Closed))
    }

    /// Leaves `conv`. Resolves once the request is queued for the server.
    ///
    /// ```no_run
    /// # async fn demo(client: lifeline::Client) -> Result<(), lifeline::CallError> {
    /// client.unsubscribe("general").await?;
    /// # Ok(()) }
    /// ```
    pub async fn unsubscribe(&self, conv: &str) -> Result<(), CallError> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Unsubscribe {
            conv: conv.to_owned(),
            reply,
        })
        .await;
        answer.await.unwrap_or(Err(CallError::Closed))
    }

    /// Tells the other members of `conv` that the user is typing. Ephemeral: refused with
    /// [`CallError::NotConnected`] while no transport is live, never retransmitted.
    ///
    /// ```no_run
    /// # async fn demo(client: lifeline::Client) {
    /// let _ = client.typing("general").await; // best effort
    /// # }
    /// ```
    pub async fn typing(&self, conv: &str) -> Result<(), CallError> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Typing {
            conv: conv.to_owned(),
            reply,
        })
        .await;
        answer.await.unwrap_or(Err(CallError::Closed))
    }

    /// A page of `conv`'s history: the newest `limit` (1 to 100) messages with a sequence number
    /// below `before` (the newest ones without it), oldest first. Pass the page's `next_before` to
    /// get the page before it.
    ///
    /// ```no_run
    /// # async fn demo(client: lifeline::Client) -> Result<(), lifeline::HistoryError> {
    /// let mut before = None;
    /// loop {
    ///     let page = client.history("general", before, 50).await?;
    ///     for m in &page.messages {
    ///         println!("#{} {}: {}", m.seq, m.from, m.body);
    ///     }
    ///     match page.next_before {
    ///         Some(b) => before = Some(b),
    ///         None => break,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn history(
        &self,
        conv: &str,
        before: Option<Seq>,
        limit: u32,
    ) -> Result<HistoryPage, HistoryError> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::History {
            conv: conv.to_owned(),
            before,
            limit,
            reply,
        })
        .await;
        answer.await.unwrap_or(Err(HistoryError::Closed))
    }

    /// Every event from now on: state changes (with transport and cause), messages (exactly once,
    /// in order), acknowledgements, presence, typing, discontinuities. Each call makes a new,
    /// independent stream; call it before [`Client::connect`] to miss nothing. The stream ends
    /// when the client is dropped. At most [`crate::ClientBuilder::event_queue`] events wait for
    /// each stream; a reader that falls further behind gets [`Event::Lagged`] with the number it
    /// missed instead of unbounded memory growth (see [`crate::Event`]).
    ///
    /// ```no_run
    /// # async fn demo(client: lifeline::Client) {
    /// use futures_util::StreamExt;
    /// let mut events = client.events();
    /// while let Some(event) = events.next().await {
    ///     println!("{event:?}");
    /// }
    /// # }
    /// ```
    pub fn events(&self) -> Events {
        self.events_with_capacity(self.event_queue)
    }

    /// Like [`Client::events`], with a queue of `capacity` events (at least 1) for this stream
    /// only, instead of the builder's [`crate::ClientBuilder::event_queue`].
    ///
    /// ```no_run
    /// # fn demo(client: lifeline::Client) {
    /// let recent_only = client.events_with_capacity(8); // a reader that may fall behind
    /// # drop(recent_only);
    /// # }
    /// ```
    pub fn events_with_capacity(&self, capacity: usize) -> Events {
        let (listener, rx, missed) = Listener::new(capacity);
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        listeners.push(listener);
        Events { rx, missed }
    }

    /// The current state.
    ///
    /// ```no_run
    /// # fn demo(client: lifeline::Client) {
    /// println!("{}", client.state().name());
    /// # }
    /// ```
    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// The state as a [`watch`] channel, to await changes.
    ///
    /// ```no_run
    /// # async fn demo(client: lifeline::Client) {
    /// let mut state = client.watch_state();
    /// let _ = state.wait_for(|s| s.name() == "connected").await;
    /// # }
    /// ```
    pub fn watch_state(&self) -> watch::Receiver<State> {
        self.state.clone()
    }

    /// The transport that last delivered the server's `hello`. Remember it per endpoint and pass it
    /// to [`ClientBuilder::initial_transport`] next time, to skip rungs that do not work there.
    pub fn last_worked_transport(&self) -> Option<TransportKind> {
        *self.worked.borrow()
    }

    /// The transports open or opening now: the messages side, and under the hybrid strategy the
    /// WebSocket of presence and typing.
    pub fn links(&self) -> Links {
        self.links.borrow().clone()
    }

    /// [`Client::links`] as a [`watch`] channel, to await changes (a connection panel).
    pub fn watch_links(&self) -> watch::Receiver<Links> {
        self.links.clone()
    }

    /// Tells the client that the network went offline or came back (for platforms that know).
    pub fn network_changed(&self, online: bool) {
        self.control.send_modify(|c| {
            c.network_changes += 1;
            c.online = online;
        });
    }

    /// Tells the client the process was suspended (a laptop slept): it checks its connection at
    /// once instead of waiting for a heartbeat deadline.
    pub fn resumed(&self) {
        self.control.send_modify(|c| c.resumes += 1);
    }

    /// Closes gracefully: refuses new sends, waits (up to the close timeout, see
    /// [`ClientBuilder::close_timeout`]) until every queued message is acknowledged, then closes
    /// every transport. Messages still unacknowledged then fail with [`SendError::Closed`].
    ///
    /// ```no_run
    /// # async fn demo(client: lifeline::Client) {
    /// client.close().await;
    /// assert!(client.state().is_final());
    /// # }
    /// ```
    pub async fn close(&self) {
        self.close_within(self.close_timeout).await;
    }

    /// Like [`Client::close`], with an explicit drain timeout (zero closes at once).
    pub async fn close_within(&self, timeout: Duration) {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Close { timeout, reply }).await;
        let _ = answer.await;
    }
}

/// The stream of a client's events; see [`Client::events`].
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
    missed: Arc<AtomicU64>,
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = &mut *self;
        crate::event::poll_next(&mut this.rx, &this.missed, cx)
    }
}
