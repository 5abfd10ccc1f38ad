//! Keeping a dependency's trace logs from printing the token: tungstenite logs every WebSocket
//! upgrade request whole at TRACE (`tungstenite::handshake::client`, through the `log` crate),
//! `Authorization` header included. [`without_handshake_logs`] runs a future under a dispatcher
//! that forwards everything to the application's subscriber except those records.
//!
//! Only that filter lives here; the upgrade itself is `ws.rs`'s.

use std::future::Future;
use tracing::instrument::WithSubscriber;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber};

/// The log target that prints whole upgrade requests.
const MUTED_TARGET: &str = "tungstenite::handshake";

fn muted(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with(MUTED_TARGET)
}

/// `future`, with tungstenite's handshake records dropped and every other one passed to the
/// subscriber that is current now.
pub(crate) fn without_handshake_logs<F: Future>(future: F) -> impl Future<Output = F::Output> {
    use futures_util::future::Either;
    use tracing::level_filters::LevelFilter;
    // The request is logged at TRACE: when no subscriber wants TRACE, there is nothing to filter.
    if LevelFilter::current() < LevelFilter::TRACE {
        return Either::Left(future);
    }
    let inner = tracing::dispatcher::get_default(Dispatch::clone);
    Either::Right(future.with_subscriber(Dispatch::new(Muffled { inner })))
}

/// A subscriber that forwards to `inner` all but the muted records.
struct Muffled {
    inner: Dispatch,
}

impl Subscriber for Muffled {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if muted(metadata) {
            Interest::never()
        } else {
            self.inner.register_callsite(metadata)
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        !muted(metadata) && self.inner.enabled(metadata)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.inner.new_span(span)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.inner.record(span, values);
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.inner.record_follows_from(span, follows);
    }

    fn event_enabled(&self, event: &Event<'_>) -> bool {
        !muted(event.metadata())
    }

    fn event(&self, event: &Event<'_>) {
        if !muted(event.metadata()) {
            self.inner.event(event);
        }
    }

    fn enter(&self, span: &Id) {
        self.inner.enter(span);
    }

    fn exit(&self, span: &Id) {
        self.inner.exit(span);
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.inner.clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        self.inner.try_close(id)
    }

    fn current_span(&self) -> tracing_core::span::Current {
        self.inner.current_span()
    }
}
