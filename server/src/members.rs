//! The in-memory membership cache in front of the `members` table: who belongs to which
//! conversation, answered without touching SQLite.
//!
//! Only the single writer changes it, and only after the change is committed (with storage shared
//! between instances, also [`crate::tail`], with the other instances' committed changes);
//! everything else only reads it. It holds no messages and makes no authorization decision by itself.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

#[derive(Default)]
struct Maps {
    by_user: HashMap<String, HashSet<String>>,
    by_conv: HashMap<String, HashSet<String>>,
}

/// Conversation memberships, indexed both ways.
#[derive(Default)]
pub struct Members {
    maps: RwLock<Maps>,
}

impl Members {
    /// A cache holding `pairs` of (user, conversation).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Members {
        let m = Members::default();
        for (user, conv) in pairs {
            m.join(&user, &conv);
        }
        m
    }

    /// Replaces the whole cache with `pairs` (after missing part of the change log).
    pub(crate) fn replace(&self, pairs: impl IntoIterator<Item = (String, String)>) {
        let fresh = Members::from_pairs(pairs);
        let maps = std::mem::take(&mut *fresh.write());
        *self.write() = maps;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `user` is a member of `conv`.
    pub fn is_member(&self, user: &str, conv: &str) -> bool {
        self.read()
            .by_user
            .get(user)
            .is_some_and(|convs| convs.contains(conv))
    }

    /// How many members `conv` has.
    pub fn member_count(&self, conv: &str) -> usize {
        self.read().by_conv.get(conv).map_or(0, |u| u.len())
    }

    /// Whether `user` belongs to a conversation of at most `max_members` members.
    pub fn in_conv_within(&self, user: &str, max_members: usize) -> bool {
        let maps = self.read();
        maps.by_user.get(user).is_some_and(|convs| {
            convs
                .iter()
                .any(|c| maps.by_conv.get(c).map_or(0, |u| u.len()) <= max_members)
        })
    }

    /// The conversations `user` belongs to.
    pub fn convs_of(&self, user: &str) -> Vec<String> {
        self.read()
            .by_user
            .get(user)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The members of `conv`.
    pub fn members_of(&self, conv: &str) -> Vec<String> {
        self.read()
            .by_conv
            .get(conv)
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn join(&self, user: &str, conv: &str) {
        let mut m = self.write();
        m.by_user
            .entry(user.to_string())
            .or_default()
            .insert(conv.to_string());
        m.by_conv
            .entry(conv.to_string())
            .or_default()
            .insert(user.to_string());
    }

    pub(crate) fn leave(&self, user: &str, conv: &str) {
        let mut m = self.write();
        if let Some(c) = m.by_user.get_mut(user) {
            c.remove(conv);
            if c.is_empty() {
                m.by_user.remove(user);
            }
        }
        if let Some(u) = m.by_conv.get_mut(conv) {
            u.remove(user);
            if u.is_empty() {
                m.by_conv.remove(conv);
            }
        }
    }
}
