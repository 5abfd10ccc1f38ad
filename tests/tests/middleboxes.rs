//! Behind real middleboxes and through host outages, as a deployment meets them: Debian's nginx
//! (default reverse proxy, WebSocket proxying, buffering forced on, restarted mid-stream) and
//! HAProxy (5 s idle timeouts) between a listening client and the real server, and the server
//! itself killed with SIGKILL and restarted. A sender talks to the server directly.
//!
//! Every scenario checks exactly-once in-order delivery with the checker **and** delivery
//! latency (p50 and max) against a bound a correct client meets with room to spare on a loaded
//! 2-core machine. The listeners use the SDK's default timings (those are what a deployment
//! meets), and the server its default heartbeat unless a scenario says otherwise. The figures
//! of each run are printed (`--nocapture`); the "today" figures in the doc comments were measured
//! on the code these tests were written against (before the connection-policy fixes).
//!
//! The first-message tests at the end use the fault proxy (WebSocket upgrades reset or
//! black-holed); their figures belong to `lifeline-bench first-message`, the tests only hold
//! generous bounds.

use lifeline::{BackoffPolicy, Client, Jitter, State, TransportKind};
use lifeline_server::ServerConfig;
use lifeline_tests::checker;
use lifeline_tests::child_server::ChildServer;
use lifeline_tests::first_message::{median_of, WebSocketPath};
use lifeline_tests::harness::{self, WAIT};
use lifeline_tests::latency::{self, Latency, Sent};
use lifeline_tests::middlebox::{Middlebox, Setup};
use lifeline_tests::recorder::Recorder;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

/// Median delivery latency a correct client keeps behind any of these middleboxes.
const P50_BOUND: Duration = Duration::from_millis(500);
/// Worst delivery latency a correct client keeps (today's code: up to 20 s behind buffering).
const MAX_BOUND: Duration = Duration::from_secs(3);
/// How often a connection may be cut by a middlebox's idle timeout before the client has learnt
/// to keep it alive (or to poll for shorter), in one run.
const MAX_CUTS: usize = 4;
/// How long the arrival of every message is awaited after the last send resolved: long enough
/// that a slow client's figure is measured (and the test fails on latency, not on a timeout).
const ARRIVAL_WAIT: Duration = Duration::from_secs(40);

/// One client listening through the middlebox.
struct Listener {
    name: String,
    client: Client,
    recorder: Recorder,
}

/// A listener on `url` with the SDK's default timings, optionally held to one transport.
async fn listener(
    url: &str,
    token: String,
    name: &str,
    seed: u64,
    only: Option<TransportKind>,
    conv: &str,
) -> Listener {
    listener_from(Client::builder(url), token, name, seed, only, conv).await
}

/// A listener for the restart scenarios: default timings except a reconnect backoff capped at
/// 1 s. With the default backoff (0.5 s base, 15 s cap, full jitter) the wait after the host comes
/// back is a random draw from a window that has grown to several seconds over the refused attempts
/// of the outage; these scenarios judge the ladder (a refused host is not a bad rung) and the
/// delivery after the return, not the backoff's draw, which the core's own tests cover.
async fn restart_listener(url: &str, token: String, seed: u64, conv: &str) -> Listener {
    let builder = Client::builder(url).backoff(BackoffPolicy {
        base: Duration::from_millis(250),
        cap: Duration::from_secs(1),
        floor: Duration::from_millis(50),
        jitter: Jitter::Full,
    });
    listener_from(builder, token, "l0", seed, None, conv).await
}

async fn listener_from(
    builder: lifeline::ClientBuilder,
    token: String,
    name: &str,
    seed: u64,
    only: Option<TransportKind>,
    conv: &str,
) -> Listener {
    let mut builder = builder.seed(seed).token(token);
    if let Some(t) = only {
        builder = builder.transports([t]);
    }
    let client = builder.build().expect("client builds");
    let recorder = Recorder::start(&client);
    client.connect();
    tokio::time::timeout(WAIT, client.subscribe(conv))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{name}: subscribe timed out; states:\n  {}",
                recorder.state_log()
            )
        })
        .unwrap_or_else(|e| panic!("{name}: subscribe failed: {e}"));
    Listener {
        name: name.to_string(),
        client,
        recorder,
    }
}

/// The sender: straight to the server, the harness's short timings.
async fn sender(url: &str, token: String, conv: &str) -> Client {
    let client = harness::client(url, 99)
        .token(token)
        .build()
        .expect("sender builds");
    client.connect();
    tokio::time::timeout(WAIT, client.subscribe(conv))
        .await
        .expect("sender subscribe timed out")
        .expect("sender subscribed");
    client
}

/// Sends on the schedule `gaps` while `fault` runs; returns what was sent once every send has
/// been acknowledged.
async fn talk(
    sender: &Client,
    conv: &str,
    gaps: &[Duration],
    fault: impl Future<Output = ()>,
) -> Sent {
    let (sent, ()) = tokio::join!(latency::send_paced(sender, "s", conv, gaps), fault);
    let failed: Vec<_> = sent
        .results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("#{i}: {e}")))
        .collect();
    assert!(failed.is_empty(), "sends failed: {failed:?}");
    sent
}

/// The verdict: every listener got every message once, in order, within the latency bounds
/// (latency counted from `back` for messages sent while the path was down). Prints the figures.
async fn verdict(
    scenario: &str,
    sent: &Sent,
    listeners: &[Listener],
    conv: &str,
    back: Option<Instant>,
) {
    let n = sent.at.len();
    let expected = BTreeMap::from([(sent.sender.clone(), n)]);
    let mut failures = Vec::new();
    for l in listeners {
        let arrived = tokio::time::timeout(ARRIVAL_WAIT, l.recorder.wait_messages(n, ARRIVAL_WAIT))
            .await
            .is_ok();
        let received: Vec<_> = l
            .recorder
            .messages()
            .into_iter()
            .filter(|m| m.conv == conv)
            .collect();
        let report = checker::check(&expected, &received);
        let figures = latency::measure(sent, &l.recorder, conv, back);
        let shown = figures.map_or("nothing arrived".to_string(), |f: Latency| f.to_string());
        eprintln!(
            "{scenario}: {}: {shown}; transports {:?}",
            l.name,
            l.recorder.connected_transports()
        );
        let mut problems = Vec::new();
        if !arrived || !report.is_clean() {
            problems.push(format!("delivery: {report}"));
        }
        if let Some(f) = figures {
            if f.p50 > P50_BOUND {
                problems.push(format!(
                    "p50 {} ms > {} ms",
                    f.p50.as_millis(),
                    P50_BOUND.as_millis()
                ));
            }
            if f.max > MAX_BOUND {
                problems.push(format!(
                    "max {} ms > {} ms",
                    f.max.as_millis(),
                    MAX_BOUND.as_millis()
                ));
            }
        }
        l.client.close().await;
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {} ({shown})\n  states:\n  {}",
                l.name,
                problems.join("; "),
                l.recorder.state_log()
            ));
        }
    }
    assert!(failures.is_empty(), "{scenario}:\n{}", failures.join("\n"));
}

/// Asserts that `l` connected once and stayed connected (no reconnect during the run).
fn assert_one_connection(scenario: &str, l: &Listener) {
    let connects = l.recorder.connected_transports();
    assert!(
        connects.len() == 1,
        "{scenario}: {} connected {} times; states:\n  {}",
        l.name,
        connects.len(),
        l.recorder.state_log()
    );
}

/// Asserts that `l` only ever connected on WebSocket.
fn assert_stayed_on_websocket(scenario: &str, l: &Listener) {
    let connects = l.recorder.connected_transports();
    assert!(
        connects.iter().all(|t| *t == TransportKind::WebSocket),
        "{scenario}: {} left WebSocket ({connects:?}); states:\n  {}",
        l.name,
        l.recorder.state_log()
    );
}

/// A server as deployed: the default heartbeat (10 s) unless `heartbeat_ms` says otherwise.
async fn server(heartbeat_ms: u64) -> lifeline_server::RunningServer {
    harness::start(ServerConfig {
        heartbeat_ms,
        ..ServerConfig::for_tests()
    })
    .await
}

fn start_middlebox(setup: Setup, upstream: std::net::SocketAddr) -> Middlebox {
    tokio::task::block_in_place(|| Middlebox::start(setup, upstream))
}

/// (a) nginx as a default reverse proxy: it does not pass `Upgrade`, so WebSocket fails and the
/// client must settle on SSE (which nginx passes unbuffered, honouring `X-Accel-Buffering: no`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_default_reverse_proxy_delivers_over_sse() {
    let server = server(10_000).await;
    let nginx = start_middlebox(Setup::NginxDefault, server.addr());
    let conv = "nginx-default";
    let l = listener(
        &nginx.url(),
        harness::token(&server, "l0"),
        "l0",
        1,
        None,
        conv,
    )
    .await;
    let s = sender(&server.base_url(), harness::token(&server, "s"), conv).await;
    let sent = talk(
        &s,
        conv,
        &latency::steady(60, Duration::from_millis(100)),
        async {},
    )
    .await;
    verdict("nginx default", &sent, std::slice::from_ref(&l), conv, None).await;
    assert!(
        !l.recorder
            .connected_transports()
            .contains(&TransportKind::WebSocket),
        "WebSocket through an nginx without Upgrade headers cannot work; log:\n{}",
        nginx.log()
    );
}

/// (b) nginx passing WebSocket, a listen-only client while a message flows every 500 ms, with a 2 s
/// server heartbeat. The stream is busy, so the connection must stay up.
///
/// Today: the server's WebSocket Ping only goes out on a heartbeat tick, which never fires while
/// messages flow, and the client pings only after 7 s of silence: the server closes the connection
/// with 1001 "no traffic" after three heartbeats (6 s) of client silence, every time (before the
/// connection-policy fixes: connected 3 times in the 15 s run; latency p50 1 ms, max 431 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_websocket_proxy_keeps_a_busy_listen_only_stream() {
    let server = server(2_000).await;
    let nginx = start_middlebox(Setup::NginxWebSocket, server.addr());
    let conv = "nginx-ws";
    let l = listener(
        &nginx.url(),
        harness::token(&server, "l0"),
        "l0",
        2,
        None,
        conv,
    )
    .await;
    let s = sender(&server.base_url(), harness::token(&server, "s"), conv).await;
    let sent = talk(
        &s,
        conv,
        &latency::steady(30, Duration::from_millis(500)),
        async {},
    )
    .await;
    verdict(
        "nginx websocket",
        &sent,
        std::slice::from_ref(&l),
        conv,
        None,
    )
    .await;
    assert_stayed_on_websocket("nginx websocket", &l);
    assert_one_connection("nginx websocket", &l);
}

/// (c) nginx with response buffering forced on (`proxy_buffering on; proxy_ignore_headers
/// X-Accel-Buffering;`), no Upgrade: a burst of traffic (that fills nginx's buffers), then a quiet
/// tail of messages 500 ms apart. A client must notice the buffered rung by delivery and not climb
/// back to it.
///
/// Today (issue 11): SSE never "opens" (nginx withholds even the headers), each attempt waits the
/// connect timeout; under load `hello` gets through, the client climbs back to the buffered SSE and
/// the tail waits ~20 s: median 1.9 s, max 20.0 s. Before the connection-policy fixes: long
/// polling, then the buffered SSE again, then long polling; max 18.0 s and 18.5 s in two runs (a
/// message of the quiet tail), p50 2–4 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_buffering_forced_on_does_not_hold_messages_back() {
    let server = server(10_000).await;
    let nginx = start_middlebox(Setup::NginxBuffered, server.addr());
    let conv = "nginx-buffered";
    let l = listener(
        &nginx.url(),
        harness::token(&server, "l0"),
        "l0",
        3,
        None,
        conv,
    )
    .await;
    let s = sender(&server.base_url(), harness::token(&server, "s"), conv).await;
    let mut gaps = latency::steady(200, Duration::from_millis(20));
    gaps.extend(latency::steady(10, Duration::from_millis(500)));
    let sent = talk(&s, conv, &gaps, async {}).await;
    verdict(
        "nginx buffered",
        &sent,
        std::slice::from_ref(&l),
        conv,
        None,
    )
    .await;
}

/// (d) HAProxy with `timeout client/server/tunnel 5s`, messages 12 s apart (longer than the idle
/// timeout), three listeners: the default ladder, SSE only, long polling only. Keep-alive must
/// learn to stay under the middlebox's idle timeout (WebSocket: at most [`MAX_CUTS`] cuts in the
/// run; long polling: a shorter `wait_ms` after a 504, so at most [`MAX_CUTS`] lost polls), and a
/// proxy's HTML error page is never a cause. SSE is cut whatever the client does (the server's
/// heartbeat is 10 s); only its latency is held.
///
/// Today (issue 11): idle WebSockets cut every ~5 s (client ping 7 s, server heartbeat 10 s), never
/// living the 10 s that resets backoff, so the attempt counter climbs; an idle long poll (10 s
/// wait) gets a 504 after 5 s, counted as a lost link with HTML in its cause; idle SSE is cut;
/// messages 12 s apart were delayed up to 10.5 s. Before the connection-policy fixes: the WebSocket
/// listener reconnected 6 times in every 49 s run and its slowest message took 3.6 s and 5.2 s in
/// two runs (9 ms in a third: the delay depends on where the backoff's jitter falls, the reconnect
/// count does not); the SSE one up to 1.6 s; the poll listener's cause held HAProxy's
/// `<html><body><h1>504 Gateway Time-out</h1>…` page four times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_short_idle_timeouts_do_not_delay_messages() {
    let server = server(10_000).await;
    let haproxy = start_middlebox(Setup::HaproxyShortTimeouts, server.addr());
    let conv = "haproxy";
    let url = haproxy.url();
    let mut listeners = Vec::new();
    for (i, only) in [
        None,
        Some(TransportKind::Sse),
        Some(TransportKind::LongPoll),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!(
            "l{i}-{}",
            only.map_or("ladder".to_string(), |t| t.to_string())
        );
        listeners.push(
            listener(
                &url,
                harness::token(&server, &name),
                &name,
                10 + i as u64,
                only,
                conv,
            )
            .await,
        );
    }
    let s = sender(&server.base_url(), harness::token(&server, "s"), conv).await;
    let mut gaps = vec![Duration::from_secs(1)];
    gaps.extend(latency::steady(4, Duration::from_secs(12)));
    let sent = talk(&s, conv, &gaps, async {}).await;
    verdict("haproxy 5 s", &sent, &listeners, conv, None).await;
    for l in &listeners {
        let cuts = l
            .recorder
            .states()
            .iter()
            .filter(|(state, _)| matches!(state, State::Reconnecting { .. }))
            .count();
        eprintln!("haproxy 5 s: {}: {cuts} reconnects", l.name);
        if !l.name.ends_with("-sse") {
            assert!(
                cuts <= MAX_CUTS,
                "{}: {cuts} reconnects behind a 5 s idle timeout; states:\n  {}",
                l.name,
                l.recorder.state_log()
            );
        }
        let html: Vec<String> = l
            .recorder
            .states()
            .iter()
            .map(|(_, cause)| cause.to_string())
            .filter(|c| c.contains('<'))
            .collect();
        assert!(
            html.is_empty(),
            "{}: the proxy's HTML page ended up in a cause: {html:?}",
            l.name
        );
    }
}

/// (e) nginx (WebSocket proxying) stopped by PID mid-stream and started again on the same port 5 s
/// later, while a message flows every 100 ms. "Connection refused" on every rung is a failure of
/// the host, not of WebSocket: the client must come back on WebSocket without walking down the
/// ladder, and what was sent during the outage must arrive soon after nginx is back.
///
/// Today (issue 11, nginx down 5.7 s): the refusals count against each rung in turn, the client
/// walks WebSocket → SSE → long polling and needs two upward probes (5–12 s) to reach WebSocket.
/// Before the connection-policy fixes (nginx down 5 s): WebSocket → WebSocket refused twice → SSE
/// failed twice → long polling (`degraded`) until the end of the run; latency from nginx's return
/// p50 2.7 s, max 3.7 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_restarted_mid_stream_client_returns_on_websocket() {
    let server = server(10_000).await;
    let mut nginx = start_middlebox(Setup::NginxWebSocket, server.addr());
    let conv = "nginx-restart";
    let l = restart_listener(&nginx.url(), harness::token(&server, "l0"), 4, conv).await;
    let s = sender(&server.base_url(), harness::token(&server, "s"), conv).await;
    let mut back = None;
    let outage = async {
        l.recorder.wait_messages(20, WAIT).await;
        tokio::task::block_in_place(|| nginx.stop());
        // The outage itself: nginx stays down this long.
        tokio::time::sleep(Duration::from_secs(5)).await;
        tokio::task::block_in_place(|| nginx.start_again());
        back = Some(Instant::now());
    };
    let sent = talk(
        &s,
        conv,
        &latency::steady(120, Duration::from_millis(100)),
        outage,
    )
    .await;
    verdict("nginx restart", &sent, std::slice::from_ref(&l), conv, back).await;
    assert_stayed_on_websocket("nginx restart", &l);
}

/// The server killed with SIGKILL (no `going_away`) and started again on the same port with the
/// same storage 3 s later; no proxy. The client must come back on WebSocket (refused connections
/// are the host's failure) and deliver what was sent meanwhile soon after.
///
/// Today (issue 11): two "connection refused" WebSocket failures step the client down to SSE
/// (`degraded`); it is back on WebSocket only 1.9–3.8 s later. Before the connection-policy fixes
/// (down 3 s): two refused WebSocket attempts, two failed SSE attempts, then long polling
/// (`degraded`) to the end of the run; latency from the restart p50 3.3 s, max 5.3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_and_restarted_client_returns_on_websocket() {
    let mut server = ChildServer::start(env!("CARGO_BIN_EXE_lifeline-test-server"), 10_000);
    let url = server.url();
    let conv = "killed";
    let l = restart_listener(&url, server.token("l0"), 5, conv).await;
    let s = sender(&url, server.token("s"), conv).await;
    let mut back = None;
    let outage = async {
        l.recorder.wait_messages(20, WAIT).await;
        tokio::task::block_in_place(|| server.kill());
        // The outage itself: the server stays down this long.
        tokio::time::sleep(Duration::from_secs(3)).await;
        tokio::task::block_in_place(|| server.start_again());
        back = Some(Instant::now());
    };
    let sent = talk(
        &s,
        conv,
        &latency::steady(100, Duration::from_millis(100)),
        outage,
    )
    .await;
    verdict("server killed", &sent, std::slice::from_ref(&l), conv, back).await;
    assert_stayed_on_websocket("server killed", &l);
    assert!(
        !l.recorder
            .states()
            .iter()
            .any(|(state, _)| matches!(state, State::Failed { .. })),
        "l0 gave up; states:\n  {}",
        l.recorder.state_log()
    );
}

/// The median of three first visits' time to the first message over `path`, within `bound`.
async fn first_message_within(path: WebSocketPath, label: &str, bound: Duration) {
    let (median, all) = median_of(path, 3).await;
    eprintln!("first message, {label}: median {median:?} of {all:?}");
    assert!(median <= bound, "{label}: median {median:?} of {all:?}");
}

/// First message on a first visit with the network as it should be: the median of three runs.
/// (The target is 25 ms on loopback; the figure is `lifeline-bench first-message`'s. Issue 11:
/// 21 ms; before the connection-policy fixes, this test: median 8 ms; after: 2.7–3.3 ms.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_message_normal_network_is_fast() {
    first_message_within(WebSocketPath::Works, "normal", Duration::from_millis(250)).await;
}

/// First message on a first visit when every WebSocket upgrade is reset: the median of three
/// runs. (Target 150 ms; issue 11: 494 ms, two resets, backoff, then SSE; before the
/// connection-policy fixes, this test: median 921 ms of 1,170 / 299 / 921 ms; after: 3.6–5.5 ms.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_message_with_websocket_reset_is_fast() {
    first_message_within(
        WebSocketPath::Reset,
        "WebSocket reset",
        Duration::from_millis(400),
    )
    .await;
}

/// First message on a first visit when WebSocket upgrades are black-holed: the median of three
/// runs. (Target 150 ms; issue 11: 3,019 ms, SSE is raced only after 3 s; before the
/// connection-policy fixes, this test: median 3,016 ms; after: 56–58 ms.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_message_with_websocket_blackholed_is_fast() {
    first_message_within(
        WebSocketPath::Blackholed,
        "WebSocket black-holed",
        Duration::from_secs(1),
    )
    .await;
}

/// While the host is down (as in the restart scenarios above), every failure a client reports —
/// state causes, events, their `Debug` — is free of its token, on every transport. (Found by the
/// restart scenarios: before the fix the SSE and long-poll rungs' causes were reqwest's "error
/// sending request for url (http://…/v1/sse?v=1&token=<the token>…)", three events each; WebSocket
/// was clean. The native driver now drops the URL from reqwest's errors and sends the token in
/// `Authorization`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_hosts_failures_never_carry_the_token() {
    // A port nobody listens on: every attempt is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let token = "tok-secret-a1b2c3d4e5";
    let mut leaked = Vec::new();
    for transport in [
        TransportKind::WebSocket,
        TransportKind::Sse,
        TransportKind::LongPoll,
    ] {
        let client = harness::client(&url, 21)
            .token(token)
            .transports([transport])
            .build()
            .expect("client builds");
        let recorder = Recorder::start(&client);
        client.connect();
        recorder
            .wait_for("two failed attempts", WAIT, |events| {
                events
                    .iter()
                    .filter(|e| {
                        matches!(
                            e,
                            lifeline::Event::StateChanged {
                                to: State::Reconnecting { .. },
                                ..
                            }
                        )
                    })
                    .count()
                    >= 2
            })
            .await;
        client.close().await;
        let leaks: Vec<String> = recorder
            .events()
            .iter()
            .map(|e| format!("{e:?}"))
            .filter(|text| text.contains(token))
            .collect();
        if let Some(example) = leaks.first() {
            leaked.push(format!(
                "{transport}: the token is in {} event(s), e.g. {example}",
                leaks.len()
            ));
        }
    }
    assert!(leaked.is_empty(), "{}", leaked.join("\n"));
}
