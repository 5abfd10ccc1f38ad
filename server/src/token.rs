//! Signed bearer tokens (docs/PROTOCOL.md section 6): `base64url(payload).base64url(HMAC-SHA256)`
//! with payload `{"sub":"<user>","exp":<unix seconds>}`.
//!
//! Only minting and checking strings lives here; where a token is read from (query, header) and how
//! a failure is reported belongs to `request`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use lifeline_core::protocol::{validate_id, ErrorCode};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<Sha256>;

#[derive(Serialize, Deserialize)]
struct Payload {
    sub: String,
    exp: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not two base64url parts, or the payload is not the expected JSON.
    Malformed,
    /// The signature does not match the payload under this server's secret.
    Forged,
    /// The token was genuine but its `exp` has passed.
    Expired,
}

impl TokenError {
    /// The protocol error code for this failure.
    pub fn code(self) -> ErrorCode {
        match self {
            TokenError::Expired => ErrorCode::TokenExpired,
            TokenError::Malformed | TokenError::Forged => ErrorCode::Unauthorized,
        }
    }

    /// A human-readable reason.
    pub fn message(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed token",
            TokenError::Forged => "token signature does not match",
            TokenError::Expired => "token has expired",
        }
    }
}

fn mac(secret: &str) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length")
}

/// Mints a token for `user` that expires at `exp_unix_secs` (seconds since the Unix epoch).
pub fn make_token(secret: &str, user: &str, exp_unix_secs: u64) -> String {
    let payload = serde_json::to_vec(&Payload {
        sub: user.to_string(),
        exp: exp_unix_secs,
    })
    .expect("token payload serializes");
    let mut m = mac(secret);
    m.update(&payload);
    let sig = m.finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

/// Checks `token` against `secret` at time `now_unix_secs`; returns the user it names.
pub fn verify_token(secret: &str, token: &str, now_unix_secs: u64) -> Result<String, TokenError> {
    let (payload_b64, sig_b64) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| TokenError::Malformed)?;
    let mut m = mac(secret);
    m.update(&payload);
    m.verify_slice(&sig).map_err(|_| TokenError::Forged)?;
    let payload: Payload = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    validate_id("sub", &payload.sub).map_err(|_| TokenError::Malformed)?;
    if payload.exp <= now_unix_secs {
        return Err(TokenError::Expired);
    }
    Ok(payload.sub)
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
