//! Shared helpers of the end-to-end tests: the TCP fault proxy, the delivery checker, the event
//! recorder, the traffic generator and the harness that starts a real server and configures
//! clients with short timeouts.
//!
//! No scenario lives here (they are in `tests/`), and nothing here sleeps to wait for a
//! condition: waits are on conditions, with bounded timeouts.

pub mod checker;
pub mod crowd;
pub mod harness;
pub mod proxy;
pub mod recorder;
pub mod traffic;
