//! Session tokens: 256 random bits from the OS CSPRNG, URL-safe, with a
//! recognizable prefix. Only a SHA-256 hash of a token is ever stored; the
//! token itself never appears in `Debug` output or logs.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::id::{SHARD_TAG_LEN, ShardTag, is_canonical_base64url, random_bytes};

/// Prefix of every session token, so secret scanners can recognize leaked ones.
pub const TOKEN_PREFIX: &str = "sds_";
const SECRET_LEN: usize = 43; // 32 bytes, base64url without padding
/// Length in characters of a session token.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + SHARD_TAG_LEN + SECRET_LEN;

/// A session token as handed to a client. Shaped
/// `sds_<shard tag><43 chars of secret>`. Deliberately not `PartialEq`:
/// compare [`SessionToken::digest`]s, whose hashes compare in constant time.
#[derive(Clone)]
pub struct SessionToken(String);

/// The CSRF token of a session credential: a domain-separated hash of it, so
/// only a holder of the credential can know it, and it changes with the
/// token. Cookie-authenticated changes must present it (double submit).
pub fn csrf_token_for(credential: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"sessiond csrf\0")
        .chain_update(credential.as_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(&digest[..24])
}
/// Compare a presented CSRF token with the expected one in constant time.
pub fn csrf_token_matches(presented: &[u8], expected: &str) -> bool {
    bool::from(presented.ct_eq(expected.as_bytes()))
}

impl SessionToken {
    /// A fresh token for a session of the user with tag `shard`.
    pub fn generate(shard: &ShardTag) -> Self {
        let secret: [u8; 32] = random_bytes();
        Self(format!(
            "{TOKEN_PREFIX}{}{}",
            shard.as_str(),
            URL_SAFE_NO_PAD.encode(secret)
        ))
    }

    /// Parse untrusted text; `None` unless it has the exact token shape.
    pub fn parse(s: &str) -> Option<Self> {
        // ASCII is checked first: only then are the slices on char boundaries.
        let ok = s.len() == TOKEN_LEN
            && s.is_ascii()
            && s.starts_with(TOKEN_PREFIX)
            && is_canonical_base64url(
                &s[TOKEN_PREFIX.len()..TOKEN_PREFIX.len() + SHARD_TAG_LEN],
                8,
            )
            && is_canonical_base64url(&s[TOKEN_PREFIX.len() + SHARD_TAG_LEN..], 32);
        ok.then(|| Self(s.to_owned()))
    }

    /// The token text, to give to the client. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What a store keeps and looks up: the shard tag and the hash.
    pub fn digest(&self) -> TokenDigest {
        let shard =
            ShardTag::from_valid(&self.0[TOKEN_PREFIX.len()..TOKEN_PREFIX.len() + SHARD_TAG_LEN]);
        TokenDigest {
            shard,
            hash: TokenHash(Sha256::digest(self.0.as_bytes()).into()),
        }
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// SHA-256 of a token. Equality is constant-time.
#[derive(Clone, Copy)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From raw bytes read back from a store.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// base64url text of the hash (43 characters), for stores keyed by text.
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Parse the text form written by [`TokenHash::to_base64`].
    pub fn from_base64(s: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// The first 8 hex characters: enough to correlate log lines, useless to
    /// an attacker.
    pub fn short(&self) -> String {
        self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for TokenHash {}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", self.short())
    }
}

/// Everything a store needs to find a session by token: the owner's shard tag
/// (carried in the token) and the token's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenDigest {
    /// Shard tag of the session's user.
    pub shard: ShardTag,
    /// SHA-256 of the token.
    pub hash: TokenHash,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_prefix_length_and_parse_back() {
        let shard = ShardTag::of_user("u1");
        let t = SessionToken::generate(&shard);
        assert!(t.expose().starts_with("sds_"));
        assert_eq!(t.expose().len(), TOKEN_LEN);
        let back = SessionToken::parse(t.expose()).unwrap();
        assert_eq!(back.digest(), t.digest());
        assert_eq!(t.digest().shard, shard);
        assert_ne!(SessionToken::generate(&shard).digest(), t.digest());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = SessionToken::generate(&ShardTag::of_user("u1"));
        assert!(!format!("{t:?}").contains(&t.expose()[4..]));
    }

    #[test]
    fn hash_text_round_trips() {
        let t = SessionToken::generate(&ShardTag::of_user("u1"));
        let h = t.digest().hash;
        assert_eq!(TokenHash::from_base64(&h.to_base64()), Some(h));
        assert_eq!(TokenHash::from_base64("nope"), None);
    }

    #[test]
    fn garbage_never_parses_and_never_panics() {
        let valid = SessionToken::generate(&ShardTag::of_user("u"))
            .expose()
            .to_owned();
        let mut cases: Vec<String> = vec![
            String::new(),
            "sds_".into(),
            valid[..valid.len() - 1].into(),
            format!("{valid}x"),
            valid.replacen("sds_", "sdx_", 1),
            format!("sds_{}", "é".repeat(27)),
            format!("{}+", &valid[..valid.len() - 1]),
            "\0".repeat(TOKEN_LEN),
            // Right length and alphabet, but stray trailing bits: not a token we issue.
            format!("sds_{}", "-".repeat(TOKEN_LEN - 4)),
            // Multi-byte characters at the slice boundaries must not panic.
            format!("sds_{}é{}", "A".repeat(10), "A".repeat(TOKEN_LEN - 16)),
        ];
        assert!(SessionToken::parse(&cases[cases.len() - 2]).is_none());
        assert!(SessionToken::parse(&cases[cases.len() - 1]).is_none());
        // Every byte value at every position of an otherwise valid token.
        for pos in [0, 4, 10, TOKEN_LEN - 1] {
            for b in 0u8..=127 {
                let mut bytes = valid.clone().into_bytes();
                bytes[pos] = b;
                if let Ok(s) = String::from_utf8(bytes) {
                    cases.push(s);
                }
            }
        }
        for c in &cases {
            if let Some(t) = SessionToken::parse(c) {
                assert_eq!(t.expose(), c);
                assert!(c.starts_with("sds_") && c.len() == TOKEN_LEN);
            }
        }
    }
}
