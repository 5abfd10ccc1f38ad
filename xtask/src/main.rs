//! `cargo xtask`: the project's build automation — setting up a fresh machine, running every
//! test, building the npm package, starting the demo, running benchmarks and the fuzzer.
//!
//! Each subcommand lives in its own module; this file only dispatches. Nothing here is shipped.

mod bench;
mod fuzz;
mod run;
mod setup;
mod test;
mod wasm;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup          install what the project needs on a fresh machine (wasm32 target, wasm-bindgen-cli
                 at the version in Cargo.lock, Chromium, nginx and HAProxy, PostgreSQL, valgrind,
                 npm packages)
  test           run every test: fmt, clippy, the workspace tests, sdk-core on wasm32, the npm
                 package build and the browser tests
  demo           build the browser package and start the server with the demo at http://127.0.0.1:8787/
                 (add ?strategy=hybrid to the URL for the hybrid strategy)
  npm            build the npm package (@lifeline/client) into target/npm/lifeline-client
  bench [first-message]  run the native benchmark (SDK vs raw libraries, same server, same run),
                 or only the first-message timing; `bench browser`: the browser benchmark
                 (Chromium, @lifeline/client vs a raw browser WebSocket, tests/browser/bench.mjs)
  bench msgcost  the client's CPU time and instructions (callgrind) per message, SDK vs raw
                 tungstenite + serde_json
  bench storm|storm-cluster|fanout|fanout-cluster|throughput  scale benchmarks (bench/scale): reconnect storm after kill -9,
                 10,000 clients on one instance, messages/s on SQLite vs PostgreSQL (and Redis) instances
  fuzz [SECS] [TARGET]  run a fuzz target for SECS seconds (default 60; needs nightly + cargo-fuzz):
                 decode_frames (default) or json_differential (our JSON reader vs serde_json)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::all(),
        Some("test") => test::all(),
        Some("demo") => wasm::demo(),
        Some("npm") => wasm::build_package().map(|_| ()),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
