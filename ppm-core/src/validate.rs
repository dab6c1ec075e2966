//! Validators for the values a config holds: host names, upstream addresses,
//! CIDRs, header names and values.
//!
//! The compiler uses them, and so can anything that accepts config from
//! people (an API, an importer), so that every entry point agrees on what is
//! valid. Each returns a message suitable for a [`FieldError`](crate::error::FieldError).

use std::net::IpAddr;

use ipnet::IpNet;

/// Longest domain name, in octets (RFC 1035).
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest DNS label, in octets (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;
/// Longest header value a rule may set.
pub const MAX_HEADER_VALUE_LEN: usize = 8192;

/// Normalises and checks a served domain name: exact (`example.com`) or
/// wildcard (`*.example.com`).
///
/// Returns the lower-case ASCII form (IDNs are converted to punycode). Labels
/// follow RFC 1123: letters, digits and inner hyphens, 1 to 63 octets; the
/// whole name at most 253 octets. A wildcard is only a whole leading label.
pub fn domain_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    let (wild, rest) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    if rest.contains('*') {
        return Err("a wildcard must be a whole leading label, as in *.example.com".into());
    }
    let ascii = to_ascii(rest)?;
    check_hostname(&ascii)?;
    if wild && !ascii.contains('.') {
        return Err("a wildcard needs at least two labels after it, as in *.example.com".into());
    }
    let full = if wild { format!("*.{ascii}") } else { ascii };
    if full.len() > MAX_DOMAIN_LEN {
        return Err(format!("must be at most {MAX_DOMAIN_LEN} characters"));
    }
    Ok(full)
}

/// Like [`domain_name`], but borrows `name` when it is already normalised
/// (the common case when checking stored config).
pub fn domain_name_cow(name: &str) -> Result<std::borrow::Cow<'_, str>, String> {
    let simple = !name.is_empty()
        && name.len() <= MAX_DOMAIN_LEN
        && !name.ends_with('.')
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'*'
        });
    if simple {
        let (wild, rest) = match name.strip_prefix("*.") {
            Some(r) => (true, r),
            None => (false, name),
        };
        if !rest.contains('*') && check_hostname(rest).is_ok() && (!wild || rest.contains('.')) {
            return Ok(std::borrow::Cow::Borrowed(name));
        }
    }
    domain_name(name).map(std::borrow::Cow::Owned)
}

fn to_ascii(name: &str) -> Result<String, String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_ascii() {
        return Ok(name.to_ascii_lowercase());
    }
    idna::domain_to_ascii(name).map_err(|_| "is not a valid internationalised domain name".into())
}

fn check_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_DOMAIN_LEN {
        return Err(format!("must be at most {MAX_DOMAIN_LEN} characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("must not contain empty labels".into());
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!(
                "label `{label}` is longer than {MAX_LABEL_LEN} characters"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "label `{label}` may hold only letters, digits and hyphens"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "label `{label}` must not start or end with a hyphen"
            ));
        }
    }
    Ok(())
}

/// Checks an upstream host: an IP address (IPv6 with or without brackets) or
/// a hostname. Returns the normalised form (brackets removed, lower case).
///
/// Link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10) are
/// refused unless `allow_link_local` is set, so a config cannot point the
/// proxy at instance credentials by accident.
pub fn upstream_host(host: &str, allow_link_local: bool) -> Result<String, String> {
    if host.is_empty() {
        return Err("must not be empty".into());
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        if !allow_link_local && is_link_local(ip) {
            return Err(
                "is a link-local or metadata address; enable allow_link_local_upstreams to use it"
                    .into(),
            );
        }
        if ip.is_unspecified() {
            return Err("must not be an unspecified address (0.0.0.0 or ::)".into());
        }
        return Ok(ip.to_string());
    }
    let ascii = to_ascii(host)?;
    check_hostname(&ascii)?;
    if !allow_link_local && ascii == "metadata.google.internal" {
        return Err(
            "is a cloud metadata address; enable allow_link_local_upstreams to use it".into(),
        );
    }
    Ok(ascii)
}

/// Like [`upstream_host`] without building the normalised form (no
/// allocation for IP literals).
pub fn check_upstream_host(host: &str, allow_link_local: bool) -> Result<(), String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) if !allow_link_local && is_link_local(ip) => Err(
            "is a link-local or metadata address; enable allow_link_local_upstreams to use it"
                .into(),
        ),
        Ok(ip) if ip.is_unspecified() => {
            Err("must not be an unspecified address (0.0.0.0 or ::)".into())
        }
        Ok(_) => Ok(()),
        Err(_) => upstream_host(host, allow_link_local).map(|_| ()),
    }
}

/// Whether `ip` is link-local (where cloud metadata services live).
pub fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
    }
}

/// Parses an address or CIDR (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.1`).
/// A bare address becomes a host network (/32 or /128). IPv4-mapped IPv6
/// networks are turned into their IPv4 form.
pub fn cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net = if s.contains('/') {
        s.parse::<IpNet>()
            .map_err(|_| format!("`{s}` is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32"))?
    } else {
        let ip = s
            .parse::<IpAddr>()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR"))?;
        IpNet::from(ip)
    };
    Ok(normalize_net(net.trunc()))
}

fn normalize_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.addr().to_ipv4_mapped() {
            if v6.prefix_len() >= 96 {
                if let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(n);
                }
            }
        }
    }
    net
}

/// An IP in canonical form: IPv4-mapped IPv6 becomes IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Checks a header name: an RFC 9110 token.
pub fn header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 256 {
        return Err("must be at most 256 characters".into());
    }
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("`{name}` is not a valid header name"));
    }
    Ok(())
}

/// Checks a header value: visible ASCII, spaces and tabs, no control
/// characters (so no header injection through CR/LF).
pub fn header_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_HEADER_VALUE_LEN {
        return Err(format!("must be at most {MAX_HEADER_VALUE_LEN} characters"));
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return Err("may hold only visible ASCII characters, spaces and tabs".into());
    }
    Ok(())
}

/// Checks an absolute `http://` or `https://` URL with a valid host.
pub fn http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| "must start with http:// or https://".to_string())?;
    if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err("must not contain spaces or control characters".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    host_port(authority).map(|_| ())
}

/// Checks `host` or `host:port` (as in a redirect target). Returns the
/// normalised form.
pub fn host_port(s: &str) -> Result<String, String> {
    if s.contains('@') {
        return Err("must not contain user information".into());
    }
    let (host, port) = split_host_port(s);
    let host = if host.starts_with('[') {
        upstream_host(host, true).map(|h| format!("[{h}]"))?
    } else if host.parse::<IpAddr>().is_ok() {
        upstream_host(host, true)?
    } else {
        let ascii = to_ascii(host)?;
        check_hostname(&ascii)?;
        ascii
    };
    match port {
        None => Ok(host),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(format!("{host}:{n}")),
            _ => Err(format!("port `{p}` must be 1..=65535")),
        },
    }
}

fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(end) = s.find(']') {
        let (h, rest) = s.split_at(end + 1);
        return (h, rest.strip_prefix(':'));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names() {
        assert_eq!(domain_name("Example.COM").unwrap(), "example.com");
        assert_eq!(domain_name("*.Example.com").unwrap(), "*.example.com");
        assert_eq!(
            domain_name("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(domain_name("example.com.").unwrap(), "example.com");
        for bad in [
            "", "*", "*.com", "a.*.com", "-a.com", "a-.com", "a..com", "a b.com", "a_b.com",
            "foo*.com",
        ] {
            assert!(domain_name(bad).is_err(), "{bad:?} accepted");
        }
        let long_label = "a".repeat(64);
        assert!(domain_name(&format!("{long_label}.com")).is_err());
        let ok = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(ok.len(), 253);
        assert!(domain_name(&ok).is_ok());
        assert!(domain_name(&format!("{ok}e")).is_err());
    }

    #[test]
    fn cow_agrees_with_owned() {
        for n in [
            "a.com",
            "*.a.com",
            "A.com",
            "*.com",
            "x..y",
            "b\u{fc}cher.de",
            "-a.com",
            "a.com.",
            "*",
        ] {
            assert_eq!(
                domain_name_cow(n).map(|c| c.into_owned()),
                domain_name(n),
                "{n}"
            );
        }
    }

    #[test]
    fn upstream_hosts() {
        assert_eq!(upstream_host("[::1]", false).unwrap(), "::1");
        assert_eq!(
            upstream_host("Backend.local", false).unwrap(),
            "backend.local"
        );
        assert!(upstream_host("169.254.169.254", false).is_err());
        assert!(upstream_host("169.254.169.254", true).is_ok());
        assert!(upstream_host("fe80::1", false).is_err());
        assert!(upstream_host("::ffff:169.254.1.1", false).is_err());
        assert!(upstream_host("0.0.0.0", true).is_err());
        assert!(upstream_host("a/b", false).is_err());
    }

    #[test]
    fn cidrs() {
        assert_eq!(cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(cidr("192.0.2.1").unwrap().to_string(), "192.0.2.1/32");
        assert_eq!(
            cidr("::ffff:10.0.0.0/104").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(cidr("2001:db8::1/32").unwrap().to_string(), "2001:db8::/32");
        assert!(cidr("10.0.0.0/33").is_err());
        assert!(cidr("nope").is_err());
    }

    #[test]
    fn headers_and_urls() {
        assert!(header_name("X-Custom").is_ok());
        assert!(header_name("X Custom").is_err());
        assert!(header_value("a\r\nSet-Cookie: x").is_err());
        assert!(http_url("https://example.com/x?y").is_ok());
        assert!(http_url("https://user@evil.com/").is_err());
        assert!(http_url("javascript:alert(1)").is_err());
        assert_eq!(host_port("Example.com:8443").unwrap(), "example.com:8443");
        assert!(host_port("example.com:0").is_err());
        assert_eq!(host_port("[::1]:80").unwrap(), "[::1]:80");
    }
}
