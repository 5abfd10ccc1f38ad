//! The `lifeline` command against a TLS server whose certificate it cannot trust: `send` reports
//! the certificate error (host and reason) with exit code 3 at once, not "no acknowledgement"
//! after its timeout; and a `--ca-file` that holds no certificate is refused before connecting.

use rcgen::{CertificateParams, KeyPair};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// A TLS listener on loopback with a certificate from a CA nobody trusts (self-signed).
async fn untrusted_tls_server() -> String {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    format!("https://{addr}")
}

async fn lifeline(args: &[&str]) -> (i32, String, Duration) {
    let start = Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lifeline"))
        .args(args)
        .env_remove("LIFELINE_URL")
        .env_remove("LIFELINE_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        start.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_reports_the_certificate_error_at_once() {
    let url = untrusted_tls_server().await;
    let (code, stderr, took) = lifeline(&[
        "--url",
        &url,
        "--token",
        "t",
        "--timeout",
        "20",
        "send",
        "--conv",
        "general",
        "hi",
    ])
    .await;
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(
        stderr.contains(url.trim_start_matches("https://")),
        "{stderr}"
    );
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    assert!(!stderr.contains("no acknowledgement"), "{stderr}");
    // Generous for a loaded machine; the old command waited for its whole --timeout.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_without_a_certificate_is_refused() {
    let dir = std::env::temp_dir().join(format!("lifeline-cli-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ca.pem");
    std::fs::write(&path, "not a certificate").unwrap();
    let (code, stderr, _) = lifeline(&[
        "--url",
        "https://127.0.0.1:9",
        "--token",
        "t",
        "--ca-file",
        path.to_str().unwrap(),
        "send",
        "--conv",
        "general",
        "hi",
    ])
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("ca.pem"), "{stderr}");
}
