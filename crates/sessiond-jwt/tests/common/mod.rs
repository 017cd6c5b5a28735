//! Helpers shared by the integration tests: fixed claims, a key ring in a
//! temporary directory, and a signer for hand-made (hostile) tokens.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use p256::ecdsa::signature::Signer as _;
use serde_json::{Value, json};
use sessiond_jwt::{AccessClaims, Algorithm, KeyRing};

pub const NOW: u64 = 1_700_000_000;
pub const TTL: Duration = Duration::from_secs(900);
pub const ISS: &str = "sessiond";
pub const AUD: &str = "my-app";

pub fn claims() -> AccessClaims {
    AccessClaims {
        sub: "user-42".into(),
        sid: "s_abc".into(),
        jti: "j_123".into(),
        role: None,
        iat: NOW,
        exp: NOW + TTL.as_secs(),
        iss: ISS.into(),
        aud: AUD.into(),
        auth_time: Some(1_700_000_000),
        acr: Some("aal2".into()),
        amr: Some(vec!["pwd".into(), "otp".into()]),
    }
}

pub fn claims_json() -> Value {
    serde_json::to_value(claims()).unwrap()
}

pub fn new_ring(alg: Algorithm) -> (tempfile::TempDir, KeyRing) {
    let dir = tempfile::tempdir().unwrap();
    let ring = KeyRing::load_or_create(dir.path(), alg, NOW).unwrap();
    (dir, ring)
}

pub fn verify(ring: &KeyRing, token: &str) -> Result<AccessClaims, sessiond_jwt::VerifyError> {
    ring.verify(token, ISS, AUD, NOW, TTL)
}

/// The PEM of the key with `kid` in the key file of `dir`.
pub fn pem_of(dir: &Path, kid: &str) -> String {
    let file: Value = serde_json::from_slice(&std::fs::read(KeyRing::path(dir)).unwrap()).unwrap();
    file["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()["private_key_pem"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Sign arbitrary header and payload JSON with a PEM private key, the way a
/// correct signer would (ES256 low-S), so tests can build tokens that are
/// validly signed but wrong in some other way.
pub fn sign_raw(pem: &str, alg: Algorithm, header: &Value, payload: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(header).unwrap()),
        b64(&serde_json::to_vec(payload).unwrap())
    );
    let sig = sign_bytes(pem, alg, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

pub fn sign_bytes(pem: &str, alg: Algorithm, message: &[u8]) -> Vec<u8> {
    match alg {
        Algorithm::EdDSA => {
            let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem).unwrap();
            ed25519_dalek::Signer::sign(&key, message)
                .to_bytes()
                .to_vec()
        }
        Algorithm::ES256 => {
            let secret =
                <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem).unwrap();
            let key = p256::ecdsa::SigningKey::from(&secret);
            let sig: p256::ecdsa::Signature = key.sign(message);
            sig.normalize_s().unwrap_or(sig).to_bytes().to_vec()
        }
    }
}

pub fn header(alg: &str, kid: &str) -> Value {
    json!({"typ": "JWT", "alg": alg, "kid": kid})
}
