//! HTTP for the session (long polls, HTTP sends, history pages) over `fetch`, each request with
//! its own `AbortController`, and the status probe `sockets` uses when an `EventSource` fails.
//!
//! A response of any status is reported as it is; only a request that got no response is a
//! failure. A request the session abandoned (`AbortHttp`) reports nothing. No retry lives here.

use crate::driver::{self, Driver};
use lifeline_core::{HttpMethod, Input, RequestId};
use std::cell::RefCell;
use std::rc::Weak;
use std::time::Duration;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Headers, RequestInit, Response};

/// Starts a request; the answer is reported to the driver later. Returns its abort handle.
pub(crate) fn start(
    weak: &Weak<RefCell<Driver>>,
    request: RequestId,
    method: HttpMethod,
    url: &str,
    bearer: Option<String>,
    body: Option<String>,
) -> Result<AbortController, String> {
    let window = web_sys::window().ok_or("no window")?;
    let abort = AbortController::new().map_err(|e| driver::describe(&e))?;
    let headers = Headers::new().map_err(|e| driver::describe(&e))?;
    if let Some(token) = bearer {
        let _ = headers.set("Authorization", &format!("Bearer {token}"));
    }
    let init = RequestInit::new();
    init.set_method(match method {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
    });
    if let Some(body) = body {
        let _ = headers.set("Content-Type", "application/json");
        init.set_body(&JsValue::from_str(&body));
    }
    init.set_headers(&headers);
    init.set_signal(Some(&abort.signal()));
    let promise = window.fetch_with_str_and_init(url, &init);
    let weak = weak.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let input = match response(promise).await {
            Ok((status, retry_after, body)) => Input::HttpResponse {
                request,
                status,
                retry_after,
                body,
            },
            Err(detail) => Input::HttpFailed { request, detail },
        };
        let Some(shared) = weak.upgrade() else {
            return;
        };
        // Report only what the session still waits for (an aborted request was removed).
        let waiting = shared.borrow_mut().requests.remove(&request).is_some();
        if waiting {
            driver::turn(&shared, |s, now| s.handle_input(now, input));
        }
    });
    Ok(abort)
}

async fn response(promise: js_sys::Promise) -> Result<(u16, Option<Duration>, String), String> {
    let resp: Response = JsFuture::from(promise)
        .await
        .map_err(|e| driver::describe(&e))?
        .unchecked_into();
    let retry_after = resp
        .headers()
        .get("Retry-After")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = resp.text().map_err(|e| driver::describe(&e))?;
    let body = JsFuture::from(text)
        .await
        .map_err(|e| driver::describe(&e))?
        .as_string()
        .unwrap_or_default();
    Ok((resp.status(), retry_after, body))
}

/// The HTTP status `url` answers a plain GET with (the body is not read), or `None` without an
/// answer within a few seconds.
pub(crate) async fn status_of(url: &str) -> Option<u16> {
    let window = web_sys::window()?;
    let abort = AbortController::new().ok()?;
    let init = RequestInit::new();
    init.set_signal(Some(&abort.signal()));
    let signal_abort = abort.clone();
    let guard = wasm_bindgen::closure::Closure::once_into_js(move || signal_abort.abort());
    let _ =
        window.set_timeout_with_callback_and_timeout_and_arguments_0(guard.unchecked_ref(), 5_000);
    let result = JsFuture::from(window.fetch_with_str_and_init(url, &init)).await;
    // Whatever the status, stop the body (a 200 here is a live event stream).
    abort.abort();
    let resp: Response = result.ok()?.unchecked_into();
    Some(resp.status())
}
