//! Refresh tokens of JWT-mode sessions: `sdr_<shard tag><family><secret>`.
//! The family (128 random bits) is fixed for a session's whole chain of
//! refresh tokens, so a store finds the session of any token of the chain
//! (current or long retired) with one lookup, and a retired token presented
//! again is recognized as reuse. Only hashes are stored; the successor of a
//! rotation is kept only wrapped under a key derived from its predecessor, so
//! that whoever presents the predecessor again within the grace period gets
//! the same successor back, and nobody else (the store included) can.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::id::{SHARD_TAG_LEN, ShardTag, is_canonical_base64url, random_bytes};
use crate::token::{TokenDigest, TokenHash};

/// Prefix of every refresh token.
pub const REFRESH_PREFIX: &str = "sdr_";
const FAMILY_LEN: usize = 22; // 16 bytes, base64url without padding
const SECRET_LEN: usize = 43; // 32 bytes
/// Length in characters of a refresh token.
pub const REFRESH_TOKEN_LEN: usize = REFRESH_PREFIX.len() + SHARD_TAG_LEN + FAMILY_LEN + SECRET_LEN;

const FAMILY_START: usize = REFRESH_PREFIX.len() + SHARD_TAG_LEN;
const SECRET_START: usize = FAMILY_START + FAMILY_LEN;
/// Domain-separation labels: the family digest and the wrapping key are
/// hashes of inputs no token hash can share.
const FAMILY_LABEL: &[u8] = b"sessiond refresh family\0";
const WRAP_LABEL: &[u8] = b"sessiond refresh successor\0";

/// A refresh token as handed to a client. Not `PartialEq`: compare hashes.
#[derive(Clone)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// The first token of a new family for a session of the user with tag
    /// `shard`.
    pub fn generate(shard: &ShardTag) -> Self {
        let family: [u8; 16] = random_bytes();
        Self::assemble(
            shard.as_str(),
            &URL_SAFE_NO_PAD.encode(family),
            &random_bytes(),
        )
    }

    /// The next token of the same family, with a fresh secret.
    pub fn successor(&self) -> Self {
        self.with_secret(&random_bytes())
    }

    fn with_secret(&self, secret: &[u8; 32]) -> Self {
        Self::assemble(
            &self.0[REFRESH_PREFIX.len()..FAMILY_START],
            &self.0[FAMILY_START..SECRET_START],
            secret,
        )
    }

    fn assemble(shard: &str, family: &str, secret: &[u8; 32]) -> Self {
        Self(format!(
            "{REFRESH_PREFIX}{shard}{family}{}",
            URL_SAFE_NO_PAD.encode(secret)
        ))
    }

    /// Parse untrusted text; `None` unless it has the exact shape.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = s.len() == REFRESH_TOKEN_LEN
            && s.is_ascii()
            && s.starts_with(REFRESH_PREFIX)
            && is_canonical_base64url(&s[REFRESH_PREFIX.len()..FAMILY_START], 8)
            && is_canonical_base64url(&s[FAMILY_START..SECRET_START], 16)
            && is_canonical_base64url(&s[SECRET_START..], 32);
        ok.then(|| Self(s.to_owned()))
    }

    /// The token text, to give to the client. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The shard tag of the session's user.
    pub fn shard(&self) -> ShardTag {
        ShardTag::from_valid(&self.0[REFRESH_PREFIX.len()..FAMILY_START])
    }

    /// What a store files the session's family under (in the slot an opaque
    /// session keeps its token digest in).
    pub fn family_digest(&self) -> TokenDigest {
        let mut h = Sha256::new();
        h.update(FAMILY_LABEL);
        h.update(&self.0.as_bytes()[..SECRET_START]);
        TokenDigest {
            shard: self.shard(),
            hash: TokenHash::from_bytes(h.finalize().into()),
        }
    }

    /// SHA-256 of the whole token: what a store compares.
    pub fn hash(&self) -> TokenHash {
        TokenHash::from_bytes(Sha256::digest(self.0.as_bytes()).into())
    }

    fn wrapping_key(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(WRAP_LABEL);
        h.update(self.0.as_bytes());
        h.finalize().into()
    }

    /// `successor`'s secret encrypted under a key only the holder of `self`
    /// can derive (a one-time pad: every token wraps at most one successor).
    pub fn wrap(&self, successor: &RefreshToken) -> [u8; 32] {
        let mut secret = successor.secret();
        for (b, k) in secret.iter_mut().zip(self.wrapping_key()) {
            *b ^= k;
        }
        secret
    }

    /// The successor that [`RefreshToken::wrap`] wrapped into `wrapped`.
    pub fn unwrap_successor(&self, wrapped: &[u8; 32]) -> RefreshToken {
        let mut secret = *wrapped;
        for (b, k) in secret.iter_mut().zip(self.wrapping_key()) {
            *b ^= k;
        }
        self.with_secret(&secret)
    }

    fn secret(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // Parsed or generated tokens always hold a canonical 32-byte secret.
        if let Ok(bytes) = URL_SAFE_NO_PAD.decode(&self.0[SECRET_START..])
            && bytes.len() == 32
        {
            out.copy_from_slice(&bytes);
        }
        out
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_parse_and_family() {
        let shard = ShardTag::of_user("u1");
        let t = RefreshToken::generate(&shard);
        assert!(t.expose().starts_with("sdr_"));
        assert_eq!(t.expose().len(), REFRESH_TOKEN_LEN);
        let back = RefreshToken::parse(t.expose()).unwrap();
        assert_eq!(back.hash(), t.hash());
        assert_eq!(t.shard(), shard);
        let next = t.successor();
        assert_eq!(next.family_digest(), t.family_digest());
        assert_ne!(next.hash(), t.hash());
        assert_ne!(
            RefreshToken::generate(&shard).family_digest(),
            t.family_digest()
        );
        // The family digest is never the hash of any token.
        assert_ne!(t.family_digest().hash, t.hash());
    }

    #[test]
    fn only_the_predecessor_unwraps_the_successor() {
        let t = RefreshToken::generate(&ShardTag::of_user("u1"));
        let next = t.successor();
        let wrapped = t.wrap(&next);
        assert_eq!(t.unwrap_successor(&wrapped).hash(), next.hash());
        let other = t.successor();
        assert_ne!(other.unwrap_successor(&wrapped).hash(), next.hash());
        assert_ne!(&wrapped[..], &next.secret()[..]);
    }

    #[test]
    fn garbage_never_parses() {
        let valid = RefreshToken::generate(&ShardTag::of_user("u"))
            .expose()
            .to_owned();
        for bad in [
            String::new(),
            valid[..valid.len() - 1].to_owned(),
            format!("{valid}A"),
            valid.replacen("sdr_", "sds_", 1),
            format!("sdr_{}", "é".repeat(38)),
        ] {
            assert!(RefreshToken::parse(&bad).is_none(), "{bad}");
        }
        assert!(!format!("{:?}", RefreshToken::parse(&valid).unwrap()).contains(&valid[4..]));
    }
}
