//! Redis keys for limiter state: one per route class and client address.
//!
//! Not for: deciding which address is the client's (the API takes it from
//! `CF-Connecting-IP`, which Cloudflare sets and a client cannot forge).
//!
//! The address still arrives as header text, so it is parsed rather than
//! pasted into the key: a value that is not an IP address cannot create a
//! key of its own (they all share one bucket, `unknown`), which means
//! junk header values neither bloat Redis nor buy a fresh allowance each.

use std::net::{IpAddr, Ipv6Addr};

/// Every limiter key starts with this, to keep them apart from the cache's.
pub const PREFIX: &str = "rl:";

/// The longest route class kept in a key; longer names are cut.
const MAX_CLASS_LEN: usize = 32;

/// The key for `client_ip` in route class `class` (`"read"`, `"write"`,
/// `"upload"`, ...).
///
/// - IPv4 addresses are used whole (also when written IPv4-mapped, so
///   `::ffff:192.0.2.1` and `192.0.2.1` share a bucket).
/// - IPv6 addresses are cut to their /64: one subscriber usually holds a
///   whole /64, and limiting single addresses in it would let them rotate
///   through 2^64 buckets.
/// - Anything else goes to the shared `unknown` bucket.
///
/// The class is kept to `[a-z0-9_-]` (other characters become `_`) and 32
/// characters, so the key stays under 80 bytes whatever it is given.
pub fn key(class: &str, client_ip: &str) -> String {
    let class: String = class
        .chars()
        .take(MAX_CLASS_LEN)
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect();
    let client = match client_ip.trim().parse::<IpAddr>() {
        Ok(ip) => match ip.to_canonical() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !u128::from(u64::MAX);
                format!("{}/64", Ipv6Addr::from(network))
            }
        },
        Err(_) => "unknown".to_owned(),
    };
    format!("{PREFIX}{class}:{client}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_addresses_are_kept_whole_and_mapped_ones_too() {
        assert_eq!(key("read", "192.0.2.1"), "rl:read:192.0.2.1");
        assert_eq!(key("read", " 192.0.2.1 "), "rl:read:192.0.2.1");
        assert_eq!(key("read", "::ffff:192.0.2.1"), "rl:read:192.0.2.1");
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        assert_eq!(
            key("write", "2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
            "rl:write:2001:db8:1:2::/64"
        );
        assert_eq!(
            key("write", "2001:DB8:1:2::1"),
            key("write", "2001:db8:1:2:ffff::9")
        );
        assert_ne!(
            key("write", "2001:db8:1:3::1"),
            key("write", "2001:db8:1:2::1")
        );
    }

    #[test]
    fn anything_else_shares_the_unknown_bucket() {
        for junk in [
            "",
            "localhost",
            "1.2.3.4, 5.6.7.8",
            "{tag}\r\nDEL *",
            "999.1.1.1",
        ] {
            assert_eq!(key("read", junk), "rl:read:unknown", "{junk:?}");
        }
    }

    #[test]
    fn classes_are_sanitised_and_bounded() {
        assert_eq!(key("Read Heavy", "192.0.2.1"), "rl:read_heavy:192.0.2.1");
        let long = key(
            &"x{}".repeat(100),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        );
        assert!(long.len() < 80, "{long}");
        assert!(!long.contains('{') && !long.contains('}'), "{long}");
    }
}
