//! PROXY protocol headers (HAProxy's `proxy-protocol.txt`, versions 1 and
//! 2), written to an upstream before the client's bytes so it learns the
//! client's address.
//!
//! Only the encoder lives here: ppm sends the header and never parses one.
//!
//! ```
//! use ppm_core::stream::proxy_protocol::{encode, Version};
//!
//! let client = "192.0.2.7:51000".parse().unwrap();
//! let local = "198.51.100.1:5432".parse().unwrap();
//! let mut out = Vec::new();
//! encode(Version::V1, client, local, &mut out);
//! assert_eq!(out, b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 5432\r\n");
//! ```

use std::io::Write as _;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::validate::canonical_ip;

/// The 12-byte signature that starts every version 2 header.
pub const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// Longest header [`encode`] writes (a version 1 TCP6 line; version 2
/// headers are at most 52 bytes).
pub const MAX_HEADER_LEN: usize = 104;

/// PROXY protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// The human-readable line (`PROXY TCP4 ...\r\n`).
    V1,
    /// The binary header.
    V2,
}

impl Version {
    /// `1` or `2` as the config writes it; anything else is `None`.
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            1 => Some(Version::V1),
            2 => Some(Version::V2),
            _ => None,
        }
    }
}

/// Both addresses in one family: IPv4 when both are IPv4 (IPv4-mapped IPv6
/// counts as IPv4), otherwise both as IPv6.
fn same_family(src: SocketAddr, dst: SocketAddr) -> (IpAddr, IpAddr) {
    let (s, d) = (canonical_ip(src.ip()), canonical_ip(dst.ip()));
    match (s, d) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (s, d),
        _ => (IpAddr::V6(to_v6(s)), IpAddr::V6(to_v6(d))),
    }
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Appends the header for a TCP connection from `src` (the client) to
/// `dst` (the address the client connected to) to `out`.
pub fn encode(version: Version, src: SocketAddr, dst: SocketAddr, out: &mut Vec<u8>) {
    let (s, d) = same_family(src, dst);
    match version {
        Version::V1 => {
            let proto = if s.is_ipv4() { "TCP4" } else { "TCP6" };
            // Writing to a Vec cannot fail.
            let _ = write!(
                out,
                "PROXY {proto} {s} {d} {} {}\r\n",
                src.port(),
                dst.port()
            );
        }
        Version::V2 => {
            out.extend_from_slice(&V2_SIGNATURE);
            // Version 2, command PROXY.
            out.push(0x21);
            match (s, d) {
                (IpAddr::V4(s4), IpAddr::V4(d4)) => {
                    // AF_INET, STREAM.
                    out.push(0x11);
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&s4.octets());
                    out.extend_from_slice(&d4.octets());
                }
                _ => {
                    // AF_INET6, STREAM.
                    out.push(0x21);
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&to_v6(s).octets());
                    out.extend_from_slice(&to_v6(d).octets());
                }
            }
            out.extend_from_slice(&src.port().to_be_bytes());
            out.extend_from_slice(&dst.port().to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: Version, s: &str, d: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode(v, s.parse().unwrap(), d.parse().unwrap(), &mut out);
        assert!(out.len() <= MAX_HEADER_LEN);
        out
    }

    #[test]
    fn v1_ipv4_and_ipv6() {
        assert_eq!(
            enc(Version::V1, "192.168.0.1:56324", "192.168.0.11:443"),
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
        );
        assert_eq!(
            enc(Version::V1, "[2001:db8::1]:1", "[::1]:65535"),
            b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n"
        );
    }

    #[test]
    fn v1_longest_line_fits_the_bound() {
        let out = enc(
            Version::V1,
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
        );
        // The spec's own bound for a version 1 line is 107 bytes with CRLF.
        assert_eq!(out.len(), 104);
    }

    #[test]
    fn mapped_and_mixed_families() {
        // A dual-stack listener sees IPv4 clients as mapped addresses.
        assert_eq!(
            enc(
                Version::V1,
                "[::ffff:10.0.0.1]:5000",
                "[::ffff:10.0.0.2]:80"
            ),
            b"PROXY TCP4 10.0.0.1 10.0.0.2 5000 80\r\n"
        );
        // Mixed families go out as IPv6, the IPv4 side mapped.
        assert_eq!(
            enc(Version::V1, "10.0.0.1:5000", "[2001:db8::2]:80"),
            b"PROXY TCP6 ::ffff:10.0.0.1 2001:db8::2 5000 80\r\n"
        );
    }

    #[test]
    fn v2_ipv4_bytes() {
        let out = enc(Version::V2, "192.0.2.1:1000", "198.51.100.2:443");
        let mut want = V2_SIGNATURE.to_vec();
        want.extend_from_slice(&[0x21, 0x11, 0x00, 0x0C]);
        want.extend_from_slice(&[192, 0, 2, 1, 198, 51, 100, 2]);
        want.extend_from_slice(&[0x03, 0xE8, 0x01, 0xBB]);
        assert_eq!(out, want);
        assert_eq!(out.len(), 28);
    }

    #[test]
    fn v2_ipv6_bytes() {
        let out = enc(Version::V2, "[2001:db8::1]:65535", "[::1]:1");
        assert_eq!(&out[..12], &V2_SIGNATURE);
        assert_eq!(&out[12..16], &[0x21, 0x21, 0x00, 0x24]);
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(&out[16..32], &src.octets());
        assert_eq!(&out[32..48], &Ipv6Addr::LOCALHOST.octets());
        assert_eq!(&out[48..52], &[0xFF, 0xFF, 0x00, 0x01]);
        assert_eq!(out.len(), 52);
        // The length field counts exactly the address block.
        let len = u16::from_be_bytes([out[14], out[15]]) as usize;
        assert_eq!(out.len(), 16 + len);
    }

    #[test]
    fn version_numbers() {
        assert_eq!(Version::from_number(1), Some(Version::V1));
        assert_eq!(Version::from_number(2), Some(Version::V2));
        assert_eq!(Version::from_number(3), None);
    }
}
