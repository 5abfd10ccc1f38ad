//! `cargo xtask fuzz [SECS]`: a bounded run of the frame-decoder fuzz target in sdk-core/fuzz on the
//! nightly toolchain with cargo-fuzz.

use crate::run::{have, root, status, Result};
use std::process::Command;

pub fn run(args: &[String]) -> Result {
    let seconds: u64 = match args.first() {
        Some(s) => s
            .parse()
            .map_err(|_| format!("`{s}` is not a number of seconds"))?,
        None => 60,
    };
    if !have("cargo-fuzz") {
        return Err("cargo-fuzz is missing; install it: `cargo install cargo-fuzz`".into());
    }
    let max_time = format!("-max_total_time={seconds}");
    let args = ["+nightly", "fuzz", "run", "decode_frames", "--", &max_time];
    status(
        Command::new("cargo")
            .args(args)
            .current_dir(root().join("sdk-core")),
        "cargo",
        &args,
    )
}
