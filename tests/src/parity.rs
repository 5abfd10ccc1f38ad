//! The native half of the parity suite: reads a fault script from `tests/parity/<name>.json`
//! (format in tests/parity/README.md), plays it against the native SDK and a real server in this
//! process, and writes the raw trace (every state with its transport and cause text, the bodies
//! delivered, how many tokens were fetched) to `target/parity/<name>.native.json`.
//!
//! The browser half (tests/browser/parity.test.mjs) plays the same script in Chromium, normalizes
//! both traces with one function and compares them; so nothing here judges the trace beyond the
//! script's own waits, which fail with the state log when their condition does not come.

use crate::harness;
use crate::proxy::{FaultProxy, Policy, Which};
use crate::recorder::Recorder;
use lifeline::{BackoffPolicy, Cause, Client, Event, Jitter, State, TransportKind};
use lifeline_server::{Claims, FaultUpdate, RunningServer, ServerConfig};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// How long a wait step waits unless it says `within_ms`.
const DEFAULT_WAIT: Duration = Duration::from_secs(20);

/// The conversation every scenario talks in.
pub const CONVERSATION: &str = "parity";

/// The repository's root (the parent of `tests/`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The text of `tests/parity/<file>`.
fn read(file: &str) -> String {
    let path = root().join("tests/parity").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn parse(file: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("tests/parity/{file}: {e}"))
}

fn ms(v: &Value, key: &str) -> Duration {
    Duration::from_millis(
        v[key]
            .as_u64()
            .unwrap_or_else(|| panic!("client.json: `{key}` must be a number of milliseconds")),
    )
}

fn backoff(v: &Value) -> BackoffPolicy {
    BackoffPolicy {
        base: ms(v, "base_ms"),
        cap: ms(v, "cap_ms"),
        floor: ms(v, "floor_ms"),
        jitter: Jitter::Full,
    }
}

/// The server of a scenario: its configuration (the browser side passes the same values as
/// command-line flags) and the running instance, which `stop_server`/`start_server` replace.
struct Server {
    config: ServerConfig,
    running: Option<RunningServer>,
    _data: tempfile::TempDir,
}

impl Server {
    async fn start(script: &Value) -> Server {
        let data = tempfile::tempdir().expect("temp dir");
        let s = &script["server"];
        let num = |key: &str, default: u64| s[key].as_u64().unwrap_or(default);
        let config = ServerConfig {
            data_dir: Some(data.path().to_path_buf()),
            heartbeat_ms: num("heartbeat_ms", 500),
            going_away_retry_ms: num("going_away_retry_ms", 300),
            rate_per_sec: num("rate_per_sec", 10_000) as u32,
            rate_burst: num("rate_burst", 10_000) as u32,
            // As the binary runs (it has no flag for these).
            sse_retry_ms: ServerConfig::default().sse_retry_ms,
            ..ServerConfig::for_tests()
        };
        let running = harness::start(config.clone()).await;
        let config = ServerConfig {
            listen: running.addr(),
            ..config
        };
        Server {
            config,
            running: Some(running),
            _data: data,
        }
    }

    fn running(&self) -> &RunningServer {
        self.running
            .as_ref()
            .expect("the script talks to a stopped server (add `start_server`)")
    }

    fn addr(&self) -> SocketAddr {
        self.config.listen
    }
}

/// Mints development tokens valid `ttl` with the test key, counting them.
fn token_source(
    config: &ServerConfig,
    ttl: Duration,
    count: Arc<watch::Sender<usize>>,
) -> impl Fn() -> String {
    let key = config.token_keys[0].clone();
    move || {
        count.send_modify(|n| *n += 1);
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            + ttl;
        lifeline_server::mint(&key, &Claims::everything("ana", exp.as_secs()))
    }
}

fn client(url: &str, options: &Value) -> lifeline::ClientBuilder {
    Client::builder(url)
        .seed(options["seed"].as_u64().unwrap_or(7))
        .connect_timeout(ms(options, "connect_timeout_ms"))
        .first_frame_timeout(ms(options, "first_frame_timeout_ms"))
        .race_after(ms(options, "race_after_ms"))
        .first_visit_race_after(ms(options, "first_visit_race_after_ms"))
        .ping_interval(ms(options, "ping_interval_ms"))
        .liveness_timeout(ms(options, "liveness_timeout_ms"))
        .poll_wait(ms(options, "poll_wait_ms"))
        .send_timeout(ms(options, "send_timeout_ms"))
        .stable_after(ms(options, "stable_after_ms"))
        .step_down_after(options["step_down_after"].as_u64().unwrap_or(2) as u32)
        .backoff(backoff(&options["backoff"]))
        .probe_backoff(backoff(&options["probe_backoff"]))
}

/// The raw trace of one client, as both sides write it.
fn raw_trace(rec: &Recorder, tokens: usize, script: &str) -> Value {
    let states: Vec<Value> = rec
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::StateChanged { to, cause, .. } => {
                let transport = match &to {
                    State::Connecting { transport, .. } | State::Connected { transport, .. } => {
                        Some(transport.as_str())
                    }
                    _ => None,
                };
                Some(json!({ "state": to.name(), "transport": transport, "cause": cause.to_string() }))
            }
            _ => None,
        })
        .collect();
    let messages: Vec<String> = rec
        .messages()
        .into_iter()
        .filter(|m| m.conv == CONVERSATION)
        .map(|m| m.body)
        .collect();
    json!({ "side": "native", "script": script, "states": states, "messages": messages, "tokens": tokens })
}

/// How many state changes `rec` has recorded.
fn state_count(rec: &Recorder) -> usize {
    rec.states().len()
}

/// Plays `tests/parity/<name>.json` natively and writes `target/parity/<name>.native.json`;
/// returns the raw trace.
pub async fn run(name: &str) -> Value {
    let file = format!("{name}.json");
    let text = read(&file);
    let script = parse(&file, &text);
    let mut options = parse("client.json", &read("client.json"));
    // A scenario may override some options (`client`).
    if let (Some(all), Some(own)) = (options.as_object_mut(), script["client"].as_object()) {
        all.extend(own.clone());
    }
    let mut server = Server::start(&script).await;
    let ttl = Duration::from_secs(script["token_ttl_secs"].as_u64().unwrap_or(3600));
    let tokens = Arc::new(watch::Sender::new(0usize));
    let url = format!("http://{}", server.addr());
    // The traced client reaches the server through the fault proxy, which cuts its network when
    // the script goes offline (as the browser's offline mode does).
    let proxy = FaultProxy::start(server.addr()).await;

    let mint = token_source(&server.config, ttl, Arc::clone(&tokens));
    let ana = client(&proxy.url(), &options)
        .token_provider(move || {
            let t = mint();
            async move { Ok::<_, std::convert::Infallible>(t) }
        })
        .build()
        .expect("client builds");
    let rec = Recorder::start(&ana);
    // The other participant, for `send_other`: not traced.
    let bob = client(&url, &options)
        .token(
            server
                .running()
                .issue_token("bob", Duration::from_secs(3600)),
        )
        .build()
        .expect("client builds");

    for step in script["before_connect"].as_array().into_iter().flatten() {
        apply_faults(&server, step);
    }
    bob.connect();
    bob.subscribe(CONVERSATION)
        .await
        .expect("the other participant joins");
    ana.connect();
    ana.subscribe(CONVERSATION)
        .await
        .expect("subscribes to the conversation");

    // State changes recorded before the last action: a wait looks only after it.
    let mut mark = 0usize;
    let mut sends = Vec::new();
    for (i, step) in script["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{file}: `steps` must be a list"))
        .iter()
        .enumerate()
    {
        let what = step["do"].as_str().unwrap_or("?");
        let count = step["count"].as_u64().unwrap_or(1);
        let prefix = step["prefix"].as_str().unwrap_or("m");
        if what != "wait" {
            mark = state_count(&rec);
        }
        match what {
            "faults" => apply_faults(&server, step),
            "drop" => server.running().drop_connections(),
            "send" => {
                for n in 1..=count {
                    sends.push(tokio::spawn(
                        ana.send(CONVERSATION, &format!("{prefix}-{n}")),
                    ));
                }
            }
            "send_other" => {
                for n in 1..=count {
                    bob.send(CONVERSATION, &format!("{prefix}-{n}"))
                        .await
                        .expect("the other participant's send is stored");
                }
            }
            "wait" => wait(&rec, &tokens, step, mark, &file, i).await,
            "pause_ms" => tokio::time::sleep(ms(step, "ms")).await,
            // As Chromium's offline mode: new connections fail at once, open ones go silent.
            "offline" => {
                proxy.websocket(Policy::Reset);
                proxy.http(Policy::Reset);
                proxy.blackhole_live(Which::All);
                ana.network_changed(false);
            }
            "online" => {
                proxy.websocket(Policy::Pass);
                proxy.http(Policy::Pass);
                ana.network_changed(true);
            }
            // A native process has no frozen state of its own: it is told that it resumed.
            "freeze" => {}
            "thaw" => ana.resumed(),
            // Nor a visibility: nothing happens.
            "hide" | "show" => {}
            "stop_server" => {
                let running = server.running.take().expect("the server runs");
                running.shutdown().await;
            }
            "start_server" => {
                server.running = Some(harness::start(server.config.clone()).await);
            }
            other => panic!("{file}: step {i}: unknown action `{other}`"),
        }
    }
    for send in sends {
        send.await
            .expect("send task")
            .unwrap_or_else(|e| panic!("{file}: a send failed: {e}"));
    }
    bob.close().await;
    ana.close().await;
    rec.wait_for("the close to be recorded", DEFAULT_WAIT, |events| {
        events.iter().any(|e| {
            matches!(
                e,
                Event::StateChanged {
                    to: State::Closed,
                    ..
                }
            )
        })
    })
    .await;
    let trace = raw_trace(&rec, *tokens.borrow(), &text);
    let dir = root().join("target/parity");
    std::fs::create_dir_all(&dir).expect("target/parity");
    let out = dir.join(format!("{name}.native.json"));
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&trace).expect("trace serializes"),
    )
    .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
    trace
}

fn apply_faults(server: &Server, step: &Value) {
    let update: FaultUpdate = serde_json::from_value(step["set"].clone())
        .unwrap_or_else(|e| panic!("a `faults` step's `set`: {e}"));
    server.running().set_faults(update);
}

async fn wait(
    rec: &Recorder,
    tokens: &watch::Sender<usize>,
    step: &Value,
    mark: usize,
    file: &str,
    i: usize,
) {
    let within = step["within_ms"]
        .as_u64()
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_WAIT);
    let what = format!("{file}: step {i}: {step}");
    if let Some(t) = step["connected"].as_str() {
        let transport =
            TransportKind::parse(t).unwrap_or_else(|| panic!("{what}: unknown transport"));
        rec.wait_for(&what, within, |events| {
            states_after(events, mark)
                .any(|s| matches!(s, State::Connected { transport: got, .. } if *got == transport))
        })
        .await;
    } else if let Some(t) = step["is_connected"].as_str() {
        let transport =
            TransportKind::parse(t).unwrap_or_else(|| panic!("{what}: unknown transport"));
        rec.wait_for(&what, within, |events| {
            states_after(events, 0).last().is_some_and(
                |s| matches!(s, State::Connected { transport: got, .. } if *got == transport),
            )
        })
        .await;
    } else if let Some(kind) = step["cause"].as_str() {
        rec.wait_for(&what, within, |events| {
            causes_after(events, mark).any(|c| cause_kind(c) == kind)
        })
        .await;
    } else if let Some(name) = step["state"].as_str() {
        rec.wait_for(&what, within, |events| {
            states_after(events, mark).any(|s| s.name() == name)
        })
        .await;
    } else if let Some(n) = step["messages"].as_u64() {
        rec.wait_for(&what, within, |events| {
            events
                .iter()
                .filter(|e| matches!(e, Event::Message(m) if m.conv == CONVERSATION))
                .count() as u64
                >= n
        })
        .await;
    } else if let Some(n) = step["tokens"].as_u64() {
        let mut count = tokens.subscribe();
        let fetched = tokio::time::timeout(within, count.wait_for(|got| *got as u64 >= n)).await;
        assert!(
            matches!(fetched, Ok(Ok(_))),
            "timed out waiting for {what}; states:\n  {}",
            rec.state_log()
        );
    } else {
        panic!("{what}: a wait needs `connected`, `is_connected`, `cause`, `state`, `messages` or `tokens`");
    }
}

/// The states entered after the first `mark` state changes.
fn states_after(events: &[Event], mark: usize) -> impl Iterator<Item = &State> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StateChanged { to, .. } => Some(to),
            _ => None,
        })
        .skip(mark)
}

/// The causes of the state changes after the first `mark`.
fn causes_after(events: &[Event], mark: usize) -> impl Iterator<Item = &Cause> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StateChanged { cause, .. } => Some(cause),
            _ => None,
        })
        .skip(mark)
}

/// The name of a cause's kind, as tests/browser/parity.mjs names it, for `wait` steps on a cause.
fn cause_kind(cause: &Cause) -> &'static str {
    match cause {
        Cause::AppConnect => "app-connect",
        Cause::AppClose => "app-close",
        Cause::Opened => "opened",
        Cause::Upgraded { .. } => "upgraded",
        Cause::RetryDue => "retry-due",
        Cause::OpenFailed { .. } => "open-failed",
        Cause::TransportLost { .. } => "transport-lost",
        Cause::FirstFrameTimeout { .. } => "first-frame-timeout",
        Cause::ConnectTimeout { .. } => "connect-timeout",
        Cause::HeartbeatTimeout { .. } => "heartbeat-timeout",
        Cause::ServerGoingAway => "going-away",
        Cause::TlsRejected { .. } => "tls-rejected",
        Cause::AuthRejected { .. } => "auth-rejected",
        Cause::TokenUnavailable { .. } => "token-unavailable",
        Cause::ServerBusy => "server-busy",
        Cause::UnsupportedVersion => "unsupported-version",
        Cause::RetryLimit => "retry-limit",
        Cause::Offline => "offline",
        Cause::Online => "online",
        Cause::Resumed => "resumed",
        _ => "other",
    }
}
