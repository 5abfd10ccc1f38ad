//! The Lifeline reference server: docs/PROTOCOL.md over WebSocket, Server-Sent Events and long
//! polling, with SQLite storage, signed tokens, rate limits, presence, typing and fault switches.
//!
//! This file only declares the modules and the public API; every concept lives in its own
//! module. Start a server in-process with [`start`] (see [`ServerConfig::for_tests`]).

mod access;
mod admin;
mod cluster;
mod commands;
pub mod config;
mod conns;
mod errors;
pub mod faults;
mod feed;
mod history;
mod hub;
mod limits;
mod listener;
mod members;
mod poll;
mod request;
mod send;
mod server;
mod sse;
mod state;
mod store;
mod tail;
pub mod token;
mod writer;
mod ws;

pub use config::{Secret, ServerConfig};
pub use faults::{FaultState, FaultUpdate};
pub use listener::DEFAULT_LISTEN_BACKLOG;
pub use server::{start, RunningServer, StartError};
pub use token::{make_token, mint, verify_token, Claims, TokenError, TokenKey};
pub use ws::{CLOSE_IDLE, CLOSE_POLICY, CLOSE_RESTART, CLOSE_SLOW_CONSUMER, CLOSE_UNAUTHORIZED};
