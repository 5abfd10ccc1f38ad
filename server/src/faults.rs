//! Fault switches for tests and the demo: refuse or black-hole a transport, stop heartbeats.
//! (Dropping every connection is an action, not a switch: see `conns`.)
//!
//! Only the state lives here; whether the switches are reachable over HTTP is decided by the
//! router (`--faults`), and each transport consults them itself.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// The state of every switch; `false` everywhere is normal operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultState {
    /// Answer WebSocket upgrade requests with 403.
    pub refuse_ws: bool,
    /// Answer SSE requests with 403.
    pub refuse_sse: bool,
    /// Answer long polls with 403.
    pub refuse_poll: bool,
    /// Send no `heartbeat` (nor `pong`) frames, and hold empty long polls.
    pub stop_heartbeats: bool,
    /// Accept WebSocket upgrades, then never send anything.
    pub blackhole_ws: bool,
    /// Answer SSE with 200 and headers, then never send anything.
    pub blackhole_sse: bool,
    /// Answer long polls with 200 and headers, then never send anything.
    pub blackhole_poll: bool,
}

/// A partial update: absent members keep their value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refuse_ws: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refuse_sse: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refuse_poll: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_heartbeats: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blackhole_ws: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blackhole_sse: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blackhole_poll: Option<bool>,
}

/// The live switches.
#[derive(Default)]
pub struct Faults {
    state: Mutex<FaultState>,
}

impl Faults {
    /// The current state.
    pub fn get(&self) -> FaultState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a partial update and returns the new state.
    pub fn update(&self, u: FaultUpdate) -> FaultState {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let set = |field: &mut bool, v: Option<bool>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut s.refuse_ws, u.refuse_ws);
        set(&mut s.refuse_sse, u.refuse_sse);
        set(&mut s.refuse_poll, u.refuse_poll);
        set(&mut s.stop_heartbeats, u.stop_heartbeats);
        set(&mut s.blackhole_ws, u.blackhole_ws);
        set(&mut s.blackhole_sse, u.blackhole_sse);
        set(&mut s.blackhole_poll, u.blackhole_poll);
        *s
    }
}
