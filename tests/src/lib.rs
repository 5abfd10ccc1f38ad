//! Shared helpers of the end-to-end tests: the TCP fault proxy, real middleboxes (nginx,
//! HAProxy), the real server as a child process, the delivery checker, the latency meter, the
//! event recorder, the traffic generator and the harness that starts a real server and configures
//! clients with short timeouts.
//!
//! No scenario lives here (they are in `tests/`), and nothing here sleeps to wait for a
//! condition: waits are on conditions, with bounded timeouts.

pub mod balancer;
pub mod checker;
pub mod child_server;
pub mod crowd;
pub mod first_message;
pub mod harness;
pub mod latency;
pub mod middlebox;
pub mod parity;
pub mod proxy;
pub mod recorder;
pub mod services;
pub mod traffic;
