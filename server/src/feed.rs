//! One user's stream of server frames, shared by every transport: the `hello` decision (resume or
//! not), the replay from storage after the cursor, then the live fan-out, with no gap and no
//! duplicate between the two and messages in strictly increasing `seq` order.
//!
//! How frames are written to a socket, heartbeats and faults belong to the transports
//! ([`crate::ws`], [`crate::sse`], [`crate::poll`]).

use crate::access::{Access, Op};
use crate::errors::ApiError;
use crate::hub::Live;
use crate::request::Params;
use crate::state::Shared;
use crate::store::StoreError;
use lifeline_core::protocol::{
    ErrorCode, ErrorFrame, Hello, Message, Seq, ServerFrame, MAX_FRAMES_PER_REQUEST,
    PROTOCOL_VERSION,
};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// Messages read from storage per page while replaying or catching up.
const PAGE: usize = 256;

/// Bytes of messages read from storage per page: what a stream holds in memory while its client
/// is slow to take them (the page is read again only once it has been written out).
pub const PAGE_BYTES: usize = 16 * 1024;

/// What a stream carries, from its `carry` query parameter (docs/PROTOCOL.md, "Split streams"):
/// everything (the default), only stored messages (with the cursor, replay and resume), or only
/// the ephemeral frames (presence and typing: no replay, no messages). Control frames (`hello`,
/// heartbeats, errors addressed to the user) go on every stream. The protocol's own type, shared
/// with the SDK that asks for it.
pub use lifeline_core::Carry;

/// Reads `carry` (`all`, `messages` or `ephemeral`; absent or empty is `all`).
pub fn carry_from_params(params: &Params) -> Result<Carry, ApiError> {
    match params.get("carry").map(String::as_str) {
        None | Some("") | Some("all") => Ok(Carry::All),
        Some("messages") => Ok(Carry::Messages),
        Some("ephemeral") => Ok(Carry::Ephemeral),
        Some(_) => Err(ApiError::new(
            ErrorCode::BadFrame,
            "carry must be all, messages or ephemeral",
        )),
    }
}

/// Decides where a stream starts: `(cursor, resumed)` for a client cursor, given the newest
/// committed `head` and how far back the server resumes.
pub fn resume_point(requested: Option<Seq>, head: Seq, window: u64) -> (Seq, bool) {
    match requested {
        None => (head, true),
        Some(c) if c > head => (head, false),
        Some(c) if head - c > window => (head - window, false),
        Some(c) => (c, true),
    }
}

/// A page read from storage, in flight.
type PageRead = Pin<Box<dyn Future<Output = Result<Vec<Message>, StoreError>> + Send>>;

/// A user's frames: replay first, then live.
pub struct Feed {
    shared: Arc<Shared>,
    user: String,
    /// What the stream's token allows: every conversation's frames are re-checked against it.
    access: Access,
    rx: broadcast::Receiver<Arc<Live>>,
    /// The highest `seq` handed out (or the cursor): every message at or below it is skipped.
    last_seq: Seq,
    /// Whether storage may hold messages after `last_seq` that the channel will not deliver.
    catching_up: bool,
    queue: VecDeque<ServerFrame>,
    /// The storage read under way, kept across calls: a transport that stops waiting for
    /// [`Feed::next`] (a heartbeat is due) picks the same read up on its next call instead of
    /// starting another one on a database that is already slow.
    page_read: Option<PageRead>,
    /// Which frames this stream carries.
    carry: Carry,
}

impl Feed {
    /// Opens a stream for `user` resuming after `cursor`. Subscribes to the live fan-out before
    /// anything is read from storage, so nothing committed in between is missed.
    pub fn open(shared: &Arc<Shared>, access: &Access, cursor: Option<Seq>) -> (Hello, Feed) {
        Feed::open_with_window(shared, access, cursor, shared.config.resume_window)
    }

    /// [`Feed::open`] with an explicit resume window (`u64::MAX`: any stored cursor resumes).
    pub fn open_with_window(
        shared: &Arc<Shared>,
        access: &Access,
        cursor: Option<Seq>,
        window: u64,
    ) -> (Hello, Feed) {
        let user = access.user.as_str();
        let rx = shared.hub.subscribe();
        let head = shared.store.head();
        let (cursor, resumed) = resume_point(cursor, head, window);
        let hello = Hello {
            v: PROTOCOL_VERSION,
            user: user.to_string(),
            heartbeat_ms: shared.config.heartbeat_ms,
            cursor,
            resumed,
            max_body_bytes: Some(shared.config.max_body_bytes as u64),
            max_frames: Some(MAX_FRAMES_PER_REQUEST as u64),
        };
        let feed = Feed {
            shared: Arc::clone(shared),
            user: user.to_string(),
            access: access.clone(),
            rx,
            last_seq: cursor,
            catching_up: true,
            queue: VecDeque::new(),
            page_read: None,
            carry: Carry::All,
        };
        (hello, feed)
    }

    /// This stream, carrying only `carry`'s frames. An ephemeral stream replays nothing from
    /// storage (its `hello` is that of any stream).
    pub fn carrying(mut self, carry: Carry) -> Feed {
        self.carry = carry;
        self.catching_up = carry.messages();
        self
    }

    /// Whether this stream may carry `conv`'s frames: a member, and still allowed (the token or
    /// the application's grants; memberships are re-checked, not trusted).
    fn readable(&self, conv: &str) -> bool {
        self.shared.members.is_member(&self.user, conv)
            && self.access.may_join(&self.shared.grants, conv)
    }

    /// The frames `live` makes for this stream (given what it carries): queued, but the first is
    /// returned.
    fn filter(&mut self, live: &Live) -> Option<ServerFrame> {
        let wanted = match live {
            Live::Msg(_) => self.carry.messages(),
            Live::UserPresence { .. } | Live::Typing { .. } | Live::Joined { .. } => {
                self.carry.ephemeral()
            }
            Live::Direct { frame, .. } => match frame {
                ServerFrame::Presence { .. } | ServerFrame::Typing { .. } => self.carry.ephemeral(),
                _ => true,
            },
        };
        if !wanted {
            return None;
        }
        match live {
            Live::Msg(m) => {
                if m.seq <= self.last_seq || !self.readable(&m.conv) {
                    return None;
                }
                self.last_seq = m.seq;
                Some(ServerFrame::Msg(m.clone()))
            }
            Live::UserPresence { user, online } => {
                if *user == self.user || !self.access.may(Op::Presence) {
                    return None;
                }
                // One event per connect, whatever the user's memberships: each stream works out
                // the conversations it shares with `user` (and may still read), a cost bounded by
                // its own user's membership cap.
                let members = &self.shared.members;
                for conv in members.convs_of(&self.user) {
                    if members.is_member(user, &conv)
                        && self.readable(&conv)
                        && self.shared.hub.presence_in(&conv)
                    {
                        self.queue.push_back(ServerFrame::Presence {
                            conv,
                            user: user.clone(),
                            online: *online,
                        });
                    }
                }
                self.queue.pop_front()
            }
            Live::Typing { conv, user } => {
                (*user != self.user && self.readable(conv)).then(|| ServerFrame::Typing {
                    conv: conv.clone(),
                    user: user.clone(),
                })
            }
            Live::Joined { conv, user } if *user == self.user => {
                if !(self.access.may(Op::Presence)
                    && self.readable(conv)
                    && self.shared.hub.presence_in(conv))
                {
                    return None;
                }
                // This stream's user joined: who of the members is online (a cost of the joiner's
                // own streams only).
                for other in self.shared.members.members_of(conv) {
                    if other != self.user && self.shared.hub.is_online(&other) {
                        self.queue.push_back(ServerFrame::Presence {
                            conv: conv.clone(),
                            user: other,
                            online: true,
                        });
                    }
                }
                self.queue.pop_front()
            }
            Live::Joined { conv, user } => (self.access.may(Op::Presence)
                && self.readable(conv)
                && self.shared.hub.presence_in(conv)
                && self.shared.hub.is_online(user))
            .then(|| ServerFrame::Presence {
                conv: conv.clone(),
                user: user.clone(),
                online: true,
            }),
            Live::Direct { to, frame } => (*to == self.user
                && (self.access.may(Op::Presence)
                    || !matches!(frame, ServerFrame::Presence { .. })))
            .then(|| frame.clone()),
        }
    }

    /// This stream fell behind the live fan-out by `skipped` events. Messages are re-read from
    /// storage; presence and typing cannot be, so the client is told they were skipped (an
    /// `error` frame with code `skipped`, no `id`, no `conv`) instead of losing them silently.
    fn lagged(&mut self, skipped: u64) {
        tracing::debug!(user = %self.user, skipped, "stream lagged; re-reading storage");
        self.catching_up = self.carry.messages();
        if self.carry.ephemeral() {
            self.queue.push_back(ServerFrame::Error(ErrorFrame {
                code: ErrorCode::Skipped,
                message: "this stream fell behind: presence and typing events were skipped"
                    .to_string(),
                id: None,
                conv: None,
                retry_after_ms: None,
            }));
        }
    }

    /// Reads the next page from storage into the queue; clears `catching_up` when there is none.
    /// Cancel-safe: a read cut short is resumed, not restarted, by the next call (whose `limit`
    /// then does not apply).
    async fn read_page(&mut self, limit: usize) -> Result<(), StoreError> {
        let read = self.page_read.get_or_insert_with(|| {
            let (store, user) = (Arc::clone(&self.shared.store), self.user.clone());
            let (after, limit) = (self.last_seq, limit.clamp(1, PAGE));
            Box::pin(async move { store.replay(&user, after, limit, PAGE_BYTES).await })
        });
        let page = read.await;
        self.page_read = None;
        let page = page?;
        if page.is_empty() {
            self.catching_up = false;
        }
        for m in page {
            if m.seq > self.last_seq {
                self.last_seq = m.seq;
                if self.access.may_join(&self.shared.grants, &m.conv) {
                    self.queue.push_back(ServerFrame::Msg(m));
                }
            }
        }
        Ok(())
    }

    /// The next frame, waiting for one if needed. Cancel-safe: dropping the future loses nothing,
    /// and a storage read it had started goes on to serve the next call.
    pub async fn next(&mut self) -> Result<ServerFrame, StoreError> {
        loop {
            if let Some(f) = self.queue.pop_front() {
                return Ok(f);
            }
            if self.catching_up {
                self.read_page(PAGE).await?;
                continue;
            }
            match self.rx.recv().await {
                Ok(live) => {
                    if let Some(f) = self.filter(&live) {
                        return Ok(f);
                    }
                }
                Err(RecvError::Lagged(n)) => self.lagged(n),
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }

    /// Up to `max` frames available without waiting for new events, stopping early once they
    /// hold about `max_bytes` of message bodies (at least one frame is returned if any is ready).
    pub async fn ready(
        &mut self,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<ServerFrame>, StoreError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.len() < max && bytes < max_bytes {
            if let Some(f) = self.queue.pop_front() {
                if let ServerFrame::Msg(m) = &f {
                    bytes += m.body.len();
                }
                out.push(f);
                continue;
            }
            if self.catching_up {
                self.read_page(max - out.len()).await?;
                continue;
            }
            match self.rx.try_recv() {
                Ok(live) => {
                    if let Some(f) = self.filter(&live) {
                        out.push(f);
                    }
                }
                Err(TryRecvError::Lagged(n)) => self.lagged(n),
                Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => break,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::resume_point;

    #[test]
    fn resume_decisions() {
        assert_eq!(resume_point(None, 10, 5), (10, true));
        assert_eq!(resume_point(Some(7), 10, 5), (7, true));
        assert_eq!(resume_point(Some(5), 10, 5), (5, true));
        assert_eq!(resume_point(Some(4), 10, 5), (5, false));
        assert_eq!(resume_point(Some(11), 10, 5), (10, false));
        assert_eq!(resume_point(Some(0), 0, 5), (0, true));
        assert_eq!(resume_point(Some(0), 1_000, u64::MAX), (0, true));
    }
}
