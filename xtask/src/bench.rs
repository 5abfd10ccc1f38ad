//! `cargo xtask bench`: the native benchmark (owned by the sdk-native issue).

use crate::run::Result;

pub fn run(_args: &[String]) -> Result {
    Err("the native benchmark is not written yet".into())
}
