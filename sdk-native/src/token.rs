//! The application's token provider: an async function the driver calls when the core asks for a
//! fresh token ([`lifeline_core::Action::FetchToken`]).
//!
//! Only the type and its construction live here. When to ask (and how often) is the core's
//! decision: it never has more than one request in flight.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

type TokenFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// An async source of fresh tokens, shared by the client's tasks.
#[derive(Clone)]
pub struct TokenProvider(Arc<dyn Fn() -> TokenFuture + Send + Sync>);

impl TokenProvider {
    /// Wraps an async function that returns a token or an error to report.
    pub fn new<F, Fut, E>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Display,
    {
        TokenProvider(Arc::new(move || {
            let fut = f();
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        }))
    }

    /// Asks for a token.
    pub(crate) fn fetch(&self) -> TokenFuture {
        (self.0)()
    }
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenProvider")
    }
}
