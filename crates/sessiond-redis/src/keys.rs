//! The key schema (version 3). Every key of a user carries the user's
//! bucket (one of [`BUCKETS`], from the user's shard tag) as its Redis
//! Cluster hash tag, so each operation touches one hash slot, and the
//! bucket's event stream sits in that slot too:
//!
//! - `<prefix>v3:{<bucket>}:<tag>:r:<th>`: the session record (a
//!   [`crate::record`] value) of the token whose hash is `th` (for a
//!   JWT-mode session, of its refresh family), so that an introspection is
//!   one `GET`;
//! - `<prefix>v3:{<bucket>}:<tag>:i`: the tag's index, a sorted set whose
//!   members are a session id's random part followed by `th` (so that by-id
//!   operations find the record), scored by the session's idle deadline;
//! - `<prefix>v3:{<bucket>}:<tag>:c` and `:k`: the tag's live connections
//!   (a hash of packed connections, and their expiries as a sorted set);
//! - `<prefix>v3:{<bucket>}:<tag>:n`: the not-before marks of the tag's
//!   users (a hash: user id to the mark and its end);
//! - `<prefix>v3:{<bucket>}:e`: the bucket's event stream, `:f` the last
//!   event retired from it, `:x` its tags scored by their next deadline
//!   (what the expiry sweep walks).
//!
//! `th` is the first 32 characters (192 bits) of the base64url SHA-256 of the
//! token: enough to name a record, and short enough that index members stay
//! within Redis's compact (listpack) encoding. Keys of earlier layouts
//! (`<prefix>{<tag>}:s:…`, `<prefix>v2:…`) are not read; they expire by their
//! own TTLs.

use sessiond_engine::{SessionId, ShardTag, TokenDigest, TokenHash};

/// Characters of the token hash used in keys and index members.
pub(crate) const TH_LEN: usize = 32;

/// Characters of a session id's random part (after its 11-character tag).
pub(crate) const ID_RANDOM_LEN: usize = 22;

/// Buckets of the deployment: each user's keys and events are in one, and a
/// reader of the feed reads every bucket's stream. 256 spreads a Cluster's
/// data over 256 hash slots (about 85 per master of three) while a feed
/// read stays one pipelined command per bucket.
pub(crate) const BUCKETS: u16 = 256;

/// The bucket of a shard tag: the first byte its characters encode (the tag
/// is 11 base64url characters of a SHA-256 prefix, so buckets are even).
pub(crate) fn bucket_of(tag: &ShardTag) -> u16 {
    let value = |c: u8| -> u16 {
        match c {
            b'A'..=b'Z' => u16::from(c - b'A'),
            b'a'..=b'z' => u16::from(c - b'a') + 26,
            b'0'..=b'9' => u16::from(c - b'0') + 52,
            b'-' => 62,
            _ => 63,
        }
    };
    let b = tag.as_str().as_bytes();
    let (c0, c1) = (
        b.first().copied().unwrap_or(b'A'),
        b.get(1).copied().unwrap_or(b'A'),
    );
    ((value(c0) << 2) | (value(c1) >> 4)) % BUCKETS
}

/// Builds keys under one prefix. Keys of a tag share the base
/// `<prefix>v3:{<bucket>}:<tag>:`, which the Lua scripts also receive to build the
/// record keys of an index's members (same slot).
#[derive(Clone, Debug)]
pub(crate) struct KeySchema {
    prefix: String,
}

/// `th` of a token hash.
pub(crate) fn th(hash: &TokenHash) -> String {
    let mut text = hash.to_base64();
    text.truncate(TH_LEN);
    text
}

impl KeySchema {
    /// A schema under `prefix`, which must not contain `{` or `}` (the first
    /// `{...}` of a key must be the shard tag).
    pub(crate) fn new(prefix: &str) -> Option<Self> {
        (!prefix.contains(['{', '}'])).then(|| Self {
            prefix: prefix.to_owned(),
        })
    }

    /// The configured prefix.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>v3:`, the start of every key of this schema.
    pub(crate) fn schema_prefix(&self) -> String {
        format!("{}v3:", self.prefix)
    }

    /// `<prefix>v3:{<bucket>}:<tag>:`, the start of every key of the tag's
    /// users.
    pub(crate) fn base(&self, tag: &ShardTag) -> String {
        self.base_with_room(tag, 0)
    }

    /// `<prefix>v3:{<bucket>}:`, the start of bucket `bucket`'s own keys.
    pub(crate) fn bucket_base(&self, bucket: u16) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 8);
        self.push_bucket(&mut key, bucket);
        key
    }

    /// The event stream of bucket `bucket`.
    pub(crate) fn stream(&self, bucket: u16) -> String {
        let mut key = self.bucket_base(bucket);
        key.push('e');
        key
    }

    /// The last event retired from bucket `bucket`'s stream.
    pub(crate) fn floor(&self, bucket: u16) -> String {
        let mut key = self.bucket_base(bucket);
        key.push('f');
        key
    }

    /// Bucket `bucket`'s tags scored by their next deadline.
    pub(crate) fn deadlines(&self, bucket: u16) -> String {
        let mut key = self.bucket_base(bucket);
        key.push('x');
        key
    }

    fn push_bucket(&self, key: &mut String, bucket: u16) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        key.push_str(&self.prefix);
        key.push_str("v3:{");
        key.push(char::from(HEX[usize::from(bucket >> 4) & 15]));
        key.push(char::from(HEX[usize::from(bucket) & 15]));
        key.push_str("}:");
    }

    /// [`base`](Self::base) with room for `extra` more bytes (keys are built
    /// on every call, so without `format!` and regrowth).
    fn base_with_room(&self, tag: &ShardTag, extra: usize) -> String {
        let tag_text = tag.as_str();
        let mut key = String::with_capacity(self.prefix.len() + tag_text.len() + 10 + extra);
        self.push_bucket(&mut key, bucket_of(tag));
        key.push_str(tag_text);
        key.push(':');
        key
    }

    /// SCAN pattern of every session record under this prefix (glob
    /// characters in the prefix escaped).
    pub(crate) fn all_records_pattern(&self) -> String {
        let mut pattern = String::new();
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push_str("v3:{*}:*:r:*");
        pattern
    }

    /// The record of the token (or refresh family) with digest `digest`.
    pub(crate) fn record(&self, digest: &TokenDigest) -> String {
        self.record_in(&digest.shard, &digest.hash)
    }

    /// The record of token hash `hash` of a user with tag `tag`.
    pub(crate) fn record_in(&self, tag: &ShardTag, hash: &TokenHash) -> String {
        self.record_at(tag, &th(hash))
    }

    /// The record named `th` (as an index member ends) of tag `tag`.
    pub(crate) fn record_at(&self, tag: &ShardTag, th: &str) -> String {
        let mut key = self.base_with_room(tag, 2 + th.len());
        key.push_str("r:");
        key.push_str(th);
        key
    }

    /// The index of tag `tag`.
    pub(crate) fn index(&self, tag: &ShardTag) -> String {
        let mut key = self.base_with_room(tag, 1);
        key.push('i');
        key
    }

    /// The not-before marks of the tag's users.
    pub(crate) fn not_before(&self, tag: &ShardTag) -> String {
        let mut key = self.base_with_room(tag, 1);
        key.push('n');
        key
    }
}

/// The random part of a session id: how the index names it.
pub(crate) fn id_random(id: &SessionId) -> &str {
    let s = id.as_str();
    &s[s.len() - ID_RANDOM_LEN..]
}

/// The index member of session `id` whose record is under token hash `hash`
/// (the scripts build it; this states the format for the tests).
#[cfg(test)]
pub(crate) fn member(id: &SessionId, hash: &TokenHash) -> String {
    let mut m = String::with_capacity(ID_RANDOM_LEN + TH_LEN);
    m.push_str(id_random(id));
    m.push_str(&th(hash));
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessiond_engine::SessionToken;

    #[test]
    fn keys_of_one_user_share_the_hash_tag() {
        let keys = KeySchema::new("app:").unwrap();
        let tag = ShardTag::of_user("alice");
        let id = SessionId::generate(&tag);
        let token = SessionToken::generate(&tag).digest();
        let base = format!("app:v3:{{{:02x}}}:{tag}:", bucket_of(&tag));
        let th = &token.hash.to_base64()[..TH_LEN];
        assert_eq!(keys.record(&token), format!("{base}r:{th}"));
        assert_eq!(keys.index(&tag), format!("{base}i"));
        let m = member(&id, &token.hash);
        assert_eq!(m.len(), 54, "fits a listpack entry (64 bytes)");
        assert!(id.as_str().ends_with(&m[..ID_RANDOM_LEN]));
        assert!(m.ends_with(th));
        // A user id with braces cannot move the hash tag: the first `{` is ours.
        let odd_tag = ShardTag::of_user("{x}");
        let odd = keys.index(&odd_tag);
        assert!(odd.starts_with(&format!(
            "app:v3:{{{:02x}}}:{odd_tag}:",
            bucket_of(&odd_tag)
        )));
        assert_eq!(keys.all_records_pattern(), "app:v3:{*}:*:r:*");
        assert_eq!(
            KeySchema::new("a*b:").unwrap().all_records_pattern(),
            "a\\*b:v3:{*}:*:r:*"
        );
        assert_eq!(keys.stream(10), "app:v3:{0a}:e");
        assert_eq!(keys.floor(255), "app:v3:{ff}:f");
        assert_eq!(keys.deadlines(0), "app:v3:{00}:x");
    }

    #[test]
    fn buckets_spread_tags_evenly() {
        let mut counts = vec![0u32; usize::from(BUCKETS)];
        for n in 0..25_600 {
            counts[usize::from(bucket_of(&ShardTag::of_user(&format!("user{n}"))))] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 50 && *max < 160, "min {min}, max {max}");
    }

    #[test]
    fn prefixes_with_braces_are_refused() {
        assert!(KeySchema::new("a{b").is_none());
        assert!(KeySchema::new("a}b").is_none());
        assert!(KeySchema::new("").is_some());
        assert_eq!(KeySchema::new("sessiond:").unwrap().prefix(), "sessiond:");
    }
}
