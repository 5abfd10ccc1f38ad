//! Engines the cluster scenarios start themselves on free loopback ports: PostgreSQL, one per
//! test binary (`initdb` in a temp dir as the `postgres` user, stopped by PID when the binary
//! exits), and `redis-server`, one per test (append-only file in a temp dir, stopped by PID).
//! The helpers are the server tests' own, shared rather than copied.

#[allow(dead_code)]
#[path = "../../server/tests/common/postgres.rs"]
mod postgres;

pub use postgres::{pg, Pg};

#[allow(dead_code)]
#[path = "../../server/tests/common/redis.rs"]
mod redis;

pub use redis::Redis;
