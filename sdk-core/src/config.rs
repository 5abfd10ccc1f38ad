//! The session's configuration, with defaults chosen against peer clients (Socket.IO, SignalR,
//! centrifuge-js, Ably; their figures are quoted on the fields) and explained field by field.
//!
//! Plain data: it is read by the session and never changes after `Session::new`.

use crate::backoff::BackoffPolicy;
use crate::endpoints::{BadEndpoint, Endpoint, StreamToken};
use crate::hybrid::Strategy;
use crate::transport::TransportKind;
use std::time::Duration;

/// Everything a session needs to know before it starts. Its `Debug` output hides the token.
#[derive(Clone)]
pub struct Config {
    /// The server.
    pub endpoint: Endpoint,
    /// The token to start with. `None` with a token provider: the first thing the session does is
    /// ask for one.
    pub token: Option<String>,
    /// Whether the application can supply fresh tokens ([`crate::Action::FetchToken`]). Without
    /// one, a rejected token is fatal at once, since retrying it could only loop.
    pub token_provider: bool,
    /// Where a WebSocket's or SSE stream's token travels: the query (the default, all a browser
    /// can do) or `Authorization: Bearer` (native drivers). Other requests always use the header.
    pub stream_token: StreamToken,
    /// The rungs the session may use, best first. Default: all three.
    pub transports: Vec<TransportKind>,
    /// How the transports are used. Default [`Strategy::Single`]: one link carries everything.
    /// [`Strategy::Hybrid`] keeps messages on SSE (then long polling; the WebSocket rung of
    /// `transports` is not used for them) and presence and typing on a WebSocket of their own,
    /// retried with `backoff`; while that WebSocket is down the messages link carries everything.
    pub strategy: Strategy,
    /// The rung to start on, usually the one that last worked for this endpoint (remembered by
    /// the driver). The session still probes better rungs once connected.
    pub initial_transport: Option<TransportKind>,
    /// The seed of the session's random number generator (the jitter of backoffs). Drivers pass a
    /// random seed; tests pass a fixed one. Message ids never come from it: the driver supplies
    /// random bytes for each (`Session::send`), so two sessions with the same seed cannot share
    /// ids.
    pub seed: u64,
    /// Backoff between reconnection attempts. Default: [`BackoffPolicy::reconnect`].
    pub backoff: BackoffPolicy,
    /// Backoff between probes of a better rung while degraded. Default: [`BackoffPolicy::probe`].
    pub probe_backoff: BackoffPolicy,
    /// A connection must stay healthy this long, or deliver data (a `msg` or an `ack`), before
    /// past failures are forgotten (the backoff and the attempt counter reset). Default 10 s: a
    /// server that accepts and then drops every connection within seconds keeps the client
    /// backing off instead of hammering it, while a middlebox that cuts a working connection
    /// every few seconds does not drive the backoff up.
    pub stable_after: Duration,
    /// Give up (state `failed`) after this many attempts in a row. Default: never.
    pub max_attempts: Option<u32>,
    /// Give up after retrying for this long. Default: never.
    pub max_retry_duration: Option<Duration>,
    /// A transport that has not opened after this long has failed. Default 10 s. When no
    /// transport of an attempt has opened `2 × race_after` after it began (nothing answers: a
    /// black hole, a dead network), the whole attempt is given up at once as an unreachable host
    /// (no rung is blamed) and retried with backoff, so an outage is not spent waiting on
    /// connections that will never complete.
    pub connect_timeout: Duration,
    /// A transport that opened but did not deliver the server's `hello` within this long has
    /// failed, and the failure says this rung does not work here (a proxy that upgrades and then
    /// passes nothing, or buffers SSE). Default 5 s.
    pub first_frame_timeout: Duration,
    /// When the first rung has not delivered `hello` after this long, the next rung starts in
    /// parallel and whichever speaks first wins. Default 3 s (Ably falls back after 4 s).
    pub race_after: Duration,
    /// On a first visit (no remembered rung, nothing has worked yet), the next rung starts
    /// racing the first after this long instead of `race_after`, and at once if the first fails.
    /// Default 50 ms: a WebSocket that works answers on loopback or a LAN well within it, so the
    /// normal case opens one connection; a broken one (upgrades reset or black-holed by a proxy)
    /// costs the first message 50 ms, not a backoff or the 3 s race. On a slower network both
    /// rungs race, and the WebSocket takes over from SSE when it speaks.
    pub first_visit_race_after: Duration,
    /// Step down a rung after this many consecutive failures of it. Failures that say the rung
    /// cannot work here (a refused upgrade, a 4xx, no first frame) step down at once. Default 2.
    pub step_down_after: u32,
    /// On a WebSocket, send a `ping` this often, on a steady beat from `hello` whether or not the
    /// server is talking. The session pings at least every half of the server's `heartbeat_ms`
    /// (and under a middlebox idle timeout it has learned), whichever is shorter. Default 7 s.
    pub ping_interval: Duration,
    /// A live transport that has been silent this long is dead. The session waits at least the
    /// server's advertised heartbeat interval plus 3 s. Default 15 s, so a dead connection is
    /// noticed within 15 s (Socket.IO ~45 s, SignalR 30 s, centrifuge ~35 s, Ably ~25 s).
    pub liveness_timeout: Duration,
    /// After a freeze, a late timer or a page becoming visible, a silent transport gets this long to
    /// prove it is alive (a `ping` is sent at once on a WebSocket) before it is declared dead.
    /// Default 3 s: throttled timers cause neither a false alarm nor a missed dead link.
    pub verify_grace: Duration,
    /// How long the server may hold a long poll. Default 10 s; the poll counts as dead 5 s after
    /// that.
    pub poll_wait: Duration,
    /// The outbox holds at most this many unacknowledged messages. Default 1,000.
    pub outbox_max_messages: usize,
    /// The outbox holds at most this many bytes of bodies. Default 1 MiB.
    pub outbox_max_bytes: usize,
    /// A message not acknowledged this long after `send` fails with a timeout. Default 60 s.
    pub send_timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("token_provider", &self.token_provider)
            .field("stream_token", &self.stream_token)
            .field("transports", &self.transports)
            .field("initial_transport", &self.initial_transport)
            .field("backoff", &self.backoff)
            .field("connect_timeout", &self.connect_timeout)
            .field("first_frame_timeout", &self.first_frame_timeout)
            .field("race_after", &self.race_after)
            .field("ping_interval", &self.ping_interval)
            .field("liveness_timeout", &self.liveness_timeout)
            .field("poll_wait", &self.poll_wait)
            .field("send_timeout", &self.send_timeout)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A configuration with the defaults for the server at `url`.
    pub fn new(url: &str) -> Result<Self, BadEndpoint> {
        Ok(Config {
            endpoint: Endpoint::parse(url)?,
            token: None,
            token_provider: false,
            stream_token: StreamToken::Query,
            transports: TransportKind::ALL.to_vec(),
            strategy: Strategy::Single,
            initial_transport: None,
            seed: 0,
            backoff: BackoffPolicy::reconnect(),
            probe_backoff: BackoffPolicy::probe(),
            stable_after: Duration::from_secs(10),
            max_attempts: None,
            max_retry_duration: None,
            connect_timeout: Duration::from_secs(10),
            first_frame_timeout: Duration::from_secs(5),
            race_after: Duration::from_secs(3),
            first_visit_race_after: Duration::from_millis(50),
            step_down_after: 2,
            ping_interval: Duration::from_secs(7),
            liveness_timeout: Duration::from_secs(15),
            verify_grace: Duration::from_secs(3),
            poll_wait: Duration::from_secs(10),
            outbox_max_messages: 1_000,
            outbox_max_bytes: 1 << 20,
            send_timeout: Duration::from_secs(60),
        })
    }

    /// The allowed rungs of the messages link in ladder order, without repeats; all three if the
    /// list is empty. Under the hybrid strategy the WebSocket carries presence and typing, not
    /// messages: SSE and long polling (those allowed, both if neither is).
    pub fn ladder(&self) -> Vec<TransportKind> {
        // Under the hybrid strategy the ladder starts at SSE (index 1 of `ALL`).
        let from = (self.strategy == Strategy::Hybrid) as usize;
        let all = &TransportKind::ALL[from..];
        let mut rungs: Vec<TransportKind> = all
            .iter()
            .copied()
            .filter(|k| self.transports.contains(k))
            .collect();
        if rungs.is_empty() {
            rungs = all.to_vec();
        }
        rungs
    }
}
