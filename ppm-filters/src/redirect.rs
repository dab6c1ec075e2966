//! Redirection hosts.
//!
//! [`Redirect`] answers every request with a redirect to a configured
//! target. The `Location` is built from the configured scheme and domain,
//! plus the request's path and query when `preserve_path` is set: never from
//! the request's `Host` header, so it cannot be turned into an open
//! redirect.

use std::sync::Arc;

use ppm_core::config::Scheme;
use ppm_core::filter::{
    kinds, priority, Filter, FilterAction, FilterRegistry, FilterResponse, ModelFilter, Phases,
    RequestCtx,
};
use ppm_core::http::RequestHeader;
use ppm_core::validate;
use serde::Deserialize;

use crate::util::path_and_query;

/// The scheme of a redirect target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetScheme {
    /// `http://`
    Http,
    /// `https://`
    Https,
}

impl TargetScheme {
    fn as_str(self) -> &'static str {
        match self {
            TargetScheme::Http => "http",
            TargetScheme::Https => "https",
        }
    }
}

fn default_status() -> u16 {
    301
}

fn default_true() -> bool {
    true
}

/// Config of the `redirect` kind.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RedirectConfig {
    /// 301, 302, 307 or 308 (default 301).
    #[serde(default = "default_status")]
    pub status: u16,
    /// The target's scheme; `None` keeps the request's.
    #[serde(default)]
    pub scheme: Option<TargetScheme>,
    /// The target's host and optional port: `example.com`,
    /// `example.com:8443`, `[2001:db8::1]`.
    pub domain: String,
    /// Keep the request's path and query (default true); otherwise redirect
    /// to `/`.
    #[serde(default = "default_true")]
    pub preserve_path: bool,
}

impl RedirectConfig {
    /// A 301 to `domain`, keeping the request's scheme, path and query.
    pub fn new(domain: impl Into<String>) -> Self {
        RedirectConfig {
            status: 301,
            scheme: None,
            domain: domain.into(),
            preserve_path: true,
        }
    }
}

/// Builds the `Location` of a redirect: `scheme://domain` followed by
/// `path_and_query` when `preserve_path` is set (and it starts with `/`),
/// else by `/`.
pub fn build_location(
    scheme: &str,
    domain: &str,
    preserve_path: bool,
    path_and_query: &str,
) -> String {
    let tail = if preserve_path && path_and_query.starts_with('/') {
        path_and_query
    } else {
        "/"
    };
    let mut s = String::with_capacity(scheme.len() + 3 + domain.len() + tail.len());
    s.push_str(scheme);
    s.push_str("://");
    s.push_str(domain);
    s.push_str(tail);
    s
}

/// Redirects every request to a configured target (request phase). See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct Redirect {
    status: u16,
    scheme: Option<TargetScheme>,
    domain: String,
    preserve_path: bool,
}

impl Redirect {
    /// Checks `config` (status, domain) and builds the filter.
    pub fn new(config: RedirectConfig) -> Result<Self, String> {
        if !matches!(config.status, 301 | 302 | 307 | 308) {
            return Err(format!(
                "status {} is not a redirect (301, 302, 307 or 308)",
                config.status
            ));
        }
        if config.domain.is_empty() {
            return Err("domain must not be empty".into());
        }
        let domain = validate::host_port(&config.domain).map_err(|m| format!("domain: {m}"))?;
        Ok(Redirect {
            status: config.status,
            scheme: config.scheme,
            domain,
            preserve_path: config.preserve_path,
        })
    }

    /// The `Location` for `req` arriving as described by `ctx`.
    pub fn location(&self, req: &RequestHeader, ctx: &RequestCtx) -> String {
        let scheme = match self.scheme {
            Some(s) => s.as_str(),
            None => ctx.scheme(),
        };
        build_location(
            scheme,
            &self.domain,
            self.preserve_path,
            path_and_query(req),
        )
    }
}

#[ppm_core::async_trait]
impl Filter for Redirect {
    fn name(&self) -> &str {
        kinds::REDIRECT
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    async fn request_filter(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> ppm_core::Result<FilterAction> {
        let location = self.location(req, ctx);
        Ok(FilterAction::Respond(FilterResponse::redirect(
            self.status,
            &location,
        )))
    }
}

pub(crate) fn register(registry: &mut FilterRegistry) {
    registry.register_fn_with_model(
        kinds::REDIRECT,
        priority::REDIRECT,
        |cfg: RedirectConfig, _| Ok(Arc::new(Redirect::new(cfg)?) as Arc<dyn Filter>),
        |spec, _| match *spec {
            ModelFilter::Redirect {
                status,
                scheme,
                domain,
                preserve_path,
            } => Some(
                Redirect::new(RedirectConfig {
                    status,
                    scheme: scheme.map(|s| match s {
                        Scheme::Http => TargetScheme::Http,
                        Scheme::Https => TargetScheme::Https,
                    }),
                    domain: domain.to_string(),
                    preserve_path,
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

    fn cfg(v: serde_json::Value) -> RedirectConfig {
        serde_json::from_value(v).unwrap()
    }

    async fn location(r: &Redirect, uri: &str, host: &str, tls: bool) -> (u16, String) {
        let mut req = RequestHeader::build("GET", uri.as_bytes(), None).unwrap();
        req.insert_header("host", host).unwrap();
        let mut ctx = RequestCtx::new(None);
        ctx.host = host.into();
        ctx.tls = tls;
        match r.request_filter(&req, &mut ctx).await.unwrap() {
            FilterAction::Respond(resp) => (
                resp.status.as_u16(),
                resp.headers[0].1.to_str().unwrap().to_string(),
            ),
            _ => panic!("a redirect always answers"),
        }
    }

    #[test]
    fn builds_locations() {
        assert_eq!(
            build_location("https", "a.test", true, "/x?y=1"),
            "https://a.test/x?y=1"
        );
        assert_eq!(
            build_location("https", "a.test", false, "/x?y=1"),
            "https://a.test/"
        );
        assert_eq!(
            build_location("http", "a.test:8080", true, "*"),
            "http://a.test:8080/"
        );
        assert_eq!(
            build_location("http", "[2001:db8::1]", true, "//x"),
            "http://[2001:db8::1]//x"
        );
    }

    #[tokio::test]
    async fn keeps_path_and_ignores_host() {
        let r = Redirect::new(cfg(serde_json::json!({
            "status": 308, "scheme": "https", "domain": "Target.Test:8443", "preserve_path": true
        })))
        .unwrap();
        let (s, l) = location(&r, "/p/q?a=1&b=2", "evil.test", false).await;
        assert_eq!(s, 308);
        assert_eq!(l, "https://target.test:8443/p/q?a=1&b=2");
        let (_, l) = location(&r, "http://evil.test/abs?x", "evil.test", false).await;
        assert_eq!(l, "https://target.test:8443/abs?x");

        let r = Redirect::new(cfg(serde_json::json!({
            "status": 302, "scheme": null, "domain": "t.test", "preserve_path": false
        })))
        .unwrap();
        assert_eq!(
            location(&r, "/deep/path?q", "x", true).await,
            (302, "https://t.test/".into())
        );
        assert_eq!(
            location(&r, "/deep", "x", false).await,
            (302, "http://t.test/".into())
        );
    }

    #[test]
    fn rejects_bad_configs() {
        for v in [
            serde_json::json!({"status": 200, "domain": "a.test"}),
            serde_json::json!({"status": 301, "domain": ""}),
            serde_json::json!({"status": 301, "domain": "a.test/path"}),
            serde_json::json!({"status": 301, "domain": "user@a.test"}),
            serde_json::json!({"status": 301, "domain": "a.test:0"}),
        ] {
            assert!(Redirect::new(cfg(v.clone())).is_err(), "{v}");
        }
        assert!(serde_json::from_value::<RedirectConfig>(
            serde_json::json!({"domain": "a", "scheme": "ftp"})
        )
        .is_err());
        let c = cfg(serde_json::json!({"domain": "a.test"}));
        assert_eq!(c, RedirectConfig::new("a.test"));
    }
}
