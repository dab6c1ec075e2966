//! The default filters of the ppm proxy engine.
//!
//! Each filter is a public type with a typed config, usable by anyone who
//! embeds [`ppm_core`], and registered under a stable kind name so a config
//! can attach it globally (`settings.filters`) or per host and location. The
//! engine's compiler attaches most of them implicitly from model fields
//! (`ssl_forced`, `access_list_id`, redirection hosts, header rules,
//! `block_exploits`).
//!
//! | Filter | Kind | Priority | Phases |
//! | --- | --- | --- | --- |
//! | [`AcmeChallenge`] | `acme_challenge` | 1000 | early request |
//! | [`BlockExploits`] | `block_exploits` | 950 | request |
//! | [`ForceHttps`] | `force_https` | 900 | request, response |
//! | [`Redirect`] | `redirect` | 800 | request |
//! | [`AccessControl`] | `access_list` | 700 | request, upstream request |
//! | [`RateLimit`] | `rate_limit` | 600 | request, logging |
//! | [`Headers`] | `headers` | 100 | (request), upstream request, response |
//! | [`ErrorPages`] | `error_pages` | 50 | error response |
//!
//! Every filter sits behind a cargo feature of the same name (all on by
//! default), so an embedder can keep only what it uses. `docs/filters.md` in
//! the repository documents each config in full.
//!
//! # Example
//!
//! Register every default kind, with one ACME token store shared between the
//! `acme_challenge` kind and the code that fills it:
//!
//! ```
//! use ppm_core::filter::{kinds, BuildContext};
//! use ppm_core::config::Config;
//! use ppm_filters::AcmeTokens;
//!
//! let tokens = AcmeTokens::new();
//! let registry = ppm_filters::registry_with(tokens.clone());
//! assert!(registry.contains(kinds::ACCESS_LIST));
//!
//! // The ACME manager publishes a key authorization...
//! tokens.insert("abc_DEF-123", "abc_DEF-123.thumbprint").unwrap();
//!
//! // ...and a filter built from config serves it.
//! let config = Config::default();
//! let ctx = BuildContext { config: &config };
//! let factory = registry.get(kinds::ACME_CHALLENGE).unwrap();
//! let filter = factory.build(&serde_json::json!({}), &ctx).unwrap();
//! assert_eq!(filter.name(), "acme_challenge");
//! ```
//!
//! Filters can also be built directly and run without a server, through a
//! [`FilterChain`](ppm_core::filter::FilterChain):
//!
//! ```
//! use std::sync::Arc;
//! use ppm_core::filter::{FilterAction, FilterChain, FilterEntry, RequestCtx, priority};
//! use ppm_core::http::RequestHeader;
//! use ppm_filters::{Redirect, RedirectConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let config: RedirectConfig = serde_json::from_value(serde_json::json!({
//!     "status": 301, "scheme": "https", "domain": "example.com", "preserve_path": true
//! })).unwrap();
//! let chain = FilterChain::new(vec![FilterEntry {
//!     priority: priority::REDIRECT,
//!     filter: Arc::new(Redirect::new(config).unwrap()),
//! }]);
//! let req = RequestHeader::build("GET", b"/a?b=c", None).unwrap();
//! let mut ctx = RequestCtx::new(Some("192.0.2.1".parse().unwrap()));
//! match chain.run_request(&req, &mut ctx).await.unwrap() {
//!     FilterAction::Respond(r) => {
//!         assert_eq!(r.status, 301);
//!         assert_eq!(r.headers[0].1, "https://example.com/a?b=c");
//!     }
//!     _ => unreachable!(),
//! }
//! # });
//! ```

#![warn(missing_docs)]

#[cfg(feature = "access-list")]
pub mod access;
#[cfg(feature = "acme")]
pub mod acme;
#[cfg(feature = "error-pages")]
pub mod error_pages;
#[cfg(feature = "block-exploits")]
pub mod exploits;
#[cfg(feature = "headers")]
pub mod headers;
#[cfg(feature = "force-https")]
pub mod https;
#[cfg(feature = "rate-limit")]
pub mod rate_limit;
#[cfg(feature = "redirect")]
pub mod redirect;

mod util;

#[cfg(feature = "access-list")]
pub use access::{AccessControl, AccessListConfig, BasicAuth, Credentials, IpAcl};
#[cfg(feature = "acme")]
pub use acme::{AcmeChallenge, AcmeChallengeConfig, AcmeTokens, ChallengeStore};
#[cfg(feature = "error-pages")]
pub use error_pages::{ErrorPages, ErrorPagesConfig};
#[cfg(feature = "block-exploits")]
pub use exploits::{BlockExploits, BlockExploitsConfig};
#[cfg(feature = "headers")]
pub use headers::{Headers, HeadersConfig};
#[cfg(feature = "force-https")]
pub use https::{ForceHttps, ForceHttpsConfig};
#[cfg(feature = "rate-limit")]
pub use rate_limit::{RateLimit, RateLimitConfig};
#[cfg(feature = "redirect")]
pub use redirect::{Redirect, RedirectConfig};

use ppm_core::filter::FilterRegistry;

/// The types most users need, in one import.
pub mod prelude {
    #[cfg(feature = "access-list")]
    pub use crate::access::{AccessControl, AccessListConfig};
    #[cfg(feature = "acme")]
    pub use crate::acme::{AcmeChallenge, AcmeTokens};
    #[cfg(feature = "error-pages")]
    pub use crate::error_pages::{ErrorPages, ErrorPagesConfig};
    #[cfg(feature = "block-exploits")]
    pub use crate::exploits::BlockExploits;
    #[cfg(feature = "headers")]
    pub use crate::headers::{Headers, HeadersConfig};
    #[cfg(feature = "force-https")]
    pub use crate::https::{ForceHttps, ForceHttpsConfig};
    #[cfg(feature = "rate-limit")]
    pub use crate::rate_limit::{RateLimit, RateLimitConfig};
    #[cfg(feature = "redirect")]
    pub use crate::redirect::{Redirect, RedirectConfig};
    #[cfg(feature = "acme")]
    pub use crate::registry_with;
    pub use crate::{default_registry, register_defaults};
}

/// Registers every default kind enabled by cargo features into `registry`,
/// replacing earlier factories of the same kinds.
///
/// The `acme_challenge` kind serves the tokens of a new [`AcmeTokens`]
/// store, which is returned so the caller can fill it (without the `acme`
/// feature, the unit type is returned instead).
#[cfg(feature = "acme")]
pub fn register_defaults(registry: &mut FilterRegistry) -> AcmeTokens {
    let tokens = AcmeTokens::new();
    register_defaults_with(registry, tokens.clone());
    tokens
}

/// Registers every default kind enabled by cargo features into `registry`.
#[cfg(not(feature = "acme"))]
pub fn register_defaults(registry: &mut FilterRegistry) {
    register_others(registry);
}

/// Registers every default kind into `registry`; the `acme_challenge` kind
/// serves the tokens of `tokens`.
#[cfg(feature = "acme")]
pub fn register_defaults_with(registry: &mut FilterRegistry, tokens: AcmeTokens) {
    acme::register(registry, tokens);
    register_others(registry);
}

fn register_others(registry: &mut FilterRegistry) {
    #[cfg(feature = "access-list")]
    access::register(registry);
    #[cfg(feature = "block-exploits")]
    exploits::register(registry);
    #[cfg(feature = "error-pages")]
    error_pages::register(registry);
    #[cfg(feature = "headers")]
    headers::register(registry);
    #[cfg(feature = "force-https")]
    https::register(registry);
    #[cfg(feature = "rate-limit")]
    rate_limit::register(registry);
    #[cfg(feature = "redirect")]
    redirect::register(registry);
    let _ = registry;
}

/// A registry with every default kind (the `acme_challenge` kind, if
/// enabled, serves an unreachable empty token store: use [`registry_with`]
/// to serve challenges).
pub fn default_registry() -> FilterRegistry {
    let mut registry = FilterRegistry::new();
    #[cfg(feature = "acme")]
    register_defaults_with(&mut registry, AcmeTokens::new());
    #[cfg(not(feature = "acme"))]
    register_defaults(&mut registry);
    registry
}

/// A registry with every default kind, the `acme_challenge` kind serving the
/// tokens of `tokens`.
#[cfg(feature = "acme")]
pub fn registry_with(tokens: AcmeTokens) -> FilterRegistry {
    let mut registry = FilterRegistry::new();
    register_defaults_with(&mut registry, tokens);
    registry
}

#[cfg(test)]
mod tests {
    use ppm_core::filter::kinds;

    #[test]
    fn default_registry_has_every_kind() {
        let r = super::default_registry();
        for k in [
            kinds::ACME_CHALLENGE,
            kinds::ACCESS_LIST,
            kinds::REDIRECT,
            kinds::FORCE_HTTPS,
            kinds::HEADERS,
            kinds::BLOCK_EXPLOITS,
            kinds::RATE_LIMIT,
            kinds::ERROR_PAGES,
        ] {
            assert!(r.contains(k), "{k} missing");
        }
    }
}
