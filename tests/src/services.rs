//! Engines the cluster scenarios start themselves on free loopback ports: PostgreSQL, one per
//! test binary (`initdb` in a temp dir as the `postgres` user, stopped by PID when the binary
//! exits). The helper is the server tests' own, shared rather than copied.

#[allow(dead_code)]
#[path = "../../server/tests/common/postgres.rs"]
mod postgres;

pub use postgres::{pg, Pg};
