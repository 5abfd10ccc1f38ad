//! The `lifeline-server` binary: parses flags and environment variables into a
//! [`ServerConfig`], starts the server and shuts it down on SIGTERM or Ctrl-C.
//!
//! Everything else lives in the library crate (`lifeline_server`).

use clap::Parser;
use lifeline_server::config::{Secret, DEFAULT_DATA_DIR, DEFAULT_LISTEN};
use lifeline_server::token::{TokenKey, DEFAULT_MAX_TOKEN_TTL_SECS};
use lifeline_server::{start, ServerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

/// The Lifeline reference server: WebSocket, Server-Sent Events and long polling over SQLite.
///
/// Needs a token secret (--token-secret KID:SECRET, at least 32 bytes), except in development
/// mode (--dev, loopback only). Listens on 127.0.0.1:8787, stores data in ./lifeline-data,
/// serves ./js-demo at / when that folder exists. Logging is controlled by RUST_LOG (default:
/// info). Exits with status 2 when the configuration is unsafe (see docs/SECURITY.md).
#[derive(Parser, Debug)]
#[command(name = "lifeline-server", version, about, long_about)]
struct Args {
    /// Address and port to listen on.
    #[arg(long, env = "LIFELINE_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// Directory for the SQLite database (created if missing).
    #[arg(long, env = "LIFELINE_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,

    /// Keep everything in memory instead of the data directory (lost on exit; for tests).
    #[arg(long, env = "LIFELINE_MEMORY")]
    memory: bool,

    /// Store in PostgreSQL instead of SQLite (postgres://USER:PASSWORD@HOST:PORT/DB): several
    /// instances may share one database (see docs/DEPLOYMENT.md). The data directory is unused.
    #[arg(long, env = "LIFELINE_POSTGRES", hide_env_values = true)]
    postgres: Option<String>,

    /// With --postgres: Redis URL (redis://[:PASSWORD@]HOST:PORT[/DB]) of the cluster bus, which
    /// carries messages, presence, typing, rate limits and per-user stream counts between
    /// instances (see docs/DEPLOYMENT.md). Without it instances share only PostgreSQL.
    #[arg(long, env = "LIFELINE_REDIS_URL", hide_env_values = true)]
    redis: Option<String>,

    /// With --postgres: how often to read messages and membership changes other instances
    /// stored, in milliseconds (this instance's own are read at once). With --redis the bus
    /// brings them and this is the fallback while Redis is unreachable.
    #[arg(long, env = "LIFELINE_TAIL_POLL_MS", default_value_t = 100)]
    tail_poll_ms: u64,

    /// Token verification key, KID:SECRET (HMAC-SHA256, the secret at least 32 bytes; a value
    /// without ':' is the secret of key id "default"). Repeat it (or separate keys with ',' in
    /// the variable) to accept several keys while rotating; the first one signs dev tokens.
    /// Required, except with --dev.
    #[arg(
        long,
        env = "LIFELINE_TOKEN_SECRET",
        hide_env_values = true,
        value_delimiter = ','
    )]
    token_secret: Vec<String>,

    /// The furthest in the future a token's exp may lie, in seconds; tokens beyond are refused.
    #[arg(long, env = "LIFELINE_MAX_TOKEN_TTL_SECS", default_value_t = DEFAULT_MAX_TOKEN_TTL_SECS)]
    max_token_ttl_secs: u64,

    /// Secret of the admin API for the application's backend (Authorization: Bearer SECRET on
    /// PUT/DELETE /v1/admin/conversations/CONV/members/USER), at least 32 bytes. Without it
    /// there is no admin API.
    #[arg(long, env = "LIFELINE_ADMIN_SECRET", hide_env_values = true)]
    admin_secret: Option<String>,

    /// An origin allowed by CORS (e.g. https://chat.example.com); repeatable, or ','-separated
    /// in the variable. Without any, no CORS headers are sent (--dev allows every origin).
    #[arg(long, env = "LIFELINE_CORS_ORIGINS", value_delimiter = ',')]
    cors_origin: Vec<String>,

    /// Development mode: listens on loopback only; uses a built-in token secret when none is
    /// set, allows any CORS origin, and permits --dev-tokens and --faults.
    #[arg(long, env = "LIFELINE_DEV")]
    dev: bool,

    /// Serve GET /v1/dev/token?user=NAME&ttl_secs=N, which gives anyone a token for any user
    /// and every conversation. Needs --dev.
    #[arg(long, env = "LIFELINE_DEV_TOKENS")]
    dev_tokens: bool,

    /// Serve the fault switches: GET/POST /v1/faults and POST /v1/faults/drop (refuse or
    /// black-hole a transport, stop heartbeats, drop every connection). Needs --dev.
    #[arg(long, env = "LIFELINE_FAULTS")]
    faults: bool,

    /// Longest silence on a stream before the server sends a heartbeat, in milliseconds.
    /// WebSockets silent for three times this are dropped.
    #[arg(long, env = "LIFELINE_HEARTBEAT_MS", default_value_t = 10_000)]
    heartbeat_ms: u64,

    /// How many sequence numbers behind the newest a cursor may be and still be resumed; older
    /// cursors get hello with resumed:false.
    #[arg(long, env = "LIFELINE_RESUME_WINDOW", default_value_t = 100_000)]
    resume_window: u64,

    /// Sustained send frames per second allowed per user (token bucket refill rate).
    #[arg(long, env = "LIFELINE_RATE_PER_SEC", default_value_t = 20)]
    rate_per_sec: u32,

    /// Burst of send frames allowed per user (token bucket size).
    #[arg(long, env = "LIFELINE_RATE_BURST", default_value_t = 50)]
    rate_burst: u32,

    /// Largest HTTP request body accepted by /v1/send, in bytes (larger: 413 too_large); announced
    /// in every `hello` as `max_body_bytes` so that clients keep their batches under it.
    #[arg(long, env = "LIFELINE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,

    /// Directory of static files served at / (the demo). Default: ./js-demo if it exists.
    #[arg(long, env = "LIFELINE_DEMO_DIR")]
    demo_dir: Option<PathBuf>,

    /// retry_after_ms announced in going_away frames at shutdown (clients reconnect within it).
    #[arg(long, env = "LIFELINE_GOING_AWAY_RETRY_MS", default_value_t = 2_000)]
    going_away_retry_ms: u64,

    // Resource bounds (docs/SECURITY.md, "Limits"); defaults from ServerConfig::default().
    /// How long a request head may take to arrive, and the longest a kept-alive connection may
    /// sit idle between requests, in milliseconds (slowloris).
    #[arg(
        long,
        env = "LIFELINE_HEADER_READ_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    header_read_timeout_ms: u64,

    /// How long a request body may take to arrive in full, in milliseconds.
    #[arg(long, env = "LIFELINE_BODY_READ_TIMEOUT_MS", default_value_t = 30_000)]
    body_read_timeout_ms: u64,

    /// TCP connections served at once, not counting upgraded WebSockets; more are closed at once.
    #[arg(long, env = "LIFELINE_MAX_CONNECTIONS", default_value_t = 8_192)]
    max_connections: usize,

    /// Connections that have not sent a complete request yet; beyond it the oldest is closed.
    #[arg(long, env = "LIFELINE_MAX_IDLE_CONNECTIONS", default_value_t = 1_024)]
    max_idle_connections: usize,

    /// Listen backlog: connections the kernel queues before the server accepts them (Linux caps
    /// it at net.core.somaxconn). A connect burst beyond it loses SYNs, retried after 1 s, 3 s.
    #[arg(long, env = "LIFELINE_LISTEN_BACKLOG", default_value_t = lifeline_server::DEFAULT_LISTEN_BACKLOG)]
    listen_backlog: u32,

    /// Conversations with more members than this carry no presence frames (per-member presence
    /// costs N² frames when N members connect).
    #[arg(long, env = "LIFELINE_PRESENCE_MAX_MEMBERS", default_value_t = 1_000)]
    presence_max_members: usize,

    /// Live streams (WebSocket, SSE, pending long polls) in the server; more get 503 going_away.
    #[arg(long, env = "LIFELINE_MAX_STREAMS", default_value_t = 8_192)]
    max_streams: usize,

    /// Live streams of one user; more get 429 rate_limited.
    #[arg(long, env = "LIFELINE_MAX_STREAMS_PER_USER", default_value_t = 32)]
    max_streams_per_user: usize,

    /// A stream whose client takes no bytes for this long while frames wait is closed
    /// (WebSocket close 4008, SSE stream cut), in milliseconds.
    #[arg(long, env = "LIFELINE_SLOW_CONSUMER_MS", default_value_t = 15_000)]
    slow_consumer_ms: u64,

    /// Sustained subscribe + unsubscribe frames per second per user.
    #[arg(long, env = "LIFELINE_MEMBERSHIP_RATE_PER_SEC", default_value_t = 10)]
    membership_rate_per_sec: u32,

    /// Burst of subscribe + unsubscribe frames per user.
    #[arg(long, env = "LIFELINE_MEMBERSHIP_RATE_BURST", default_value_t = 50)]
    membership_rate_burst: u32,

    /// Sustained GET /v1/history requests per second per user.
    #[arg(long, env = "LIFELINE_HISTORY_RATE_PER_SEC", default_value_t = 10)]
    history_rate_per_sec: u32,

    /// Burst of GET /v1/history requests per user.
    #[arg(long, env = "LIFELINE_HISTORY_RATE_BURST", default_value_t = 20)]
    history_rate_burst: u32,

    /// At most one typing event per user and conversation is delivered per this many ms (0: all).
    #[arg(long, env = "LIFELINE_TYPING_INTERVAL_MS", default_value_t = 1_000)]
    typing_interval_ms: u64,

    /// Conversations one user may be a member of; subscribe beyond it gets forbidden.
    #[arg(
        long,
        env = "LIFELINE_MAX_MEMBERSHIPS_PER_USER",
        default_value_t = 1_000
    )]
    max_memberships_per_user: usize,
}

/// Threads for blocking work (storage reads, at most 8 at a time; startup): tokio's default
/// of 512 lets a burst of work each take a thread of its own.
const MAX_BLOCKING_THREADS: usize = 16;

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
        .expect("the async runtime starts")
        .block_on(run());
}

async fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let demo_dir = args.demo_dir.or_else(|| {
        let default = PathBuf::from("js-demo");
        default.is_dir().then_some(default)
    });
    if let Some(dir) = &demo_dir {
        tracing::info!(dir = %dir.display(), "serving the demo at /");
    }
    let mut token_keys = Vec::new();
    for spec in &args.token_secret {
        match TokenKey::parse(spec) {
            Ok(k) => token_keys.push(k),
            Err(e) => refuse(&e.to_string()),
        }
    }
    let config = ServerConfig {
        listen: args.listen,
        data_dir: (!args.memory).then_some(args.data_dir),
        token_keys,
        max_token_ttl_secs: args.max_token_ttl_secs,
        dev: args.dev,
        admin_secret: args.admin_secret.map(Secret),
        postgres: args.postgres.map(Secret),
        redis: args.redis.map(Secret),
        tail_poll_ms: args.tail_poll_ms,
        cors_origins: args.cors_origin,
        dev_tokens: args.dev_tokens,
        faults: args.faults,
        heartbeat_ms: args.heartbeat_ms.max(1),
        resume_window: args.resume_window,
        rate_per_sec: args.rate_per_sec.max(1),
        rate_burst: args.rate_burst.max(1),
        max_body_bytes: args.max_body_bytes,
        demo_dir,
        going_away_retry_ms: args.going_away_retry_ms,
        header_read_timeout_ms: args.header_read_timeout_ms.max(1),
        body_read_timeout_ms: args.body_read_timeout_ms.max(1),
        max_connections: args.max_connections.max(1),
        max_idle_connections: args.max_idle_connections.max(1),
        listen_backlog: args.listen_backlog.max(1),
        presence_max_members: args.presence_max_members,
        max_streams: args.max_streams,
        max_streams_per_user: args.max_streams_per_user,
        slow_consumer_ms: args.slow_consumer_ms.max(1),
        membership_rate_per_sec: args.membership_rate_per_sec.max(1),
        membership_rate_burst: args.membership_rate_burst.max(1),
        history_rate_per_sec: args.history_rate_per_sec.max(1),
        history_rate_burst: args.history_rate_burst.max(1),
        typing_interval_ms: args.typing_interval_ms,
        max_memberships_per_user: args.max_memberships_per_user,
        ..ServerConfig::default()
    };
    let config = match config.checked() {
        Ok(c) => c,
        Err(e) => refuse(&e),
    };
    let server = match start(config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "failed to start");
            std::process::exit(1);
        }
    };
    tracing::info!(url = %server.base_url(), "ready");
    shutdown_signal().await;
    server.shutdown().await;
}

/// Refuses to start: says why on stderr (also when logging is filtered) and exits with 2.
fn refuse(why: &str) -> ! {
    tracing::error!("refusing to start: {why}");
    eprintln!("lifeline-server: refusing to start: {why}");
    std::process::exit(2);
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
