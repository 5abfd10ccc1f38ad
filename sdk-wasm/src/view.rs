//! How the session's events and state look to JavaScript: each [`lifeline_core::Event`] becomes
//! one JSON object with a `type` member, which the ES module wrapper parses and dispatches (or uses
//! to settle a promise). Field names are camelCase; instants become wall-clock milliseconds since
//! the Unix epoch, as `Date.now()` counts them.
//!
//! Pure translation, compiled on every target and tested natively. No browser API, no decision.

use lifeline_core::{
    Cause, Event, HistoryError, Instant, Message, SendError, SendFailure, Session, State,
    TransportKind,
};
use serde::Serialize;

/// Converts session instants to wall-clock milliseconds: `wall_ms` is `Date.now()` at `now`.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: Instant,
    pub wall_ms: f64,
}

impl Clock {
    fn wall(&self, at: Instant) -> u64 {
        let ahead = at.saturating_duration_since(self.now).as_millis() as u64;
        let behind = self.now.saturating_duration_since(at).as_millis() as u64;
        (self.wall_ms as u64 + ahead).saturating_sub(behind)
    }
}

/// A message as JavaScript sees it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView<'a> {
    pub seq: u64,
    pub conversation: &'a str,
    pub from: &'a str,
    pub id: &'a str,
    pub body: &'a str,
    pub ts: u64,
}

impl<'a> From<&'a Message> for MessageView<'a> {
    fn from(m: &'a Message) -> Self {
        MessageView {
            seq: m.seq,
            conversation: &m.conv,
            from: &m.from,
            id: &m.id,
            body: &m.body,
            ts: m.ts,
        }
    }
}

/// The connection state as JavaScript sees it (the `state` event, and `client.status`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateView {
    pub state: &'static str,
    pub transport: Option<&'static str>,
    pub attempt: Option<u32>,
    pub degraded: bool,
    pub next_retry_at: Option<u64>,
    pub error: Option<String>,
}

impl StateView {
    pub fn of(state: &State, clock: Clock) -> StateView {
        let mut v = StateView {
            state: state.name(),
            transport: None,
            attempt: None,
            degraded: false,
            next_retry_at: None,
            error: None,
        };
        match state {
            State::Connecting { transport, attempt } => {
                v.transport = Some(transport.as_str());
                v.attempt = Some(*attempt);
            }
            State::Connected {
                transport,
                degraded,
            } => {
                v.transport = Some(transport.as_str());
                v.degraded = *degraded;
            }
            State::Reconnecting {
                attempt,
                next_attempt_at,
                last_error,
            } => {
                v.attempt = Some(*attempt);
                v.next_retry_at = next_attempt_at.map(|at| clock.wall(at));
                v.error = last_error.as_ref().map(Cause::to_string);
            }
            State::Failed { error } => v.error = Some(error.to_string()),
            State::Idle | State::Closed => {}
        }
        v
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LinkView {
    transport: &'static str,
    live: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryPageView<'a> {
    messages: Vec<MessageView<'a>>,
    /// Absent (not `null`) on the oldest page, as the TypeScript declarations say.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorView {
    code: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
}

/// The JSON objects handed to the wrapper, tagged by `type`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum View<'a> {
    #[serde(rename_all = "camelCase")]
    State {
        #[serde(flatten)]
        state: StateView,
        previous: &'static str,
        cause: String,
    },
    Message(MessageView<'a>),
    Ack {
        id: &'a str,
        seq: u64,
    },
    SendFailed(SendFailureView),
    #[serde(rename_all = "camelCase")]
    Discontinuity {
        last_seen: u64,
        resumed_after: u64,
    },
    Subscribed {
        conversation: &'a str,
    },
    Presence {
        conversation: &'a str,
        user: &'a str,
        online: bool,
    },
    Typing {
        conversation: &'a str,
        user: &'a str,
    },
    /// In microseconds (integers keep float formatting out of the `.wasm`); the wrapper divides.
    #[serde(rename_all = "camelCase")]
    Rtt {
        rtt_us: u64,
    },
    TransportWorked {
        transport: &'static str,
    },
    History {
        request: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        page: Option<HistoryPageView<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorView>,
    },
    Error {
        code: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        conversation: Option<&'a str>,
    },
    Transport {
        transport: Option<&'static str>,
        links: Vec<LinkView>,
    },
}

/// Why a sent message failed, for the promise of `client.send`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendFailureView {
    pub id: String,
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_code: Option<String>,
}

fn json<T: Serialize>(value: &T) -> String {
    // Serializing these plain structs to a string cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// One event as JSON.
pub fn event(e: &Event, clock: Clock) -> String {
    let v = match e {
        Event::StateChanged { from, to, cause } => View::State {
            state: StateView::of(to, clock),
            previous: from.name(),
            cause: cause.to_string(),
        },
        Event::Message(m) => View::Message(m.into()),
        Event::Acked { id, seq } => View::Ack {
            id: &id.0,
            seq: *seq,
        },
        Event::SendFailed { id, failure } => View::SendFailed(send_failure(&id.0, failure)),
        Event::Discontinuity {
            last_seen,
            resumed_after,
        } => View::Discontinuity {
            last_seen: *last_seen,
            resumed_after: *resumed_after,
        },
        Event::Subscribed { conv } => View::Subscribed { conversation: conv },
        Event::SubscribeFailed { conv, code } => View::Error {
            code: code.as_str().into(),
            message: format!("subscribing to {conv} failed: {code}"),
            conversation: Some(conv),
        },
        Event::Presence { conv, user, online } => View::Presence {
            conversation: conv,
            user,
            online: *online,
        },
        Event::Typing { conv, user } => View::Typing {
            conversation: conv,
            user,
        },
        Event::RoundTrip { rtt } => View::Rtt {
            rtt_us: rtt.as_micros() as u64,
        },
        Event::TransportWorked { transport } => View::TransportWorked {
            transport: transport.as_str(),
        },
        Event::History { request, result } => match result {
            Ok(page) => View::History {
                request: request.0,
                page: Some(HistoryPageView {
                    messages: page.messages.iter().map(MessageView::from).collect(),
                    next_before: page.next_before,
                }),
                error: None,
            },
            Err(err) => View::History {
                request: request.0,
                page: None,
                error: Some(history_error(err)),
            },
        },
        Event::ServerError { code, message } => View::Error {
            code: code.as_str().into(),
            message: message.clone(),
            conversation: None,
        },
        Event::BadFrame { transport, error } => View::Error {
            code: "bad_frame".into(),
            message: format!("{transport} carried a bad frame: {error}"),
            conversation: None,
        },
        _ => View::Error {
            code: "unknown".into(),
            message: "an event this version does not describe".into(),
            conversation: None,
        },
    };
    json(&v)
}

/// The `transport` event: which rung carries the session now, and every link opening or open.
pub fn transport(session: &Session) -> String {
    json(&View::Transport {
        transport: session.transport().map(TransportKind::as_str),
        links: session
            .links()
            .into_iter()
            .map(|(kind, live)| LinkView {
                transport: kind.as_str(),
                live,
            })
            .collect(),
    })
}

/// The session's state now, as JSON (for `client.status`).
pub fn state(session: &Session, clock: Clock) -> String {
    json(&StateView::of(session.state(), clock))
}

fn send_failure(id: &str, failure: &SendFailure) -> SendFailureView {
    let (code, server_code) = match failure {
        SendFailure::Timeout => ("timeout", None),
        SendFailure::Rejected { code, .. } => ("rejected", Some(code.as_str().to_string())),
        _ => ("closed", None),
    };
    SendFailureView {
        id: id.to_string(),
        code: code.into(),
        message: failure.to_string(),
        server_code,
    }
}

fn history_error(err: &HistoryError) -> ErrorView {
    let (code, status) = match err {
        HistoryError::Server { status, code, .. } => (
            code.map(|c| c.as_str()).unwrap_or("http_error"),
            Some(*status),
        ),
        HistoryError::Network { .. } => ("network", None),
        HistoryError::BadResponse { .. } => ("bad_response", None),
        _ => ("closed", None),
    };
    ErrorView {
        code: code.into(),
        message: err.to_string(),
        status,
    }
}

/// A refused call (`send`, `subscribe`, …) as the JSON of a `LifelineError`.
pub fn send_error(err: &SendError) -> String {
    let code = match err {
        SendError::OutboxFull { .. } => "outbox_full",
        SendError::TooLarge { .. } => "too_large",
        SendError::InvalidConversation { .. } => "invalid_conversation",
        SendError::NotConnected => "not_connected",
        _ => "closed",
    };
    json(&ErrorView {
        code: code.into(),
        message: err.to_string(),
        status: None,
    })
}

/// Any other refusal (bad options) as the JSON of a `LifelineError`.
pub fn plain_error(code: &str, message: &str) -> String {
    json(&ErrorView {
        code: code.into(),
        message: message.into(),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeline_core::{ErrorCode, HistoryPage, MsgId, RequestId};
    use serde_json::{json, Value};
    use std::time::Duration;

    fn clock() -> Clock {
        Clock {
            now: Instant::now(),
            wall_ms: 1_000_000.0,
        }
    }

    fn parse(s: String) -> Value {
        serde_json::from_str(&s).unwrap()
    }

    fn msg(seq: u64) -> Message {
        Message {
            seq,
            conv: "general".into(),
            from: "alice".into(),
            id: "k-1".into(),
            body: "hi".into(),
            ts: 5,
        }
    }

    #[test]
    fn a_message_is_camel_case_with_a_conversation() {
        let v = parse(event(&Event::Message(msg(42)), clock()));
        assert_eq!(
            v,
            json!({"type":"message","seq":42,"conversation":"general","from":"alice",
                   "id":"k-1","body":"hi","ts":5})
        );
    }

    #[test]
    fn reconnecting_carries_the_attempt_and_the_wall_clock_retry_time() {
        let c = clock();
        let to = State::Reconnecting {
            attempt: 3,
            next_attempt_at: Some(c.now + Duration::from_millis(1500)),
            last_error: Some(Cause::Offline),
        };
        let v = parse(event(
            &Event::StateChanged {
                from: State::Idle,
                to,
                cause: Cause::Offline,
            },
            c,
        ));
        assert_eq!(v["type"], "state");
        assert_eq!(v["state"], "reconnecting");
        assert_eq!(v["previous"], "idle");
        assert_eq!(v["attempt"], 3);
        assert_eq!(v["nextRetryAt"], 1_001_500);
        assert_eq!(v["error"], "the network is offline");
    }

    #[test]
    fn connected_names_the_transport() {
        let s = State::Connected {
            transport: TransportKind::LongPoll,
            degraded: true,
        };
        let v = parse(json(&StateView::of(&s, clock())));
        assert_eq!(v["state"], "connected");
        assert_eq!(v["transport"], "long-poll");
        assert_eq!(v["degraded"], true);
    }

    #[test]
    fn send_outcomes_carry_the_id() {
        let ack = parse(event(
            &Event::Acked {
                id: MsgId("a-1".into()),
                seq: 9,
            },
            clock(),
        ));
        assert_eq!(ack, json!({"type":"ack","id":"a-1","seq":9}));
        let failed = parse(event(
            &Event::SendFailed {
                id: MsgId("a-2".into()),
                failure: SendFailure::Rejected {
                    code: ErrorCode::Forbidden,
                    message: "not a member".into(),
                },
            },
            clock(),
        ));
        assert_eq!(failed["type"], "sendFailed");
        assert_eq!(failed["id"], "a-2");
        assert_eq!(failed["code"], "rejected");
        assert_eq!(failed["serverCode"], "forbidden");
    }

    #[test]
    fn history_pages_and_errors() {
        let ok = parse(event(
            &Event::History {
                request: RequestId(4),
                result: Ok(HistoryPage {
                    messages: vec![msg(1), msg(2)],
                    next_before: Some(1),
                }),
            },
            clock(),
        ));
        assert_eq!(ok["request"], 4);
        assert_eq!(ok["page"]["messages"][1]["seq"], 2);
        assert_eq!(ok["page"]["nextBefore"], 1);
        let last = parse(event(
            &Event::History {
                request: RequestId(6),
                result: Ok(HistoryPage {
                    messages: vec![],
                    next_before: None,
                }),
            },
            clock(),
        ));
        assert!(last["page"].get("nextBefore").is_none());
        let err = parse(event(
            &Event::History {
                request: RequestId(5),
                result: Err(HistoryError::Server {
                    status: 403,
                    code: Some(ErrorCode::Forbidden),
                    message: "no".into(),
                }),
            },
            clock(),
        ));
        assert_eq!(err["error"]["code"], "forbidden");
        assert_eq!(err["error"]["status"], 403);
    }

    #[test]
    fn refusals_have_stable_codes() {
        let v = parse(send_error(&SendError::TooLarge { len: 2, max: 1 }));
        assert_eq!(v["code"], "too_large");
        let v = parse(send_error(&SendError::NotConnected));
        assert_eq!(v["code"], "not_connected");
    }
}
