//! The token never leaves the request it authenticates: failures are provoked on every transport
//! (connection refused, 401, 500, reset, timeout) with a recognisable token, and neither the
//! tracing output (every target, at TRACE) nor any event, state, cause, error text or `Debug`
//! output the application can see contains it.

use lifeline::{Client, Event, State, TransportKind};
use lifeline_tests::harness::{self, WAIT};
use lifeline_tests::proxy::{FaultProxy, Policy};
use lifeline_tests::recorder::Recorder;
use std::io::Write;
use std::sync::{Mutex, Once};
use std::time::Duration;

/// The token every client of this test uses: not a valid token, and easy to find in any text.
const TOKEN: &str = "Tok3n-NEVER-in-logs.9f8e7d6c5b4a";

/// Everything the tracing subscriber wrote.
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| Capture)
            .init();
    });
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Nothing listens on the port.
    Refused,
    /// The real server refuses the (invalid) token.
    Unauthorized,
    /// A proxy answers 500.
    ServerError,
    /// A proxy resets the connection.
    Reset,
    /// A proxy accepts and never answers.
    Timeout,
}

/// Every text the application can see about `client` and its failures.
async fn provoke(url: &str, transport: TransportKind, fault: Fault, seed: u64) -> Vec<String> {
    let client = harness::client(url, seed)
        .token(TOKEN)
        .transports([transport])
        .send_timeout(Duration::from_millis(1_000))
        .connect_timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let rec = Recorder::start(&client);
    let mut texts = vec![format!("{client:?}")];
    client.connect();
    let send = client.send("general", "hello");
    rec.wait_for(
        &format!("a failure on {transport} ({fault:?})"),
        WAIT,
        |events| {
            events.iter().any(|e| {
                matches!(
                    e,
                    Event::StateChanged {
                        to: State::Reconnecting { .. } | State::Failed { .. },
                        ..
                    }
                )
            })
        },
    )
    .await;
    // History and send fail too (on the network, or because the client failed).
    // A black hole never answers: a second is enough for the others.
    let history = tokio::time::timeout(Duration::from_secs(1), client.history("general", None, 5));
    if let Ok(result) = history.await {
        texts.push(format!("{result:?}"));
        if let Err(e) = result {
            texts.push(e.to_string());
        }
    }
    if let Ok(result) = tokio::time::timeout(Duration::from_secs(2), send).await {
        texts.push(format!("{result:?}"));
        if let Err(e) = result {
            texts.push(e.to_string());
        }
    }
    texts.push(format!("{:?}", client.state()));
    texts.push(format!("{client:?}"));
    client.close_within(Duration::ZERO).await;
    for event in rec.events() {
        texts.push(format!("{event:?}"));
        if let Event::StateChanged { from, to, cause } = &event {
            texts.push(cause.to_string());
            texts.push(format!("{from:?} {to:?}"));
            if let State::Reconnecting {
                last_error: Some(e),
                ..
            } = to
            {
                texts.push(e.to_string());
            }
            if let State::Failed { error } = to {
                texts.push(error.to_string());
            }
        }
    }
    // The failure must have been seen, or there was nothing to check.
    assert!(
        rec.events().iter().any(|e| matches!(
            e,
            Event::StateChanged {
                to: State::Reconnecting { .. } | State::Failed { .. },
                ..
            }
        )),
        "{transport} {fault:?}: no failure"
    );
    texts
}

async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_failure_on_any_transport_shows_the_token() {
    capture_tracing();
    let server = harness::server().await;
    let mut texts = Vec::new();
    let mut seed = 100;
    for transport in TransportKind::ALL {
        for fault in [
            Fault::Refused,
            Fault::Unauthorized,
            Fault::ServerError,
            Fault::Reset,
            Fault::Timeout,
        ] {
            seed += 1;
            let proxy = FaultProxy::start(server.addr()).await;
            let url = match fault {
                Fault::Refused => closed_port().await,
                Fault::Unauthorized => server.base_url(),
                Fault::ServerError | Fault::Reset | Fault::Timeout => {
                    let policy = match fault {
                        Fault::ServerError => Policy::Refuse(500),
                        Fault::Reset => Policy::Reset,
                        _ => Policy::Blackhole,
                    };
                    proxy.websocket(policy);
                    proxy.http(policy);
                    proxy.url()
                }
            };
            let found = provoke(&url, transport, fault, seed).await;
            for text in &found {
                assert!(
                    !text.contains(TOKEN),
                    "{transport} {fault:?}: the token leaked in {text}"
                );
            }
            texts.extend(found);
        }
    }
    let log = String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned();
    assert!(
        log.contains("state changed"),
        "the capture saw no log at all"
    );
    if let Some(at) = log.find(TOKEN) {
        let from = log[..at].rfind('\n').map_or(0, |i| i + 1);
        let to = log[at..].find('\n').map_or(log.len(), |i| at + i);
        panic!("the token leaked in the log: {}", &log[from..to]);
    }
    assert!(texts.len() > 30, "only {} texts checked", texts.len());
}

#[test]
fn debug_of_a_builder_and_of_a_client_hides_the_token() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let builder = Client::builder("http://127.0.0.1:1").token(TOKEN);
        let text = format!("{builder:?}");
        assert!(!text.contains(TOKEN), "{text}");
        assert!(text.contains("***"), "{text}");
    });
}
