//! The HTTPS client the ACME manager talks through: the platform's roots
//! plus the operator's extra roots (`--acme-ca-roots`, for private CAs such
//! as step-ca or a test CA).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::BodyWrapper;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// An HTTPS-only client usable by `instant-acme` and the DNS providers.
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// Reads the certificates of a PEM file.
pub fn read_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("--acme-ca-roots {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--acme-ca-roots {}: {e}", path.display()))?;
    if roots.is_empty() {
        return Err(format!(
            "--acme-ca-roots {}: holds no PEM certificate",
            path.display()
        ));
    }
    Ok(roots)
}

/// A client trusting the platform's roots and those in `extra_roots` (a
/// PEM file), TLS 1.2 and 1.3 only.
pub fn https_client(extra_roots: Option<&Path>) -> Result<HttpsClient, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match extra_roots {
        Some(p) => read_roots(p)?,
        None => Vec::new(),
    };
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider.clone())
            .map_err(|e| format!("loading the trusted roots: {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}
