//! [`KeyRing`]: the signing keys in force, loaded from the key file or from an
//! operator's PEM file, with rotation, the JWKS document and signing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::algorithm::Algorithm;
use crate::claims::AccessClaims;
use crate::error::KeyError;
use crate::keyfile::{self, KEY_FILE_NAME, StoredKey, WriteMode, Written};
use crate::keys::KeyPair;

/// One key of a ring.
#[derive(Clone)]
pub(crate) struct RingKey {
    pub(crate) kid: String,
    pub(crate) created_at: u64,
    pub(crate) not_before: u64,
    pub(crate) retired_at: Option<u64>,
    pub(crate) pair: KeyPair,
}

impl RingKey {
    /// Whether a verifier at `now` should know this key: a key waiting to
    /// sign (published ahead), the signer, and a retired key while tokens it
    /// signed before retirement may still be unexpired.
    pub(crate) fn published_at(&self, now: u64, access_ttl: Duration) -> bool {
        match self.retired_at {
            None => true,
            Some(retired) => retired.saturating_add(ttl_secs(access_ttl)) > now,
        }
    }
}

/// Where a ring's keys came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    KeyFile,
    Pem,
}

/// The signing keys in force, as loaded from the key file.
///
/// The last key is the current signer; the others are retired keys kept so
/// that tokens they signed stay verifiable until they expire.
#[derive(Clone)]
pub struct KeyRing {
    /// Oldest first, current last; never empty.
    keys: Vec<RingKey>,
    source: Source,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct Entry<'a>(&'a RingKey);
        impl std::fmt::Debug for Entry<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("Key")
                    .field("kid", &self.0.kid)
                    .field("alg", &self.0.pair.algorithm())
                    .field("created_at", &self.0.created_at)
                    .field("not_before", &self.0.not_before)
                    .field("retired_at", &self.0.retired_at)
                    .finish_non_exhaustive()
            }
        }
        f.debug_struct("KeyRing")
            .field("newest_kid", &self.newest().kid)
            .field("keys", &self.keys.iter().map(Entry).collect::<Vec<_>>())
            .field("source", &self.source)
            .finish()
    }
}

/// `access_ttl` in whole seconds, rounded up (a token may live that long).
fn ttl_secs(access_ttl: Duration) -> u64 {
    let secs = access_ttl.as_secs();
    if access_ttl.subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    }
}

fn crypto(e: String) -> KeyError {
    KeyError::Crypto(e)
}

fn fresh_key(alg: Algorithm, now: u64, not_before: u64) -> Result<StoredKey, KeyError> {
    let pair = KeyPair::generate(alg).map_err(crypto)?;
    let pem = pair.to_pem().map_err(crypto)?;
    Ok(StoredKey {
        kid: pair.thumbprint(),
        alg,
        created_at: now,
        not_before,
        retired_at: None,
        pair,
        pem,
    })
}

#[derive(Serialize)]
struct Header<'a> {
    typ: &'static str,
    alg: &'static str,
    kid: &'a str,
}

impl KeyRing {
    fn from_stored(keys: Vec<StoredKey>) -> KeyRing {
        KeyRing {
            keys: keys
                .into_iter()
                .map(|k| RingKey {
                    kid: k.kid,
                    created_at: k.created_at,
                    not_before: k.not_before,
                    retired_at: k.retired_at,
                    pair: k.pair,
                })
                .collect(),
            source: Source::KeyFile,
        }
    }

    /// The key file inside `dir` (`<dir>/signing_keys.json`), so the server can watch its mtime.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(KEY_FILE_NAME)
    }

    /// Load `<dir>/signing_keys.json`, or create it (dir created 0700 if
    /// missing, file written 0600 atomically: temp file + rename) with one
    /// fresh key of `alg`.
    ///
    /// If the file exists its keys are used whatever `alg` is; change the
    /// algorithm with [`KeyRing::rotate`]. If two processes create the file at
    /// once, both end up with the one that was written first.
    pub fn load_or_create(dir: &Path, alg: Algorithm, now: u64) -> Result<KeyRing, KeyError> {
        let path = Self::path(dir);
        match keyfile::read(&path) {
            Ok(keys) => return Ok(Self::from_stored(keys)),
            Err(KeyError::Missing { .. }) => {}
            Err(e) => return Err(e),
        }
        keyfile::ensure_dir(dir)?;
        let key = fresh_key(alg, now, now)?;
        let keys = vec![key];
        let contents = keyfile::render(&keys)?;
        match keyfile::write(&path, &contents, WriteMode::CreateNew)? {
            Written::Done => Ok(Self::from_stored(keys)),
            Written::AlreadyExists => Self::load(dir),
        }
    }

    /// Load `<dir>/signing_keys.json`; [`KeyError::Missing`] if it does not exist.
    pub fn load(dir: &Path) -> Result<KeyRing, KeyError> {
        keyfile::read(&Self::path(dir)).map(Self::from_stored)
    }

    /// One key from a PEM (PKCS#8; for ES256 also SEC1) private key file given
    /// by the operator (kid = RFC 7638 SHA-256 thumbprint); such a ring cannot
    /// be rotated.
    pub fn from_pem_file(path: &Path, alg: Algorithm) -> Result<KeyRing, KeyError> {
        let external = |reason: String| KeyError::External {
            path: path.to_owned(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| external(e.to_string()))?;
        if meta.len() > 64 * 1024 {
            return Err(external("larger than 64 KiB: not a private key".to_owned()));
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| external(e.to_string()))?);
        let text =
            std::str::from_utf8(&bytes).map_err(|_| external("not a PEM file".to_owned()))?;
        let pair = KeyPair::from_pem(text, alg).map_err(|e| external(e.0))?;
        Ok(KeyRing {
            keys: vec![RingKey {
                kid: pair.thumbprint(),
                created_at: 0,
                not_before: 0,
                retired_at: None,
                pair,
            }],
            source: Source::Pem,
        })
    }

    /// Add a new key of `alg` to the file in `dir` that is published at once
    /// and signs from `now + delay`, when the previous signer retires;
    /// keys retired before `now - access_ttl` are dropped from the file.
    /// Returns the new ring and the new kid.
    ///
    /// The delay lets every verifier that caches the JWKS learn the new key
    /// before the first token it signs. Concurrent rotations of the same
    /// file are serialized by a lock file beside it, and the file is
    /// replaced atomically.
    pub fn rotate(
        dir: &Path,
        alg: Algorithm,
        access_ttl: Duration,
        now: u64,
        delay: Duration,
    ) -> Result<(KeyRing, String), KeyError> {
        let path = Self::path(dir);
        let _lock = keyfile::lock(dir)?;
        let mut keys = keyfile::read(&path)?;
        let ttl = ttl_secs(access_ttl);
        let starts = now.saturating_add(delay.as_secs());
        for key in &mut keys {
            if key.retired_at.is_none() {
                // It signs until the new key starts; never before its own
                // start, even if the clock went back.
                key.retired_at = Some(starts.max(key.not_before));
            }
        }
        keys.retain(|k| k.retired_at.is_some_and(|r| r.saturating_add(ttl) > now));
        let last_start = keys.iter().map(|k| k.not_before).max().unwrap_or(0);
        let new = fresh_key(alg, now, starts.max(last_start))?;
        let kid = new.kid.clone();
        keys.push(new);
        let contents = keyfile::render(&keys)?;
        keyfile::write(&path, &contents, WriteMode::Replace)?;
        Ok((Self::from_stored(keys), kid))
    }

    /// The key id of the key that signs tokens issued at `now`.
    pub fn signing_kid(&self, now: u64) -> &str {
        &self.signer_at(now).kid
    }

    /// The key id of the newest key (it may not sign yet).
    pub fn newest_kid(&self) -> &str {
        &self.newest().kid
    }

    /// When the newest key starts (or started) to sign, unix seconds.
    pub fn newest_signs_from(&self) -> u64 {
        self.newest().not_before
    }

    /// The algorithm of the newest key.
    pub fn algorithm(&self) -> Algorithm {
        self.newest().pair.algorithm()
    }

    /// Whether this ring comes from the key file (and so can be rotated)
    /// rather than from an operator's PEM file.
    pub fn is_rotatable(&self) -> bool {
        self.source == Source::KeyFile
    }

    fn newest(&self) -> &RingKey {
        // `keys` is never empty: every constructor pushes at least one key.
        &self.keys[self.keys.len() - 1]
    }

    /// The newest key whose signing has started at `at` (the oldest key if
    /// none has, which a ring written by `rotate` never lacks).
    fn signer_at(&self, at: u64) -> &RingKey {
        self.keys
            .iter()
            .rev()
            .find(|k| k.not_before <= at)
            .unwrap_or(&self.keys[0])
    }

    pub(crate) fn find(&self, kid: &str) -> Option<&RingKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// Sign with the key that signs at `claims.iat`; the header has `alg`,
    /// `kid` and `typ: "JWT"`.
    ///
    /// Deterministic: the same claims always give the same token, also across
    /// a key rollover (a replayed refresh re-signs with its original key).
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        let key = self.signer_at(claims.iat);
        let header = Header {
            typ: "JWT",
            alg: key.pair.algorithm().as_str(),
            kid: &key.kid,
        };
        let header = serde_json::to_vec(&header)
            .map_err(|e| KeyError::Crypto(format!("encoding the token header: {e}")))?;
        let payload = serde_json::to_vec(claims)
            .map_err(|e| KeyError::Crypto(format!("encoding the token claims: {e}")))?;
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = key.pair.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// Public keys a verifier needs at `now`: keys waiting to sign, the
    /// signer, and every retired key with `retired_at + access_ttl > now`, as
    /// `{"keys": [...]}` with `kty`, `crv`, `x` (and `y`), `kid`, `alg` and
    /// `use: "sig"`; newest first.
    pub fn jwks(&self, now: u64, access_ttl: Duration) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .rev()
            .filter(|k| k.published_at(now, access_ttl))
            .map(|k| k.pair.public_jwk(&k.kid))
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
    use jsonwebtoken::{DecodingKey, EncodingKey, Validation, decode};

    fn claims(now: u64) -> AccessClaims {
        AccessClaims {
            sub: "user-1".into(),
            sid: "sess-1".into(),
            jti: "jti-1".into(),
            role: Some("admin".into()),
            iat: now,
            exp: now + 900,
            iss: "sessiond".into(),
            aud: "app".into(),
            auth_time: None,
            acr: None,
            amr: None,
        }
    }

    fn ring(alg: Algorithm) -> (tempfile::TempDir, KeyRing) {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load_or_create(dir.path(), alg, 1_000).unwrap();
        (dir, ring)
    }

    /// The path a third party takes: fetch the JWKS, pick the JWK by `kid`,
    /// `DecodingKey::from_jwk`, `jsonwebtoken::decode`.
    #[test]
    fn third_party_verifies_our_tokens_with_our_jwks() {
        let now = jsonwebtoken::get_current_timestamp();
        for alg in Algorithm::ALL {
            let (_dir, ring) = ring(alg);
            let token = ring.sign(&claims(now)).unwrap();
            let jwks: jsonwebtoken::jwk::JwkSet =
                serde_json::from_value(ring.jwks(now, Duration::from_secs(900))).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.typ.as_deref(), Some("JWT"));
            let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
            let key = DecodingKey::from_jwk(jwk).unwrap();
            let jalg = match alg {
                Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
                Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            };
            assert_eq!(header.alg, jalg);
            let mut validation = Validation::new(jalg);
            validation.set_issuer(&["sessiond"]);
            validation.set_audience(&["app"]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            let data = decode::<AccessClaims>(&token, &key, &validation).unwrap();
            assert_eq!(data.claims, claims(now));

            // A third party rejects a tampered token too.
            let mut bad = token.clone().into_bytes();
            let i = token.find('.').unwrap() + 3;
            bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
            let bad = String::from_utf8(bad).unwrap();
            assert!(decode::<AccessClaims>(&bad, &key, &validation).is_err());
        }
    }

    /// Our kid is the thumbprint jsonwebtoken computes for the same JWK, and the
    /// JWK we publish equals the one jsonwebtoken derives from the private key.
    #[test]
    fn kid_and_jwk_match_jsonwebtoken() {
        for alg in Algorithm::ALL {
            let (dir, ring) = ring(alg);
            let jwks = ring.jwks(1_000, Duration::from_secs(900));
            let jwk: Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
            let ours = jwks["keys"][0].clone();
            assert_eq!(ours["use"], "sig");
            assert_eq!(ours["alg"], alg.as_str());
            if alg == Algorithm::ES256 {
                // jsonwebtoken 11 computes thumbprints for EC and RSA keys only.
                assert_eq!(
                    jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
                    ring.newest_kid()
                );
            }
            let (enc, jalg) = their_key(dir.path(), alg);
            let theirs = serde_json::to_value(Jwk::from_encoding_key(&enc, jalg).unwrap()).unwrap();
            for member in ["x", "y", "crv", "kty", "alg"] {
                assert_eq!(theirs[member], ours[member], "{alg} {member}");
            }
        }
    }

    /// The ring's current private key as jsonwebtoken reads it from the file.
    fn their_key(dir: &Path, alg: Algorithm) -> (EncodingKey, jsonwebtoken::Algorithm) {
        let file: Value =
            serde_json::from_slice(&std::fs::read(KeyRing::path(dir)).unwrap()).unwrap();
        let pem = file["keys"][0]["private_key_pem"].as_str().unwrap();
        match alg {
            Algorithm::EdDSA => (
                EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
                jsonwebtoken::Algorithm::EdDSA,
            ),
            Algorithm::ES256 => (
                EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
                jsonwebtoken::Algorithm::ES256,
            ),
        }
    }

    /// Ed25519 tokens are byte-for-byte what `jsonwebtoken::encode` produces;
    /// ES256 tokens differ only where jsonwebtoken emits the high-S twin.
    #[test]
    fn tokens_match_jsonwebtoken_encode() {
        for alg in Algorithm::ALL {
            let (dir, ring) = ring(alg);
            let (enc, jalg) = their_key(dir.path(), alg);
            let mut header = jsonwebtoken::Header::new(jalg);
            header.kid = Some(ring.newest_kid().to_owned());
            for i in 0..20 {
                let c = claims(1_000 + i);
                let ours = ring.sign(&c).unwrap();
                let theirs = jsonwebtoken::encode(&header, &c, &enc).unwrap();
                let (ours_input, ours_sig) = ours.rsplit_once('.').unwrap();
                let (theirs_input, theirs_sig) = theirs.rsplit_once('.').unwrap();
                assert_eq!(ours_input, theirs_input);
                match alg {
                    Algorithm::EdDSA => assert_eq!(ours_sig, theirs_sig),
                    Algorithm::ES256 => {
                        let decode = |s: &str| {
                            p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap())
                                .unwrap()
                        };
                        let t = decode(theirs_sig);
                        assert_eq!(decode(ours_sig), t.normalize_s().unwrap_or(t));
                    }
                }
            }
        }
    }

    #[test]
    fn debug_never_shows_key_material() {
        for alg in Algorithm::ALL {
            let (dir, ring) = ring(alg);
            let file: Value =
                serde_json::from_slice(&std::fs::read(KeyRing::path(dir.path())).unwrap()).unwrap();
            let pem = file["keys"][0]["private_key_pem"].as_str().unwrap();
            let debug = format!("{ring:?} {ring:#?}");
            assert!(debug.contains(ring.newest_kid()));
            for line in pem.lines().filter(|l| !l.starts_with("-----")) {
                assert!(!debug.contains(line));
            }
            assert!(!debug.to_lowercase().contains("secret"));
        }
    }

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        assert_eq!(ttl_secs(Duration::from_millis(900)), 1);
        assert_eq!(ttl_secs(Duration::from_secs(900)), 900);
        assert_eq!(ttl_secs(Duration::MAX), u64::MAX);
    }
}
