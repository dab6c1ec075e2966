//! Access lists: IP/CIDR rules and HTTP Basic Auth.
//!
//! [`AccessControl`] applies one [`AccessList`] of the config: its IP rules
//! ([`IpAcl`], evaluated in order on the engine's trusted-proxy-aware client
//! IP, never on a raw header) and its Basic-Auth users ([`BasicAuth`]),
//! combined by `satisfy`:
//!
//! | users | satisfy | IP allowed | IP denied |
//! | --- | --- | --- | --- |
//! | none | – | pass | 403 |
//! | some | `any` | pass (if the list has rules) | password, else 401 |
//! | some | `all` | password, else 401 | 403 |
//!
//! With users, `satisfy any` and no IP rule at all, a password is always
//! required (the default action alone does not let anyone in).
//!
//! Unless `pass_auth` is set, a list with users removes the client's
//! `Authorization` header from the request sent upstream.

mod basic;
mod ip;

pub use basic::{
    decode_base64, hash_password, parse_basic_auth, BasicAuth, Credentials, Verdict,
    CACHE_CAPACITY, CACHE_TTL, MAX_HEADER_LEN,
};
pub use ip::{IpAcl, MAX_RULES};

use std::sync::Arc;

use ppm_core::config::{AccessList, Id, RuleAction, Satisfy};
use ppm_core::filter::{
    kinds, priority, BuildContext, Filter, FilterAction, FilterRegistry, FilterResponse,
    ModelFilter, Phases, RequestCtx,
};
use ppm_core::http::{header, HeaderValue, RequestHeader};
use serde::Deserialize;

/// Config of the `access_list` kind: the id of an access list of the
/// config being compiled.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AccessListConfig {
    /// The list's id in `access_lists`.
    pub access_list_id: Id,
}

impl AccessListConfig {
    /// A config for list `access_list_id`.
    pub fn new(access_list_id: Id) -> Self {
        AccessListConfig { access_list_id }
    }
}

/// Applies an access list (request phase; strips `Authorization` in the
/// upstream-request phase). See the [module docs](self).
pub struct AccessControl {
    acl: IpAcl,
    has_rules: bool,
    auth: Option<BasicAuth>,
    satisfy: Satisfy,
    pass_auth: bool,
    challenge: HeaderValue,
}

impl std::fmt::Debug for AccessControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessControl")
            .field("rules", &self.acl.rule_count())
            .field(
                "users",
                &self.auth.as_ref().map_or(0, BasicAuth::user_count),
            )
            .field("satisfy", &self.satisfy)
            .field("pass_auth", &self.pass_auth)
            .finish()
    }
}

/// The realm shown by browsers: the list's name with anything that could
/// break the quoted string removed.
fn realm(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
        .take(64)
        .collect();
    let clean = clean.trim();
    if clean.is_empty() {
        "Restricted".to_string()
    } else {
        clean.to_string()
    }
}

impl AccessControl {
    /// Compiles `list`: its rules, its users' hashes. Fails with a message
    /// naming the first invalid rule or user.
    pub fn new(list: &AccessList) -> Result<Self, String> {
        let acl = IpAcl::new(&list.rules, list.default_action)?;
        let auth = if list.users.is_empty() {
            None
        } else {
            Some(BasicAuth::new(&list.users)?)
        };
        let challenge = HeaderValue::from_str(&format!(
            "Basic realm=\"{}\", charset=\"UTF-8\"",
            realm(&list.name)
        ))
        .map_err(|_| "the list name cannot be used as a realm".to_string())?;
        Ok(AccessControl {
            acl,
            has_rules: !list.rules.is_empty(),
            auth,
            satisfy: list.satisfy,
            pass_auth: list.pass_auth,
            challenge,
        })
    }

    /// The compiled IP rules.
    pub fn ip_acl(&self) -> &IpAcl {
        &self.acl
    }

    fn ip_allowed(&self, ctx: &RequestCtx) -> bool {
        match ctx.client_ip {
            Some(ip) => self.acl.check(ip) == RuleAction::Allow,
            // No address to check (not a TCP client): nothing to allow.
            None => false,
        }
    }

    fn forbidden() -> FilterResponse {
        FilterResponse::html(
            403,
            "<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>\
             <body><h1>403 Forbidden</h1></body></html>\n",
        )
    }

    fn unauthorized(&self) -> FilterResponse {
        FilterResponse::html(
            401,
            "<!DOCTYPE html>\n<html><head><title>401 Authorization Required</title></head>\
             <body><h1>401 Authorization Required</h1></body></html>\n",
        )
        .header(header::WWW_AUTHENTICATE, self.challenge.clone())
    }

    async fn password(&self, auth: &BasicAuth, req: &RequestHeader) -> FilterAction {
        let value = req.headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        match auth.verify(value).await {
            Verdict::Valid => FilterAction::Continue,
            Verdict::Busy => FilterAction::Respond(
                FilterResponse::text(503, "too many authentication attempts, retry later\n")
                    .header(header::RETRY_AFTER, HeaderValue::from_static("5")),
            ),
            _ => FilterAction::Respond(self.unauthorized()),
        }
    }
}

#[ppm_core::async_trait]
impl Filter for AccessControl {
    fn name(&self) -> &str {
        kinds::ACCESS_LIST
    }

    fn phases(&self) -> Phases {
        if self.auth.is_some() && !self.pass_auth {
            Phases::REQUEST | Phases::UPSTREAM_REQUEST
        } else {
            Phases::REQUEST
        }
    }

    async fn request_filter(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> ppm_core::Result<FilterAction> {
        let ip_ok = self.ip_allowed(ctx);
        let Some(auth) = &self.auth else {
            return Ok(if ip_ok {
                FilterAction::Continue
            } else {
                FilterAction::Respond(Self::forbidden())
            });
        };
        Ok(match self.satisfy {
            Satisfy::All if !ip_ok => FilterAction::Respond(Self::forbidden()),
            Satisfy::Any if ip_ok && self.has_rules => FilterAction::Continue,
            _ => self.password(auth, req).await,
        })
    }

    async fn upstream_request_filter(
        &self,
        upstream_req: &mut RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> ppm_core::Result<()> {
        if self.auth.is_some() && !self.pass_auth {
            upstream_req.remove_header(&header::AUTHORIZATION);
        }
        Ok(())
    }
}

fn build(cfg: AccessListConfig, ctx: &BuildContext<'_>) -> Result<Arc<dyn Filter>, String> {
    let list = ctx
        .config
        .access_lists
        .iter()
        .find(|l| l.id == cfg.access_list_id)
        .ok_or_else(|| format!("access list {} does not exist", cfg.access_list_id))?;
    let filter =
        AccessControl::new(list).map_err(|m| format!("access list {}: {m}", cfg.access_list_id))?;
    Ok(Arc::new(filter))
}

pub(crate) fn register(registry: &mut FilterRegistry) {
    registry.register_fn_with_model(
        kinds::ACCESS_LIST,
        priority::ACCESS_LIST,
        build,
        |spec, ctx| match *spec {
            ModelFilter::AccessList { access_list_id } => {
                Some(build(AccessListConfig { access_list_id }, ctx))
            }
            _ => None,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppm_core::config::{AccessUser, Config, IpRule};
    use ppm_core::filter::{FilterChain, FilterEntry};
    use std::sync::OnceLock;

    fn password_hash() -> &'static str {
        static H: OnceLock<String> = OnceLock::new();
        H.get_or_init(|| hash_password("open sesame").unwrap())
    }

    fn list(
        rules: &[(&str, RuleAction)],
        default: RuleAction,
        users: bool,
        satisfy: Satisfy,
    ) -> AccessList {
        AccessList {
            id: 7,
            name: "Staff \"only\"".into(),
            rules: rules
                .iter()
                .map(|(a, act)| IpRule {
                    action: *act,
                    address: a.to_string(),
                })
                .collect(),
            default_action: default,
            users: if users {
                vec![AccessUser {
                    username: "ali".into(),
                    password_hash: password_hash().to_string(),
                }]
            } else {
                vec![]
            },
            satisfy,
            pass_auth: false,
        }
    }

    const GOOD: &str = "Basic YWxpOm9wZW4gc2VzYW1l"; // ali:open sesame
    const BAD: &str = "Basic YWxpOm5vcGU="; // ali:nope

    async fn status(list: &AccessList, ip: &str, auth: Option<&str>) -> u16 {
        let chain = FilterChain::new(vec![FilterEntry {
            priority: priority::ACCESS_LIST,
            filter: Arc::new(AccessControl::new(list).unwrap()),
        }]);
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        if let Some(a) = auth {
            req.insert_header("authorization", a).unwrap();
        }
        let mut ctx = RequestCtx::new(Some(ip.parse().unwrap()));
        match chain.run_request(&req, &mut ctx).await.unwrap() {
            FilterAction::Respond(r) => r.status.as_u16(),
            _ => 200,
        }
    }

    #[tokio::test]
    async fn ip_rules_alone() {
        use RuleAction::*;
        let l = list(
            &[("10.0.0.0/8", Allow), ("2001:db8::/32", Allow)],
            Deny,
            false,
            Satisfy::Any,
        );
        assert_eq!(status(&l, "10.9.9.9", None).await, 200);
        assert_eq!(status(&l, "2001:db8::7", None).await, 200);
        assert_eq!(status(&l, "::ffff:10.1.1.1", None).await, 200);
        assert_eq!(status(&l, "192.0.2.1", None).await, 403);
        assert_eq!(status(&l, "2001:db9::7", None).await, 403);
    }

    #[tokio::test]
    async fn satisfy_matrix() {
        use RuleAction::*;
        let rules = [("10.0.0.0/8", Allow)];
        let any = list(&rules, Deny, true, Satisfy::Any);
        let all = list(&rules, Deny, true, Satisfy::All);
        // (list, ip, auth) -> status
        let cases: [(&AccessList, &str, Option<&str>, u16); 12] = [
            (&any, "10.0.0.1", None, 200),
            (&any, "10.0.0.1", Some(BAD), 200),
            (&any, "192.0.2.1", None, 401),
            (&any, "192.0.2.1", Some(BAD), 401),
            (&any, "192.0.2.1", Some(GOOD), 200),
            (&any, "192.0.2.1", Some("Bearer abc"), 401),
            (&all, "10.0.0.1", None, 401),
            (&all, "10.0.0.1", Some(BAD), 401),
            (&all, "10.0.0.1", Some(GOOD), 200),
            (&all, "192.0.2.1", Some(GOOD), 403),
            (&all, "192.0.2.1", None, 403),
            (&all, "192.0.2.1", Some(BAD), 403),
        ];
        for (l, ip, auth, want) in cases {
            assert_eq!(
                status(l, ip, auth).await,
                want,
                "{:?} {ip} {auth:?}",
                l.satisfy
            );
        }
        // Users and no rules: the default action does not replace a password.
        let users_only = list(&[], Allow, true, Satisfy::Any);
        assert_eq!(status(&users_only, "10.0.0.1", None).await, 401);
        assert_eq!(status(&users_only, "10.0.0.1", Some(GOOD)).await, 200);
    }

    #[tokio::test]
    async fn challenge_and_stripping() {
        let l = list(&[], RuleAction::Allow, true, Satisfy::Any);
        let f = AccessControl::new(&l).unwrap();
        let req = RequestHeader::build("GET", b"/", None).unwrap();
        let mut ctx = RequestCtx::new(Some("192.0.2.1".parse().unwrap()));
        let FilterAction::Respond(r) = f.request_filter(&req, &mut ctx).await.unwrap() else {
            panic!("expected 401");
        };
        let www = r
            .headers
            .iter()
            .find(|(n, _)| n == header::WWW_AUTHENTICATE)
            .unwrap();
        assert_eq!(www.1, "Basic realm=\"Staff only\", charset=\"UTF-8\"");
        assert!(f.phases().contains(Phases::UPSTREAM_REQUEST));
        let mut up = RequestHeader::build("GET", b"/", None).unwrap();
        up.insert_header("authorization", GOOD).unwrap();
        f.upstream_request_filter(&mut up, &mut ctx).await.unwrap();
        assert!(up.headers.get("authorization").is_none());

        let mut keep = l.clone();
        keep.pass_auth = true;
        let f = AccessControl::new(&keep).unwrap();
        assert!(!f.phases().contains(Phases::UPSTREAM_REQUEST));
        // Without users the client's Authorization is not ours to strip.
        let f = AccessControl::new(&list(&[], RuleAction::Allow, false, Satisfy::Any)).unwrap();
        assert!(!f.phases().contains(Phases::UPSTREAM_REQUEST));
    }

    #[test]
    fn factory_looks_up_the_list() {
        let mut reg = FilterRegistry::new();
        register(&mut reg);
        let mut cfg = Config::default();
        cfg.access_lists.push(list(
            &[("10.0.0.0/8", RuleAction::Allow)],
            RuleAction::Deny,
            false,
            Satisfy::Any,
        ));
        let ctx = BuildContext { config: &cfg };
        let f = reg.get(kinds::ACCESS_LIST).unwrap();
        assert_eq!(f.default_priority(), priority::ACCESS_LIST);
        assert!(f
            .build(&serde_json::json!({"access_list_id": 7}), &ctx)
            .is_ok());
        let err = f
            .build(&serde_json::json!({"access_list_id": 8}), &ctx)
            .err()
            .unwrap();
        assert_eq!(err, "access list 8 does not exist");
        cfg.access_lists[0].rules[0].address = "10.0.0.0/99".into();
        let ctx = BuildContext { config: &cfg };
        let err = f
            .build(&serde_json::json!({"access_list_id": 7}), &ctx)
            .err()
            .unwrap();
        assert!(err.starts_with("access list 7: rules[0].address"), "{err}");
    }

    #[test]
    fn realms_are_sanitised() {
        assert_eq!(realm(""), "Restricted");
        assert_eq!(realm("a\"b\\c\r\nd"), "abcd");
        assert_eq!(realm("  Admin area "), "Admin area");
    }
}
