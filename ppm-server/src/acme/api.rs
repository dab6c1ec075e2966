//! The ACME part of the REST API: ordering certificates
//! (`POST /api/certificates` with `"source": "acme"`), on-demand renewal,
//! DNS providers and the ACME settings.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use ppm_core::config::{Certificate, CertificateSource, Id};
use ppm_store::accounts::AuditEntry;
use ppm_store::acme::{AcmeOrder, DnsProviderDeletion, DnsProviderRecord};
use ppm_store::WriteContext;
use serde::{Deserialize, Serialize};

use super::dns::DnsProviderSpec;
use super::{AcmeSettings, SETTING_NAMES};
use crate::api::certificates::{self, AcmeChallengeKind, AcmeRequest};
use crate::api::{
    Access, ApiError, ApiResult, AppState, Auth, ClientIp, JsonBody, PathParam, Role,
};

/// Most names one ACME certificate may hold (Let's Encrypt's limit).
pub const MAX_NAMES: usize = 100;

fn check_names(names: &[String], challenge: AcmeChallengeKind) -> ApiResult<Vec<String>> {
    if names.is_empty() {
        return Err(ApiError::field("domain_names", "name at least one domain"));
    }
    if names.len() > MAX_NAMES {
        return Err(ApiError::field(
            "domain_names",
            format!("at most {MAX_NAMES} names per certificate"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        let path = format!("domain_names[{i}]");
        let n = ppm_core::validate::domain_name(n).map_err(|m| ApiError::field(&path, m))?;
        if n.parse::<std::net::IpAddr>().is_ok() {
            return Err(ApiError::field(path, "IP addresses are not supported"));
        }
        if n.starts_with("*.") && challenge != AcmeChallengeKind::Dns01 {
            return Err(ApiError::field(
                path,
                "a wildcard name needs the dns-01 challenge",
            ));
        }
        if !seen.insert(n.clone()) {
            return Err(ApiError::field(path, "is listed twice"));
        }
        out.push(n);
    }
    Ok(out)
}

async fn check_provider(
    state: &AppState,
    challenge: AcmeChallengeKind,
    provider: Option<Id>,
) -> ApiResult<()> {
    match (challenge, provider) {
        (AcmeChallengeKind::Http01, Some(_)) => Err(ApiError::field(
            "dns_provider_id",
            "only dns-01 uses a DNS provider",
        )),
        (AcmeChallengeKind::Dns01, None) => Err(ApiError::field(
            "dns_provider_id",
            "dns-01 needs a DNS provider (see /api/dns-providers)",
        )),
        (AcmeChallengeKind::Dns01, Some(id)) => match state
            .acme
            .records()
            .map_err(ApiError::unavailable)?
            .dns_provider(id)
            .await?
        {
            Some(_) => Ok(()),
            None => Err(ApiError::field(
                "dns_provider_id",
                format!("DNS provider {id} does not exist"),
            )),
        },
        (AcmeChallengeKind::Http01, None) => Ok(()),
    }
}

/// Starts an ACME order for `req`: stores the (empty) certificate and its
/// `pending` order; the order runs in the background. The caller answers
/// 202 with the certificate.
pub async fn request_certificate(
    state: &AppState,
    auth: &Auth,
    ip: std::net::IpAddr,
    req: AcmeRequest,
) -> ApiResult<Certificate> {
    auth.require("certificates", Access::Write)?;
    let names = check_names(&req.domain_names, req.challenge)?;
    check_provider(state, req.challenge, req.dns_provider_id).await?;
    let name = match req.name {
        Some(n) if n.len() > 255 => {
            return Err(ApiError::field("name", "must be at most 255 characters"))
        }
        Some(n) if !n.trim().is_empty() => n,
        _ => names[0].clone(),
    };
    let challenge = match req.challenge {
        AcmeChallengeKind::Http01 => "http-01",
        AcmeChallengeKind::Dns01 => "dns-01",
    };
    let ctx = WriteContext::new(auth.actor()).client_ip(ip.to_string());
    let (cert, _order) = state
        .acme
        .create_certificate(
            &ctx,
            Some(auth.user.id),
            name,
            names,
            challenge,
            req.dns_provider_id,
        )
        .await?;
    Ok(cert)
}

/// `POST /api/certificates/{id}/renew`: orders a new certificate for an
/// ACME certificate now; 202 with its order. The current certificate keeps
/// serving until the new one is issued.
pub async fn renew(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    PathParam(id): PathParam<Id>,
) -> ApiResult<impl IntoResponse> {
    auth.require("certificates", Access::Write)?;
    let config = state.engine_store_config().await?;
    let cert = config
        .certificates
        .iter()
        .find(|c| c.id == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("certificate {id} does not exist")))?;
    if cert.source != CertificateSource::Acme {
        return Err(ApiError::conflict(format!(
            "certificate {id} was uploaded; only ACME certificates are renewed"
        )));
    }
    let order = match state
        .acme
        .records()
        .map_err(ApiError::unavailable)?
        .acme_order(id)
        .await?
    {
        Some(o) => o,
        // An ACME certificate without an order (imported config): order
        // its names again, by HTTP-01 unless a wildcard forbids it.
        None => {
            if cert.domain_names.iter().any(|n| n.starts_with("*.")) {
                return Err(ApiError::conflict(format!(
                    "certificate {id} has no ACME order and a wildcard name; order it again with dns-01"
                )));
            }
            AcmeOrder::new(id, cert.domain_names.clone(), "http-01", None)
        }
    };
    let order = state
        .acme
        .schedule_now(order)
        .await
        .map_err(ApiError::internal)?;
    let mut audit = AuditEntry::new(auth.actor(), "renew", "certificates");
    audit.user_id = Some(auth.user.id);
    audit.client_ip = Some(ip.to_string());
    audit.entity_id = Some(id);
    if let Err(e) = state.store.append_audit(audit).await {
        tracing::error!(error = %e, "writing the audit log failed");
    }
    let _ = order;
    let config = state.engine_store_config().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(certificates::view(&state, &config, &cert)),
    ))
}

// ------------------------------------------------------------ DNS providers

/// A DNS provider as clients send it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsProviderInput {
    /// A unique name for people.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Seconds to wait after publishing the TXT records before the CA is
    /// asked to check them (0 to 3600; default 0).
    #[serde(default)]
    #[schemars(range(max = 3600))]
    pub propagation_seconds: u32,
    /// The provider and its credentials.
    pub provider: DnsProviderSpec,
}

/// A DNS provider as the API shows it: credentials are always blank.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DnsProviderView {
    /// Store id.
    pub id: Id,
    /// A unique name for people.
    pub name: String,
    /// Seconds waited after publishing before validation.
    pub propagation_seconds: i64,
    /// The provider, credentials blank.
    pub provider: DnsProviderSpec,
    /// When created, unix ms.
    pub created_at: i64,
    /// When last changed, unix ms.
    pub updated_at: i64,
}

fn view(r: DnsProviderRecord) -> ApiResult<DnsProviderView> {
    let mut spec: DnsProviderSpec = serde_json::from_str(&r.spec)
        .map_err(|e| ApiError::internal(format!("DNS provider {} is unreadable: {e}", r.id)))?;
    spec.redact();
    Ok(DnsProviderView {
        id: r.id,
        name: r.name,
        propagation_seconds: r.propagation_seconds,
        provider: spec,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

fn check_input(auth: &Auth, input: &DnsProviderInput) -> ApiResult<()> {
    if input.name.trim().is_empty() || input.name.len() > 255 {
        return Err(ApiError::field("name", "must be 1 to 255 characters"));
    }
    if input.propagation_seconds > 3600 {
        return Err(ApiError::field(
            "propagation_seconds",
            "must be at most 3600",
        ));
    }
    input
        .provider
        .validate()
        .map_err(|(f, m)| ApiError::field(format!("provider.{f}"), m))?;
    // A command provider runs a program on this server: admins only.
    if matches!(input.provider, DnsProviderSpec::Command { .. }) && auth.role != Role::Admin {
        return Err(ApiError::forbidden(
            "only admins may configure a command DNS provider",
        ));
    }
    Ok(())
}

async fn audit_provider(
    state: &AppState,
    auth: &Auth,
    ip: std::net::IpAddr,
    action: &str,
    id: Id,
    before: Option<&DnsProviderView>,
    after: Option<&DnsProviderView>,
) {
    let mut audit = AuditEntry::new(auth.actor(), action, "dns-providers");
    audit.user_id = Some(auth.user.id);
    audit.client_ip = Some(ip.to_string());
    audit.entity_id = Some(id);
    audit.before = before.and_then(|b| serde_json::to_value(b).ok());
    audit.after = after.and_then(|a| serde_json::to_value(a).ok());
    if let Err(e) = state.store.append_audit(audit).await {
        tracing::error!(error = %e, "writing the audit log failed");
    }
}

/// `GET /api/dns-providers`
pub async fn list_providers(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<DnsProviderView>>> {
    auth.require("dns-providers", Access::Read)?;
    let rows = state
        .acme
        .records()
        .map_err(ApiError::unavailable)?
        .list_dns_providers()
        .await?;
    Ok(Json(rows.into_iter().map(view).collect::<ApiResult<_>>()?))
}

/// `GET /api/dns-providers/{id}`
pub async fn get_provider(
    State(state): State<AppState>,
    auth: Auth,
    PathParam(id): PathParam<Id>,
) -> ApiResult<Json<DnsProviderView>> {
    auth.require("dns-providers", Access::Read)?;
    match state
        .acme
        .records()
        .map_err(ApiError::unavailable)?
        .dns_provider(id)
        .await?
    {
        Some(r) => Ok(Json(view(r)?)),
        None => Err(ApiError::not_found(format!(
            "DNS provider {id} does not exist"
        ))),
    }
}

/// `POST /api/dns-providers`: 201.
pub async fn create_provider(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    JsonBody(input): JsonBody<DnsProviderInput>,
) -> ApiResult<impl IntoResponse> {
    auth.require("dns-providers", Access::Write)?;
    check_input(&auth, &input)?;
    let spec = serde_json::to_string(&input.provider).map_err(ApiError::internal)?;
    let rec = DnsProviderRecord::new(
        input.name,
        input.provider.kind(),
        spec,
        i64::from(input.propagation_seconds),
    );
    let stored = view(
        state
            .acme
            .records()
            .map_err(ApiError::unavailable)?
            .create_dns_provider(&rec)
            .await?,
    )?;
    audit_provider(&state, &auth, ip, "create", stored.id, None, Some(&stored)).await;
    Ok((StatusCode::CREATED, Json(stored)))
}

/// `PUT /api/dns-providers/{id}`: blank credentials keep the stored ones.
pub async fn update_provider(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    PathParam(id): PathParam<Id>,
    JsonBody(mut input): JsonBody<DnsProviderInput>,
) -> ApiResult<Json<DnsProviderView>> {
    auth.require("dns-providers", Access::Write)?;
    let Some(old) = state
        .acme
        .records()
        .map_err(ApiError::unavailable)?
        .dns_provider(id)
        .await?
    else {
        return Err(ApiError::not_found(format!(
            "DNS provider {id} does not exist"
        )));
    };
    if let Ok(old_spec) = serde_json::from_str::<DnsProviderSpec>(&old.spec) {
        input.provider.keep_secrets(&old_spec);
        // Changing a command provider is running a program too.
        if matches!(old_spec, DnsProviderSpec::Command { .. }) && auth.role != Role::Admin {
            return Err(ApiError::forbidden(
                "only admins may change a command DNS provider",
            ));
        }
    }
    check_input(&auth, &input)?;
    let before = view(old)?;
    let mut rec = DnsProviderRecord::new(
        input.name,
        input.provider.kind(),
        serde_json::to_string(&input.provider).map_err(ApiError::internal)?,
        i64::from(input.propagation_seconds),
    );
    rec.id = id;
    let Some(stored) = state
        .acme
        .records()
        .map_err(ApiError::unavailable)?
        .update_dns_provider(&rec)
        .await?
    else {
        return Err(ApiError::not_found(format!(
            "DNS provider {id} does not exist"
        )));
    };
    let stored = view(stored)?;
    audit_provider(
        &state,
        &auth,
        ip,
        "update",
        id,
        Some(&before),
        Some(&stored),
    )
    .await;
    Ok(Json(stored))
}

/// `DELETE /api/dns-providers/{id}`: 204; 409 while an order uses it.
pub async fn delete_provider(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    PathParam(id): PathParam<Id>,
) -> ApiResult<StatusCode> {
    auth.require("dns-providers", Access::Write)?;
    let before = state
        .acme
        .records()
        .map_err(ApiError::unavailable)?
        .dns_provider(id)
        .await?
        .map(view)
        .transpose()?;
    if let Some(b) = &before {
        if b.provider.kind() == "command" && auth.role != Role::Admin {
            return Err(ApiError::forbidden(
                "only admins may change a command DNS provider",
            ));
        }
    }
    match state
        .acme
        .records()
        .map_err(ApiError::unavailable)?
        .delete_dns_provider(id)
        .await?
    {
        DnsProviderDeletion::Deleted => {
            audit_provider(&state, &auth, ip, "delete", id, before.as_ref(), None).await;
            Ok(StatusCode::NO_CONTENT)
        }
        DnsProviderDeletion::InUse(cert) => Err(ApiError::conflict(format!(
            "DNS provider {id} is in use by the ACME order of certificate {cert}"
        ))),
        _ => Err(ApiError::not_found(format!(
            "DNS provider {id} does not exist"
        ))),
    }
}

// ----------------------------------------------------------------- settings

/// The ACME settings in effect.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AcmeSettingsView {
    /// The CA's directory URL.
    pub directory_url: String,
    /// Contact email given to the CA.
    pub email: Option<String>,
    /// PEM file of extra roots trusted for the CA's HTTPS endpoint.
    pub ca_roots: Option<String>,
    /// External account binding key id.
    pub eab_key_id: Option<String>,
    /// Whether an EAB HMAC key is set (it is never shown).
    pub eab_hmac_set: bool,
    /// The settings set through the API; the others come from the
    /// command line or environment.
    pub overridden: Vec<String>,
}

/// `PUT /api/settings/acme`: each field given overrides the command-line
/// setting (an empty string sets it to none); a field left out or `null`
/// uses the command-line setting. `eab_hmac` left out keeps the one set
/// through the API while `eab_key_id` stays the same.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcmeSettingsInput {
    /// The CA's directory URL (https).
    #[serde(default)]
    pub directory_url: Option<String>,
    /// Contact email.
    #[serde(default)]
    pub email: Option<String>,
    /// Path of a PEM file of extra roots, on the server.
    #[serde(default)]
    pub ca_roots: Option<String>,
    /// EAB key id.
    #[serde(default)]
    pub eab_key_id: Option<String>,
    /// EAB HMAC key, base64url (write-only).
    #[serde(default)]
    pub eab_hmac: Option<String>,
}

fn settings_view(s: &AcmeSettings, overrides: &[(String, String)]) -> AcmeSettingsView {
    AcmeSettingsView {
        directory_url: s.directory_url.clone(),
        email: s.email.clone(),
        ca_roots: s.ca_roots.as_ref().map(|p| p.display().to_string()),
        eab_key_id: s.eab_key_id.clone(),
        eab_hmac_set: s.eab_hmac.is_some(),
        overridden: overrides.iter().map(|(k, _)| k.clone()).collect(),
    }
}

/// `GET /api/settings/acme`
pub async fn get_settings(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<AcmeSettingsView>> {
    auth.require("settings", Access::Read)?;
    let overrides = state
        .acme
        .records()
        .map_err(ApiError::unavailable)?
        .acme_settings()
        .await?;
    let s = state.acme.defaults().with_overrides(&overrides);
    Ok(Json(settings_view(&s, &overrides)))
}

/// `PUT /api/settings/acme`
pub async fn put_settings(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    JsonBody(input): JsonBody<AcmeSettingsInput>,
) -> ApiResult<Json<AcmeSettingsView>> {
    auth.require("settings", Access::Write)?;
    let old = state
        .acme
        .records()
        .map_err(ApiError::unavailable)?
        .acme_settings()
        .await?;
    let old_get = |k: &str| old.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut eab_hmac = input.eab_hmac.clone();
    if eab_hmac.is_none() && input.eab_key_id.is_some() && input.eab_key_id == old_get("eab_key_id")
    {
        eab_hmac = old_get("eab_hmac");
    }
    let fields = [
        ("directory_url", input.directory_url.clone()),
        ("email", input.email.clone()),
        ("ca_roots", input.ca_roots.clone()),
        ("eab_key_id", input.eab_key_id.clone()),
        ("eab_hmac", eab_hmac),
    ];
    let mut overrides = Vec::new();
    for (k, v) in fields {
        debug_assert!(SETTING_NAMES.contains(&k));
        if let Some(v) = v {
            if v.len() > 4096 {
                return Err(ApiError::field(k, "must be at most 4096 characters"));
            }
            overrides.push((k.to_string(), v));
        }
    }
    let effective = state.acme.defaults().with_overrides(&overrides);
    effective
        .validate()
        .map_err(|(f, m)| ApiError::field(f, m))?;
    state
        .acme
        .records()
        .map_err(ApiError::unavailable)?
        .replace_acme_settings(&overrides)
        .await?;
    let view = settings_view(&effective, &overrides);
    let mut audit = AuditEntry::new(auth.actor(), "update", "settings/acme");
    audit.user_id = Some(auth.user.id);
    audit.client_ip = Some(ip.to_string());
    audit.before = serde_json::to_value(settings_view(
        &state.acme.defaults().with_overrides(&old),
        &old,
    ))
    .ok();
    audit.after = serde_json::to_value(&view).ok();
    if let Err(e) = state.store.append_audit(audit).await {
        tracing::error!(error = %e, "writing the audit log failed");
    }
    Ok(Json(view))
}
