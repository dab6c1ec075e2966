//! Host and path routing.
//!
//! [`HostTable`] maps a request's `Host` to an index: exact names in O(1),
//! then wildcards by suffix, most specific first. [`LocationMatcher`] picks a
//! location within a host: exact paths, then regexes in declared order, then
//! the longest prefix at a path-segment boundary.

use std::collections::HashMap;
use std::hash::BuildHasher;

use regex::Regex;

/// The longest host name the table looks up; longer hosts match nothing.
const MAX_HOST: usize = 253;
/// Names up to this many bytes live inside their slot, so a lookup reads
/// one cache line; longer names go to a side table.
const SLOT_KEY: usize = 55;

/// One slot of [`LineMap`]: exactly one cache line.
#[derive(Clone)]
#[repr(C, align(64))]
struct Slot {
    /// High hash bits with the low bit set; 0 marks an empty slot.
    tag: u32,
    idx: u32,
    len: u8,
    key: [u8; SLOT_KEY],
}

const EMPTY: Slot = Slot {
    tag: 0,
    idx: 0,
    len: 0,
    key: [0; SLOT_KEY],
};

/// An open-addressing map from short byte strings to `u32`, laid out so a
/// hit or a miss usually touches a single cache line (tag, key and value
/// together), which matters once the table outgrows the CPU caches.
///
/// Keys come from config and lookups only probe, so a seeded fast hash is
/// enough: there is nothing an attacker can make grow.
#[derive(Clone, Default)]
struct LineMap {
    slots: Vec<Slot>,
    len: usize,
    long: HashMap<Box<[u8]>, u32, foldhash::fast::RandomState>,
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for LineMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineMap")
            .field("len", &(self.len + self.long.len()))
            .finish()
    }
}

impl LineMap {
    fn len(&self) -> usize {
        self.len + self.long.len()
    }

    fn tag_and_start(&self, key: &[u8]) -> (u32, usize) {
        let h = self.hasher.hash_one(key);
        (((h >> 32) as u32) | 1, h as usize)
    }

    fn get(&self, key: &[u8]) -> Option<u32> {
        if key.len() > SLOT_KEY {
            return self.long.get(key).copied();
        }
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let (tag, start) = self.tag_and_start(key);
        let mut i = start & mask;
        loop {
            let s = &self.slots[i];
            if s.tag == 0 {
                return None;
            }
            if s.tag == tag && usize::from(s.len) == key.len() && s.key[..key.len()] == *key {
                return Some(s.idx);
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts `key` unless present; returns the existing value if it was.
    fn insert(&mut self, key: &[u8], idx: u32) -> Option<u32> {
        if let Some(existing) = self.get(key) {
            return Some(existing);
        }
        if key.len() > SLOT_KEY {
            self.long.insert(key.into(), idx);
            return None;
        }
        // Keep the load at most 1/2: linear probing's misses (every
        // wildcard step is one) stay at a couple of adjacent lines.
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        self.place(key, idx);
        self.len += 1;
        None
    }

    fn place(&mut self, key: &[u8], idx: u32) {
        let mask = self.slots.len() - 1;
        let (tag, start) = self.tag_and_start(key);
        let mut i = start & mask;
        while self.slots[i].tag != 0 {
            i = (i + 1) & mask;
        }
        let slot = &mut self.slots[i];
        slot.tag = tag;
        slot.idx = idx;
        slot.len = key.len() as u8;
        slot.key[..key.len()].copy_from_slice(key);
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; cap]);
        for s in old.iter().filter(|s| s.tag != 0) {
            let key = &s.key[..usize::from(s.len)];
            self.place(key, s.idx);
        }
    }
}

/// Maps host names to a value index.
#[derive(Debug, Clone, Default)]
pub struct HostTable {
    exact: LineMap,
    /// Keyed by the suffix after `*.`.
    wildcard: LineMap,
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
        if let Some(existing) = map.insert(key.as_bytes(), index) {
            return Err(DuplicateName { existing });
        }
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
        if let Some(i) = self.exact.get(host) {
            return Some(i);
        }
        if self.wildcard.len() == 0 {
            return None;
        }
        let mut rest = host;
        while let Some(dot) = rest.iter().position(|&b| b == b'.') {
            rest = &rest[dot + 1..];
            let n = rest.len();
            if self.wildcard_lens[n / 64] & (1u64 << (n % 64)) == 0 {
                continue;
            }
            if let Some(i) = self.wildcard.get(rest) {
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
    fn many_names_and_long_names() {
        let mut t = HostTable::new();
        for i in 0..10_000u32 {
            t.insert(&format!("host{i}.example.com"), i).unwrap();
        }
        let long = format!("{}.example.com", "l".repeat(60));
        t.insert(&long, 77_777).unwrap();
        assert_eq!(t.insert(&long, 1), Err(DuplicateName { existing: 77_777 }));
        for i in 0..10_000u32 {
            assert_eq!(t.lookup(&format!("host{i}.example.com")), Some(i));
            assert_eq!(t.lookup(&format!("host{i}.example.org")), None);
        }
        assert_eq!(t.lookup(&long), Some(77_777));
        assert_eq!(t.len(), 10_001);
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
