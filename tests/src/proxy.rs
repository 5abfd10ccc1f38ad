//! A small TCP fault proxy on loopback, between the clients and the server. It can reset
//! connections, add delay, black-hole traffic (new connections at connect, or live ones
//! mid-stream), and refuse a WebSocket upgrade with an HTTP status the way a misconfigured
//! reverse proxy does. The upstream can be switched (a server restarted on another port).
//!
//! It looks at the first request head of each connection only to tell WebSocket upgrades from
//! plain HTTP (SSE, long polls, sends); after that it copies bytes. No protocol knowledge beyond
//! that lives here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// The `Retry-After` (seconds) the proxy sends with a refusal by 429 or 503.
pub const RETRY_AFTER_SECS: u64 = 1;

/// What the proxy does with a new connection of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Forward it.
    Pass,
    /// Accept it, then never forward or answer anything (a silent middlebox).
    Blackhole,
    /// Answer the request with this HTTP status and close (a proxy that refuses it).
    Refuse(u16),
    /// Reset the connection at once.
    Reset,
}

#[derive(Debug)]
struct Settings {
    upstream: SocketAddr,
    websocket: Policy,
    http: Policy,
    delay: Duration,
}

/// One proxied connection's switches.
#[derive(Default)]
struct Conn {
    blackholed: AtomicBool,
    reset: Notify,
    upgrade: bool,
}

#[derive(Default)]
struct Conns {
    live: Mutex<Vec<Arc<Conn>>>,
}

/// The proxy; it stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    settings: Arc<Mutex<Settings>>,
    conns: Arc<Conns>,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.reset_all();
    }
}

/// Which live connections a mid-stream fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    All,
    WebSockets,
    Http,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let settings = Arc::new(Mutex::new(Settings {
            upstream,
            websocket: Policy::Pass,
            http: Policy::Pass,
            delay: Duration::ZERO,
        }));
        let conns = Arc::new(Conns::default());
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&settings),
            Arc::clone(&conns),
            Arc::clone(&accepted),
        ));
        FaultProxy {
            addr,
            settings,
            conns,
            accepted,
            task,
        }
    }

    /// `http://<proxy>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections the proxy has accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Settings) -> R) -> R {
        f(&mut self.settings.lock().unwrap())
    }

    /// What to do with new WebSocket upgrade requests.
    pub fn websocket(&self, policy: Policy) {
        self.with(|s| s.websocket = policy);
    }

    /// What to do with new plain HTTP connections (SSE, long polls, sends, history).
    pub fn http(&self, policy: Policy) {
        self.with(|s| s.http = policy);
    }

    /// Delay added to every chunk forwarded from now on, in both directions.
    pub fn delay(&self, delay: Duration) {
        self.with(|s| s.delay = delay);
    }

    /// Forward new connections to another address.
    pub fn upstream(&self, addr: SocketAddr) {
        self.with(|s| s.upstream = addr);
    }

    fn live(&self, which: Which) -> Vec<Arc<Conn>> {
        let mut live = self.conns.live.lock().unwrap();
        live.retain(|c| Arc::strong_count(c) > 1);
        live.iter()
            .filter(|c| match which {
                Which::All => true,
                Which::WebSockets => c.upgrade,
                Which::Http => !c.upgrade,
            })
            .cloned()
            .collect()
    }

    /// Resets every live connection (TCP RST to both sides).
    pub fn reset_all(&self) {
        for c in self.live(Which::All) {
            c.reset.notify_one();
        }
    }

    /// Live connections stop passing bytes in both directions, but stay open. Returns how many.
    pub fn blackhole_live(&self, which: Which) -> usize {
        let live = self.live(which);
        for c in &live {
            c.blackholed.store(true, Ordering::SeqCst);
        }
        live.len()
    }

    /// How many proxied connections are open.
    pub fn open(&self, which: Which) -> usize {
        self.live(which).len()
    }
}

async fn accept_loop(
    listener: TcpListener,
    settings: Arc<Mutex<Settings>>,
    conns: Arc<Conns>,
    accepted: Arc<AtomicUsize>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        let settings = Arc::clone(&settings);
        let conns = Arc::clone(&conns);
        tokio::spawn(async move {
            let _ = handle(client, settings, conns).await;
        });
    }
}

/// Reads the first request head (bounded), so that upgrades can be told apart.
async fn read_head(client: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > 64 * 1024 {
            break;
        }
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

fn is_upgrade(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    text.lines()
        .any(|l| l.starts_with("upgrade:") && l.contains("websocket"))
}

fn reason(status: u16) -> &'static str {
    match status {
        403 => "Forbidden",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

async fn handle(
    mut client: TcpStream,
    settings: Arc<Mutex<Settings>>,
    conns: Arc<Conns>,
) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let head = read_head(&mut client).await?;
    let upgrade = is_upgrade(&head);
    let (policy, upstream) = {
        let s = settings.lock().unwrap();
        (if upgrade { s.websocket } else { s.http }, s.upstream)
    };
    let conn = Arc::new(Conn {
        upgrade,
        ..Conn::default()
    });
    conns.live.lock().unwrap().push(Arc::clone(&conn));
    match policy {
        Policy::Pass => {}
        Policy::Reset => {
            client.set_zero_linger()?;
            return Ok(());
        }
        Policy::Refuse(status) => {
            let body = format!("{status} refused by the test proxy\n");
            let retry_after = if matches!(status, 429 | 503) {
                format!("Retry-After: {RETRY_AFTER_SECS}\r\n")
            } else {
                String::new()
            };
            let answer = format!(
                "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\n{retry_after}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                reason(status),
                body.len()
            );
            client.write_all(answer.as_bytes()).await?;
            client.shutdown().await?;
            return Ok(());
        }
        Policy::Blackhole => {
            // Hold the connection open and silent until reset (or the peer gives up).
            let mut sink = [0u8; 1024];
            tokio::select! {
                () = conn.reset.notified() => { client.set_zero_linger()?; }
                _ = async { while client.read(&mut sink).await.map(|n| n > 0).unwrap_or(false) {} } => {}
            }
            return Ok(());
        }
    }
    let mut server = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(_) => {
            // The server is down: what a client sees is a reset.
            client.set_zero_linger()?;
            return Ok(());
        }
    };
    server.set_nodelay(true)?;
    server.write_all(&head).await?;
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let up = pipe(&mut cr, &mut sw, &conn, &settings);
    let down = pipe(&mut sr, &mut cw, &conn, &settings);
    let reset = tokio::select! {
        _ = async { tokio::join!(up, down) } => false,
        () = conn.reset.notified() => true,
    };
    if reset {
        client.set_zero_linger()?;
        server.set_zero_linger()?;
    }
    Ok(())
}

async fn pipe<R, W>(
    from: &mut R,
    to: &mut W,
    conn: &Conn,
    settings: &Mutex<Settings>,
) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            if !conn.blackholed.load(Ordering::SeqCst) {
                let _ = to.shutdown().await;
            }
            return Ok(());
        }
        if conn.blackholed.load(Ordering::SeqCst) {
            continue;
        }
        let delay = settings.lock().unwrap().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        to.write_all(&buf[..n]).await?;
    }
}
