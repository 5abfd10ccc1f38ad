//! How the session's events and state look to JavaScript: each [`lifeline_core::Event`] becomes
//! one JSON object with a `type` member, which the ES module wrapper parses and dispatches (or uses
//! to settle a promise). Field names are camelCase; instants become wall-clock milliseconds since
//! the Unix epoch, as `Date.now()` counts them.
//!
//! Pure translation, compiled on every target and tested natively. No browser API, no decision.

use lifeline_core::json::ObjectWriter;
use lifeline_core::protocol::FrameDecoder;
use lifeline_core::{
    Cause, Event, HistoryError, Instant, Message, SendError, SendFailure, Session, State,
    TransportKind,
};

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

/// Written by hand with [`lifeline_core::json`] (no serde in the `.wasm`); the member order and
/// the `null`s are those the wrapper and the TypeScript declarations describe.
fn object(write: impl FnOnce(&mut ObjectWriter)) -> String {
    let mut out = String::new();
    let mut w = ObjectWriter::new(&mut out);
    write(&mut w);
    w.finish();
    out
}

/// A member that is `null` when absent (as opposed to [`ObjectWriter::opt_str`], which omits it).
fn str_or_null(w: &mut ObjectWriter, key: &str, value: Option<&str>) {
    match value {
        Some(v) => w.str(key, v),
        None => w.raw(key, "null"),
    };
}

fn u64_or_null(w: &mut ObjectWriter, key: &str, value: Option<u64>) {
    match value {
        Some(v) => w.u64(key, v),
        None => w.raw(key, "null"),
    };
}

/// A message as JavaScript sees it: `{seq, conversation, from, id, body, ts}`.
fn message_fields(w: &mut ObjectWriter, m: &Message) {
    w.u64("seq", m.seq)
        .str("conversation", &m.conv)
        .str("from", &m.from)
        .str("id", &m.id)
        .str("body", &m.body)
        .u64("ts", m.ts);
}

/// The connection state as JavaScript sees it (the `state` event, whose fields the wrapper keeps
/// as `client.status`):
/// `{state, transport, attempt, degraded, nextRetryAt, error}`, absent values as `null`.
fn state_fields(w: &mut ObjectWriter, state: &State, clock: Clock) {
    let mut transport = None;
    let mut attempt = None;
    let mut degraded = false;
    let mut next_retry_at = None;
    let mut error = None;
    match state {
        State::Connecting {
            transport: t,
            attempt: a,
        } => {
            transport = Some(t.as_str());
            attempt = Some(*a);
        }
        State::Connected {
            transport: t,
            degraded: d,
        } => {
            transport = Some(t.as_str());
            degraded = *d;
        }
        State::Reconnecting {
            attempt: a,
            next_attempt_at,
            last_error,
        } => {
            attempt = Some(*a);
            next_retry_at = next_attempt_at.map(|at| clock.wall(at));
            error = last_error.as_ref().map(Cause::describe);
        }
        State::Failed { error: e } => error = Some(e.describe()),
        State::Idle | State::Closed => {}
    }
    w.str("state", state.name());
    str_or_null(w, "transport", transport);
    u64_or_null(w, "attempt", attempt.map(u64::from));
    w.bool("degraded", degraded);
    u64_or_null(w, "nextRetryAt", next_retry_at);
    str_or_null(w, "error", error.as_deref());
}

/// `{code, message, status?}`: a `LifelineError`, or the error of a history request.
fn error_object(code: &str, message: &str, status: Option<u16>) -> String {
    object(|w| {
        w.str("code", code)
            .str("message", message)
            .opt_u64("status", status.map(u64::from));
    })
}

/// One event as JSON: an object tagged by `type`, camelCase members.
pub fn event(e: &Event, clock: Clock) -> String {
    object(|w| match e {
        Event::StateChanged { from, to, cause } => {
            w.str("type", "state");
            state_fields(w, to, clock);
            w.str("previous", from.name())
                .str("cause", &cause.describe());
        }
        Event::Message(m) => {
            w.str("type", "message");
            message_fields(w, m);
        }
        Event::Acked { id, seq } => {
            w.str("type", "ack").str("id", &id.0).u64("seq", *seq);
        }
        Event::SendFailed { id, failure } => {
            let (code, server_code) = match failure {
                SendFailure::Timeout => ("timeout", None),
                SendFailure::Rejected { code, .. } => ("rejected", Some(code.as_str())),
                _ => ("closed", None),
            };
            w.str("type", "sendFailed")
                .str("id", &id.0)
                .str("code", code)
                .str("message", &failure.describe())
                .opt_str("serverCode", server_code);
        }
        Event::Discontinuity {
            last_seen,
            resumed_after,
        } => {
            w.str("type", "discontinuity")
                .u64("lastSeen", *last_seen)
                .u64("resumedAfter", *resumed_after);
        }
        Event::Subscribed { conv } => {
            w.str("type", "subscribed").str("conversation", conv);
        }
        Event::SubscribeFailed { conv, code } => {
            let mut message = String::from("subscribing to ");
            message.push_str(conv);
            message.push_str(" failed: ");
            message.push_str(code.as_str());
            w.str("type", "error")
                .str("code", code.as_str())
                .str("message", &message)
                .str("conversation", conv);
        }
        Event::Presence { conv, user, online } => {
            w.str("type", "presence")
                .str("conversation", conv)
                .str("user", user)
                .bool("online", *online);
        }
        Event::Typing { conv, user } => {
            w.str("type", "typing")
                .str("conversation", conv)
                .str("user", user);
        }
        // In microseconds (integers keep float formatting out of the `.wasm`); the wrapper divides.
        Event::RoundTrip { rtt } => {
            w.str("type", "rtt").u64("rttUs", rtt.as_micros() as u64);
        }
        Event::TransportWorked { transport } => {
            w.str("type", "transportWorked")
                .str("transport", transport.as_str());
        }
        Event::History { request, result } => {
            w.str("type", "history").u64("request", request.0);
            match result {
                Ok(page) => {
                    w.with("page", |out| {
                        let mut p = ObjectWriter::new(out);
                        p.with("messages", |out| {
                            out.push('[');
                            for (i, m) in page.messages.iter().enumerate() {
                                if i > 0 {
                                    out.push(',');
                                }
                                let mut mw = ObjectWriter::new(out);
                                message_fields(&mut mw, m);
                                mw.finish();
                            }
                            out.push(']');
                        });
                        // Absent (not `null`) on the oldest page, as the TypeScript declarations say.
                        p.opt_u64("nextBefore", page.next_before);
                        p.finish();
                    });
                }
                Err(err) => {
                    w.raw("error", &history_error(err));
                }
            }
        }
        Event::ServerError { code, message } => {
            w.str("type", "error")
                .str("code", code.as_str())
                .str("message", message);
        }
        Event::BadFrame { transport, error } => {
            let mut message = String::from(transport.as_str());
            message.push_str(" carried a bad frame: ");
            message.push_str(&error.describe());
            w.str("type", "error")
                .str("code", "bad_frame")
                .str("message", &message);
        }
        _ => {
            w.str("type", "error")
                .str("code", "unknown")
                .str("message", "an event this version does not describe");
        }
    })
}

/// The `transport` event: which rung carries the session now, and every link opening or open.
pub fn transport<D: FrameDecoder>(session: &Session<D>) -> String {
    object(|w| {
        w.str("type", "transport");
        str_or_null(
            w,
            "transport",
            session.transport().map(TransportKind::as_str),
        );
        w.with("links", |out| {
            out.push('[');
            // Under the hybrid strategy the messages side never uses a WebSocket: a `websocket`
            // entry is the link of presence and typing.
            let links = session.links().into_iter().chain(session.ephemeral());
            for (i, (kind, live)) in links.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ObjectWriter::new(out)
                    .str("transport", kind.as_str())
                    .bool("live", live)
                    .finish();
            }
            out.push(']');
        });
    })
}

fn history_error(err: &HistoryError) -> String {
    let (code, status) = match err {
        HistoryError::Server { status, code, .. } => (
            code.map(|c| c.as_str()).unwrap_or("http_error"),
            Some(*status),
        ),
        HistoryError::Network { .. } => ("network", None),
        HistoryError::BadResponse { .. } => ("bad_response", None),
        _ => ("closed", None),
    };
    error_object(code, &err.describe(), status)
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
    error_object(code, &err.describe(), None)
}

/// Any other refusal (bad options) as the JSON of a `LifelineError`.
pub fn plain_error(code: &str, message: &str) -> String {
    error_object(code, message, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeline_core::{ErrorCode, HistoryPage, MsgId, RequestId};
    use serde_json::{json, Value};
    use std::time::Duration;

    fn clock() -> Clock {
        Clock {
            now: Instant::from_micros(1_000_000_000),
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
        let v = parse(object(|w| state_fields(w, &s, clock())));
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
