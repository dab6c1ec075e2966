//! The IP rules of an access list, as a stream applies them.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{AccessList, RuleAction};
use crate::validate;

/// An access list's CIDR rules, compiled for a stream.
///
/// The first rule whose network holds the client address decides; an
/// address no rule matches gets the list's default action. Addresses are
/// compared in canonical form (IPv4-mapped IPv6 as IPv4), as the HTTP access
/// list filter does, so a dual-stack listener sees the same decisions. A
/// stream cannot ask for a password, so an access list's users and its
/// `satisfy` mode do not apply: the IP rules alone decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrRules {
    rules: Box<[(Option<IpNet>, RuleAction)]>,
    default: RuleAction,
}

impl CidrRules {
    /// Compiles the IP rules of `list`. Fails with a message naming the
    /// first invalid rule.
    pub fn new(list: &AccessList) -> Result<Self, String> {
        let mut rules = Vec::with_capacity(list.rules.len());
        for (i, r) in list.rules.iter().enumerate() {
            let a = r.address.trim();
            let net = if a.eq_ignore_ascii_case("all") {
                None
            } else {
                Some(validate::cidr(a).map_err(|m| format!("rules[{i}].address: {m}"))?)
            };
            rules.push((net, r.action));
        }
        Ok(CidrRules {
            rules: rules.into_boxed_slice(),
            default: list.default_action,
        })
    }

    /// The decision for `ip`.
    pub fn check(&self, ip: IpAddr) -> RuleAction {
        let ip = validate::canonical_ip(ip);
        for (net, action) in self.rules.iter() {
            match net {
                None => return *action,
                Some(n) if n.contains(&ip) => return *action,
                Some(_) => {}
            }
        }
        self.default
    }

    /// Whether `ip` may connect.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.check(ip) == RuleAction::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IpRule;

    fn list(rules: &[(&str, RuleAction)], default: RuleAction) -> AccessList {
        AccessList {
            rules: rules
                .iter()
                .map(|(a, action)| IpRule {
                    action: *action,
                    address: a.to_string(),
                })
                .collect(),
            default_action: default,
            ..AccessList::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn first_match_wins_then_default() {
        use RuleAction::{Allow, Deny};
        let r = CidrRules::new(&list(
            &[
                ("10.1.0.0/16", Deny),
                ("10.0.0.0/8", Allow),
                ("2001:db8::/32", Allow),
            ],
            Deny,
        ))
        .unwrap();
        assert!(!r.allows(ip("10.1.2.3")));
        assert!(r.allows(ip("10.2.0.1")));
        assert!(!r.allows(ip("192.0.2.1")));
        assert!(r.allows(ip("2001:db8::5")));
        // A mapped client is judged as its IPv4 address.
        assert!(!r.allows(ip("::ffff:10.1.0.9")));
        assert!(r.allows(ip("::ffff:10.9.0.9")));
    }

    #[test]
    fn all_matches_both_families() {
        use RuleAction::{Allow, Deny};
        let r = CidrRules::new(&list(&[("127.0.0.1", Allow), ("all", Deny)], Allow)).unwrap();
        assert!(r.allows(ip("127.0.0.1")));
        assert!(!r.allows(ip("127.0.0.2")));
        assert!(!r.allows(ip("::1")));
    }

    #[test]
    fn invalid_rules_are_named() {
        let err = CidrRules::new(&list(
            &[
                ("10.0.0.0/8", RuleAction::Allow),
                ("nope", RuleAction::Deny),
            ],
            RuleAction::Allow,
        ))
        .unwrap_err();
        assert!(err.starts_with("rules[1].address"), "{err}");
    }
}
