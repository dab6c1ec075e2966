//! Challenge paths: only `[A-Za-z0-9_-]{1,128}` tokens are ever looked up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ppm_filters::acme::{challenge_token, valid_token, CHALLENGE_PREFIX};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let path = format!("{CHALLENGE_PREFIX}{s}");
    match challenge_token(&path) {
        Some(Ok(t)) => {
            assert!(valid_token(t));
            assert!((1..=128).contains(&t.len()));
            assert!(t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
        Some(Err(())) => assert!(!valid_token(s)),
        None => unreachable!("the prefix is always there"),
    }
});
