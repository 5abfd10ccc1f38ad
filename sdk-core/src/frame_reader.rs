//! The native fast path for reading one server frame: members are pulled from the text straight
//! into the frame's fields ([`json::Reader`]), with no value tree and one allocation per string
//! field, the way a derived serde struct reads.
//!
//! It answers only for the frames a server actually writes: one flat object whose members are all
//! names some server frame has, each once, with scalar values. For anything else (an unknown
//! member, a nested value, a negative number, a repeated name, any error at all) it answers `None`
//! and [`crate::protocol::decode_server_frame`] reads the text with the general reader, which
//! decides and words every error. So the two paths cannot disagree on what a text means: when
//! this one answers, it is with the frame the general reader builds (the
//! unit tests below check that on random and mutated frames, the `decode_frames` fuzz target on
//! any text, and every recorded trace and simulation runs through it).
//!
//! Native only: the browser build keeps the one general reader, for size.

use crate::json::{self, Scalar};
use crate::protocol::{ErrorCode, ErrorFrame, Hello, Message, ServerFrame};

/// Every member name a server frame has, as slots in [`Members`].
#[derive(Clone, Copy)]
enum Name {
    Type,
    Seq,
    Conv,
    From,
    Id,
    Body,
    Ts,
    User,
    V,
    HeartbeatMs,
    Cursor,
    Resumed,
    MaxBodyBytes,
    MaxFrames,
    Online,
    T,
    Code,
    Message,
    RetryAfterMs,
}

const NAMES: usize = 19;

impl Name {
    fn of(name: &str) -> Option<Name> {
        Some(match name {
            "type" => Name::Type,
            "seq" => Name::Seq,
            "conv" => Name::Conv,
            "from" => Name::From,
            "id" => Name::Id,
            "body" => Name::Body,
            "ts" => Name::Ts,
            "user" => Name::User,
            "v" => Name::V,
            "heartbeat_ms" => Name::HeartbeatMs,
            "cursor" => Name::Cursor,
            "resumed" => Name::Resumed,
            "max_body_bytes" => Name::MaxBodyBytes,
            "max_frames" => Name::MaxFrames,
            "online" => Name::Online,
            "t" => Name::T,
            "code" => Name::Code,
            "message" => Name::Message,
            "retry_after_ms" => Name::RetryAfterMs,
            _ => return None,
        })
    }
}

/// The members read so far, one slot per name.
struct Members<'a>([Option<Scalar<'a>>; NAMES]);

impl<'a> Members<'a> {
    /// Takes a member out (what the general reader's `required` does), `None` when absent.
    fn take(&mut self, name: Name) -> Option<Scalar<'a>> {
        self.0[name as usize].take()
    }

    fn string(&mut self, name: Name) -> Option<String> {
        match self.take(name)? {
            Scalar::String(s) => Some(s.into_owned()),
            _ => None,
        }
    }

    fn u64(&mut self, name: Name) -> Option<u64> {
        match self.take(name)? {
            Scalar::Unsigned(n) => Some(n),
            _ => None,
        }
    }

    fn bool(&mut self, name: Name) -> Option<bool> {
        match self.take(name)? {
            Scalar::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// An optional member: absent or null is `Some(None)`, a mistyped one `None`.
    fn opt_string(&mut self, name: Name) -> Option<Option<String>> {
        match self.take(name) {
            None | Some(Scalar::Null) => Some(None),
            Some(Scalar::String(s)) => Some(Some(s.into_owned())),
            Some(_) => None,
        }
    }

    fn opt_u64(&mut self, name: Name) -> Option<Option<u64>> {
        match self.take(name) {
            None | Some(Scalar::Null) => Some(None),
            Some(Scalar::Unsigned(n)) => Some(Some(n)),
            Some(_) => None,
        }
    }

    fn message(&mut self) -> Option<Message> {
        Some(Message {
            seq: self.u64(Name::Seq)?,
            conv: self.string(Name::Conv)?,
            from: self.string(Name::From)?,
            id: self.string(Name::Id)?,
            body: self.string(Name::Body)?,
            ts: self.u64(Name::Ts)?,
        })
    }

    fn error(&mut self) -> Option<ErrorFrame> {
        let code = match self.take(Name::Code)? {
            Scalar::String(code) => ErrorCode::parse(&code),
            _ => return None,
        };
        Some(ErrorFrame {
            code,
            message: self.opt_string(Name::Message)?.unwrap_or_default(),
            id: self.opt_string(Name::Id)?,
            conv: self.opt_string(Name::Conv)?,
            retry_after_ms: self.opt_u64(Name::RetryAfterMs)?,
        })
    }
}

/// Reads `text` as a server frame if it is one of the plain shapes described in the module
/// documentation; `None` leaves the text to the general reader.
pub(crate) fn server_frame(text: &str) -> Option<ServerFrame> {
    let mut reader = json::Reader::object(text).ok()?;
    let mut members = Members(Default::default());
    while let Some(name) = reader.next_name().ok()? {
        let slot = &mut members.0[Name::of(&name)? as usize];
        if slot.is_some() {
            return None;
        }
        *slot = Some(reader.value().ok()?);
    }
    let kind = match members.take(Name::Type)? {
        Scalar::String(kind) => kind,
        _ => return None,
    };
    let m = &mut members;
    Some(match &*kind {
        "msg" => ServerFrame::Msg(m.message()?),
        "ack" => ServerFrame::Ack {
            id: m.string(Name::Id)?,
            seq: m.u64(Name::Seq)?,
        },
        "hello" => ServerFrame::Hello(Hello {
            v: u32::try_from(m.u64(Name::V)?).ok()?,
            user: m.string(Name::User)?,
            heartbeat_ms: m.u64(Name::HeartbeatMs)?,
            cursor: m.u64(Name::Cursor)?,
            resumed: m.bool(Name::Resumed)?,
            max_body_bytes: m.opt_u64(Name::MaxBodyBytes)?,
            max_frames: m.opt_u64(Name::MaxFrames)?,
        }),
        "subscribed" => ServerFrame::Subscribed {
            conv: m.string(Name::Conv)?,
        },
        "unsubscribed" => ServerFrame::Unsubscribed {
            conv: m.string(Name::Conv)?,
        },
        "presence" => ServerFrame::Presence {
            conv: m.string(Name::Conv)?,
            user: m.string(Name::User)?,
            online: m.bool(Name::Online)?,
        },
        "typing" => ServerFrame::Typing {
            conv: m.string(Name::Conv)?,
            user: m.string(Name::User)?,
        },
        "pong" => ServerFrame::Pong { t: m.u64(Name::T)? },
        "heartbeat" => ServerFrame::Heartbeat,
        "error" => ServerFrame::Error(m.error()?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{self, encode};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn frames() -> Vec<ServerFrame> {
        vec![
            ServerFrame::Hello(Hello {
                v: 1,
                user: "alice".into(),
                heartbeat_ms: 10_000,
                cursor: 7,
                resumed: false,
                max_body_bytes: Some(1 << 20),
                max_frames: Some(64),
            }),
            ServerFrame::Msg(Message {
                seq: 8,
                conv: "general".into(),
                from: "bob".into(),
                id: "b-1".into(),
                body: "h\u{e9}llo \"you\"\n\\".into(),
                ts: 1,
            }),
            ServerFrame::Ack {
                id: "c1".into(),
                seq: u64::MAX,
            },
            ServerFrame::Subscribed { conv: "c".into() },
            ServerFrame::Unsubscribed { conv: "c".into() },
            ServerFrame::Presence {
                conv: "c".into(),
                user: "u".into(),
                online: true,
            },
            ServerFrame::Typing {
                conv: "c".into(),
                user: "u".into(),
            },
            ServerFrame::Pong { t: 0 },
            ServerFrame::Heartbeat,
            ServerFrame::Error(ErrorFrame {
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                id: Some("c1".into()),
                conv: None,
                retry_after_ms: Some(250),
            }),
        ]
    }

    #[test]
    fn every_frame_a_server_writes_takes_the_fast_path() {
        for frame in frames() {
            assert_eq!(server_frame(&encode(&frame)), Some(frame));
        }
        // Members in another order, whitespace, null optionals.
        let text =
            r#" { "seq" : 3 , "ts":4,"body":"b","id":"i","from":"f","conv":"c","type":"msg" } "#;
        assert!(matches!(server_frame(text), Some(ServerFrame::Msg(_))));
        let text = r#"{"type":"error","code":"nope","message":null,"id":null}"#;
        assert!(matches!(server_frame(text), Some(ServerFrame::Error(_))));
    }

    #[test]
    fn what_the_fast_path_does_not_take_is_left_to_the_general_reader() {
        for text in [
            r#"{"type":"msg","seq":1,"conv":"c","from":"f","id":"i","body":"b","ts":1,"extra":1}"#,
            r#"{"type":"ack","id":"a","seq":1,"id":"b"}"#,
            r#"{"type":"ack","id":"a","seq":-1}"#,
            r#"{"type":"ack","id":"a","seq":1.0}"#,
            r#"{"type":"ack","id":"a","seq":{}}"#,
            r#"{"type":"ack","id":"a"}"#,
            r#"{"type":"ack","id":"a","seq":1} x"#,
            r#"{"type":"ack","id":"a","seq":1,}"#,
            r#"{"type":"hello","v":4294967296,"user":"u","heartbeat_ms":1,"cursor":0,"resumed":true}"#,
            r#"{"type":"nope"}"#,
            r#"[]"#,
            "",
        ] {
            assert_eq!(server_frame(text), None, "{text}");
        }
    }

    /// Random frames, mutated a few bytes at a time: whenever the fast path answers, the general
    /// reader reads the same text as the same frame.
    #[test]
    fn the_fast_path_agrees_with_the_general_reader() {
        const PIECES: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"",
            "\\",
            "\\u00e9",
            "0",
            "1",
            "-",
            ".",
            "e",
            "true",
            "false",
            "null",
            " ",
            "\"type\"",
            "\"msg\"",
            "\"seq\"",
            "\"id\"",
            "\"code\"",
            "\"v\"",
            "99999999999999999999",
            "\u{1}",
            "\\n",
        ];
        const MEMBERS: &[&str] = &[
            r#","id":"x""#,
            r#","seq":5"#,
            r#","conv":null"#,
            r#","user":"u""#,
            r#","online":false"#,
            r#","t":1"#,
            r#","type":"ack""#,
            r#","\u0074ype":"pong""#,
            r#","code":"internal""#,
            r#","message":7"#,
            r#","retry_after_ms":null"#,
            r#","extra":[1]"#,
            r#","max_frames":-1"#,
        ];
        let mut rng = SmallRng::seed_from_u64(13);
        let texts: Vec<String> = frames().iter().map(encode).collect();
        let (mut fast, mut total) = (0, 0);
        for _ in 0..100_000 {
            let mut text = texts[rng.random_range(0..texts.len())].clone();
            if rng.random_bool(0.5) {
                // A member more, before the closing brace: repeated, unknown or mistyped.
                let member = MEMBERS[rng.random_range(0..MEMBERS.len())];
                text.insert_str(text.len() - 1, member);
            }
            for _ in 0..rng.random_range(0..3) {
                let mut at = rng.random_range(0..=text.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                let mut end = (at + rng.random_range(0..3)).min(text.len());
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.replace_range(at..end, PIECES[rng.random_range(0..PIECES.len())]);
            }
            total += 1;
            if let Some(frame) = server_frame(&text) {
                fast += 1;
                assert_eq!(
                    protocol::decode_server_frame_generally(&text),
                    Ok(frame),
                    "{text}"
                );
            }
        }
        // Both kinds of text were drawn: the comparison covered fast answers and fallbacks.
        assert!(fast > total / 10 && fast < total, "{fast} of {total}");
    }
}
