//! Three server instances on one real PostgreSQL (and, in the second scenario, one Redis too: the
//! full cluster mode) behind a real HAProxy (round-robin, health
//! checks; the configuration docs/DEPLOYMENT.md shows), native SDK clients connecting through it.
//! Two of the instances run with their clocks off by seconds (libfaketime: one 7 s ahead, one 7 s
//! behind). While the crowd sends thousands of numbered messages, the one instance with a true
//! clock is killed with SIGKILL (HAProxy's health checks take it out; its clients reconnect
//! through HAProxy to the others), PostgreSQL is restarted, and the killed instance is started
//! again (HAProxy takes it back). Every member must get every message once and in order
//! (tests/src/checker.rs), every send must be acknowledged, and `ts` must stay sensible: within
//! the test's own clock window, never decreasing in `seq` order, so history around a moment is
//! the run of the conversation around it. Separately: one idempotency key sent through every
//! instance at once stores one message. And a single instance on SQLite whose clock steps back
//! across a restart keeps `ts` from going backwards.

use lifeline_core::protocol::{
    decode_history, decode_server_batch, encode, ClientFrame, ServerFrame,
};
use lifeline_tests::balancer::Balancer;
use lifeline_tests::child_server::ChildServer;
use lifeline_tests::crowd;
use lifeline_tests::harness::{self, WAIT};
use lifeline_tests::recorder::Recorder;
use lifeline_tests::services::{pg, Redis};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Both tests use this binary's one PostgreSQL, which the first restarts: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How far the skewed instances' clocks are off, in seconds (libfaketime's `FAKETIME`).
const SKEW_S: i64 = 7;

/// Messages per sender (three senders: 2,400 in all), one every [`PACE`].
const PER_SENDER: usize = 800;
const PACE: Duration = Duration::from_millis(10);

/// How long HAProxy's health checks (every 1 s, two failures or successes) may take to change
/// their mind about an instance.
const HEALTH_WAIT: Duration = Duration::from_secs(10);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .expect("http client")
}

/// The three instances: `[true clock, SKEW_S ahead, SKEW_S behind]`, each in its own process.
fn instances(url: &str) -> [ChildServer; 3] {
    let program = env!("CARGO_BIN_EXE_lifeline-test-server");
    let hb = harness::HEARTBEAT_MS;
    [
        ChildServer::start_on_postgres(program, hb, url),
        ChildServer::start_on_postgres_with_clock(program, hb, url, &format!("+{SKEW_S}s")),
        ChildServer::start_on_postgres_with_clock(program, hb, url, &format!("-{SKEW_S}s")),
    ]
}

/// Asserts that `server`'s clock (its `Date` header) is `skew_s` off ours, give or take 2 s: the
/// libfaketime preload is in effect, so the scenario really has skewed instances.
async fn assert_clock_off(server: &ChildServer, skew_s: i64) {
    let resp = http()
        .get(format!("{}/healthz", server.url()))
        .send()
        .await
        .expect("GET /healthz");
    let date = resp
        .headers()
        .get("date")
        .and_then(|d| d.to_str().ok())
        .expect("a Date header");
    let theirs = httpdate::parse_http_date(date).expect("an HTTP date");
    let theirs = theirs.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let ours = (now_ms() / 1000) as i64;
    let off = theirs - ours;
    assert!(
        (off - skew_s).abs() <= 2,
        "the instance's clock is {off} s off, not {skew_s} s: is libfaketime working?"
    );
}

/// `what` (a fault) strikes while `rec` still waits for some of the `total` messages.
fn assert_mid_stream(rec: &Recorder, total: usize, what: &str) {
    let seen = rec.messages().len();
    assert!(
        seen < total,
        "{what} came after the stream ({seen} messages)"
    );
}

/// Round-robin gave each of the three instances behind `lb` at least one connection.
fn assert_every_instance_has_connections(lb: &Balancer) {
    for i in 0..3 {
        assert!(
            lb.sessions(i) > 0,
            "round-robin gave instance {i} no connection"
        );
    }
}

/// Kills `first` (the balancer's instance 0) with SIGKILL, waits until HAProxy marks it down and
/// until one of its clients has come back through HAProxy, on the others.
async fn kill_the_first_and_wait_for_a_reconnect(
    first: &mut ChildServer,
    lb: &Balancer,
    crowd: &crowd::Crowd,
) {
    let marks = crowd.marks();
    first.kill();
    lb.wait_status(0, "DOWN", HEALTH_WAIT).await;
    let deadline = Instant::now() + WAIT;
    while reconnected_since(crowd, &marks) == 0 {
        assert!(
            Instant::now() < deadline,
            "no client reconnected after the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many members connected again after their `marks`.
fn reconnected_since(crowd: &crowd::Crowd, marks: &[usize]) -> usize {
    crowd
        .clients()
        .zip(marks)
        .filter(|((_, _, rec), &mark)| {
            rec.events().iter().skip(mark).any(|e| {
                matches!(
                    e,
                    lifeline::Event::StateChanged {
                        to: lifeline::State::Connected { .. },
                        ..
                    }
                )
            })
        })
        .count()
}

/// One history page through `base` as (messages' seqs, next_before, next_after).
async fn history(
    base: &str,
    token: &str,
    conv: &str,
    query: &str,
) -> (Vec<u64>, Option<u64>, Option<u64>) {
    let resp = http()
        .get(format!("{base}/v1/history?v=1&conv={conv}&{query}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /v1/history");
    let status = resp.status();
    let body = resp.text().await.expect("history body");
    assert!(status.is_success(), "history {query}: {status} {body}");
    let page = decode_history(&body).expect("a history page");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let next_after = json.get("next_after").and_then(|v| v.as_u64());
    (
        page.messages.iter().map(|m| m.seq).collect(),
        page.next_before,
        next_after,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_round_robin_rides_out_sigkill_postgres_restart_and_skewed_clocks() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let url = tokio::task::spawn_blocking(|| pg().new_database())
        .await
        .unwrap();
    let [mut healthy, ahead, behind] = instances(&url);
    assert_clock_off(&ahead, SKEW_S).await;
    assert_clock_off(&behind, -SKEW_S).await;
    let lb = Balancer::start(&[healthy.addr(), ahead.addr(), behind.addr()]);
    let started = now_ms();
    let crowd = crowd::gather_with_tokens(|u| healthy.token(u), &lb.url(), "lb", 3, 3, |b| b).await;
    assert_every_instance_has_connections(&lb);

    crowd
        .talk_through(PER_SENDER, PACE, async {
            let (_, _, rec) = &crowd.listeners[0];
            let total = PER_SENDER * 3;
            // Each fault must strike while messages are still flowing.
            let mid_stream = |what: &str| assert_mid_stream(rec, total, what);
            rec.wait_messages(total / 4, WAIT).await;
            mid_stream("the kill");
            kill_the_first_and_wait_for_a_reconnect(&mut healthy, &lb, &crowd).await;
            rec.wait_messages(total / 2, WAIT).await;
            mid_stream("the PostgreSQL restart");
            tokio::task::spawn_blocking(|| pg().restart())
                .await
                .unwrap();
            // The killed instance comes back and HAProxy's checks take it in again.
            rec.wait_messages(total * 3 / 4, WAIT).await;
            healthy.start_again();
            lb.wait_status(0, "UP", HEALTH_WAIT).await;
        })
        .await;
    let ended = now_ms();

    // What every member received is the conversation in seq order (checked above); its `ts`
    // must be on the database's clock: inside our window, never decreasing.
    let (_, _, rec) = &crowd.listeners[0];
    let got: Vec<_> = rec
        .messages()
        .into_iter()
        .filter(|m| m.conv == "lb")
        .collect();
    let outside: Vec<_> = got
        .iter()
        .filter(|m| m.ts + 1_000 < started || m.ts > ended + 1_000)
        .map(|m| (m.seq, m.ts as i64 - started as i64))
        .take(8)
        .collect();
    assert!(
        outside.is_empty(),
        "ts outside the run [{started}, {ended}] (seq, ms after start): {outside:?}"
    );
    let backwards: Vec<_> = got
        .windows(2)
        .filter(|w| w[1].ts < w[0].ts)
        .map(|w| (w[0].seq, w[0].ts, w[1].seq, w[1].ts))
        .take(8)
        .collect();
    assert!(
        backwards.is_empty(),
        "ts decreasing in seq order: {backwards:?}"
    );

    // History around three moments, through HAProxy (so from any instance): the 20 messages
    // around the first one stored at or after the moment, with cursors both ways.
    let token = healthy.token("l0");
    let first = got.first().expect("messages").ts;
    let span = got.last().expect("messages").ts - first;
    for quarter in 1..=3 {
        let moment = first + span * quarter / 4;
        let pivot = got.iter().position(|m| m.ts >= moment).expect("a pivot");
        let want: Vec<u64> = got[pivot - 10..pivot + 10].iter().map(|m| m.seq).collect();
        let (seqs, next_before, next_after) = history(
            &lb.url(),
            &token,
            "lb",
            &format!("around_ts={moment}&limit=20"),
        )
        .await;
        assert_eq!(seqs, want, "history around {moment}");
        assert_eq!(next_before, want.first().copied());
        assert_eq!(next_after, want.last().copied());
    }
}

/// The same crowd on the full cluster mode: three instances on PostgreSQL **and Redis** (the bus
/// carries the messages between instances, presence and limits are shared) behind HAProxy, one
/// of them with its clock 7 s ahead. While thousands of numbered messages flow: one instance is
/// killed with SIGKILL (its clients move to the others through HAProxy), Redis is restarted
/// (the instances fall back to reading PostgreSQL and return to the bus), and the killed instance
/// comes back. Every member gets every message once and in order; every send is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_round_robin_on_postgres_and_redis_rides_out_sigkill_and_a_redis_restart() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let url = tokio::task::spawn_blocking(|| pg().new_database())
        .await
        .unwrap();
    let mut redis = tokio::task::spawn_blocking(Redis::start).await.unwrap();
    let program = env!("CARGO_BIN_EXE_lifeline-test-server");
    let hb = harness::HEARTBEAT_MS;
    let engines = (url.as_str(), redis.url());
    let engines = (engines.0, engines.1.as_str());
    let mut first = ChildServer::start_on_cluster(program, hb, engines, None);
    let second = ChildServer::start_on_cluster(program, hb, engines, None);
    let ahead = ChildServer::start_on_cluster(program, hb, engines, Some(&format!("+{SKEW_S}s")));
    assert_clock_off(&ahead, SKEW_S).await;
    let lb = Balancer::start(&[first.addr(), second.addr(), ahead.addr()]);
    let crowd = crowd::gather_with_tokens(|u| first.token(u), &lb.url(), "lbr", 3, 3, |b| b).await;
    assert_every_instance_has_connections(&lb);
    crowd
        .talk_through(PER_SENDER, PACE, async {
            let (_, _, rec) = &crowd.listeners[0];
            let total = PER_SENDER * 3;
            let mid_stream = |what: &str| assert_mid_stream(rec, total, what);
            rec.wait_messages(total / 4, WAIT).await;
            mid_stream("the kill");
            kill_the_first_and_wait_for_a_reconnect(&mut first, &lb, &crowd).await;
            rec.wait_messages(total / 2, WAIT).await;
            mid_stream("the Redis restart");
            tokio::task::block_in_place(|| redis.restart());
            // The instance's return is not held to mid-stream: the messages held up by the
            // restart may arrive in one burst that ends the stream.
            rec.wait_messages(total * 3 / 4, WAIT).await;
            first.start_again();
            lb.wait_status(0, "UP", HEALTH_WAIT).await;
        })
        .await;
    // The messages did cross instances on the Redis bus (not only by reading PostgreSQL).
    let entries = bus_length(redis.port);
    assert!(
        entries > 0,
        "the Redis bus carried nothing ({entries} entries)"
    );
}

/// `XLEN lifeline:bus` on the Redis at `port` (an inline command; the answer is `:N`).
fn bus_length(port: u16) -> i64 {
    use std::io::{BufRead, BufReader, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to Redis");
    conn.set_read_timeout(Some(WAIT)).expect("read timeout");
    conn.write_all(b"XLEN lifeline:bus\r\n").expect("XLEN");
    let mut line = String::new();
    BufReader::new(conn)
        .read_line(&mut line)
        .expect("XLEN answer");
    line.trim()
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("XLEN answered {line:?}"))
}

/// The answer frames to one `POST /v1/send` of `frame` to `base`.
async fn post(base: &str, token: &str, frame: &ClientFrame) -> Vec<ServerFrame> {
    let resp = http()
        .post(format!("{base}/v1/send?v=1"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(format!("{{\"frames\":[{}]}}", encode(frame)))
        .send()
        .await
        .expect("POST /v1/send");
    let status = resp.status();
    let body = resp.text().await.expect("send body");
    assert!(
        status.is_success(),
        "POST /v1/send to {base}: {status} {body}"
    );
    decode_server_batch(&body).expect("answer frames").frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_through_every_instance_stores_one_message() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let url = tokio::task::spawn_blocking(|| pg().new_database())
        .await
        .unwrap();
    let servers = instances(&url);
    let lb = Balancer::start(&servers.each_ref().map(|s| s.addr()));
    let token = servers[0].token("ida");
    let joined = post(
        &lb.url(),
        &token,
        &ClientFrame::Subscribe {
            conv: "idem".into(),
        },
    )
    .await;
    assert_eq!(
        joined,
        vec![ServerFrame::Subscribed {
            conv: "idem".into()
        }]
    );
    // Each key at once to every instance directly and twice through HAProxy (round-robin: two
    // more instances).
    const KEYS: usize = 20;
    let mut bases: Vec<String> = servers.iter().map(|s| s.url()).collect();
    bases.extend([lb.url(), lb.url()]);
    let mut stored = Vec::new();
    for k in 0..KEYS {
        let frame = ClientFrame::Send {
            id: format!("key-{k}"),
            conv: "idem".into(),
            body: format!("body {k}"),
        };
        let answers =
            futures_util::future::join_all(bases.iter().map(|b| post(b, &token, &frame))).await;
        let seqs: Vec<_> = answers
            .iter()
            .map(|a| match a.as_slice() {
                [ServerFrame::Ack { id, seq }] if *id == format!("key-{k}") => *seq,
                other => panic!("key-{k}: expected one ack, got {other:?}"),
            })
            .collect();
        assert!(
            seqs.iter().all(|s| *s == seqs[0]),
            "key-{k}: acks name different seqs {seqs:?}"
        );
        stored.push(seqs[0]);
    }
    let (seqs, next_before, _) = history(&lb.url(), &token, "idem", "limit=100").await;
    assert_eq!(seqs, stored, "one message per key, in order");
    assert_eq!(next_before, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_stepping_back_across_a_restart_does_not_send_ts_backwards_on_sqlite() {
    let program = env!("CARGO_BIN_EXE_lifeline-test-server");
    let mut server = ChildServer::start(program, harness::HEARTBEAT_MS);
    server.kill();
    server.set_clock_offset(Some(&format!("+{SKEW_S}s")));
    server.start_again();
    assert_clock_off(&server, SKEW_S).await;
    let token = server.token("sol");
    let base = server.url();
    post(&base, &token, &ClientFrame::Subscribe { conv: "sq".into() }).await;
    let send = |i: usize| ClientFrame::Send {
        id: format!("sq-{i}"),
        conv: "sq".into(),
        body: format!("{i}"),
    };
    post(&base, &token, &send(0)).await;
    // The same data directory, the clock now 7 s behind instead of 7 s ahead.
    server.kill();
    server.set_clock_offset(Some(&format!("-{SKEW_S}s")));
    server.start_again();
    assert_clock_off(&server, -SKEW_S).await;
    post(&server.url(), &token, &send(1)).await;
    let resp = http()
        .get(format!("{}/v1/history?v=1&conv=sq", server.url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET /v1/history");
    let page = decode_history(&resp.text().await.expect("body")).expect("a history page");
    let ts: Vec<u64> = page.messages.iter().map(|m| m.ts).collect();
    assert_eq!(ts.len(), 2);
    assert!(ts[1] >= ts[0], "ts went backwards with the clock: {ts:?}");
}

#[test]
fn the_deployment_guide_shows_the_haproxy_configuration_this_test_runs() {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/DEPLOYMENT.md"
    ))
    .expect("docs/DEPLOYMENT.md");
    let section = guide
        .split("## Load balancer")
        .nth(1)
        .expect("a \"Load balancer\" section");
    let shown: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .collect();
    // Every line without a placeholder appears in the guide's block, in the same order.
    let mut at = 0;
    for line in lifeline_tests::balancer::CONFIG
        .lines()
        .filter(|l| !l.contains('{'))
    {
        match shown[at..].iter().position(|s| s == &line) {
            Some(i) => at += i + 1,
            None => {
                panic!("docs/DEPLOYMENT.md's HAProxy configuration lacks (or misorders) {line:?}")
            }
        }
    }
}
