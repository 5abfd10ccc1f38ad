//! `lifeline-test-server ADDR DATA_DIR HEARTBEAT_MS`: the real server in a process of its own, so
//! that a test can kill it with SIGKILL (no `going_away`, no flush) and start it again on the
//! same address with the same storage. Test configuration otherwise (`ServerConfig::for_tests`,
//! whose secret `tests/src/child_server.rs` signs tokens with). Prints the address it listens on,
//! then runs until killed or until its standard input closes. With `LIFELINE_POSTGRES` set it
//! stores in that PostgreSQL database instead of `DATA_DIR` (several instances may share it), and
//! with `LIFELINE_REDIS_URL` set too it runs in cluster mode with that Redis.

use lifeline_server::ServerConfig;
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, data_dir, heartbeat_ms] = args.as_slice() else {
        eprintln!("usage: lifeline-test-server ADDR DATA_DIR HEARTBEAT_MS");
        std::process::exit(2);
    };
    let config = ServerConfig {
        listen: listen.parse().expect("ADDR is host:port"),
        data_dir: Some(data_dir.into()),
        heartbeat_ms: heartbeat_ms.parse().expect("HEARTBEAT_MS is a number"),
        postgres: std::env::var("LIFELINE_POSTGRES")
            .ok()
            .map(lifeline_server::Secret),
        redis: std::env::var("LIFELINE_REDIS_URL")
            .ok()
            .map(lifeline_server::Secret),
        ..ServerConfig::for_tests()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let server = lifeline_server::start(config).await.expect("server starts");
        println!("{}", server.addr());
        std::io::stdout().flush().expect("stdout");
        // Until the parent closes our standard input (or kills us).
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin()
                .read_line(&mut line)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        })
        .await
        .expect("stdin watcher");
        server.shutdown().await;
    });
}
