//! The benchmark's side of its client processes ([`crate::worker`]): starts them, merges their
//! report lines into one channel, waits for all of them to be ready, asks them to check what
//! their clients received, and stops them by closing their standard input (then by PID).

use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// One report line of a client process.
#[derive(Debug)]
pub enum Report {
    Ready { failed: usize },
    Up { client: usize, at_us: u64 },
    Msg { body: String, at_us: u64 },
    Lagged { client: usize, missed: u64 },
    Check(CheckTotals),
}

/// What the client processes found when asked to check their messages.
#[derive(Debug, Default, Clone, Copy)]
pub struct CheckTotals {
    pub clients_ok: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub reordered: usize,
    /// The longest a process waited for messages still on their way.
    pub waited_ms: u64,
}

/// The client processes of one run.
pub struct Crowd {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    reports: mpsc::UnboundedReceiver<Report>,
    pub clients: usize,
}

impl Drop for Crowd {
    fn drop(&mut self) {
        self.stdins.clear();
        for child in &mut self.children {
            let _ = child.start_kill();
        }
    }
}

fn parse(line: &str) -> Option<Report> {
    let mut words = line.split(' ');
    let kind = words.next()?;
    let mut num = || words.next()?.parse::<u64>().ok();
    Some(match kind {
        "ready" => Report::Ready {
            failed: num()? as usize,
        },
        "up" => Report::Up {
            client: num()? as usize,
            at_us: num()?,
        },
        "lagged" => Report::Lagged {
            client: num()? as usize,
            missed: num()?,
        },
        "check" => Report::Check(CheckTotals {
            clients_ok: num()? as usize,
            lost: num()? as usize,
            duplicated: num()? as usize,
            reordered: num()? as usize,
            waited_ms: num()?,
        }),
        "msg" => {
            let mut words = line.split(' ').skip(1);
            let _client = words.next()?;
            Report::Msg {
                body: words.next()?.to_string(),
                at_us: words.next()?.parse().ok()?,
            }
        }
        _ => return None,
    })
}

impl Crowd {
    /// Starts `clients` clients in `procs` processes (process `p` on `urls[p % len]`), all
    /// subscribing to `conv`, reporting every `every`th message of each sender (0: none).
    pub fn spawn(urls: &[String], clients: usize, procs: usize, conv: &str, every: u64) -> Crowd {
        let me = std::env::current_exe().expect("own path");
        Crowd::spawn_from(&me, urls, clients, procs, conv, every)
    }

    /// [`Crowd::spawn`] with client processes of the `lifeline-scale` binary at `bin`: another
    /// build's SDK, to compare client policies in one run.
    pub fn spawn_from(
        me: &std::path::Path,
        urls: &[String],
        clients: usize,
        procs: usize,
        conv: &str,
        every: u64,
    ) -> Crowd {
        let (tx, reports) = mpsc::unbounded_channel();
        let mut children = Vec::new();
        let mut stdins = Vec::new();
        let per_proc = clients.div_ceil(procs.max(1));
        let mut first = 0;
        let mut p = 0;
        while first < clients {
            let count = per_proc.min(clients - first);
            let url = &urls[p % urls.len()];
            let mut child = Command::new(me)
                .args(["clients", url, &first.to_string(), &count.to_string(), conv])
                .arg(every.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .expect("client process starts");
            stdins.push(child.stdin.take().expect("stdin"));
            let stdout = child.stdout.take().expect("stdout");
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(report) = parse(&line) {
                        if tx.send(report).is_err() {
                            return;
                        }
                    }
                }
            });
            children.push(child);
            first += count;
            p += 1;
        }
        Crowd {
            children,
            stdins,
            reports,
            clients,
        }
    }

    /// How many client processes run.
    pub fn processes(&self) -> usize {
        self.children.len()
    }

    /// The next report, or `None` at `deadline`.
    pub async fn next(&mut self, deadline: Instant) -> Option<Report> {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, self.reports.recv())
            .await
            .ok()
            .flatten()
    }

    /// Asks every process to check messages `0..n` of each of `senders` senders; the totals
    /// (other reports go to `seen`), or `None` at `deadline`.
    pub async fn check(
        &mut self,
        n: u64,
        senders: usize,
        deadline: Instant,
        mut seen: impl FnMut(&Report),
    ) -> Option<CheckTotals> {
        for stdin in &mut self.stdins {
            stdin
                .write_all(format!("check {n} {senders}\n").as_bytes())
                .await
                .ok()?;
            stdin.flush().await.ok()?;
        }
        let mut totals = CheckTotals::default();
        let mut answers = 0;
        while answers < self.children.len() {
            match self.next(deadline).await? {
                Report::Check(c) => {
                    answers += 1;
                    totals.clients_ok += c.clients_ok;
                    totals.lost += c.lost;
                    totals.duplicated += c.duplicated;
                    totals.reordered += c.reordered;
                    totals.waited_ms = totals.waited_ms.max(c.waited_ms);
                }
                other => seen(&other),
            }
        }
        Some(totals)
    }

    /// Closes the processes' standard input and waits (bounded) for them to exit.
    pub async fn stop(mut self) {
        self.stdins.clear();
        for child in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.start_kill();
            }
        }
    }
}
