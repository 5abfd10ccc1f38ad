//! Test set-up: a real server on loopback (in process), tokens, and clients configured with short
//! timeouts so that the whole suite runs in well under three minutes.
//!
//! Only set-up lives here; scenarios are in `tests/`.

use lifeline::{BackoffPolicy, ClientBuilder, Jitter};
use lifeline_server::{RunningServer, ServerConfig};
use std::sync::Once;
use std::time::Duration;

/// The server's heartbeat in the tests; the client's silence limit is this plus 3 s (the core
/// never waits less than the server's heartbeat plus 3 s).
pub const HEARTBEAT_MS: u64 = 250;

/// How long a test waits for any single condition before failing.
pub const WAIT: Duration = Duration::from_secs(20);

/// The server configuration of the tests: in memory, short heartbeat, fast `going_away`.
pub fn server_config() -> ServerConfig {
    ServerConfig {
        heartbeat_ms: HEARTBEAT_MS,
        going_away_retry_ms: 300,
        sse_retry_ms: 200,
        ..ServerConfig::for_tests()
    }
}

/// Starts a server with [`server_config`].
pub async fn server() -> RunningServer {
    start(server_config()).await
}

/// Starts a server with `config`.
pub async fn start(config: ServerConfig) -> RunningServer {
    init_tracing();
    lifeline_server::start(config).await.expect("server starts")
}

/// A token for `user` valid for an hour.
pub fn token(server: &RunningServer, user: &str) -> String {
    server.issue_token(user, Duration::from_secs(3600))
}

/// A client builder for `url` with short timeouts and a fixed seed.
pub fn client(url: &str, seed: u64) -> ClientBuilder {
    lifeline::Client::builder(url)
        .seed(seed)
        .connect_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_millis(300))
        .liveness_timeout(Duration::from_secs(1))
        .send_timeout(Duration::from_secs(40))
        .backoff(BackoffPolicy {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(500),
            floor: Duration::from_millis(20),
            jitter: Jitter::Full,
        })
        .first_frame_timeout(Duration::from_millis(1_500))
        .race_after(Duration::from_millis(400))
        .verify_grace(Duration::from_millis(500))
        .poll_wait(Duration::from_millis(1_000))
        .stable_after(Duration::from_secs(2))
        .probe_backoff(BackoffPolicy {
            base: Duration::from_millis(300),
            cap: Duration::from_secs(1),
            floor: Duration::from_millis(200),
            jitter: Jitter::Full,
        })
}

/// The silence after which a client declares a live transport dead in these tests.
pub fn silence_limit() -> Duration {
    Duration::from_millis(HEARTBEAT_MS) + Duration::from_secs(3)
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
    });
}
