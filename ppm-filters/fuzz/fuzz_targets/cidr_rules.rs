//! CIDR rule lists: parsing never panics, and a compiled list agrees with a
//! linear first-match scan of the same rules.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use ppm_core::config::RuleAction;
use ppm_filters::IpAcl;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.lines();
    let probes: Vec<IpAddr> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let rules: Vec<&str> = lines.take(64).collect();
    let Ok(acl) = IpAcl::parse_lines(rules.iter().copied(), RuleAction::Deny) else {
        return;
    };
    for ip in probes {
        let mut expected = RuleAction::Deny;
        for line in &rules {
            let (action, address) = line.trim().split_once(char::is_whitespace).unwrap();
            let single =
                IpAcl::parse_lines([format!("{action} {address}").as_str()], RuleAction::Deny)
                    .unwrap();
            if let Some(a) = single.matching(ip) {
                expected = a;
                break;
            }
        }
        assert_eq!(acl.check(ip), expected, "{ip}");
    }
});
