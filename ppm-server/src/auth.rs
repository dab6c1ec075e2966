//! Passwords (argon2id), session tokens (HS256 JWT) and API tokens.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted (argon2 input is bounded to keep hashing cheap
/// to reject).
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Prefix of API tokens, so leaked tokens are easy to recognise.
pub const API_TOKEN_PREFIX: &str = "ppm_";

/// Random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // getrandom only fails on platforms without an entropy source; a
    // zeroed buffer would be a silent security hole, so abort instead.
    if getrandom::fill(&mut b).is_err() {
        std::process::abort();
    }
    b
}

/// A random password of 20 URL-safe characters.
pub fn random_password() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<15>())
}

/// Checks a password's length.
pub fn validate_password(p: &str) -> Result<(), String> {
    let n = p.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(format!("must be at least {MIN_PASSWORD_LEN} characters"));
    }
    if p.len() > MAX_PASSWORD_LEN {
        return Err(format!("must be at most {MAX_PASSWORD_LEN} bytes"));
    }
    Ok(())
}

/// Checks an email address (shape only).
pub fn validate_email(e: &str) -> Result<(), String> {
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && !domain.is_empty()
                && domain.contains('.')
                && !e.chars().any(|c| c.is_whitespace() || c.is_control())
                && !domain.contains('@')
        });
    if ok {
        Ok(())
    } else {
        Err("must be an email address".into())
    }
}

/// Hashes a password with argon2id (blocking: call off the async threads).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Verifies a password against a PHC hash (blocking).
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash that costs the same to verify as a real one, used when the user
/// does not exist so timing does not reveal which emails are registered.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("not a real password, only for timing").unwrap_or_default())
}

/// A new API token (shown once) and its stored hash.
pub fn new_api_token() -> (String, String) {
    let token = format!(
        "{API_TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    );
    let hash = hash_api_token(&token);
    (token, hash)
}

/// The stored form of an API token: SHA-256, hex. Tokens carry 256 bits of
/// randomness, so a fast hash is enough.
pub fn hash_api_token(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// The user's password generation: a changed password invalidates
    /// older tokens.
    pub pwv: i64,
}

/// Why a session token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts, or bad JSON.
    Malformed,
    /// Header `alg` is not HS256 (including `none`).
    Algorithm,
    /// Signature does not match.
    Signature,
    /// Past `exp`.
    Expired,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
}

/// Signs and checks HS256 JWTs with one secret. `alg` is pinned to HS256.
#[derive(Clone)]
pub struct Jwt {
    secret: Vec<u8>,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jwt(..)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl Jwt {
    /// A signer with `secret` (at least 32 bytes).
    pub fn new(secret: Vec<u8>) -> Self {
        Jwt { secret }
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length.
        match HmacSha256::new_from_slice(&self.secret) {
            Ok(mut m) => {
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing = format!("{header}.{payload}");
        let sig = URL_SAFE_NO_PAD.encode(self.mac(signing.as_bytes()));
        format!("{signing}.{sig}")
    }

    /// Checks a token's algorithm, signature and expiry at `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Header = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if header.alg != "HS256" {
            return Err(TokenError::Algorithm);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed)?;
        let expected = self.mac(format!("{h}.{p}").as_bytes());
        if expected.is_empty() || !bool::from(expected.ct_eq(&sig)) {
            return Err(TokenError::Signature);
        }
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: 1,
            iat: 0,
            exp,
            pwv: 0,
        }
    }

    #[test]
    fn jwt_round_trip_and_rejections() {
        let jwt = Jwt::new(random_bytes::<32>().to_vec());
        let t = jwt.sign(&claims(100));
        assert_eq!(jwt.verify(&t, 50).unwrap(), claims(100));
        assert_eq!(jwt.verify(&t, 100), Err(TokenError::Expired));
        let other = Jwt::new(random_bytes::<32>().to_vec());
        assert_eq!(other.verify(&t, 50), Err(TokenError::Signature));
        // Tampered payload.
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                sub: 2,
                ..claims(100)
            })
            .unwrap(),
        );
        parts[1] = &forged;
        assert_eq!(jwt.verify(&parts.join("."), 50), Err(TokenError::Signature));
        // alg: none.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(100)).unwrap())
        );
        assert_eq!(jwt.verify(&none, 50), Err(TokenError::Algorithm));
        assert_eq!(jwt.verify("garbage", 50), Err(TokenError::Malformed));
    }

    #[test]
    fn passwords() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(validate_password("short").is_err());
        assert!(validate_email("a@b.co").is_ok());
        assert!(validate_email("a b@c.d").is_err());
        let (t, hsh) = new_api_token();
        assert!(t.starts_with(API_TOKEN_PREFIX));
        assert_eq!(hash_api_token(&t), hsh);
    }
}
