//! The size of HTTP send batches (`POST /v1/send` on SSE and long polling): how many frames and
//! how many bytes one request may carry, and the request body built within those bounds.
//!
//! The limits start from what the server's `hello` advertises (`max_body_bytes`, `max_frames`;
//! absent: [`DEFAULT_MAX_BODY_BYTES`] and [`MAX_FRAMES_PER_REQUEST`]), never above the protocol's
//! own caps. When a batch of more than one frame is refused as too large anyway (a proxy with a
//! smaller limit than the server's), the limits are halved below that batch and its frames are
//! sent again in smaller batches; a single frame is always allowed, so a frame too large on its own
//! fails typed instead of shrinking the limits forever. The next `hello` starts afresh.

use crate::protocol::{
    ClientFrame, Hello, ToJson, DEFAULT_MAX_BODY_BYTES, MAX_BATCH_BYTES, MAX_FRAMES_PER_REQUEST,
};

/// The opening of a send request body, before the first frame.
const OPENING: &str = "{\"frames\":[";
/// The closing of a send request body.
const CLOSING: &str = "]}";

/// How large one HTTP send batch may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// The most frames in one request (at least 1).
    pub max_frames: usize,
    /// The most bytes of request body (one frame alone may exceed it: it is sent and the server
    /// says whether it fits).
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    /// The limits assumed before a `hello` says otherwise.
    fn default() -> Self {
        BatchLimits {
            max_frames: MAX_FRAMES_PER_REQUEST,
            max_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl BatchLimits {
    /// The limits a server advertised in its `hello`, within the protocol's caps.
    pub fn advertised(hello: &Hello) -> Self {
        let clamp = |v: Option<u64>, default: usize, cap: usize| {
            v.map_or(default, |v| usize::try_from(v).unwrap_or(cap))
                .clamp(1, cap)
        };
        BatchLimits {
            max_frames: clamp(
                hello.max_frames,
                MAX_FRAMES_PER_REQUEST,
                MAX_FRAMES_PER_REQUEST,
            ),
            max_bytes: clamp(
                hello.max_body_bytes,
                DEFAULT_MAX_BODY_BYTES,
                MAX_BATCH_BYTES,
            ),
        }
    }

    /// A request of `frames` frames and `bytes` bytes was refused as too large: shrinks the limits
    /// to half of it, and says whether its frames should be sent again (`false`: it was a single
    /// frame, which no split can help).
    pub fn split_after_too_large(&mut self, frames: usize, bytes: usize) -> bool {
        if frames <= 1 {
            return false;
        }
        self.max_frames = self.max_frames.min(frames / 2).max(1);
        self.max_bytes = self.max_bytes.min(bytes / 2).max(1);
        true
    }

    /// An empty request body to fill within these limits.
    pub fn body(&self) -> BatchBody {
        BatchBody {
            text: String::from(OPENING),
            frames: 0,
            limits: *self,
        }
    }
}

/// A send request body under construction: `{"frames":[...]}`, the same text as
/// `protocol::encode(&Batch { frames })`.
#[derive(Debug)]
pub struct BatchBody {
    text: String,
    frames: usize,
    limits: BatchLimits,
}

impl BatchBody {
    /// Appends `frame` if it fits (the first frame always does); `false` leaves the body as it was.
    pub fn push(&mut self, frame: &ClientFrame) -> bool {
        if self.frames >= self.limits.max_frames {
            return false;
        }
        let mark = self.text.len();
        if self.frames > 0 {
            self.text.push(',');
        }
        frame.write_json(&mut self.text);
        if self.frames > 0 && self.text.len() + CLOSING.len() > self.limits.max_bytes {
            self.text.truncate(mark);
            return false;
        }
        self.frames += 1;
        true
    }

    /// How many frames it holds.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// The finished body.
    pub fn finish(mut self) -> String {
        self.text.push_str(CLOSING);
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode, Batch};

    fn send(body: &str) -> ClientFrame {
        ClientFrame::Send {
            id: "00000000-0000-4000-8000-000000000000".into(),
            conv: "general".into(),
            body: body.into(),
        }
    }

    fn hello(max_body_bytes: Option<u64>, max_frames: Option<u64>) -> Hello {
        Hello {
            v: 1,
            user: "me".into(),
            heartbeat_ms: 1000,
            cursor: 0,
            resumed: true,
            max_body_bytes,
            max_frames,
        }
    }

    #[test]
    fn the_body_is_the_encoded_batch_and_stays_under_the_byte_limit() {
        let big = "x".repeat(16 * 1024);
        let mut body = BatchLimits::default().body();
        let mut frames = Vec::new();
        while body.push(&send(&big)) {
            frames.push(send(&big));
        }
        // 64 bodies of 16 KiB are over 1 MiB with their JSON: fewer fit.
        assert!(frames.len() < 64 && frames.len() > 60, "{}", frames.len());
        let text = body.finish();
        assert!(text.len() <= DEFAULT_MAX_BODY_BYTES, "{}", text.len());
        assert_eq!(text, encode(&Batch { frames }));
    }

    #[test]
    fn the_first_frame_always_fits_and_the_frame_count_is_capped() {
        let limits = BatchLimits {
            max_frames: 2,
            max_bytes: 10,
        };
        let mut body = limits.body();
        assert!(body.push(&send("more than ten bytes")));
        assert!(!body.push(&send("")));
        let mut body = BatchLimits {
            max_frames: 2,
            max_bytes: 1000,
        }
        .body();
        assert!(body.push(&send("")) && body.push(&send("")));
        assert!(!body.push(&send("")));
        assert_eq!(body.frames(), 2);
        assert_eq!(BatchLimits::default().body().finish(), "{\"frames\":[]}");
    }

    #[test]
    fn advertised_limits_are_used_within_the_protocol_caps() {
        assert_eq!(
            BatchLimits::advertised(&hello(None, None)),
            BatchLimits::default()
        );
        let small = BatchLimits::advertised(&hello(Some(4096), Some(8)));
        assert_eq!((small.max_frames, small.max_bytes), (8, 4096));
        let silly = BatchLimits::advertised(&hello(Some(u64::MAX), Some(0)));
        assert_eq!((silly.max_frames, silly.max_bytes), (1, MAX_BATCH_BYTES));
    }

    #[test]
    fn a_refused_batch_halves_the_limits_but_a_single_frame_does_not() {
        let mut limits = BatchLimits::default();
        assert!(limits.split_after_too_large(64, 1_052_547));
        assert_eq!((limits.max_frames, limits.max_bytes), (32, 526_273));
        assert!(limits.split_after_too_large(2, 40_000));
        assert_eq!((limits.max_frames, limits.max_bytes), (1, 20_000));
        let before = limits;
        assert!(!limits.split_after_too_large(1, 20_000));
        assert_eq!(limits, before);
    }
}
