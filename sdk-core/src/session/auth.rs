//! Credentials in the session: what a token provider's answer and a server's refusal of the token
//! mean for the connection. [`crate::credentials`] decides refresh or give up; this carries it out.

use super::*;

impl<D: FrameDecoder> Session<D> {
    /// The application's token provider answered.
    pub(super) fn on_token(&mut self, now: Instant, result: Result<String, String>) {
        match self.creds.fetched(result) {
            Ok(()) => {
                if self.links.is_empty() && matches!(self.state, State::Reconnecting { .. }) {
                    self.start_attempt(now, Cause::RetryDue);
                }
            }
            Err(detail) => {
                if self.links.is_empty() {
                    self.schedule_retry(now, Cause::TokenUnavailable { detail }, None);
                }
            }
        }
    }

    /// The server refused the token: refresh it and reconnect, or fail for good.
    pub(super) fn auth_rejected(&mut self, now: Instant, detail: String) {
        self.drop_ephemeral();
        match self.creds.rejected() {
            Rejection::Fatal => {
                let cause = Cause::AuthRejected { detail };
                self.finish(
                    now,
                    State::Failed {
                        error: cause.clone(),
                    },
                    cause,
                );
            }
            Rejection::Refresh { fetch } => {
                if fetch {
                    self.actions.push_back(Action::FetchToken);
                }
                self.drop_links_except(None);
                self.timers.clear(TimerReason::Stable);
                self.timers.clear(TimerReason::Probe);
                self.timers.clear(TimerReason::Race);
                self.timers.clear(TimerReason::Unreachable);
                self.timers.clear(TimerReason::Retry);
                let cause = Cause::AuthRejected { detail };
                self.set_reconnecting(None, Some(cause.clone()), cause);
            }
        }
    }
}
