//! The real `lifeline-server` binary as a child process of the benchmark: started on a free
//! loopback port with its own data directory (or a PostgreSQL database), killed with SIGKILL by
//! its PID and started again on the same port, and read from `/proc` (resident memory, threads).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The token secret the benchmark's servers check and its clients sign with.
pub const SECRET: &str = "lifeline-scale-bench-secret-0123456789abcdef";

/// How long a server may take to accept connections after it was started.
const READY: Duration = Duration::from_secs(30);

/// One server process; the data directory outlives restarts.
pub struct ServerProcess {
    bin: PathBuf,
    addr: SocketAddr,
    data: tempfile::TempDir,
    postgres: Option<String>,
    extra: Vec<String>,
    child: Option<Child>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether the server at `addr` answers `GET /healthz` (a bound socket is not enough: the server
/// binds before it opens storage, and connects wait in the backlog until it serves).
fn serving(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(100)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut head = [0u8; 12];
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
        .is_ok()
        && s.read_exact(&mut head).is_ok()
        && &head == b"HTTP/1.1 200"
}

/// A free loopback port (bound, read and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The `lifeline-server` binary built next to this one (`cargo build --release -p
/// lifeline-server`, which `cargo xtask bench storm|fanout|throughput` runs first).
pub fn server_binary() -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    let bin = me.with_file_name("lifeline-server");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --release -p lifeline-server` \
         (or run `cargo xtask bench storm`)",
        bin.display()
    );
    bin
}

impl ServerProcess {
    /// Starts the server on a free port, storing in a fresh temp dir (SQLite) or in `postgres`,
    /// with `extra` flags after the benchmark's own; returns once it accepts connections.
    pub fn start(bin: &Path, postgres: Option<String>, extra: &[&str]) -> ServerProcess {
        let mut server = ServerProcess {
            bin: bin.to_path_buf(),
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            data: tempfile::tempdir().expect("temp dir"),
            postgres,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        server.start_again();
        server
    }

    /// Starts the process again on the same address and storage; returns once it accepts.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let mut command = Command::new(&self.bin);
        command
            .env_remove("LIFELINE_POSTGRES")
            .env("RUST_LOG", "warn")
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(self.data.path())
            .arg("--token-secret")
            .arg(SECRET)
            // Each client is its own user, so per-user limits do not bind; the defaults of
            // the global caps (8,192 streams) would refuse the 10,000-client case.
            .args(["--rate-per-sec", "100000", "--rate-burst", "100000"])
            .args(["--membership-rate-per-sec", "100000"])
            .args(["--membership-rate-burst", "100000"])
            .args(["--max-connections", "19000", "--max-streams", "19000"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(url) = &self.postgres {
            command.arg("--postgres").arg(url);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + READY;
        while !serving(self.addr) {
            assert!(
                Instant::now() < deadline,
                "the server did not accept connections within {READY:?}"
            );
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("the server exited at start: {status}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL by PID (no `going_away`, no flush), and waits until the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A field of `/proc/PID/status` (`VmRSS` in KiB, `Threads`), 0 when not running.
    pub fn status_field(&self, field: &str) -> u64 {
        let Some(child) = &self.child else { return 0 };
        proc_status(child.id(), field)
    }
}

/// A numeric field of `/proc/PID/status` (0 if absent).
pub fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
