//! The WebSocket rung: one task per [`lifeline_core::Action::OpenSocket`] of kind WebSocket. It
//! opens the socket, writes the text frames the driver hands it, and reports every fact back as an
//! [`Input`] tagged with the socket's id.
//!
//! It decides nothing: no timeouts (the core's connect and first-frame deadlines cover a socket
//! that hangs), no retries, no pings of its own (heartbeats are protocol frames sent by the core).
//!
//! # Buffers
//! tungstenite allocates its read buffer up front, 128 KiB by default, which would make an idle
//! client cost ~137 KiB. This task uses a **4 KiB** read buffer: Lifeline frames are small JSON
//! objects (a chat message is typically well under 1 KiB), a read of 4 KiB drains several of them
//! per system call, and a larger frame (up to the protocol's 64 KiB) still arrives intact, because
//! the buffer grows for it. Writes are batched up to **4 KiB** before they reach the socket (frames
//! queued together go out in one write), and the write buffer starts empty. Messages and frames
//! larger than the protocol's 64 KiB limit (plus slack) are refused rather than buffered.

use crate::driver::Inputs;
use crate::tls::Tls;
use futures_util::{SinkExt, StreamExt};
use lifeline_core::{Input, SocketId, TransportFailure};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::UrlError;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::header::{HeaderValue, AUTHORIZATION};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::Connector;
use tracing::Instrument;

/// The read chunk allocated per connection (see the module documentation).
pub const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Frames are written once this many bytes are queued, or when the queue is empty.
pub const WRITE_BUFFER_BYTES: usize = 4 * 1024;
/// The largest message accepted: the protocol's 64 KiB frame limit with room for framing.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 + 1024;
/// How long a close handshake may take when the core lets go of the socket.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The tungstenite configuration every Lifeline WebSocket uses.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_MESSAGE_BYTES * 4)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// One text frame on its way to the socket task (boxed in the channel: see `open`).
#[derive(Debug)]
struct Outgoing(String);

/// The driver's side of one WebSocket: dropping it closes the socket (gracefully, bounded by a
/// second) and ends the task. Its frame queue needs no bound of its own: the core only writes
/// what its bounded outbox holds plus pings and subscriptions, and the task drains it as fast as
/// the socket takes it.
#[derive(Debug)]
pub(crate) struct WsHandle {
    out: mpsc::UnboundedSender<Box<Outgoing>>,
}

impl WsHandle {
    /// Queues one text frame; a socket that is already gone is ignored (its failure was reported).
    pub(crate) fn send(&self, text: String) {
        let _ = self.out.send(Box::new(Outgoing(text)));
    }
}

/// Starts opening `url` (with `bearer` in `Authorization`, if any) and returns the handle that
/// feeds it.
pub(crate) fn open(
    socket: SocketId,
    url: String,
    bearer: Option<String>,
    tls: &Tls,
    inputs: Inputs,
) -> WsHandle {
    // Boxed items keep the channel's first block (32 slots, allocated up front) at 256 bytes.
    let (out, out_rx) = mpsc::unbounded_channel();
    let span = tracing::info_span!(
        "connect",
        transport = "websocket",
        socket = socket.0,
        url = %crate::redact::url(&url)
    );
    let connector = tls.ws_connector();
    tokio::spawn(run(socket, url, bearer, connector, out_rx, inputs).instrument(span));
    WsHandle { out }
}

/// The upgrade request: `url`, with the token as `Authorization: Bearer` (marked sensitive).
fn upgrade_request(url: &str, bearer: Option<String>) -> Result<Request, WsError> {
    let mut request = url.into_client_request()?;
    if let Some(token) = bearer {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| WsError::Url(UrlError::UnableToConnect("invalid token".to_owned())))?;
        value.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    Ok(request)
}

async fn run(
    socket: SocketId,
    url: String,
    bearer: Option<String>,
    connector: Option<Connector>,
    mut out_rx: mpsc::UnboundedReceiver<Box<Outgoing>>,
    inputs: Inputs,
) {
    let report = |input: Input| {
        let inputs = inputs.clone();
        async move {
            let _ = inputs.send(Box::new(input)).await;
        }
    };
    tracing::debug!("opening");
    let request = match upgrade_request(&url, bearer) {
        Ok(request) => request,
        Err(error) => {
            let failure = open_failure(&url, error);
            report(Input::SocketFailed { socket, failure }).await;
            return;
        }
    };
    // Boxed, so that the task's own allocation, which lives as long as the socket, does not
    // reserve room for the handshake's (much larger) state.
    #[cfg(feature = "tls")]
    let connect = Box::pin(crate::quiet::without_handshake_logs(
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config()), true, connector),
    ));
    #[cfg(not(feature = "tls"))]
    let connect = {
        // `Tls::new` refused every secure URL: there is nothing to connect with.
        let _ = connector;
        Box::pin(crate::quiet::without_handshake_logs(
            tokio_tungstenite::connect_async_with_config(request, Some(config()), true),
        ))
    };
    let mut ws = tokio::select! {
        result = connect => match result {
            Ok((ws, _response)) => ws,
            Err(error) => {
                let failure = open_failure(&url, error);
                tracing::info!(detail = %failure.detail, status = ?failure.status, "open failed");
                report(Input::SocketFailed { socket, failure }).await;
                return;
            }
        },
        // The core let go of the socket before it opened.
        () = until_closed(&mut out_rx) => return,
    };
    tracing::info!("opened");
    report(Input::SocketOpened { socket }).await;
    loop {
        tokio::select! {
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(text))) => report(Input::SocketText {
                    socket,
                    text: text.as_str().to_owned(),
                }).await,
                Some(Ok(Message::Binary(data))) => report(Input::SocketBinary {
                    socket,
                    len: data.len(),
                }).await,
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = match frame {
                        Some(f) => (Some(u16::from(f.code)), f.reason.as_str().to_owned()),
                        None => (None, "closed without a code".to_owned()),
                    };
                    tracing::info!(?code, %reason, "closed by the server");
                    report(Input::SocketClosed { socket, code, reason }).await;
                    return;
                }
                // Pings are answered by tungstenite; pongs and raw frames carry nothing for us.
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    let (kind, detail) = crate::failure::describe(&url, &error);
                    tracing::info!(%detail, "broke");
                    report(Input::SocketFailed {
                        socket,
                        failure: TransportFailure::of_kind(kind, detail),
                    }).await;
                    return;
                }
                None => {
                    tracing::info!("ended");
                    report(Input::SocketClosed {
                        socket,
                        code: None,
                        reason: "the connection ended".to_owned(),
                    }).await;
                    return;
                }
            },
            outgoing = out_rx.recv() => match outgoing {
                Some(text) => {
                    if let Err(error) = write_batch(&mut ws, text, &mut out_rx).await {
                        let (kind, detail) = crate::failure::describe(&url, &error);
                        tracing::info!(%detail, "write failed");
                        report(Input::SocketFailed {
                            socket,
                            failure: TransportFailure::of_kind(kind, detail),
                        }).await;
                        return;
                    }
                }
                None => {
                    tracing::debug!("closing");
                    let _ = tokio::time::timeout(CLOSE_GRACE, ws.close(None)).await;
                    return;
                }
            },
        }
    }
}

/// Writes `first` and everything else already queued, then flushes once.
async fn write_batch<S>(
    ws: &mut S,
    first: Box<Outgoing>,
    out_rx: &mut mpsc::UnboundedReceiver<Box<Outgoing>>,
) -> Result<(), WsError>
where
    S: futures_util::Sink<Message, Error = WsError> + Unpin,
{
    ws.feed(Message::text(first.0)).await?;
    // Bounded so that a producer faster than the socket cannot keep us from reading.
    for _ in 0..256 {
        match out_rx.try_recv() {
            Ok(text) => ws.feed(Message::text(text.0)).await?,
            Err(_) => break,
        }
    }
    ws.flush().await
}

/// Resolves when the driver drops the handle; frames queued before the socket opened are dropped
/// (the core queues nothing before `SocketOpened`).
async fn until_closed(out_rx: &mut mpsc::UnboundedReceiver<Box<Outgoing>>) {
    while out_rx.recv().await.is_some() {}
}

/// What a failed upgrade tells the core: the status of a refused upgrade when there was one, or
/// the kind of failure (a refused certificate, a refused connection, ...).
fn open_failure(url: &str, error: WsError) -> TransportFailure {
    match error {
        WsError::Http(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
                .unwrap_or_default();
            TransportFailure::status(
                status,
                retry_after,
                crate::redact::text(&format!("upgrade refused with HTTP {status} {body}")),
            )
        }
        other => {
            let (kind, detail) = crate::failure::describe(url, &other);
            TransportFailure::of_kind(kind, detail)
        }
    }
}
