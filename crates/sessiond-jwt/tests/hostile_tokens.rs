//! Hostile and broken tokens: every one is rejected with a `VerifyError`,
//! never accepted and never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use common::*;
use hmac_check::hs256;
use proptest::prelude::*;
use serde_json::json;
use sessiond_jwt::{Algorithm, KeyRing, VerifyError};

/// A minimal HS256 signer, so that we can forge "HMAC with the public key as
/// secret" tokens (the classic algorithm-confusion attack).
mod hmac_check {
    use sha2::{Digest as _, Sha256};

    pub fn hs256(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
        let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
        let ih = Sha256::new()
            .chain_update(&inner)
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(&outer)
            .chain_update(ih)
            .finalize()
            .to_vec()
    }
}

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

fn rejected(ring: &KeyRing, token: &str) -> VerifyError {
    match verify(ring, token) {
        Ok(claims) => panic!("accepted {token:?}: {claims:?}"),
        Err(e) => e,
    }
}

#[test]
fn hmac_helper_matches_jsonwebtoken() {
    let key = b"secret key";
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims_json(),
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    assert_eq!(b64(&hs256(key, input.as_bytes())), sig);
}

#[test]
fn structural_garbage() {
    for alg in Algorithm::ALL {
        let (_dir, ring) = new_ring(alg);
        let good = ring.sign(&claims()).unwrap();
        let [h, p, s] = <[String; 3]>::try_from(segments(&good)).unwrap();

        let cases: Vec<(String, VerifyError)> = vec![
            (String::new(), VerifyError::Malformed),
            (".".into(), VerifyError::Malformed),
            ("..".into(), VerifyError::Malformed),
            ("...".into(), VerifyError::Malformed),
            (h.clone(), VerifyError::Malformed),
            (format!("{h}.{p}"), VerifyError::Malformed),
            (format!("{h}.{p}."), VerifyError::Malformed),
            (format!("{h}.{p}.{s}.{s}"), VerifyError::Malformed),
            (format!("{h}.{p}.{s}."), VerifyError::Malformed),
            (format!(".{h}.{p}.{s}"), VerifyError::Malformed),
            (format!("{h}..{s}"), VerifyError::Malformed),
            (format!(".{p}.{s}"), VerifyError::Malformed),
            // Bad base64 in each segment.
            (format!("{h}!.{p}.{s}"), VerifyError::Malformed),
            (format!("{h}.{p}*.{s}"), VerifyError::Malformed),
            (format!("{h}.{p}.{s}$"), VerifyError::Malformed),
            (format!("{h}=.{p}.{s}"), VerifyError::Malformed),
            (format!("{h}.{p}.{s}=="), VerifyError::Malformed),
            (format!("{h}.{p}.A"), VerifyError::Malformed),
            // Standard (non-URL) alphabet and padding.
            (
                format!(
                    "{}.{p}.{s}",
                    STANDARD.encode(URL_SAFE_NO_PAD.decode(&h).unwrap())
                ),
                VerifyError::Malformed,
            ),
            // Whitespace around or inside.
            (format!(" {good}"), VerifyError::Malformed),
            (format!("{good}\n"), VerifyError::Malformed),
            (format!("{h}.{p} .{s}"), VerifyError::Malformed),
            // Header that is not JSON, or JSON but not an object.
            (
                format!("{}.{p}.{s}", b64(b"not json")),
                VerifyError::Malformed,
            ),
            (format!("{}.{p}.{s}", b64(b"[]")), VerifyError::Malformed),
            (format!("{}.{p}.{s}", b64(b"{}")), VerifyError::Malformed),
            (
                format!("{}.{p}.{s}", b64(&[0xff, 0xfe])),
                VerifyError::Malformed,
            ),
            // Non-ASCII.
            (format!("{h}.{p}.{s}é"), VerifyError::Malformed),
        ];
        for (token, expected) in cases {
            assert_eq!(verify(&ring, &token), Err(expected), "{token:?}");
        }
    }
}

#[test]
fn base64_with_padding_or_trailing_bits_is_refused() {
    let (_dir, ring) = new_ring(Algorithm::EdDSA);
    let good = ring.sign(&claims()).unwrap();
    let [h, p, s] = <[String; 3]>::try_from(segments(&good)).unwrap();
    // The padded form of the signature decodes to the same bytes, but is not canonical.
    let padded = URL_SAFE.encode(URL_SAFE_NO_PAD.decode(&s).unwrap());
    assert_ne!(padded, s);
    assert_eq!(
        verify(&ring, &format!("{h}.{p}.{padded}")),
        Err(VerifyError::Malformed)
    );
    // 64 bytes encode to 86 characters with 4 unused trailing bits; setting them
    // must not yield a second valid token.
    let last = s.chars().last().unwrap();
    let idx = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        .find(last)
        .unwrap();
    let mut alt = s.clone();
    alt.pop();
    alt.push(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            .chars()
            .nth(idx | 1)
            .unwrap(),
    );
    if alt != s {
        assert!(verify(&ring, &format!("{h}.{p}.{alt}")).is_err());
    }
}

#[test]
fn oversized_tokens_are_rejected_early() {
    let (_dir, ring) = new_ring(Algorithm::EdDSA);
    let huge_header = format!(
        "{}.{}.{}",
        b64(format!(r#"{{"alg":"EdDSA","kid":"{}"}}"#, "k".repeat(100 * 1024)).as_bytes()),
        b64(&serde_json::to_vec(&claims_json()).unwrap()),
        b64(&[0u8; 64])
    );
    assert!(huge_header.len() > 100 * 1024);
    assert_eq!(verify(&ring, &huge_header), Err(VerifyError::TooLarge));
    assert_eq!(
        verify(&ring, &"a".repeat(8 * 1024 + 1)),
        Err(VerifyError::TooLarge)
    );
    assert_eq!(
        verify(&ring, &".".repeat(1 << 20)),
        Err(VerifyError::TooLarge)
    );
    // Exactly at the limit is parsed (and then fails for another reason).
    assert_eq!(
        verify(&ring, &"a".repeat(8 * 1024)),
        Err(VerifyError::Malformed)
    );
}

#[test]
fn alg_none_is_rejected() {
    for alg in Algorithm::ALL {
        let (_dir, ring) = new_ring(alg);
        let kid = ring.newest_kid().to_owned();
        let payload = b64(&serde_json::to_vec(&claims_json()).unwrap());
        for none in ["none", "None", "NONE", "nOnE"] {
            for head in [
                json!({"alg": none}),
                json!({"alg": none, "kid": kid, "typ": "JWT"}),
            ] {
                let h = b64(&serde_json::to_vec(&head).unwrap());
                for token in [
                    format!("{h}.{payload}."),
                    format!("{h}.{payload}.{}", b64(b"x")),
                ] {
                    let err = rejected(&ring, &token);
                    assert!(
                        matches!(
                            err,
                            VerifyError::Malformed | VerifyError::UnsupportedAlgorithm
                        ),
                        "{err:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn hs256_with_the_public_key_as_secret_is_rejected() {
    for alg in Algorithm::ALL {
        let (_dir, ring) = new_ring(alg);
        let kid = ring.newest_kid().to_owned();
        let jwks = ring.jwks(NOW, TTL);
        let jwk = &jwks["keys"][0];
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        let mut secrets: Vec<Vec<u8>> = vec![
            x.clone(),
            jwk["x"].as_str().unwrap().as_bytes().to_vec(),
            serde_json::to_vec(jwk).unwrap(),
            serde_json::to_vec(&jwks).unwrap(),
        ];
        if let Some(y) = jwk["y"].as_str() {
            let y = URL_SAFE_NO_PAD.decode(y).unwrap();
            let mut sec1 = vec![4u8];
            sec1.extend_from_slice(&x);
            sec1.extend_from_slice(&y);
            secrets.push(sec1);
        }
        // The SubjectPublicKeyInfo PEM of the public key.
        let spki_pem = match alg {
            Algorithm::EdDSA => {
                use ed25519_dalek::pkcs8::EncodePublicKey as _;
                ed25519_dalek::VerifyingKey::from_bytes(&x.clone().try_into().unwrap())
                    .unwrap()
                    .to_public_key_pem(p256::pkcs8::LineEnding::LF)
                    .unwrap()
            }
            Algorithm::ES256 => {
                use p256::pkcs8::EncodePublicKey as _;
                let mut sec1 = vec![4u8];
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(
                    &URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap(),
                );
                p256::PublicKey::from_sec1_bytes(&sec1)
                    .unwrap()
                    .to_public_key_pem(p256::pkcs8::LineEnding::LF)
                    .unwrap()
            }
        };
        secrets.push(spki_pem.into_bytes());

        for secret in &secrets {
            for hmac_alg in ["HS256", "HS384", "HS512"] {
                let head = b64(&serde_json::to_vec(&header(hmac_alg, &kid)).unwrap());
                let payload = b64(&serde_json::to_vec(&claims_json()).unwrap());
                let input = format!("{head}.{payload}");
                let token = format!("{input}.{}", b64(&hs256(secret, input.as_bytes())));
                assert_eq!(
                    verify(&ring, &token),
                    Err(VerifyError::UnsupportedAlgorithm),
                    "{hmac_alg}"
                );
            }
            // Even claiming the right alg, an HMAC is not a signature.
            let head = b64(&serde_json::to_vec(&header(alg.as_str(), &kid)).unwrap());
            let payload = b64(&serde_json::to_vec(&claims_json()).unwrap());
            let input = format!("{head}.{payload}");
            let token = format!("{input}.{}", b64(&hs256(secret, input.as_bytes())));
            assert_eq!(verify(&ring, &token), Err(VerifyError::BadSignature));
        }
    }
}

#[test]
fn other_algorithms_are_rejected() {
    let (dir, ring) = new_ring(Algorithm::EdDSA);
    let kid = ring.newest_kid().to_owned();
    let pem = pem_of(dir.path(), &kid);
    for other in [
        "RS256", "RS512", "PS256", "ES384", "ES512", "ES256K", "Ed25519", "EdDSA ", "eddsa", "",
    ] {
        let token = sign_raw(&pem, Algorithm::EdDSA, &header(other, &kid), &claims_json());
        assert_eq!(
            verify(&ring, &token),
            Err(VerifyError::UnsupportedAlgorithm),
            "{other:?}"
        );
    }
    for head in [
        json!({"alg": 1, "kid": kid}),
        json!({"alg": null, "kid": kid}),
        json!({"kid": kid}),
    ] {
        let token = sign_raw(&pem, Algorithm::EdDSA, &head, &claims_json());
        assert_eq!(verify(&ring, &token), Err(VerifyError::Malformed));
    }
}

#[test]
fn algorithm_must_match_the_key() {
    // An ES256 header on an EdDSA key, and the reverse.
    for alg in Algorithm::ALL {
        let (dir, ring) = new_ring(alg);
        let kid = ring.newest_kid().to_owned();
        let pem = pem_of(dir.path(), &kid);
        let other = match alg {
            Algorithm::EdDSA => Algorithm::ES256,
            Algorithm::ES256 => Algorithm::EdDSA,
        };
        // Signed correctly by the key, but the header lies about the algorithm.
        let token = sign_raw(&pem, alg, &header(other.as_str(), &kid), &claims_json());
        assert_eq!(verify(&ring, &token), Err(VerifyError::AlgorithmMismatch));
        // Signed by a key of the other algorithm, naming our kid.
        let (odir, oring) = new_ring(other);
        let opem = pem_of(odir.path(), oring.newest_kid());
        let token = sign_raw(&opem, other, &header(other.as_str(), &kid), &claims_json());
        assert_eq!(verify(&ring, &token), Err(VerifyError::AlgorithmMismatch));
    }
}

#[test]
fn key_id_problems() {
    for alg in Algorithm::ALL {
        let (dir, ring) = new_ring(alg);
        let kid = ring.newest_kid().to_owned();
        let pem = pem_of(dir.path(), &kid);
        let a = alg.as_str();
        let cases = [
            (json!({"typ": "JWT", "alg": a}), VerifyError::MissingKeyId),
            (
                json!({"typ": "JWT", "alg": a, "kid": "nope"}),
                VerifyError::UnknownKey,
            ),
            (
                json!({"typ": "JWT", "alg": a, "kid": ""}),
                VerifyError::UnknownKey,
            ),
            (
                json!({"typ": "JWT", "alg": a, "kid": kid.to_uppercase()}),
                VerifyError::UnknownKey,
            ),
            (
                json!({"typ": "JWT", "alg": a, "kid": format!("{kid} ")}),
                VerifyError::UnknownKey,
            ),
            (
                json!({"typ": "JWT", "alg": a, "kid": 5}),
                VerifyError::Malformed,
            ),
            (
                json!({"typ": "JWT", "alg": a, "kid": [kid]}),
                VerifyError::Malformed,
            ),
            (
                json!({"typ": "JWS", "alg": a, "kid": kid}),
                VerifyError::UnsupportedHeader,
            ),
            (
                json!({"typ": "JWT", "alg": a, "kid": kid, "crit": ["exp"], "exp": 1}),
                VerifyError::UnsupportedHeader,
            ),
            (
                json!({"typ": "JWT", "alg": a, "kid": kid, "b64": false, "crit": ["b64"]}),
                VerifyError::UnsupportedHeader,
            ),
        ];
        for (head, expected) in cases {
            let token = sign_raw(&pem, alg, &head, &claims_json());
            assert_eq!(verify(&ring, &token), Err(expected), "{head}");
        }
        // Duplicate header members are not accepted.
        let input = format!(
            "{}.{}",
            b64(format!(r#"{{"alg":"{a}","kid":"nope","kid":"{kid}"}}"#).as_bytes()),
            b64(&serde_json::to_vec(&claims_json()).unwrap())
        );
        let token = format!("{input}.{}", b64(&sign_bytes(&pem, alg, input.as_bytes())));
        assert_eq!(verify(&ring, &token), Err(VerifyError::Malformed));
        // Without typ, and with extra harmless members, a correct token is fine.
        let token = sign_raw(
            &pem,
            alg,
            &json!({"alg": a, "kid": kid, "x": 1}),
            &claims_json(),
        );
        assert_eq!(verify(&ring, &token).unwrap(), claims());
        // An embedded jwk / jku never replaces our key.
        let (edir, ering) = new_ring(alg);
        let epem = pem_of(edir.path(), ering.newest_kid());
        let jwk = ering.jwks(NOW, TTL)["keys"][0].clone();
        let head = json!({"alg": a, "kid": kid, "jwk": jwk, "jku": "https://evil.example/jwks"});
        let token = sign_raw(&epem, alg, &head, &claims_json());
        assert_eq!(verify(&ring, &token), Err(VerifyError::BadSignature));
    }
}

#[test]
fn same_kid_different_key_is_a_bad_signature() {
    for alg in Algorithm::ALL {
        let (_dir, ring) = new_ring(alg);
        let (odir, other) = new_ring(alg);
        let opem = pem_of(odir.path(), other.newest_kid());
        let token = sign_raw(
            &opem,
            alg,
            &header(alg.as_str(), ring.newest_kid()),
            &claims_json(),
        );
        assert_eq!(verify(&ring, &token), Err(VerifyError::BadSignature));
        // Our token's signature grafted onto another token, and the reverse.
        let ours = segments(&ring.sign(&claims()).unwrap());
        let theirs = segments(&token);
        let graft = format!("{}.{}.{}", theirs[0], theirs[1], ours[2]);
        assert_eq!(verify(&ring, &graft), Err(VerifyError::BadSignature));
        let empty_sig = format!("{}.{}.{}", ours[0], ours[1], b64(&[0u8; 64]));
        assert_eq!(verify(&ring, &empty_sig), Err(VerifyError::BadSignature));
        let short_sig = format!("{}.{}.{}", ours[0], ours[1], b64(&[1u8; 63]));
        assert_eq!(verify(&ring, &short_sig), Err(VerifyError::BadSignature));
        let long_sig = format!("{}.{}.{}", ours[0], ours[1], b64(&[1u8; 65]));
        assert_eq!(verify(&ring, &long_sig), Err(VerifyError::BadSignature));
        let ff_sig = format!("{}.{}.{}", ours[0], ours[1], b64(&[0xffu8; 64]));
        assert_eq!(verify(&ring, &ff_sig), Err(VerifyError::BadSignature));
    }
}

#[test]
fn es256_high_s_twin_of_a_valid_token_is_rejected() {
    let (_dir, ring) = new_ring(Algorithm::ES256);
    let token = ring.sign(&claims()).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
    let (r, s) = sig.split_scalars();
    let twin = p256::ecdsa::Signature::from_scalars(r, -s).unwrap();
    let forged = format!("{input}.{}", b64(&twin.to_bytes()));
    assert_ne!(forged, token);
    assert_eq!(verify(&ring, &forged), Err(VerifyError::BadSignature));
}

#[test]
fn one_changed_payload_byte_is_a_bad_signature() {
    for alg in Algorithm::ALL {
        let (_dir, ring) = new_ring(alg);
        let token = ring.sign(&claims()).unwrap();
        let [h, p, s] = <[String; 3]>::try_from(segments(&token)).unwrap();
        let mut payload = URL_SAFE_NO_PAD.decode(&p).unwrap();
        for i in 0..payload.len() {
            let mut changed = payload.clone();
            changed[i] ^= 0x01;
            let forged = format!("{h}.{}.{s}", b64(&changed));
            assert!(
                matches!(verify(&ring, &forged), Err(VerifyError::BadSignature)),
                "byte {i}"
            );
        }
        // And a meaningful change: another user.
        let text = String::from_utf8(payload.clone())
            .unwrap()
            .replace("user-42", "user-43");
        payload = text.into_bytes();
        let forged = format!("{h}.{}.{s}", b64(&payload));
        assert_eq!(verify(&ring, &forged), Err(VerifyError::BadSignature));
        // One changed header or signature character.
        for (seg, idx) in [(0usize, 3usize), (2, 5)] {
            let mut parts = segments(&token);
            let mut bytes = parts[seg].clone().into_bytes();
            bytes[idx] = if bytes[idx] == b'A' { b'B' } else { b'A' };
            parts[seg] = String::from_utf8(bytes).unwrap();
            assert!(verify(&ring, &parts.join(".")).is_err());
        }
    }
}

#[test]
fn claim_checks() {
    for alg in Algorithm::ALL {
        let (dir, ring) = new_ring(alg);
        let kid = ring.newest_kid().to_owned();
        let pem = pem_of(dir.path(), &kid);
        let head = header(alg.as_str(), &kid);
        let with = |edit: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
            let mut c = claims_json();
            edit(c.as_object_mut().unwrap());
            sign_raw(&pem, alg, &head, &c)
        };
        let cases: Vec<(String, VerifyError)> = vec![
            (
                with(&|c| {
                    c.remove("jti");
                }),
                VerifyError::MissingClaim("jti"),
            ),
            (
                with(&|c| {
                    c.remove("sid");
                }),
                VerifyError::MissingClaim("sid"),
            ),
            (
                with(&|c| {
                    c.remove("sub");
                }),
                VerifyError::MissingClaim("sub"),
            ),
            (
                with(&|c| {
                    c.remove("exp");
                }),
                VerifyError::MissingClaim("exp"),
            ),
            (
                with(&|c| {
                    c.remove("iat");
                }),
                VerifyError::MissingClaim("iat"),
            ),
            (
                with(&|c| {
                    c.remove("iss");
                }),
                VerifyError::MissingClaim("iss"),
            ),
            (
                with(&|c| {
                    c.remove("aud");
                }),
                VerifyError::MissingClaim("aud"),
            ),
            (
                with(&|c| {
                    c.insert("jti".into(), json!(""));
                }),
                VerifyError::MissingClaim("jti"),
            ),
            (
                with(&|c| {
                    c.insert("sid".into(), json!(""));
                }),
                VerifyError::MissingClaim("sid"),
            ),
            (
                with(&|c| {
                    c.insert("sub".into(), json!(""));
                }),
                VerifyError::MissingClaim("sub"),
            ),
            (
                with(&|c| {
                    c.insert("sub".into(), json!(null));
                }),
                VerifyError::MissingClaim("sub"),
            ),
            (
                with(&|c| {
                    c.insert("sub".into(), json!(42));
                }),
                VerifyError::InvalidClaim("sub"),
            ),
            (
                with(&|c| {
                    c.insert("jti".into(), json!(["a"]));
                }),
                VerifyError::InvalidClaim("jti"),
            ),
            (
                with(&|c| {
                    c.insert("role".into(), json!(1));
                }),
                VerifyError::InvalidClaim("role"),
            ),
            (
                with(&|c| {
                    c.insert("exp".into(), json!("9999999999"));
                }),
                VerifyError::InvalidClaim("exp"),
            ),
            (
                with(&|c| {
                    c.insert("exp".into(), json!(-1));
                }),
                VerifyError::InvalidClaim("exp"),
            ),
            (
                with(&|c| {
                    c.insert("exp".into(), json!(1.7e9));
                }),
                VerifyError::InvalidClaim("exp"),
            ),
            (
                with(&|c| {
                    c.insert("iat".into(), json!(true));
                }),
                VerifyError::InvalidClaim("iat"),
            ),
            (
                with(&|c| {
                    c.insert("iss".into(), json!("other"));
                }),
                VerifyError::WrongIssuer,
            ),
            (
                with(&|c| {
                    c.insert("iss".into(), json!("Sessiond"));
                }),
                VerifyError::WrongIssuer,
            ),
            (
                with(&|c| {
                    c.insert("iss".into(), json!([ISS]));
                }),
                VerifyError::InvalidClaim("iss"),
            ),
            (
                with(&|c| {
                    c.insert("aud".into(), json!("other"));
                }),
                VerifyError::WrongAudience,
            ),
            (
                with(&|c| {
                    c.insert("aud".into(), json!([AUD]));
                }),
                VerifyError::InvalidClaim("aud"),
            ),
            (
                with(&|c| {
                    c.insert("exp".into(), json!(NOW));
                }),
                VerifyError::Expired,
            ),
            (
                with(&|c| {
                    c.insert("exp".into(), json!(NOW - 1));
                }),
                VerifyError::Expired,
            ),
            (
                with(&|c| {
                    c.insert("exp".into(), json!(0));
                }),
                VerifyError::Expired,
            ),
            (
                with(&|c| {
                    c.insert("iat".into(), json!(NOW + 61));
                }),
                VerifyError::IssuedInFuture,
            ),
            (
                with(&|c| {
                    c.insert("iat".into(), json!(u64::MAX));
                }),
                VerifyError::IssuedInFuture,
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(verify(&ring, &token), Err(expected));
        }
        // Boundaries that pass: exp one second ahead, iat 60 s ahead, extra claims.
        for ok in [
            with(&|c| {
                c.insert("exp".into(), json!(NOW + 1));
            }),
            with(&|c| {
                c.insert("iat".into(), json!(NOW + 60));
            }),
            with(&|c| {
                c.insert("nbf".into(), json!(NOW));
                c.insert("x".into(), json!({}));
            }),
            with(&|c| {
                c.insert("role".into(), json!(null));
            }),
        ] {
            assert!(verify(&ring, &ok).is_ok());
        }
        // Payloads that are not a JSON object.
        for payload in [json!([]), json!("x"), json!(null), json!(1)] {
            let token = sign_raw(&pem, alg, &head, &payload);
            assert_eq!(verify(&ring, &token), Err(VerifyError::Malformed));
        }
        // The real clock plays no part: a token valid "now" per the caller is
        // rejected at a later caller time, and one from 1970 is fine in 1970.
        let token = ring.sign(&claims()).unwrap();
        assert_eq!(
            ring.verify(&token, ISS, AUD, NOW + TTL.as_secs(), TTL),
            Err(VerifyError::Expired)
        );
        let old = sessiond_jwt::AccessClaims {
            iat: 10,
            exp: 20,
            ..claims()
        };
        let token = ring.sign(&old).unwrap();
        assert_eq!(ring.verify(&token, ISS, AUD, 15, TTL).unwrap(), old);
    }
}

/// One EdDSA and one ES256 ring with a valid token each, shared by the property tests.
fn valid_token_and_ring() -> &'static (KeyRing, String, KeyRing, String) {
    static CELL: std::sync::OnceLock<(KeyRing, String, KeyRing, String)> =
        std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        // The rings live in memory; their temporary directories may go.
        let (_ed_dir, ed) = new_ring(Algorithm::EdDSA);
        let ed_token = ed.sign(&claims()).unwrap();
        let (_es_dir, es) = new_ring(Algorithm::ES256);
        let es_token = es.sign(&claims()).unwrap();
        (ed, ed_token, es, es_token)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_strings_never_verify(s in ".{0,300}") {
        let (ed, _, es, _) = valid_token_and_ring();
        prop_assert!(verify(ed, &s).is_err());
        prop_assert!(verify(es, &s).is_err());
    }

    #[test]
    fn random_jws_shaped_strings_never_verify(
        h in "[A-Za-z0-9_-]{0,80}",
        p in "[A-Za-z0-9_-]{0,200}",
        s in "[A-Za-z0-9_-]{0,100}",
    ) {
        let (ed, _, es, _) = valid_token_and_ring();
        let token = format!("{h}.{p}.{s}");
        prop_assert!(verify(ed, &token).is_err());
        prop_assert!(verify(es, &token).is_err());
    }

    #[test]
    fn random_signatures_with_a_valid_header_never_verify(sig in proptest::collection::vec(any::<u8>(), 0..100)) {
        let (ed, ed_token, es, es_token) = valid_token_and_ring();
        for (ring, token) in [(ed, ed_token), (es, es_token)] {
            let (input, _) = token.rsplit_once('.').unwrap();
            let forged = format!("{input}.{}", b64(&sig));
            prop_assert!(verify(ring, &forged).is_err());
        }
    }

    #[test]
    fn mutations_of_a_valid_token_never_verify(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let (ed, ed_token, es, es_token) = valid_token_and_ring();
        for (ring, token) in [(ed, ed_token), (es, es_token)] {
            let mut bytes = token.clone().into_bytes();
            for (at, byte, op) in &edits {
                match op {
                    0 => { let i = at.index(bytes.len()); bytes[i] = *byte; }
                    1 => { let i = at.index(bytes.len() + 1); bytes.insert(i, *byte); }
                    _ => { if !bytes.is_empty() { let i = at.index(bytes.len()); bytes.remove(i); } }
                }
            }
            let Ok(mutated) = String::from_utf8(bytes) else { continue };
            let result = verify(ring, &mutated);
            if mutated == *token {
                prop_assert!(result.is_ok());
            } else {
                prop_assert!(result.is_err(), "accepted mutation {mutated:?}");
            }
        }
    }
}
