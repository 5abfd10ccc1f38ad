//! Abuse tests for authorization and secrets (issue 9, parts 1 and 2), against the real server on
//! loopback (and the real binary for the start-up refusals): cross-user reads on every transport
//! and endpoint, the admin API, token expiry on open streams, `exp` bounds, key rotation,
//! `Authorization` on every endpoint, CORS and the operator body limit.

mod common;

use common::*;
use lifeline_core::protocol::{decode_http_error, ClientFrame, ErrorCode, ServerFrame};
use lifeline_server::config::{TEST_ADMIN_SECRET, TEST_SECRET};
use lifeline_server::token::unix_now;
use lifeline_server::{make_token, mint, Claims, RunningServer, ServerConfig, TokenKey};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const BIN: &str = env!("CARGO_BIN_EXE_lifeline-server");

/// A token for `user` allowed only the conversations matching `convs`, with `ops` (all if None).
fn token_for(s: &RunningServer, user: &str, convs: &[&str], ops: Option<&[&str]>) -> String {
    s.issue_token_with(Claims {
        sub: user.into(),
        exp: unix_now() + 3600,
        kid: None,
        convs: convs.iter().map(|c| c.to_string()).collect(),
        ops: ops.map(|o| o.iter().map(|c| c.to_string()).collect()),
    })
}

fn is_forbidden(f: &ServerFrame, conv: &str) -> bool {
    matches!(f, ServerFrame::Error(e) if e.code == ErrorCode::Forbidden && e.conv.as_deref() == Some(conv))
}

fn conv_of(f: &ServerFrame) -> Option<&str> {
    match f {
        ServerFrame::Msg(m) => Some(&m.conv),
        ServerFrame::Presence { conv, .. } | ServerFrame::Typing { conv, .. } => Some(conv),
        ServerFrame::Subscribed { conv } | ServerFrame::Unsubscribed { conv } => Some(conv),
        _ => None,
    }
}

/// Whether `f` is the `msg` whose body is `marker`.
fn is_marker(f: &ServerFrame, marker: &str) -> bool {
    matches!(f, ServerFrame::Msg(m) if m.body == marker)
}

/// Frames on `ws` (heartbeats skipped) up to and including the `msg` whose body is `marker`.
async fn ws_until_marker(ws: &mut Ws, marker: &str) -> Vec<ServerFrame> {
    let mut seen = Vec::new();
    for _ in 0..MAX_SKIP {
        let f = ws_next(ws).await;
        let done = is_marker(&f, marker);
        seen.push(f);
        if done {
            return seen;
        }
    }
    panic!("no marker {marker} within {MAX_SKIP} frames: {seen:?}");
}

async fn history_status(s: &RunningServer, token: &str, conv: &str) -> u16 {
    http()
        .get(format!("{}/v1/history?v=1&conv={conv}", s.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn cross_user_reads_and_writes_are_refused_on_every_transport() {
    let s = server().await;
    let bob = token_for(&s, "bob", &["bob-*"], None);
    let alice = token_for(&s, "alice", &["alice-*"], None);
    join(&s, &bob, "bob-room").await;
    send_one(&s, &bob, "b1", "bob-room", "secret of bob").await;

    // Subscribe, send and typing in bob's conversation: forbidden, with the conv, on HTTP ...
    let answers = send_ok(
        &s,
        &alice,
        &[
            subscribe("bob-room"),
            send("a1", "bob-room", "intrusion"),
            ClientFrame::Typing {
                conv: "bob-room".into(),
            },
        ],
    )
    .await;
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert!(
        answers.iter().all(|f| is_forbidden(f, "bob-room")),
        "{answers:?}"
    );
    // ... and on WebSocket.
    let mut ws = ws_open(&s, &format!("token={alice}&cursor=0")).await;
    ws_send(&mut ws, &subscribe("bob-room")).await;
    assert!(is_forbidden(&ws_next(&mut ws).await, "bob-room"));
    ws_send(&mut ws, &send("a2", "bob-room", "intrusion")).await;
    assert!(is_forbidden(&ws_next(&mut ws).await, "bob-room"));
    ws_send(&mut ws, &subscribe("alice-room")).await;
    assert_eq!(
        ws_next(&mut ws).await,
        ServerFrame::Subscribed {
            conv: "alice-room".into()
        }
    );
    // History: 403.
    assert_eq!(history_status(&s, &alice, "bob-room").await, 403);

    // Replay from cursor 0 and live frames on every transport carry nothing of bob-room.
    send_one(&s, &bob, "b2", "bob-room", "more of bob").await;
    send_one(&s, &alice, "a3", "alice-room", "marker").await;
    let seen = ws_until_marker(&mut ws, "marker").await;
    assert!(
        seen.iter().all(|f| conv_of(f) != Some("bob-room")),
        "{seen:?}"
    );
    let mut sse = sse_connect(&s, &format!("token={alice}&cursor=0"), None).await;
    assert_eq!(sse.status, 200);
    assert!(matches!(sse.next_durable().await, ServerFrame::Hello(_)));
    match sse.next_durable().await {
        ServerFrame::Msg(m) => assert_eq!(m.body, "marker"),
        other => panic!("expected alice's own message, got {other:?}"),
    }
    let frames = poll_ok(&s, &format!("token={alice}&cursor=0&hello=1")).await;
    let msgs: Vec<_> = frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Msg(m) => Some(m.body.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(msgs, ["marker"], "{frames:?}");
}

#[tokio::test]
async fn stale_memberships_are_rechecked_and_ops_are_enforced() {
    let s = server().await;
    // Bob may join every conversation. Alice joined `shared` with a broad token, before her
    // application narrowed her tokens.
    let bob = token(&s, "bob");
    join(&s, &token(&s, "alice"), "shared").await;
    join(&s, &bob, "shared").await;
    send_one(&s, &bob, "b0", "shared", "before").await;
    let alice = token_for(&s, "alice", &["alice-*"], None);
    let mut ws = ws_open(&s, &format!("token={alice}&cursor=0")).await;
    join(&s, &alice, "alice-room").await;
    // Bob comes online, types and writes in `shared`: none of it may reach alice.
    let _bob_online = ws_open(&s, &format!("token={bob}")).await;
    send_ok(
        &s,
        &bob,
        &[ClientFrame::Typing {
            conv: "shared".into(),
        }],
    )
    .await;
    send_one(&s, &bob, "b1", "shared", "after").await;
    assert_eq!(history_status(&s, &alice, "shared").await, 403);
    let answers = send_ok(&s, &alice, &[send("a0", "shared", "x")]).await;
    assert!(is_forbidden(&answers[0], "shared"), "{answers:?}");
    send_one(&s, &alice, "a1", "alice-room", "marker").await;
    let seen = ws_until_marker(&mut ws, "marker").await;
    assert!(
        seen.iter().all(|f| conv_of(f) != Some("shared")),
        "{seen:?}"
    );

    // A token without `typing`, `presence` and `history`: those are refused or withheld.
    let carol = token_for(&s, "carol", &["alice-room"], Some(&["send"]));
    join(&s, &carol, "alice-room").await;
    let answers = send_ok(
        &s,
        &carol,
        &[ClientFrame::Typing {
            conv: "alice-room".into(),
        }],
    )
    .await;
    assert!(is_forbidden(&answers[0], "alice-room"), "{answers:?}");
    assert_eq!(history_status(&s, &carol, "alice-room").await, 403);
    let dave = token(&s, "dave");
    join(&s, &dave, "alice-room").await;
    let mut carol_ws = ws_open(&s, &format!("token={carol}")).await;
    // Dave comes online in alice-room while carol listens: carol may not see presence.
    let _dave_online = ws_open(&s, &format!("token={dave}")).await;
    send_ok(
        &s,
        &alice,
        &[ClientFrame::Typing {
            conv: "alice-room".into(),
        }],
    )
    .await;
    send_one(&s, &alice, "a2", "alice-room", "marker2").await;
    let seen = ws_until_marker(&mut carol_ws, "marker2").await;
    assert!(
        seen.iter()
            .all(|f| !matches!(f, ServerFrame::Presence { .. })),
        "{seen:?}"
    );
}

/// Presence costs one event per connect or join (issue 9, limits), and each receiving stream
/// still checks its own token: a join announcement reaches neither a stream whose token no longer
/// allows the conversation (a stale membership) nor one whose token lacks `presence`, whether the
/// stream is a member's or the joiner's own.
#[tokio::test]
async fn join_announcements_are_rechecked_against_each_streams_token() {
    let s = server().await;
    // Alice joined `shared` with a broad token; her current one allows `alice-*` only.
    join(&s, &token(&s, "alice"), "shared").await;
    let alice = token_for(&s, "alice", &["alice-*"], None);
    join(&s, &alice, "alice-room").await;
    let mut alice_ws = ws_open(&s, &format!("token={alice}")).await;
    // Carol may be in alice-room but may not see presence.
    let carol = token_for(&s, "carol", &["alice-room"], Some(&["send"]));
    join(&s, &carol, "alice-room").await;
    let mut carol_ws = ws_open(&s, &format!("token={carol}")).await;
    // Bob and dave are online and then join: one announcement each.
    let (bob, dave) = (token(&s, "bob"), token(&s, "dave"));
    let mut bob_ws = ws_open(&s, &format!("token={bob}")).await;
    let mut dave_ws = ws_open(&s, &format!("token={dave}")).await;
    ws_send(&mut bob_ws, &subscribe("shared")).await;
    ws_send(&mut dave_ws, &subscribe("alice-room")).await;
    // Carol joins again while dave is online: her own streams would list dave.
    ws_send(&mut carol_ws, &subscribe("alice-room")).await;
    // The announcements are made before the answers: once the joiners hear `subscribed`, every
    // stream has them in its queue, ahead of the marker.
    let mut carol_seen = Vec::new();
    for (ws, conv, seen) in [
        (&mut bob_ws, "shared", &mut Vec::new()),
        (&mut dave_ws, "alice-room", &mut Vec::new()),
        (&mut carol_ws, "alice-room", &mut carol_seen),
    ] {
        loop {
            let f = ws_next(ws).await;
            if f == (ServerFrame::Subscribed { conv: conv.into() }) {
                break;
            }
            seen.push(f);
            assert!(seen.len() < MAX_SKIP, "no subscribed: {seen:?}");
        }
    }
    // Presence is not ordered against stored messages: a stream whose first storage read comes
    // late (a loaded machine) replays a marker from storage ahead of the announcements still in
    // its live queue. So alice reads until she has both the first marker and dave's join (which
    // only the live queue carries: from then on her stream reads that queue), and then a second
    // marker, sent after that, comes through the queue behind every announcement.
    let dave_joined = |f: &ServerFrame| {
        matches!(f, ServerFrame::Presence { conv, user, online: true }
            if conv == "alice-room" && user == "dave")
    };
    send_one(&s, &dave, "d1", "alice-room", "marker").await;
    let mut seen = Vec::new();
    while !(seen.iter().any(dave_joined) && seen.iter().any(|f| is_marker(f, "marker"))) {
        seen.push(ws_next(&mut alice_ws).await);
        // Alice may see presence in alice-room: dave's join is announced to her (the check is
        // not simply "no presence at all").
        assert!(
            seen.len() < MAX_SKIP,
            "no marker or no join of dave: {seen:?}"
        );
    }
    send_one(&s, &dave, "d2", "alice-room", "marker-2").await;
    seen.extend(ws_until_marker(&mut alice_ws, "marker-2").await);
    assert!(
        seen.iter().all(|f| conv_of(f) != Some("shared")),
        "{seen:?}"
    );
    carol_seen.extend(ws_until_marker(&mut carol_ws, "marker-2").await);
    assert!(
        carol_seen
            .iter()
            .all(|f| !matches!(f, ServerFrame::Presence { .. })),
        "{carol_seen:?}"
    );
}

async fn admin(s: &RunningServer, method: reqwest::Method, path: &str, secret: &str) -> u16 {
    http()
        .request(
            method,
            format!("{}/v1/admin/conversations/{path}", s.base_url()),
        )
        .header("authorization", format!("Bearer {secret}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn admin_api_grants_and_revokes_membership_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..ServerConfig::for_tests()
    };
    let s = server_with(config.clone()).await;
    let bob = token(&s, "bob");
    let alice = token_for(&s, "alice", &["lobby"], None);
    join(&s, &bob, "private").await;
    join(&s, &bob, "lobby").await;
    join(&s, &alice, "lobby").await;

    // Wrong or missing admin secret: 401; nothing changes.
    let put = reqwest::Method::PUT;
    let wrong = "x".repeat(TEST_ADMIN_SECRET.len());
    assert_eq!(
        admin(&s, put.clone(), "private/members/alice", &wrong).await,
        401
    );
    assert_eq!(
        admin(&s, put.clone(), "private/members/alice", "").await,
        401
    );
    // An ordinary user token is not the admin secret either.
    assert_eq!(
        admin(&s, put.clone(), "private/members/alice", &alice).await,
        401
    );
    let answers = send_ok(&s, &alice, &[subscribe("private")]).await;
    assert!(is_forbidden(&answers[0], "private"), "{answers:?}");

    // Granted: subscribe works, and it is durable.
    assert_eq!(
        admin(&s, put.clone(), "private/members/alice", TEST_ADMIN_SECRET).await,
        200
    );
    s.shutdown().await;
    let s = server_with(config).await;
    join(&s, &alice, "private").await;
    let mut ws = ws_open(&s, &format!("token={alice}")).await;
    send_one(&s, &bob, "b1", "private", "for alice").await;
    match ws_next_durable(&mut ws).await {
        ServerFrame::Msg(m) => assert_eq!(m.body, "for alice"),
        other => panic!("expected the private message, got {other:?}"),
    }
    assert_eq!(history_status(&s, &alice, "private").await, 200);

    // Revoked: the live stream is told at once and gets nothing more of `private`.
    let delete = reqwest::Method::DELETE;
    assert_eq!(
        admin(&s, delete, "private/members/alice", TEST_ADMIN_SECRET).await,
        200
    );
    assert!(is_forbidden(&ws_next_durable(&mut ws).await, "private"));
    send_one(&s, &bob, "b2", "private", "not for alice").await;
    send_one(&s, &bob, "b3", "lobby", "marker").await;
    let seen = ws_until_marker(&mut ws, "marker").await;
    assert!(
        seen.iter().all(|f| conv_of(f) != Some("private")),
        "{seen:?}"
    );
    assert_eq!(history_status(&s, &alice, "private").await, 403);
    let answers = send_ok(&s, &alice, &[subscribe("private")]).await;
    assert!(is_forbidden(&answers[0], "private"), "{answers:?}");
    s.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_ends_open_websocket_sse_and_poll_streams() {
    let s = server().await;
    let short = s.issue_token("alice", Duration::from_secs(2));
    let mut ws = ws_open(&s, &format!("token={short}")).await;
    let mut sse = sse_connect(&s, &format!("token={short}"), None).await;
    assert!(matches!(sse.next_durable().await, ServerFrame::Hello(_)));
    let poll = tokio::spawn({
        let url = format!("{}/v1/poll?v=1&token={short}&wait_ms=30000", s.base_url());
        async move {
            let resp = http().get(url).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    });
    // WebSocket: `token_expired`, then close 4401 (within WAIT, i.e. long before a 30 s poll).
    match ws_next_durable(&mut ws).await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::TokenExpired),
        other => panic!("expected token_expired, got {other:?}"),
    }
    match ws_next_any(&mut ws, true).await {
        WsEvent::Closed(code) => assert_eq!(code, Some(lifeline_server::CLOSE_UNAUTHORIZED)),
        other => panic!("expected close 4401, got {other:?}"),
    }
    // SSE: `token_expired`, then the stream ends.
    match sse.next_durable().await {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::TokenExpired),
        other => panic!("expected token_expired, got {other:?}"),
    }
    assert!(sse.next_event().await.is_none(), "the SSE stream ends");
    // Poll: 401 token_expired.
    let (status, body) = within("the pending poll", poll).await.unwrap();
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        decode_http_error(&body).unwrap().code,
        ErrorCode::TokenExpired
    );
}

#[tokio::test]
async fn far_future_expiry_is_refused() {
    let s = server().await;
    for exp in [u64::MAX, unix_now() + 25 * 3600] {
        let tok = make_token(TEST_SECRET, "alice", exp);
        let (status, body) = poll(&s, &format!("token={tok}&hello=1")).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(
            decode_http_error(&body).unwrap().code,
            ErrorCode::Unauthorized
        );
        let (status, _) = post_frames(&s, &tok, &[subscribe("a")]).await;
        assert_eq!(status, 401);
        let mut ws = ws_connect(&s, &format!("token={tok}")).await;
        match ws_next(&mut ws).await {
            ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::Unauthorized),
            other => panic!("expected unauthorized, got {other:?}"),
        }
    }
    // Within the bound (24 h by default): accepted.
    let tok = make_token(TEST_SECRET, "alice", unix_now() + 23 * 3600);
    let (status, body) = poll(&s, &format!("token={tok}&hello=1")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn rotation_keeps_old_keys_until_removed() {
    let old = TokenKey::new("k1", "old-secret-0123456789abcdef0123456789").unwrap();
    let new = TokenKey::new("k2", "new-secret-0123456789abcdef0123456789").unwrap();
    let config = |keys: Vec<TokenKey>| ServerConfig {
        token_keys: keys,
        ..ServerConfig::for_tests()
    };
    let old_token = mint(&old, &Claims::everything("alice", unix_now() + 600));
    // Rotating: the new key signs, the old one still verifies.
    let s = server_with(config(vec![new.clone(), old.clone()])).await;
    join(&s, &old_token, "general").await;
    let new_token = s.issue_token("alice", Duration::from_secs(600));
    join(&s, &new_token, "general").await;
    s.shutdown().await;
    // Rotated: the old key is removed, its tokens are refused.
    let s = server_with(config(vec![new])).await;
    let (status, body) = post_frames(&s, &old_token, &[subscribe("general")]).await;
    assert_eq!(status, 401, "{body}");
    join(&s, &new_token, "general").await;
}

#[tokio::test]
async fn authorization_header_in_any_case_on_every_endpoint() {
    let s = server().await;
    let tok = token(&s, "alice");
    join(&s, &tok, "general").await;
    for scheme in ["BEARER", "bearer", "Bearer", "bEaReR"] {
        let auth = format!("{scheme} {tok}");
        // WebSocket.
        let mut req = format!("{}/v1/ws?v=1", s.ws_base_url())
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("authorization", auth.parse().unwrap());
        let (mut ws, _) = within("ws", tokio_tungstenite::connect_async(req))
            .await
            .unwrap();
        assert!(
            matches!(ws_next(&mut ws).await, ServerFrame::Hello(_)),
            "{scheme} on /v1/ws"
        );
        // SSE, poll, history, send.
        let base = s.base_url();
        for (method, url) in [
            ("GET", format!("{base}/v1/sse?v=1")),
            ("GET", format!("{base}/v1/poll?v=1&hello=1")),
            ("GET", format!("{base}/v1/history?v=1&conv=general")),
            ("POST", format!("{base}/v1/send?v=1")),
        ] {
            let req = if method == "POST" {
                http()
                    .post(&url)
                    .body(r#"{"frames":[{"type":"subscribe","conv":"general"}]}"#)
            } else {
                http().get(&url)
            };
            let resp = within("request", req.header("authorization", &auth).send())
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{scheme} on {url}");
        }
    }
}

#[tokio::test]
async fn cors_allows_only_listed_origins_outside_dev_mode() {
    let s = server_with(ServerConfig {
        dev: false,
        dev_tokens: false,
        faults: false,
        cors_origins: vec!["https://chat.example".into()],
        ..ServerConfig::for_tests()
    })
    .await;
    let acao = |origin: &'static str| {
        let url = format!("{}/healthz", s.base_url());
        async move {
            http()
                .get(url)
                .header("origin", origin)
                .send()
                .await
                .unwrap()
                .headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap().to_string())
        }
    };
    assert_eq!(acao("https://evil.example").await, None);
    assert_eq!(
        acao("https://chat.example").await.as_deref(),
        Some("https://chat.example")
    );
    // No allow-list: no CORS at all.
    let s2 = server_with(ServerConfig {
        dev: false,
        dev_tokens: false,
        faults: false,
        ..ServerConfig::for_tests()
    })
    .await;
    let resp = http()
        .get(format!("{}/healthz", s2.base_url()))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn an_8_mb_body_to_the_fault_endpoint_is_refused_with_413() {
    let s = server().await;
    let body = vec![b' '; 8 * 1024 * 1024];
    let resp = within(
        "POST /v1/faults",
        http()
            .post(format!("{}/v1/faults", s.base_url()))
            .header("content-type", "application/json")
            .body(body)
            .send(),
    )
    .await;
    // The server may answer and close before the client finished sending: a 413, or a reset.
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), 413);
        let text = resp.text().await.unwrap();
        assert_eq!(decode_http_error(&text).unwrap().code, ErrorCode::TooLarge);
    }
    // Small bodies still work.
    let resp = http()
        .post(format!("{}/v1/faults", s.base_url()))
        .body(r#"{"refuse_ws":false}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn config_debug_output_hides_secrets() {
    let text = format!("{:?}", ServerConfig::for_tests());
    assert!(!text.contains(TEST_SECRET), "{text}");
    assert!(!text.contains(TEST_ADMIN_SECRET), "{text}");
}

/// Runs the binary with `args` and `env`; it must exit (not serve) with a non-zero status and
/// say why on stderr.
async fn refused(args: &[&str], env: &[(&str, &str)], why: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("LIFELINE_TOKEN_SECRET")
        .env_remove("LIFELINE_DEV")
        .args(["--memory"])
        .args(args)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = within(&format!("the binary to refuse {args:?}"), cmd.output())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} started");
    assert!(stderr.contains(why), "{args:?}: {stderr}");
}

/// Arguments, environment variables, and what stderr must say.
type RefusalCase<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[tokio::test]
async fn the_binary_refuses_to_start_without_a_real_secret() {
    let long = "s".repeat(32);
    let short = "s".repeat(31);
    let dev_secret = lifeline_server::config::DEFAULT_DEV_SECRET;
    let cases: Vec<RefusalCase> = vec![
        // No secret, on 0.0.0.0 and on loopback.
        (vec!["--listen", "0.0.0.0:0"], vec![], "no token secret"),
        (vec!["--listen", "127.0.0.1:0"], vec![], "no token secret"),
        // Empty and short secrets, by flag and by variable.
        (
            vec!["--listen", "127.0.0.1:0", "--token-secret", ""],
            vec![],
            "at least 32",
        ),
        (
            vec!["--listen", "127.0.0.1:0", "--token-secret", &short],
            vec![],
            "at least 32",
        ),
        (
            vec!["--listen", "127.0.0.1:0"],
            vec![("LIFELINE_TOKEN_SECRET", "")],
            "",
        ),
        (
            vec!["--listen", "127.0.0.1:0"],
            vec![("LIFELINE_TOKEN_SECRET", "k1:tooshort")],
            "at least 32",
        ),
        // The public development secret, given explicitly, outside dev mode.
        (
            vec!["--listen", "127.0.0.1:0", "--token-secret", dev_secret],
            vec![],
            "development secret",
        ),
        // Development mode off loopback.
        (vec!["--dev", "--listen", "0.0.0.0:0"], vec![], "loopback"),
        // Dev-only endpoints without dev mode.
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--token-secret",
                &long,
                "--dev-tokens",
            ],
            vec![],
            "--dev",
        ),
        // A short admin secret.
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--token-secret",
                &long,
                "--admin-secret",
                "x",
            ],
            vec![],
            "admin secret",
        ),
    ];
    for (args, env, why) in cases {
        refused(&args, &env, why).await;
    }
}
