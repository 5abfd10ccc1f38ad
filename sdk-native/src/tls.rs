//! TLS for every transport: the one rustls `ClientConfig` that WebSocket and HTTP (SSE, long
//! polling, sends, history) share, built once per client when its server URL is `https://` or
//! `wss://`.
//!
//! Trust: the platform's roots (rustls-native-certs, which honours `SSL_CERT_FILE` and
//! `SSL_CERT_DIR`) plus the CA certificates the application adds
//! ([`crate::ClientBuilder::ca_file`], [`crate::ClientBuilder::add_root_certificate_pem`]). Nothing
//! else lives here: how a refused certificate is reported is `failure.rs`'s concern, what it means
//! is the core's. Without the `tls` feature an `https://` URL is refused at build time.

use crate::error::BuildError;
#[cfg(feature = "tls")]
use std::sync::Arc;

/// Extra CA certificates, as PEM text, with where each came from (for error messages).
#[derive(Clone, Default)]
pub(crate) struct ExtraRoots {
    pems: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for ExtraRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origins: Vec<&str> = self.pems.iter().map(|(o, _)| o.as_str()).collect();
        f.debug_tuple("ExtraRoots").field(&origins).finish()
    }
}

impl ExtraRoots {
    /// Adds the PEM certificates in `pem`; `origin` names them in errors.
    pub(crate) fn add(&mut self, origin: String, pem: Vec<u8>) {
        self.pems.push((origin, pem));
    }

    /// How many PEM texts were added.
    pub(crate) fn len(&self) -> usize {
        self.pems.len()
    }

    /// Every certificate, parsed; an unreadable or empty PEM is a [`BuildError::Tls`].
    #[cfg(feature = "tls")]
    fn certificates(&self) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, BuildError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let mut out = Vec::new();
        for (origin, pem) in &self.pems {
            let before = out.len();
            for cert in CertificateDer::pem_slice_iter(pem) {
                out.push(cert.map_err(|e| BuildError::Tls(format!("{origin}: {e}")))?);
            }
            if out.len() == before {
                return Err(BuildError::Tls(format!(
                    "{origin}: no PEM certificate (-----BEGIN CERTIFICATE-----) found"
                )));
            }
        }
        Ok(out)
    }
}

/// The TLS half of a client's transports: empty for a plain `http://` server.
#[derive(Clone, Default)]
pub(crate) struct Tls {
    #[cfg(feature = "tls")]
    config: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// What a client of a server (`secure`: `https://` or `wss://`) needs. Checks the added
    /// certificates even for a plain server, so that a bad CA file is found at once.
    pub(crate) fn new(secure: bool, extra: &ExtraRoots) -> Result<Tls, BuildError> {
        #[cfg(feature = "tls")]
        {
            let certificates = extra.certificates()?;
            if !secure {
                return Ok(Tls { config: None });
            }
            Ok(Tls {
                config: Some(client_config(certificates)?),
            })
        }
        #[cfg(not(feature = "tls"))]
        {
            if secure || !extra.pems.is_empty() {
                return Err(BuildError::TlsNotCompiled);
            }
            Ok(Tls {})
        }
    }

    /// `builder` set up to use this TLS configuration.
    pub(crate) fn http(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        #[cfg(feature = "tls")]
        if let Some(config) = &self.config {
            return builder.use_preconfigured_tls(rustls::ClientConfig::clone(config));
        }
        builder
    }

    /// The WebSocket connector for this configuration (`None`: plain connections only).
    pub(crate) fn ws_connector(&self) -> Option<tokio_tungstenite::Connector> {
        #[cfg(feature = "tls")]
        if let Some(config) = &self.config {
            return Some(tokio_tungstenite::Connector::Rustls(config.clone()));
        }
        None
    }
}

/// Platform roots plus `extra`. Fails when no root at all could be found.
#[cfg(feature = "tls")]
fn client_config(
    extra: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<Arc<rustls::ClientConfig>, BuildError> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable platform certificates are skipped: one bad file must not disable TLS.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for cert in extra {
        roots
            .add(cert)
            .map_err(|e| BuildError::Tls(format!("an added CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(BuildError::Tls(
            "no trusted CA certificate: the platform has none (install ca-certificates or set \
             SSL_CERT_FILE) and none was added with ca_file"
                .to_owned(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BuildError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "tls"))]
    #[test]
    fn without_the_feature_a_secure_url_is_refused_at_build() {
        let refused = Tls::new(true, &ExtraRoots::default());
        assert!(matches!(refused, Err(BuildError::TlsNotCompiled)));
        assert!(Tls::new(false, &ExtraRoots::default()).is_ok());
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_pem_without_a_certificate_is_refused() {
        let mut extra = ExtraRoots::default();
        extra.add("ca.pem".into(), b"not a certificate".to_vec());
        match Tls::new(true, &extra) {
            Err(BuildError::Tls(text)) => assert!(text.contains("ca.pem"), "{text}"),
            other => panic!("{other:?}"),
        }
    }
}
