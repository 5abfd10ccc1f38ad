//! The outbox: messages the application sent that the server has not acknowledged yet, bounded by
//! count and bytes, in the order they were sent.
//!
//! It remembers, for each message, on which transport it was last transmitted and when it may be
//! transmitted again; it never transmits anything itself and never drops a message silently: a
//! message leaves only by an ack, a rejection, a timeout or the session closing, each of which the
//! session turns into an event.

use crate::event::{MsgId, SendError};
use crate::protocol::ClientFrame;
use crate::time::Instant;
use std::collections::VecDeque;

/// One unacknowledged message.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: MsgId,
    pub conv: String,
    pub body: String,
    /// Fails with a timeout at this instant.
    pub deadline: Instant,
    /// The link it was last transmitted on; `None` when it must be (re)transmitted.
    pub sent_on: Option<u64>,
    /// Not to be transmitted before this instant (the server asked to wait).
    pub not_before: Option<Instant>,
}

impl Pending {
    pub fn frame(&self) -> ClientFrame {
        ClientFrame::Send {
            id: self.id.0.clone(),
            conv: self.conv.clone(),
            body: self.body.clone(),
        }
    }
}

#[derive(Debug)]
pub struct Outbox {
    entries: VecDeque<Pending>,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
    /// The first `sent_prefix` entries are known to be sent on link `prefix_link`, so that
    /// `due_for` does not walk them again: sending stays O(1) per message however long the
    /// outbox grows.
    sent_prefix: usize,
    prefix_link: Option<u64>,
    /// How many entries are held back (`not_before` set).
    held: usize,
}

impl Outbox {
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        Outbox {
            entries: VecDeque::new(),
            bytes: 0,
            max_messages,
            max_bytes,
            sent_prefix: 0,
            prefix_link: None,
            held: 0,
        }
    }

    fn forget(&mut self, entry: &Pending) {
        self.bytes -= entry.body.len();
        if entry.not_before.is_some() {
            self.held -= 1;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The messages, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Pending> {
        self.entries.iter()
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Accepts a message, or says why not. Nothing is queued on error.
    pub fn push(&mut self, entry: Pending) -> Result<(), SendError> {
        let size = entry.body.len();
        if self.entries.len() >= self.max_messages || self.bytes + size > self.max_bytes {
            return Err(SendError::OutboxFull {
                messages: self.entries.len(),
                bytes: self.bytes,
            });
        }
        self.bytes += size;
        let mut entry = entry;
        // Deadlines never decrease along the queue, so the front holds the earliest.
        if let Some(last) = self.entries.back() {
            entry.deadline = entry.deadline.max(last.deadline);
        }
        if entry.not_before.is_some() {
            self.held += 1;
        }
        self.entries.push_back(entry);
        Ok(())
    }

    /// Removes and returns the message with this id.
    pub fn remove(&mut self, id: &str) -> Option<Pending> {
        let i = self.entries.iter().position(|e| e.id.0 == id)?;
        let entry = self.entries.remove(i)?;
        self.forget(&entry);
        if i < self.sent_prefix {
            self.sent_prefix -= 1;
        }
        Some(entry)
    }

    /// Removes and returns every message whose deadline is at or before `now`.
    pub fn take_expired(&mut self, now: Instant) -> Vec<Pending> {
        let mut expired = Vec::new();
        while self.entries.front().is_some_and(|e| e.deadline <= now) {
            if let Some(e) = self.entries.pop_front() {
                self.forget(&e);
                self.sent_prefix = self.sent_prefix.saturating_sub(1);
                expired.push(e);
            }
        }
        expired
    }

    /// Removes and returns everything.
    pub fn take_all(&mut self) -> Vec<Pending> {
        self.bytes = 0;
        self.held = 0;
        self.sent_prefix = 0;
        self.entries.drain(..).collect()
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.front().map(|e| e.deadline)
    }

    /// The earliest instant a held-back message may be transmitted again.
    pub fn next_release(&self) -> Option<Instant> {
        if self.held == 0 {
            return None;
        }
        self.entries.iter().filter_map(|e| e.not_before).min()
    }

    /// Marks the given messages as needing retransmission.
    pub fn mark_unsent(&mut self, ids: &[MsgId]) {
        self.sent_prefix = 0;
        for e in &mut self.entries {
            if ids.contains(&e.id) {
                e.sent_on = None;
            }
        }
    }

    /// Holds back the message `id` and every later one until `until`, and marks them for
    /// retransmission, so that a retransmission keeps their order.
    pub fn hold_from(&mut self, id: &str, until: Instant) {
        let Some(i) = self.entries.iter().position(|e| e.id.0 == id) else {
            return;
        };
        self.sent_prefix = self.sent_prefix.min(i);
        for e in self.entries.iter_mut().skip(i) {
            e.sent_on = None;
            if e.not_before.is_none() {
                self.held += 1;
            }
            e.not_before = Some(e.not_before.map_or(until, |t| t.max(until)));
        }
    }

    /// Takes, in order, the messages that are due for transmission on `link` at `now`, marking them
    /// as sent there, at most `limit` of them. Stops at the first held-back message, so that order
    /// is kept. (The session takes them with [`Outbox::due_while`]; this is its tests' shorthand.)
    #[cfg(test)]
    pub fn due_for(&mut self, link: u64, now: Instant, limit: usize) -> Vec<Pending> {
        let (mut taken, mut due) = (0, Vec::new());
        self.due_while(
            link,
            now,
            |_| {
                taken += 1;
                taken <= limit
            },
            |p| due.push(p.clone()),
        );
        due
    }

    /// Like [`Outbox::due_for`], taking due messages while `accept` says they fit (a batch's
    /// frame and byte limits); stops at the first one it refuses, so that order is kept. Each due
    /// message is handed to `take`, which keeps what it needs (its encoded frame, its id) without
    /// copying the message whole.
    pub fn due_while(
        &mut self,
        link: u64,
        now: Instant,
        mut accept: impl FnMut(&Pending) -> bool,
        mut take: impl FnMut(&Pending),
    ) {
        if self.prefix_link != Some(link) {
            self.prefix_link = Some(link);
            self.sent_prefix = 0;
        }
        let start = self.sent_prefix.min(self.entries.len());
        for e in self.entries.iter_mut().skip(start) {
            if e.sent_on != Some(link) {
                match e.not_before {
                    Some(t) if t > now => break,
                    _ if !accept(e) => break,
                    Some(_) => {
                        e.not_before = None;
                        self.held -= 1;
                    }
                    None => {}
                }
                e.sent_on = Some(link);
                take(e);
            }
            // Every entry walked past is now sent on `link`: the known-sent prefix grows.
            self.sent_prefix += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(id: &str, body: &str, now: Instant) -> Pending {
        Pending {
            id: MsgId(id.into()),
            conv: "c".into(),
            body: body.into(),
            deadline: now + Duration::from_secs(10),
            sent_on: None,
            not_before: None,
        }
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let now = Instant::from_micros(0);
        let mut o = Outbox::new(2, 10);
        o.push(entry("a", "12345", now)).unwrap();
        assert!(matches!(
            o.push(entry("b", "123456", now)),
            Err(SendError::OutboxFull { .. })
        ));
        o.push(entry("b", "12345", now)).unwrap();
        assert!(o.push(entry("c", "", now)).is_err());
        assert_eq!(o.len(), 2);
        o.remove("a").unwrap();
        assert_eq!(o.bytes(), 5);
    }

    #[test]
    fn held_messages_keep_their_order() {
        let now = Instant::from_micros(0);
        let mut o = Outbox::new(10, 100);
        for id in ["a", "b", "c"] {
            o.push(entry(id, "x", now)).unwrap();
        }
        assert_eq!(o.due_for(1, now, 10).len(), 3);
        o.hold_from("b", now + Duration::from_secs(1));
        assert!(o.due_for(1, now, 10).is_empty());
        let later = now + Duration::from_secs(1);
        let ids: Vec<_> = o
            .due_for(1, later, 10)
            .into_iter()
            .map(|e| e.id.0)
            .collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(o.due_for(2, later, 10).len(), 3);
    }

    #[test]
    fn the_sent_prefix_follows_removals_holds_and_links() {
        let now = Instant::from_micros(0);
        let mut o = Outbox::new(100, 1000);
        for i in 0..10 {
            o.push(entry(&i.to_string(), "x", now)).unwrap();
        }
        assert_eq!(o.due_for(1, now, 100).len(), 10);
        o.push(entry("10", "x", now)).unwrap();
        let ids: Vec<_> = o.due_for(1, now, 100).into_iter().map(|e| e.id.0).collect();
        assert_eq!(ids, ["10"]);
        o.remove("0").unwrap();
        o.remove("5").unwrap();
        assert!(o.due_for(1, now, 100).is_empty());
        o.mark_unsent(&[MsgId("7".into())]);
        let ids: Vec<_> = o.due_for(1, now, 100).into_iter().map(|e| e.id.0).collect();
        assert_eq!(ids, ["7"]);
        o.hold_from("8", now + Duration::from_secs(1));
        assert!(o.due_for(1, now, 100).is_empty());
        assert_eq!(o.next_release(), Some(now + Duration::from_secs(1)));
        let later = now + Duration::from_secs(1);
        let ids: Vec<_> = o
            .due_for(1, later, 100)
            .into_iter()
            .map(|e| e.id.0)
            .collect();
        assert_eq!(ids, ["8", "9", "10"]);
        assert_eq!(o.next_release(), None);
        // A new link gets everything again, in order.
        assert_eq!(o.due_for(2, later, 100).len(), 9);
        assert_eq!(o.take_expired(now + Duration::from_secs(60)).len(), 9);
        assert!(o.is_empty());
    }
}
