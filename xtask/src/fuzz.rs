//! `cargo xtask fuzz [SECS] [TARGET]`: a bounded run of a fuzz target in sdk-core/fuzz on the
//! nightly toolchain with cargo-fuzz: `decode_frames` (the default: no input panics) or
//! `json_differential` (the JSON reader agrees with serde_json). A bounded, seeded run of the
//! differential comparison on stable is part of `cargo xtask test` (sdk-core's json_differential).

use crate::run::{have, root, status, Result};
use std::process::Command;

pub fn run(args: &[String]) -> Result {
    let seconds: u64 = match args.first() {
        Some(s) => s
            .parse()
            .map_err(|_| format!("`{s}` is not a number of seconds"))?,
        None => 60,
    };
    let target = match args.get(1).map(String::as_str) {
        None => "decode_frames",
        Some(t @ ("decode_frames" | "json_differential")) => t,
        Some(other) => {
            return Err(format!(
                "unknown fuzz target `{other}`: decode_frames or json_differential"
            ))
        }
    };
    if !have("cargo-fuzz") {
        return Err("cargo-fuzz is missing; install it: `cargo install cargo-fuzz`".into());
    }
    let max_time = format!("-max_total_time={seconds}");
    let args = ["+nightly", "fuzz", "run", target, "--", &max_time];
    status(
        Command::new("cargo")
            .args(args)
            .current_dir(root().join("sdk-core")),
        "cargo",
        &args,
    )
}
