//! The `lifeline-server` binary: parses flags and environment variables into a
//! [`ServerConfig`], starts the server and shuts it down on SIGTERM or Ctrl-C.
//!
//! Everything else lives in the library crate (`lifeline_server`).

use clap::Parser;
use lifeline_server::config::{DEFAULT_DATA_DIR, DEFAULT_DEV_SECRET, DEFAULT_LISTEN};
use lifeline_server::{start, ServerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

/// The Lifeline reference server: WebSocket, Server-Sent Events and long polling over SQLite.
///
/// Runs with no configuration at all (listens on 127.0.0.1:8787, stores data in
/// ./lifeline-data, serves ./js-demo at / when that folder exists). Logging is controlled by
/// RUST_LOG (default: info).
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

    /// Secret for signing and checking tokens (HMAC-SHA256). Without it a built-in development
    /// secret is used and a warning is logged: anyone could mint tokens.
    #[arg(long, env = "LIFELINE_TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<String>,

    /// Serve GET /v1/dev/token?user=NAME&ttl_secs=N, which gives anyone a token for any user.
    /// For the demo and development only.
    #[arg(long, env = "LIFELINE_DEV_TOKENS")]
    dev_tokens: bool,

    /// Serve the fault switches: GET/POST /v1/faults and POST /v1/faults/drop (refuse or
    /// black-hole a transport, stop heartbeats, drop every connection). For tests and demos.
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
}

#[tokio::main]
async fn main() {
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
    let config = ServerConfig {
        listen: args.listen,
        data_dir: (!args.memory).then_some(args.data_dir),
        token_secret: args
            .token_secret
            .unwrap_or_else(|| DEFAULT_DEV_SECRET.to_string()),
        dev_tokens: args.dev_tokens,
        faults: args.faults,
        heartbeat_ms: args.heartbeat_ms.max(1),
        resume_window: args.resume_window,
        rate_per_sec: args.rate_per_sec.max(1),
        rate_burst: args.rate_burst.max(1),
        max_body_bytes: args.max_body_bytes,
        demo_dir,
        going_away_retry_ms: args.going_away_retry_ms,
        ..ServerConfig::default()
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
