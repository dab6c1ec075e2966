//! HTTP Basic Auth: header parsing, password hashes, a verification cache.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ppm_core::config::AccessUser;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// Longest `Authorization` header value considered.
pub const MAX_HEADER_LEN: usize = 4096;

/// How long a successful verification is remembered.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// Most remembered verifications per access list.
pub const CACHE_CAPACITY: usize = 4096;

/// How long a request waits for a verification slot before it gets 503.
pub const VERIFY_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest argon2 memory cost accepted in a stored hash, in KiB (256 MiB),
/// so an imported hash cannot make each verification exhaust memory.
pub const MAX_ARGON2_M_COST: u32 = 256 * 1024;
/// Largest argon2 time cost accepted in a stored hash.
pub const MAX_ARGON2_T_COST: u32 = 16;
/// Largest bcrypt cost accepted in a stored hash.
#[cfg(feature = "bcrypt")]
pub const MAX_BCRYPT_COST: u32 = 15;

/// A verification of a password that matches no user, so that unknown and
/// known user names take about as long (argon2id, default parameters).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$cHBtLWR1bW15LXNhbHQ$Jx5Nqm0Tc0OJgVx0OqQZr2CmA0h9m5kqJ8cJ3k2l1w0";

/// The user name and password of a Basic-Auth header.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (before the first `:`).
    pub username: Vec<u8>,
    /// The password (after the first `:`).
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &String::from_utf8_lossy(&self.username))
            .field("password", &"<redacted>")
            .finish()
    }
}

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decodes standard base64 (RFC 4648 §4), with or without `=` padding.
/// Returns `None` for any invalid input, including non-zero trailing bits.
pub fn decode_base64(input: &[u8]) -> Option<Vec<u8>> {
    let trimmed = match input {
        [rest @ .., b'=', b'='] => rest,
        [rest @ .., b'='] => rest,
        _ => input,
    };
    if input.len() != trimmed.len() && input.len() % 4 != 0 {
        return None;
    }
    if trimmed.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    for chunk in trimmed.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= b64_value(c)? << (18 - 6 * i);
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            3 => {
                if acc & 0xff != 0 {
                    return None;
                }
                out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8]);
            }
            2 => {
                if acc & 0xffff != 0 {
                    return None;
                }
                out.push((acc >> 16) as u8);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Parses an `Authorization` header value of the `Basic` scheme
/// (RFC 7617): the scheme name is case-insensitive, followed by one or more
/// spaces and the base64 of `user:password`. Returns `None` for any other
/// scheme, an overlong value, invalid base64 or a missing `:`.
pub fn parse_basic_auth(value: &[u8]) -> Option<Credentials> {
    if value.len() > MAX_HEADER_LEN {
        return None;
    }
    let value = value.trim_ascii();
    if value.len() < 6 || !value[..6].eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let encoded = value[6..].trim_ascii_start();
    let decoded = decode_base64(encoded)?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(Credentials {
        username: decoded[..colon].to_vec(),
        password: decoded[colon + 1..].to_vec(),
    })
}

/// A stored password hash, checked at build time.
#[derive(Debug, Clone)]
enum StoredHash {
    Argon2(String),
    #[cfg(feature = "bcrypt")]
    Bcrypt(String),
}

impl StoredHash {
    fn parse(s: &str) -> Result<StoredHash, String> {
        if s.starts_with("$argon2") {
            let h = argon2::PasswordHash::new(s)
                .map_err(|_| "is not a valid argon2 PHC string".to_string())?;
            let params = argon2::Params::try_from(&h)
                .map_err(|_| "has invalid argon2 parameters".to_string())?;
            if params.m_cost() > MAX_ARGON2_M_COST || params.t_cost() > MAX_ARGON2_T_COST {
                return Err(format!(
                    "argon2 cost is too high (at most m={MAX_ARGON2_M_COST}, t={MAX_ARGON2_T_COST})"
                ));
            }
            return Ok(StoredHash::Argon2(s.to_string()));
        }
        #[cfg(feature = "bcrypt")]
        if let Some(rest) = ["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .find_map(|p| s.strip_prefix(p))
        {
            let cost: u32 = rest
                .get(..2)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| "is not a valid bcrypt hash".to_string())?;
            if s.len() != 60 || !(4..=31).contains(&cost) {
                return Err("is not a valid bcrypt hash".into());
            }
            if cost > MAX_BCRYPT_COST {
                return Err(format!(
                    "bcrypt cost is too high (at most {MAX_BCRYPT_COST})"
                ));
            }
            return Ok(StoredHash::Bcrypt(s.to_string()));
        }
        if cfg!(feature = "bcrypt") {
            Err("is not an argon2id PHC string or a bcrypt hash".into())
        } else {
            Err("is not an argon2id PHC string (bcrypt support is not compiled in)".into())
        }
    }

    /// Runs the (deliberately slow) verification.
    fn verify(&self, password: &[u8]) -> bool {
        match self {
            StoredHash::Argon2(s) => {
                use argon2::PasswordVerifier;
                match argon2::PasswordHash::new(s) {
                    Ok(h) => argon2::Argon2::default()
                        .verify_password(password, &h)
                        .is_ok(),
                    Err(_) => false,
                }
            }
            #[cfg(feature = "bcrypt")]
            StoredHash::Bcrypt(s) => bcrypt::verify(password, s).unwrap_or(false),
        }
    }
}

struct User {
    name: Vec<u8>,
    hash: StoredHash,
}

struct CacheEntry {
    check: u64,
    expires: Instant,
}

/// What a Basic-Auth check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The credentials match a user.
    Valid,
    /// No `Authorization` header, or not the Basic scheme.
    Missing,
    /// The credentials match no user.
    Invalid,
    /// Too many verifications are queued; try again later.
    Busy,
}

/// Basic-Auth users of one access list, with a cache of successful
/// verifications.
///
/// Password hashes are slow by design (argon2id, bcrypt). So that a valid
/// user costs microseconds per request, a successful verification is
/// remembered for [`CACHE_TTL`], keyed by a 128-bit keyed hash (SipHash with
/// random per-instance keys) of the whole header: the cache never holds a
/// password, and its keys cannot be predicted. At most [`CACHE_CAPACITY`]
/// entries are kept. Failures are never cached.
///
/// Verifications run on Tokio's blocking pool, at most as many at once as
/// the machine has cores per access list, so a flood of bad passwords on one
/// host neither blocks the proxy's threads nor takes every core; a request
/// that waits longer than [`VERIFY_QUEUE_TIMEOUT`] for a slot gets
/// [`Verdict::Busy`].
pub struct BasicAuth {
    users: Arc<[User]>,
    cache: Mutex<HashMap<u64, CacheEntry>>,
    key_hasher: std::collections::hash_map::RandomState,
    check_hasher: std::collections::hash_map::RandomState,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Checks every user's hash and builds the verifier. Fails with a
    /// message naming the first invalid user.
    pub fn new(users: &[AccessUser]) -> Result<Self, String> {
        let mut out = Vec::with_capacity(users.len());
        for (i, u) in users.iter().enumerate() {
            if u.username.is_empty() || u.username.contains(':') {
                return Err(format!(
                    "users[{i}].username: must be non-empty and hold no `:`"
                ));
            }
            let hash = StoredHash::parse(&u.password_hash)
                .map_err(|m| format!("users[{i}].password_hash: {m}"))?;
            out.push(User {
                name: u.username.as_bytes().to_vec(),
                hash,
            });
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(BasicAuth {
            users: out.into(),
            cache: Mutex::new(HashMap::new()),
            key_hasher: Default::default(),
            check_hasher: Default::default(),
            permits: Arc::new(Semaphore::new(cores)),
        })
    }

    /// How many users there are.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    fn digest(&self, header: &[u8]) -> (u64, u64) {
        let mut a = self.key_hasher.build_hasher();
        a.write(header);
        let mut b = self.check_hasher.build_hasher();
        b.write(header);
        (a.finish(), b.finish())
    }

    fn cached(&self, key: u64, check: u64, now: Instant) -> bool {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(&key) {
            Some(e) => e.expires > now && bool::from(e.check.ct_eq(&check)),
            None => false,
        }
    }

    fn remember(&self, key: u64, check: u64, now: Instant) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, e| e.expires > now);
            if cache.len() >= CACHE_CAPACITY {
                // Still full of live entries: start over rather than grow.
                cache.clear();
            }
        }
        cache.insert(
            key,
            CacheEntry {
                check,
                expires: now + CACHE_TTL,
            },
        );
    }

    /// Checks an `Authorization` header value.
    pub async fn verify(&self, header: Option<&[u8]>) -> Verdict {
        let Some(header) = header else {
            return Verdict::Missing;
        };
        let now = Instant::now();
        let (key, check) = self.digest(header);
        if self.cached(key, check, now) {
            return Verdict::Valid;
        }
        let Some(creds) = parse_basic_auth(header) else {
            return Verdict::Missing;
        };
        // Compare against every name without stopping early, so the time
        // taken does not tell which names exist.
        let mut found: Option<usize> = None;
        for (i, u) in self.users.iter().enumerate() {
            let same = u.name.len() == creds.username.len()
                && bool::from(u.name.as_slice().ct_eq(creds.username.as_slice()));
            if same && found.is_none() {
                found = Some(i);
            }
        }
        let permit =
            match tokio::time::timeout(VERIFY_QUEUE_TIMEOUT, self.permits.clone().acquire_owned())
                .await
            {
                Ok(Ok(p)) => p,
                _ => return Verdict::Busy,
            };
        let users = self.users.clone();
        let password = creds.password;
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match found.and_then(|i| users.get(i)) {
                Some(u) => u.hash.verify(&password),
                None => {
                    // Same work for an unknown user, then refuse.
                    let _ = StoredHash::Argon2(DUMMY_HASH.to_string()).verify(&password);
                    false
                }
            }
        })
        .await
        .unwrap_or(false);
        if ok {
            self.remember(key, check, Instant::now());
            Verdict::Valid
        } else {
            Verdict::Invalid
        }
    }

    /// Verifies `password` for `username` synchronously, without the cache
    /// (for tools and tests; the filter uses [`verify`](Self::verify)).
    pub fn verify_blocking(&self, username: &str, password: &str) -> bool {
        self.users
            .iter()
            .find(|u| u.name == username.as_bytes())
            .is_some_and(|u| u.hash.verify(password.as_bytes()))
    }
}

/// Hashes `password` as an argon2id PHC string with default parameters and
/// a random salt, as stored in [`AccessUser::password_hash`].
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b = s.as_bytes();
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            out.push(T[(n >> 18) as usize & 63] as char);
            out.push(T[(n >> 12) as usize & 63] as char);
            out.push(if c.len() > 1 {
                T[(n >> 6) as usize & 63] as char
            } else {
                '='
            });
            out.push(if c.len() > 2 {
                T[n as usize & 63] as char
            } else {
                '='
            });
        }
        out
    }

    #[test]
    fn base64_decoding() {
        assert_eq!(decode_base64(b"").unwrap(), b"");
        assert_eq!(decode_base64(b"Zg==").unwrap(), b"f");
        assert_eq!(decode_base64(b"Zg").unwrap(), b"f");
        assert_eq!(decode_base64(b"Zm8=").unwrap(), b"fo");
        assert_eq!(decode_base64(b"Zm9v").unwrap(), b"foo");
        assert_eq!(decode_base64(b"Zm9vYg==").unwrap(), b"foob");
        for bad in [
            &b"Z"[..],
            b"Zg=",
            b"Zh==",
            b"Zm9=",
            b"Zm9v!",
            b"Zm 9v",
            b"====",
            b"Zg==Zg==",
        ] {
            assert!(
                decode_base64(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for s in ["", "a", "ab", "abc", "user:pa:ss", "ünïcode:ok"] {
            assert_eq!(decode_base64(b64(s).as_bytes()).unwrap(), s.as_bytes());
        }
    }

    #[test]
    fn header_parsing() {
        let h = format!("Basic {}", b64("alice:s3cr:et"));
        let c = parse_basic_auth(h.as_bytes()).unwrap();
        assert_eq!(c.username, b"alice");
        assert_eq!(c.password, b"s3cr:et");
        let h = format!("bAsIc   {}  ", b64("bob:"));
        let c = parse_basic_auth(h.as_bytes()).unwrap();
        assert_eq!(c.username, b"bob");
        assert_eq!(c.password, b"");
        assert!(parse_basic_auth(format!("Basic {}", b64("nocolon")).as_bytes()).is_none());
        assert!(parse_basic_auth(format!("Bearer {}", b64("a:b")).as_bytes()).is_none());
        assert!(parse_basic_auth(b"Basic").is_none());
        assert!(parse_basic_auth(b"Basic !!!").is_none());
        assert!(parse_basic_auth(b"Basicx YTpi").is_none());
        let long = format!("Basic {}", b64(&format!("a:{}", "x".repeat(4000))));
        assert!(parse_basic_auth(long.as_bytes()).is_none());
        assert!(format!("{c:?}").contains("redacted"));
    }

    #[test]
    fn hash_formats_are_checked() {
        let good = hash_password("pw").unwrap();
        assert!(good.starts_with("$argon2id$"));
        assert!(StoredHash::parse(&good).is_ok());
        assert!(StoredHash::parse("").is_err());
        assert!(StoredHash::parse("plain").is_err());
        assert!(
            StoredHash::parse("$argon2id$v=19$m=999999999,t=2,p=1$c2FsdHNhbHQ$aGFzaA").is_err()
        );
        assert!(StoredHash::parse(DUMMY_HASH).is_ok());
        let u = |h: &str| AccessUser {
            username: "a".into(),
            password_hash: h.into(),
        };
        let err = BasicAuth::new(&[u(&good), u("nope")]).unwrap_err();
        assert!(err.starts_with("users[1].password_hash"), "{err}");
        assert!(BasicAuth::new(&[AccessUser {
            username: "a:b".into(),
            password_hash: good
        }])
        .is_err());
    }

    #[cfg(feature = "bcrypt")]
    #[test]
    fn bcrypt_hashes_verify() {
        let h = bcrypt::hash("hunter2", 4).unwrap();
        let auth = BasicAuth::new(&[AccessUser {
            username: "old".into(),
            password_hash: h,
        }])
        .unwrap();
        assert!(auth.verify_blocking("old", "hunter2"));
        assert!(!auth.verify_blocking("old", "hunter3"));
        assert!(StoredHash::parse("$2b$31$abc").is_err());
    }

    #[tokio::test]
    async fn verification_is_cached_only_on_success() {
        let auth = BasicAuth::new(&[AccessUser {
            username: "alice".into(),
            password_hash: hash_password("wonderland").unwrap(),
        }])
        .unwrap();
        let good = format!("Basic {}", b64("alice:wonderland"));
        let bad = format!("Basic {}", b64("alice:nope"));
        let nobody = format!("Basic {}", b64("mallory:wonderland"));
        assert_eq!(auth.verify(None).await, Verdict::Missing);
        assert_eq!(auth.verify(Some(b"Bearer x")).await, Verdict::Missing);
        assert_eq!(auth.verify(Some(bad.as_bytes())).await, Verdict::Invalid);
        assert_eq!(auth.verify(Some(nobody.as_bytes())).await, Verdict::Invalid);
        assert_eq!(auth.verify(Some(good.as_bytes())).await, Verdict::Valid);
        assert_eq!(auth.cache.lock().unwrap().len(), 1);
        // The cached path answers without a slow verification.
        let start = Instant::now();
        for _ in 0..1000 {
            assert_eq!(auth.verify(Some(good.as_bytes())).await, Verdict::Valid);
        }
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(auth.verify(Some(bad.as_bytes())).await, Verdict::Invalid);
    }

    #[test]
    fn dummy_hash_is_valid() {
        // Regenerate with: hash_password("ppm-dummy")
        assert!(argon2::PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
