//! `/api/certificates`: uploads, ACME requests, and certificate details.
//!
//! An upload is parsed before it is stored: the key must match the
//! certificate, the certificate must be valid now, and its names come from
//! its SANs. Details (issuer, validity, days left, the hosts that use it)
//! are read from the certificate the engine parsed at compile time. Private
//! keys are never returned.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ppm_core::config::{Certificate, CertificateSource, Config, Id};
use ppm_core::tls::{CertError, ParsedCertificate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::resources::{write, Write};
use super::{Access, ApiError, ApiResult, AppState, Auth, ClientIp, JsonBody, PathParam};
use crate::auth::now_unix;

/// Longest accepted certificate name.
const MAX_NAME: usize = 255;

/// `POST /api/certificates`: an upload or an ACME request, chosen by `source`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum CertificateRequest {
    /// A certificate and key in PEM.
    Upload {
        /// A name for people; defaults to the certificate's first DNS name.
        #[serde(default)]
        #[schemars(length(max = 255))]
        name: Option<String>,
        /// The leaf certificate followed by its chain (intermediates), PEM.
        certificate_pem: String,
        /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
        private_key_pem: String,
    },
    /// A certificate issued through ACME.
    Acme(AcmeRequest),
}

/// An ACME certificate request.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcmeRequest {
    /// A name for people; defaults to the first domain name.
    #[serde(default)]
    #[schemars(length(max = 255))]
    pub name: Option<String>,
    /// Names to certify; wildcards (`*.example.com`) need `dns-01`.
    #[schemars(length(min = 1, max = 100))]
    pub domain_names: Vec<String>,
    /// `http-01` (served by the HTTP listener) or `dns-01`.
    pub challenge: AcmeChallengeKind,
    /// The DNS provider for `dns-01`.
    #[serde(default)]
    pub dns_provider_id: Option<Id>,
}

/// The ACME challenge type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum AcmeChallengeKind {
    /// An HTTP request to `/.well-known/acme-challenge/` on port 80.
    #[serde(rename = "http-01")]
    Http01,
    /// A TXT record at `_acme-challenge.<name>`.
    #[serde(rename = "dns-01")]
    Dns01,
}

/// `PUT /api/certificates/{id}`: rename, or replace an uploaded
/// certificate's PEMs (a manual renewal).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateUpdate {
    /// New name.
    #[serde(default)]
    #[schemars(length(max = 255))]
    pub name: Option<String>,
    /// New certificate and chain; needs `private_key_pem` too.
    #[serde(default)]
    pub certificate_pem: Option<String>,
    /// New key; needs `certificate_pem` too.
    #[serde(default)]
    pub private_key_pem: Option<String>,
}

/// Where a certificate is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertificateStatus {
    /// Ordered, not yet validated.
    Pending,
    /// The CA is validating the challenges.
    Validating,
    /// Issued (or uploaded) and served.
    Issued,
    /// The last order failed; `error` says why.
    Failed,
}

/// A host or stream that serves a certificate.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CertificateUse {
    /// `proxy_host`, `redirection_host`, `dead_host`, `stream` or `settings`.
    pub kind: &'static str,
    /// Its id (0 for settings).
    pub id: Id,
    /// Its domain names (empty for streams and settings).
    pub domain_names: Vec<String>,
}

/// A certificate as the API shows it: never its private key.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CertificateView {
    /// Store id.
    pub id: Id,
    /// A name for people.
    pub name: String,
    /// `upload` or `acme`.
    pub source: CertificateSource,
    /// Names it is for: from its SANs once issued, as requested before.
    pub domain_names: Vec<String>,
    /// Order or issue state.
    pub status: CertificateStatus,
    /// Why the last order failed.
    pub error: Option<String>,
    /// Issuer distinguished name.
    pub issuer: Option<String>,
    /// Subject distinguished name.
    pub subject: Option<String>,
    /// Start of validity, unix seconds.
    pub not_before: Option<i64>,
    /// End of validity, unix seconds.
    pub not_after: Option<i64>,
    /// Whole days until it expires (negative once expired).
    pub days_left: Option<i64>,
    /// SHA-256 fingerprint of the leaf, hex.
    pub fingerprint_sha256: Option<String>,
    /// Chain certificates sent after the leaf.
    pub chain_length: Option<usize>,
    /// The leaf and chain, PEM (public).
    pub certificate_pem: String,
    /// Served to clients whose SNI selects no other certificate.
    pub is_default: bool,
    /// What serves it.
    pub used_by: Vec<CertificateUse>,
    /// The ACME order (attempts, next retry, renewal time), for ACME
    /// certificates.
    pub acme: Option<crate::acme::OrderView>,
}

/// A certificate's order state and error. Uploaded certificates are issued;
/// ACME ones show their order's state as the ACME manager last recorded it.
pub(crate) fn order_status(
    state: &AppState,
    cert: &Certificate,
) -> (CertificateStatus, Option<String>) {
    if cert.source == CertificateSource::Acme {
        if let Some(o) = state.acme.cached_status(cert.id) {
            let status = match o.status.as_str() {
                "validating" => CertificateStatus::Validating,
                "issued" => CertificateStatus::Issued,
                "failed" => CertificateStatus::Failed,
                _ => CertificateStatus::Pending,
            };
            return (status, o.error);
        }
    }
    if cert.certificate_pem.trim().is_empty() {
        (CertificateStatus::Pending, None)
    } else {
        (CertificateStatus::Issued, None)
    }
}

fn uses(config: &Config, id: Id) -> Vec<CertificateUse> {
    let mut out = Vec::new();
    for h in &config.proxy_hosts {
        if h.certificate_id == Some(id) {
            out.push(CertificateUse {
                kind: "proxy_host",
                id: h.id,
                domain_names: h.domain_names.clone(),
            });
        }
    }
    for h in &config.redirection_hosts {
        if h.certificate_id == Some(id) {
            out.push(CertificateUse {
                kind: "redirection_host",
                id: h.id,
                domain_names: h.domain_names.clone(),
            });
        }
    }
    for h in &config.dead_hosts {
        if h.certificate_id == Some(id) {
            out.push(CertificateUse {
                kind: "dead_host",
                id: h.id,
                domain_names: h.domain_names.clone(),
            });
        }
    }
    for s in &config.streams {
        if s.certificate_id == Some(id) {
            out.push(CertificateUse {
                kind: "stream",
                id: s.id,
                domain_names: Vec::new(),
            });
        }
    }
    if config.settings.default_certificate_id == Some(id) {
        out.push(CertificateUse {
            kind: "settings",
            id: 0,
            domain_names: Vec::new(),
        });
    }
    out
}

pub(crate) fn view(state: &AppState, config: &Config, cert: &Certificate) -> CertificateView {
    let compiled = state.engine.current();
    // The engine's parse is the one served; parse here only for a revision
    // the engine has not applied yet.
    let reparsed;
    let parsed = match compiled.certificates().get(cert.id) {
        Some(p)
            if compiled
                .source()
                .certificates
                .iter()
                .any(|c| c.id == cert.id && c.certificate_pem == cert.certificate_pem) =>
        {
            Some(&**p)
        }
        _ if cert.certificate_pem.trim().is_empty() => None,
        _ => {
            reparsed =
                ParsedCertificate::from_pem(cert.id, &cert.certificate_pem, &cert.private_key_pem)
                    .ok();
            reparsed.as_ref()
        }
    };
    let now = now_unix();
    let (status, error) = order_status(state, cert);
    CertificateView {
        id: cert.id,
        name: cert.name.clone(),
        source: cert.source,
        domain_names: cert.domain_names.clone(),
        status,
        error,
        issuer: parsed.map(|p| p.issuer().to_string()),
        subject: parsed.map(|p| p.subject().to_string()),
        not_before: parsed.map(|p| p.not_before()),
        not_after: parsed.map(|p| p.not_after()),
        days_left: parsed.map(|p| p.days_left(now)),
        fingerprint_sha256: parsed.map(|p| p.fingerprint().to_string()),
        chain_length: parsed.map(|p| p.chain_len()),
        certificate_pem: cert.certificate_pem.clone(),
        is_default: config.settings.default_certificate_id == Some(cert.id),
        used_by: uses(config, cert.id),
        acme: state.acme.cached_status(cert.id),
    }
}

fn find(config: &Config, id: Id) -> ApiResult<&Certificate> {
    config
        .certificates
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(|| ApiError::not_found(format!("certificate {id} does not exist")))
}

fn check_name(name: &Option<String>) -> ApiResult<()> {
    match name {
        Some(n) if n.chars().count() > MAX_NAME => Err(ApiError::field(
            "name",
            format!("must be at most {MAX_NAME} characters"),
        )),
        _ => Ok(()),
    }
}

fn format_time(unix: i64) -> String {
    // Days since the epoch to a civil date (proleptic Gregorian).
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses and checks an uploaded pair: key matches, valid now.
fn parse_upload(cert_pem: &str, key_pem: &str) -> ApiResult<ParsedCertificate> {
    let parsed = ParsedCertificate::from_pem(0, cert_pem, key_pem).map_err(|e| {
        let field = match e {
            CertError::BadKey(_) | CertError::KeyMismatch => "private_key_pem",
            _ => "certificate_pem",
        };
        ApiError::field(field, e.to_string())
    })?;
    let now = now_unix();
    if now < parsed.not_before() {
        return Err(ApiError::field(
            "certificate_pem",
            format!(
                "is not valid yet: its validity starts {}",
                format_time(parsed.not_before())
            ),
        ));
    }
    if now >= parsed.not_after() {
        return Err(ApiError::field(
            "certificate_pem",
            format!(
                "has expired: it was valid until {}",
                format_time(parsed.not_after())
            ),
        ));
    }
    Ok(parsed)
}

async fn parse_upload_blocking(
    cert_pem: String,
    key_pem: String,
) -> ApiResult<(ParsedCertificate, String, String)> {
    tokio::task::spawn_blocking(move || {
        parse_upload(&cert_pem, &key_pem).map(|p| (p, cert_pem, key_pem))
    })
    .await
    .map_err(ApiError::internal)?
}

/// `GET /api/certificates`
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<CertificateView>>> {
    auth.require("certificates", Access::Read)?;
    state.acme.refresh_statuses().await;
    let config = state.engine_store_config().await?;
    Ok(Json(
        config
            .certificates
            .iter()
            .map(|c| view(&state, &config, c))
            .collect(),
    ))
}

/// `GET /api/certificates/{id}`
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    PathParam(id): PathParam<Id>,
) -> ApiResult<Json<CertificateView>> {
    auth.require("certificates", Access::Read)?;
    state.acme.refresh_statuses().await;
    let config = state.engine_store_config().await?;
    let cert = find(&config, id)?;
    Ok(Json(view(&state, &config, cert)))
}

/// `POST /api/certificates`: 201 for an upload, 202 for an ACME order.
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<CertificateRequest>,
) -> ApiResult<Response> {
    auth.require("certificates", Access::Write)?;
    match req {
        CertificateRequest::Upload {
            name,
            certificate_pem,
            private_key_pem,
        } => {
            check_name(&name)?;
            let (parsed, certificate_pem, private_key_pem) =
                parse_upload_blocking(certificate_pem, private_key_pem).await?;
            let cert = Certificate {
                id: 0,
                name: name
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| parsed.names()[0].clone()),
                source: CertificateSource::Upload,
                domain_names: parsed.names().to_vec(),
                certificate_pem,
                private_key_pem,
            };
            let stored = write::<Certificate>(&state, &auth, ip, Write::Create(cert)).await?;
            let config = state.engine_store_config().await?;
            Ok((StatusCode::CREATED, Json(view(&state, &config, &stored))).into_response())
        }
        CertificateRequest::Acme(req) => request_acme(&state, &auth, ip, req).await,
    }
}

/// Starts an ACME order for `req`: answered 202 with the pending
/// certificate, or an error naming the field.
async fn request_acme(
    state: &AppState,
    auth: &Auth,
    ip: IpAddr,
    req: AcmeRequest,
) -> ApiResult<Response> {
    let stored = crate::acme::api::request_certificate(state, auth, ip, req).await?;
    let config = state.engine_store_config().await?;
    Ok((StatusCode::ACCEPTED, Json(view(state, &config, &stored))).into_response())
}

/// `PUT /api/certificates/{id}`
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    PathParam(id): PathParam<Id>,
    JsonBody(req): JsonBody<CertificateUpdate>,
) -> ApiResult<Json<CertificateView>> {
    auth.require("certificates", Access::Write)?;
    check_name(&req.name)?;
    let config = state.engine_store_config().await?;
    let mut cert = find(&config, id)?.clone();
    if let Some(n) = req.name.filter(|n| !n.trim().is_empty()) {
        cert.name = n;
    }
    match (req.certificate_pem, req.private_key_pem) {
        (None, None) => {}
        (Some(c), Some(k)) => {
            if cert.source == CertificateSource::Acme {
                return Err(ApiError::field(
                    "certificate_pem",
                    "an ACME certificate is renewed by its order, not replaced",
                ));
            }
            let (parsed, c, k) = parse_upload_blocking(c, k).await?;
            cert.domain_names = parsed.names().to_vec();
            cert.certificate_pem = c;
            cert.private_key_pem = k;
        }
        (Some(_), None) => {
            return Err(ApiError::field(
                "private_key_pem",
                "is required with a new certificate_pem",
            ))
        }
        (None, Some(_)) => {
            return Err(ApiError::field(
                "certificate_pem",
                "is required with a new private_key_pem",
            ))
        }
    }
    let stored = write::<Certificate>(&state, &auth, ip, Write::Update(cert)).await?;
    let config = state.engine_store_config().await?;
    Ok(Json(view(&state, &config, &stored)))
}

/// `DELETE /api/certificates/{id}`: 204, or 409 naming what still uses it.
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    PathParam(id): PathParam<Id>,
) -> ApiResult<StatusCode> {
    auth.require("certificates", Access::Write)?;
    write::<Certificate>(&state, &auth, ip, Write::Delete(id)).await?;
    state.acme.certificate_deleted(id).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::format_time;

    #[test]
    fn formats_civil_time() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_time(1_798_761_599), "2026-12-31 23:59:59 UTC");
    }
}
