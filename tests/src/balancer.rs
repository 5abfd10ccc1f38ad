//! A real load balancer in front of several server instances: Debian's HAProxy, round-robin, with
//! health checks on `/healthz`, started as a child process on a free loopback port with the
//! configuration docs/DEPLOYMENT.md shows ([`CONFIG`]), and stopped by its PID when dropped.
//!
//! Its admin socket answers which instances HAProxy considers up, so a scenario can wait for the
//! health checks to take a killed instance out (and a restarted one back in).

use crate::middlebox::{find, free_port, until_child_listens, INSTALL};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The configuration, as in docs/DEPLOYMENT.md ("Load balancer"): `{admin}`, `{bind}` and
/// `{servers}` are filled in. Timeouts are above the server's heartbeat (10 s by default);
/// `redispatch` with `retries` sends a connection an instance refused to the next one before the
/// health checks (every second, two failures) have taken it out.
pub const CONFIG: &str = "\
global
    maxconn 4096
    stats socket {admin} mode 600 level admin
defaults
    mode http
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout http-request 10s
frontend chat
    bind {bind}
    default_backend lifeline
backend lifeline
    balance roundrobin
    option httpchk GET /healthz
    default-server inter 1s fall 2 rise 2
{servers}";

/// A running HAProxy balancing over some instances.
pub struct Balancer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Balancer {
    /// Starts HAProxy on a free loopback port over `upstreams` (named `i0`, `i1`, … in that
    /// order); returns once it accepts connections. A port taken between choosing and binding it
    /// is replaced by another (three tries).
    pub fn start(upstreams: &[SocketAddr]) -> Balancer {
        let program = find("haproxy");
        let servers: String = upstreams
            .iter()
            .enumerate()
            .map(|(i, addr)| format!("    server i{i} {addr} check\n"))
            .collect();
        let mut balancer = Balancer {
            dir: tempfile::tempdir().expect("temp dir"),
            port: 0,
            child: None,
        };
        let dir = balancer.dir.path().to_path_buf();
        let mut failures = Vec::new();
        for _ in 0..3 {
            balancer.port = free_port();
            let config = CONFIG
                .replace("{admin}", &dir.join("admin.sock").display().to_string())
                .replace("{bind}", &format!("127.0.0.1:{}", balancer.port))
                .replace("{servers}", &servers);
            let conf = dir.join("haproxy.cfg");
            std::fs::write(&conf, config).expect("write the config");
            let stderr = std::fs::File::create(dir.join("stderr.log")).expect("log");
            let child = Command::new(&program)
                .arg("-f")
                .arg(&conf)
                .arg("-db")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start haproxy: {e}; {INSTALL}"));
            balancer.child = Some(child);
            match balancer.until_listening() {
                Ok(()) => return balancer,
                Err(e) => {
                    failures.push(e);
                    balancer.stop();
                }
            }
        }
        panic!("HAProxy did not start:\n{}", failures.join("\n"));
    }

    fn until_listening(&mut self) -> Result<(), String> {
        let port = self.port;
        let child = self.child.as_mut().ok_or("HAProxy is not running")?;
        until_child_listens(child, port).map_err(|exited| {
            let log = std::fs::read_to_string(self.dir.path().join("stderr.log"));
            format!(
                "not listening on 127.0.0.1:{port} (exit: {exited:?}): {}",
                log.unwrap_or_default()
            )
        })
    }

    /// Stops HAProxy by its PID and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Field `field` of instance `i`'s line in HAProxy's statistics (`show stat` on its admin
    /// socket, CSV: 7 is the sessions it was given, 17 its status).
    fn stat(&self, i: usize, field: usize) -> String {
        let mut socket =
            UnixStream::connect(self.dir.path().join("admin.sock")).expect("HAProxy admin socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("socket timeout");
        socket.write_all(b"show stat\n").expect("ask HAProxy");
        let mut csv = String::new();
        socket.read_to_string(&mut csv).expect("HAProxy's answer");
        let name = format!("i{i}");
        csv.lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f.len() > field && f[0] == "lifeline" && f[1] == name)
            .map(|f| f[field].to_string())
            .unwrap_or_else(|| panic!("HAProxy does not list {name}: {csv}"))
    }

    /// HAProxy's view of instance `i`: `UP`, `DOWN`, `UP 1/2` (going down), …
    pub fn status(&self, i: usize) -> String {
        self.stat(i, 17)
    }

    /// How many connections HAProxy has sent to instance `i` so far.
    pub fn sessions(&self, i: usize) -> u64 {
        self.stat(i, 7).parse().unwrap_or(0)
    }

    /// Waits (bounded by `within`) until HAProxy reports instance `i` exactly `want`.
    pub async fn wait_status(&self, i: usize, want: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let status = self.status(i);
            if status == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "HAProxy still reports instance {i} {status:?}, not {want:?}, after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
