//! Real middleboxes between the clients and the server: Debian's nginx and HAProxy, started as
//! child processes on a free loopback port with a configuration generated into a temp dir, and
//! stopped by their PID (when the test asks, or when dropped).
//!
//! Each [`Setup`] is one configuration a real deployment has. The binaries come from the
//! project's setup (`cargo xtask setup`, `apt-get install nginx-light haproxy`); a missing one
//! fails the test with that command. Nothing here knows the protocol: it only writes a config and
//! manages a process.

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The command that installs the middleboxes, named in every failure about a missing one.
pub const INSTALL: &str = "apt-get install nginx-light haproxy (as root), or `cargo xtask setup`";

/// How long a middlebox or the balancer (nginx, HAProxy) may take to listen after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// One middlebox configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// nginx as a plain reverse proxy, its defaults untouched: no `Upgrade` headers are passed
    /// (WebSocket fails), HTTP/1.0 upstream, buffering on but honouring `X-Accel-Buffering`.
    NginxDefault,
    /// nginx configured for WebSocket as its documentation shows (HTTP/1.1, `Upgrade` and
    /// `Connection` passed on), other settings at their defaults (60 s read timeout).
    NginxWebSocket,
    /// nginx with response buffering forced on: `X-Accel-Buffering` ignored, no `Upgrade`, the
    /// default HTTP/1.0 to the upstream. It withholds a stream's headers and first events until
    /// its buffer fills.
    NginxBuffered,
    /// HAProxy in HTTP mode with short idle timeouts: `timeout client/server/tunnel 5s`.
    HaproxyShortTimeouts,
}

impl Setup {
    fn program(self) -> &'static str {
        match self {
            Setup::HaproxyShortTimeouts => "haproxy",
            _ => "nginx",
        }
    }
}

/// A running (or stopped) middlebox in front of one upstream.
pub struct Middlebox {
    setup: Setup,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Drop for Middlebox {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where `program` is installed, or a panic naming the install command.
pub(crate) fn find(program: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join(program);
        if path.exists() {
            return path;
        }
    }
    panic!("{program} is missing; install it: {INSTALL}");
}

/// A loopback port that was free a moment ago.
/// Waits (up to [`START_TIMEOUT`]) until `child` listens on loopback `port`: a connect succeeds
/// while it still runs, so it is ours that listens, not a stranger on the port. `Err` with its
/// exit status if it exited, with `None` if the time ran out.
pub(crate) fn until_child_listens(
    child: &mut Child,
    port: u16,
) -> Result<(), Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + START_TIMEOUT;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        let connected = StdStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
        let exited = child.try_wait().ok().flatten();
        if connected && exited.is_none() {
            return Ok(());
        }
        if exited.is_some() || Instant::now() > deadline {
            return Err(exited);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Middlebox {
    /// Starts `setup` on a free loopback port, forwarding to `upstream`; returns once it accepts
    /// connections. A port taken by someone else between choosing and binding it is replaced by
    /// another (three tries).
    pub fn start(setup: Setup, upstream: SocketAddr) -> Middlebox {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.path().join("tmp").join(sub)).expect("temp subdir");
        }
        let mut middlebox = Middlebox {
            setup,
            dir,
            port: 0,
            child: None,
        };
        let mut failures = Vec::new();
        for _ in 0..3 {
            middlebox.port = free_port();
            let config = match setup {
                Setup::HaproxyShortTimeouts => haproxy_config(middlebox.port, upstream),
                _ => nginx_config(setup, middlebox.dir.path(), middlebox.port, upstream),
            };
            std::fs::write(middlebox.dir.path().join("middlebox.conf"), config)
                .expect("write the config");
            match middlebox.try_start() {
                Ok(()) => return middlebox,
                Err(e) => failures.push(e),
            }
        }
        panic!("{setup:?} did not start:\n{}", failures.join("\n"));
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The middlebox's own log (nginx's error log; HAProxy logs nothing here), for failures.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Starts the middlebox again, after [`Middlebox::stop`], on the same port and config.
    pub fn start_again(&mut self) {
        if let Err(e) = self.try_start() {
            panic!("{:?} did not start again: {e}", self.setup);
        }
    }

    fn try_start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "{:?} is already running", self.setup);
        let program = find(self.setup.program());
        let dir = self.dir.path();
        let conf = dir.join("middlebox.conf");
        let mut command = Command::new(&program);
        match self.setup {
            Setup::HaproxyShortTimeouts => {
                command.arg("-f").arg(&conf).arg("-db");
            }
            _ => {
                let globals = format!("daemon off; pid {};", dir.join("nginx.pid").display());
                command
                    .arg("-p")
                    .arg(dir)
                    .arg("-e")
                    .arg(dir.join("error.log"))
                    .arg("-c")
                    .arg(&conf)
                    .arg("-g")
                    .arg(globals);
            }
        }
        let stderr = std::fs::File::create(dir.join("stderr.log")).expect("stderr log");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL}", program.display()));
        self.child = Some(child);
        let port = self.port;
        let child = self.child.as_mut().expect("just started");
        if let Err(exited) = until_child_listens(child, port) {
            let stderr = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
            let log = self.log();
            self.stop();
            return Err(format!(
                "not listening on 127.0.0.1:{port} (exit: {exited:?}):\n{stderr}\n{log}"
            ));
        }
        Ok(())
    }

    /// Stops the middlebox by its PID (SIGKILL: nginx runs without a master process, so nothing
    /// is left behind) and waits for it to exit; its listening port is closed when this returns.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// nginx's configuration for `setup`: one process (no master, so a kill by PID leaves no worker
/// behind), everything it writes under `dir`.
fn nginx_config(setup: Setup, dir: &Path, port: u16, upstream: SocketAddr) -> String {
    let location = match setup {
        Setup::NginxDefault => String::new(),
        Setup::NginxWebSocket => "\
            proxy_http_version 1.1;\n\
            proxy_set_header Upgrade $http_upgrade;\n\
            proxy_set_header Connection $connection_upgrade;\n"
            .to_string(),
        // HTTP/1.0 upstream (nginx's default): with buffering forced on, this nginx holds even
        // the response headers of a stream until its buffer fills.
        Setup::NginxBuffered => "\
            proxy_buffering on;\n\
            proxy_ignore_headers X-Accel-Buffering;\n"
            .to_string(),
        Setup::HaproxyShortTimeouts => unreachable!("not an nginx setup"),
    };
    let tmp = dir.join("tmp");
    let tmp = tmp.display();
    format!(
        "master_process off;\n\
         worker_processes 1;\n\
         error_log {log} warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
         access_log off;\n\
         client_body_temp_path {tmp}/body;\n\
         proxy_temp_path {tmp}/proxy;\n\
         fastcgi_temp_path {tmp}/fastcgi;\n\
         uwsgi_temp_path {tmp}/uwsgi;\n\
         scgi_temp_path {tmp}/scgi;\n\
         map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}\n\
         server {{\n\
         listen 127.0.0.1:{port};\n\
         location / {{\n\
         proxy_pass http://{upstream};\n\
         {location}\
         }}\n\
         }}\n\
         }}\n",
        log = dir.join("error.log").display(),
    )
}

/// HAProxy's configuration: HTTP mode, every idle timeout 5 s.
fn haproxy_config(port: u16, upstream: SocketAddr) -> String {
    format!(
        "global\n\
         \x20 maxconn 4096\n\
         defaults\n\
         \x20 mode http\n\
         \x20 timeout connect 5s\n\
         \x20 timeout client 5s\n\
         \x20 timeout server 5s\n\
         \x20 timeout tunnel 5s\n\
         frontend lifeline\n\
         \x20 bind 127.0.0.1:{port}\n\
         \x20 default_backend server\n\
         backend server\n\
         \x20 server s1 {upstream}\n"
    )
}
