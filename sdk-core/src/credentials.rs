//! The session's credentials: the current token, whether it came fresh from the application's
//! provider, and whether a fetch is in flight.
//!
//! It decides only what a rejection means (refresh, or give up); it asks nobody for anything itself.

/// What to do after the server rejected the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Ask the provider for a fresh token (the caller emits `Action::FetchToken` if `fetch`).
    Refresh { fetch: bool },
    /// Give up: there is no provider, or a fresh token was refused too.
    Fatal,
}

#[derive(Debug, Clone)]
pub struct Credentials {
    token: Option<String>,
    provider: bool,
    fetching: bool,
    /// The token came from the provider and has not yet been accepted by the server.
    fresh: bool,
}

impl Credentials {
    pub fn new(token: Option<String>, provider: bool) -> Self {
        Credentials {
            token,
            provider,
            fetching: false,
            fresh: false,
        }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn is_fetching(&self) -> bool {
        self.fetching
    }

    /// Whether a connection attempt must wait for a token first. Returns `Some(true)` when the
    /// caller must start a fetch, `Some(false)` when one is already in flight.
    pub fn needs_fetch(&mut self) -> Option<bool> {
        if self.token.is_some() || !self.provider {
            return None;
        }
        Some(self.begin_fetch())
    }

    fn begin_fetch(&mut self) -> bool {
        if self.fetching {
            return false;
        }
        self.fetching = true;
        true
    }

    /// The server refused the current token.
    pub fn rejected(&mut self) -> Rejection {
        if !self.provider || self.fresh {
            return Rejection::Fatal;
        }
        self.token = None;
        Rejection::Refresh {
            fetch: self.begin_fetch(),
        }
    }

    /// The provider answered.
    pub fn fetched(&mut self, result: Result<String, String>) -> Result<(), String> {
        self.fetching = false;
        match result {
            Ok(token) => {
                self.token = Some(token);
                self.fresh = true;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The server accepted the current token.
    pub fn accepted(&mut self) {
        self.fresh = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_token_rejected_again_is_fatal() {
        let mut c = Credentials::new(Some("old".into()), true);
        assert_eq!(c.rejected(), Rejection::Refresh { fetch: true });
        assert_eq!(c.rejected(), Rejection::Refresh { fetch: false });
        c.fetched(Ok("new".into())).unwrap();
        assert_eq!(c.rejected(), Rejection::Fatal);
    }

    #[test]
    fn an_accepted_token_may_be_refreshed_later() {
        let mut c = Credentials::new(None, true);
        assert_eq!(c.needs_fetch(), Some(true));
        assert_eq!(c.needs_fetch(), Some(false));
        c.fetched(Ok("t".into())).unwrap();
        c.accepted();
        assert_eq!(c.rejected(), Rejection::Refresh { fetch: true });
    }

    #[test]
    fn without_a_provider_a_rejection_is_fatal() {
        let mut c = Credentials::new(Some("t".into()), false);
        assert_eq!(c.needs_fetch(), None);
        assert_eq!(c.rejected(), Rejection::Fatal);
    }
}
