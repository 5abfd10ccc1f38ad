//! Signed bearer tokens (docs/PROTOCOL.md section 6, docs/SECURITY.md):
//! `base64url(payload).base64url(HMAC-SHA256(key, payload))` with payload
//! `{"sub":"<user>","exp":<unix seconds>,"kid":"<key id>","convs":[patterns],"ops":[operations]}`.
//!
//! Only minting and checking strings lives here: the verification keys (several at once, for
//! rotation), the signature check (constant time, against every key, before the payload is
//! parsed), the bound on `exp`, and the claims a genuine token carries. Where a token is read from
//! and how a failure is reported belongs to `request`; what the claims allow belongs to `access`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use lifeline_core::protocol::{validate_id, ErrorCode};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<Sha256>;

/// The shortest secret accepted, in bytes (HMAC-SHA256 wants at least its output size).
pub const MIN_SECRET_BYTES: usize = 32;

/// The default bound on how far in the future a token's `exp` may lie: 24 hours.
pub const DEFAULT_MAX_TOKEN_TTL_SECS: u64 = 24 * 3600;

/// A verification (and possibly signing) key: an id and an HMAC secret.
///
/// `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey {
    /// The key id, matched against a token's `kid`.
    pub kid: String,
    secret: String,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("kid", &self.kid)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why a key could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The key id is not 1 to 64 letters, digits, `-`, `_`, `.`.
    BadKid,
    /// The secret is shorter than [`MIN_SECRET_BYTES`] (an empty one included).
    TooShort { kid: String, len: usize },
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::BadKid => f.write_str(
                "a token key id must be 1 to 64 letters, digits, '-', '_' or '.' (KID:SECRET)",
            ),
            KeyError::TooShort { kid, len } => write!(
                f,
                "token secret `{kid}` is {len} bytes; at least {MIN_SECRET_BYTES} are required"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

impl TokenKey {
    /// A key with id `kid`; refuses a bad id or a secret under [`MIN_SECRET_BYTES`].
    pub fn new(kid: &str, secret: &str) -> Result<TokenKey, KeyError> {
        let kid_ok = !kid.is_empty()
            && kid.len() <= 64
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !kid_ok {
            return Err(KeyError::BadKid);
        }
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError::TooShort {
                kid: kid.to_string(),
                len: secret.len(),
            });
        }
        Ok(TokenKey {
            kid: kid.to_string(),
            secret: secret.to_string(),
        })
    }

    /// Parses the `--token-secret` form: `KID:SECRET`, or a bare `SECRET` (key id `default`)
    /// when the value has no `:`.
    pub fn parse(spec: &str) -> Result<TokenKey, KeyError> {
        match spec.split_once(':') {
            Some((kid, secret)) => TokenKey::new(kid, secret),
            None => TokenKey::new("default", spec),
        }
    }

    /// Whether this key's secret is `secret` (to refuse a well-known one).
    pub fn has_secret(&self, secret: &str) -> bool {
        self.secret == secret
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        HmacSha256::new_from_slice(self.secret.as_bytes()).expect("HMAC takes keys of any length")
    }
}

/// What a token says about its holder. Everything but `sub` and `exp` is optional on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// The id of the key that signed the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Conversation patterns the holder may join: an exact id, `prefix*`, or `*`. None: only
    /// conversations the application's backend made the user a member of (admin API).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub convs: Vec<String>,
    /// Operations allowed in those conversations (`send`, `typing`, `presence`, `history`).
    /// Absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<Vec<String>>,
}

impl Claims {
    /// Claims for `user` until `exp` granting every conversation and operation (dev tokens,
    /// tests).
    pub fn everything(user: &str, exp: u64) -> Claims {
        Claims {
            sub: user.to_string(),
            exp,
            kid: None,
            convs: vec!["*".to_string()],
            ops: None,
        }
    }
}

/// Why a token was refused. Never carries the token itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not two base64url parts, or the payload is not the expected JSON.
    Malformed,
    /// The signature does not match the payload under any of this server's keys, or the `kid`
    /// names another key than the one that matched.
    Forged,
    /// The token was genuine but its `exp` has passed.
    Expired,
    /// The token was genuine but its `exp` lies further in the future than the server allows.
    ExpiryTooFar,
}

impl TokenError {
    /// The protocol error code for this failure.
    pub fn code(self) -> ErrorCode {
        match self {
            TokenError::Expired => ErrorCode::TokenExpired,
            TokenError::Malformed | TokenError::Forged | TokenError::ExpiryTooFar => {
                ErrorCode::Unauthorized
            }
        }
    }

    /// A human-readable reason.
    pub fn message(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed token",
            TokenError::Forged => "token signature does not match",
            TokenError::Expired => "token has expired",
            TokenError::ExpiryTooFar => "token expiry is further in the future than allowed",
        }
    }
}

/// Mints a token carrying `claims`, signed with `key` (whose id is written into `kid`).
pub fn mint(key: &TokenKey, claims: &Claims) -> String {
    let mut claims = claims.clone();
    claims.kid = Some(key.kid.clone());
    let payload = serde_json::to_vec(&claims).expect("token payload serializes");
    let mut m = key.mac();
    m.update(&payload);
    let sig = m.finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

/// Mints a token for `user` that expires at `exp_unix_secs`, granting every conversation,
/// signed with a raw `secret` and no `kid` (for tests that forge or hand-craft tokens).
pub fn make_token(secret: &str, user: &str, exp_unix_secs: u64) -> String {
    let payload = serde_json::to_vec(&Claims::everything(user, exp_unix_secs))
        .expect("token payload serializes");
    let mut m =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    m.update(&payload);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    )
}

/// Checks `token` against every key in `keys` at time `now_unix_secs`, refusing an `exp` more
/// than `max_ttl_secs` ahead; returns its claims.
///
/// The signature is checked (in constant time, against every key, whatever matches first) before
/// the payload is parsed; then a `kid`, if present, must name the key that matched.
pub fn verify(
    keys: &[TokenKey],
    token: &str,
    now_unix_secs: u64,
    max_ttl_secs: u64,
) -> Result<Claims, TokenError> {
    let (payload_b64, sig_b64) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| TokenError::Malformed)?;
    // Every key is tried, so the time taken does not tell which one matched.
    let mut matched: Option<&TokenKey> = None;
    for key in keys {
        let mut m = key.mac();
        m.update(&payload);
        if m.verify_slice(&sig).is_ok() && matched.is_none() {
            matched = Some(key);
        }
    }
    let key = matched.ok_or(TokenError::Forged)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if claims.kid.as_deref().is_some_and(|kid| kid != key.kid) {
        return Err(TokenError::Forged);
    }
    validate_id("sub", &claims.sub).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now_unix_secs {
        return Err(TokenError::Expired);
    }
    if claims.exp - now_unix_secs > max_ttl_secs {
        return Err(TokenError::ExpiryTooFar);
    }
    Ok(claims)
}

/// Checks a token without `kid` (as [`make_token`] mints) against one raw `secret`, with no bound
/// on `exp`; returns the user it names.
pub fn verify_token(secret: &str, token: &str, now_unix_secs: u64) -> Result<String, TokenError> {
    let key = TokenKey {
        kid: String::new(),
        secret: secret.to_string(),
    };
    verify(std::slice::from_ref(&key), token, now_unix_secs, u64::MAX).map(|c| c.sub)
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn round_trip_expiry_and_forgery() {
        let t = make_token("s3cret", "alice", 1_000);
        assert_eq!(verify_token("s3cret", &t, 999).unwrap(), "alice");
        assert_eq!(verify_token("s3cret", &t, 1_000), Err(TokenError::Expired));
        assert_eq!(verify_token("other", &t, 999), Err(TokenError::Forged));
        assert_eq!(
            verify_token("s3cret", "nope", 0),
            Err(TokenError::Malformed)
        );
        let (p, _) = t.split_once('.').unwrap();
        let forged = format!("{p}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert_eq!(verify_token("s3cret", &forged, 0), Err(TokenError::Forged));
    }

    #[test]
    fn keys_refuse_short_secrets_and_bad_ids() {
        assert!(matches!(
            TokenKey::parse(""),
            Err(KeyError::TooShort { len: 0, .. })
        ));
        assert!(matches!(
            TokenKey::parse("k1:short"),
            Err(KeyError::TooShort { len: 5, .. })
        ));
        assert_eq!(TokenKey::parse(&format!("k/1:{A}")), Err(KeyError::BadKid));
        assert_eq!(TokenKey::parse(A).unwrap().kid, "default");
        let k = TokenKey::parse(&format!("k1:{A}")).unwrap();
        assert_eq!(k.kid, "k1");
        assert!(!format!("{k:?}").contains(A));
    }

    #[test]
    fn rotation_kid_and_expiry_bound() {
        let k1 = TokenKey::new("k1", A).unwrap();
        let k2 = TokenKey::new("k2", B).unwrap();
        let t1 = mint(&k1, &Claims::everything("alice", 1_000));
        let both = [k2.clone(), k1.clone()];
        assert_eq!(verify(&both, &t1, 0, u64::MAX).unwrap().sub, "alice");
        assert_eq!(
            verify(std::slice::from_ref(&k2), &t1, 0, u64::MAX),
            Err(TokenError::Forged)
        );
        // A kid naming another key than the one whose signature matched is refused.
        let mut c = Claims::everything("alice", 1_000);
        c.kid = Some("k2".into());
        let payload = serde_json::to_vec(&c).unwrap();
        let mut m = k1.mac();
        m.update(&payload);
        let lying = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
        );
        assert_eq!(verify(&both, &lying, 0, u64::MAX), Err(TokenError::Forged));
        let forever = mint(&k1, &Claims::everything("alice", u64::MAX));
        assert_eq!(
            verify(&both, &forever, 0, DEFAULT_MAX_TOKEN_TTL_SECS),
            Err(TokenError::ExpiryTooFar)
        );
        assert!(verify(&both, &t1, 0, 1_000).is_ok());
        assert_eq!(verify(&both, &t1, 0, 999), Err(TokenError::ExpiryTooFar));
    }
}
