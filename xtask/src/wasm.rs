//! `cargo xtask npm` and `cargo xtask demo`: the browser package and the demo (owned by the
//! sdk-wasm issue).

use crate::run::Result;
use std::path::PathBuf;

pub fn build_package() -> Result<PathBuf> {
    Err("the npm package build is not written yet".into())
}

pub fn demo() -> Result {
    Err("the demo is not written yet".into())
}
