//! IP/CIDR rules compiled into sorted, disjoint ranges.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ppm_core::config::{IpRule, RuleAction};
use ppm_core::validate;

/// Most rules one access list may hold.
pub const MAX_RULES: usize = 100_000;

/// Access-list IP rules, compiled for fast first-match lookups.
///
/// Rules are evaluated in order and the first rule whose network contains
/// the address decides; an address no rule matches gets the default action.
/// Because CIDR blocks are either nested or disjoint, the rules are
/// "painted" at build time into sorted disjoint ranges (each range keeps the
/// action of the first rule that covers it), so a lookup is one binary
/// search: about ten comparisons for a thousand rules, whatever their order.
///
/// IPv4 and IPv6 are separate tables. IPv4-mapped IPv6 rules and addresses
/// are normalised to IPv4 first; `all` matches both families; other IPv6
/// rules match only IPv6 clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAcl {
    v4: RangeTable,
    v6: RangeTable,
    default: RuleAction,
    rules: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RangeTable {
    starts: Vec<u128>,
    ends: Vec<u128>,
    actions: Vec<RuleAction>,
}

impl RangeTable {
    fn build(painted: BTreeMap<u128, (u128, RuleAction)>) -> Self {
        let mut t = RangeTable::default();
        for (s, (e, a)) in painted {
            // Merge touching ranges with the same action.
            if let (Some(last_end), Some(last_action)) = (t.ends.last_mut(), t.actions.last()) {
                if *last_action == a && last_end.checked_add(1) == Some(s) {
                    *last_end = e;
                    continue;
                }
            }
            t.starts.push(s);
            t.ends.push(e);
            t.actions.push(a);
        }
        t
    }

    #[inline]
    fn lookup(&self, x: u128) -> Option<RuleAction> {
        let i = self.starts.partition_point(|&s| s <= x);
        if i == 0 {
            return None;
        }
        let i = i - 1;
        if x <= self.ends[i] {
            Some(self.actions[i])
        } else {
            None
        }
    }
}

/// Paints `[s, e]` with `a` where nothing earlier covers it.
fn paint(painted: &mut BTreeMap<u128, (u128, RuleAction)>, s: u128, e: u128, a: RuleAction) {
    let mut cur = s;
    if let Some((_, &(pe, _))) = painted.range(..=s).next_back() {
        if pe >= s {
            if pe >= e {
                return;
            }
            cur = pe + 1;
        }
    }
    let covered: Vec<(u128, u128)> = painted
        .range(cur..=e)
        .map(|(&ps, &(pe, _))| (ps, pe))
        .collect();
    for (ps, pe) in covered {
        if ps > cur {
            painted.insert(cur, (ps - 1, a));
        }
        if pe >= e {
            return;
        }
        cur = pe + 1;
    }
    painted.insert(cur, (e, a));
}

/// A network as an inclusive integer range in its family.
enum Net {
    V4(u128, u128),
    V6(u128, u128),
    All,
}

fn net_range(addr: IpAddr, prefix: u8) -> Net {
    match addr {
        IpAddr::V4(a) => {
            let start = u32::from(a);
            let host_bits = 32u32.saturating_sub(u32::from(prefix));
            let end = match 1u32.checked_shl(host_bits) {
                Some(size) => start | (size - 1),
                None => u32::MAX,
            };
            Net::V4(u128::from(start), u128::from(end))
        }
        IpAddr::V6(a) => {
            let start = u128::from(a);
            let host_bits = 128u32.saturating_sub(u32::from(prefix));
            let end = match 1u128.checked_shl(host_bits) {
                Some(size) => start | (size - 1),
                None => u128::MAX,
            };
            Net::V6(start, end)
        }
    }
}

/// Parses one rule address: `all`, an IP or a CIDR. Returns an error
/// message for people.
fn parse_address(address: &str) -> Result<Net, String> {
    let a = address.trim();
    if a.eq_ignore_ascii_case("all") {
        return Ok(Net::All);
    }
    let net = validate::cidr(a)?;
    Ok(net_range(net.network(), net.prefix_len()))
}

impl IpAcl {
    /// Compiles `rules` (first match wins) with `default` for addresses no
    /// rule matches. Fails with a message naming the first invalid rule.
    pub fn new(rules: &[IpRule], default: RuleAction) -> Result<Self, String> {
        if rules.len() > MAX_RULES {
            return Err(format!("at most {MAX_RULES} rules are allowed"));
        }
        let mut v4 = BTreeMap::new();
        let mut v6 = BTreeMap::new();
        for (i, r) in rules.iter().enumerate() {
            let net = parse_address(&r.address).map_err(|m| format!("rules[{i}].address: {m}"))?;
            match net {
                Net::V4(s, e) => paint(&mut v4, s, e, r.action),
                Net::V6(s, e) => paint(&mut v6, s, e, r.action),
                Net::All => {
                    paint(&mut v4, 0, u128::from(u32::MAX), r.action);
                    paint(&mut v6, 0, u128::MAX, r.action);
                }
            }
        }
        Ok(IpAcl {
            v4: RangeTable::build(v4),
            v6: RangeTable::build(v6),
            default,
            rules: rules.len(),
        })
    }

    /// Parses rule strings of the form `allow 10.0.0.0/8` or `deny all`
    /// (one per item), as a convenience for tests, fuzzing and tools.
    pub fn parse_lines<'a>(
        lines: impl IntoIterator<Item = &'a str>,
        default: RuleAction,
    ) -> Result<Self, String> {
        let mut rules = Vec::new();
        for (i, line) in lines.into_iter().enumerate() {
            let line = line.trim();
            let (action, address) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("line {i}: expected `allow|deny ADDRESS`"))?;
            let action = match action {
                "allow" => RuleAction::Allow,
                "deny" => RuleAction::Deny,
                _ => return Err(format!("line {i}: expected allow or deny")),
            };
            rules.push(IpRule {
                action,
                address: address.trim().to_string(),
            });
        }
        IpAcl::new(&rules, default)
    }

    /// The action of the first rule matching `ip`, if any rule does.
    /// IPv4-mapped IPv6 addresses are looked up as IPv4.
    #[inline]
    pub fn matching(&self, ip: IpAddr) -> Option<RuleAction> {
        match validate::canonical_ip(ip) {
            IpAddr::V4(v4) => self.v4.lookup(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => self.v6.lookup(u128::from(v6)),
        }
    }

    /// The decision for `ip`: the first matching rule's action, else the
    /// default.
    #[inline]
    pub fn check(&self, ip: IpAddr) -> RuleAction {
        self.matching(ip).unwrap_or(self.default)
    }

    /// Whether `ip` is allowed.
    #[inline]
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.check(ip) == RuleAction::Allow
    }

    /// The action for addresses no rule matches.
    pub fn default_action(&self) -> RuleAction {
        self.default
    }

    /// How many rules the list was built from.
    pub fn rule_count(&self) -> usize {
        self.rules
    }

    /// How many disjoint ranges the rules compiled to (IPv4, IPv6).
    pub fn range_count(&self) -> (usize, usize) {
        (self.v4.starts.len(), self.v6.starts.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RuleAction::{Allow, Deny};

    fn acl(lines: &[&str], default: RuleAction) -> IpAcl {
        IpAcl::parse_lines(lines.iter().copied(), default).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The reference semantics: a linear first-match scan.
    fn linear(
        rules: &[(RuleAction, ipnet_std::Net)],
        default: RuleAction,
        ip: IpAddr,
    ) -> RuleAction {
        for (a, n) in rules {
            if n.contains(ip) {
                return *a;
            }
        }
        default
    }

    mod ipnet_std {
        use std::net::IpAddr;
        pub struct Net(pub IpAddr, pub u8);
        impl Net {
            pub fn contains(&self, ip: IpAddr) -> bool {
                match (self.0, ip) {
                    (IpAddr::V4(n), IpAddr::V4(i)) => {
                        let m = if self.1 == 0 {
                            0
                        } else {
                            u32::MAX << (32 - self.1)
                        };
                        u32::from(n) & m == u32::from(i) & m
                    }
                    (IpAddr::V6(n), IpAddr::V6(i)) => {
                        let m = if self.1 == 0 {
                            0
                        } else {
                            u128::MAX << (128 - self.1)
                        };
                        u128::from(n) & m == u128::from(i) & m
                    }
                    _ => false,
                }
            }
        }
    }

    #[test]
    fn first_match_wins() {
        let a = acl(&["allow 10.1.0.0/16", "deny 10.0.0.0/8", "allow all"], Deny);
        assert_eq!(a.check(ip("10.1.2.3")), Allow);
        assert_eq!(a.check(ip("10.2.0.1")), Deny);
        assert_eq!(a.check(ip("192.0.2.1")), Allow);
        assert_eq!(a.check(ip("2001:db8::1")), Allow);

        let b = acl(&["deny 10.0.0.0/8", "allow 10.1.0.0/16"], Allow);
        assert_eq!(b.check(ip("10.1.2.3")), Deny);
        assert_eq!(b.check(ip("11.0.0.1")), Allow);
    }

    #[test]
    fn default_applies_when_nothing_matches() {
        let a = acl(&["allow 192.0.2.0/24"], Deny);
        assert_eq!(a.check(ip("192.0.2.200")), Allow);
        assert_eq!(a.check(ip("192.0.3.1")), Deny);
        assert_eq!(a.check(ip("::1")), Deny);
        assert_eq!(a.matching(ip("192.0.3.1")), None);
        let empty = acl(&[], Allow);
        assert_eq!(empty.check(ip("1.2.3.4")), Allow);
    }

    #[test]
    fn ipv6_and_mapped_addresses() {
        let a = acl(&["allow 2001:db8::/32", "deny ::ffff:192.0.2.0/120"], Allow);
        assert_eq!(a.check(ip("2001:db8:1::5")), Allow);
        // The mapped rule was normalised to 192.0.2.0/24.
        assert_eq!(a.check(ip("192.0.2.9")), Deny);
        assert_eq!(a.check(ip("::ffff:192.0.2.9")), Deny);
        assert_eq!(a.check(ip("192.0.3.9")), Allow);
        let b = acl(&["deny 192.0.2.7"], Allow);
        assert_eq!(b.check(ip("::ffff:192.0.2.7")), Deny);
        // An IPv6 rule does not match IPv4 clients.
        let c = acl(&["deny ::/0"], Allow);
        assert_eq!(c.check(ip("192.0.2.1")), Allow);
        assert_eq!(c.check(ip("::1")), Deny);
    }

    #[test]
    fn host_addresses_and_edges() {
        let a = acl(
            &[
                "deny 0.0.0.0/32",
                "deny 255.255.255.255",
                "deny ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
            ],
            Allow,
        );
        assert_eq!(a.check(ip("0.0.0.0")), Deny);
        assert_eq!(a.check(ip("0.0.0.1")), Allow);
        assert_eq!(a.check(ip("255.255.255.255")), Deny);
        assert_eq!(a.check(ip("255.255.255.254")), Allow);
        assert_eq!(a.check(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")), Deny);
        // Host bits in a CIDR are ignored, as nginx does.
        let b = acl(&["deny 10.1.2.3/8"], Allow);
        assert_eq!(b.check(ip("10.200.0.1")), Deny);
    }

    #[test]
    fn invalid_rules_are_errors() {
        for bad in [
            "allow 10.0.0.0/33",
            "allow nonsense",
            "deny 1.2.3",
            "maybe all",
            "allow",
        ] {
            assert!(IpAcl::parse_lines([bad], Allow).is_err(), "{bad}");
        }
        let err = IpAcl::new(
            &[IpRule {
                action: Allow,
                address: "x".into(),
            }],
            Allow,
        )
        .unwrap_err();
        assert!(err.starts_with("rules[0].address"), "{err}");
    }

    #[test]
    fn adjacent_ranges_merge() {
        let a = acl(
            &["deny 10.0.0.0/9", "deny 10.128.0.0/9", "allow 11.0.0.0/8"],
            Allow,
        );
        assert_eq!(a.range_count(), (2, 0));
    }

    /// Random rule sets agree with the linear first-match scan.
    #[test]
    fn matches_linear_reference() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..30 {
            let mut rules = Vec::new();
            let mut reference = Vec::new();
            for _ in 0..60 {
                let action = if next() % 2 == 0 { Allow } else { Deny };
                // Addresses in a small space so rules nest and overlap.
                let (addr, prefix) = if next() % 3 == 0 {
                    let a = std::net::Ipv6Addr::from(((next() % 64) as u128) << 120);
                    (IpAddr::V6(a), (next() % 9) as u8)
                } else {
                    let a = std::net::Ipv4Addr::from(
                        ((next() % 256) as u32) << 24 | ((next() % 4) as u32) << 22,
                    );
                    (IpAddr::V4(a), (next() % 33) as u8)
                };
                let net = validate::cidr(&format!("{addr}/{prefix}")).unwrap();
                rules.push(IpRule {
                    action,
                    address: format!("{addr}/{prefix}"),
                });
                reference.push((action, ipnet_std::Net(net.network(), net.prefix_len())));
            }
            let default = if next() % 2 == 0 { Allow } else { Deny };
            let acl = IpAcl::new(&rules, default).unwrap();
            for _ in 0..500 {
                let probe = if next() % 3 == 0 {
                    IpAddr::V6(std::net::Ipv6Addr::from(
                        ((next() % 64) as u128) << 120 | u128::from(next()),
                    ))
                } else {
                    IpAddr::V4(std::net::Ipv4Addr::from(next() as u32))
                };
                assert_eq!(
                    acl.check(probe),
                    linear(&reference, default, probe),
                    "{probe}"
                );
            }
        }
    }

    #[test]
    fn thousand_rules_lookup_is_fast() {
        let lines: Vec<String> = (0..1000u32)
            .map(|i| {
                let a = std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761));
                format!(
                    "{} {a}/{}",
                    if i % 2 == 0 { "allow" } else { "deny" },
                    16 + i % 17
                )
            })
            .collect();
        let acl = IpAcl::parse_lines(lines.iter().map(String::as_str), Deny).unwrap();
        let probes: Vec<IpAddr> = (0..1024u32)
            .map(|i| {
                IpAddr::V4(std::net::Ipv4Addr::from(
                    i.wrapping_mul(40_503).rotate_left(7),
                ))
            })
            .collect();
        let start = std::time::Instant::now();
        let mut allowed = 0usize;
        for _ in 0..100 {
            for p in &probes {
                allowed += usize::from(acl.allows(std::hint::black_box(*p)));
            }
        }
        let per = start.elapsed() / (100 * probes.len() as u32);
        std::hint::black_box(allowed);
        // Generous bound for unoptimised test builds; the bench measures the real cost.
        assert!(
            per < std::time::Duration::from_micros(5),
            "{per:?} per lookup"
        );
    }
}
