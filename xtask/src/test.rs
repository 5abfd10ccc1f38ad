//! `cargo xtask test`: every check the project has, in the order CI runs them. It installs what
//! is missing first (see `setup`), so that it passes on a fresh machine.
//!
//! After the native checks come the browser ones: lifeline-wasm linted for wasm32, lifeline-core's
//! tests compiled for wasm32 and run in headless Chromium (wasm-bindgen-test-runner + chromedriver),
//! the npm package build, and the Node browser tests in tests/browser (among them the browser half
//! of the parity suite, after its native half). A missing browser or
//! node_modules fails with the command that installs it; nothing is skipped.

use crate::run::{cmd, have, root, status, Result};
use std::process::Command;
use std::time::Instant;

pub fn all() -> Result {
    crate::setup::wasm_target()?;
    cmd("cargo", &["fmt", "--all", "--", "--check"])?;
    cmd(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The middlebox tests start Debian's nginx and HAProxy.
    crate::setup::middleboxes()?;
    // The load-balancer scenario runs instances with skewed clocks under libfaketime.
    crate::setup::faketime()?;
    // The cluster-mode tests start Debian's redis-server.
    crate::setup::redis()?;
    cmd("cargo", &["test", "--workspace"])?;
    // The API docs must build without a broken link: an app is written from them.
    status(
        Command::new("cargo")
            .args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings")
            .current_dir(root()),
        "cargo",
        &["doc", "--workspace", "--no-deps"],
    )?;
    cmd(
        "cargo",
        &[
            "build",
            "-p",
            "lifeline-core",
            "--target",
            "wasm32-unknown-unknown",
        ],
    )?;
    browser()
}

/// The wasm and browser steps.
fn browser() -> Result {
    let started = Instant::now();
    cmd(
        "cargo",
        &[
            "clippy",
            "-p",
            "lifeline-wasm",
            "--target",
            "wasm32-unknown-unknown",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    crate::setup::wasm_bindgen_cli()?;
    crate::setup::npm_packages()?;
    // A fresh machine has no Chromium: install Debian's (CI runs as root, like the sessions).
    crate::setup::apt_packages()?;
    let chromedriver =
        std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    if !std::path::Path::new(&chromedriver).exists() || !have("chromium") {
        return Err(
            "Chromium and chromedriver are needed for the browser tests; run \
             `apt-get install chromium chromium-driver` (as root) or `cargo xtask setup`"
                .into(),
        );
    }

    // lifeline-core's tests in a real browser, and the `.wasm`'s JSON reader (the browser's
    // `JSON.parse`) against the core's. (Never `cargo test -q`: it breaks the runner.)
    let core = [
        "test",
        "-p",
        "lifeline-core",
        "--target",
        "wasm32-unknown-unknown",
    ];
    let reader = [
        "test",
        "-p",
        "lifeline-wasm",
        "--target",
        "wasm32-unknown-unknown",
        "--test",
        "browser_json",
    ];
    for args in [&core[..], &reader[..]] {
        status(
            Command::new("cargo")
                .args(args)
                .current_dir(root())
                .env(
                    "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
                    "wasm-bindgen-test-runner",
                )
                .env("CHROMEDRIVER", &chromedriver)
                .env("WASM_BINDGEN_TEST_TIMEOUT", "300"),
            "cargo",
            args,
        )?;
    }

    crate::wasm::build_package()?;
    cmd("cargo", &["build", "-p", "lifeline-server"])?;
    // The native half of the parity suite writes the traces tests/browser/parity.test.mjs
    // compares with (again here, so that they come from this very build).
    cmd(
        "cargo",
        &["test", "-p", "lifeline-tests", "--test", "parity"],
    )?;
    let dir = root().join("tests/browser");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot read tests/browser: {e}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".test.mjs"))
        .collect();
    files.sort();
    let mut args = vec!["--test".to_string(), "--test-concurrency=1".to_string()];
    args.extend(files);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    status(
        Command::new("node").args(&args).current_dir(&dir),
        "node",
        &args,
    )?;
    eprintln!(
        "xtask: wasm and browser steps passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
