//! The Server-Sent Events rung: one task per [`lifeline_core::Action::OpenSocket`] of kind
//! EventSource. It opens the stream with reqwest (the token in `Authorization`), decodes it with
//! the bounded decoder of `sse_decoder.rs`, and reports each event's `data` (one protocol frame),
//! `retry:` hints, and how the stream ended.
//!
//! It never reconnects: when the stream ends or fails, this task reports it and stops.
//! Reconnecting, with the right cursor and backoff, is the core's job. Nothing here keeps a timer.
//! An event larger than [`MAX_EVENT_BYTES`] fails the stream instead of being buffered.

use crate::driver::Inputs;
use crate::sse_decoder::{Decoder, Item, MAX_EVENT_BYTES};
use crate::task::TaskGuard;
use lifeline_core::{Input, SocketId, TransportFailure};
use std::time::Duration;
use tracing::Instrument;

/// The driver's side of one SSE stream: dropping it aborts the request.
#[derive(Debug)]
pub(crate) struct SseHandle {
    _task: TaskGuard,
}

/// Starts opening `url` with `http`, with `bearer` in `Authorization`, if any.
pub(crate) fn open(
    socket: SocketId,
    url: String,
    bearer: Option<String>,
    http: reqwest::Client,
    inputs: Inputs,
) -> SseHandle {
    let span = tracing::info_span!(
        "connect",
        transport = "sse",
        socket = socket.0,
        url = %crate::redact::url(&url)
    );
    SseHandle {
        _task: TaskGuard::spawn(run(socket, url, bearer, http, inputs).instrument(span)),
    }
}

async fn run(
    socket: SocketId,
    url: String,
    bearer: Option<String>,
    http: reqwest::Client,
    inputs: Inputs,
) {
    let report = |input: Input| {
        let inputs = inputs.clone();
        async move {
            let _ = inputs.send(Box::new(input)).await;
        }
    };
    tracing::debug!("opening");
    let mut request = http
        .get(&url)
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            let failure = network_failure(&url, error);
            tracing::info!(detail = %failure.detail, "failed");
            report(Input::SocketFailed { socket, failure }).await;
            return;
        }
    };
    if let Some(failure) = refusal(&response) {
        tracing::info!(detail = %failure.detail, status = ?failure.status, "refused");
        report(Input::SocketFailed { socket, failure }).await;
        return;
    }
    tracing::info!("opened");
    report(Input::SocketOpened { socket }).await;
    let mut decoder = Decoder::default();
    let mut items = Vec::new();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                tracing::info!("ended");
                report(Input::SocketClosed {
                    socket,
                    code: None,
                    reason: "the event stream ended".to_owned(),
                })
                .await;
                return;
            }
            Err(error) => {
                let failure = network_failure(&url, error);
                tracing::info!(detail = %failure.detail, "broke");
                report(Input::SocketFailed { socket, failure }).await;
                return;
            }
        };
        if decoder.feed(&chunk, &mut items).is_err() {
            let detail = format!("an event is larger than {MAX_EVENT_BYTES} bytes");
            tracing::info!(%detail, "refused an event");
            report(Input::SocketFailed {
                socket,
                failure: TransportFailure::network(detail),
            })
            .await;
            return;
        }
        for item in items.drain(..) {
            report(match item {
                Item::Data(text) if text.is_empty() => continue,
                Item::Data(text) => Input::SocketText { socket, text },
                Item::Retry(ms) => Input::SocketRetryHint {
                    socket,
                    delay: Duration::from_millis(ms),
                },
            })
            .await;
        }
    }
}

/// A failure without a response, classified, with the URL left out of the text.
fn network_failure(url: &str, error: reqwest::Error) -> TransportFailure {
    let error = error.without_url();
    let (kind, detail) = crate::failure::describe(url, &error);
    TransportFailure::of_kind(kind, detail)
}

/// Why `response` is not an event stream, if it is not.
fn refusal(response: &reqwest::Response) -> Option<TransportFailure> {
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Some(TransportFailure::status(
            status.as_u16(),
            retry_after,
            format!("event stream refused with HTTP {status}"),
        ));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("text/event-stream") {
        return Some(TransportFailure::network(format!(
            "not an event stream (Content-Type {content_type:?})"
        )));
    }
    None
}
