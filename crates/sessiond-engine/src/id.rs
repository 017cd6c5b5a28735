//! Public session ids and the shard tag that keeps all of one user's records
//! together (one Redis Cluster hash slot per user).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// `N` bytes from the operating system's CSPRNG.
///
/// # Panics
/// When the OS has no randomness to give; continuing would issue guessable
/// tokens, so there is nothing safe to fall back to.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buf).expect("the OS random number generator failed");
    buf
}

/// Length in characters of a [`ShardTag`].
pub const SHARD_TAG_LEN: usize = 11;
/// Length in characters of a [`SessionId`].
pub const SESSION_ID_LEN: usize = SHARD_TAG_LEN + 22;

/// A short tag derived from a user id (64 bits of its SHA-256, base64url).
/// Every id and token of the user carries it, so a store can place all of a
/// user's records together without another lookup.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardTag(String);

impl ShardTag {
    /// The tag of `user_id`.
    pub fn of_user(user_id: &str) -> Self {
        let digest = Sha256::digest(user_id.as_bytes());
        Self(URL_SAFE_NO_PAD.encode(&digest[..8]))
    }

    /// A tag from text read back from a store; `None` unless it is the
    /// canonical base64url of 8 bytes (as [`ShardTag::of_user`] writes).
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == SHARD_TAG_LEN && is_canonical_base64url(s, 8)).then(|| Self(s.to_owned()))
    }

    /// The tag as text (11 base64url characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn from_valid(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Display for ShardTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The public handle of a session: safe to show and log, not derived from its
/// token. Its first 11 characters are the owner's [`ShardTag`], the other 22
/// are 128 random bits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// A new random id for a session of the user with tag `shard`.
    pub fn generate(shard: &ShardTag) -> Self {
        let random: [u8; 16] = random_bytes();
        Self(format!(
            "{}{}",
            shard.as_str(),
            URL_SAFE_NO_PAD.encode(random)
        ))
    }

    /// Parse an id from untrusted text; `None` unless it has the exact shape.
    pub fn parse(s: &str) -> Option<Self> {
        // ASCII is checked first: only then are the slices on char boundaries.
        let ok = s.len() == SESSION_ID_LEN
            && s.is_ascii()
            && is_canonical_base64url(&s[..SHARD_TAG_LEN], 8)
            && is_canonical_base64url(&s[SHARD_TAG_LEN..], 16);
        ok.then(|| Self(s.to_owned()))
    }

    /// The owner's shard tag.
    pub fn shard(&self) -> ShardTag {
        ShardTag::from_valid(&self.0[..SHARD_TAG_LEN])
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom("malformed session id"))
    }
}

/// Whether `s` is exactly the unpadded base64url encoding of `len` bytes as
/// our encoder writes it (no stray trailing bits), so each value has one text.
pub(crate) fn is_canonical_base64url(s: &str, len: usize) -> bool {
    URL_SAFE_NO_PAD.decode(s).is_ok_and(|b| b.len() == len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_the_user_shard_and_parse_back() {
        let shard = ShardTag::of_user("alice@example.com");
        let id = SessionId::generate(&shard);
        assert_eq!(id.as_str().len(), SESSION_ID_LEN);
        assert_eq!(id.shard(), shard);
        assert_eq!(ShardTag::parse(shard.as_str()), Some(shard.clone()));
        assert_eq!(
            ShardTag::parse(&id.as_str()[..SHARD_TAG_LEN]),
            Some(shard.clone())
        );
        assert_eq!(ShardTag::parse(id.as_str()), None);
        assert_eq!(ShardTag::parse("AAAAAAAAAA="), None);
        assert_eq!(SessionId::parse(id.as_str()), Some(id.clone()));
        assert_ne!(SessionId::generate(&shard), id);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "short",
            "ééééééééééééééééééééééééééééééééé",
            &"a".repeat(34),
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/",
        ] {
            assert!(SessionId::parse(bad).is_none(), "{bad:?}");
        }
    }
}
