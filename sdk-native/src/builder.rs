//! [`ClientBuilder`]: the configuration of a [`crate::Client`], with the defaults of
//! [`lifeline_core::Config`] (explained field by field there) and a few driver settings.
//!
//! Only configuration lives here; `build` hands it to a new session and spawns the driver.

use crate::client::Client;
use crate::error::BuildError;
use crate::tls::{ExtraRoots, Tls};
use crate::token::TokenProvider;
use lifeline_core::{BackoffPolicy, Config, Session, Strategy, StreamToken, TransportKind};
use std::fmt::Display;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

/// How long [`Client::close`] waits for unacknowledged messages by default.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Configures and builds a [`Client`].
///
/// ```
/// use lifeline::{Client, TransportKind};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), lifeline::BuildError> {
/// let client = Client::builder("http://127.0.0.1:8787")
///     .token_provider(|| async { Ok::<_, std::io::Error>("fresh-token".to_string()) })
///     .transports([TransportKind::WebSocket, TransportKind::Sse])
///     .ping_interval(Duration::from_secs(5))
///     .outbox_limits(100, 64 * 1024)
///     .build()?;
/// assert_eq!(client.state().name(), "idle");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ClientBuilder {
    config: Result<Config, BuildError>,
    tokens: Option<TokenProvider>,
    seed: Option<u64>,
    close_timeout: Duration,
    ca_files: Vec<PathBuf>,
    extra_roots: ExtraRoots,
    event_queue: usize,
}

impl ClientBuilder {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        ClientBuilder {
            config: Config::new(&url).map_err(|e| BuildError::BadUrl(format!("{url}: {e}"))),
            tokens: None,
            seed: None,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            ca_files: Vec::new(),
            extra_roots: ExtraRoots::default(),
            event_queue: crate::event::DEFAULT_EVENT_QUEUE,
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        if let Ok(config) = &mut self.config {
            f(config);
        }
        self
    }

    /// The token to connect with. Without a token provider, a token the server refuses is fatal
    /// (state `failed`) at once, since retrying it could only loop.
    pub fn token(self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.edit(|c| c.token = Some(token))
    }

    /// An async function returning a fresh token. It is called when the server refuses the
    /// current token (expired), or first thing if no [`ClientBuilder::token`] was given; if the
    /// fresh token is refused too, the client fails instead of looping.
    pub fn token_provider<F, Fut, E>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Display,
    {
        self.tokens = Some(TokenProvider::new(provider));
        self.edit(|c| c.token_provider = true)
    }

    /// The transports the client may use; they are always tried best first (WebSocket, SSE, long
    /// polling). Default: all three.
    pub fn transports(self, transports: impl IntoIterator<Item = TransportKind>) -> Self {
        let transports: Vec<TransportKind> = transports.into_iter().collect();
        self.edit(|c| c.transports = transports)
    }

    /// How the transports are used. Default [`Strategy::Single`]: one transport carries
    /// everything, the best that works. [`Strategy::Hybrid`]: messages on SSE (then long
    /// polling), presence and typing on a WebSocket of their own; while that WebSocket is down
    /// everything comes over the messages transport (the state says `degraded`), and the split
    /// comes back when it is up. See [`Client::links`].
    pub fn strategy(self, strategy: Strategy) -> Self {
        self.edit(|c| c.strategy = strategy)
    }

    /// The transport to start on, typically [`Client::last_worked_transport`] of an earlier
    /// session. The client still probes better ones once connected.
    pub fn initial_transport(self, transport: TransportKind) -> Self {
        self.edit(|c| c.initial_transport = Some(transport))
    }

    /// The backoff between reconnection attempts. Default: full jitter, 500 ms base, 15 s cap.
    pub fn backoff(self, policy: BackoffPolicy) -> Self {
        self.edit(|c| c.backoff = policy)
    }

    /// On a WebSocket, ping after this long without hearing anything. Default 7 s.
    pub fn ping_interval(self, interval: Duration) -> Self {
        self.edit(|c| c.ping_interval = interval)
    }

    /// A transport silent for this long is dead and gets replaced (at least the server's
    /// heartbeat interval plus 3 s). Default 15 s.
    pub fn liveness_timeout(self, timeout: Duration) -> Self {
        self.edit(|c| c.liveness_timeout = timeout)
    }

    /// The most unacknowledged messages (and bytes of bodies) the outbox holds; a `send` beyond
    /// that fails with [`crate::SendError::OutboxFull`]. Default 1,000 messages, 1 MiB.
    pub fn outbox_limits(self, max_messages: usize, max_bytes: usize) -> Self {
        self.edit(|c| {
            c.outbox_max_messages = max_messages;
            c.outbox_max_bytes = max_bytes;
        })
    }

    /// A send not acknowledged within this long fails with [`crate::SendError::Timeout`].
    /// Default 60 s.
    pub fn send_timeout(self, timeout: Duration) -> Self {
        self.edit(|c| c.send_timeout = timeout)
    }

    /// A transport that has not opened within this long has failed. Default 10 s.
    pub fn connect_timeout(self, timeout: Duration) -> Self {
        self.edit(|c| c.connect_timeout = timeout)
    }

    /// The seed of the session's random numbers (jitter; message ids are random bytes from the
    /// operating system for every send, whatever the seed). Default: from the
    /// operating system. Tests pass a fixed one.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How many events wait for each [`crate::Events`] reader before it is told it lagged
    /// ([`crate::Event::Lagged`]). Default [`crate::DEFAULT_EVENT_QUEUE`]; at least 1.
    pub fn event_queue(mut self, events: usize) -> Self {
        self.event_queue = events.max(1);
        self
    }

    /// How long [`Client::close`] waits for unacknowledged messages. Default 5 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Also trust the CA certificates in the PEM file at `path` (for a server whose certificate a
    /// private CA signed), on top of the platform's roots. The file is read by
    /// [`ClientBuilder::build`], which fails with [`BuildError::Tls`] if it holds no certificate.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// Also trust the CA certificates in `pem` (PEM text), on top of the platform's roots.
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        let n = self.extra_roots.len() + 1;
        self.extra_roots
            .add(format!("added PEM certificate #{n}"), pem.into());
        self
    }

    /// A transport that opened but did not deliver the server's `hello` within this long has
    /// failed, and that rung counts as not working here (a proxy that upgrades and then passes
    /// nothing, or buffers SSE). Default 5 s.
    pub fn first_frame_timeout(self, timeout: Duration) -> Self {
        self.edit(|c| c.first_frame_timeout = timeout)
    }

    /// When the first rung has not delivered `hello` after this long, the next rung starts in
    /// parallel and whichever speaks first wins. Default 3 s.
    pub fn race_after(self, delay: Duration) -> Self {
        self.edit(|c| c.race_after = delay)
    }

    /// On a first visit (no remembered rung, nothing has worked yet), the next rung starts racing
    /// the first after this long instead of [`race_after`](Self::race_after). Default 50 ms.
    pub fn first_visit_race_after(self, delay: Duration) -> Self {
        self.edit(|c| c.first_visit_race_after = delay)
    }

    /// After a freeze or a late timer, a silent transport gets this long to prove it is alive.
    /// Default 3 s.
    pub fn verify_grace(self, grace: Duration) -> Self {
        self.edit(|c| c.verify_grace = grace)
    }

    /// How long the server may hold a long poll before answering with nothing. Default 10 s.
    pub fn poll_wait(self, wait: Duration) -> Self {
        self.edit(|c| c.poll_wait = wait)
    }

    /// A connection must stay healthy this long before past failures are forgotten. Default 10 s.
    pub fn stable_after(self, after: Duration) -> Self {
        self.edit(|c| c.stable_after = after)
    }

    /// The backoff between probes of a better transport while on a worse one. Default: full
    /// jitter, 4 s base, 60 s cap (see [`BackoffPolicy::probe`]).
    pub fn probe_backoff(self, policy: BackoffPolicy) -> Self {
        self.edit(|c| c.probe_backoff = policy)
    }

    /// Give up (state `failed`, cause `RetryLimit`) after this many attempts in a row, or after
    /// retrying for `duration`. Default: never.
    pub fn retry_limits(self, attempts: Option<u32>, duration: Option<Duration>) -> Self {
        self.edit(|c| {
            c.max_attempts = attempts;
            c.max_retry_duration = duration;
        })
    }

    /// Step down a transport after this many consecutive failures of it. Default 2.
    pub fn step_down_after(self, failures: u32) -> Self {
        self.edit(|c| c.step_down_after = failures)
    }

    /// Builds an idle client and starts its driver task on the current tokio runtime. Call
    /// [`Client::events`] if you want every event, then [`Client::connect`].
    pub fn build(self) -> Result<Client, BuildError> {
        let mut config = self.config?;
        tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let mut extra = self.extra_roots;
        for path in &self.ca_files {
            let pem = std::fs::read(path).map_err(|e| {
                BuildError::Tls(format!("cannot read CA file {}: {e}", path.display()))
            })?;
            extra.add(path.display().to_string(), pem);
        }
        let secure = config.endpoint.key().starts_with("https://");
        let tls = Tls::new(secure, &extra)?;
        config.seed = self.seed.unwrap_or_else(random_seed);
        // A native client can set headers on every request: the token never goes in a URL.
        config.stream_token = StreamToken::Header;
        let session = Session::new(config, crate::clock::now());
        let channels = crate::driver::spawn(session, self.tokens, tls);
        Ok(Client::from_channels(
            channels,
            self.close_timeout,
            self.event_queue,
        ))
    }

    /// [`ClientBuilder::build`], then [`Client::connect`].
    pub fn connect(self) -> Result<Client, BuildError> {
        let client = self.build()?;
        client.connect();
        Ok(client)
    }
}

fn random_seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        // No OS randomness: the time and an address still differ between sessions.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ (&nanos as *const u64 as u64)
    })
}
