//! One browser client's [`Session`] and the little a turn must remember between turns: the last
//! `transport` event written.
//!
//! A turn is: the JavaScript driver applies one input or call, then [`Runner::drain`] hands it
//! everything to do and to tell, as one JSON text:
//! `[[action…], [event…], delay_ms, final]` — the actions (see [`crate::actions`]), the events
//! (see [`crate::view`]), the delay for the one `setTimeout` (`-1`: none) and whether the session
//! has ended (`1`: let go of everything). Pure, compiled on every target and tested natively: no
//! browser API and no decision here. A timer that fires late is the core's to judge (see
//! `lifeline_core::liveness`); a frozen page is reported only when the browser says so
//! (`resume`, `pageshow`), as [`Input::Resumed`].

use crate::actions;
use crate::view::{self, Clock};
use lifeline_core::{Input, Instant, Session};

/// The largest delay `setTimeout` accepts (2^31 - 1 ms).
const MAX_TIMEOUT_MS: u64 = 2_147_483_647;

/// The session and the memory of its turns.
pub struct Runner {
    pub session: Session<crate::Decoder>,
    last_transport: String,
}

impl Runner {
    pub fn new(session: Session<crate::Decoder>) -> Self {
        Runner {
            session,
            last_transport: String::new(),
        }
    }

    /// Reports one fact from the browser.
    pub fn input(&mut self, now: Instant, input: Input) {
        self.session.handle_input(now, input);
    }

    /// The timer fired, however late: the session judges that itself.
    pub fn timer(&mut self, now: Instant) {
        self.session.handle_timeout(now);
    }

    /// Takes every queued action and event; see the module doc for the shape.
    pub fn drain(&mut self, clock: Clock) -> String {
        let mut out = String::from("[[");
        let mut first = true;
        while let Some(action) = self.session.poll_action() {
            if !first {
                out.push(',');
            }
            first = false;
            actions::write(&mut out, &action);
        }
        out.push_str("],[");
        let mut first = true;
        while let Some(event) = self.session.poll_event() {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&view::event(&event, clock));
        }
        let transport = view::transport(&self.session);
        if transport != self.last_transport {
            if !first {
                out.push(',');
            }
            out.push_str(&transport);
            self.last_transport = transport;
        }
        out.push_str("],");
        match self.session.poll_timeout() {
            Some(at) => {
                let delay = at.saturating_duration_since(clock.now);
                let ms = (delay.as_micros() as u64)
                    .div_ceil(1000)
                    .min(MAX_TIMEOUT_MS);
                lifeline_core::json::write_u64(&mut out, ms);
            }
            None => out.push_str("-1"),
        }
        out.push_str(if self.session.state().is_final() {
            ",1]"
        } else {
            ",0]"
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeline_core::{Config, SocketId};
    use serde_json::Value;
    use std::time::Duration;

    fn runner() -> (Runner, Instant) {
        let mut config = Config::new("http://127.0.0.1:8787").unwrap();
        config.token = Some("t".into());
        let now = Instant::from_micros(1_000_000_000);
        let session = Session::with_decoder(config, now, crate::Decoder::default());
        (Runner::new(session), now)
    }

    fn drain(r: &mut Runner, now: Instant) -> Value {
        let text = r.drain(Clock {
            now,
            wall_ms: 1_700_000_000_000.0,
        });
        serde_json::from_str(&text).expect("valid JSON")
    }

    #[test]
    fn a_turn_hands_over_actions_events_the_timer_and_whether_it_ended() {
        let (mut r, now) = runner();
        let idle = drain(&mut r, now);
        assert_eq!(idle[0], serde_json::json!([]));
        // The first drain also reports the (empty) transport picture.
        assert_eq!(idle[1][0]["type"], "transport");
        assert_eq!(idle[2], -1);
        assert_eq!(idle[3], 0);

        r.session.connect(now);
        let connecting = drain(&mut r, now);
        let open = &connecting[0][0];
        assert_eq!(open[0], 0);
        assert_eq!(open[2], "ws");
        assert!(open[3]
            .as_str()
            .unwrap()
            .starts_with("ws://127.0.0.1:8787/v1/ws"));
        assert!(connecting[1]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "state" && e["state"] == "connecting"));
        // The first deadline is the race to the next rung: on a first visit, 50 ms by default.
        assert_eq!(connecting[2], 50);

        let socket = SocketId(open[1].as_u64().unwrap());
        r.input(now, Input::SocketOpened { socket });
        r.session.close(now);
        let closed = drain(&mut r, now);
        assert_eq!(closed[0][0], serde_json::json!([2, socket.0]));
        assert_eq!(closed[3], 1);
    }

    fn causes_of_connecting(turn: &Value) -> Vec<String> {
        turn[1]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "state" && e["state"] == "connecting")
            .map(|e| e["cause"].as_str().unwrap().to_string())
            .collect()
    }

    /// Connects, fails the first socket and drains: the session waits for its retry timer.
    fn waiting_for_retry() -> (Runner, Instant, Instant) {
        let (mut r, now) = runner();
        r.session.connect(now);
        let first = drain(&mut r, now);
        let socket = SocketId(first[0][0][1].as_u64().unwrap());
        r.input(
            now,
            Input::SocketFailed {
                socket,
                failure: lifeline_core::TransportFailure::of_kind(
                    lifeline_core::FailureKind::Refused,
                    "refused",
                ),
            },
        );
        drain(&mut r, now);
        let due = r.session.poll_timeout().expect("a retry is scheduled");
        (r, now, due)
    }

    /// The runner keeps no freeze rule of its own: a timer far past its time is just the timer
    /// (the core judges lateness, see `lifeline_core::liveness`) ...
    #[test]
    fn a_timer_far_past_its_time_is_left_to_the_core() {
        let (mut r, _, due) = waiting_for_retry();
        let late = due + Duration::from_secs(60);
        r.timer(late);
        let causes = causes_of_connecting(&drain(&mut r, late));
        assert_eq!(causes, ["retry due"]);
    }

    /// ... and a frozen page is what the browser reports (`resume`, `pageshow`).
    #[test]
    fn a_resume_the_browser_reports_retries_at_once() {
        let (mut r, now, _) = waiting_for_retry();
        r.input(now, Input::Resumed);
        let causes = causes_of_connecting(&drain(&mut r, now));
        assert_eq!(causes, ["resumed after a freeze or a clock jump"]);
    }

    #[test]
    fn a_timer_on_time_is_just_a_timer() {
        let (mut r, _, due) = waiting_for_retry();
        r.timer(due);
        let causes = causes_of_connecting(&drain(&mut r, due));
        assert_eq!(causes.len(), 1);
        assert_ne!(causes[0], "resumed after a freeze or a clock jump");
    }
}
