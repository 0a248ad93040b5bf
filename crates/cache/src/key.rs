//! Redis key names for cache entries: a version key per entry (or per
//! group of entries) and data keys that carry the version in their name.
//!
//! Not for: deciding what to cache or for how long.
//!
//! Names come from requests (a page slug, a list cursor), so they are
//! never pasted into a key as they are: text made only of `[A-Za-z0-9._-]`
//! and at most 64 bytes long is kept readable, anything else becomes `#`
//! and 128 bits of its SHA-256. `#` is not in the kept set, so a kept name
//! can never spell another name's hash, and no name can add `{`, `}` or
//! `:` to change a key's hash slot or shape.

use sha2::{Digest, Sha256};

/// Every cache key starts with this, to keep them apart from the rate
/// limiter's.
pub const PREFIX: &str = "c:";

/// The longest name kept as it is.
const MAX_PLAIN_LEN: usize = 64;

/// One cache entry: where its version lives and where its data lives at
/// each version.
///
/// Both keys share a Redis Cluster hash tag (`{...}`), so the scripts that
/// touch them together run on one shard (Redis Cloud shards by hash slot).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    version_key: String,
    data_prefix: String,
}

impl Key {
    /// The entry `id` in `namespace` (`Key::new("page", slug)`), with a
    /// version of its own: invalidating it touches nothing else.
    pub fn new(namespace: &str, id: &str) -> Self {
        let tag = format!("{PREFIX}i:{{{}:{}}}", segment(namespace), segment(id));
        Key {
            version_key: format!("{tag}:v"),
            data_prefix: format!("{tag}:d:"),
        }
    }

    /// The key holding the entry's current version.
    pub fn version_key(&self) -> &str {
        &self.version_key
    }

    /// The key holding the entry's data at `version`.
    pub fn data_key(&self, version: u64) -> String {
        format!("{}{version}", self.data_prefix)
    }

    /// The data key without its version, as the lookup script takes it.
    pub(crate) fn data_prefix(&self) -> &str {
        &self.data_prefix
    }
}

/// Entries invalidated together: the pages of a list (one per cursor and
/// page size) all go stale when any page changes. They share one version,
/// so invalidating the group is one `INCR`, however many entries it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    tag: String,
    version_key: String,
}

impl Group {
    /// The group `name` in `namespace` (`Group::new("pages-list", "all")`).
    pub fn new(namespace: &str, name: &str) -> Self {
        let tag = format!("{PREFIX}g:{{{}:{}}}", segment(namespace), segment(name));
        Group {
            version_key: format!("{tag}:v"),
            tag,
        }
    }

    /// The entry `id` of this group (`"cursor=abc&limit=20"`). Its
    /// version is the group's: [`invalidate`](crate::invalidate) on it
    /// invalidates the whole group.
    pub fn key(&self, id: &str) -> Key {
        Key {
            version_key: self.version_key.clone(),
            data_prefix: format!("{}:d:{}:", self.tag, segment(id)),
        }
    }

    /// The key holding the group's current version.
    pub fn version_key(&self) -> &str {
        &self.version_key
    }
}

/// `name` as key text: kept if short and plain, hashed otherwise.
fn segment(name: &str) -> String {
    let plain = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-');
    if !name.is_empty() && name.len() <= MAX_PLAIN_LEN && name.bytes().all(plain) {
        return name.to_owned();
    }
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("#{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_stay_readable() {
        let key = Key::new("page", "getting-started_v2.1");
        assert_eq!(key.version_key(), "c:i:{page:getting-started_v2.1}:v");
        assert_eq!(key.data_key(7), "c:i:{page:getting-started_v2.1}:d:7");
    }

    #[test]
    fn odd_or_long_names_are_hashed_into_bounded_keys() {
        for odd in ["", "a b", "x}:v", "{tag}", "ünïcode", "a\r\nDEL *"] {
            let key = Key::new("page", odd);
            let inner = &key.version_key()["c:i:{page:".len()..];
            assert!(
                inner.starts_with('#') && inner.len() == 1 + 32 + 3,
                "{odd:?}: {key:?}"
            );
        }
        let long = Key::new("page", &"a".repeat(65));
        assert!(long.data_key(u64::MAX).len() < 100, "{long:?}");
        assert_eq!(
            Key::new("page", &"a".repeat(64)).version_key(),
            format!("c:i:{{page:{}}}:v", "a".repeat(64))
        );
    }

    #[test]
    fn distinct_names_give_distinct_keys() {
        let names = ["a", "A", "a ", "#a", "", " ", "a:b", "a_b"];
        let keys: std::collections::HashSet<_> =
            names.iter().map(|n| Key::new("page", n)).collect();
        assert_eq!(keys.len(), names.len());
        assert_ne!(Key::new("a", "b:c"), Key::new("a:b", "c"));
    }

    #[test]
    fn a_hashed_name_cannot_be_spelled_by_a_plain_one() {
        let hashed = segment("a b");
        assert!(hashed.starts_with('#'));
        assert_eq!(segment(&hashed), segment(&hashed), "stable");
        assert_ne!(
            segment(&hashed),
            hashed,
            "'#' is not plain, so it is hashed again"
        );
    }

    #[test]
    fn group_entries_share_the_group_version_and_hash_tag() {
        let group = Group::new("pages-list", "all");
        let first = group.key("cursor=&limit=20");
        let second = group.key("cursor=abc&limit=20");
        assert_eq!(first.version_key(), group.version_key());
        assert_eq!(second.version_key(), group.version_key());
        assert_ne!(first.data_key(3), second.data_key(3));
        let tag = |k: &str| k[k.find('{').unwrap()..=k.find('}').unwrap()].to_owned();
        assert_eq!(tag(&first.data_key(3)), tag(group.version_key()));
        assert_ne!(
            Group::new("page", "x").version_key(),
            Key::new("page", "x").version_key(),
            "groups and single entries never share a version"
        );
    }
}
