//! The Server-Sent Events rung: one task per [`lifeline_core::Action::OpenSocket`] of kind
//! EventSource. It opens the stream with reqwest-eventsource and reports each event's `data` (one
//! protocol frame), `retry:` hints, and how the stream ended.
//!
//! reqwest-eventsource's own reconnection is switched off (`retry::Never`): when the stream ends
//! or fails, this task reports it and stops. Reconnecting, with the right cursor and backoff, is
//! the core's job. Nothing here keeps a timer.

use crate::task::TaskGuard;
use futures_util::StreamExt;
use lifeline_core::{Input, SocketId, TransportFailure};
use reqwest_eventsource::{retry, Error as SseError, Event, EventSource};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument;

/// The driver's side of one SSE stream: dropping it aborts the request.
#[derive(Debug)]
pub(crate) struct SseHandle {
    _task: TaskGuard,
}

/// Starts opening `url` with `http`.
pub(crate) fn open(
    socket: SocketId,
    url: String,
    http: reqwest::Client,
    inputs: mpsc::UnboundedSender<Box<Input>>,
) -> SseHandle {
    let span = tracing::info_span!(
        "connect",
        transport = "sse",
        socket = socket.0,
        url = %crate::redact::url(&url)
    );
    SseHandle {
        _task: TaskGuard::spawn(run(socket, url, http, inputs).instrument(span)),
    }
}

async fn run(
    socket: SocketId,
    url: String,
    http: reqwest::Client,
    inputs: mpsc::UnboundedSender<Box<Input>>,
) {
    let report = |input: Input| {
        let _ = inputs.send(Box::new(input));
    };
    tracing::debug!("opening");
    let mut source = match EventSource::new(http.get(&url)) {
        Ok(source) => source,
        Err(error) => {
            report(Input::SocketFailed {
                socket,
                failure: TransportFailure::network(error.to_string()),
            });
            return;
        }
    };
    source.set_retry_policy(Box::new(retry::Never));
    while let Some(item) = source.next().await {
        match item {
            Ok(Event::Open) => {
                tracing::info!("opened");
                report(Input::SocketOpened { socket });
            }
            Ok(Event::Message(event)) => {
                if let Some(delay) = event.retry {
                    report(Input::SocketRetryHint { socket, delay });
                }
                if !event.data.is_empty() {
                    report(Input::SocketText {
                        socket,
                        text: event.data,
                    });
                }
            }
            Err(SseError::StreamEnded) => {
                tracing::info!("ended");
                report(Input::SocketClosed {
                    socket,
                    code: None,
                    reason: "the event stream ended".to_owned(),
                });
                break;
            }
            Err(error) => {
                let failure = failure(error);
                tracing::info!(detail = %failure.detail, status = ?failure.status, "failed");
                report(Input::SocketFailed { socket, failure });
                break;
            }
        }
    }
    source.close();
}

fn failure(error: SseError) -> TransportFailure {
    match error {
        SseError::InvalidStatusCode(status, response) => {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            TransportFailure::status(
                status.as_u16(),
                retry_after,
                format!("event stream refused with HTTP {status}"),
            )
        }
        SseError::InvalidContentType(value, _) => {
            TransportFailure::network(format!("not an event stream (Content-Type {value:?})"))
        }
        other => TransportFailure::network(other.to_string()),
    }
}
