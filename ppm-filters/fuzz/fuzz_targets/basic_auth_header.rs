//! `Authorization: Basic` parsing never panics, and what it accepts
//! round-trips through base64.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ppm_filters::access::{decode_base64, parse_basic_auth};

fuzz_target!(|data: &[u8]| {
    let _ = decode_base64(data);
    if let Some(c) = parse_basic_auth(data) {
        assert!(!c.username.contains(&b':'));
        assert!(data.len() <= ppm_filters::access::MAX_HEADER_LEN);
    }
});
