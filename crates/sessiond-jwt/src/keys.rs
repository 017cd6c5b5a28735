//! One signing key pair: generation, PKCS#8 PEM encoding, the public JWK and
//! its RFC 7638 thumbprint, and raw JWS signing and verification.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, KeypairBytes};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::LineEnding;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::algorithm::Algorithm;

/// Why a PEM private key could not be used (no key material in the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PemError(pub(crate) String);

/// A private signing key of one algorithm, with its public half.
#[derive(Clone)]
pub(crate) enum KeyPair {
    Ed25519 {
        signing: ed25519_dalek::SigningKey,
    },
    P256 {
        signing: p256::ecdsa::SigningKey,
        verifying: p256::ecdsa::VerifyingKey,
    },
}

impl KeyPair {
    /// A fresh key from the operating system's CSPRNG.
    pub(crate) fn generate(alg: Algorithm) -> Result<KeyPair, String> {
        let mut seed = Zeroizing::new([0u8; 32]);
        match alg {
            Algorithm::EdDSA => {
                getrandom::fill(seed.as_mut_slice()).map_err(|e| format!("randomness: {e}"))?;
                Ok(KeyPair::Ed25519 {
                    signing: ed25519_dalek::SigningKey::from_bytes(&seed),
                })
            }
            Algorithm::ES256 => {
                // A uniformly random 256-bit string is a valid scalar except with
                // probability about 2^-32; draw again in that case.
                for _ in 0..16 {
                    getrandom::fill(seed.as_mut_slice()).map_err(|e| format!("randomness: {e}"))?;
                    if let Ok(secret) = p256::SecretKey::from_slice(seed.as_slice()) {
                        return Ok(KeyPair::from_p256(&secret));
                    }
                }
                Err("could not draw a valid P-256 private key".to_owned())
            }
        }
    }

    fn from_p256(secret: &p256::SecretKey) -> KeyPair {
        let signing = p256::ecdsa::SigningKey::from(secret);
        let verifying = *signing.verifying_key();
        KeyPair::P256 { signing, verifying }
    }

    /// Parse a PEM private key for `alg`: PKCS#8 (`BEGIN PRIVATE KEY`), or for
    /// ES256 also SEC1 (`BEGIN EC PRIVATE KEY`).
    pub(crate) fn from_pem(pem: &str, alg: Algorithm) -> Result<KeyPair, PemError> {
        match alg {
            Algorithm::EdDSA => ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
                .map(|signing| KeyPair::Ed25519 { signing })
                .map_err(|e| PemError(format!("not a PKCS#8 Ed25519 private key ({e})"))),
            Algorithm::ES256 => match p256::SecretKey::from_pkcs8_pem(pem) {
                Ok(secret) => Ok(KeyPair::from_p256(&secret)),
                Err(pkcs8_err) => p256::SecretKey::from_sec1_pem(pem)
                    .map(|secret| KeyPair::from_p256(&secret))
                    .map_err(|_| PemError(format!("not a PKCS#8 P-256 private key ({pkcs8_err})"))),
            },
        }
    }

    /// The private key as PKCS#8 PEM (v1, no embedded public key, as OpenSSL writes it).
    pub(crate) fn to_pem(&self) -> Result<Zeroizing<String>, String> {
        match self {
            KeyPair::Ed25519 { signing } => {
                let bytes = KeypairBytes {
                    secret_key: signing.to_bytes(),
                    public_key: None,
                };
                bytes
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| format!("encoding Ed25519 key: {e}"))
            }
            KeyPair::P256 { signing, .. } => p256::SecretKey::from(signing.as_nonzero_scalar())
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| format!("encoding P-256 key: {e}")),
        }
    }

    /// The algorithm this key signs with.
    pub(crate) fn algorithm(&self) -> Algorithm {
        match self {
            KeyPair::Ed25519 { .. } => Algorithm::EdDSA,
            KeyPair::P256 { .. } => Algorithm::ES256,
        }
    }

    /// The required public members of the JWK, as base64url strings:
    /// `(crv, kty, x, y)`.
    fn public_members(&self) -> (&'static str, &'static str, String, Option<String>) {
        match self {
            KeyPair::Ed25519 { signing } => (
                "Ed25519",
                "OKP",
                URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes()),
                None,
            ),
            KeyPair::P256 { verifying, .. } => {
                let point = verifying.to_encoded_point(false);
                let coord = |c: Option<&p256::FieldBytes>| {
                    c.map(|b| URL_SAFE_NO_PAD.encode(b)).unwrap_or_default()
                };
                ("P-256", "EC", coord(point.x()), Some(coord(point.y())))
            }
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): the key id.
    pub(crate) fn thumbprint(&self) -> String {
        // RFC 7638 §3.2: the required members only, in lexicographic order, no whitespace.
        let (crv, kty, x, y) = self.public_members();
        let canonical = match y {
            None => format!(r#"{{"crv":"{crv}","kty":"{kty}","x":"{x}"}}"#),
            Some(y) => format!(r#"{{"crv":"{crv}","kty":"{kty}","x":"{x}","y":"{y}"}}"#),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The public JWK (RFC 7517) with `kid`, `alg` and `use: "sig"`.
    pub(crate) fn public_jwk(&self, kid: &str) -> Value {
        let alg = self.algorithm().as_str();
        match self.public_members() {
            (crv, kty, x, None) => {
                json!({"kty": kty, "crv": crv, "x": x, "kid": kid, "alg": alg, "use": "sig"})
            }
            (crv, kty, x, Some(y)) => {
                json!({"kty": kty, "crv": crv, "x": x, "y": y, "kid": kid, "alg": alg, "use": "sig"})
            }
        }
    }

    /// Sign `message`, returning the raw JWS signature bytes.
    ///
    /// Both algorithms are deterministic. ES256 signatures are normalized to
    /// low-S so that every message has exactly one signature we accept.
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            KeyPair::Ed25519 { signing } => ed25519_dalek::Signer::sign(signing, message)
                .to_bytes()
                .to_vec(),
            KeyPair::P256 { signing, .. } => {
                let sig: p256::ecdsa::Signature = signing.sign(message);
                sig.normalize_s().unwrap_or(sig).to_bytes().to_vec()
            }
        }
    }

    /// Check a raw JWS signature over `message`.
    ///
    /// Ed25519 uses strict verification; ES256 rejects high-S signatures, so a
    /// valid token cannot be turned into a second valid token.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            KeyPair::Ed25519 { signing } => {
                let Ok(bytes) = <&[u8; 64]>::try_from(signature) else {
                    return false;
                };
                let sig = ed25519_dalek::Signature::from_bytes(bytes);
                signing.verifying_key().verify_strict(message, &sig).is_ok()
            }
            KeyPair::P256 { verifying, .. } => {
                let Ok(sig) = p256::ecdsa::Signature::from_slice(signature) else {
                    return false;
                };
                if sig.normalize_s().is_some() {
                    return false;
                }
                verifying.verify(message, &sig).is_ok()
            }
        }
    }
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("alg", &self.algorithm())
            .field("thumbprint", &self.thumbprint())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_the_key() {
        for alg in Algorithm::ALL {
            let key = KeyPair::generate(alg).unwrap();
            let pem = key.to_pem().unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let again = KeyPair::from_pem(&pem, alg).unwrap();
            assert_eq!(again.thumbprint(), key.thumbprint());
            assert_eq!(again.sign(b"m"), key.sign(b"m"));
        }
    }

    #[test]
    fn pem_of_the_other_algorithm_is_refused() {
        let ed = KeyPair::generate(Algorithm::EdDSA)
            .unwrap()
            .to_pem()
            .unwrap();
        let ec = KeyPair::generate(Algorithm::ES256)
            .unwrap()
            .to_pem()
            .unwrap();
        assert!(KeyPair::from_pem(&ed, Algorithm::ES256).is_err());
        assert!(KeyPair::from_pem(&ec, Algorithm::EdDSA).is_err());
        assert!(KeyPair::from_pem("not a pem", Algorithm::EdDSA).is_err());
    }

    #[test]
    fn error_text_never_contains_the_key() {
        let ed = KeyPair::generate(Algorithm::EdDSA)
            .unwrap()
            .to_pem()
            .unwrap();
        let err = KeyPair::from_pem(&ed, Algorithm::ES256).unwrap_err();
        let body: String = ed.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!err.0.contains(&body));
    }

    #[test]
    fn generated_keys_differ() {
        for alg in Algorithm::ALL {
            let a = KeyPair::generate(alg).unwrap();
            let b = KeyPair::generate(alg).unwrap();
            assert_ne!(a.thumbprint(), b.thumbprint());
        }
    }

    #[test]
    fn signatures_are_deterministic_and_es256_is_low_s() {
        for alg in Algorithm::ALL {
            let key = KeyPair::generate(alg).unwrap();
            for i in 0..64u8 {
                let msg = [i; 17];
                let sig = key.sign(&msg);
                assert_eq!(sig.len(), 64);
                assert_eq!(sig, key.sign(&msg));
                assert!(key.verify(&msg, &sig));
            }
        }
    }

    #[test]
    fn es256_high_s_twin_is_rejected() {
        let key = KeyPair::generate(Algorithm::ES256).unwrap();
        let sig = key.sign(b"message");
        let parsed = p256::ecdsa::Signature::from_slice(&sig).unwrap();
        let (r, s) = parsed.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r, -s).unwrap();
        let KeyPair::P256 { verifying, .. } = &key else {
            unreachable!()
        };
        // The twin is mathematically valid ...
        assert!(verifying.verify(b"message", &high).is_ok());
        // ... but not accepted.
        assert!(!key.verify(b"message", &high.to_bytes()));
    }

    #[test]
    fn thumbprint_matches_rfc_8037_example() {
        // RFC 8037 Appendix A.3: thumbprint of the example Ed25519 key.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
                   -----END PRIVATE KEY-----\n";
        let key = KeyPair::from_pem(pem, Algorithm::EdDSA).unwrap();
        assert_eq!(
            key.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
