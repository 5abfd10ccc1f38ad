//! Fuzz target: arbitrary bytes as every kind of frame or body the SDK and the server decode, and
//! as stream input to a live session. Any panic is a bug: bad input must become a typed error. A
//! server frame decodes the same through the native fast path and the general reader.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeline_core::protocol;
use lifeline_core::{Action, Config, Input, Session};
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Natively a server frame may take the fast path (frame_reader.rs): it must read every text
    // as the general reader does, to the error.
    assert_eq!(
        protocol::decode_server_frame(text),
        protocol::decode_server_frame_generally(text),
        "{text:?}"
    );
    let _ = protocol::decode_client_frame(text);
    let _ = protocol::decode_client_batch(text);
    let _ = protocol::decode_server_batch(text);
    let _ = protocol::decode_history(text);
    let _ = protocol::decode_http_error(text);

    // The same text arriving on a live WebSocket, after a valid hello.
    let mut config = Config::new("http://fuzz.test").unwrap();
    config.token = Some("t".into());
    let now = lifeline_core::Instant::from_micros(0);
    let mut session = Session::new(config, now);
    session.connect(now);
    let mut socket = None;
    while let Some(action) = session.poll_action() {
        if let Action::OpenSocket { socket: s, .. } = action {
            socket = Some(s);
        }
    }
    let socket = socket.expect("the session opens a socket");
    session.handle_input(now, Input::SocketOpened { socket });
    let hello = r#"{"type":"hello","v":1,"user":"u","heartbeat_ms":1000,"cursor":0,"resumed":true}"#;
    session.handle_input(now, Input::SocketText { socket, text: hello.into() });
    for line in text.split('\n') {
        session.handle_input(now, Input::SocketText { socket, text: line.into() });
    }
    let later = now + Duration::from_secs(1);
    session.handle_timeout(later);
    if let Some(t) = session.poll_timeout() {
        assert!(t > later);
    }
    while session.poll_action().is_some() {}
    while session.poll_event().is_some() {}
});
