//! The `lifeline-server` binary itself: starts in development mode with no other configuration,
//! serves, and shuts down cleanly on SIGTERM after telling streams to go away.

mod common;

use common::{within, MAX_SKIP, WAIT};
use lifeline_core::protocol::{decode_server_frame, ErrorCode, ServerFrame};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_lifeline-server");

#[tokio::test]
async fn help_explains_the_flags() {
    let out = Command::new(BIN).arg("--help").output().await.unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--listen",
        "LIFELINE_LISTEN",
        "--data-dir",
        "LIFELINE_DATA_DIR",
        "--memory",
        "--token-secret",
        "LIFELINE_TOKEN_SECRET",
        "--dev",
        "LIFELINE_DEV",
        "--dev-tokens",
        "--faults",
        "--admin-secret",
        "LIFELINE_ADMIN_SECRET",
        "--cors-origin",
        "LIFELINE_CORS_ORIGINS",
        "--max-token-ttl-secs",
        "--heartbeat-ms",
        "--resume-window",
        "--rate-per-sec",
        "--rate-burst",
        "--max-body-bytes",
        "--demo-dir",
        "--redis",
        "LIFELINE_REDIS_URL",
    ] {
        assert!(text.contains(needle), "--help mentions {needle}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn starts_in_dev_mode_without_a_secret_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // Only the port is overridden (0: any free port), so parallel test runs do not collide.
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env("LIFELINE_LISTEN", "127.0.0.1:0")
        .env("LIFELINE_DEV", "true")
        .env("LIFELINE_DEV_TOKENS", "true")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut warned = false;
    let base = within("the ready line", async {
        for i in 0.. {
            assert!(i < 1_000, "no ready line in the first 1000 log lines");
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("server exited early");
            warned |= line.contains("built-in token secret");
            if let Some(i) = line.find("url=") {
                return line[i + 4..].trim().to_string();
            }
        }
        unreachable!()
    })
    .await;
    assert!(warned, "the default secret is announced loudly");
    let http = common::http();
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let token: serde_json::Value = http
        .get(format!("{base}/v1/dev/token?user=alice"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let resp = http
        .get(format!("{base}/v1/sse?v=1&token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    use futures_util::StreamExt;
    let mut text = String::new();
    within("hello", async {
        for _ in 0..MAX_SKIP {
            if text.contains("\"hello\"") {
                return;
            }
            let chunk = body.next().await.unwrap().unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        panic!("no hello in {MAX_SKIP} chunks");
    })
    .await;

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    // The stream is told to go away, then ends.
    within("going_away", async {
        for _ in 0..MAX_SKIP {
            match body.next().await {
                Some(Ok(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return,
            }
        }
        panic!("the stream did not end within {MAX_SKIP} chunks");
    })
    .await;
    let going_away = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| decode_server_frame(d.trim()).unwrap())
        .any(|f| matches!(f, ServerFrame::Error(e) if e.code == ErrorCode::GoingAway));
    assert!(going_away, "{text}");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(dir.path().join("lifeline-data/lifeline.sqlite3").exists());
}
