//! The traffic of the delivery scenarios: several senders each send N numbered messages at a
//! steady pace while others listen; every send must resolve with an acknowledgement.
//!
//! It only generates and collects; judging delivery is the checker's job.

use crate::checker::body;
use lifeline::{Acked, Client, SendError, Seq};
use std::time::Duration;

/// Sends `n` messages from `client` (named `sender` in the bodies) to `conv`, one every `pace`,
/// and returns every send's result in order once all have resolved.
pub fn send_numbered(
    client: Client,
    sender: String,
    conv: String,
    n: usize,
    pace: Duration,
) -> tokio::task::JoinHandle<Vec<Result<Acked, SendError>>> {
    tokio::spawn(async move {
        let mut pending = Vec::with_capacity(n);
        let mut tick = tokio::time::interval(pace);
        for i in 0..n {
            tick.tick().await;
            pending.push(client.send(&conv, &body(&sender, i)));
        }
        futures_util::future::join_all(pending).await
    })
}

/// Asserts that every send resolved with an acknowledgement, and that sequence numbers increase.
pub fn assert_all_acked(sender: &str, results: &[Result<Acked, SendError>]) {
    let failed: Vec<_> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("#{i}: {e}")))
        .collect();
    assert!(failed.is_empty(), "{sender}: sends failed: {failed:?}");
    let seqs: Vec<Seq> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|a| a.seq))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "{sender}: acknowledged out of order: {seqs:?}"
    );
}
