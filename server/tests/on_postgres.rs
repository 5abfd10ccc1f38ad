//! The protocol tests of `transports.rs`, `idempotency.rs`, `authz.rs` and `history_time.rs`, run
//! unchanged against the PostgreSQL backend: this binary's name makes `common::server_with` give
//! every server a database of one real PostgreSQL started for the binary (see
//! `common/postgres.rs`).

// Each included file declares `mod common;` itself so it also builds as its own binary; here the
// helpers are therefore compiled three times, which is harmless.
#![allow(clippy::duplicate_mod)]

#[path = "authz.rs"]
mod authz;
#[path = "history_time.rs"]
mod history_time;
#[path = "idempotency.rs"]
mod idempotency;
#[path = "transports.rs"]
mod transports;
