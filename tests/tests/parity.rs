//! The native half of the parity suite: every fault script of tests/parity/ played against the
//! native SDK and a real server (see `lifeline_tests::parity`). Each writes its raw trace to
//! target/parity/<name>.native.json, which tests/browser/parity.test.mjs compares with the trace
//! of the same script in Chromium. Here, each script's waits must all be met.

use lifeline_tests::parity;

macro_rules! scenarios {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let trace = parity::run($name).await;
            assert!(!trace["states"].as_array().expect("states").is_empty());
        }
    )*};
}

scenarios! {
    ladder => "ladder",
    blackhole_at_connect => "blackhole-at-connect",
    drop_mid_stream => "drop-mid-stream",
    token_refresh => "token-refresh",
    rate_limit => "rate-limit",
    server_restart => "server-restart",
    offline_online => "offline-online",
    frozen_page => "frozen-page",
    hidden_page => "hidden-page",
}

/// Every script in tests/parity/ has a test above (a new file without one would silently not run
/// natively, and its browser comparison would fail for want of a native trace).
#[test]
fn every_script_is_played() {
    let listed = [
        "ladder",
        "blackhole-at-connect",
        "drop-mid-stream",
        "token-refresh",
        "rate-limit",
        "server-restart",
        "offline-online",
        "frozen-page",
        "hidden-page",
    ];
    let mut found: Vec<String> = std::fs::read_dir(parity::root().join("tests/parity"))
        .expect("tests/parity")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json") && f != "client.json")
        .map(|f| f.trim_end_matches(".json").to_string())
        .collect();
    found.sort();
    let mut listed: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed);
}
