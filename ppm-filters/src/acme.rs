//! ACME HTTP-01 challenge answers.
//!
//! [`AcmeChallenge`] answers `GET /.well-known/acme-challenge/<token>` on any
//! host, before routing and before every other filter, from an in-memory
//! [`ChallengeStore`] that the ACME manager fills while an order is pending.
//! It never touches the filesystem. Tokens must match `[A-Za-z0-9_-]{1,128}`
//! (the base64url alphabet RFC 8555 uses); any other path under the prefix
//! (`..`, `%2e`, `/`, `\`, NUL...) and any unknown token is a 404.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use ppm_core::filter::{
    kinds, priority, Filter, FilterAction, FilterRegistry, FilterResponse, Phases, RequestCtx,
};
use ppm_core::http::RequestHeader;
use serde::Deserialize;

/// The path prefix HTTP-01 validation requests use.
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Longest accepted token.
pub const MAX_TOKEN_LEN: usize = 128;

/// Most tokens an [`AcmeTokens`] store holds at once.
pub const MAX_TOKENS: usize = 10_000;

/// Longest accepted key authorization.
pub const MAX_KEY_AUTHORIZATION_LEN: usize = 512;

/// Whether `token` is a valid challenge token: 1 to 128 characters of
/// `[A-Za-z0-9_-]`.
pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The token of a challenge request path, if `path` is under
/// [`CHALLENGE_PREFIX`]: `Some(Ok(token))` for a valid token,
/// `Some(Err(()))` for anything else under the prefix, `None` elsewhere.
#[allow(clippy::result_unit_err)]
pub fn challenge_token(path: &str) -> Option<Result<&str, ()>> {
    let rest = path.strip_prefix(CHALLENGE_PREFIX)?;
    Some(if valid_token(rest) { Ok(rest) } else { Err(()) })
}

/// Where [`AcmeChallenge`] looks up key authorizations.
///
/// [`AcmeTokens`] is the in-memory implementation; a clustered deployment
/// may implement this over shared storage (lookups run on the request path,
/// so they must not block).
pub trait ChallengeStore: Send + Sync + 'static {
    /// The key authorization for `token`, if a challenge is pending. Called
    /// only with valid tokens.
    fn key_authorization(&self, token: &str) -> Option<String>;
}

/// Why a token could not be published.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is not `[A-Za-z0-9_-]{1,128}`.
    InvalidToken,
    /// The key authorization is empty, too long or not visible ASCII.
    InvalidKeyAuthorization,
    /// The store already holds [`MAX_TOKENS`] tokens.
    Full,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenError::InvalidToken => "challenge token must match [A-Za-z0-9_-]{1,128}",
            TokenError::InvalidKeyAuthorization => {
                "key authorization must be 1 to 512 visible ASCII characters"
            }
            TokenError::Full => "too many pending challenge tokens",
        })
    }
}

impl std::error::Error for TokenError {}

/// An in-memory, clonable store of pending HTTP-01 challenges: clones share
/// the same tokens.
#[derive(Clone, Default)]
pub struct AcmeTokens {
    inner: Arc<RwLock<HashMap<String, String>>>,
}

impl std::fmt::Debug for AcmeTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeTokens")
            .field("len", &self.len())
            .finish()
    }
}

impl AcmeTokens {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes `key_authorization` for `token`, replacing an earlier one.
    pub fn insert(
        &self,
        token: impl Into<String>,
        key_authorization: impl Into<String>,
    ) -> Result<(), TokenError> {
        let token = token.into();
        let key_authorization = key_authorization.into();
        if !valid_token(&token) {
            return Err(TokenError::InvalidToken);
        }
        if key_authorization.is_empty()
            || key_authorization.len() > MAX_KEY_AUTHORIZATION_LEN
            || !key_authorization.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(TokenError::InvalidKeyAuthorization);
        }
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TOKENS && !map.contains_key(&token) {
            return Err(TokenError::Full);
        }
        map.insert(token, key_authorization);
        Ok(())
    }

    /// Withdraws `token`; returns its key authorization if it was pending.
    pub fn remove(&self, token: &str) -> Option<String> {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token)
    }

    /// The key authorization for `token`.
    pub fn get(&self, token: &str) -> Option<String> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }

    /// How many tokens are pending.
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no token is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Withdraws every token.
    pub fn clear(&self) {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

impl ChallengeStore for AcmeTokens {
    fn key_authorization(&self, token: &str) -> Option<String> {
        self.get(token)
    }
}

/// Config of the `acme_challenge` kind: empty (the token store belongs to
/// the registry, see [`registry_with`](crate::registry_with)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AcmeChallengeConfig {}

/// Answers ACME HTTP-01 challenges from a [`ChallengeStore`].
///
/// Runs in the early-request phase (global filters only, before routing),
/// so challenges are served on every host, even one that forces HTTPS or
/// has an access list. `GET` and `HEAD` of a pending token get `200` with
/// the key authorization as `text/plain`; every other request under
/// [`CHALLENGE_PREFIX`] gets `404`.
pub struct AcmeChallenge {
    store: Arc<dyn ChallengeStore>,
}

impl std::fmt::Debug for AcmeChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeChallenge").finish_non_exhaustive()
    }
}

impl AcmeChallenge {
    /// A filter serving the tokens of `tokens`.
    pub fn new(tokens: AcmeTokens) -> Self {
        AcmeChallenge {
            store: Arc::new(tokens),
        }
    }

    /// A filter serving the tokens of any store.
    pub fn with_store(store: Arc<dyn ChallengeStore>) -> Self {
        AcmeChallenge { store }
    }

    /// The response for `req`, if it is a challenge request.
    fn answer(&self, req: &RequestHeader) -> Option<FilterResponse> {
        let token = challenge_token(req.uri.path())?;
        let method = &req.method;
        let readable =
            method == ppm_core::http::Method::GET || method == ppm_core::http::Method::HEAD;
        let found = match token {
            Ok(t) if readable => self.store.key_authorization(t),
            _ => None,
        };
        Some(match found {
            Some(key_authorization) => FilterResponse::text(200, key_authorization).header(
                ppm_core::http::header::CACHE_CONTROL,
                ppm_core::http::HeaderValue::from_static("no-store"),
            ),
            None => FilterResponse::text(404, "no such challenge\n"),
        })
    }
}

#[ppm_core::async_trait]
impl Filter for AcmeChallenge {
    fn name(&self) -> &str {
        kinds::ACME_CHALLENGE
    }

    fn phases(&self) -> Phases {
        Phases::EARLY_REQUEST | Phases::REQUEST
    }

    async fn early_request_filter(
        &self,
        req: &RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> ppm_core::Result<FilterAction> {
        Ok(match self.answer(req) {
            Some(r) => FilterAction::Respond(r),
            None => FilterAction::Continue,
        })
    }

    /// Also answers in the request phase, so the filter works when attached
    /// to a host rather than globally (the early phase runs only for global
    /// filters).
    async fn request_filter(
        &self,
        req: &RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> ppm_core::Result<FilterAction> {
        Ok(match self.answer(req) {
            Some(r) => FilterAction::Respond(r),
            None => FilterAction::Continue,
        })
    }
}

pub(crate) fn register(registry: &mut FilterRegistry, tokens: AcmeTokens) {
    registry.register_fn(
        kinds::ACME_CHALLENGE,
        priority::ACME_CHALLENGE,
        move |_: AcmeChallengeConfig, _| {
            Ok(Arc::new(AcmeChallenge::new(tokens.clone())) as Arc<dyn Filter>)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppm_core::filter::{FilterChain, FilterEntry};

    #[test]
    fn token_validation() {
        assert!(valid_token("a"));
        assert!(valid_token("AZaz09_-"));
        assert!(valid_token(&"x".repeat(128)));
        assert!(!valid_token(&"x".repeat(129)));
        for bad in [
            "", "..", ".", "a.b", "a/b", "a\\b", "a\0b", "%2e%2e", "/etc", "a b", "é", "a+b", "a=",
            "~",
        ] {
            assert!(!valid_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn challenge_paths() {
        assert_eq!(
            challenge_token("/.well-known/acme-challenge/abc"),
            Some(Ok("abc"))
        );
        assert_eq!(
            challenge_token("/.well-known/acme-challenge/"),
            Some(Err(()))
        );
        assert_eq!(
            challenge_token("/.well-known/acme-challenge/../x"),
            Some(Err(()))
        );
        assert_eq!(
            challenge_token("/.well-known/acme-challenge/a/b"),
            Some(Err(()))
        );
        assert_eq!(challenge_token("/.well-known/acme-challenge"), None);
        assert_eq!(challenge_token("/x/.well-known/acme-challenge/a"), None);
    }

    #[test]
    fn store_rejects_bad_input() {
        let t = AcmeTokens::new();
        assert_eq!(t.insert("../x", "k"), Err(TokenError::InvalidToken));
        assert_eq!(t.insert("x", ""), Err(TokenError::InvalidKeyAuthorization));
        assert_eq!(
            t.insert("x", "a\r\nb"),
            Err(TokenError::InvalidKeyAuthorization)
        );
        assert!(t.insert("x", "x.key").is_ok());
        assert_eq!(t.len(), 1);
        assert_eq!(t.clone().get("x").as_deref(), Some("x.key"));
        assert_eq!(t.remove("x").as_deref(), Some("x.key"));
        assert!(t.is_empty());
    }

    async fn run(chain: &FilterChain, method: &str, path: &str) -> Option<FilterResponse> {
        let req = RequestHeader::build(method, path.as_bytes(), None).unwrap();
        let mut ctx = RequestCtx::default();
        match chain.run_early_request(&req, &mut ctx).await.unwrap() {
            FilterAction::Respond(r) => Some(r),
            _ => None,
        }
    }

    #[tokio::test]
    async fn serves_pending_tokens_only() {
        let tokens = AcmeTokens::new();
        tokens.insert("tok_1-A", "tok_1-A.thumb").unwrap();
        let chain = FilterChain::new(vec![FilterEntry {
            priority: priority::ACME_CHALLENGE,
            filter: Arc::new(AcmeChallenge::new(tokens.clone())),
        }]);
        let r = run(&chain, "GET", "/.well-known/acme-challenge/tok_1-A")
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"tok_1-A.thumb");
        let r = run(&chain, "HEAD", "/.well-known/acme-challenge/tok_1-A?x=1")
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        for path in [
            "/.well-known/acme-challenge/other",
            "/.well-known/acme-challenge/..%2f..%2fetc%2fpasswd",
            "/.well-known/acme-challenge/%2e%2e",
            "/.well-known/acme-challenge/tok_1-A/",
            "/.well-known/acme-challenge/",
        ] {
            assert_eq!(
                run(&chain, "GET", path).await.unwrap().status,
                404,
                "{path}"
            );
        }
        assert_eq!(
            run(&chain, "POST", "/.well-known/acme-challenge/tok_1-A")
                .await
                .unwrap()
                .status,
            404
        );
        assert!(run(&chain, "GET", "/index.html").await.is_none());
        tokens.remove("tok_1-A");
        assert_eq!(
            run(&chain, "GET", "/.well-known/acme-challenge/tok_1-A")
                .await
                .unwrap()
                .status,
            404
        );
    }

    #[test]
    fn registered_kind_shares_the_store() {
        let tokens = AcmeTokens::new();
        let mut reg = FilterRegistry::new();
        register(&mut reg, tokens.clone());
        let cfg = ppm_core::config::Config::default();
        let ctx = ppm_core::filter::BuildContext { config: &cfg };
        let f = reg.get(kinds::ACME_CHALLENGE).unwrap();
        assert_eq!(f.default_priority(), priority::ACME_CHALLENGE);
        assert!(f.build(&serde_json::json!({}), &ctx).is_ok());
        assert!(f.build(&serde_json::json!({"x": 1}), &ctx).is_err());
    }
}
