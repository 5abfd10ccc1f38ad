//! The server's configuration: every knob the binary exposes as a flag, with the embedded
//! defaults that let `cargo run -p lifeline-server` start with no configuration at all.
//!
//! Parsing flags and environment variables belongs to `main.rs`; this module holds plain data.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The token secret used when none is configured. Anyone can mint tokens with it: the server logs
/// a loud warning when it is in use.
pub const DEFAULT_DEV_SECRET: &str = "lifeline-insecure-development-secret";

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
    /// HMAC secret for tokens.
    pub token_secret: String,
    /// Serve `GET /v1/dev/token` (anyone can get a token for any user).
    pub dev_tokens: bool,
    /// Serve the fault switches under `/v1/faults`.
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
}

impl Default for ServerConfig {
    /// The binary's defaults: listen on 127.0.0.1:8787, data in `./lifeline-data`, the insecure
    /// development secret, no dev tokens, no faults, no demo directory.
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("default listen address parses"),
            data_dir: Some(PathBuf::from(DEFAULT_DATA_DIR)),
            token_secret: DEFAULT_DEV_SECRET.to_string(),
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
        }
    }
}

impl ServerConfig {
    /// A configuration for in-process tests: `127.0.0.1:0`, in memory, dev tokens and fault
    /// switches on, a 1 s heartbeat, generous rate limits and a fixed test secret.
    pub fn for_tests() -> Self {
        ServerConfig {
            listen: "127.0.0.1:0".parse().expect("loopback parses"),
            data_dir: None,
            token_secret: "lifeline-test-secret".to_string(),
            dev_tokens: true,
            faults: true,
            heartbeat_ms: 1_000,
            resume_window: 100_000,
            rate_per_sec: 10_000,
            rate_burst: 10_000,
            going_away_retry_ms: 2_000,
            sse_retry_ms: 500,
            ..ServerConfig::default()
        }
    }
}
