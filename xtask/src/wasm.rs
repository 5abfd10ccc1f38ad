//! `cargo xtask npm` and `cargo xtask demo`: the browser package `@lifeline/client` and the demo.
//!
//! The package is built in five steps — cargo (profile `wasm-release`, with LTO, the standard library
//! rebuilt with panics as traps), `wasm-bindgen --target web`,
//! npm's `wasm-opt -Oz` (binaryen from tests/browser/node_modules: Debian's wasm-opt 108 writes
//! modules Chromium rejects), then the hand-written wrapper, types and README from sdk-wasm/js, and
//! last esbuild, which bundles the wrapper, the driver and the glue into one minified `lifeline.js`
//! (the readable sources stay in sdk-wasm/js) — and its gzip size is checked against the budget:
//! over it, the build fails. Nothing here is shipped.

use crate::run::{cmd, root, status, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The budget for the `.wasm` and its JavaScript (glue and wrapper), gzip -9.
const BUDGET_BYTES: u64 = 40 * 1024;

const WASM_NAME: &str = "lifeline_wasm";

/// Builds target/npm/lifeline-client (with the hybrid strategy, lifeline-wasm's default feature)
/// and returns its path.
pub fn build_package() -> Result<PathBuf> {
    // On a fresh machine `cargo xtask demo` must need no other step: install what is missing.
    crate::setup::wasm_target()?;
    crate::setup::rust_src()?;
    crate::setup::wasm_bindgen_cli()?;
    crate::setup::npm_packages()?;
    let wasm_opt = root().join("tests/browser/node_modules/.bin/wasm-opt");
    // esbuild comes with Vite (the bundler check's devDependency).
    let esbuild = root().join("tests/browser/node_modules/.bin/esbuild");
    for (tool, from) in [(&wasm_opt, "npm's binaryen"), (&esbuild, "npm's vite")] {
        if !tool.exists() {
            return Err(format!(
                "{} is missing ({from}); run `cargo xtask setup` or `npm ci` in tests/browser",
                tool.display()
            ));
        }
    }
    // `cargo rustc --crate-type cdylib`: with the manifest's two crate types (cdylib + rlib) cargo
    // leaves LTO off, which makes the module a third larger.
    //
    // The standard library is rebuilt with the module (`-Z build-std`) so that a panic becomes a
    // bare trap (`-C panic=immediate-abort`): no panic messages, locations or formatting machinery
    // in the `.wasm` (-4.2 KB gzip, docs/BENCHMARKS.md). Both are unstable options of the same
    // stable toolchain, opened with RUSTC_BOOTSTRAP for this one build; its own target folder keeps
    // these flags from invalidating the workspace's other wasm32 builds.
    let args = [
        "rustc",
        "-p",
        "lifeline-wasm",
        "--lib",
        "--crate-type",
        "cdylib",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "wasm-release",
        "--target-dir",
        "target/wasm-size",
        "-Z",
        "build-std=std,panic_abort",
    ];
    status(
        Command::new("cargo")
            .args(args)
            .current_dir(root())
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTFLAGS", "-Zunstable-options -Cpanic=immediate-abort"),
        "cargo",
        &args,
    )?;
    let built = root().join(format!(
        "target/wasm-size/wasm32-unknown-unknown/wasm-release/{WASM_NAME}.wasm"
    ));
    let out = root().join("target/npm/lifeline-client");
    if out.exists() {
        fs::remove_dir_all(&out).map_err(|e| format!("cannot clear {}: {e}", out.display()))?;
    }
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let out_str = out.to_string_lossy().into_owned();
    let built_str = built.to_string_lossy().into_owned();
    cmd(
        "wasm-bindgen",
        &[
            "--target",
            "web",
            "--no-typescript",
            "--out-name",
            WASM_NAME,
            "--out-dir",
            &out_str,
            &built_str,
        ],
    )?;
    let wasm = out.join(format!("{WASM_NAME}_bg.wasm"));
    let wasm_str = wasm.to_string_lossy().into_owned();
    let args = [
        "-Oz",
        // Repeat -Oz until it stops shrinking; the module's own memory starts zeroed and its low
        // 1 KiB is never addressed (the far end of the 1 MiB stack; data lies above it): together
        // about -0.4 KB gzip.
        "--converge",
        "--zero-filled-memory",
        "--low-memory-unused",
        "--enable-bulk-memory",
        "--enable-sign-ext",
        "--enable-mutable-globals",
        "--enable-nontrapping-float-to-int",
        "--enable-reference-types",
        "--enable-multivalue",
        "--strip-debug",
        "--strip-producers",
        // The `target_features` section only tells linkers what the module was built with; the
        // browser ignores it (-0.1 KB gzip).
        "--strip-target-features",
        wasm_str.as_str(),
        "-o",
        wasm_str.as_str(),
    ];
    status(Command::new(&wasm_opt).args(args), "wasm-opt", &args)?;

    // The wrapper and the driver are bundled with the wasm-bindgen glue into one minified ES
    // module, `lifeline.js` (the readable sources stay in sdk-wasm/js); the glue still finds the
    // `.wasm` beside it through `import.meta.url`.
    let js = root().join("sdk-wasm/js");
    let staging = root().join("target/npm/staging");
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .map_err(|e| format!("cannot clear {}: {e}", staging.display()))?;
    }
    fs::create_dir_all(&staging).map_err(|e| format!("cannot create staging: {e}"))?;
    for file in ["lifeline.js", "driver.js"] {
        fs::copy(js.join(file), staging.join(file))
            .map_err(|e| format!("cannot copy sdk-wasm/js/{file}: {e}"))?;
    }
    let glue = format!("{WASM_NAME}.js");
    fs::rename(out.join(&glue), staging.join(&glue))
        .map_err(|e| format!("cannot move {glue}: {e}"))?;
    for file in ["lifeline.d.ts", "README.md"] {
        fs::copy(js.join(file), out.join(file))
            .map_err(|e| format!("cannot copy sdk-wasm/js/{file}: {e}"))?;
    }
    fs::write(out.join("package.json"), package_json())
        .map_err(|e| format!("cannot write package.json: {e}"))?;
    let entry = staging.join("lifeline.js").to_string_lossy().into_owned();
    let bundle = out.join("lifeline.js").to_string_lossy().into_owned();
    let args = [
        entry.as_str(),
        "--bundle",
        "--minify",
        "--format=esm",
        "--log-level=warning",
        &format!("--outfile={bundle}"),
    ];
    status(Command::new(&esbuild).args(args), "esbuild", &args)?;

    let counted = [format!("{WASM_NAME}_bg.wasm"), "lifeline.js".to_string()];
    let mut total = 0;
    eprintln!("xtask: @lifeline/client in {}", out.display());
    for name in &counted {
        let path = out.join(name);
        let raw = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let gz = gzip_size(&path)?;
        total += gz;
        eprintln!("xtask:   {name:<24} {raw:>8} bytes, {gz:>6} bytes gzip -9");
    }
    eprintln!(
        "xtask:   .wasm + JS, gzip -9: {total} bytes ({:.1} KB; budget {} KB)",
        total as f64 / 1024.0,
        BUDGET_BYTES / 1024
    );
    if total > BUDGET_BYTES {
        // A package over budget is a failed build (and so a failed test command).
        return Err(format!(
            "@lifeline/client is over its budget by {} bytes ({total} > {BUDGET_BYTES} gzip -9); \
             see docs/BENCHMARKS.md, \"Browser bundle\", for what weighs what",
            total - BUDGET_BYTES
        ));
    }
    Ok(out)
}

fn gzip_size(path: &Path) -> Result<u64> {
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run gzip: {e}"))?;
    if !out.status.success() {
        return Err(format!("gzip failed on {}", path.display()));
    }
    Ok(out.stdout.len() as u64)
}

fn package_json() -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        r#"{{
  "name": "@lifeline/client",
  "version": "{version}",
  "description": "Real-time messaging client: WebSocket, Server-Sent Events and long polling with resume, exactly-once delivery and automatic fallback, on a Rust core compiled to WebAssembly.",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "./lifeline.js",
  "module": "./lifeline.js",
  "types": "./lifeline.d.ts",
  "exports": {{
    ".": {{
      "types": "./lifeline.d.ts",
      "import": "./lifeline.js"
    }},
    "./{WASM_NAME}_bg.wasm": "./{WASM_NAME}_bg.wasm"
  }},
  "files": [
    "lifeline.js",
    "lifeline.d.ts",
    "{WASM_NAME}_bg.wasm",
    "README.md"
  ],
  "sideEffects": false
}}
"#
    )
}

/// Copies the package into js-demo/pkg (gitignored) and starts the server with the demo.
pub fn demo() -> Result {
    let package = build_package()?;
    let pkg = root().join("js-demo/pkg");
    if pkg.exists() {
        fs::remove_dir_all(&pkg).map_err(|e| format!("cannot clear js-demo/pkg: {e}"))?;
    }
    fs::create_dir_all(&pkg).map_err(|e| format!("cannot create js-demo/pkg: {e}"))?;
    for entry in fs::read_dir(&package).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        fs::copy(entry.path(), pkg.join(entry.file_name())).map_err(|e| e.to_string())?;
    }
    let listen = std::env::var("LIFELINE_LISTEN").unwrap_or_else(|_| "127.0.0.1:8787".into());
    eprintln!(
        "xtask: open http://{listen}/ (or http://{listen}/?strategy=hybrid; Ctrl-C stops the server)"
    );
    cmd(
        "cargo",
        &[
            "run",
            "-p",
            "lifeline-server",
            "--",
            "--listen",
            &listen,
            "--memory",
            "--dev",
            "--dev-tokens",
            "--faults",
            "--demo-dir",
            "js-demo",
        ],
    )
}
