//! Time to the first message on a first visit (no remembered rung, the SDK's default timings):
//! from `connect` until the client's own first message comes back, with WebSocket upgrades passed,
//! reset, or black-holed by the fault proxy. Shared by the tests (generous bounds) and the
//! benchmark (`lifeline-bench first-message`, the figures).

use crate::harness::{self, WAIT};
use crate::proxy::{FaultProxy, Policy};
use crate::recorder::Recorder;
use lifeline::TransportKind;
use std::time::{Duration, Instant};

/// What happens to WebSocket upgrades on the way to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebSocketPath {
    Works,
    /// Reset at once (TCP RST), like a firewall that kills upgrades.
    Reset,
    /// Accepted, then never answered.
    Blackholed,
}

/// One first visit: how long until the first message arrived, and the transport it came on.
pub async fn first_message(path: WebSocketPath, seed: u64) -> (Duration, TransportKind) {
    let server = harness::server().await;
    let proxy = FaultProxy::start(server.addr()).await;
    proxy.websocket(match path {
        WebSocketPath::Works => Policy::Pass,
        WebSocketPath::Reset => Policy::Reset,
        WebSocketPath::Blackholed => Policy::Blackhole,
    });
    let client = lifeline::Client::builder(proxy.url())
        .seed(seed)
        .token(harness::token(&server, "first"))
        .build()
        .expect("client builds");
    let recorder = Recorder::start(&client);
    let started = Instant::now();
    client.connect();
    let sent = async {
        client.subscribe("first").await.expect("subscribed");
        client.send("first", "hello").await.expect("acknowledged");
    };
    tokio::time::timeout(WAIT, sent)
        .await
        .unwrap_or_else(|_| panic!("no ack; states:\n  {}", recorder.state_log()));
    recorder.wait_messages(1, WAIT).await;
    let (arrived, _) = recorder
        .timed()
        .into_iter()
        .find(|(_, e)| matches!(e, lifeline::Event::Message(_)))
        .expect("a message");
    let transport = *recorder
        .connected_transports()
        .last()
        .expect("connected on some transport");
    client.close().await;
    server.shutdown().await;
    (arrived.duration_since(started), transport)
}

/// The median of `runs` first visits (different seeds), with every run's figure.
pub async fn median_of(path: WebSocketPath, runs: usize) -> (Duration, Vec<Duration>) {
    let mut all = Vec::with_capacity(runs);
    for run in 0..runs {
        all.push(first_message(path, 1_000 + run as u64).await.0);
    }
    let mut sorted = all.clone();
    sorted.sort();
    (sorted[sorted.len() / 2], all)
}
