//! How the CLI prints things: one JSON object per line for every event, acknowledgement and
//! history page.
//!
//! Formatting only; no I/O and no client logic.

use lifeline::{Event, HistoryPage, Message, State};
use serde_json::{json, Value};

fn message(m: &Message) -> Value {
    json!({
        "seq": m.seq,
        "conv": m.conv,
        "from": m.from,
        "id": m.id,
        "body": m.body,
        "ts": m.ts,
    })
}

fn state(s: &State) -> Value {
    match s {
        State::Connecting { transport, attempt } => {
            json!({"state": "connecting", "transport": transport.as_str(), "attempt": attempt})
        }
        State::Connected {
            transport,
            degraded,
        } => json!({"state": "connected", "transport": transport.as_str(), "degraded": degraded}),
        State::Reconnecting {
            attempt,
            last_error,
            ..
        } => json!({
            "state": "reconnecting",
            "attempt": attempt,
            "last_error": last_error.as_ref().map(|c| c.to_string()),
        }),
        State::Failed { error } => json!({"state": "failed", "error": error.to_string()}),
        other => json!({"state": other.name()}),
    }
}

/// One event as a JSON line.
pub fn event(e: &Event) -> Value {
    match e {
        Event::StateChanged { from, to, cause } => {
            let mut v = state(to);
            v["type"] = json!("state");
            v["from"] = json!(from.name());
            v["cause"] = json!(cause.to_string());
            v
        }
        Event::Message(m) => {
            let mut v = message(m);
            v["type"] = json!("message");
            v
        }
        Event::Acked { id, seq } => json!({"type": "ack", "id": id.0, "seq": seq}),
        Event::SendFailed { id, error } => {
            json!({"type": "send_failed", "id": id.0, "error": error.to_string()})
        }
        Event::Discontinuity {
            last_seen,
            resumed_after,
        } => {
            json!({"type": "discontinuity", "last_seen": last_seen, "resumed_after": resumed_after})
        }
        Event::Subscribed { conv } => json!({"type": "subscribed", "conv": conv}),
        Event::SubscribeFailed { conv, code } => {
            json!({"type": "subscribe_failed", "conv": conv, "code": code.as_str()})
        }
        Event::Presence { conv, user, online } => {
            json!({"type": "presence", "conv": conv, "user": user, "online": online})
        }
        Event::Typing { conv, user } => json!({"type": "typing", "conv": conv, "user": user}),
        Event::RoundTrip { rtt } => {
            json!({"type": "round_trip", "rtt_ms": rtt.as_secs_f64() * 1000.0})
        }
        Event::TransportWorked { transport } => {
            json!({"type": "transport_worked", "transport": transport.as_str()})
        }
        Event::ServerError { code, message } => {
            json!({"type": "server_error", "code": code.as_str(), "message": message})
        }
        Event::BadFrame { transport, error } => {
            json!({"type": "bad_frame", "transport": transport.as_str(), "error": error})
        }
        Event::Lagged { missed } => json!({"type": "lagged", "missed": missed}),
        other => json!({"type": "other", "debug": format!("{other:?}")}),
    }
}

/// A history page as one JSON line.
pub fn page(p: &HistoryPage) -> Value {
    json!({
        "type": "history",
        "messages": p.messages.iter().map(message).collect::<Vec<_>>(),
        "next_before": p.next_before,
    })
}
