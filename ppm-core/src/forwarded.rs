//! Client IP resolution through trusted proxies, and the forwarding and
//! hop-by-hop header rules.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::validate::canonical_ip;

/// Networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Trusts `nets`.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        TrustedProxies {
            nets: nets.into_iter().collect(),
        }
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client IP for a request from `peer` carrying the given
    /// `X-Forwarded-For` values (each header line may hold a list).
    ///
    /// When the peer is trusted, the list is walked from the right and the
    /// first address that is not a trusted proxy is the client; when every
    /// address is trusted, the leftmost is. An untrusted peer is the client
    /// whatever the header says, so a spoofed header changes nothing.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        xff: impl DoubleEndedIterator<Item = &'a [u8]>,
    ) -> IpAddr {
        let peer = canonical_ip(peer);
        if !self.contains(peer) {
            return peer;
        }
        let mut last_trusted = peer;
        for line in xff.rev() {
            let Ok(line) = std::str::from_utf8(line) else {
                return last_trusted;
            };
            for part in line.rsplit(',') {
                let Some(ip) = parse_xff_entry(part) else {
                    // Garbage in the chain: stop at the last address we trust.
                    return last_trusted;
                };
                if !self.contains(ip) {
                    return ip;
                }
                last_trusted = ip;
            }
        }
        last_trusted
    }
}

/// Parses one `X-Forwarded-For` entry: an IP, optionally with a port or in
/// brackets.
fn parse_xff_entry(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical_ip(ip));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end].parse().ok().map(canonical_ip);
    }
    if let Some((ip, port)) = s.rsplit_once(':') {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            return ip.parse().ok().map(canonical_ip);
        }
    }
    None
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) that never cross the proxy, apart
/// from `Connection`/`Upgrade` on websocket upgrades.
pub const HOP_BY_HOP: &[&str] = &[
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let t = tp(&["10.0.0.0/8"]);
        let xff: [&[u8]; 1] = [b"1.2.3.4"];
        assert_eq!(
            t.client_ip(ip("203.0.113.9"), xff.into_iter()),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::default().client_ip(ip("127.0.0.1"), xff.into_iter()),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn rightmost_untrusted_wins() {
        let t = tp(&["10.0.0.0/8"]);
        let xff: [&[u8]; 2] = [b"6.6.6.6, 1.2.3.4", b"10.1.1.1"];
        assert_eq!(t.client_ip(ip("10.0.0.1"), xff.into_iter()), ip("1.2.3.4"));
        let all_trusted: [&[u8]; 1] = [b"10.9.9.9, 10.1.1.1"];
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), all_trusted.into_iter()),
            ip("10.9.9.9")
        );
        let garbage: [&[u8]; 1] = [b"1.2.3.4, nonsense"];
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), garbage.into_iter()),
            ip("10.0.0.1")
        );
        let ported: [&[u8]; 1] = [b"[2001:db8::1]:443"];
        assert_eq!(
            t.client_ip(ip("::ffff:10.0.0.1"), ported.into_iter()),
            ip("2001:db8::1")
        );
    }
}
