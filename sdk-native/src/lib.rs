//! # lifeline
//!
//! The native Lifeline client: a connection to a Lifeline server that stays up by itself, for
//! async Rust on tokio.
//!
//! The connection logic (the transport ladder WebSocket → Server-Sent Events → long polling,
//! backoff, heartbeats, resume, the outbox, credentials) lives in the sans-IO
//! [`lifeline_core::Session`]. This crate is its thin driver: one tokio task owns the session,
//! performs its actions with tokio-tungstenite and reqwest, and reports back what happened. It decides nothing about states, timing or
//! transports.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use lifeline::{Client, Event};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let client = Client::builder("http://127.0.0.1:8787")
//!         .token_provider(|| async {
//!             // Ask your backend for a token.
//!             Ok::<_, std::io::Error>("token".to_string())
//!         })
//!         .build()?;
//!     let mut events = client.events();
//!     client.connect();
//!     client.subscribe("general").await?;
//!     let acked = client.send("general", "hello").await?;
//!     println!("{} stored as #{}", acked.id, acked.seq);
//!     while let Some(event) = events.next().await {
//!         match event {
//!             Event::Message(m) => println!("#{} {}: {}", m.seq, m.from, m.body),
//!             Event::StateChanged { to, cause, .. } => println!("{} ({cause})", to.name()),
//!             _ => {}
//!         }
//!     }
//!     Ok(())
//! }
//! ```
//!
//! ## Guarantees
//! - Messages reach [`Events`] exactly once and in sequence order, across reconnects and
//!   transport switches; a gap the server cannot fill is reported as
//!   [`Event::Discontinuity`] (fetch it with [`Client::history`]), never skipped silently.
//! - Every [`Client::send`] resolves: with the message's id and the server's sequence number
//!   ([`Acked`]), or with a [`SendError`] (outbox full, too large, timeout, rejected, closed).
//!
//! ## Strategies
//! By default one transport at a time carries everything (the best that works).
//! [`ClientBuilder::strategy`]`(`[`Strategy::Hybrid`]`)` splits it: messages on SSE (then long
//! polling), presence and typing on a WebSocket of their own, sends over HTTP. Without that
//! WebSocket everything comes over the messages transport (the state says `degraded`) until it is
//! back; nothing is lost or repeated either way. [`Client::links`] shows both links.
//!
//! ## Memory
//! Every queue is bounded: the application's calls ([`COMMAND_QUEUE`]; `send` beyond it fails with
//! [`SendError::QueueFull`]), the reports of socket and HTTP tasks ([`INPUT_QUEUE`]; a full queue
//! pauses the socket's reads), each [`Events`] stream ([`DEFAULT_EVENT_QUEUE`]; a slow reader gets
//! [`Event::Lagged`] with the number it missed), HTTP response bodies ([`MAX_BODY_BYTES`]), SSE
//! events ([`MAX_EVENT_BYTES`]) and
//! WebSocket messages (64 KiB plus framing). An idle WebSocket connection holds a 4 KiB read buffer and an empty write buffer (tungstenite's
//! default read buffer is 128 KiB); see [`ws_config`] for the reasons. No HTTP client is created
//! until SSE, long polling or history needs one.
//!
//! ## Features
//! - `tls` (on by default): `https://` and `wss://` endpoints, with rustls. The client trusts the
//!   platform's CA roots (honouring `SSL_CERT_FILE` and `SSL_CERT_DIR`) and any CA added with
//!   [`ClientBuilder::ca_file`] or [`ClientBuilder::add_root_certificate_pem`]; one TLS
//!   configuration serves every transport. A certificate the client refuses ends the session
//!   (state `failed`, cause [`Cause::TlsRejected`] naming the host and the reason) instead of
//!   retrying. Without the feature, [`ClientBuilder::build`] refuses an `https://` URL.
//!
//! ## Credentials
//! The token travels in `Authorization: Bearer` on every transport (WebSocket upgrade, SSE, long
//! polls, sends, history), never in a URL, and no log line, error text, cause or `Debug` output of
//! this crate contains it.
//!
//! ## Logging
//! Every connection attempt runs in a `connect` span (transport, socket id, URL without the
//! token) and every state change is logged in a `state_change` span (from, to, transport, cause),
//! all under a `lifeline` span naming the endpoint. Install any `tracing` subscriber to see them.

mod builder;
mod client;
pub mod clock;
mod command;
mod driver;
mod error;
mod event;
mod failure;
mod http;
mod quiet;
mod redact;
mod sse;
mod sse_decoder;
mod task;
mod tls;
mod token;
mod ws;

pub use builder::{ClientBuilder, DEFAULT_CLOSE_TIMEOUT};
pub use client::{Acked, Client, Events, Links};
pub use command::COMMAND_QUEUE;
pub use driver::INPUT_QUEUE;
pub use error::{BuildError, CallError, HistoryError, SendError};
pub use event::{Event, DEFAULT_EVENT_QUEUE};
pub use http::MAX_BODY_BYTES;
/// The session's instants (such as `State::Reconnecting`'s `next_attempt_at`) are
/// [`Instant`]s on this process's clock; [`clock::to_std`] converts them.
pub use lifeline_core::Instant;
pub use lifeline_core::{
    BackoffPolicy, Cause, ErrorCode, HistoryPage, Jitter, Message, MsgId, SendFailure, Seq, State,
    Strategy, TransportKind,
};
pub use sse_decoder::MAX_EVENT_BYTES;
pub use token::TokenProvider;
pub use ws::{config as ws_config, READ_BUFFER_BYTES, WRITE_BUFFER_BYTES};
