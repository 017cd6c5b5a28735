//! Access tokens: signing and offline verification per token, for EdDSA and
//! ES256, next to the bare signature verification of the same bytes (the
//! floor any verifier pays).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use sessiond_jwt::{AccessClaims, Algorithm, KeyRing};

const TTL: Duration = Duration::from_secs(900);
const NOW: u64 = 1_800_000_000;

fn claims() -> AccessClaims {
    AccessClaims {
        sub: "alice".into(),
        sid: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        jti: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.7".into(),
        role: Some("staff".into()),
        iat: NOW,
        exp: NOW + TTL.as_secs(),
        iss: "sessiond".into(),
        aud: "sessiond".into(),
        auth_time: Some(1_700_000_000),
        acr: Some("aal2".into()),
        amr: Some(vec!["pwd".into(), "otp".into()]),
    }
}

fn tokens(c: &mut Criterion) {
    let mut group = c.benchmark_group("jwt");
    for alg in [Algorithm::EdDSA, Algorithm::ES256] {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load_or_create(dir.path(), alg, NOW).unwrap();
        let token = ring.sign(&claims()).unwrap();
        group.bench_function(format!("sign/{}", alg.as_str()), |b| {
            b.iter(|| ring.sign(&claims()).unwrap())
        });
        group.bench_function(format!("verify/{}", alg.as_str()), |b| {
            b.iter(|| {
                ring.verify(&token, "sessiond", "sessiond", NOW + 1, TTL)
                    .unwrap()
            })
        });
        // The floor: verifying the signature alone with the JWKS key.
        let jwk = ring.jwks(NOW, TTL)["keys"][0].clone();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        match alg {
            Algorithm::EdDSA => {
                use ed25519_dalek::{Signature, Verifier, VerifyingKey};
                let key = VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
                let sig = Signature::from_slice(&sig).unwrap();
                group.bench_function("ceiling_signature_only/EdDSA", |b| {
                    b.iter(|| key.verify(input.as_bytes(), &sig).unwrap())
                });
            }
            Algorithm::ES256 => {
                use p256::ecdsa::signature::Verifier;
                use p256::ecdsa::{Signature, VerifyingKey};
                let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
                let mut sec1 = vec![4u8];
                sec1.extend(x);
                sec1.extend(y);
                let key = VerifyingKey::from_sec1_bytes(&sec1).unwrap();
                let sig = Signature::from_slice(&sig).unwrap();
                group.bench_function("ceiling_signature_only/ES256", |b| {
                    b.iter(|| key.verify(input.as_bytes(), &sig).unwrap())
                });
            }
        }
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = tokens }
criterion_main!(benches);
