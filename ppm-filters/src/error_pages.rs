//! Custom error pages.
//!
//! [`ErrorPages`] replaces the engine's own error responses (404 for a dead
//! host or an unknown one, 502 when no upstream answers, 503, 504 on a
//! timeout, 413...) with configured HTML, per host, with a global fallback
//! when attached in `settings.filters`. Pages are static text from the
//! config: nothing of the internal error ever reaches the client.
//!
//! A host-level and a global `error_pages` filter both sit in a host's
//! chain; the first one that has a page for the status answers. Give the
//! global one a lower `priority` (for example 40) so host pages win.

use std::collections::BTreeMap;
use std::sync::Arc;

use ppm_core::filter::{
    kinds, priority, Filter, FilterRegistry, FilterResponse, Phases, RequestCtx, RouteKind,
};
use ppm_core::http::{header, HeaderValue};
use serde::Deserialize;

/// Largest page, in bytes.
pub const MAX_PAGE_LEN: usize = 256 * 1024;

/// Config of the `error_pages` kind.
///
/// ```json
/// {"pages": {"404": "<h1>Not here</h1>", "502": "<h1>Back soon</h1>"},
///  "default_site": "<h1>Nothing is served at this address</h1>"}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ErrorPagesConfig {
    /// HTML by status code (400..=599), as strings: `"404"`, `"502"`...
    pub pages: BTreeMap<String, String>,
    /// HTML for the default site (a request for a host that matches
    /// nothing) when the engine answers 404 there; falls back to `pages["404"]`.
    pub default_site: Option<String>,
}

impl ErrorPagesConfig {
    /// An empty config.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the page for `status`.
    #[must_use]
    pub fn page(mut self, status: u16, html: impl Into<String>) -> Self {
        self.pages.insert(status.to_string(), html.into());
        self
    }

    /// Sets the default-site page.
    #[must_use]
    pub fn default_site(mut self, html: impl Into<String>) -> Self {
        self.default_site = Some(html.into());
        self
    }
}

/// Serves configured error pages (error-response phase). See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct ErrorPages {
    pages: BTreeMap<u16, FilterResponse>,
    default_site: Option<FilterResponse>,
}

fn page(status: u16, html: &str) -> FilterResponse {
    FilterResponse::html(status, html.to_string())
        .header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

fn check_len(html: &str, field: &str) -> Result<(), String> {
    if html.len() > MAX_PAGE_LEN {
        return Err(format!("{field}: must be at most {MAX_PAGE_LEN} bytes"));
    }
    Ok(())
}

impl ErrorPages {
    /// Checks status codes and sizes of `config` and builds the filter.
    pub fn new(config: ErrorPagesConfig) -> Result<Self, String> {
        let mut pages = BTreeMap::new();
        for (k, html) in &config.pages {
            let status: u16 = k
                .parse()
                .ok()
                .filter(|s| (400..=599).contains(s))
                .ok_or_else(|| format!("pages.{k}: must be a status code from 400 to 599"))?;
            check_len(html, &format!("pages.{k}"))?;
            pages.insert(status, page(status, html));
        }
        let default_site = match &config.default_site {
            Some(html) => {
                check_len(html, "default_site")?;
                Some(page(404, html))
            }
            None => None,
        };
        Ok(ErrorPages {
            pages,
            default_site,
        })
    }
}

#[ppm_core::async_trait]
impl Filter for ErrorPages {
    fn name(&self) -> &str {
        kinds::ERROR_PAGES
    }

    fn phases(&self) -> Phases {
        Phases::ERROR_RESPONSE
    }

    fn error_response(&self, status: u16, ctx: &RequestCtx) -> Option<FilterResponse> {
        let default_site = matches!(
            ctx.route,
            None | Some(ppm_core::filter::Route {
                kind: RouteKind::Default,
                ..
            })
        );
        if status == 404 && default_site {
            if let Some(p) = &self.default_site {
                return Some(p.clone());
            }
        }
        self.pages.get(&status).cloned()
    }
}

pub(crate) fn register(registry: &mut FilterRegistry) {
    registry.register_fn(
        kinds::ERROR_PAGES,
        priority::ERROR_PAGES,
        |cfg: ErrorPagesConfig, _| Ok(Arc::new(ErrorPages::new(cfg)?) as Arc<dyn Filter>),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppm_core::filter::Route;

    #[test]
    fn pages_by_status_and_route() {
        let f = ErrorPages::new(
            ErrorPagesConfig::new()
                .page(404, "<p>gone</p>")
                .page(502, "<p>down</p>")
                .default_site("<p>nothing here</p>"),
        )
        .unwrap();
        let mut ctx = RequestCtx::default();
        ctx.route = Some(Route {
            kind: RouteKind::Dead,
            host_id: 3,
            location: None,
        });
        let r = f.error_response(404, &ctx).unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(&r.body[..], b"<p>gone</p>");
        assert_eq!(
            &f.error_response(502, &ctx).unwrap().body[..],
            b"<p>down</p>"
        );
        assert!(f.error_response(504, &ctx).is_none());
        ctx.route = Some(Route {
            kind: RouteKind::Default,
            host_id: 0,
            location: None,
        });
        assert_eq!(
            &f.error_response(404, &ctx).unwrap().body[..],
            b"<p>nothing here</p>"
        );
        assert_eq!(
            &f.error_response(502, &ctx).unwrap().body[..],
            b"<p>down</p>"
        );
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(ErrorPages::new(ErrorPagesConfig::new().page(200, "x")).is_err());
        let mut c = ErrorPagesConfig::new();
        c.pages.insert("abc".into(), "x".into());
        assert!(ErrorPages::new(c).is_err());
        assert!(
            ErrorPages::new(ErrorPagesConfig::new().page(404, "x".repeat(MAX_PAGE_LEN + 1)))
                .is_err()
        );
        let c: ErrorPagesConfig =
            serde_json::from_value(serde_json::json!({"pages": {"503": "<b>busy</b>"}})).unwrap();
        assert!(ErrorPages::new(c).is_ok());
        assert!(
            serde_json::from_value::<ErrorPagesConfig>(serde_json::json!({"page": {}})).is_err()
        );
    }
}
