//! The server's configuration: every knob the binary exposes as a flag, with the embedded
//! defaults that let `cargo run -p lifeline-server -- --dev` start with no other configuration.
//!
//! Parsing flags and environment variables belongs to `main.rs`; this module holds plain data and
//! the check [`crate::start`] applies before serving (no secret outside development mode, no
//! development mode off loopback, dev endpoints only in development mode).

use crate::token::{TokenKey, DEFAULT_MAX_TOKEN_TTL_SECS, MIN_SECRET_BYTES};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The token secret used in development mode (`dev`) when none is configured. Anyone can mint
/// tokens with it, so it is refused outside development mode, which only binds to loopback.
pub const DEFAULT_DEV_SECRET: &str = "lifeline-insecure-development-secret";

/// The key id of [`DEFAULT_DEV_SECRET`].
pub const DEV_KID: &str = "dev";

/// A secret string whose `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The default listen address of the binary.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

/// The default data directory of the binary.
pub const DEFAULT_DATA_DIR: &str = "./lifeline-data";

/// Everything [`crate::start`] needs to run a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (see [`crate::RunningServer::addr`]).
    pub listen: SocketAddr,
    /// Directory holding the SQLite database; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Token verification keys; the first signs the tokens the server mints (dev tokens,
    /// [`crate::RunningServer::issue_token`]). Empty: refused, except in development mode, where
    /// [`DEFAULT_DEV_SECRET`] is used.
    pub token_keys: Vec<TokenKey>,
    /// The furthest in the future a token's `exp` may lie, in seconds (default 24 h).
    pub max_token_ttl_secs: u64,
    /// Development mode: only on a loopback address; allows the built-in secret, dev tokens,
    /// fault switches and permissive CORS.
    pub dev: bool,
    /// Secret of the admin API (`/v1/admin/...`, for the application's backend); `None`: no admin
    /// API. At least 32 bytes.
    pub admin_secret: Option<Secret>,
    /// Origins allowed by CORS (exact, e.g. `https://chat.example.com`). Empty: no CORS headers
    /// (same-origin pages and non-browser clients only); development mode allows any origin.
    pub cors_origins: Vec<String>,
    /// Serve `GET /v1/dev/token` (anyone can get a token for any user). Development mode only.
    pub dev_tokens: bool,
    /// Serve the fault switches under `/v1/faults`. Development mode only.
    pub faults: bool,
    /// The longest a stream stays silent; also announced in `hello`.
    pub heartbeat_ms: u64,
    /// How many sequence numbers behind the newest a cursor may be and still be resumed.
    pub resume_window: u64,
    /// Sustained `send` frames per second per user.
    pub rate_per_sec: u32,
    /// Burst of `send` frames per user.
    pub rate_burst: u32,
    /// Largest HTTP request body (for `/v1/send`), in bytes.
    pub max_body_bytes: usize,
    /// Directory of static files served at `/` (the demo); `None` serves nothing there.
    pub demo_dir: Option<PathBuf>,
    /// `retry_after_ms` of the `going_away` frames sent at shutdown.
    pub going_away_retry_ms: u64,
    /// The `retry:` value of SSE streams, in milliseconds.
    pub sse_retry_ms: u64,
    /// Events a stream may fall behind the live fan-out before it re-reads messages from
    /// storage (small values exercise that path in tests).
    pub live_buffer: usize,
    /// Conversations with more members than this carry no `presence` frames: per-member
    /// presence costs N² frames when N members connect.
    pub presence_max_members: usize,
    /// How long a request head may take to arrive (slowloris), and the longest a kept-alive
    /// connection may sit idle between two requests, in milliseconds.
    pub header_read_timeout_ms: u64,
    /// How long a request body may take to arrive in full, in milliseconds.
    pub body_read_timeout_ms: u64,
    /// TCP connections served at once, not counting upgraded WebSockets (over it: closed at once).
    pub max_connections: usize,
    /// Connections that have not sent a complete request yet; beyond it the oldest is closed.
    pub max_idle_connections: usize,
    /// The listen backlog: connections the kernel completes and queues before the server
    /// accepts them (Linux caps it at `net.core.somaxconn`). A connect burst beyond it loses
    /// SYNs, which clients only retry after 1 s, then 3 s.
    pub listen_backlog: u32,
    /// Live streams (WebSocket, SSE, pending long polls) in the whole server (over it: 503
    /// `going_away`).
    pub max_streams: usize,
    /// Live streams of one user (over it: 429 `rate_limited`).
    pub max_streams_per_user: usize,
    /// A stream whose client has taken no bytes for this long, while the server has frames for
    /// it, is a slow consumer and is closed (WebSocket close 4008, SSE stream end), in ms.
    pub slow_consumer_ms: u64,
    /// Sustained `subscribe` + `unsubscribe` frames per second per user.
    pub membership_rate_per_sec: u32,
    /// Burst of `subscribe` + `unsubscribe` frames per user.
    pub membership_rate_burst: u32,
    /// Sustained `GET /v1/history` requests per second per user.
    pub history_rate_per_sec: u32,
    /// Burst of `GET /v1/history` requests per user.
    pub history_rate_burst: u32,
    /// At most one `typing` event per user and conversation is delivered per this many ms; the
    /// others are dropped silently.
    pub typing_interval_ms: u64,
    /// Conversations one user may be a member of (`subscribe` beyond it: `forbidden`).
    pub max_memberships_per_user: usize,
    /// PostgreSQL connection URL: store there instead of SQLite (`data_dir` is then unused).
    /// Redacted in `Debug` (it may hold a password).
    pub postgres: Option<Secret>,
    /// Redis URL (cluster mode, with `postgres`): the bus between instances, presence, typing,
    /// shared rate limits and per-user stream counts (see docs/DEPLOYMENT.md). Redacted in
    /// `Debug` (it may hold a password).
    pub redis: Option<Secret>,
    /// PostgreSQL mode: how often this instance reads messages other instances stored, in ms
    /// (its own are read at once); with `redis`, only while the bus is unreachable. 100.
    pub tail_poll_ms: u64,
    /// Tests only: how long the writer holds each transaction open before committing (injects
    /// commit delays to check that readers never see a later seq before an earlier one). 0.
    pub commit_hold_ms: u64,
    /// Tests only: how long the server waits after binding its socket before it opens storage
    /// (to show that connects made while a server starts wait instead of being refused). 0.
    pub open_hold_ms: u64,
}

impl Default for ServerConfig {
    /// The binary's defaults: listen on 127.0.0.1:8787, data in `./lifeline-data`, no token key
    /// (one must be set, or development mode), no dev tokens, no faults, no demo directory.
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("default listen address parses"),
            data_dir: Some(PathBuf::from(DEFAULT_DATA_DIR)),
            token_keys: Vec::new(),
            max_token_ttl_secs: DEFAULT_MAX_TOKEN_TTL_SECS,
            dev: false,
            admin_secret: None,
            cors_origins: Vec::new(),
            dev_tokens: false,
            faults: false,
            heartbeat_ms: 10_000,
            resume_window: 100_000,
            rate_per_sec: 20,
            rate_burst: 50,
            max_body_bytes: 1024 * 1024,
            demo_dir: None,
            going_away_retry_ms: 2_000,
            sse_retry_ms: 2_000,
            live_buffer: 4096,
            presence_max_members: 1_000,
            header_read_timeout_ms: 30_000,
            body_read_timeout_ms: 30_000,
            max_connections: 8_192,
            max_idle_connections: 1_024,
            listen_backlog: crate::listener::DEFAULT_LISTEN_BACKLOG,
            max_streams: 8_192,
            max_streams_per_user: 32,
            slow_consumer_ms: 15_000,
            membership_rate_per_sec: 10,
            membership_rate_burst: 50,
            history_rate_per_sec: 10,
            history_rate_burst: 20,
            typing_interval_ms: 1_000,
            max_memberships_per_user: 1_000,
            postgres: None,
            redis: None,
            commit_hold_ms: 0,
            open_hold_ms: 0,
            tail_poll_ms: 100,
        }
    }
}

impl ServerConfig {
    /// A configuration for in-process tests: `127.0.0.1:0`, in memory, development mode with dev
    /// tokens and fault switches on, a 1 s heartbeat, generous rate limits (send, membership,
    /// history; typing not coalesced), a fixed test key ([`TEST_SECRET`], kid `test`) and admin
    /// secret ([`TEST_ADMIN_SECRET`]). The connection and stream caps keep their defaults.
    pub fn for_tests() -> Self {
        ServerConfig {
            listen: "127.0.0.1:0".parse().expect("loopback parses"),
            data_dir: None,
            token_keys: vec![TokenKey::new("test", TEST_SECRET).expect("test key is valid")],
            dev: true,
            admin_secret: Some(Secret(TEST_ADMIN_SECRET.to_string())),
            dev_tokens: true,
            faults: true,
            heartbeat_ms: 1_000,
            resume_window: 100_000,
            rate_per_sec: 10_000,
            rate_burst: 10_000,
            going_away_retry_ms: 2_000,
            sse_retry_ms: 500,
            membership_rate_per_sec: 10_000,
            membership_rate_burst: 10_000,
            history_rate_per_sec: 10_000,
            history_rate_burst: 10_000,
            typing_interval_ms: 0,
            ..ServerConfig::default()
        }
    }
}

/// The token secret of [`ServerConfig::for_tests`].
pub const TEST_SECRET: &str = "lifeline-test-secret-0123456789abcdef";

/// The admin secret of [`ServerConfig::for_tests`].
pub const TEST_ADMIN_SECRET: &str = "lifeline-test-admin-secret-0123456789";

impl ServerConfig {
    /// The configuration [`crate::start`] runs with: refuses what would be unsafe (see
    /// docs/SECURITY.md) and, in development mode without keys, adds the built-in one.
    pub fn checked(mut self) -> Result<ServerConfig, String> {
        if self.redis.is_some() && self.postgres.is_none() {
            return Err(
                "--redis needs --postgres: Redis carries what crosses instances, which share \
                 one PostgreSQL database"
                    .to_string(),
            );
        }
        if self.dev && !self.listen.ip().is_loopback() {
            return Err(format!(
                "development mode only listens on loopback (127.0.0.1 or ::1), not {}; \
                 drop --dev and set --token-secret to listen elsewhere",
                self.listen.ip()
            ));
        }
        if !self.dev {
            let dev_only = [(self.dev_tokens, "--dev-tokens"), (self.faults, "--faults")];
            if let Some((_, flag)) = dev_only.iter().find(|(on, _)| *on) {
                return Err(format!("{flag} needs development mode (--dev)"));
            }
        }
        if self.token_keys.is_empty() {
            if !self.dev {
                return Err(
                    "no token secret: set --token-secret / LIFELINE_TOKEN_SECRET \
                     (KID:SECRET, at least 32 bytes), or use --dev on loopback"
                        .to_string(),
                );
            }
            self.token_keys
                .push(TokenKey::new(DEV_KID, DEFAULT_DEV_SECRET).expect("dev key is valid"));
        }
        if !self.dev
            && self
                .token_keys
                .iter()
                .any(|k| k.has_secret(DEFAULT_DEV_SECRET))
        {
            return Err(
                "the built-in development secret is public: it is refused outside --dev"
                    .to_string(),
            );
        }
        for (i, k) in self.token_keys.iter().enumerate() {
            if self.token_keys[..i].iter().any(|o| o.kid == k.kid) {
                return Err(format!("token key id `{}` is configured twice", k.kid));
            }
        }
        if let Some(admin) = &self.admin_secret {
            if admin.0.len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "the admin secret is {} bytes; at least {MIN_SECRET_BYTES} are required",
                    admin.0.len()
                ));
            }
        }
        if self.max_token_ttl_secs == 0 {
            return Err("the token lifetime bound must be at least 1 second".to_string());
        }
        Ok(self)
    }
}
