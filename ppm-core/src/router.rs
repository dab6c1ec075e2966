//! Host and path routing.
//!
//! [`HostTable`] maps a request's `Host` to an index: exact names in O(1),
//! then wildcards by suffix, most specific first. [`LocationMatcher`] picks a
//! location within a host: exact paths, then regexes in declared order, then
//! the longest prefix at a path-segment boundary.

use std::collections::HashMap;

use regex::Regex;

/// The longest host name the table looks up; longer hosts match nothing.
const MAX_HOST: usize = 253;

/// Maps host names to a value index.
#[derive(Debug, Clone, Default)]
pub struct HostTable {
    exact: HashMap<Box<str>, u32>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<Box<str>, u32>,
}

/// A name was added twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateName {
    /// The index the name already maps to.
    pub existing: u32,
}

impl HostTable {
    /// An empty table.
    pub fn new() -> Self {
        HostTable::default()
    }

    /// Adds a normalised name (see [`crate::validate::domain_name`]).
    pub fn insert(&mut self, name: &str, index: u32) -> Result<(), DuplicateName> {
        let (map, key) = match name.strip_prefix("*.") {
            Some(suffix) => (&mut self.wildcard, suffix),
            None => (&mut self.exact, name),
        };
        match map.get(key) {
            Some(&existing) => Err(DuplicateName { existing }),
            None => {
                map.insert(key.into(), index);
                Ok(())
            }
        }
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Looks up a `Host` header value: case-insensitive, port and trailing
    /// dot ignored. A wildcard `*.example.com` matches `a.example.com` and
    /// `a.b.example.com` but not `example.com`; the longest wildcard wins.
    pub fn lookup(&self, host: &str) -> Option<u32> {
        let host = strip_port(host);
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() || host.len() > MAX_HOST {
            return None;
        }
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            let mut buf = [0u8; MAX_HOST];
            let lower = &mut buf[..host.len()];
            lower.copy_from_slice(host.as_bytes());
            lower.make_ascii_lowercase();
            let lower = std::str::from_utf8(lower).ok()?;
            self.lookup_lower(lower)
        } else {
            self.lookup_lower(host)
        }
    }

    fn lookup_lower(&self, host: &str) -> Option<u32> {
        if let Some(&i) = self.exact.get(host) {
            return Some(i);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        let mut rest = host;
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if let Some(&i) = self.wildcard.get(rest) {
                return Some(i);
            }
        }
        None
    }
}

/// Removes a `:port` from a host (IPv6 literals keep their brackets).
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

/// The port of a `Host` value, if it has one.
pub fn host_port(host: &str) -> Option<u16> {
    let after = if host.starts_with('[') {
        host.find("]:").map(|i| &host[i + 2..])?
    } else {
        host.rsplit_once(':').map(|(_, p)| p)?
    };
    after.parse().ok()
}

/// How one location matches.
#[derive(Debug, Clone)]
pub enum PathPattern {
    /// The whole path equals this.
    Exact(String),
    /// The path starts with this at a segment boundary.
    Prefix(String),
    /// The regex matches the path.
    Regex(Regex),
}

/// Picks the location for a path.
#[derive(Debug, Clone, Default)]
pub struct LocationMatcher {
    exact: Vec<(String, usize)>,
    regex: Vec<(Regex, usize)>,
    /// Sorted by prefix length, longest first.
    prefix: Vec<(String, usize)>,
}

/// What a location match found: its index and, for prefix and regex
/// matches, how to rewrite the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocationMatch {
    /// Index into the host's locations.
    pub index: usize,
    /// Length of the matched prefix (prefix locations), for rewriting.
    pub prefix_len: usize,
}

impl LocationMatcher {
    /// Builds a matcher from `(pattern, index)` pairs in declared order.
    pub fn new(patterns: Vec<(PathPattern, usize)>) -> Self {
        let mut m = LocationMatcher::default();
        for (p, i) in patterns {
            match p {
                PathPattern::Exact(s) => m.exact.push((s, i)),
                PathPattern::Prefix(s) => m.prefix.push((s, i)),
                PathPattern::Regex(r) => m.regex.push((r, i)),
            }
        }
        // Stable sort: equal lengths keep declared order.
        m.prefix.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        m
    }

    /// Whether there are no locations.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.regex.is_empty() && self.prefix.is_empty()
    }

    /// The matching location for `path` (without the query string).
    pub fn find(&self, path: &str) -> Option<LocationMatch> {
        if let Some((_, i)) = self.exact.iter().find(|(p, _)| p == path) {
            return Some(LocationMatch {
                index: *i,
                prefix_len: path.len(),
            });
        }
        if let Some((_, i)) = self.regex.iter().find(|(r, _)| r.is_match(path)) {
            return Some(LocationMatch {
                index: *i,
                prefix_len: 0,
            });
        }
        self.prefix
            .iter()
            .find(|(p, _)| prefix_matches(p, path))
            .map(|(p, i)| LocationMatch {
                index: *i,
                prefix_len: p.len(),
            })
    }

    /// The regex of location `index`, if it is a regex location.
    pub fn regex_of(&self, index: usize) -> Option<&Regex> {
        self.regex.iter().find(|(_, i)| *i == index).map(|(r, _)| r)
    }
}

/// `/api` matches `/api`, `/api/` and `/api/x`, not `/apix`; a prefix ending
/// in `/` matches anything below it.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if !path.starts_with(prefix) {
        return false;
    }
    prefix.ends_with('/') || path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard() {
        let mut t = HostTable::new();
        t.insert("example.com", 0).unwrap();
        t.insert("*.example.com", 1).unwrap();
        t.insert("*.deep.example.com", 2).unwrap();
        t.insert("a.deep.example.com", 3).unwrap();
        assert_eq!(t.lookup("example.com"), Some(0));
        assert_eq!(t.lookup("EXAMPLE.com:8080"), Some(0));
        assert_eq!(t.lookup("example.com."), Some(0));
        assert_eq!(t.lookup("www.example.com"), Some(1));
        assert_eq!(t.lookup("x.y.example.com"), Some(1));
        assert_eq!(t.lookup("b.deep.example.com"), Some(2));
        assert_eq!(t.lookup("a.deep.example.com"), Some(3));
        assert_eq!(t.lookup("example.org"), None);
        assert_eq!(t.lookup("xexample.com"), None);
        assert_eq!(t.lookup(""), None);
        assert_eq!(t.lookup(&"a".repeat(300)), None);
        assert_eq!(
            t.insert("EXAMPLE.com".to_ascii_lowercase().as_str(), 9),
            Err(DuplicateName { existing: 0 })
        );
    }

    #[test]
    fn ports() {
        assert_eq!(strip_port("a.com:80"), "a.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("a.com"), "a.com");
        assert_eq!(host_port("a.com:8080"), Some(8080));
        assert_eq!(host_port("[::1]:443"), Some(443));
        assert_eq!(host_port("a.com"), None);
    }

    #[test]
    fn locations() {
        let m = LocationMatcher::new(vec![
            (PathPattern::Prefix("/api".into()), 0),
            (PathPattern::Prefix("/api/v2".into()), 1),
            (PathPattern::Exact("/api/exact".into()), 2),
            (PathPattern::Regex(Regex::new(r"\.php$").unwrap()), 3),
            (PathPattern::Prefix("/static/".into()), 4),
        ]);
        assert_eq!(m.find("/api").unwrap().index, 0);
        assert_eq!(m.find("/api/").unwrap().index, 0);
        assert_eq!(m.find("/api/x").unwrap().index, 0);
        assert_eq!(m.find("/apix"), None);
        assert_eq!(m.find("/api/v2/users").unwrap().index, 1);
        assert_eq!(m.find("/api/v2x").unwrap().index, 0);
        assert_eq!(m.find("/api/exact").unwrap().index, 2);
        assert_eq!(m.find("/api/index.php").unwrap().index, 3);
        assert_eq!(m.find("/static/a.css").unwrap().index, 4);
        assert_eq!(m.find("/static"), None);
    }
}
