//! # lifeline-core
//!
//! The sans-IO heart of the Lifeline SDK: the wire protocol shared with the server, and the
//! connection state machine shared by the native and the browser drivers.
//!
//! This crate is deterministic. It opens no socket, starts no timer or thread, never reads a clock
//! and never touches a global random number generator: time comes in as a parameter and randomness
//! from a seed in the configuration. It builds for `wasm32-unknown-unknown`.

pub mod endpoints;
pub mod protocol;
