//! Delivery latency: one sender sends numbered messages on a schedule and notes when it handed
//! each one to its client; a listener's [`Recorder`] notes when each arrived. The latency of a
//! message is arrival minus the later of its send and an optional "back" instant (a message sent
//! while the path was down cannot arrive before the path is back).
//!
//! Measures and summarises only; the bounds are the scenarios'.

use crate::checker::body;
use crate::recorder::Recorder;
use lifeline::{Client, Event, SendError, Seq};
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

/// What a timed sender did: when each message was handed over, and each send's result.
pub struct Sent {
    pub sender: String,
    pub at: Vec<Instant>,
    pub results: Vec<Result<Seq, SendError>>,
}

/// Sends one message per entry of `gaps` (the pause before each) from `client` (named `sender`
/// in the bodies) to `conv`, and returns when every send has resolved.
pub async fn send_paced(client: &Client, sender: &str, conv: &str, gaps: &[Duration]) -> Sent {
    let mut at = Vec::with_capacity(gaps.len());
    let mut pending = Vec::with_capacity(gaps.len());
    let mut next = tokio::time::Instant::now();
    for (i, gap) in gaps.iter().enumerate() {
        next += *gap;
        tokio::time::sleep_until(next).await;
        at.push(Instant::now());
        pending.push(client.send(conv, &body(sender, i)));
    }
    let results = futures_util::future::join_all(pending)
        .await
        .into_iter()
        .map(|r| r.map(|acked| acked.seq))
        .collect();
    Sent {
        sender: sender.to_string(),
        at,
        results,
    }
}

/// `n` equal gaps of `pace`.
pub fn steady(n: usize, pace: Duration) -> Vec<Duration> {
    vec![pace; n]
}

/// The latency figures of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub count: usize,
    pub p50: Duration,
    pub max: Duration,
    /// The index of the slowest message.
    pub worst: usize,
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} messages, p50 {} ms, max {} ms (message #{})",
            self.count,
            self.p50.as_millis(),
            self.max.as_millis(),
            self.worst
        )
    }
}

/// The latency of every message of `sent` that `listener` received in `conv`; messages sent
/// before `back` count from `back`. `None` when nothing arrived.
pub fn measure(
    sent: &Sent,
    listener: &Recorder,
    conv: &str,
    back: Option<Instant>,
) -> Option<Latency> {
    let index: HashMap<String, usize> = (0..sent.at.len())
        .map(|i| (body(&sent.sender, i), i))
        .collect();
    let mut samples: Vec<(Duration, usize)> = Vec::new();
    for (arrived, event) in listener.timed() {
        let Event::Message(m) = event else { continue };
        if m.conv != conv {
            continue;
        }
        let Some(&i) = index.get(&m.body) else {
            continue;
        };
        let from = match back {
            Some(b) if b > sent.at[i] => b,
            _ => sent.at[i],
        };
        samples.push((arrived.saturating_duration_since(from), i));
    }
    if samples.is_empty() {
        return None;
    }
    samples.sort();
    let (max, worst) = *samples.last().unwrap();
    Some(Latency {
        count: samples.len(),
        p50: samples[samples.len() / 2].0,
        max,
        worst,
    })
}
