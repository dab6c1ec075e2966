//! Host and path routing.
//!
//! [`HostTable`] maps a request's `Host` to an index: exact names in O(1),
//! then wildcards by suffix, most specific first. [`LocationMatcher`] picks a
//! location within a host: exact paths, then regexes in declared order, then
//! the longest prefix at a path-segment boundary.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use regex::Regex;

/// The longest host name the table looks up; longer hosts match nothing.
const MAX_HOST: usize = 253;
/// Names up to this many bytes are stored inline in the table's buckets,
/// saving a dependent cache miss per lookup.
const INLINE: usize = 30;

/// A fast, seeded hasher: the table's keys come from config, and lookups
/// only probe existing keys, so there is nothing for HashDoS to grow.
type FastMap<V> = HashMap<Key, V, foldhash::fast::RandomState>;

/// A host name as stored in the table.
#[derive(Clone, PartialEq, Eq)]
enum Key {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Key {
    fn new(s: &[u8]) -> Key {
        if s.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..s.len()].copy_from_slice(s);
            Key::Inline {
                len: s.len() as u8,
                buf,
            }
        } else {
            Key::Heap(s.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, buf } => &buf[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly as `[u8]` does, for `Borrow<[u8]>` lookups.
        self.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Maps host names to a value index.
#[derive(Debug, Clone, Default)]
pub struct HostTable {
    exact: FastMap<u32>,
    /// Keyed by the suffix after `*.`.
    wildcard: FastMap<u32>,
    /// Bit `n` is set when some wildcard suffix is `n` bytes long, so a
    /// lookup only hashes suffixes that can match.
    wildcard_lens: [u64; 4],
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
        if key.len() > MAX_HOST {
            return Ok(());
        }
        if let Some(&existing) = map.get(key.as_bytes()) {
            return Err(DuplicateName { existing });
        }
        map.insert(Key::new(key.as_bytes()), index);
        if name.starts_with("*.") {
            self.wildcard_lens[key.len() / 64] |= 1u64 << (key.len() % 64);
        }
        Ok(())
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
        let host = strip_port(host).as_bytes();
        let host = match host.split_last() {
            Some((b'.', rest)) => rest,
            _ => host,
        };
        if host.is_empty() || host.len() > MAX_HOST {
            return None;
        }
        if host.iter().any(u8::is_ascii_uppercase) {
            let mut buf = [0u8; MAX_HOST];
            let lower = &mut buf[..host.len()];
            lower.copy_from_slice(host);
            lower.make_ascii_lowercase();
            self.lookup_lower(lower)
        } else {
            self.lookup_lower(host)
        }
    }

    fn lookup_lower(&self, host: &[u8]) -> Option<u32> {
        if let Some(&i) = self.exact.get(host) {
            return Some(i);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        let mut rest = host;
        while let Some(dot) = rest.iter().position(|&b| b == b'.') {
            rest = &rest[dot + 1..];
            let n = rest.len();
            if self.wildcard_lens[n / 64] & (1u64 << (n % 64)) == 0 {
                continue;
            }
            if let Some(&i) = self.wildcard.get(rest) {
                return Some(i);
            }
        }
        None
    }
}

/// Removes a `:port` from a host (IPv6 literals keep their brackets).
pub fn strip_port(host: &str) -> &str {
    let b = host.as_bytes();
    if b.first() == Some(&b'[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    // A port is at most 5 digits: only the tail needs looking at.
    let tail = b.len().saturating_sub(6);
    match b[tail..].iter().rposition(|&c| c == b':') {
        Some(i) => {
            let i = tail + i;
            if b[i + 1..].iter().all(u8::is_ascii_digit) {
                &host[..i]
            } else {
                host
            }
        }
        None => host,
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
