//! `cargo xtask bench`: the native benchmark. Builds `lifeline-bench` (tests/src/bin/bench.rs) in
//! release mode and runs it pinned to one core with `taskset` when available, so that client and
//! server share a core (waking a thread on the other core costs tens of µs on the 2-core VM).
//! Prints `name sdk raw ratio` lines. Not part of `cargo xtask test`.

use crate::run::{cmd, have, root, status, Result};
use std::process::Command;

pub fn run(_args: &[String]) -> Result {
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
    if have("taskset") {
        status(
            Command::new("taskset")
                .args(["-c", "0", &bin])
                .current_dir(root()),
            "taskset",
            &["-c", "0", &bin],
        )
    } else {
        eprintln!("xtask: taskset not found; running unpinned");
        status(Command::new(&bin).current_dir(root()), &bin, &[])
    }
}
