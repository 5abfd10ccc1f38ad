//! `cargo xtask bench`: the native benchmark. Builds `lifeline-bench` (tests/src/bin/bench.rs) in
//! release mode and runs it pinned to one core with `taskset` when available, so that client and
//! server share a core (waking a thread on the other core costs tens of µs on the 2-core VM).
//! Prints `name sdk raw ratio` lines; arguments go to the benchmark (`cargo xtask bench
//! first-message`; `cargo xtask bench server-mem` measures the server's memory under stalled
//! readers instead). `cargo xtask bench browser` runs the browser benchmark instead
//! (tests/browser/bench.mjs: Chromium, the release server binary, the npm package). Not part of
//! `cargo xtask test`.
//!
//! `cargo xtask bench msgcost` runs the per-message cost benchmark instead (bench/msgcost: the
//! client's CPU time, then its instructions counted by callgrind, per message, SDK next to raw
//! tungstenite + serde_json, frames from memory).
//!
//! `cargo xtask bench storm|storm-cluster|fanout|throughput [ARGS]` runs the scale benchmarks instead
//! (bench/scale: native SDK clients in several processes against the release `lifeline-server`
//! binary; unpinned, the server and the client processes share the machine's cores).

use crate::run::{cmd, have, root, status, Result};
use std::process::Command;

pub fn run(args: &[String]) -> Result {
    if args.first().map(String::as_str) == Some("browser") {
        return browser();
    }
    if args.first().map(String::as_str) == Some("msgcost") {
        return msgcost();
    }
    if let Some("storm" | "storm-cluster" | "fanout" | "fanout-cluster" | "throughput") =
        args.first().map(String::as_str)
    {
        return scale(args);
    }
    cmd(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "lifeline-tests",
            "--bin",
            "lifeline-bench",
        ],
    )?;
    let bin = root().join("target/release/lifeline-bench");
    let bin = bin.to_string_lossy().into_owned();
    // The benchmark's own arguments (a mode such as `first-message` or `server-mem`) are passed
    // on.
    let mode: Vec<&str> = args.iter().map(String::as_str).collect();
    if have("taskset") {
        let mut pinned = vec!["-c", "0", bin.as_str()];
        pinned.extend(&mode);
        status(
            Command::new("taskset").args(&pinned).current_dir(root()),
            "taskset",
            &pinned,
        )
    } else {
        eprintln!("xtask: taskset not found; running unpinned");
        status(
            Command::new(&bin).args(&mode).current_dir(root()),
            &bin,
            &mode,
        )
    }
}

/// The browser benchmark: builds the package and the release server, then runs bench.mjs.
fn browser() -> Result {
    crate::setup::npm_packages()?;
    crate::wasm::build_package()?;
    cmd("cargo", &["build", "--release", "-p", "lifeline-server"])?;
    let server = root().join("target/release/lifeline-server");
    status(
        Command::new("node")
            .arg("bench.mjs")
            .env("LIFELINE_SERVER_BIN", &server)
            .current_dir(root().join("tests/browser")),
        "node",
        &["bench.mjs"],
    )
}

/// The per-message cost benchmark, pinned to one core (the second: xtask itself may run on the
/// first).
fn msgcost() -> Result {
    cmd("cargo", &["build", "--release", "-p", "lifeline-msgcost"])?;
    let bin = root().join("target/release/lifeline-msgcost");
    let bin = bin.to_string_lossy().into_owned();
    if !have("taskset") {
        return Err(
            "taskset is missing (it pins the benchmark to one core); install it: \
                    `apt-get install util-linux`"
                .into(),
        );
    }
    if !have("valgrind") {
        return Err(
            "valgrind is missing (its callgrind counts the instructions per message); install it: \
                    `apt-get install valgrind` (or `cargo xtask setup`)"
                .into(),
        );
    }
    for measure in ["cpu", "callgrind"] {
        let pinned = ["-c", "1", bin.as_str(), measure];
        status(
            Command::new("taskset").args(pinned).current_dir(root()),
            "taskset",
            &pinned,
        )?;
    }
    Ok(())
}

/// The storm and scale benchmarks: the release server binary and `lifeline-scale`, which starts
/// the server (and PostgreSQL for `throughput`) and its client processes itself.
fn scale(args: &[String]) -> Result {
    cmd(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "lifeline-server",
            "-p",
            "lifeline-scale",
        ],
    )?;
    let bin = root().join("target/release/lifeline-scale");
    let bin = bin.to_string_lossy().into_owned();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    status(
        Command::new(&bin).args(&args).current_dir(root()),
        &bin,
        &args,
    )
}
