//! The key schema. Every key of a user carries the user's shard tag as its
//! Redis Cluster hash tag, so each operation touches one hash slot.

use sessiond_engine::{SessionId, ShardTag, TokenDigest, TokenHash};

/// Builds keys under one prefix. Keys of a user share the base
/// `<prefix>{<shard tag>}:`, which the Lua scripts also receive to build keys
/// of other sessions of the same user (same slot).
#[derive(Clone, Debug)]
pub(crate) struct KeySchema {
    prefix: String,
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

    /// `<prefix>{<tag>}:`, the start of every key of the tag's users.
    pub(crate) fn base(&self, tag: &ShardTag) -> String {
        self.base_with_room(tag, 0)
    }

    /// [`base`](Self::base) with room for `extra` more bytes (keys are built
    /// on every call, so without `format!` and regrowth).
    fn base_with_room(&self, tag: &ShardTag, extra: usize) -> String {
        let tag = tag.as_str();
        let mut key = String::with_capacity(self.prefix.len() + tag.len() + 3 + extra);
        key.push_str(&self.prefix);
        key.push('{');
        key.push_str(tag);
        key.push_str("}:");
        key
    }

    /// SCAN pattern of every session hash under this prefix (glob
    /// characters in the prefix escaped).
    pub(crate) fn all_sessions_pattern(&self) -> String {
        let mut pattern = String::new();
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push_str("{*}:s:*");
        pattern
    }

    /// The session hash: `<base>s:<id>`.
    pub(crate) fn session(&self, id: &SessionId) -> String {
        let mut key = self.base_with_room(&id.shard(), 2 + id.as_str().len());
        key.push_str("s:");
        key.push_str(id.as_str());
        key
    }

    /// The token key: `<base>t:<token hash, base64url>`.
    pub(crate) fn token(&self, digest: &TokenDigest) -> String {
        self.token_in(&digest.shard, &digest.hash)
    }

    /// The key of token hash `hash` of a user with tag `tag`.
    pub(crate) fn token_in(&self, tag: &ShardTag, hash: &TokenHash) -> String {
        let hash = hash.to_base64();
        let mut key = self.base_with_room(tag, 2 + hash.len());
        key.push_str("t:");
        key.push_str(&hash);
        key
    }

    /// The user's index of session ids: `<base>u:<user id>`.
    pub(crate) fn user(&self, user_id: &str) -> String {
        self.user_in(&ShardTag::of_user(user_id), user_id)
    }

    /// The index of `user_id` under tag `tag` (the tag of all its sessions).
    pub(crate) fn user_in(&self, tag: &ShardTag, user_id: &str) -> String {
        format!("{}u:{}", self.base(tag), user_id)
    }
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
        let base = format!("app:{{{tag}}}:");
        assert_eq!(keys.session(&id), format!("{base}s:{id}"));
        assert_eq!(
            keys.token(&token),
            format!("{base}t:{}", token.hash.to_base64())
        );
        assert_eq!(keys.user("alice"), format!("{base}u:alice"));
        // A user id with braces cannot move the hash tag: the first `{` is ours.
        let odd = keys.user("{x}");
        assert!(odd.starts_with(&format!("app:{{{}}}:", ShardTag::of_user("{x}"))));
    }

    #[test]
    fn prefixes_with_braces_are_refused() {
        assert!(KeySchema::new("a{b").is_none());
        assert!(KeySchema::new("a}b").is_none());
        assert!(KeySchema::new("").is_some());
        assert_eq!(KeySchema::new("sessiond:").unwrap().prefix(), "sessiond:");
    }
}
