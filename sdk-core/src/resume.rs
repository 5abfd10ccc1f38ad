//! Where the application is in the stream: the cursor (the highest sequence number delivered),
//! the rule that delivers each message once and in order, and the rule that applies the server's
//! resume point on a new link (telling the application about a gap). It also remembers when the
//! recent messages were delivered, so that a probe's late copies can be recognised.
//!
//! Pure state; the session emits the events these decisions call for.

use crate::protocol::{Hello, Seq};
use crate::time::Instant;

/// How many recent deliveries (sequence number, time) are remembered to judge a probe's copies:
/// a ring indexed by sequence number (a plain array: no collection code in the browser bundle).
const RECENT_DELIVERIES: usize = 64;

/// The resume state of one session.
#[derive(Debug)]
pub(crate) struct Resume {
    cursor: Option<Seq>,
    /// When the live link delivered each recent message.
    recent: [(Seq, Instant); RECENT_DELIVERIES],
}

impl Resume {
    pub fn new() -> Self {
        Resume {
            cursor: None,
            recent: [(0, Instant::from_micros(0)); RECENT_DELIVERIES],
        }
    }

    /// The highest sequence number delivered to the application.
    pub fn cursor(&self) -> Option<Seq> {
        self.cursor
    }

    /// Whether `seq` is beyond what was delivered so far.
    pub fn is_ahead(&self, seq: Seq) -> bool {
        self.cursor.is_some_and(|c| seq > c)
    }

    /// Whether the message `seq`, arriving at `now` on the live link, is to be delivered: true
    /// (and the cursor moves) unless it was delivered already.
    pub fn deliver(&mut self, now: Instant, seq: Seq) -> bool {
        if self.cursor.is_some_and(|c| seq <= c) {
            return false;
        }
        self.recent[seq as usize % RECENT_DELIVERIES] = (seq, now);
        self.cursor = Some(seq);
        true
    }

    /// When the message `seq` was delivered, if that is still remembered.
    pub fn delivered_at(&self, seq: Seq) -> Option<Instant> {
        let (s, at) = self.recent[seq as usize % RECENT_DELIVERIES];
        (s == seq).then_some(at)
    }

    /// Applies the server's resume point (a link opened with the cursor `opened_with` said
    /// `hello`). Returns the gap to report, `(last seen, resumed after)`, when messages were
    /// skipped or the server lost some.
    pub fn resume_from(&mut self, hello: &Hello, opened_with: Option<Seq>) -> Option<(Seq, Seq)> {
        let Some(mine) = self.cursor else {
            self.cursor = Some(hello.cursor);
            return None;
        };
        if hello.resumed {
            return None;
        }
        let server_lost_data = hello.cursor < opened_with.unwrap_or(0);
        if server_lost_data || hello.cursor > mine {
            self.cursor = Some(hello.cursor);
            return Some((mine, hello.cursor));
        }
        None
    }
}
