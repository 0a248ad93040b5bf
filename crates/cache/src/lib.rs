//! Cache-aside for the API's reads in Redis, with versioned keys so that a
//! write never leaves a stale entry behind. Each call is one round trip
//! (one Lua script).
//!
//! Not for: choosing what to cache, serialising values (entries are
//! bytes), or deciding what to do when Redis is down; the API bypasses the
//! cache on any error ([`resp::Error::is_unavailable`]) and reads TiDB.
//!
//! # The protocol
//!
//! Every entry has a version key; its data lives under a key that names
//! the version (`...:d:<version>`).
//!
//! - Reader: [`lookup`] reads the version and the data at that version
//!   together. On a miss it reads the database, then [`fill`]s under the
//!   version the lookup returned, the one it saw *before* reading the
//!   database.
//! - Writer: commits to the database, *then* [`invalidate`]s, which moves
//!   the version on.
//!
//! Why no stale entry survives a write: a reader's fill can only hold data
//! older than a write if the reader read the database before that write
//! committed. Its lookup came earlier still, so its version is one the
//! writer's invalidation (after the commit) has since replaced. The fill
//! lands under a version no lookup will ask for again; in fact the fill
//! script sees the version has moved and writes nothing. Every lookup
//! after the invalidation sees the new version and misses until a reader
//! who read the committed data fills it. What is left to chance is only
//! the invalidation itself failing (Redis down after the commit): the TTL
//! bounds how long such an entry can be served.
//!
//! Versions start at Redis' clock in microseconds (`TIME`) and then count
//! up, never reusing a number: if a version key expires or is evicted
//! (Redis Cloud's default policy evicts keys with a TTL), or an
//! invalidation drops it because a full Redis will not count it up, the
//! next version is taken from the clock again and is newer than every
//! version before it, so old data keys, still alive under their own TTL,
//! are never read again. (This rests on Redis' clock not stepping back by more than the
//! time since the last write.)
//!
//! Entries that go stale together share one version: a [`Group`] (the
//! pages of the page list), invalidated with one `INCR`.
//!
//! ```no_run
//! # async fn demo<R: cache::Redis>(redis: &mut R, slug: &str) -> Result<(), resp::Error> {
//! use std::time::Duration;
//! use cache::{fill, lookup, Key, Ttl};
//!
//! let key = Key::new("page", slug);
//! let found = lookup(redis, &key).await?;
//! if found.value.is_none() {
//!     let page = b"...read from TiDB...".to_vec();
//!     let ttl = Ttl { base: Duration::from_secs(600), jitter: 0.1 };
//!     fill(redis, &key, found.version, &page, ttl, 0x5eed).await?;
//! }
//! # Ok(())
//! # }
//! ```

mod key;
mod ttl;

use std::sync::LazyLock;
use std::time::Duration;

use resp::{Reply, Script, ScriptCall};

pub use key::{Group, Key, PREFIX};
pub use ttl::{Ttl, MAX_JITTER};

/// How long a version key lives after it was last created or moved on:
/// longer than any entry's TTL is meant to be, so it rarely goes first;
/// if it does, the next lookup starts a fresh version (a miss, never a
/// stale hit).
pub const VERSION_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Where this crate's scripts run: resp's `Connection` or, as the API
/// uses it, its `LazyConnection` (no connection until first use).
pub use resp::RunScript as Redis;

/// Redis' clock in microseconds, as text built from `TIME`'s two parts:
/// Lua's own number-to-text keeps only 14 significant digits, so the
/// 16-digit value is never formatted from a number.
const NOW: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local function now()
  local t = redis.call('TIME')
  return t[1] .. string.format('%06d', tonumber(t[2]))
end
"#;

/// KEYS[1]: version key; KEYS[2]: data key prefix (same hash tag);
/// ARGV[1]: version TTL (ms). Replies `{version}` or `{version, data}`
/// (never a Lua `false`, which RESP2 and RESP3 clients receive
/// differently).
static LOOKUP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(format!(
        "{NOW}{}",
        r#"
local v = redis.call('GET', KEYS[1])
if not v then
  v = now()
  redis.call('SET', KEYS[1], v, 'PX', ARGV[1])
end
local data = redis.call('GET', KEYS[2] .. v)
if data then return {v, data} end
return {v}
"#
    ))
});

/// KEYS[1]: version key; KEYS[2]: data key at ARGV[1]; ARGV: version,
/// value, TTL (ms). Writes only if the version is still current: a fill
/// under an old version could never be read anyway.
static FILL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"#,
    )
});

/// KEYS[1]: version key; ARGV[1]: version TTL (ms). Moves the version on
/// (and at least to the clock), replies with the new version.
///
/// Where Redis will not count (full under `noeviction`, which refuses
/// `INCR` as a command that may take memory, or a key that does not hold
/// a number), it drops the version key instead, as an eviction would:
/// `DEL` needs no memory, so a full Redis still takes it, and the next
/// lookup starts from the clock, past every version before. It then
/// replies with the clock, which every later version reaches or passes.
static INVALIDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(format!(
        "{NOW}{}",
        r#"
local v = redis.pcall('INCR', KEYS[1])
local t = now()
if type(v) == 'table' and v.err then
  redis.call('DEL', KEYS[1])
  return tonumber(t)
end
if v < tonumber(t) then
  redis.call('SET', KEYS[1], t, 'PX', ARGV[1])
  return tonumber(t)
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return v
"#
    ))
});

/// What [`lookup`] found: the entry's current version, and its data at
/// that version if there is any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// Give this to [`fill`] after reading the database.
    pub version: u64,
    pub value: Option<Vec<u8>>,
}

/// Reads `key`'s version and its data at that version, in one round trip.
/// An entry with no version yet gets one (from Redis' clock).
pub async fn lookup<R: Redis + ?Sized>(redis: &mut R, key: &Key) -> Result<Lookup, resp::Error> {
    Lookup::from_reply(redis.run_script(Lookup::call(key)).await?)
}

impl Lookup {
    /// [`lookup`]'s script call, to send in one write with other scripts
    /// (`resp::Connection::invoke_all`); its reply goes to
    /// [`Lookup::from_reply`]. Only a key with no version yet is written
    /// (its version, as every lookup does), so it may go out before the
    /// caller knows whether it will use the answer.
    pub fn call(key: &Key) -> ScriptCall<'static> {
        LOOKUP
            .call()
            .key(key.version_key())
            .key(key.data_prefix())
            .arg(millis(VERSION_TTL))
    }

    /// The reply to [`Lookup::call`]: the script's `{version}` or
    /// `{version, data}`.
    pub fn from_reply(reply: Reply) -> Result<Lookup, resp::Error> {
        let mut parts: Vec<Reply> = reply.convert()?;
        if parts.is_empty() || parts.len() > 2 {
            return Err(resp::Error::Type {
                expected: "the lookup script's version and optional data",
                found: format!("{} values", parts.len()),
            });
        }
        let value = match parts.len() {
            2 => Some(parts.pop().expect("two parts").convert::<Vec<u8>>()?),
            _ => None,
        };
        let version = parts.pop().expect("one part").convert::<u64>()?;
        Ok(Lookup { version, value })
    }
}

/// Stores `value` as `key`'s data at `version` (from the [`lookup`] made
/// before reading the database) for [`Ttl::pick`]`(random)`. Returns
/// whether it was stored: `false` means the entry was invalidated since
/// the lookup, so the value may be stale and is not kept.
pub async fn fill<R: Redis + ?Sized>(
    redis: &mut R,
    key: &Key,
    version: u64,
    value: &[u8],
    ttl: Ttl,
    random: u64,
) -> Result<bool, resp::Error> {
    let call = FILL
        .call()
        .key(key.version_key())
        .key(key.data_key(version))
        .arg(version)
        .arg(value)
        .arg(millis(ttl.pick(random)));
    redis.run_script(call).await?.convert()
}

/// Makes every entry filled so far under `key`'s version unreachable; call
/// it after the write commits. For an entry of a [`Group`] this is the
/// whole group. Returns the new version, or, where Redis would not count
/// and the version was dropped instead (a full Redis), Redis' clock: every
/// version from then on is at least that.
pub async fn invalidate<R: Redis + ?Sized>(redis: &mut R, key: &Key) -> Result<u64, resp::Error> {
    bump(redis, key.version_key()).await
}

/// [`invalidate`] for every entry of `group` at once.
pub async fn invalidate_group<R: Redis + ?Sized>(
    redis: &mut R,
    group: &Group,
) -> Result<u64, resp::Error> {
    bump(redis, group.version_key()).await
}

async fn bump<R: Redis + ?Sized>(redis: &mut R, version_key: &str) -> Result<u64, resp::Error> {
    let call = INVALIDATE.call().key(version_key).arg(millis(VERSION_TTL));
    redis.run_script(call).await?.convert()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(b: &[u8]) -> Reply {
        Reply::Bulk(b.to_vec())
    }

    #[test]
    fn a_lookup_reply_is_a_version_and_maybe_data() {
        let hit = Lookup::from_reply(Reply::Array(vec![
            bulk(b"1700000000000123"),
            bulk(b"\0page"),
        ]));
        assert_eq!(
            hit.unwrap(),
            Lookup {
                version: 1_700_000_000_000_123,
                value: Some(b"\0page".to_vec()),
            }
        );
        let miss = Lookup::from_reply(Reply::Array(vec![bulk(b"42")])).unwrap();
        assert_eq!((miss.version, miss.value), (42, None));
    }

    #[test]
    fn malformed_lookup_replies_are_errors() {
        for reply in [
            Reply::Array(vec![]),
            Reply::Array(vec![bulk(b"1"), bulk(b"x"), bulk(b"y")]),
            Reply::Array(vec![bulk(b"not a version")]),
            Reply::Nil,
        ] {
            assert!(Lookup::from_reply(reply.clone()).is_err(), "{reply:?}");
        }
    }
}
