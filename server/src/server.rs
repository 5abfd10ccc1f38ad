//! Starting and stopping a server: the router, the listener, [`start`], [`RunningServer`] and the
//! orderly shutdown (tell clients `going_away`, stop accepting, wait for connections, flush
//! storage).
//!
//! Request handling lives in the transport modules; this module only assembles them.

use crate::admin;
use crate::cluster::Cluster;
use crate::config::{ServerConfig, DEV_KID};
use crate::conns::Conns;
use crate::faults::{FaultState, FaultUpdate, Faults};
use crate::hub::Hub;
use crate::limits::Limits;
use crate::listener::{self, ListenerLimits};
use crate::members::Members;
use crate::state::{AppState, Shared};
use crate::store::postgres::Postgres;
use crate::store::sqlite::Sqlite;
use crate::store::{Backend, Store, StoreError};
use crate::tail::Tail;
use crate::token::{mint, unix_now, Claims};
use crate::writer::Writer;
use crate::{history, poll, send, sse, ws};
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method};
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;

/// How long shutdown waits for connections to finish after telling them to go away.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why [`start`] failed.
#[derive(Debug)]
pub enum StartError {
    /// The listen address could not be bound.
    Bind(std::io::Error),
    /// The database could not be opened.
    Storage(StoreError),
    /// The configuration is unsafe or inconsistent (see [`ServerConfig::checked`]).
    Config(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Bind(e) => write!(f, "cannot listen: {e}"),
            StartError::Storage(e) => write!(f, "cannot open storage: {e}"),
            StartError::Config(e) => write!(f, "refusing to start: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A server running on the current tokio runtime.
///
/// Stop it with [`RunningServer::shutdown`]; dropping it without that only signals shutdown
/// (streams get `going_away`, the listener stops) without waiting or checkpointing.
pub struct RunningServer {
    addr: SocketAddr,
    shared: AppState,
    serve: Option<JoinHandle<()>>,
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shared.conns.shutdown_token().cancel();
    }
}

fn router(shared: AppState) -> Router {
    let config = &shared.config;
    let mut app = Router::new()
        .route("/healthz", get(admin::healthz))
        .route("/v1/ws", get(ws::handler))
        .route("/v1/sse", get(sse::handler))
        .route("/v1/poll", get(poll::handler))
        .route("/v1/send", post(send::handler))
        .route("/v1/history", get(history::handler));
    // The operator endpoints read small bodies only: anything larger is refused with 413 as soon
    // as the limit is crossed, never buffered.
    let mut small = Router::new();
    if config.dev_tokens {
        small = small.route("/v1/dev/token", get(admin::dev_token));
    }
    if config.faults {
        small = small
            .route("/v1/faults", get(admin::get_faults).post(admin::set_faults))
            .route("/v1/faults/drop", post(admin::drop_all));
    }
    if config.admin_secret.is_some() {
        small = small.route(
            "/v1/admin/conversations/{conv}/members/{user}",
            axum::routing::put(admin::put_member).delete(admin::delete_member),
        );
    }
    app = app.merge(small.layer(DefaultBodyLimit::max(admin::MAX_OPERATOR_BODY_BYTES)));
    if let Some(dir) = &config.demo_dir {
        app = app.fallback_service(ServeDir::new(dir).append_index_html_on_directories(true));
    }
    // Extractors that buffer a body (JSON, bytes) stop at the send limit (the operator endpoints
    // above at their smaller one); `/v1/send` reads its body itself with the same limit and a
    // typed `too_large`.
    let app = app.layer(DefaultBodyLimit::max(config.max_body_bytes));
    let app = match cors(config) {
        Some(layer) => app.layer(layer),
        None => app,
    };
    app.with_state(shared)
}

/// The CORS policy: any origin in development mode, the configured allow-list otherwise, none
/// (no `Access-Control-Allow-Origin` at all) without one.
fn cors(config: &ServerConfig) -> Option<CorsLayer> {
    if config.dev {
        return Some(CorsLayer::permissive());
    }
    let origins: Vec<HeaderValue> = config
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::RETRY_AFTER]),
    )
}

/// How often the PostgreSQL partitions ahead are created (they cover a week ahead).
const PARTITION_UPKEEP: Duration = Duration::from_secs(3_600);

/// Creates upcoming PostgreSQL partitions every [`PARTITION_UPKEEP`] while the store lives.
async fn maintain_partitions(store: std::sync::Weak<Store>) {
    let mut tick = tokio::time::interval(PARTITION_UPKEEP);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(store) = store.upgrade() else { return };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        if let Err(e) = store.maintain(now).await {
            tracing::warn!(error = %e, "creating upcoming partitions failed; retrying later");
        }
    }
}

/// Binds `config.listen`, opens storage and starts serving in the background.
///
/// Refuses an unsafe configuration first (see [`ServerConfig::checked`]). The socket is bound
/// before storage is opened: a fleet reconnecting to a restarting instance waits in the listen
/// backlog while storage opens, instead of being refused and drawing its next retry from a
/// wider window (a tail of late arrivals in a reconnect storm).
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    let config = config.checked().map_err(StartError::Config)?;
    if config.token_keys.iter().any(|k| k.kid == DEV_KID) {
        tracing::warn!(
            "development mode with the built-in token secret: anyone can mint tokens \
             (loopback only)"
        );
    }
    let listener =
        listener::bind(config.listen, config.listen_backlog).map_err(StartError::Bind)?;
    let addr = listener.local_addr().map_err(StartError::Bind)?;
    if config.open_hold_ms > 0 {
        tokio::time::sleep(Duration::from_millis(config.open_hold_ms)).await;
    }
    let (store, (member_pairs, grant_pairs), changes_seen) = {
        let dir = config.data_dir.clone();
        let postgres = config.postgres.clone();
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let backend: Box<dyn Backend> = match postgres {
                Some(url) => Box::new(Postgres::open(&url.0, rt)?),
                None => Box::new(Sqlite::open(dir.as_deref())?),
            };
            // The change log's position before the caches are read: changes logged in between
            // are applied again by the tail, which is harmless.
            let changes_seen = backend.changes_head()?;
            let store = Store::new(backend)?;
            let members = store.all_members()?;
            let grants = store.all_grants()?;
            Ok::<_, StoreError>((store, (members, grants), changes_seen))
        })
        .await
        .map_err(|e| StartError::Storage(StoreError(e.to_string())))?
        .map_err(StartError::Storage)?
    };
    let store = Arc::new(store);
    let members = Arc::new(Members::from_pairs(member_pairs));
    let grants = Arc::new(Members::from_pairs(grant_pairs));
    let hub = Arc::new(Hub::new(
        config.live_buffer,
        Arc::clone(&members),
        config.presence_max_members,
    ));
    let tail: Option<Arc<Tail>> = config.postgres.is_some().then(|| {
        tokio::spawn(maintain_partitions(Arc::downgrade(&store)));
        Tail::spawn(
            &store,
            &hub,
            (&members, &grants),
            changes_seen,
            Duration::from_millis(config.tail_poll_ms.max(1)),
        )
    });
    let writer = Writer::spawn(
        Arc::clone(&store),
        Arc::clone(&members),
        Arc::clone(&grants),
        Arc::clone(&hub),
        tail.clone(),
        Duration::from_millis(config.commit_hold_ms),
    );
    let shared = Arc::new(Shared {
        limits: Limits::from_config(&config),
        conns: Conns::new(config.max_streams, config.max_streams_per_user),
        config,
        store,
        writer,
        members,
        grants,
        hub,
        faults: Faults::default(),
    });
    if let (Some(url), Some(tail)) = (&shared.config.redis, &tail) {
        Cluster::start(&url.0, &shared, tail).map_err(|e| StartError::Config(e.0))?;
    }
    let app = router(Arc::clone(&shared));
    let limits = ListenerLimits {
        max_connections: shared.config.max_connections,
        max_idle_connections: shared.config.max_idle_connections,
        header_read_timeout: Duration::from_millis(shared.config.header_read_timeout_ms.max(1)),
        slow_consumer: Duration::from_millis(shared.config.slow_consumer_ms.max(1)),
    };
    let serve = tokio::spawn(listener::serve(listener, app, limits, Arc::clone(&shared)));
    tracing::info!(
        %addr,
        data_dir = ?shared.config.data_dir,
        head = shared.store.head(),
        "lifeline-server listening"
    );
    Ok(RunningServer {
        addr,
        shared,
        serve: Some(serve),
    })
}

impl RunningServer {
    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://<addr>`.
    pub fn ws_base_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// A token for `user` valid for `ttl`, granting every conversation, signed with this
    /// server's signing key.
    pub fn issue_token(&self, user: &str, ttl: Duration) -> String {
        self.issue_token_with(Claims::everything(
            user,
            unix_now().saturating_add(ttl.as_secs().max(1)),
        ))
    }

    /// A token carrying `claims`, signed with this server's signing key (the first one).
    pub fn issue_token_with(&self, claims: Claims) -> String {
        mint(&self.shared.config.token_keys[0], &claims)
    }

    /// The fault switches (regardless of `--faults`, for in-process tests).
    pub fn faults(&self) -> FaultState {
        self.shared.faults.get()
    }

    /// Changes some fault switches; returns the new state.
    pub fn set_faults(&self, update: FaultUpdate) -> FaultState {
        self.shared.faults.update(update)
    }

    /// Drops every live connection on every transport.
    pub fn drop_connections(&self) {
        self.shared.conns.drop_all();
    }

    /// How many streams (WebSocket, SSE, pending long polls) are open.
    pub fn open_streams(&self) -> usize {
        self.shared.conns.open_count()
    }

    /// How many streams or connections were closed because their client stopped taking bytes
    /// (slow consumers), since the start.
    pub fn slow_consumers(&self) -> usize {
        self.shared.conns.slow_consumer_count()
    }

    /// Whether `user` has a live stream (presence).
    pub fn is_online(&self, user: &str) -> bool {
        self.shared.hub.is_online(user)
    }

    /// The newest committed sequence number.
    pub fn head_seq(&self) -> u64 {
        self.shared.store.head()
    }

    /// Resolves when the server has been told to stop (for the binary's signal handling).
    pub fn shutdown_requested(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.shared.conns.shutdown_token().cancelled_owned()
    }

    /// Tells every stream `going_away`, answers pending polls, stops accepting, waits (up to a
    /// few seconds) for connections to finish, then commits and checkpoints storage.
    pub async fn shutdown(mut self) {
        tracing::info!("shutting down: telling clients to go away");
        self.shared.conns.shutdown_token().cancel();
        let tracker = self.shared.conns.tracker().clone();
        tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not finish in time");
        }
        if let Some(mut serve) = self.serve.take() {
            if tokio::time::timeout(DRAIN_TIMEOUT, &mut serve)
                .await
                .is_err()
            {
                tracing::warn!("the listener did not stop in time; aborting it");
                serve.abort();
            }
        }
        self.shared.writer.close().await;
        tracing::info!("storage flushed; stopped");
    }
}
