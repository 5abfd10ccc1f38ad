//! The real server as a child process (`lifeline-test-server`), for the scenarios that kill it
//! with SIGKILL and start it again on the same port with the same storage, as an operator's crash
//! and restart would. Stopped by its PID when dropped. Its clock can be set off by seconds with
//! libfaketime (Debian's `faketime` package), preloaded into the server process itself.

use lifeline_server::ServerConfig;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A server process; the data directory outlives restarts.
pub struct ChildServer {
    program: PathBuf,
    data: tempfile::TempDir,
    heartbeat_ms: u64,
    addr: SocketAddr,
    child: Option<Child>,
    /// The PostgreSQL URL it stores in (`LIFELINE_POSTGRES`), if not its data directory.
    postgres: Option<String>,
    /// libfaketime's offset for its clock (`FAKETIME`, e.g. `+7s`), if any.
    clock_offset: Option<String>,
    /// The Redis URL of cluster mode (`LIFELINE_REDIS_URL`), if any (needs `postgres`).
    redis: Option<String>,
}

/// The command that installs libfaketime, named when it is missing.
pub const FAKETIME_INSTALL: &str = "apt-get install faketime (as root), or `cargo xtask setup`";

/// Where libfaketime's thread-safe library is, or a panic naming the install command.
pub fn libfaketime() -> PathBuf {
    let dirs = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("faketime"))
        .chain([PathBuf::from("/usr/lib/faketime")]);
    for dir in dirs {
        let lib = dir.join("libfaketimeMT.so.1");
        if lib.exists() {
            return lib;
        }
    }
    panic!("libfaketime is missing; install it: {FAKETIME_INSTALL}");
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl ChildServer {
    /// Starts `program` (the `lifeline-test-server` binary) on a free loopback port.
    pub fn start(program: impl Into<PathBuf>, heartbeat_ms: u64) -> ChildServer {
        let mut server = ChildServer {
            program: program.into(),
            data: tempfile::tempdir().expect("temp dir"),
            heartbeat_ms,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
            postgres: None,
            clock_offset: None,
            redis: None,
        };
        server.start_again();
        server
    }

    /// [`ChildServer::start`] storing in the PostgreSQL database at `url`.
    pub fn start_on_postgres(
        program: impl Into<PathBuf>,
        heartbeat_ms: u64,
        url: &str,
    ) -> ChildServer {
        let mut server = ChildServer {
            program: program.into(),
            data: tempfile::tempdir().expect("temp dir"),
            heartbeat_ms,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
            postgres: Some(url.to_string()),
            clock_offset: None,
            redis: None,
        };
        server.start_again();
        server
    }

    /// [`ChildServer::start_on_postgres`] with the process's clock off by `offset` (libfaketime's
    /// `FAKETIME` syntax: `+7s`, `-7s`). Panics naming the install command without libfaketime.
    pub fn start_on_postgres_with_clock(
        program: impl Into<PathBuf>,
        heartbeat_ms: u64,
        url: &str,
        offset: &str,
    ) -> ChildServer {
        let mut server = ChildServer {
            program: program.into(),
            data: tempfile::tempdir().expect("temp dir"),
            heartbeat_ms,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
            postgres: Some(url.to_string()),
            clock_offset: Some(offset.to_string()),
            redis: None,
        };
        server.start_again();
        server
    }

    /// Cluster mode: [`ChildServer::start_on_postgres_with_clock`] (`offset` `None`: the true
    /// clock) with Redis at `redis` too (`LIFELINE_REDIS_URL`), at every start.
    pub fn start_on_cluster(
        program: impl Into<PathBuf>,
        heartbeat_ms: u64,
        (postgres, redis): (&str, &str),
        offset: Option<&str>,
    ) -> ChildServer {
        let mut server = ChildServer {
            program: program.into(),
            data: tempfile::tempdir().expect("temp dir"),
            heartbeat_ms,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
            postgres: Some(postgres.to_string()),
            clock_offset: offset.map(str::to_string),
            redis: Some(redis.to_string()),
        };
        server.start_again();
        server
    }

    /// Sets the clock offset (libfaketime's `FAKETIME`; `None`: the true clock) the next
    /// [`ChildServer::start_again`] runs the server with.
    pub fn set_clock_offset(&mut self, offset: Option<&str>) {
        self.clock_offset = offset.map(str::to_string);
    }

    /// Starts the server again on the address it had (the first time: a free port).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let mut command = Command::new(&self.program);
        match &self.postgres {
            Some(url) => command.env("LIFELINE_POSTGRES", url),
            None => command.env_remove("LIFELINE_POSTGRES"),
        };
        match &self.redis {
            Some(url) => command.env("LIFELINE_REDIS_URL", url),
            None => command.env_remove("LIFELINE_REDIS_URL"),
        };
        if let Some(offset) = &self.clock_offset {
            command
                .env("LD_PRELOAD", libfaketime())
                .env("FAKETIME", offset)
                // The offset applies to the wall clock only: timers keep real time.
                .env("DONT_FAKE_MONOTONIC", "1");
        }
        let mut child = command
            .arg(self.addr.to_string())
            .arg(self.data.path())
            .arg(self.heartbeat_ms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server prints its address");
        self.addr = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the server did not start: {line:?}"));
        self.child = Some(child);
    }

    /// SIGKILL by PID, and waits for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A token for `user`, valid for an hour, for every conversation, signed with the test
    /// configuration's key.
    pub fn token(&self, user: &str) -> String {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            + Duration::from_secs(3600);
        let key = ServerConfig::for_tests().token_keys[0].clone();
        lifeline_server::mint(
            &key,
            &lifeline_server::Claims::everything(user, exp.as_secs()),
        )
    }
}
