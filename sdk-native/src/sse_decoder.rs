//! The text/event-stream format, decoded with a bound: bytes in, the `data` of each event and
//! each `retry:` hint out, and an error instead of unbounded buffering when one event (or one
//! line) grows past `MAX_EVENT_BYTES`.
//!
//! Only the parts of the format Lifeline's server uses are kept: `data` (joined with `\n` over
//! several lines), `retry`, and comments (ignored, like `id` and `event`). Decoding only; the
//! request and the reports are `sse.rs`'s.

use std::borrow::Cow;

/// The largest event accepted: the protocol's 64 KiB frame limit with room for the field names.
pub const MAX_EVENT_BYTES: usize = 64 * 1024 + 1024;

/// What one complete line or event produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// The `data` of a finished event.
    Data(String),
    /// A `retry:` field, in milliseconds.
    Retry(u64),
}

/// An event or line grew past the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TooLarge;

/// The decoder's state between chunks.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    /// The bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The data of the current event so far.
    data: String,
    /// Whether the event has a `data` field at all.
    has_data: bool,
    /// The previous chunk ended with `\r` (a following `\n` belongs to it).
    after_cr: bool,
}

/// Where the first line ends in `bytes`: its first `\n` or `\r`.
fn line_end(bytes: &[u8]) -> Option<usize> {
    memchr::memchr2(b'\n', b'\r', bytes)
}

impl Decoder {
    /// Decodes `chunk`, appending what it completes to `out`. A line is found with one scan for
    /// its end and handed on from the chunk itself; only a line split across chunks is copied.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Vec<Item>) -> Result<(), TooLarge> {
        let mut rest = chunk;
        while let Some((&first, after_first)) = rest.split_first() {
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                // The `\n` of a `\r\n`.
                rest = after_first;
                continue;
            }
            let end = line_end(rest);
            let text = &rest[..end.unwrap_or(rest.len())];
            if self.line.len() + self.data.len() + text.len() > MAX_EVENT_BYTES {
                return Err(TooLarge);
            }
            let Some(end) = end else {
                self.line.extend_from_slice(text);
                break;
            };
            self.after_cr = rest[end] == b'\r';
            if self.line.is_empty() {
                self.line_done(text, out);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(text);
                self.line_done(&line, out);
                line.clear();
                self.line = line;
            }
            rest = &rest[end + 1..];
        }
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<Item>) {
        if line.is_empty() {
            if std::mem::take(&mut self.has_data) {
                let mut data = std::mem::take(&mut self.data);
                data.pop(); // the `\n` after the last data line
                out.push(Item::Data(data));
            }
            return;
        }
        // The name is ASCII, so splitting the bytes at the first `:` splits where splitting the
        // text would, and only the value needs reading as UTF-8.
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.has_data = true;
                // Checked as UTF-8 first (quick on valid text); replaced only when it is not.
                let value = match std::str::from_utf8(value) {
                    Ok(value) => Cow::Borrowed(value),
                    Err(_) => String::from_utf8_lossy(value),
                };
                // Room for the `\n` too: one allocation for a one-line event.
                self.data.reserve(value.len() + 1);
                self.data.push_str(&value);
                self.data.push('\n');
            }
            b"retry" => {
                if let Ok(ms) = String::from_utf8_lossy(value).parse::<u64>() {
                    out.push(Item::Retry(ms));
                }
            }
            // A comment (empty field name), `id`, `event` or an unknown field.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoder as it was before it read lines as slices (one byte at a time into `line`): the
    /// reference the slice-wise decoder is compared with.
    #[derive(Default)]
    struct ByteWise {
        line: Vec<u8>,
        data: String,
        has_data: bool,
        after_cr: bool,
    }

    impl ByteWise {
        fn feed(&mut self, chunk: &[u8], out: &mut Vec<Item>) -> Result<(), TooLarge> {
            for &byte in chunk {
                let after_cr = std::mem::take(&mut self.after_cr);
                match byte {
                    b'\n' if after_cr => {}
                    b'\n' | b'\r' => {
                        self.after_cr = byte == b'\r';
                        let line = std::mem::take(&mut self.line);
                        self.line_done(&line, out);
                    }
                    _ => {
                        if self.line.len() + self.data.len() >= MAX_EVENT_BYTES {
                            return Err(TooLarge);
                        }
                        self.line.push(byte);
                    }
                }
            }
            Ok(())
        }

        fn line_done(&mut self, line: &[u8], out: &mut Vec<Item>) {
            if line.is_empty() {
                if std::mem::take(&mut self.has_data) {
                    let mut data = std::mem::take(&mut self.data);
                    data.pop();
                    out.push(Item::Data(data));
                }
                return;
            }
            let line = String::from_utf8_lossy(line);
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_ref(), ""),
            };
            match field {
                "data" => {
                    self.has_data = true;
                    self.data.push_str(value);
                    self.data.push('\n');
                }
                "retry" => {
                    if let Ok(ms) = value.parse::<u64>() {
                        out.push(Item::Retry(ms));
                    }
                }
                _ => {}
            }
        }
    }

    #[test]
    fn a_line_ends_at_the_first_line_feed_or_carriage_return() {
        for stop in 0..=255u8 {
            for at in 0..20 {
                let mut bytes: Vec<u8> = (0..24)
                    .map(|i| [0x09, 0x0b, 0x0c, 0x0e, 0x8a, 0x8d, 0xff][i % 7])
                    .collect();
                bytes.insert(at, stop);
                let naive = bytes.iter().position(|&b| b == b'\n' || b == b'\r');
                assert_eq!(line_end(&bytes), naive, "{bytes:?}");
                assert_eq!(line_end(&bytes[..at]), None);
            }
        }
    }

    trait Feed: Default {
        fn feed_chunk(&mut self, chunk: &[u8], out: &mut Vec<Item>) -> Result<(), TooLarge>;
    }

    impl Feed for Decoder {
        fn feed_chunk(&mut self, chunk: &[u8], out: &mut Vec<Item>) -> Result<(), TooLarge> {
            self.feed(chunk, out)
        }
    }

    impl Feed for ByteWise {
        fn feed_chunk(&mut self, chunk: &[u8], out: &mut Vec<Item>) -> Result<(), TooLarge> {
            self.feed(chunk, out)
        }
    }

    #[test]
    fn the_limit_is_exact_whether_a_line_comes_whole_or_in_pieces() {
        fn check<D: Feed>() {
            let mut line = b"data: ".to_vec();
            line.resize(MAX_EVENT_BYTES, b'x');
            for cut in [0, 1, 6, MAX_EVENT_BYTES - 1, MAX_EVENT_BYTES] {
                let (mut decoder, mut out) = (D::default(), Vec::new());
                // Exactly the limit is accepted; one byte more is not.
                assert_eq!(decoder.feed_chunk(&line[..cut], &mut out), Ok(()), "{cut}");
                assert_eq!(decoder.feed_chunk(&line[cut..], &mut out), Ok(()), "{cut}");
                assert_eq!(decoder.feed_chunk(b"y", &mut out), Err(TooLarge), "{cut}");
            }
        }
        check::<Decoder>();
        check::<ByteWise>();
    }

    /// Random streams (line ends of every kind, invalid UTF-8, events near and past the limit)
    /// cut into random chunks: the same items and the same refusal, at the same point, as the
    /// byte-wise reference.
    #[test]
    fn reads_every_stream_as_the_byte_wise_decoder_did() {
        let big = vec![b'x'; 30 * 1024];
        let pieces: [&[u8]; 20] = [
            b"data: ",
            b"data:",
            b"data",
            b"retry: 12",
            b"retry:x",
            b": comment",
            b"id: 1",
            b"event: e",
            b"\n",
            b"\r",
            b"\r\n",
            b"\n\n",
            b"x",
            "\u{e9}".as_bytes(),
            b"\xff\xfe",
            b"\xc3",
            br#"{"type":"heartbeat"}"#,
            b":",
            b" ",
            &big,
        ];
        // A small deterministic generator (xorshift): the crate has no random dev-dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as usize
        };
        for _ in 0..3_000 {
            let mut stream = Vec::new();
            for _ in 0..next(40) {
                let piece = pieces[next(pieces.len())];
                if piece.len() > 1024 && next(4) != 0 {
                    continue;
                }
                stream.extend_from_slice(piece);
            }
            let (mut ours, mut reference) = (Decoder::default(), ByteWise::default());
            let (mut ours_out, mut reference_out) = (Vec::new(), Vec::new());
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let (chunk, after) = rest.split_at(1 + next(rest.len().min(64 * 1024)));
                rest = after;
                let a = ours.feed(chunk, &mut ours_out);
                let b = reference.feed(chunk, &mut reference_out);
                assert_eq!(a, b, "{stream:?}");
                assert_eq!(ours_out, reference_out, "{stream:?}");
                if a.is_err() {
                    break;
                }
            }
        }
    }

    fn decode(chunks: &[&[u8]]) -> Result<Vec<Item>, TooLarge> {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn events_split_anywhere_decode_the_same() {
        let stream =
            b": hello\nretry: 200\r\nid: 4\ndata: {\"a\":1}\n\ndata: x\r\ndata:y\r\rdata\n\n";
        let whole = decode(&[stream]).unwrap();
        assert_eq!(
            whole,
            vec![
                Item::Retry(200),
                Item::Data("{\"a\":1}".into()),
                Item::Data("x\ny".into()),
                Item::Data(String::new()),
            ]
        );
        for cut in 0..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(decode(&[a, b]).unwrap(), whole, "cut at {cut}");
        }
    }

    #[test]
    fn an_event_past_the_limit_is_an_error_not_a_buffer() {
        let line = vec![b'x'; 40 * 1024];
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        decoder.feed(b"data: ", &mut out).unwrap();
        decoder.feed(&line, &mut out).unwrap();
        decoder.feed(b"\ndata: ", &mut out).unwrap();
        assert_eq!(decoder.feed(&line, &mut out), Err(TooLarge));
        // A single endless line without a newline is refused too.
        let mut decoder = Decoder::default();
        let endless = vec![b'y'; MAX_EVENT_BYTES + 1];
        assert_eq!(decoder.feed(&endless, &mut out), Err(TooLarge));
        assert!(out.is_empty());
    }
}
