//! `lifeline`: a command-line Lifeline client for people debugging their server. `listen` prints
//! one JSON line per event, `send` sends one message and waits for its acknowledgement, `history`
//! prints a page.
//!
//! Argument parsing and exit codes live here, JSON formatting in `json.rs`; the connection logic
//! is the `lifeline` library's (which stays free of this binary's dependencies).

mod json;

use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use lifeline::{Client, Event, HistoryError, SendError, State, Strategy, TransportKind};
use std::process::ExitCode;
use std::time::Duration;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (listen: stopped with Ctrl-C)
  1  other error
  2  bad arguments
  3  the connection failed for good (credentials refused, protocol version, retry limit)
  4  the server refused the request (send rejected, history 4xx/5xx)
  5  timed out (no acknowledgement or answer within --timeout)";

/// A Lifeline client for the command line.
#[derive(Parser, Debug)]
#[command(name = "lifeline", version, after_help = EXIT_CODES)]
struct Args {
    /// The server's base URL.
    #[arg(
        long,
        env = "LIFELINE_URL",
        default_value = "http://127.0.0.1:8787",
        global = true
    )]
    url: String,
    /// The bearer token.
    #[arg(long, env = "LIFELINE_TOKEN", global = true)]
    token: Option<String>,
    /// Allowed transports, best first: any of websocket, sse, long-poll (comma separated).
    #[arg(long, value_delimiter = ',', value_parser = parse_transport, global = true)]
    transports: Vec<TransportKind>,
    /// How the transports are used: `single` (default; one carries everything) or `hybrid`
    /// (messages on SSE or long polling, presence and typing on a WebSocket of their own).
    #[arg(long, value_parser = parse_strategy, global = true)]
    strategy: Option<Strategy>,
    /// Give up after this many seconds (send: waiting for the ack; history: for the page).
    #[arg(long, default_value_t = 30, global = true)]
    timeout: u64,
    /// Also trust the CA certificates in this PEM file (a server with a private CA). The
    /// platform's roots are trusted too, and SSL_CERT_FILE / SSL_CERT_DIR are honoured.
    #[arg(long, value_name = "PATH", global = true)]
    ca_file: Option<std::path::PathBuf>,
    /// On a WebSocket, ping after this many milliseconds without hearing anything (default 7000).
    #[arg(long, value_name = "MS", global = true)]
    ping_interval_ms: Option<u64>,
    /// How long the server may hold a long poll, in milliseconds (default 10000).
    #[arg(long, value_name = "MS", global = true)]
    poll_wait_ms: Option<u64>,
    /// A transport that has not opened within this many milliseconds has failed (default 10000).
    #[arg(long, value_name = "MS", global = true)]
    connect_timeout_ms: Option<u64>,
    /// Start the next transport in parallel when the first has not said hello after this many
    /// milliseconds (default 3000).
    #[arg(long, value_name = "MS", global = true)]
    race_delay_ms: Option<u64>,
    /// A transport that opened but sent no first frame within this many milliseconds has failed
    /// (default 5000).
    #[arg(long, value_name = "MS", global = true)]
    first_frame_timeout_ms: Option<u64>,
    /// A live transport silent for this many milliseconds is dead (default 15000).
    #[arg(long, value_name = "MS", global = true)]
    liveness_timeout_ms: Option<u64>,
    /// Log the client's spans to stderr (RUST_LOG overrides the level).
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Subscribe and print one JSON line per event until interrupted.
    Listen {
        /// Conversations to join (repeat the flag for several).
        #[arg(long = "conv", short, required = true)]
        convs: Vec<String>,
    },
    /// Send one message and wait for the server's acknowledgement.
    Send {
        #[arg(long, short)]
        conv: String,
        /// The message body.
        body: String,
    },
    /// Print a page of a conversation's history.
    History {
        #[arg(long, short)]
        conv: String,
        /// Only messages with a sequence number below this.
        #[arg(long)]
        before: Option<u64>,
        /// How many messages (1 to 100).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

fn parse_strategy(s: &str) -> Result<Strategy, String> {
    match s {
        "single" => Ok(Strategy::Single),
        "hybrid" => Ok(Strategy::Hybrid),
        _ => Err(format!("unknown strategy `{s}` (single, hybrid)")),
    }
}

fn parse_transport(s: &str) -> Result<TransportKind, String> {
    TransportKind::parse(s)
        .ok_or_else(|| format!("unknown transport `{s}` (websocket, sse, long-poll)"))
}

enum Failure {
    Other(String),
    Fatal(String),
    Refused(String),
    Timeout(String),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Other(_) => 1,
            Failure::Fatal(_) => 3,
            Failure::Refused(_) => 4,
            Failure::Timeout(_) => 5,
        }
    }

    fn message(&self) -> &str {
        match self {
            Failure::Other(m) | Failure::Fatal(m) | Failure::Refused(m) | Failure::Timeout(m) => m,
        }
    }
}

fn print(value: serde_json::Value) {
    println!("{value}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.verbose {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "lifeline=debug".into()),
            )
            .init();
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("lifeline: {}", failure.message());
            ExitCode::from(failure.code())
        }
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let timeout = Duration::from_secs(args.timeout.max(1));
    let mut builder = Client::builder(&args.url).send_timeout(timeout);
    if let Some(token) = &args.token {
        builder = builder.token(token);
    }
    if !args.transports.is_empty() {
        builder = builder.transports(args.transports.clone());
    }
    if let Some(strategy) = args.strategy {
        builder = builder.strategy(strategy);
    }
    if let Some(path) = &args.ca_file {
        builder = builder.ca_file(path);
    }
    let ms = Duration::from_millis;
    if let Some(v) = args.ping_interval_ms {
        builder = builder.ping_interval(ms(v));
    }
    if let Some(v) = args.poll_wait_ms {
        builder = builder.poll_wait(ms(v));
    }
    if let Some(v) = args.connect_timeout_ms {
        builder = builder.connect_timeout(ms(v));
    }
    if let Some(v) = args.race_delay_ms {
        builder = builder.race_after(ms(v));
    }
    if let Some(v) = args.first_frame_timeout_ms {
        builder = builder.first_frame_timeout(ms(v));
    }
    if let Some(v) = args.liveness_timeout_ms {
        builder = builder.liveness_timeout(ms(v));
    }
    let client = builder.build().map_err(|e| Failure::Other(e.to_string()))?;
    let result = match args.command {
        Command::Listen { convs } => listen(&client, &convs).await,
        Command::Send { conv, body } => send(&client, &conv, &body, timeout).await,
        Command::History {
            conv,
            before,
            limit,
        } => history(&client, &conv, before, limit, timeout).await,
    };
    client.close().await;
    result
}

/// Fails when the client reaches `failed`; never returns otherwise.
async fn until_failed(client: &Client) -> Failure {
    let mut state = client.watch_state();
    let failed = state
        .wait_for(|s| matches!(s, State::Failed { .. }))
        .await
        .map(|s| s.clone());
    match failed {
        Ok(State::Failed { error }) => Failure::Fatal(format!("connection failed: {error}")),
        _ => Failure::Other("the client stopped".into()),
    }
}

async fn listen(client: &Client, convs: &[String]) -> Result<(), Failure> {
    let mut events = client.events();
    client.connect();
    for conv in convs {
        // Resolves when the server confirms; events print meanwhile.
        let c = client.clone();
        let conv = conv.clone();
        tokio::spawn(async move {
            if let Err(e) = c.subscribe(&conv).await {
                eprintln!("lifeline: subscribe {conv}: {e}");
            }
        });
    }
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(event) => {
                    print(json::event(&event));
                    if let Event::StateChanged { to: State::Failed { error }, .. } = &event {
                        return Err(Failure::Fatal(format!("connection failed: {error}")));
                    }
                }
                None => return Err(Failure::Other("the client stopped".into())),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn send(client: &Client, conv: &str, body: &str, timeout: Duration) -> Result<(), Failure> {
    client.connect();
    let ack = client.send(conv, body);
    let result = tokio::select! {
        r = tokio::time::timeout(timeout, ack) => r,
        f = until_failed(client) => return Err(f),
    };
    match result {
        Ok(Ok(ack)) => {
            print(serde_json::json!({"type": "ack", "conv": conv, "id": ack.id.0, "seq": ack.seq}));
            Ok(())
        }
        Ok(Err(SendError::Timeout)) | Err(_) => Err(Failure::Timeout(format!(
            "no acknowledgement within {timeout:?}"
        ))),
        Ok(Err(e @ SendError::Rejected { .. })) => Err(Failure::Refused(e.to_string())),
        Ok(Err(e)) => match client.state() {
            State::Failed { error } => Err(Failure::Fatal(format!("connection failed: {error}"))),
            _ => Err(Failure::Other(e.to_string())),
        },
    }
}

async fn history(
    client: &Client,
    conv: &str,
    before: Option<u64>,
    limit: u32,
    timeout: Duration,
) -> Result<(), Failure> {
    match tokio::time::timeout(timeout, client.history(conv, before, limit)).await {
        Ok(Ok(page)) => {
            print(json::page(&page));
            Ok(())
        }
        Ok(Err(e @ HistoryError::Server { .. })) => Err(Failure::Refused(e.to_string())),
        Ok(Err(e)) => Err(Failure::Other(e.to_string())),
        Err(_) => Err(Failure::Timeout(format!("no answer within {timeout:?}"))),
    }
}
