//! A client process of the benchmark (`lifeline-scale clients URL FIRST COUNT CONV EVERY`):
//! `COUNT` native SDK clients, users `uFIRST`…, each connected with the SDK's default options and
//! subscribed to `CONV`. Message bodies are `mK` (sender 0's `K`th message) or `mK:S` (sender
//! `S`'s). It reports on standard output, one line each:
//!
//! - `ready FAILED` once every subscribe has resolved, or after 180 s (`FAILED` of them with an
//!   error or still pending);
//! - `up I UNIX_US` whenever client `I` reaches `connected`;
//! - `msg I BODY UNIX_US` for every received message whose `K + 1` is a multiple of `EVERY`
//!   (1: every message; 0: none);
//! - `lagged I MISSED` when a client's event queue overflowed (the figures are then suspect);
//! - `check CLIENTS_OK LOST DUPLICATED REORDERED WAITED_MS` in answer to `check N S` on standard
//!   input: whether each client received messages `0..N` of each of the senders `0..S` exactly
//!   once and in each sender's order, once all have (or after 30 s).
//!
//! It exits when its standard input closes (the benchmark's end, or the benchmark dying).

use futures_util::StreamExt;
use lifeline::{Client, Event, State};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// How long the subscribes of one process may take in all.
const SUBSCRIBE_WITHIN: Duration = Duration::from_secs(180);

/// How long a `check` waits for messages still on their way.
const CHECK_WAIT: Duration = Duration::from_secs(30);

/// Microseconds since the Unix epoch: the one clock every process of the benchmark shares.
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A token for `user`, valid for an hour.
pub fn token(user: &str) -> String {
    let exp = unix_us() / 1_000_000 + 3600;
    lifeline_server::make_token(crate::server::SECRET, user, exp)
}

/// The `(sender, number)` of the messages each client received, in arrival order.
type Received = Arc<Vec<Mutex<Vec<(usize, u64)>>>>;

/// `(sender, number)` of a body `mK` or `mK:S`.
pub fn parse_body(body: &str) -> Option<(usize, u64)> {
    let rest = body.strip_prefix('m')?;
    match rest.split_once(':') {
        None => Some((0, rest.parse().ok()?)),
        Some((k, s)) => Some((s.parse().ok()?, k.parse().ok()?)),
    }
}

/// Runs the client process until its standard input closes.
pub async fn run(url: &str, first: usize, count: usize, conv: &str, every: u64) {
    let (out, mut lines) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = lines.recv().await {
            let mut batch = line;
            batch.push('\n');
            while let Ok(more) = lines.try_recv() {
                batch.push_str(&more);
                batch.push('\n');
            }
            if stdout.write_all(batch.as_bytes()).await.is_err() {
                return;
            }
            let _ = stdout.flush().await;
        }
    });
    let received: Received = Arc::new((0..count).map(|_| Mutex::new(Vec::new())).collect());
    let mut clients = Vec::with_capacity(count);
    for i in 0..count {
        let idx = first + i;
        let client = Client::builder(url)
            .token(token(&format!("u{idx}")))
            .seed(idx as u64)
            .build()
            .expect("client builds");
        let mut events = client.events_with_capacity(4096);
        let out = out.clone();
        let received = Arc::clone(&received);
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    Event::StateChanged {
                        to: State::Connected { .. },
                        ..
                    } => {
                        let _ = out.send(format!("up {idx} {}", unix_us()));
                    }
                    Event::Message(m) => {
                        let at = unix_us();
                        if let Some((sender, k)) = parse_body(&m.body) {
                            received[i].lock().unwrap().push((sender, k));
                            if every > 0 && (k + 1) % every == 0 {
                                let _ = out.send(format!("msg {idx} {} {at}", m.body));
                            }
                        }
                    }
                    Event::Lagged { missed } => {
                        let _ = out.send(format!("lagged {idx} {missed}"));
                    }
                    _ => {}
                }
            }
        });
        client.connect();
        clients.push(client);
    }
    let mut subscribes: futures_util::stream::FuturesUnordered<_> =
        clients.iter().map(|c| c.subscribe(conv)).collect();
    let deadline = tokio::time::Instant::now() + SUBSCRIBE_WITHIN;
    let mut ok = 0;
    while let Ok(Some(result)) = tokio::time::timeout_at(deadline, subscribes.next()).await {
        ok += usize::from(result.is_ok());
    }
    drop(subscribes);
    let failed = count - ok;
    let _ = out.send(format!("ready {failed}"));
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = stdin.next_line().await {
        let mut words = line.split(' ');
        if words.next() == Some("check") {
            let n = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let senders = words.next().and_then(|s| s.parse().ok()).unwrap_or(1);
            // Messages still in flight (a client that fell behind reads its socket late) are
            // waited for, within a bound; the answer says how long that took.
            let since = std::time::Instant::now();
            let mut answer = check(&received, n, senders);
            while !answer.1 && since.elapsed() < CHECK_WAIT {
                tokio::time::sleep(Duration::from_millis(100)).await;
                answer = check(&received, n, senders);
            }
            let _ = out.send(format!("{} {}", answer.0, since.elapsed().as_millis()));
        }
    }
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    std::process::exit(0);
}

/// `check CLIENTS_OK LOST DUPLICATED REORDERED` for messages `0..n` of senders `0..senders`, and
/// whether every client has them all.
fn check(received: &Received, n: u64, senders: usize) -> (String, bool) {
    let (mut ok, mut lost, mut dup, mut reordered) = (0, 0, 0, 0);
    for got in received.iter() {
        let got = got.lock().unwrap();
        let mut seen = vec![vec![false; n as usize]; senders];
        let mut clean = true;
        let mut last = vec![None; senders];
        for &(s, k) in got.iter() {
            if k >= n || s >= senders {
                continue;
            }
            if seen[s][k as usize] {
                dup += 1;
                clean = false;
                continue;
            }
            seen[s][k as usize] = true;
            if last[s].is_some_and(|l| k < l) {
                reordered += 1;
                clean = false;
            }
            last[s] = Some(k);
        }
        let missing = seen.iter().flatten().filter(|s| !**s).count();
        lost += missing;
        if clean && missing == 0 {
            ok += 1;
        }
    }
    let all = ok == received.len();
    (format!("check {ok} {lost} {dup} {reordered}"), all)
}
