//! `cargo xtask setup`: installs, idempotently, what a fresh machine of this kind lacks. Every step
//! checks first and skips what is already there; a step that cannot be done stops with a message
//! that names the command to run by hand.

use crate::run::{cmd, have, output, root, Result};

/// Everything the test command needs.
pub fn all() -> Result {
    wasm_target()?;
    rust_src()?;
    wasm_bindgen_cli()?;
    apt_packages()?;
    middleboxes()?;
    faketime()?;
    postgres()?;
    redis()?;
    valgrind()?;
    npm_packages()?;
    Ok(())
}

/// `rustup target add wasm32-unknown-unknown`.
pub fn wasm_target() -> Result {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        return Ok(());
    }
    cmd("rustup", &["target", "add", "wasm32-unknown-unknown"])
        .map_err(|e| format!("{e}; run `rustup target add wasm32-unknown-unknown`"))
}

/// `rustup component add rust-src`: the standard library's source, which the npm build recompiles
/// for size (see `wasm::build_package`).
pub fn rust_src() -> Result {
    let installed = output("rustup", &["component", "list", "--installed"]).unwrap_or_default();
    if installed.lines().any(|l| l.trim() == "rust-src") {
        return Ok(());
    }
    cmd("rustup", &["component", "add", "rust-src"])
        .map_err(|e| format!("{e}; run `rustup component add rust-src`"))
}

/// The version of a package pinned in Cargo.lock.
pub fn locked_version(package: &str) -> Option<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{package}\"") {
            let version = lines.next()?.trim();
            return version
                .strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'))
                .map(str::to_string);
        }
    }
    None
}

/// `cargo install wasm-bindgen-cli` at the exact version of the `wasm-bindgen` crate in Cargo.lock
/// (without `--locked`, which fails here). Skipped when that version is installed.
pub fn wasm_bindgen_cli() -> Result {
    let Some(version) = locked_version("wasm-bindgen") else {
        return Err("wasm-bindgen is not in Cargo.lock; run `cargo generate-lockfile`".into());
    };
    let installed = output("wasm-bindgen", &["--version"]).unwrap_or_default();
    if installed.split_whitespace().nth(1) == Some(version.as_str()) {
        return Ok(());
    }
    cmd(
        "cargo",
        &[
            "install",
            "wasm-bindgen-cli",
            "--version",
            &format!("={version}"),
        ],
    )
    .map_err(|e| format!("{e}; run `cargo install wasm-bindgen-cli --version ={version}`"))
}

/// Debian's Chromium and its driver, for the browser tests.
pub fn apt_packages() -> Result {
    if have("chromium") && have("chromedriver") {
        return Ok(());
    }
    apt_install("Chromium", &["chromium", "chromium-driver"], "")
}

/// Debian's nginx and HAProxy, which the middlebox tests (tests/tests/middleboxes.rs) start in
/// front of the server.
pub fn middleboxes() -> Result {
    if have("nginx") && have("haproxy") {
        return Ok(());
    }
    apt_install("nginx or HAProxy", &["nginx-light", "haproxy"], "")
}

/// Debian's libfaketime, which tests/tests/cluster_lb.rs preloads into server instances to set
/// their clocks off by seconds.
pub fn faketime() -> Result {
    // The `faketime` package brings the library (its dependency `libfaketime`).
    if have("faketime") {
        return Ok(());
    }
    apt_install("libfaketime", &["faketime"], "")
}

/// valgrind, whose callgrind counts the instructions per message of `cargo xtask bench msgcost`.
pub fn valgrind() -> Result {
    if have("valgrind") {
        return Ok(());
    }
    apt_install("valgrind", &["valgrind"], "")
}

/// PostgreSQL's server binaries (`initdb`, `postgres`, found through `pg_config --bindir`), which
/// the PostgreSQL and cluster tests start in temp dirs (server/tests/on_postgres.rs,
/// cluster_storage.rs, tests/tests/cluster.rs), and the `postgres` user they run as.
pub fn postgres() -> Result {
    let bindir = output("pg_config", &["--bindir"]).unwrap_or_default();
    let bindir = std::path::Path::new(bindir.trim());
    let user = output("id", &["-u", "postgres"]).is_some();
    if bindir.join("initdb").exists() && bindir.join("postgres").exists() && user {
        return Ok(());
    }
    apt_install(
        "PostgreSQL's server binaries",
        &["postgresql-15", "libpq-dev"],
        " (libpq-dev: pg_config)",
    )
}

/// Redis's server binary (`redis-server`), which the cluster-mode tests start in temp dirs on
/// free loopback ports (server/tests/cluster_redis.rs). Debian's package also enables a system
/// service on port 6379; the tests never use it.
pub fn redis() -> Result {
    if have("redis-server") {
        return Ok(());
    }
    apt_install("Redis's server", &["redis-server"], "")
}

/// `apt-get install` of Debian `packages` that provide `what`, without a question (CI has no
/// standard input); a failure, or a machine without apt, names the command to run by hand
/// (`note` follows it).
fn apt_install(what: &str, packages: &[&str], note: &str) -> Result {
    let by_hand = format!("run `apt-get install {}` as root{note}", packages.join(" "));
    if !have("apt-get") {
        return Err(format!("{what} is missing; {by_hand}"));
    }
    std::env::set_var("DEBIAN_FRONTEND", "noninteractive");
    cmd("apt-get", &["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend_from_slice(packages);
    cmd("apt-get", &args).map_err(|e| format!("{e}; {by_hand}"))
}

/// `npm ci` for the browser tests and the packaging tools (package-lock.json is committed).
pub fn npm_packages() -> Result {
    let dir = root().join("tests/browser");
    if !dir.join("package.json").exists() {
        return Ok(());
    }
    if dir.join("node_modules/.package-lock.json").exists() {
        return Ok(());
    }
    if !have("npm") {
        return Err("npm is missing; install Node.js 20 with npm".into());
    }
    crate::run::status(
        std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir),
        "npm",
        &["ci"],
    )
}
