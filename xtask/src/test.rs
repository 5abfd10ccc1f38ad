//! `cargo xtask test`: every check the project has, in the order CI runs them. It installs what
//! is missing first (see `setup`), so that it passes on a fresh machine.

use crate::run::{cmd, Result};

pub fn all() -> Result {
    crate::setup::wasm_target()?;
    cmd("cargo", &["fmt", "--all", "--", "--check"])?;
    cmd("cargo", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    cmd("cargo", &["test", "--workspace"])?;
    cmd(
        "cargo",
        &["build", "-p", "lifeline-core", "--target", "wasm32-unknown-unknown"],
    )?;
    Ok(())
}
