//! What a failed connection or request tells the core: its [`FailureKind`] (refused, DNS,
//! unreachable, certificate, TLS, other), found by walking the error's source chain, and a
//! description that names the host and never holds a token.
//!
//! Classification only; what each kind means is the session's decision.

use lifeline_core::FailureKind;
use std::error::Error;
use std::io;

/// Classifies `error` and describes it for `url` (used for the host name only).
pub(crate) fn describe(url: &str, error: &(dyn Error + 'static)) -> (FailureKind, String) {
    let kind = classify(error);
    let chain = chain_text(error);
    let detail = match kind {
        FailureKind::Certificate => {
            format!("the certificate of {} was refused: {chain}", host(url))
        }
        FailureKind::Tls => format!("TLS with {} failed: {chain}", host(url)),
        _ => chain,
    };
    (kind, crate::redact::text(&detail))
}

/// The kind of the first error in the chain that says what happened.
pub(crate) fn classify(error: &(dyn Error + 'static)) -> FailureKind {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(kind) = of_one(e) {
            return kind;
        }
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            // `io::Error::source` skips the error it wraps: look at it directly.
            if let Some(kind) = of_one(inner) {
                return kind;
            }
        }
        current = e.source();
    }
    FailureKind::Other
}

fn of_one(e: &(dyn Error + 'static)) -> Option<FailureKind> {
    #[cfg(feature = "tls")]
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(match tls {
            rustls::Error::InvalidCertificate(_) => FailureKind::Certificate,
            _ => FailureKind::Tls,
        });
    }
    if let Some(io) = e.downcast_ref::<io::Error>() {
        match io.kind() {
            io::ErrorKind::ConnectionRefused => return Some(FailureKind::Refused),
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                return Some(FailureKind::Unreachable)
            }
            _ => {}
        }
    }
    // Some layers (hyper-util's connector) hand the TLS error on boxed behind a type this crate
    // cannot name, where no downcast reaches it; its text is rustls's own.
    let text = e.to_string();
    if text.starts_with("invalid peer certificate") {
        return Some(FailureKind::Certificate);
    }
    if text.contains("failed to lookup address") || text.starts_with("dns error") {
        return Some(FailureKind::Dns);
    }
    None
}

/// Every distinct message of the chain, outermost first, joined with ": ".
fn chain_text(error: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source().or_else(|| {
            e.downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
                .map(|inner| inner as &(dyn Error + 'static))
                .filter(|inner| !parts.iter().any(|p| p.contains(&inner.to_string())))
        });
    }
    parts.join(": ")
}

/// `host[:port]` of `url`.
fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    &rest[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_connections_are_told_apart() {
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(classify(&refused), FailureKind::Refused);
        let (kind, detail) = describe("ws://h:1/v1/ws?token=abc", &refused);
        assert_eq!(kind, FailureKind::Refused);
        assert_eq!(detail, "refused");
    }

    async fn closed_port() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        addr.to_string()
    }

    #[tokio::test]
    async fn real_refused_connections_are_refused_on_http_and_websocket() {
        let addr = closed_port().await;
        let url = format!("http://{addr}/v1/poll?v=1");
        let error = reqwest::get(&url).await.unwrap_err().without_url();
        assert_eq!(describe(&url, &error).0, FailureKind::Refused, "{error:?}");
        let url = format!("ws://{addr}/v1/ws?v=1");
        let error = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_err();
        assert_eq!(describe(&url, &error).0, FailureKind::Refused, "{error:?}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_certificate_error_inside_an_io_error_is_a_certificate_failure() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = io::Error::new(io::ErrorKind::InvalidData, tls);
        let (kind, detail) = describe("https://chat.example:8443/v1/sse?v=1", &io);
        assert_eq!(kind, FailureKind::Certificate);
        assert!(detail.contains("chat.example:8443"), "{detail}");
        assert!(detail.contains("UnknownIssuer"), "{detail}");
    }
}
