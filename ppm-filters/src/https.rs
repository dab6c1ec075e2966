//! Force HTTPS and HSTS.
//!
//! [`ForceHttps`] redirects plain-HTTP requests to `https://<host><uri>`:
//! `301` for `GET` and `HEAD`, `308` for other methods (so a `POST` stays a
//! `POST`). The host is the engine's routed host name, which was matched
//! against configured names; a name that is not a plain DNS name or IPv6
//! literal gets `400` rather than a redirect. Over TLS it adds
//! `Strict-Transport-Security` to every response; never over plain HTTP, as
//! RFC 6797 requires.

use std::sync::Arc;

use ppm_core::filter::{
    kinds, priority, Filter, FilterAction, FilterRegistry, FilterResponse, ModelFilter, Phases,
    RequestCtx,
};
use ppm_core::http::{header, HeaderValue, Method, RequestHeader, ResponseHeader};
use serde::Deserialize;

use crate::util::{is_safe_host, path_and_query};

/// The default HSTS `max-age`: two years, as the preload list asks.
pub const DEFAULT_HSTS_MAX_AGE: u64 = 63_072_000;

/// The shortest `max-age` the HSTS preload list accepts (one year).
pub const PRELOAD_MIN_MAX_AGE: u64 = 31_536_000;

fn default_max_age() -> u64 {
    DEFAULT_HSTS_MAX_AGE
}

/// Config of the `force_https` kind.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ForceHttpsConfig {
    /// Redirect plain HTTP to HTTPS.
    #[serde(default)]
    pub force_https: bool,
    /// Send `Strict-Transport-Security` over TLS.
    #[serde(default)]
    pub hsts: bool,
    /// Add `includeSubDomains`.
    #[serde(default)]
    pub hsts_subdomains: bool,
    /// `max-age` in seconds; default two years.
    #[serde(default = "default_max_age")]
    pub hsts_max_age: u64,
    /// Add `preload` (needs `hsts_subdomains` and a `max-age` of a year or
    /// more).
    #[serde(default)]
    pub hsts_preload: bool,
}

impl Default for ForceHttpsConfig {
    fn default() -> Self {
        ForceHttpsConfig {
            force_https: true,
            hsts: false,
            hsts_subdomains: false,
            hsts_max_age: DEFAULT_HSTS_MAX_AGE,
            hsts_preload: false,
        }
    }
}

impl ForceHttpsConfig {
    /// Redirect to HTTPS, no HSTS.
    pub fn redirect() -> Self {
        Self::default()
    }

    /// Turns HSTS on or off.
    #[must_use]
    pub fn hsts(mut self, on: bool) -> Self {
        self.hsts = on;
        self
    }

    /// Turns `includeSubDomains` on or off.
    #[must_use]
    pub fn hsts_subdomains(mut self, on: bool) -> Self {
        self.hsts_subdomains = on;
        self
    }
}

/// The `Strict-Transport-Security` value for these options.
pub fn hsts_value(max_age: u64, subdomains: bool, preload: bool) -> String {
    let mut v = format!("max-age={max_age}");
    if subdomains {
        v.push_str("; includeSubDomains");
    }
    if preload {
        v.push_str("; preload");
    }
    v
}

/// Redirects plain HTTP to HTTPS and sends HSTS over TLS. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct ForceHttps {
    force: bool,
    hsts: Option<HeaderValue>,
}

impl ForceHttps {
    /// Checks `config` and builds the filter.
    pub fn new(config: ForceHttpsConfig) -> Result<Self, String> {
        if config.hsts_preload
            && (!config.hsts_subdomains || config.hsts_max_age < PRELOAD_MIN_MAX_AGE)
        {
            return Err(format!(
                "hsts_preload needs hsts_subdomains and hsts_max_age of at least {PRELOAD_MIN_MAX_AGE}"
            ));
        }
        let hsts = if config.hsts {
            let v = hsts_value(
                config.hsts_max_age,
                config.hsts_subdomains,
                config.hsts_preload,
            );
            Some(HeaderValue::from_str(&v).map_err(|_| "invalid HSTS value".to_string())?)
        } else {
            None
        };
        Ok(ForceHttps {
            force: config.force_https,
            hsts,
        })
    }
}

/// The HTTPS URL for a request to `host` with target `path_and_query`
/// (which must start with `/`), or `None` when `host` is not safe to put in
/// a URL.
pub fn https_location(host: &str, path_and_query: &str) -> Option<String> {
    if !is_safe_host(host) || !path_and_query.starts_with('/') {
        return None;
    }
    Some(format!("https://{host}{path_and_query}"))
}

#[ppm_core::async_trait]
impl Filter for ForceHttps {
    fn name(&self) -> &str {
        kinds::FORCE_HTTPS
    }

    fn phases(&self) -> Phases {
        let mut p = Phases::NONE;
        if self.force {
            p = p | Phases::REQUEST;
        }
        if self.hsts.is_some() {
            p = p | Phases::RESPONSE;
        }
        p
    }

    async fn request_filter(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> ppm_core::Result<FilterAction> {
        if !self.force || ctx.tls {
            return Ok(FilterAction::Continue);
        }
        let Some(location) = https_location(&ctx.host, path_and_query(req)) else {
            return Ok(FilterAction::Respond(FilterResponse::text(
                400,
                "invalid host\n",
            )));
        };
        let status = if req.method == Method::GET || req.method == Method::HEAD {
            301
        } else {
            308
        };
        Ok(FilterAction::Respond(FilterResponse::redirect(
            status, &location,
        )))
    }

    async fn response_filter(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> ppm_core::Result<()> {
        if let (Some(v), true) = (&self.hsts, ctx.tls) {
            resp.insert_header(header::STRICT_TRANSPORT_SECURITY, v.clone())?;
        }
        Ok(())
    }
}

pub(crate) fn register(registry: &mut FilterRegistry) {
    registry.register_fn_with_model(
        kinds::FORCE_HTTPS,
        priority::FORCE_HTTPS,
        |cfg: ForceHttpsConfig, _| Ok(Arc::new(ForceHttps::new(cfg)?) as Arc<dyn Filter>),
        |spec, _| match *spec {
            ModelFilter::ForceHttps {
                force_https,
                hsts,
                hsts_subdomains,
            } => Some(
                ForceHttps::new(ForceHttpsConfig {
                    force_https,
                    hsts,
                    hsts_subdomains,
                    ..ForceHttpsConfig::default()
                })
                .map(|f| Arc::new(f) as Arc<dyn Filter>),
            ),
            _ => None,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(host: &str, tls: bool) -> RequestCtx {
        let mut c = RequestCtx::new(Some("192.0.2.1".parse().unwrap()));
        c.host = host.into();
        c.tls = tls;
        c
    }

    async fn run(
        f: &ForceHttps,
        method: &str,
        uri: &str,
        c: &mut RequestCtx,
    ) -> Option<FilterResponse> {
        let req = RequestHeader::build(method, uri.as_bytes(), None).unwrap();
        match f.request_filter(&req, c).await.unwrap() {
            FilterAction::Respond(r) => Some(r),
            _ => None,
        }
    }

    fn location(r: &FilterResponse) -> &str {
        r.headers
            .iter()
            .find(|(n, _)| n == header::LOCATION)
            .map(|(_, v)| v.to_str().unwrap())
            .unwrap()
    }

    #[tokio::test]
    async fn redirects_plain_http() {
        let f = ForceHttps::new(ForceHttpsConfig::redirect()).unwrap();
        let r = run(&f, "GET", "/a/b?c=d", &mut ctx("app.test", false))
            .await
            .unwrap();
        assert_eq!(r.status, 301);
        assert_eq!(location(&r), "https://app.test/a/b?c=d");
        let r = run(&f, "POST", "/form", &mut ctx("app.test", false))
            .await
            .unwrap();
        assert_eq!(r.status, 308);
        let r = run(
            &f,
            "GET",
            "http://other.test/x",
            &mut ctx("app.test", false),
        )
        .await
        .unwrap();
        assert_eq!(location(&r), "https://app.test/x");
        assert!(run(&f, "GET", "/", &mut ctx("app.test", true))
            .await
            .is_none());
        let r = run(&f, "GET", "/", &mut ctx("bad/host", false))
            .await
            .unwrap();
        assert_eq!(r.status, 400);
        let r = run(&f, "GET", "//evil.test/", &mut ctx("app.test", false))
            .await
            .unwrap();
        assert_eq!(location(&r), "https://app.test//evil.test/");
    }

    #[tokio::test]
    async fn hsts_only_over_tls() {
        let f = ForceHttps::new(ForceHttpsConfig {
            force_https: false,
            hsts: true,
            hsts_subdomains: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(f.phases(), Phases::RESPONSE);
        let mut resp = ResponseHeader::build(200, None).unwrap();
        f.response_filter(&mut resp, &mut ctx("a.test", false))
            .await
            .unwrap();
        assert!(resp.headers.get("strict-transport-security").is_none());
        f.response_filter(&mut resp, &mut ctx("a.test", true))
            .await
            .unwrap();
        assert_eq!(
            resp.headers.get("strict-transport-security").unwrap(),
            "max-age=63072000; includeSubDomains"
        );
    }

    #[test]
    fn config_forms() {
        let c: ForceHttpsConfig = serde_json::from_value(serde_json::json!({
            "force_https": true, "hsts": false, "hsts_subdomains": false
        }))
        .unwrap();
        assert_eq!(c.hsts_max_age, DEFAULT_HSTS_MAX_AGE);
        assert!(serde_json::from_value::<ForceHttpsConfig>(
            serde_json::json!({"forse_https": true})
        )
        .is_err());
        assert_eq!(hsts_value(10, false, false), "max-age=10");
        assert_eq!(
            hsts_value(PRELOAD_MIN_MAX_AGE, true, true),
            "max-age=31536000; includeSubDomains; preload"
        );
        let bad_preload = ForceHttpsConfig {
            hsts: true,
            hsts_preload: true,
            ..Default::default()
        };
        assert!(ForceHttps::new(bad_preload).is_err());
        let none = ForceHttps::new(ForceHttpsConfig {
            force_https: false,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(none.phases(), Phases::NONE);
    }
}
