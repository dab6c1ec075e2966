//! TLS termination: certificates parsed once per compile and chosen per SNI
//! at handshake time.
//!
//! The compiler turns the config's certificates into [`ParsedCertificate`]s
//! (leaf, chain and key, decoded once; unchanged certificates are reused from
//! the previous revision) and builds a [`CertificateTable`] mapping served
//! names to them. [`CertificateResolver`] is Pingora's
//! [`TlsAccept`](pingora_core::listeners::TlsAccept): on every handshake it
//! loads the current compiled config (one atomic load) and installs the
//! certificate for the client's SNI, so a new, renewed or uploaded certificate
//! is served from the next handshake on, without a restart.
//!
//! Selection order for a server name:
//! 1. a host (proxy, redirection or 404) serving that exact name with a
//!    certificate chosen;
//! 2. a certificate whose own names (SANs) contain that exact name;
//! 3. the same two steps for the wildcard `*.<parent>`;
//! 4. the default certificate (`settings.default_certificate_id`), else the
//!    resolver's fallback (ppm-server generates a self-signed one).
//!
//! A client without SNI, or with a name nothing serves, only ever gets the
//! default: never another tenant's certificate.
//!
//! [`tls_settings`] builds listener settings with Mozilla's "intermediate"
//! profile (TLS 1.2 and 1.3 only, its cipher list), session resumption, and
//! HTTP/2 by ALPN for hosts that allow it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use pingora_core::listeners::tls::TlsSettings;
use pingora_core::listeners::TlsAccept;
use pingora_core::protocols::tls::TlsRef;

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{select_next_proto, AlpnError, NameType, SslRef};
use openssl::x509::X509;

use crate::config::{Config, Id};
use crate::engine::EngineHandle;
use crate::error::FieldError;
use crate::validate;

/// Why a certificate or key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The certificate PEM holds no certificate.
    #[error("contains no PEM certificate")]
    NoCertificate,
    /// The certificate PEM does not parse.
    #[error("is not a valid PEM certificate: {0}")]
    BadCertificate(String),
    /// The key PEM does not parse.
    #[error("is not a valid PEM private key: {0}")]
    BadKey(String),
    /// The key is not the certificate's.
    #[error("does not match the certificate's public key")]
    KeyMismatch,
    /// The certificate names no DNS name.
    #[error("names no DNS name (neither a subjectAltName nor a common name)")]
    NoNames,
    /// Generating a certificate failed.
    #[error("certificate generation failed: {0}")]
    Generate(String),
}

fn ssl_err(e: openssl::error::ErrorStack) -> String {
    let s = e.to_string();
    if s.is_empty() {
        "malformed".into()
    } else {
        s
    }
}

/// A certificate with its chain and private key, decoded and checked.
pub struct ParsedCertificate {
    id: Id,
    leaf: X509,
    chain: Vec<X509>,
    key: PKey<Private>,
    names: Vec<String>,
    issuer: String,
    subject: String,
    not_before: i64,
    not_after: i64,
    fingerprint: String,
    source_pem: (Box<str>, Box<str>),
}

impl fmt::Debug for ParsedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedCertificate")
            .field("id", &self.id)
            .field("names", &self.names)
            .field("issuer", &self.issuer)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn unix_time(t: &Asn1TimeRef) -> Result<i64, CertError> {
    let epoch = Asn1Time::from_unix(0).map_err(|e| CertError::BadCertificate(ssl_err(e)))?;
    let d = epoch
        .diff(t)
        .map_err(|e| CertError::BadCertificate(ssl_err(e)))?;
    Ok(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

fn name_text(name: &openssl::x509::X509NameRef) -> String {
    let mut out = String::new();
    for e in name.entries() {
        let key = e.object().nid().short_name().unwrap_or("?");
        let val = String::from_utf8_lossy(e.data().as_slice());
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(key);
        out.push('=');
        out.push_str(&val);
    }
    out
}

impl ParsedCertificate {
    /// Decodes a PEM certificate (leaf first, then its chain) and its PEM
    /// private key, and checks that the key belongs to the leaf. `id` is the
    /// config's certificate id (0 for one that is not in the config).
    pub fn from_pem(id: Id, certificate_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let mut certs = X509::stack_from_pem(certificate_pem.as_bytes())
            .map_err(|e| CertError::BadCertificate(ssl_err(e)))?
            .into_iter();
        let leaf = certs.next().ok_or(CertError::NoCertificate)?;
        let chain: Vec<X509> = certs.collect();
        let key = PKey::private_key_from_pem(key_pem.as_bytes())
            .map_err(|e| CertError::BadKey(ssl_err(e)))?;
        let public = leaf
            .public_key()
            .map_err(|e| CertError::BadCertificate(ssl_err(e)))?;
        if !public.public_eq(&key) {
            return Err(CertError::KeyMismatch);
        }
        let mut names: Vec<String> = leaf
            .subject_alt_names()
            .map(|sans| {
                sans.iter()
                    .filter_map(|n| n.dnsname())
                    .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default();
        if names.is_empty() {
            names.extend(
                leaf.subject_name()
                    .entries_by_nid(Nid::COMMONNAME)
                    .map(|e| String::from_utf8_lossy(e.data().as_slice()).to_ascii_lowercase())
                    .map(|s| s.trim_end_matches('.').to_string())
                    .filter(|s| validate::domain_name(s).is_ok()),
            );
        }
        if names.is_empty() {
            return Err(CertError::NoNames);
        }
        let fingerprint = leaf
            .digest(MessageDigest::sha256())
            .map_err(|e| CertError::BadCertificate(ssl_err(e)))?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(ParsedCertificate {
            id,
            names,
            issuer: name_text(leaf.issuer_name()),
            subject: name_text(leaf.subject_name()),
            not_before: unix_time(leaf.not_before())?,
            not_after: unix_time(leaf.not_after())?,
            fingerprint,
            leaf,
            chain,
            key,
            source_pem: (certificate_pem.into(), key_pem.into()),
        })
    }

    /// The config's certificate id (0 when not from the config).
    pub fn id(&self) -> Id {
        self.id
    }

    /// DNS names the certificate is valid for (lower case; wildcards as
    /// `*.example.com`).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The issuer's distinguished name, e.g. `C=US, O=Let's Encrypt, CN=R11`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The subject's distinguished name.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Start of validity, unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// End of validity, unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// Whole days from `now` (unix seconds) until the certificate expires;
    /// negative once it has.
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }

    /// Whether the certificate is valid at `now` (unix seconds).
    pub fn is_valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now < self.not_after
    }

    /// SHA-256 fingerprint of the leaf, lower-case hex.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Number of chain certificates sent after the leaf.
    pub fn chain_len(&self) -> usize {
        self.chain.len()
    }

    /// Whether the certificate covers `name` (exactly, or by a one-label
    /// wildcard).
    pub fn covers(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        self.names.iter().any(|n| {
            n.eq_ignore_ascii_case(name)
                || n.strip_prefix("*.").is_some_and(|suffix| {
                    name.split_once('.').is_some_and(|(label, rest)| {
                        !label.is_empty() && rest.eq_ignore_ascii_case(suffix)
                    })
                })
        })
    }

    /// Installs leaf, chain and key on a handshake in progress.
    pub fn install(&self, ssl: &mut SslRef) -> Result<(), openssl::error::ErrorStack> {
        use pingora_core::tls::ext;
        ext::ssl_use_certificate(ssl, &self.leaf)?;
        for c in &self.chain {
            ext::ssl_add_chain_cert(ssl, c)?;
        }
        ext::ssl_use_private_key(ssl, &self.key)
    }

    /// A TLS acceptor serving this certificate (leaf, chain and key) with
    /// Mozilla's "intermediate" profile (TLS 1.2 and 1.3, its ciphers) and
    /// no ALPN, for terminating TLS in front of a raw TCP upstream (the
    /// engine's TCP streams use one per stream and certificate revision).
    ///
    /// A client closing its TCP connection without a TLS `close_notify`
    /// reads as an ordinary end of stream, as it would on plain TCP: the
    /// bytes are forwarded as they are, so the upstream protocol frames its
    /// own messages.
    pub fn acceptor(&self) -> Result<openssl::ssl::SslAcceptor, openssl::error::ErrorStack> {
        use openssl::ssl::{SslAcceptor, SslMethod, SslOptions, SslSessionCacheMode};
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
        b.set_certificate(&self.leaf)?;
        for c in &self.chain {
            b.add_extra_chain_cert(c.clone())?;
        }
        b.set_private_key(&self.key)?;
        b.check_private_key()?;
        b.set_options(SslOptions::IGNORE_UNEXPECTED_EOF);
        b.set_session_cache_mode(SslSessionCacheMode::SERVER);
        b.set_session_id_context(b"ppm-stream")?;
        Ok(b.build())
    }

    fn same_source(&self, cert: &str, key: &str) -> bool {
        &*self.source_pem.0 == cert && &*self.source_pem.1 == key
    }
}

/// Generates a self-signed certificate (EC P-256, SHA-256) for `names`,
/// valid from now for `days` days. Returns `(certificate_pem, key_pem)`.
///
/// ppm-server uses one as the certificate of last resort, so a client
/// without SNI still completes a handshake without seeing a tenant's name.
pub fn self_signed(names: &[&str], days: u32) -> Result<(String, String), CertError> {
    fn inner(names: &[&str], days: u32) -> Result<(String, String), openssl::error::ErrorStack> {
        use openssl::bn::{BigNum, MsbOption};
        use openssl::ec::{EcGroup, EcKey};
        use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
        use openssl::x509::{X509Builder, X509NameBuilder};

        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let mut subject = X509NameBuilder::new()?;
        subject.append_entry_by_text("CN", names.first().copied().unwrap_or("ppm"))?;
        let subject = subject.build();
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        let mut serial = BigNum::new()?;
        serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
        let serial = serial.to_asn1_integer()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&subject)?;
        b.set_issuer_name(&subject)?;
        b.set_pubkey(&key)?;
        b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
        b.set_not_after(&*Asn1Time::days_from_now(days)?)?;
        b.append_extension(BasicConstraints::new().build()?)?;
        let mut san = SubjectAlternativeName::new();
        for n in names {
            san.dns(n);
        }
        let san = san.build(&b.x509v3_context(None, None))?;
        b.append_extension(san)?;
        b.sign(&key, MessageDigest::sha256())?;
        let cert = String::from_utf8_lossy(&b.build().to_pem()?).into_owned();
        let key = String::from_utf8_lossy(&key.private_key_to_pem_pkcs8()?).into_owned();
        Ok((cert, key))
    }
    if names.is_empty() {
        return Err(CertError::NoNames);
    }
    inner(names, days).map_err(|e| CertError::Generate(ssl_err(e)))
}

#[derive(Debug, Clone, Copy, Default)]
struct Binding {
    /// Certificate chosen by the host serving the name.
    host_cert: Option<u32>,
    /// Certificate whose SANs contain the name.
    san_cert: Option<u32>,
    /// Whether HTTP/2 may be negotiated for the name.
    h2: bool,
    /// Whether a host serves the name.
    hosted: bool,
}

/// Served names → certificates, for one compiled config.
#[derive(Debug, Default)]
pub struct CertificateTable {
    certs: Vec<Arc<ParsedCertificate>>,
    by_id: HashMap<Id, u32, foldhash::fast::RandomState>,
    exact: HashMap<Box<str>, Binding, foldhash::fast::RandomState>,
    /// Keyed by the wildcard's parent (`example.com` for `*.example.com`).
    wildcard: HashMap<Box<str>, Binding, foldhash::fast::RandomState>,
    default: Option<u32>,
}

/// What [`CertificateTable::select`] found for a name.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    /// The certificate to serve; `None` means "the resolver's fallback".
    pub certificate: Option<&'a Arc<ParsedCertificate>>,
    /// Whether HTTP/2 may be negotiated.
    pub h2: bool,
}

impl CertificateTable {
    /// Builds the table for `config`, reusing certificates of `previous`
    /// whose PEMs did not change. Errors name the certificate field.
    pub fn build(
        config: &Config,
        previous: Option<&CertificateTable>,
    ) -> Result<Self, Vec<FieldError>> {
        let proxy = config.proxy_hosts.iter().map(|h| {
            (
                h.enabled,
                &h.domain_names,
                h.certificate_id,
                h.http2_support,
            )
        });
        let redirection = config
            .redirection_hosts
            .iter()
            .map(|h| (h.enabled, &h.domain_names, h.certificate_id, true));
        let dead = config
            .dead_hosts
            .iter()
            .map(|h| (h.enabled, &h.domain_names, h.certificate_id, true));
        let served = proxy
            .chain(redirection)
            .chain(dead)
            .filter(|(enabled, ..)| *enabled)
            .flat_map(|(_, names, cert, h2)| {
                names
                    .iter()
                    .filter_map(move |n| validate::domain_name_cow(n).ok().map(|n| (n, h2, cert)))
            });
        Self::build_served(config, previous, served)
    }

    /// Like [`build`](Self::build), with the served names given: each
    /// enabled host's names, normalised (see
    /// [`validate::domain_name`]), with its `http2_support` and
    /// `certificate_id`.
    pub(crate) fn build_served<N: AsRef<str>>(
        config: &Config,
        previous: Option<&CertificateTable>,
        served: impl Iterator<Item = (N, bool, Option<Id>)>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errs = Vec::new();
        let mut t = CertificateTable::default();
        for (i, c) in config.certificates.iter().enumerate() {
            if c.certificate_pem.trim().is_empty() {
                // An ACME order still pending: nothing to serve yet.
                continue;
            }
            let reused = previous
                .and_then(|p| p.get(c.id))
                .filter(|p| p.same_source(&c.certificate_pem, &c.private_key_pem))
                .cloned();
            let parsed = match reused {
                Some(p) => p,
                None => {
                    match ParsedCertificate::from_pem(c.id, &c.certificate_pem, &c.private_key_pem)
                    {
                        Ok(p) => Arc::new(p),
                        Err(e) => {
                            let field = match e {
                                CertError::BadKey(_) | CertError::KeyMismatch => "private_key_pem",
                                _ => "certificate_pem",
                            };
                            errs.push(FieldError::new(
                                format!("certificates[{i}].{field}"),
                                e.to_string(),
                            ));
                            continue;
                        }
                    }
                }
            };
            let idx = t.certs.len() as u32;
            t.by_id.insert(c.id, idx);
            t.certs.push(parsed);
        }
        // SAN names: when several certificates carry a name, the one that
        // expires last wins (a renewal next to its predecessor).
        for (idx, cert) in t.certs.iter().enumerate() {
            for n in &cert.names {
                let (map, key) = match n.strip_prefix("*.") {
                    Some(parent) => (&mut t.wildcard, parent),
                    None => (&mut t.exact, n.as_str()),
                };
                let b = map.entry(key.into()).or_default();
                let better = match b.san_cert {
                    Some(old) => t.certs[old as usize].not_after < cert.not_after,
                    None => true,
                };
                if better {
                    b.san_cert = Some(idx as u32);
                }
            }
        }
        for (n, h2, cert_id) in served {
            let n = n.as_ref();
            let cert = cert_id.and_then(|id| t.by_id.get(&id).copied());
            let (map, key) = match n.strip_prefix("*.") {
                Some(parent) => (&mut t.wildcard, parent),
                None => (&mut t.exact, n),
            };
            let b = map.entry(key.into()).or_default();
            b.hosted = true;
            b.h2 = h2;
            b.host_cert = cert;
        }
        if let Some(id) = config.settings.default_certificate_id {
            match t.by_id.get(&id) {
                Some(&idx) => t.default = Some(idx),
                None if config.certificates.iter().any(|c| c.id == id) => {
                    // Chosen but not issued yet: the fallback serves.
                }
                None => errs.push(FieldError::new(
                    "settings.default_certificate_id",
                    format!("certificate {id} does not exist"),
                )),
            }
        }
        if errs.is_empty() {
            Ok(t)
        } else {
            Err(errs)
        }
    }

    /// The parsed certificate with config id `id`, if it has been issued.
    pub fn get(&self, id: Id) -> Option<&Arc<ParsedCertificate>> {
        self.by_id.get(&id).map(|&i| &self.certs[i as usize])
    }

    /// Every parsed certificate.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ParsedCertificate>> {
        self.certs.iter()
    }

    /// Number of parsed certificates.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether no certificate is parsed.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// The configured default certificate, if set and issued.
    pub fn default_certificate(&self) -> Option<&Arc<ParsedCertificate>> {
        self.default.map(|i| &self.certs[i as usize])
    }

    /// Chooses the certificate for a server name (`None`: no SNI). Names are
    /// matched case-insensitively, a trailing dot ignored.
    pub fn select(&self, server_name: Option<&str>) -> Selection<'_> {
        let fallback = Selection {
            certificate: self.default_certificate(),
            h2: true,
        };
        let Some(name) = server_name else {
            return fallback;
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        let exact = self.exact.get(name);
        let wild = name
            .split_once('.')
            .filter(|(label, _)| !label.is_empty())
            .and_then(|(_, parent)| self.wildcard.get(parent));
        let pick = |b: &Binding| b.host_cert.or(b.san_cert);
        let cert = exact
            .and_then(pick)
            .or_else(|| wild.and_then(pick))
            .map(|i| &self.certs[i as usize])
            .or(fallback.certificate);
        let h2 = exact
            .filter(|b| b.hosted)
            .or(wild.filter(|b| b.hosted))
            .is_none_or(|b| b.h2);
        Selection {
            certificate: cert,
            h2,
        }
    }
}

/// Pingora's certificate callback over an engine's compiled config.
pub struct CertificateResolver {
    handle: EngineHandle,
    fallback: Option<Arc<ParsedCertificate>>,
}

impl fmt::Debug for CertificateResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateResolver")
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

impl CertificateResolver {
    /// A resolver reading `handle`'s current config; `fallback` serves when
    /// neither a name nor the configured default selects a certificate.
    pub fn new(handle: EngineHandle, fallback: Option<ParsedCertificate>) -> Self {
        CertificateResolver {
            handle,
            fallback: fallback.map(Arc::new),
        }
    }
}

#[async_trait::async_trait]
impl TlsAccept for CertificateResolver {
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        let config = self.handle.current();
        let chosen = config
            .certificates()
            .select(ssl.servername(NameType::HOST_NAME))
            .certificate
            .or(self.fallback.as_ref());
        match chosen {
            Some(cert) => {
                if let Err(e) = cert.install(ssl) {
                    tracing::warn!(certificate = cert.id(), error = %e, "installing a certificate failed");
                }
            }
            None => tracing::debug!(
                server_name = ssl.servername(NameType::HOST_NAME),
                "no certificate for handshake"
            ),
        }
    }
}

/// Listener settings for the engine's HTTPS listener: Mozilla
/// "intermediate" (TLS 1.2 and 1.3, its ciphers), certificates chosen per
/// SNI by a [`CertificateResolver`], server-side session resumption, and
/// ALPN offering HTTP/2 unless the host serving the name turned it off.
pub fn tls_settings(
    handle: EngineHandle,
    fallback: Option<ParsedCertificate>,
) -> pingora_core::Result<TlsSettings> {
    let resolver = CertificateResolver::new(handle.clone(), fallback);
    let mut settings = TlsSettings::with_callbacks(Box::new(resolver))?;
    settings.set_session_cache_mode(openssl::ssl::SslSessionCacheMode::SERVER);
    // Session IDs are scoped to this listener.
    let _ = settings.set_session_id_context(b"ppm");
    settings.set_alpn_select_callback(move |ssl, client| {
        let h2 = handle
            .current()
            .certificates()
            .select(ssl.servername(NameType::HOST_NAME))
            .h2;
        let ours: &[u8] = if h2 {
            b"\x02h2\x08http/1.1"
        } else {
            b"\x08http/1.1"
        };
        select_next_proto(ours, client).ok_or(AlpnError::NOACK)
    });
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Certificate, ProxyHost, Upstream};

    fn cert(id: Id, names: &[&str]) -> Certificate {
        let (certificate_pem, private_key_pem) = self_signed(names, 30).unwrap();
        Certificate {
            id,
            name: names[0].into(),
            domain_names: names.iter().map(|s| s.to_string()).collect(),
            certificate_pem,
            private_key_pem,
            ..Default::default()
        }
    }

    fn host(names: &[&str], cert: Option<Id>) -> ProxyHost {
        let mut h = ProxyHost::new(names.iter().copied(), vec![Upstream::new("127.0.0.1", 9)]);
        h.certificate_id = cert;
        h
    }

    #[test]
    fn parses_names_dates_and_checks_the_key() {
        let c = cert(1, &["a.test", "*.b.test"]);
        let p = ParsedCertificate::from_pem(1, &c.certificate_pem, &c.private_key_pem).unwrap();
        assert_eq!(p.names(), ["a.test", "*.b.test"]);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(p.is_valid_at(now));
        assert!(
            (29..=30).contains(&p.days_left(now)),
            "{}",
            p.days_left(now)
        );
        assert!(
            p.covers("x.b.test")
                && p.covers("A.TEST")
                && !p.covers("x.y.b.test")
                && !p.covers("b.test")
        );
        assert_eq!(p.fingerprint().len(), 64);

        let other = cert(2, &["a.test"]);
        let e =
            ParsedCertificate::from_pem(1, &c.certificate_pem, &other.private_key_pem).unwrap_err();
        assert_eq!(e, CertError::KeyMismatch);
        let e = ParsedCertificate::from_pem(1, "junk", &c.private_key_pem).unwrap_err();
        assert!(
            matches!(e, CertError::NoCertificate | CertError::BadCertificate(_)),
            "{e:?}"
        );
        let e = ParsedCertificate::from_pem(1, &c.certificate_pem, "junk").unwrap_err();
        assert!(matches!(e, CertError::BadKey(_)), "{e:?}");
    }

    #[test]
    fn selection_order_and_tenant_isolation() {
        let mut config = Config::new();
        config.certificates = vec![
            cert(1, &["a.test"]),
            cert(2, &["*.w.test"]),
            cert(3, &["san-only.test"]),
            cert(4, &["default.test"]),
            cert(5, &["other.test"]),
        ];
        config.proxy_hosts = vec![
            host(&["a.test"], Some(1)),
            // A host that picks certificate 5 for a name its SANs lack.
            host(&["picked.test"], Some(5)),
            host(&["nocert.test"], None),
        ];
        let t = CertificateTable::build(&config, None).unwrap();
        let id = |n: Option<&str>| t.select(n).certificate.map(|c| c.id());
        assert_eq!(id(Some("a.test")), Some(1));
        assert_eq!(id(Some("A.Test.")), Some(1));
        assert_eq!(id(Some("x.w.test")), Some(2));
        assert_eq!(id(Some("x.y.w.test")), None);
        assert_eq!(id(Some("san-only.test")), Some(3));
        assert_eq!(id(Some("picked.test")), Some(5));
        // Unknown names and no SNI never get a tenant's certificate.
        assert_eq!(id(Some("unknown.test")), None);
        assert_eq!(id(Some("nocert.test")), None);
        assert_eq!(id(None), None);

        config.settings.default_certificate_id = Some(4);
        let t = CertificateTable::build(&config, Some(&t)).unwrap();
        assert_eq!(t.select(Some("unknown.test")).certificate.unwrap().id(), 4);
        assert_eq!(t.select(None).certificate.unwrap().id(), 4);
        assert_eq!(t.select(Some("a.test")).certificate.unwrap().id(), 1);
    }

    #[test]
    fn unchanged_certificates_are_reused_and_bad_ones_named() {
        let mut config = Config::new();
        config.certificates = vec![cert(1, &["a.test"]), cert(2, &["b.test"])];
        let first = CertificateTable::build(&config, None).unwrap();
        config.certificates[1] = cert(2, &["c.test"]);
        let second = CertificateTable::build(&config, Some(&first)).unwrap();
        assert!(Arc::ptr_eq(first.get(1).unwrap(), second.get(1).unwrap()));
        assert!(!Arc::ptr_eq(first.get(2).unwrap(), second.get(2).unwrap()));

        config.certificates[0].private_key_pem = config.certificates[1].private_key_pem.clone();
        config.certificates[1].certificate_pem =
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into();
        let errs = CertificateTable::build(&config, Some(&second)).unwrap_err();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "certificates[0].private_key_pem",
                "certificates[1].certificate_pem"
            ]
        );

        // A pending ACME certificate (no PEM yet) is not an error.
        config.certificates = vec![Certificate {
            id: 7,
            ..Default::default()
        }];
        config.settings.default_certificate_id = Some(7);
        let t = CertificateTable::build(&config, None).unwrap();
        assert!(t.is_empty() && t.default_certificate().is_none());
        config.settings.default_certificate_id = Some(8);
        let errs = CertificateTable::build(&config, None).unwrap_err();
        assert_eq!(errs[0].path, "settings.default_certificate_id");
    }

    #[test]
    fn http2_follows_the_host() {
        let mut config = Config::new();
        let mut h = host(&["h1.test"], None);
        h.http2_support = false;
        config.proxy_hosts = vec![h, host(&["h2.test"], None)];
        let t = CertificateTable::build(&config, None).unwrap();
        assert!(!t.select(Some("h1.test")).h2);
        assert!(t.select(Some("h2.test")).h2);
        assert!(t.select(Some("unknown.test")).h2);
    }
}
