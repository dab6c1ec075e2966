//! Login throttling: exponential backoff per client IP and per account
//! after repeated failures, in a bounded table.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before backoff starts.
const FREE_FAILURES: u32 = 5;
/// Longest backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Entries kept at most; the oldest are dropped first.
const MAX_ENTRIES: usize = 10_000;
/// Failures are forgotten after this long without another.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    locked_until: Instant,
    last: Instant,
}

/// Tracks failed logins by key (`ip:…`, `user:…`).
#[derive(Debug, Default)]
pub struct LoginThrottle {
    entries: Mutex<HashMap<String, Entry>>,
}

impl LoginThrottle {
    /// An empty table.
    pub fn new() -> Self {
        LoginThrottle::default()
    }

    /// Seconds to wait before `keys` may try again, if any is locked.
    pub fn check(&self, keys: &[String]) -> Option<u64> {
        let now = Instant::now();
        let map = self.entries.lock().ok()?;
        keys.iter()
            .filter_map(|k| map.get(k))
            .filter(|e| e.locked_until > now)
            .map(|e| (e.locked_until - now).as_secs().max(1))
            .max()
    }

    /// Records a failure for every key.
    pub fn failure(&self, keys: &[String]) {
        let now = Instant::now();
        let Ok(mut map) = self.entries.lock() else {
            return;
        };
        if map.len() + keys.len() > MAX_ENTRIES {
            map.retain(|_, e| now.duration_since(e.last) < FORGET_AFTER);
            while map.len() + keys.len() > MAX_ENTRIES {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, e)| e.last)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => map.remove(&k),
                    None => break,
                };
            }
        }
        for k in keys {
            let e = map.entry(k.clone()).or_insert(Entry {
                failures: 0,
                locked_until: now,
                last: now,
            });
            if now.duration_since(e.last) > FORGET_AFTER {
                e.failures = 0;
            }
            e.failures += 1;
            e.last = now;
            if e.failures >= FREE_FAILURES {
                let exp = (e.failures - FREE_FAILURES).min(16);
                let backoff = Duration::from_secs(1u64 << exp).min(MAX_BACKOFF);
                e.locked_until = now + backoff;
            }
        }
    }

    /// Clears the record of `keys` after a successful login.
    pub fn success(&self, keys: &[String]) {
        if let Ok(mut map) = self.entries.lock() {
            for k in keys {
                map.remove(k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_after_free_failures() {
        let t = LoginThrottle::new();
        let keys = vec!["ip:1".to_string()];
        for _ in 0..FREE_FAILURES - 1 {
            t.failure(&keys);
            assert_eq!(t.check(&keys), None);
        }
        t.failure(&keys);
        assert_eq!(t.check(&keys), Some(1));
        t.failure(&keys);
        assert!(t.check(&keys).unwrap() >= 1);
        t.success(&keys);
        assert_eq!(t.check(&keys), None);
    }

    #[test]
    fn table_is_bounded() {
        let t = LoginThrottle::new();
        for i in 0..(MAX_ENTRIES + 50) {
            t.failure(&[format!("ip:{i}")]);
        }
        assert!(t.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
