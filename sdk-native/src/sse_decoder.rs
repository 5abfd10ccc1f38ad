//! The text/event-stream format, decoded with a bound: bytes in, the `data` of each event and
//! each `retry:` hint out, and an error instead of unbounded buffering when one event (or one
//! line) grows past [`MAX_EVENT_BYTES`].
//!
//! Only the parts of the format Lifeline's server uses are kept: `data` (joined with `\n` over
//! several lines), `retry`, and comments (ignored, like `id` and `event`). Decoding only; the
//! request and the reports are `sse.rs`'s.

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

impl Decoder {
    /// Decodes `chunk`, appending what it completes to `out`.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Vec<Item>) -> Result<(), TooLarge> {
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
                data.pop(); // the `\n` after the last data line
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
            // A comment (empty field name), `id`, `event` or an unknown field.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
