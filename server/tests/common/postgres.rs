//! A real PostgreSQL for the test binaries that run against it: one server per test binary,
//! started on first use from `initdb` in a temp dir (as the `postgres` user: PostgreSQL refuses
//! to run as root) on a free loopback port, and one fresh database per server start (or per data
//! directory, so a test that restarts on the same directory finds its data again).
//!
//! The server runs under a shell that waits on a pipe from this process: when the test binary
//! exits, the pipe closes and the shell stops PostgreSQL by its PID.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long PostgreSQL may take to accept connections after it starts.
const READY: Duration = Duration::from_secs(30);

/// Whether this test binary runs the server on PostgreSQL (its crate name says so).
pub const ON_POSTGRES: bool = const_eq(env!("CARGO_CRATE_NAME").as_bytes(), b"on_postgres");

const fn const_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A running PostgreSQL of this test binary.
pub struct Pg {
    pub port: u16,
    bindir: PathBuf,
    _dir: tempfile::TempDir,
    /// Holds the pipe the watchdog shell reads; dropped only when the process exits.
    _watchdog: Mutex<Child>,
    next_db: AtomicU64,
    by_dir: Mutex<HashMap<PathBuf, String>>,
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The shared PostgreSQL, started on first use.
pub fn pg() -> &'static Pg {
    static PG: OnceLock<Pg> = OnceLock::new();
    PG.get_or_init(start)
}

fn start() -> Pg {
    let bindir = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .expect(
            "PostgreSQL 15 server binaries are needed: run `cargo xtask setup`, or \
             `apt-get install -y postgresql-15 libpq-dev` (libpq-dev puts pg_config on PATH)",
        );
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    run(
        Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path()),
        "chown of the PostgreSQL temp dir to postgres",
    );
    run(
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bindir.join("initdb"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data),
        "initdb",
    );
    let port = free_port();
    // The shell starts PostgreSQL; each line on its stdin restarts it (fast shutdown, start);
    // when stdin closes (this process exiting) it stops PostgreSQL by PID and removes the temp
    // dir (~180 MB: the `Pg` lives in a static, so its `TempDir` is never dropped).
    let script = format!(
        "start() {{ '{postgres}' -D '{data}' -p {port} -k '{sock}' -c listen_addresses=127.0.0.1 \
         -c fsync=off -c max_connections=300 >>'{log}' 2>&1 & pid=$!; }}; start; \
         while read _; do kill -INT $pid; wait $pid; start; done; kill -INT $pid; wait $pid; \
         rm -rf '{sock}'",
        postgres = bindir.join("postgres").display(),
        data = data.display(),
        sock = dir.path().display(),
        log = dir.path().join("postgres.log").display(),
    );
    let watchdog = Command::new("runuser")
        .args(["-u", "postgres", "--", "sh", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("starting postgres");
    let pg = Pg {
        port,
        bindir,
        _dir: dir,
        _watchdog: Mutex::new(watchdog),
        next_db: AtomicU64::new(0),
        by_dir: Mutex::new(HashMap::new()),
    };
    pg.until_ready(None);
    pg
}

impl Pg {
    /// The postmaster's PID from its pid file, once it wrote one.
    fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self._dir.path().join("data").join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Waits (bounded by [`READY`]) until a postmaster other than `not` accepts connections.
    fn until_ready(&self, not: Option<u32>) {
        let deadline = Instant::now() + READY;
        loop {
            let pid = self.postmaster_pid();
            let ready = pid.is_some()
                && pid != not
                && Command::new(self.bindir.join("pg_isready"))
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &self.port.to_string(),
                        "-U",
                        "postgres",
                    ])
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not accept connections within {READY:?}; log: {}",
                std::fs::read_to_string(self._dir.path().join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Restarts PostgreSQL (fast shutdown: every connection is cut) and waits until the new
    /// server accepts connections.
    pub fn restart(&self) {
        use std::io::Write;
        let old = self.postmaster_pid();
        {
            let mut watchdog = self._watchdog.lock().unwrap_or_else(|p| p.into_inner());
            let stdin = watchdog.stdin.as_mut().expect("watchdog stdin");
            stdin.write_all(b"restart\n").expect("asking for a restart");
            stdin.flush().expect("asking for a restart");
        }
        self.until_ready(old);
    }

    /// A new, empty database; returns its URL.
    pub fn new_database(&self) -> String {
        let name = format!("t{}", self.next_db.fetch_add(1, Ordering::SeqCst));
        run(
            Command::new(self.bindir.join("createdb"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .arg(&name),
            "createdb",
        );
        self.url(&name)
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The database for `data_dir`: the same one every time for a directory, a new one for none.
    pub fn database_for(&self, data_dir: Option<&Path>) -> String {
        match data_dir {
            None => self.new_database(),
            Some(dir) => {
                let mut by_dir = self.by_dir.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(url) = by_dir.get(dir) {
                    return url.clone();
                }
                let url = self.new_database();
                by_dir.insert(dir.to_path_buf(), url.clone());
                url
            }
        }
    }
}
