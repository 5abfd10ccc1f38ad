//! Fuzz target: the hand-written JSON reader against serde_json (refusing repeated member names,
//! as its derived structs do) on the same bytes. Any disagreement — one accepts and the other
//! refuses, or they read different values — is a failure. The bounded run of the same comparison
//! in `cargo xtask test` is sdk-core/tests/json_differential.rs.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/reference/mod.rs"]
mod reference;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(disagreement) = reference::agree(text) {
        panic!("the readers disagree: {disagreement}");
    }
});
