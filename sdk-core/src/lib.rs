//! # lifeline-core
//!
//! The sans-IO heart of the Lifeline SDK: the wire protocol shared with the server, and the
//! connection [`Session`] shared by the native and the browser drivers.
//!
//! This crate is deterministic. It opens no socket, starts no timer or thread, never reads a clock
//! and never touches a global random number generator: time comes in as a parameter (an [`Instant`]
//! on the driver's clock) and randomness from a seed in the [`Config`] (jitter) or from the driver (the
//! 16 random bytes of each message id, [`Session::send`]). It builds for `wasm32-unknown-unknown`.
//!
//! A driver runs the session like this (see [`session`] for the full contract):
//!
//! ```
//! use lifeline_core::{Action, Config, Input, Instant, Session, SocketId};
//!
//! let mut config = Config::new("http://127.0.0.1:8787").unwrap();
//! config.token = Some("token".into());
//! // The driver's clock: microseconds since an origin of its choosing.
//! let now = Instant::from_micros(0);
//! let mut session = Session::new(config, now);
//! session.connect(now);
//! while let Some(action) = session.poll_action() {
//!     match action {
//!         Action::OpenSocket { socket, url, .. } => {
//!             assert!(url.starts_with("ws://127.0.0.1:8787/v1/ws"));
//!             // ... open it, then report what happened:
//!             session.handle_input(now, Input::SocketOpened { socket });
//!         }
//!         _ => {}
//!     }
//! }
//! while let Some(event) = session.poll_event() {
//!     println!("{event:?}");
//! }
//! let _wake_at = session.poll_timeout();
//! # let _ = SocketId(0);
//! ```

pub mod backoff;
pub(crate) mod batch;
pub mod config;
pub(crate) mod credentials;
pub mod endpoints;
pub mod event;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod frame_reader;
pub mod hybrid;
pub mod io;
pub mod json;
pub(crate) mod keepalive;
pub(crate) mod ladder;
pub(crate) mod link;
pub(crate) mod liveness;
pub(crate) mod outbox;
pub(crate) mod probe;
pub mod protocol;
pub(crate) mod resume;
pub(crate) mod retry;
pub mod session;
pub mod state;
pub mod text;
pub mod time;
pub(crate) mod timer;
pub mod transport;

pub use backoff::{Backoff, BackoffPolicy, Jitter};
pub use config::Config;
pub use endpoints::{BadEndpoint, Endpoint, StreamToken};
pub use event::{Event, HistoryError, MsgId, SendError, SendFailure};
pub use hybrid::{Carry, Strategy};
pub use io::{Action, FailureKind, HttpMethod, Input, TransportFailure};
pub use protocol::{ErrorCode, HistoryPage, Message, Seq};
pub use session::Session;
pub use state::{Cause, State};
pub use time::Instant;
pub use timer::TimerReason;
pub use transport::{RequestId, SocketId, SocketKind, TransportKind};
