//! A crowd of clients in one conversation: some send numbered messages, all listen, and at the
//! end every member must have received every message exactly once and in order, and every send
//! must have resolved. Scenarios inject their fault while the crowd talks.
//!
//! Set-up and the final verdict only; the fault itself belongs to each scenario.

use crate::checker;
use crate::harness::{self, WAIT};
use crate::recorder::Recorder;
use crate::traffic;
use lifeline::{Client, ClientBuilder};
use lifeline_server::RunningServer;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// The members of a crowd.
pub struct Crowd {
    pub conv: String,
    pub senders: Vec<(String, Client, Recorder)>,
    pub listeners: Vec<(String, Client, Recorder)>,
}

/// Builds, connects and subscribes `senders + listeners` clients of the server at `url` (tokens
/// from `server`); `tune` adjusts every builder (for example the allowed transports).
pub async fn gather(
    server: &RunningServer,
    url: &str,
    conv: &str,
    senders: usize,
    listeners: usize,
    tune: impl Fn(ClientBuilder) -> ClientBuilder,
) -> Crowd {
    let token = |user: &str| harness::token(server, user);
    gather_with_tokens(token, url, conv, senders, listeners, tune).await
}

/// [`gather`] with tokens from `token` (for servers that are not in this process).
pub async fn gather_with_tokens(
    token: impl Fn(&str) -> String,
    url: &str,
    conv: &str,
    senders: usize,
    listeners: usize,
    tune: impl Fn(ClientBuilder) -> ClientBuilder,
) -> Crowd {
    let make = |prefix: &str, i: usize, seed: u64| {
        let name = format!("{prefix}{i}");
        let client = tune(harness::client(url, seed).token(token(&name)))
            .build()
            .expect("client builds");
        let recorder = Recorder::start(&client);
        client.connect();
        (name, client, recorder)
    };
    let senders: Vec<_> = (0..senders).map(|i| make("s", i, 100 + i as u64)).collect();
    let listeners: Vec<_> = (0..listeners)
        .map(|i| make("l", i, 200 + i as u64))
        .collect();
    for (name, client, _) in senders.iter().chain(&listeners) {
        tokio::time::timeout(WAIT, client.subscribe(conv))
            .await
            .unwrap_or_else(|_| panic!("{name}: subscribe timed out"))
            .unwrap_or_else(|e| panic!("{name}: subscribe failed: {e}"));
    }
    Crowd {
        conv: conv.to_string(),
        senders,
        listeners,
    }
}

impl Crowd {
    /// Every sender sends `n` messages, one every `pace`, while `fault` runs; then checks that
    /// every send was acknowledged and every member got every message once, in order.
    pub async fn talk_through<F: Future<Output = ()>>(&self, n: usize, pace: Duration, fault: F) {
        let sends: Vec<_> = self
            .senders
            .iter()
            .map(|(name, client, _)| {
                traffic::send_numbered(client.clone(), name.clone(), self.conv.clone(), n, pace)
            })
            .collect();
        fault.await;
        for ((name, _, _), send) in self.senders.iter().zip(sends) {
            let results = tokio::time::timeout(Duration::from_secs(60), send)
                .await
                .unwrap_or_else(|_| panic!("{name}: sends did not all resolve"))
                .expect("send task");
            traffic::assert_all_acked(name, &results);
        }
        self.verify(n).await;
    }

    /// Checks delivery at every member, after waiting (bounded) for the messages to arrive.
    pub async fn verify(&self, n: usize) {
        let sent: BTreeMap<String, usize> = self
            .senders
            .iter()
            .map(|(name, _, _)| (name.clone(), n))
            .collect();
        let total = n * self.senders.len();
        let mut failures = Vec::new();
        for (name, _, recorder) in self.senders.iter().chain(&self.listeners) {
            let arrived = tokio::time::timeout(WAIT, recorder.wait_messages(total, WAIT)).await;
            let received: Vec<_> = recorder
                .messages()
                .into_iter()
                .filter(|m| m.conv == self.conv)
                .collect();
            let report = checker::check(&sent, &received);
            if arrived.is_err() || !report.is_clean() {
                failures.push(format!(
                    "{name}: {report}\n  states:\n  {}",
                    recorder.state_log()
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "delivery broken:\n{}",
            failures.join("\n")
        );
    }

    /// Every member's client.
    pub fn clients(&self) -> impl Iterator<Item = &(String, Client, Recorder)> {
        self.senders.iter().chain(&self.listeners)
    }
}

impl Crowd {
    /// How many events each member has recorded so far, to wait for what happens after.
    pub fn marks(&self) -> Vec<usize> {
        self.clients().map(|(_, _, r)| r.len()).collect()
    }

    /// Waits until every member connects on `transport` after its mark.
    pub async fn wait_all_connected_after(
        &self,
        marks: &[usize],
        transport: lifeline::TransportKind,
    ) {
        for ((_, _, recorder), &mark) in self.clients().zip(marks) {
            recorder.wait_connected_after(mark, transport, WAIT).await;
        }
    }

    /// Waits until every member has a state change after its mark that satisfies `pred`.
    pub async fn wait_all_state_after(
        &self,
        marks: &[usize],
        what: &str,
        pred: impl Fn(&lifeline::State, &lifeline::Cause) -> bool + Copy,
    ) {
        for ((_, _, recorder), &mark) in self.clients().zip(marks) {
            recorder
                .wait_for(what, WAIT, move |events| {
                    events.iter().skip(mark).any(|e| {
                        matches!(e, lifeline::Event::StateChanged { to, cause, .. } if pred(to, cause))
                    })
                })
                .await;
        }
    }
}
