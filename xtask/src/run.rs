//! Small helpers to run commands from the workspace root and report failures with the command
//! line. No subcommand logic lives here.

use std::path::PathBuf;
use std::process::Command;

pub type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root (the parent of this crate's folder).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs `program args…` in the workspace root, inheriting output; fails if it exits non-zero.
pub fn cmd(program: &str, args: &[&str]) -> Result {
    status(
        Command::new(program).args(args).current_dir(root()),
        program,
        args,
    )
}

/// Runs a prepared command; fails if it exits non-zero.
pub fn status(command: &mut Command, program: &str, args: &[&str]) -> Result {
    eprintln!("xtask: $ {program} {}", args.join(" "));
    let status = command
        .status()
        .map_err(|e| format!("could not start `{program}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

/// Runs a command and returns its standard output, or `None` if it cannot start or fails.
pub fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether a program is on the PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
