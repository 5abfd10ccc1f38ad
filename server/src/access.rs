//! What one authenticated stream or request may do: the user, when its token expires, the
//! conversation patterns and operations its token grants, and the decision "may this user read or
//! act in this conversation", which combines the token with the application's grants (the admin
//! API's members, [`crate::members::Members`] used as a grant set).
//!
//! The decision is made here and only here; transports and the feed ask it.

use crate::members::Members;
use crate::token::{unix_now_ms, Claims};

/// An operation a token may allow in the conversations it may join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `send` messages.
    Send,
    /// `typing` notices (sending them).
    Typing,
    /// See `presence` frames.
    Presence,
    /// Read `/v1/history`.
    History,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Send => "send",
            Op::Typing => "typing",
            Op::Presence => "presence",
            Op::History => "history",
        }
    }
}

/// One authenticated principal.
#[derive(Debug, Clone)]
pub struct Access {
    /// The user.
    pub user: String,
    /// Token expiry, seconds since the Unix epoch.
    pub exp: u64,
    convs: Vec<String>,
    ops: Option<Vec<String>>,
}

/// Whether `pattern` (an exact id, `prefix*` or `*`) matches `conv`.
pub fn pattern_matches(pattern: &str, conv: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => conv.starts_with(prefix),
        None => pattern == conv,
    }
}

impl Access {
    /// The access a verified token grants.
    pub fn from_claims(claims: Claims) -> Access {
        Access {
            user: claims.sub,
            exp: claims.exp,
            convs: claims.convs,
            ops: claims.ops,
        }
    }

    /// Whether the token itself lets the user join `conv`.
    pub fn token_allows(&self, conv: &str) -> bool {
        self.convs.iter().any(|p| pattern_matches(p, conv))
    }

    /// Whether the user may be in `conv` now: the token allows it, or the application granted it
    /// (`grants`, filled by the admin API).
    pub fn may_join(&self, grants: &Members, conv: &str) -> bool {
        self.token_allows(conv) || grants.is_member(&self.user, conv)
    }

    /// When the token expires, on the tokio clock (for closing open streams at expiry).
    pub fn expires_at(&self) -> tokio::time::Instant {
        let left_ms = self.exp.saturating_mul(1000).saturating_sub(unix_now_ms());
        // Far-off expiries are capped (the token's `exp` is bounded anyway) to keep the sum safe.
        tokio::time::Instant::now() + std::time::Duration::from_millis(left_ms.min(u32::MAX as u64))
    }

    /// Whether the token allows `op` (in conversations the user may join).
    pub fn may(&self, op: Op) -> bool {
        self.ops
            .as_ref()
            .is_none_or(|ops| ops.iter().any(|o| o == op.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(convs: &[&str], ops: Option<&[&str]>) -> Access {
        Access::from_claims(Claims {
            sub: "alice".into(),
            exp: 1,
            kid: None,
            convs: convs.iter().map(|s| s.to_string()).collect(),
            ops: ops.map(|o| o.iter().map(|s| s.to_string()).collect()),
        })
    }

    #[test]
    fn patterns_ops_and_grants() {
        let a = access(&["general", "team-a:*"], Some(&["send"]));
        assert!(a.token_allows("general"));
        assert!(!a.token_allows("general2"));
        assert!(a.token_allows("team-a:x"));
        assert!(!a.token_allows("team-b:x"));
        assert!(a.may(Op::Send));
        assert!(!a.may(Op::Typing));
        let grants = Members::default();
        assert!(!a.may_join(&grants, "dm-1"));
        grants.join("alice", "dm-1");
        assert!(a.may_join(&grants, "dm-1"));
        let all = access(&["*"], None);
        assert!(all.token_allows("anything") && all.may(Op::History));
        assert!(!access(&[], None).token_allows("general"));
    }
}
