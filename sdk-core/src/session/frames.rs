//! What the server says on a link: each frame dispatched to its meaning (messages delivered once
//! and in order through [`crate::resume`], acknowledgements, errors, subscriptions, presence,
//! pongs), and the answer to a history request.

use super::*;

impl<D: FrameDecoder> Session<D> {
    pub(super) fn on_frame(&mut self, now: Instant, id: u64, frame: ServerFrame) {
        if self
            .link(id)
            .is_some_and(|l| matches!(l.phase, Phase::Proving { .. }))
        {
            // Judged, never delivered: a proving link is not the live one, so the match below
            // ignores its heartbeats and messages.
            self.on_proving_frame(now, id, &frame);
        }
        let is_active = self.active == Some(id);
        // Presence and typing come from the live link, or from the hybrid strategy's ephemeral one.
        let carries_ephemeral = is_active || self.ephemeral_by_id(id).is_some();
        if is_active
            && self.timers.is_set(TimerReason::Stable)
            && matches!(frame, ServerFrame::Ack { .. } | ServerFrame::Msg(_))
        {
            // A link that delivers data works end to end, however soon a middlebox cuts it: the
            // next reconnect starts from the first backoff step.
            self.forget_failures();
        }
        match frame {
            ServerFrame::Hello(hello) => self.on_hello(now, id, hello),
            ServerFrame::Error(error) => self.on_error_frame(now, id, error),
            ServerFrame::Ack { id: msg, seq } => {
                if let Some(entry) = self.outbox.remove(&msg) {
                    self.events.push_back(Event::Acked { id: entry.id, seq });
                    self.check_drained(now);
                }
            }
            ServerFrame::Msg(message) if is_active => self.deliver(now, message),
            ServerFrame::Subscribed { conv } if self.subscriptions.contains(&conv) => {
                self.events.push_back(Event::Subscribed { conv });
            }
            ServerFrame::Unsubscribed { conv } => {
                self.unsubscriptions.remove(&conv);
            }
            ServerFrame::Presence { conv, user, online } if carries_ephemeral => {
                self.events
                    .push_back(Event::Presence { conv, user, online });
            }
            ServerFrame::Typing { conv, user } if carries_ephemeral => {
                self.events.push_back(Event::Typing { conv, user });
            }
            ServerFrame::Pong { t } => {
                if let Some(rtt) = self.link(id).and_then(|l| l.liveness.pong(t, now)) {
                    self.events.push_back(Event::RoundTrip { rtt });
                }
            }
            // Heartbeats only refresh liveness, done on arrival. Stream frames on a link that is
            // not (or no longer) the live one are dropped: the live link delivers them.
            _ => {}
        }
    }

    pub(super) fn on_error_frame(&mut self, now: Instant, link: u64, error: ErrorFrame) {
        let retry_after = error.retry_after_ms.map(Duration::from_millis);
        match error.code {
            code if code.is_auth() => {
                self.auth_rejected(now, text!(code, ": ", error.message));
            }
            ErrorCode::GoingAway => {
                if let Some(l) = self.link_mut(link) {
                    l.going_away = Some(retry_after.unwrap_or(Duration::ZERO));
                }
                let cause = Cause::ServerGoingAway;
                self.link_failed(now, link, cause, FailureWeight::Neutral, None);
            }
            ErrorCode::UnsupportedVersion => self.finish(
                now,
                State::Failed {
                    error: Cause::UnsupportedVersion,
                },
                Cause::UnsupportedVersion,
            ),
            code => {
                if let Some(msg) = error.id {
                    match code {
                        ErrorCode::RateLimited | ErrorCode::Internal => {
                            let wait = retry_after.unwrap_or(SEND_RETRY_DELAY);
                            self.outbox.hold_from(&msg, now + wait);
                        }
                        _ => {
                            if let Some(entry) = self.outbox.remove(&msg) {
                                self.events.push_back(Event::SendFailed {
                                    id: entry.id,
                                    failure: SendFailure::Rejected {
                                        code,
                                        message: error.message,
                                    },
                                });
                                self.check_drained(now);
                            }
                        }
                    }
                } else if let Some(conv) = error.conv {
                    if self.subscriptions.remove(&conv) {
                        self.events.push_back(Event::SubscribeFailed { conv, code });
                    }
                } else {
                    self.events.push_back(Event::ServerError {
                        code,
                        message: error.message,
                    });
                }
            }
        }
    }

    pub(super) fn deliver(&mut self, now: Instant, message: Message) {
        if self.resume.deliver(now, message.seq) {
            self.events.push_back(Event::Message(message));
        }
    }

    /// Applies the server's resume point to the cursor, telling the application about a gap.
    pub(super) fn resume_from(&mut self, hello: &Hello, opened_with: Option<Seq>) {
        if let Some((last_seen, resumed_after)) = self.resume.resume_from(hello, opened_with) {
            self.events.push_back(Event::Discontinuity {
                last_seen,
                resumed_after,
            });
        }
    }

    pub(super) fn on_history_response(&mut self, request: RequestId, status: u16, body: &str) {
        let result = if status == 200 {
            self.decoder
                .history(body)
                .map_err(|e| HistoryError::BadResponse {
                    detail: e.describe(),
                })
        } else {
            let error = self.decoder.http_error(body);
            Err(HistoryError::Server {
                status,
                code: error.as_ref().map(|e| e.code),
                message: error.map(|e| e.message).unwrap_or_default(),
            })
        };
        self.events.push_back(Event::History { request, result });
    }
}
