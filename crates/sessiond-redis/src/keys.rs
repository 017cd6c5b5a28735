//! The key schema (version 2). Every key of a user carries the user's shard
//! tag as its Redis Cluster hash tag, so each operation touches one hash slot:
//!
//! - `<prefix>v2:{<tag>}:r:<th>`: the session record (a [`crate::record`]
//!   value) of the token whose hash is `th` (for a JWT-mode session, of its
//!   refresh family), so that an introspection is one `GET`;
//! - `<prefix>v2:{<tag>}:i`: the tag's index, a sorted set whose members are
//!   a session id's random part followed by `th` (so that by-id operations
//!   find the record), scored by the session's idle deadline.
//!
//! `th` is the first 32 characters (192 bits) of the base64url SHA-256 of the
//! token: enough to name a record, and short enough that index members stay
//! within Redis's compact (listpack) encoding. Keys of the first layout
//! (`<prefix>{<tag>}:s:…`) are not read; they expire by their own TTLs.

use sessiond_engine::{SessionId, ShardTag, TokenDigest, TokenHash};

/// Characters of the token hash used in keys and index members.
pub(crate) const TH_LEN: usize = 32;

/// Characters of a session id's random part (after its 11-character tag).
pub(crate) const ID_RANDOM_LEN: usize = 22;

/// Builds keys under one prefix. Keys of a tag share the base
/// `<prefix>v2:{<tag>}:`, which the Lua scripts also receive to build the
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

    /// `<prefix>v2:`, the start of every key of this schema.
    pub(crate) fn schema_prefix(&self) -> String {
        format!("{}v2:", self.prefix)
    }

    /// `<prefix>v2:{<tag>}:`, the start of every key of the tag's users.
    pub(crate) fn base(&self, tag: &ShardTag) -> String {
        self.base_with_room(tag, 0)
    }

    /// [`base`](Self::base) with room for `extra` more bytes (keys are built
    /// on every call, so without `format!` and regrowth).
    fn base_with_room(&self, tag: &ShardTag, extra: usize) -> String {
        let tag = tag.as_str();
        let mut key = String::with_capacity(self.prefix.len() + tag.len() + 6 + extra);
        key.push_str(&self.prefix);
        key.push_str("v2:{");
        key.push_str(tag);
        key.push_str("}:");
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
        pattern.push_str("v2:{*}:r:*");
        pattern
    }

    /// The record of the token (or refresh family) with digest `digest`.
    pub(crate) fn record(&self, digest: &TokenDigest) -> String {
        self.record_in(&digest.shard, &digest.hash)
    }

    /// The record of token hash `hash` of a user with tag `tag`.
    pub(crate) fn record_in(&self, tag: &ShardTag, hash: &TokenHash) -> String {
        let mut key = self.base_with_room(tag, 2 + TH_LEN);
        key.push_str("r:");
        key.push_str(&th(hash));
        key
    }

    /// The index of tag `tag`.
    pub(crate) fn index(&self, tag: &ShardTag) -> String {
        let mut key = self.base_with_room(tag, 1);
        key.push('i');
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
        let base = format!("app:v2:{{{tag}}}:");
        let th = &token.hash.to_base64()[..TH_LEN];
        assert_eq!(keys.record(&token), format!("{base}r:{th}"));
        assert_eq!(keys.index(&tag), format!("{base}i"));
        let m = member(&id, &token.hash);
        assert_eq!(m.len(), 54, "fits a listpack entry (64 bytes)");
        assert!(id.as_str().ends_with(&m[..ID_RANDOM_LEN]));
        assert!(m.ends_with(th));
        // A user id with braces cannot move the hash tag: the first `{` is ours.
        let odd = keys.index(&ShardTag::of_user("{x}"));
        assert!(odd.starts_with(&format!("app:v2:{{{}}}:", ShardTag::of_user("{x}"))));
        assert_eq!(keys.all_records_pattern(), "app:v2:{*}:r:*");
        assert_eq!(
            KeySchema::new("a*b:").unwrap().all_records_pattern(),
            "a\\*b:v2:{*}:r:*"
        );
    }

    #[test]
    fn prefixes_with_braces_are_refused() {
        assert!(KeySchema::new("a{b").is_none());
        assert!(KeySchema::new("a}b").is_none());
        assert!(KeySchema::new("").is_some());
        assert_eq!(KeySchema::new("sessiond:").unwrap().prefix(), "sessiond:");
    }
}
