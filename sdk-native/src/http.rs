//! Plain HTTP requests for the core (long polls, send batches, history pages): one task per
//! [`lifeline_core::Action::Http`], which reports the response, whatever its status, or the
//! failure.
//!
//! No timeouts or retries here: the core holds the deadline of every request and aborts it (the
//! driver drops the handle) when it gives up.

use crate::task::TaskGuard;
use lifeline_core::{FailureKind, HttpMethod, Input, RequestId};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument;

/// One request in flight: dropping it aborts the request.
#[derive(Debug)]
pub(crate) struct HttpHandle {
    _task: TaskGuard,
}

/// What to request.
pub(crate) struct Request {
    pub id: RequestId,
    pub method: HttpMethod,
    pub url: String,
    pub bearer: Option<String>,
    pub body: Option<String>,
}

/// Starts the request.
pub(crate) fn start(
    request: Request,
    http: reqwest::Client,
    inputs: mpsc::UnboundedSender<Box<Input>>,
) -> HttpHandle {
    let span = tracing::debug_span!(
        "http",
        request = request.id.0,
        method = ?request.method,
        url = %crate::redact::url(&request.url)
    );
    HttpHandle {
        _task: TaskGuard::spawn(run(request, http, inputs).instrument(span)),
    }
}

async fn run(request: Request, http: reqwest::Client, inputs: mpsc::UnboundedSender<Box<Input>>) {
    let Request {
        id,
        method,
        url,
        bearer,
        body,
    } = request;
    let mut builder = match method {
        HttpMethod::Get => http.get(&url),
        HttpMethod::Post => http.post(&url),
    };
    if let Some(token) = bearer {
        builder = builder.bearer_auth(token);
    }
    if let Some(body) = body {
        builder = builder
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    let input = match builder.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            match response.text().await {
                Ok(body) => Input::HttpResponse {
                    request: id,
                    status,
                    retry_after,
                    body,
                },
                Err(error) => Input::HttpFailed {
                    request: id,
                    kind: FailureKind::Other,
                    detail: format!("reading the body: {error}"),
                },
            }
        }
        Err(error) => Input::HttpFailed {
            request: id,
            kind: FailureKind::Other,
            detail: error.to_string(),
        },
    };
    tracing::debug!(?input, "done");
    let _ = inputs.send(Box::new(input));
}
