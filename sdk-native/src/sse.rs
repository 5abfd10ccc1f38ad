//! The Server-Sent Events rung: one task per [`lifeline_core::Action::OpenSocket`] of kind
//! EventSource. It opens the stream with reqwest-eventsource and reports each event's `data` (one
//! protocol frame), `retry:` hints, and how the stream ended.
//!
//! reqwest-eventsource's own reconnection is switched off (`retry::Never`): when the stream ends
//! or fails, this task reports it and stops. Reconnecting, with the right cursor and backoff, is
//! the core's job. Nothing here keeps a timer.

use crate::driver::Inputs;
use crate::task::TaskGuard;
use futures_util::StreamExt;
use lifeline_core::{Input, SocketId, TransportFailure};
use reqwest_eventsource::{retry, Error as SseError, Event, EventSource};
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
    let mut request = http.get(&url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let mut source = match EventSource::new(request) {
        Ok(source) => source,
        Err(error) => {
            let (kind, detail) = crate::failure::describe(&url, &error);
            report(Input::SocketFailed {
                socket,
                failure: TransportFailure::of_kind(kind, detail),
            })
            .await;
            return;
        }
    };
    source.set_retry_policy(Box::new(retry::Never));
    while let Some(item) = source.next().await {
        match item {
            Ok(Event::Open) => {
                tracing::info!("opened");
                report(Input::SocketOpened { socket }).await;
            }
            Ok(Event::Message(event)) => {
                if let Some(delay) = event.retry {
                    report(Input::SocketRetryHint { socket, delay }).await;
                }
                if !event.data.is_empty() {
                    report(Input::SocketText {
                        socket,
                        text: event.data,
                    })
                    .await;
                }
            }
            Err(SseError::StreamEnded) => {
                tracing::info!("ended");
                report(Input::SocketClosed {
                    socket,
                    code: None,
                    reason: "the event stream ended".to_owned(),
                })
                .await;
                break;
            }
            Err(error) => {
                let failure = failure(&url, error);
                tracing::info!(detail = %failure.detail, status = ?failure.status, "failed");
                report(Input::SocketFailed { socket, failure }).await;
                break;
            }
        }
    }
    source.close();
}

fn failure(url: &str, error: SseError) -> TransportFailure {
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
        SseError::Transport(error) => {
            let error = error.without_url();
            let (kind, detail) = crate::failure::describe(url, &error);
            TransportFailure::of_kind(kind, detail)
        }
        other => {
            let (kind, detail) = crate::failure::describe(url, &other);
            TransportFailure::of_kind(kind, detail)
        }
    }
}
