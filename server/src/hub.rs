//! The live fan-out: one broadcast channel carrying every committed message and every ephemeral
//! event (presence, joins, typing, frames addressed to one user), and the presence counter. An event costs its publisher O(1)
//! whatever the memberships involved; each receiving stream works out its own frames.
//!
//! Each stream filters the channel for its own user (see [`crate::feed`]). Nothing here is stored;
//! storage and sequence numbers belong to [`crate::store`] and [`crate::writer`].
//!
//! In cluster mode a [`Relay`] forwards this instance's presence changes and typing to the other
//! instances, and [`Hub::remote_presence`] and friends take theirs: a user is online while any
//! instance has a stream of theirs.
//!
//! Large rooms: per-member presence in a conversation of N members costs N² frames when all of
//! them connect (each member is told about each other), and every event wakes every stream. So a
//! conversation with more than `presence_max_members` members carries no `presence` frames, and
//! a connect or join that concerns only such conversations publishes nothing.

use crate::members::Members;
use lifeline_core::protocol::{Message, ServerFrame};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::broadcast;

/// One event of the live fan-out.
#[derive(Debug)]
pub enum Live {
    /// A committed message, in sequence order.
    Msg(Message),
    /// `user` came online or went offline: one event whatever their memberships; each stream
    /// turns it into `presence` frames for the conversations it shares with `user`.
    UserPresence { user: String, online: bool },
    /// `user` joined `conv`: one event, however many members `conv` has. The joiner's streams
    /// learn which members are online; the members' streams learn the joiner is (if so).
    Joined { conv: String, user: String },
    /// A member is typing in `conv`.
    Typing { conv: String, user: String },
    /// A frame for every stream of one user (e.g. `forbidden` when the application revokes a
    /// membership).
    Direct { to: String, frame: ServerFrame },
}

/// Where this instance's presence changes and typing go for the other instances (cluster mode).
/// Calls must not block: they run in the drop of a stream's guard.
pub trait Relay: Send + Sync {
    /// `user`'s first stream on this instance opened (`true`) or its last one closed.
    fn presence(&self, user: &str, online: bool);
    /// A member is typing in `conv`.
    fn typing(&self, conv: &str, user: &str);
}

/// The broadcast channel and who is online.
pub struct Hub {
    tx: broadcast::Sender<Arc<Live>>,
    online: Mutex<HashMap<String, usize>>,
    /// Users online on other instances, with the ids of those instances.
    remote: Mutex<HashMap<String, HashSet<String>>>,
    relay: OnceLock<Arc<dyn Relay>>,
    members: Arc<Members>,
    /// Conversations with more members carry no presence (see the module's documentation).
    presence_max_members: usize,
}

impl Hub {
    /// A hub whose streams may fall `capacity` events behind before they re-read storage, with
    /// presence in conversations of at most `presence_max_members` members.
    pub fn new(capacity: usize, members: Arc<Members>, presence_max_members: usize) -> Hub {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Hub {
            tx,
            online: Mutex::new(HashMap::new()),
            remote: Mutex::new(HashMap::new()),
            relay: OnceLock::new(),
            members,
            presence_max_members,
        }
    }

    /// Whether `conv` is small enough to carry presence frames.
    pub fn presence_in(&self, conv: &str) -> bool {
        self.members.member_count(conv) <= self.presence_max_members
    }

    /// Forwards presence changes and typing to the other instances from now on.
    pub fn set_relay(&self, relay: Arc<dyn Relay>) {
        let _ = self.relay.set(relay);
    }

    /// A member is typing in `conv`: this instance's streams and the other instances'.
    pub fn typing(&self, conv: String, user: String) {
        if let Some(relay) = self.relay.get() {
            relay.typing(&conv, &user);
        }
        self.publish(Live::Typing { conv, user });
    }

    fn online_here(&self, user: &str) -> bool {
        self.online
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .is_some_and(|n| *n > 0)
    }

    fn online_elsewhere(&self, user: &str) -> bool {
        self.remote
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(user)
    }

    /// The users with a stream on this instance (what a cluster registration lists).
    pub fn local_users(&self) -> Vec<String> {
        let online = self.online.lock().unwrap_or_else(|p| p.into_inner());
        online.keys().cloned().collect()
    }

    /// Instance `instance` reports `user` online there or not; announces the change here when
    /// it changes whether `user` is online anywhere.
    pub fn remote_presence(&self, instance: &str, user: &str, online: bool) {
        let here = self.online_here(user);
        let changed = {
            let mut remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
            if online {
                let set = remote.entry(user.to_string()).or_default();
                set.insert(instance.to_string()) && set.len() == 1
            } else {
                let emptied = remote
                    .get_mut(user)
                    .is_some_and(|set| set.remove(instance) && set.is_empty());
                if emptied {
                    remote.remove(user);
                }
                emptied
            }
        };
        if changed && !here {
            self.announce(user, online);
        }
    }

    /// Instance `instance` has exactly `users` online (its registration, read after a sync or
    /// an outage): applies the difference.
    pub fn remote_replace(&self, instance: &str, users: &HashSet<String>) {
        let gone: Vec<String> = {
            let remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
            remote
                .iter()
                .filter(|(u, set)| set.contains(instance) && !users.contains(*u))
                .map(|(u, _)| u.clone())
                .collect()
        };
        for user in gone {
            self.remote_presence(instance, &user, false);
        }
        for user in users {
            self.remote_presence(instance, user, true);
        }
    }

    /// The other instances this hub holds users of.
    pub fn remote_instances(&self) -> HashSet<String> {
        let remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
        remote.values().flatten().cloned().collect()
    }

    /// A receiver for every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Live>> {
        self.tx.subscribe()
    }

    /// Publishes an event to every stream (a send with no receiver is not an error).
    pub fn publish(&self, live: Live) {
        let _ = self.tx.send(Arc::new(live));
    }

    /// Whether `user` has at least one live stream, here or (cluster mode) on another instance.
    pub fn is_online(&self, user: &str) -> bool {
        self.online_here(user) || self.online_elsewhere(user)
    }

    /// Marks one more live stream of `user`; the user is online until every guard is dropped.
    pub fn online(self: &Arc<Self>, user: &str) -> PresenceGuard {
        let first = {
            let mut online = self.online.lock().unwrap_or_else(|p| p.into_inner());
            let n = online.entry(user.to_string()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if first {
            if let Some(relay) = self.relay.get() {
                relay.presence(user, true);
            }
            if !self.online_elsewhere(user) {
                self.announce(user, true);
            }
        }
        PresenceGuard {
            hub: Arc::clone(self),
            user: user.to_string(),
        }
    }

    /// One event, not one per conversation of `user`: connecting costs O(1) however many
    /// conversations `user` belongs to.
    /// Nothing when every conversation of `user` is too large for presence.
    fn announce(&self, user: &str, online: bool) {
        if !self.members.in_conv_within(user, self.presence_max_members) {
            return;
        }
        self.publish(Live::UserPresence {
            user: user.to_string(),
            online,
        });
    }

    /// After `user` joined `conv`: tell the others if `user` is online, and tell `user` who of
    /// the others is online. One event: the work is done by the streams that receive it, and
    /// a join costs the other streams O(1) however large `conv` is. Nothing when `conv` is too
    /// large for presence.
    pub fn announce_join(&self, user: &str, conv: &str) {
        if !self.presence_in(conv) {
            return;
        }
        self.publish(Live::Joined {
            conv: conv.to_string(),
            user: user.to_string(),
        });
    }
}

/// Keeps a user online while it lives.
pub struct PresenceGuard {
    hub: Arc<Hub>,
    user: String,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        let last = {
            let mut online = self.hub.online.lock().unwrap_or_else(|p| p.into_inner());
            match online.get_mut(&self.user) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    online.remove(&self.user);
                    true
                }
                None => false,
            }
        };
        if last {
            if let Some(relay) = self.hub.relay.get() {
                relay.presence(&self.user, false);
            }
            if !self.hub.online_elsewhere(&self.user) {
                self.hub.announce(&self.user, false);
            }
        }
    }
}
