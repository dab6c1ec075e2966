//! Small helpers shared by the filters.

#![allow(dead_code)]

use ppm_core::http::RequestHeader;

/// The request's path and query, always starting with `/` (an
/// absolute-form target loses its authority; `*` and the empty target become
/// `/`).
pub(crate) fn path_and_query(req: &RequestHeader) -> &str {
    match req.uri.path_and_query().map(|pq| pq.as_str()) {
        Some(pq) if pq.starts_with('/') => pq,
        _ => "/",
    }
}

/// The first value of header `name` as a string, if it is visible ASCII.
pub(crate) fn header_str<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    for v in req.headers.get_all(ppm_core::http::header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for pair in v.split(';') {
            if let Some((k, val)) = pair.trim().split_once('=') {
                if k.trim() == name {
                    return Some(val.trim());
                }
            }
        }
    }
    None
}

/// Whether `host` is safe to put in a URL authority: a DNS name (letters,
/// digits, `-`, `.`, `_`) or an IPv6 literal in brackets.
pub(crate) fn is_safe_host(host: &str) -> bool {
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `input`; `+` becomes a space when `plus` is set. Invalid
/// escapes are kept as they are.
pub(crate) fn percent_decode(input: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(if plus && b == b'+' { b' ' } else { b });
        i += 1;
    }
    out
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode(b"%2e%2E/a+b", false), b"../a+b");
        assert_eq!(percent_decode(b"a+b%20c", true), b"a b c");
        assert_eq!(percent_decode(b"%zz%2", false), b"%zz%2");
        assert_eq!(percent_decode(b"%", false), b"%");
        assert_eq!(percent_decode(b"%41", false), b"A");
    }

    #[test]
    fn safe_hosts() {
        assert!(is_safe_host("example.com"));
        assert!(is_safe_host("[2001:db8::1]"));
        assert!(!is_safe_host("evil.com/x"));
        assert!(!is_safe_host("a@b"));
        assert!(!is_safe_host(""));
        assert!(!is_safe_host("[zz]"));
    }

    #[test]
    fn cookies() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("cookie", "a=1; sid = xyz ;b=2").unwrap();
        assert_eq!(cookie(&req, "sid"), Some("xyz"));
        assert_eq!(cookie(&req, "b"), Some("2"));
        assert_eq!(cookie(&req, "c"), None);
    }
}
