//! Plain HTTP requests for the core (long polls, send batches, history pages): one task per
//! [`lifeline_core::Action::Http`], which reports the response, whatever its status, or the
//! failure.
//!
//! No timeouts or retries here: the core holds the deadline of every request and aborts it (the
//! driver drops the handle) when it gives up.

use crate::driver::Inputs;
use crate::task::TaskGuard;
use lifeline_core::{FailureKind, HttpMethod, Input, RequestId};
use std::time::Duration;
use tracing::Instrument;

/// The largest response body read. The largest legal answer is a history page of 100 messages
/// of at most 64 KiB each (6.25 MiB; a long poll or send answer holds at most 64 frames, 4 MiB);
/// 8 MiB leaves room for that and refuses anything that could exhaust memory.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

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
pub(crate) fn start(request: Request, http: reqwest::Client, inputs: Inputs) -> HttpHandle {
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

async fn run(request: Request, http: reqwest::Client, inputs: Inputs) {
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
            match read_body(response).await {
                Ok(body) => Input::HttpResponse {
                    request: id,
                    status,
                    retry_after,
                    body,
                },
                Err(detail) => Input::HttpFailed {
                    request: id,
                    kind: FailureKind::Other,
                    detail,
                },
            }
        }
        Err(error) => {
            let error = error.without_url();
            let (kind, detail) = crate::failure::describe(&url, &error);
            Input::HttpFailed {
                request: id,
                kind,
                detail,
            }
        }
    };
    tracing::debug!(?input, "done");
    let _ = inputs.send(Box::new(input)).await;
}

/// The body as text, read chunk by chunk and refused past [`MAX_BODY_BYTES`] (a long poll's
/// answer is bounded by the server; a body beyond that is not one).
async fn read_body(mut response: reqwest::Response) -> Result<String, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(format!(
                        "the response body is larger than {MAX_BODY_BYTES} bytes"
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(error) => {
                let error = error.without_url();
                return Err(crate::redact::text(&format!("reading the body: {error}")));
            }
        }
    }
    String::from_utf8(body).map_err(|_| "the response body is not UTF-8".to_owned())
}
