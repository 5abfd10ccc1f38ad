//! A terminal chat client on the `lifeline` crate: prints the conversation and the connection
//! state, and sends every line typed on standard input.
//!
//! ```text
//! cargo run -p lifeline-server -- --dev --dev-tokens --memory &
//! TOKEN=$(curl -s 'http://127.0.0.1:8787/v1/dev/token?user=alice' | sed 's/.*"token":"\([^"]*\)".*/\1/')
//! cargo run -p lifeline --example chat -- http://127.0.0.1:8787 "$TOKEN" general
//! ```
//!
//! Only the example's I/O lives here; everything about staying connected is the library's.

use futures_util::StreamExt;
use lifeline::{Client, Event, State};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(token)) = (args.next(), args.next()) else {
        eprintln!("usage: chat URL TOKEN [CONVERSATION]");
        std::process::exit(2);
    };
    let conv = args.next().unwrap_or_else(|| "general".to_string());

    let client = Client::builder(url).token(token).build()?;
    let mut events = client.events();
    client.connect();

    // Print what happens, while the main task reads the keyboard.
    let printer = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                Event::Message(m) => println!("[{}] {}: {}", m.conv, m.from, m.body),
                Event::StateChanged { to, cause, .. } => match to {
                    State::Connected { transport, .. } => println!("* connected over {transport}"),
                    State::Failed { error } => {
                        println!("* failed: {error}");
                        break;
                    }
                    other => println!("* {} ({cause})", other.name()),
                },
                Event::Discontinuity {
                    last_seen,
                    resumed_after,
                } => {
                    println!("* missed messages {last_seen}..{resumed_after}: see history")
                }
                Event::Typing { user, .. } => println!("* {user} is typing"),
                Event::Lagged { missed } => println!("* {missed} events skipped: see history"),
                _ => {}
            }
        }
    });

    client.subscribe(&conv).await?;
    let history = client.history(&conv, None, 10).await?;
    for m in history.messages {
        println!("[{}] {}: {} (earlier)", m.conv, m.from, m.body);
    }

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        // Do not block the keyboard on the acknowledgement.
        let ack = client.send(&conv, &line);
        tokio::spawn(async move {
            if let Err(e) = ack.await {
                eprintln!("* not sent: {e}");
            }
        });
    }
    client.close().await;
    printer.abort();
    Ok(())
}
