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
    /// High hash bits with the low bit set.
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

/// Control bytes read per probe step.
const GROUP: usize = 8;
/// `0x01` in every byte of a group.
const LO: u64 = 0x0101_0101_0101_0101;
/// `0x80` in every byte of a group.
const HI: u64 = 0x8080_8080_8080_8080;

/// An open-addressing map from short byte strings to `u32`.
///
/// Each slot has a control byte (0 for empty, else `0x80` and 7 hash bits)
/// in a dense array beside the slots, so a probe tests eight slots with one
/// 8-byte load and a lookup that misses usually reads that small array only.
/// A hit then reads one slot: a single cache line holding the whole key,
/// its tag and its value, which matters once the table outgrows the CPU
/// caches. Linear probing at a load of at most 3/4.
///
/// Keys come from config and lookups only probe, so a seeded fast hash is
/// enough: there is nothing an attacker can make grow.
#[derive(Clone, Default)]
struct LineMap {
    /// `slots.len() + GROUP` bytes: the last `GROUP` mirror the first ones,
    /// so a group read never wraps.
    ctrl: Vec<u8>,
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

/// Where a key's probe starts, its control byte and its slot tag.
struct Probe {
    start: usize,
    ctrl: u8,
    tag: u32,
}

impl LineMap {
    fn len(&self) -> usize {
        self.len + self.long.len()
    }

    fn probe(&self, key: &[u8]) -> Probe {
        let h = self.hasher.hash_one(key);
        Probe {
            start: h as usize,
            ctrl: 0x80 | (h >> 57) as u8,
            tag: ((h >> 32) as u32) | 1,
        }
    }

    /// The control bytes of slots `pos..pos + GROUP`.
    #[inline]
    fn group(&self, pos: usize) -> u64 {
        let mut g = [0u8; GROUP];
        g.copy_from_slice(&self.ctrl[pos..pos + GROUP]);
        u64::from_le_bytes(g)
    }

    #[inline]
    fn get(&self, key: &[u8]) -> Option<u32> {
        if key.len() > SLOT_KEY {
            return self.long.get(key).copied();
        }
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let p = self.probe(key);
        let want = u64::from(p.ctrl) * LO;
        let mut pos = p.start & mask;
        loop {
            let g = self.group(pos);
            // Bytes equal to the control byte become zero; find zero bytes.
            // A byte just above a true match may also be flagged: the tag
            // and key comparison below rejects it.
            let x = g ^ want;
            let mut hits = x.wrapping_sub(LO) & !x & HI;
            while hits != 0 {
                let s = &self.slots[(pos + (hits.trailing_zeros() / 8) as usize) & mask];
                if s.tag == p.tag && usize::from(s.len) == key.len() && s.key[..key.len()] == *key {
                    return Some(s.idx);
                }
                hits &= hits - 1;
            }
            // An empty slot in the group ends the probe: the key would have
            // been placed at or before it.
            if !g & HI != 0 {
                return None;
            }
            pos = (pos + GROUP) & mask;
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
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        self.place(key, idx);
        self.len += 1;
        None
    }

    fn place(&mut self, key: &[u8], idx: u32) {
        let cap = self.slots.len();
        let mask = cap - 1;
        let p = self.probe(key);
        let mut i = p.start & mask;
        while self.ctrl[i] != 0 {
            i = (i + 1) & mask;
        }
        self.ctrl[i] = p.ctrl;
        if i < GROUP {
            self.ctrl[cap + i] = p.ctrl;
        }
        let slot = &mut self.slots[i];
        slot.tag = p.tag;
        slot.idx = idx;
        slot.len = key.len() as u8;
        slot.key[..key.len()].copy_from_slice(key);
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(2 * GROUP);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; cap]);
        let old_ctrl = std::mem::replace(&mut self.ctrl, vec![0; cap + GROUP]);
        for (s, _) in old.iter().zip(&old_ctrl).filter(|(_, &c)| c != 0) {
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
        if has_ascii_uppercase(host) {
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
        // Walk the wildcard suffix lengths shorter than the host, longest
        // first (the most specific wildcard wins), and probe those that
        // start right after a dot of the host.
        let len = host.len();
        for word in (0..self.wildcard_lens.len()).rev() {
            let base = word * 64;
            if base >= len {
                continue;
            }
            let mut bits = self.wildcard_lens[word];
            if len - base < 64 {
                bits &= (1u64 << (len - base)) - 1;
            }
            while bits != 0 {
                let bit = 63 - bits.leading_zeros() as usize;
                bits &= !(1u64 << bit);
                let n = base + bit;
                if host[len - n - 1] == b'.' {
                    if let Some(i) = self.wildcard.get(&host[len - n..]) {
                        return Some(i);
                    }
                }
            }
        }
        None
    }
}

/// Whether `s` has an ASCII capital letter, eight bytes at a time.
#[inline]
fn has_ascii_uppercase(s: &[u8]) -> bool {
    let mut chunks = s.chunks_exact(8);
    let mut acc = 0u64;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w);
        // With the high bits cleared no byte carries into the next: a byte
        // is in `A..=Z` when adding 0x3f sets its high bit and adding 0x25
        // does not; bytes of 0x80 and above are excluded by `!x`.
        let y = x & !HI;
        acc |= (y + 0x3f * LO) & !(y + 0x25 * LO) & !x & HI;
    }
    acc != 0 || chunks.remainder().iter().any(u8::is_ascii_uppercase)
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
    /// The regexes of its regex locations.
    pub(crate) fn regexes(&self) -> impl Iterator<Item = &Regex> {
        self.regex.iter().map(|(r, _)| r)
    }

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

    /// SplitMix64, so the random tables below are repeatable.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) % n as u64) as usize
        }

        /// A name of 1-4 labels from a small alphabet, so names share
        /// suffixes often; sometimes one label is long enough to push the
        /// name past the inline key size.
        fn name(&mut self) -> String {
            const LABELS: [&str; 8] = ["a", "b", "ex", "com", "x-1", "org", "www", "b2"];
            let labels = 1 + self.below(4);
            let mut parts: Vec<String> = (0..labels)
                .map(|_| LABELS[self.below(LABELS.len())].to_string())
                .collect();
            if self.below(20) == 0 {
                parts[0] = "l".repeat(50 + self.below(20));
            }
            parts.join(".")
        }
    }

    /// What `HostTable::lookup` must answer, the slow and obvious way.
    #[derive(Default)]
    struct Reference {
        exact: HashMap<String, u32>,
        wildcard: HashMap<String, u32>,
    }

    impl Reference {
        fn insert(&mut self, name: &str, index: u32) -> Result<(), DuplicateName> {
            let (map, key) = match name.strip_prefix("*.") {
                Some(suffix) => (&mut self.wildcard, suffix),
                None => (&mut self.exact, name),
            };
            if let Some(&existing) = map.get(key) {
                return Err(DuplicateName { existing });
            }
            map.insert(key.to_string(), index);
            Ok(())
        }

        fn lookup(&self, host: &str) -> Option<u32> {
            let host = strip_port(host).to_ascii_lowercase();
            let host = host.strip_suffix('.').unwrap_or(&host);
            if host.is_empty() || host.len() > MAX_HOST {
                return None;
            }
            if let Some(&i) = self.exact.get(host) {
                return Some(i);
            }
            // Longest suffix first: the most specific wildcard wins.
            host.match_indices('.')
                .find_map(|(dot, _)| self.wildcard.get(&host[dot + 1..]).copied())
        }
    }

    #[test]
    fn random_tables_match_the_reference() {
        let mut rng = Rng(7);
        for round in 0..60 {
            // Sizes cross the growth thresholds of both maps.
            let n = [1, 7, 12, 13, 50, 200, 1500][round % 7];
            let mut table = HostTable::new();
            let mut reference = Reference::default();
            for i in 0..n as u32 {
                let name = match rng.below(3) {
                    0 => format!("*.{}", rng.name()),
                    _ => rng.name(),
                };
                assert_eq!(table.insert(&name, i), reference.insert(&name, i), "{name}");
            }
            assert_eq!(
                table.len(),
                reference.exact.len() + reference.wildcard.len()
            );
            for _ in 0..2000 {
                let mut host = rng.name();
                if rng.below(2) == 0 {
                    host = format!("{}.{host}", rng.name());
                }
                match rng.below(8) {
                    0 => host = host.to_ascii_uppercase(),
                    1 => host.push_str(":8443"),
                    2 => host.push('.'),
                    _ => {}
                }
                assert_eq!(table.lookup(&host), reference.lookup(&host), "{host}");
            }
        }
    }

    #[test]
    fn uppercase_detection_matches_the_byte_check() {
        for b in 0..=255u8 {
            for at in 0..17 {
                let mut s = vec![b'a'; 17];
                s[at] = b;
                assert_eq!(
                    has_ascii_uppercase(&s),
                    b.is_ascii_uppercase(),
                    "byte {b:#x} at {at}"
                );
                // A high byte next to a capital must not hide it.
                s[(at + 1) % 17] = 0xff;
                assert_eq!(has_ascii_uppercase(&s), b.is_ascii_uppercase());
            }
        }
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
