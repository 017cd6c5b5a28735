//! Key ring lifecycle: creation, loading, rotation windows, the key file's
//! permissions and validation, and operator PEM keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use sessiond_jwt::{AccessClaims, Algorithm, KeyError, KeyRing, VerifyError};

fn kids(ring: &KeyRing, now: u64) -> BTreeSet<String> {
    ring.jwks(now, TTL)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn round_trip_both_algorithms() {
    for alg in Algorithm::ALL {
        let (dir, ring) = new_ring(alg);
        assert_eq!(ring.algorithm(), alg);
        assert!(ring.is_rotatable());
        let token = ring.sign(&claims()).unwrap();
        assert_eq!(verify(&ring, &token).unwrap(), claims());

        // With a role too.
        let with_role = AccessClaims {
            role: Some("admin".into()),
            ..claims()
        };
        let token = ring.sign(&with_role).unwrap();
        assert_eq!(verify(&ring, &token).unwrap(), with_role);

        // A second process loading the same file verifies and signs the same way.
        let again = KeyRing::load(dir.path()).unwrap();
        assert_eq!(again.newest_kid(), ring.newest_kid());
        assert_eq!(verify(&again, &token).unwrap(), with_role);
        assert_eq!(again.sign(&with_role).unwrap(), token);

        // load_or_create on an existing file loads it, whatever the algorithm asked for.
        let other = match alg {
            Algorithm::EdDSA => Algorithm::ES256,
            Algorithm::ES256 => Algorithm::EdDSA,
        };
        let loaded = KeyRing::load_or_create(dir.path(), other, NOW + 5).unwrap();
        assert_eq!(loaded.newest_kid(), ring.newest_kid());
        assert_eq!(loaded.algorithm(), alg);
    }
}

#[test]
fn signing_is_deterministic() {
    for alg in Algorithm::ALL {
        let (dir, ring) = new_ring(alg);
        let first = ring.sign(&claims()).unwrap();
        for _ in 0..50 {
            assert_eq!(ring.sign(&claims()).unwrap(), first);
        }
        let reloaded = KeyRing::load(dir.path()).unwrap();
        assert_eq!(reloaded.sign(&claims()).unwrap(), first);
        let other = AccessClaims {
            jti: "j_124".into(),
            ..claims()
        };
        assert_ne!(ring.sign(&other).unwrap(), first);
    }
}

#[test]
fn header_has_alg_kid_typ() {
    for alg in Algorithm::ALL {
        let (_dir, ring) = new_ring(alg);
        let token = ring.sign(&claims()).unwrap();
        let head = token.split('.').next().unwrap();
        let head: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, head)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            head,
            serde_json::json!({"typ": "JWT", "alg": alg.as_str(), "kid": ring.newest_kid()})
        );
    }
}

#[test]
fn rotation_moves_the_jwks_window() {
    for alg in Algorithm::ALL {
        let (dir, ring) = new_ring(alg);
        let k1 = ring.newest_kid().to_owned();
        let t1 = ring.sign(&claims()).unwrap();
        assert_eq!(kids(&ring, NOW), set(&[&k1]));
        assert_eq!(
            KeyRing::path(dir.path()),
            dir.path().join("signing_keys.json")
        );

        // Rotate at R: the new key signs, both are published.
        let r = NOW + 100;
        let (ring2, k2) = KeyRing::rotate(dir.path(), alg, TTL, r, Duration::ZERO).unwrap();
        assert_ne!(k1, k2);
        assert_eq!(ring2.newest_kid(), k2);
        assert_eq!(kids(&ring2, r), set(&[&k1, &k2]));
        let jwks = ring2.jwks(r, TTL);
        assert_eq!(jwks["keys"][0]["kid"], k2.as_str(), "current key first");

        // The rotated ring signs with the new kid, and old tokens still verify.
        let c2 = AccessClaims {
            iat: r,
            exp: r + 900,
            ..claims()
        };
        let t2 = ring2.sign(&c2).unwrap();
        let head = jsonwebtoken::decode_header(&t2).unwrap();
        assert_eq!(head.kid.as_deref(), Some(k2.as_str()));
        assert_eq!(verify(&ring2, &t1).unwrap(), claims());
        assert_eq!(ring2.verify(&t2, ISS, AUD, r, TTL).unwrap(), c2);

        // The file on disk says the same.
        let loaded = KeyRing::load(dir.path()).unwrap();
        assert_eq!(loaded.newest_kid(), k2);
        assert_eq!(kids(&loaded, r), set(&[&k1, &k2]));

        // Published until retired_at + access_ttl, exclusive.
        let edge = r + TTL.as_secs();
        assert_eq!(kids(&ring2, edge - 1), set(&[&k1, &k2]));
        assert_eq!(kids(&ring2, edge), set(&[&k2]));
        assert_eq!(kids(&ring2, edge + 10_000), set(&[&k2]));

        // A token signed by a key out of the window fails with UnknownKey,
        // even if its own claims were still fine.
        let late = AccessClaims {
            iat: edge - 1,
            exp: edge + 900,
            ..claims()
        };
        let pem1 = pem_of(dir.path(), &k1);
        let t_late = sign_raw(
            &pem1,
            alg,
            &header(alg.as_str(), &k1),
            &serde_json::to_value(&late).unwrap(),
        );
        assert_eq!(
            ring2.verify(&t_late, ISS, AUD, edge - 1, TTL).unwrap(),
            late
        );
        assert_eq!(
            ring2.verify(&t_late, ISS, AUD, edge, TTL),
            Err(VerifyError::UnknownKey)
        );

        // A third rotation after the window drops k1 from the file.
        let r3 = edge + 1;
        let (ring3, k3) = KeyRing::rotate(dir.path(), alg, TTL, r3, Duration::ZERO).unwrap();
        assert_eq!(kids(&ring3, r3), set(&[&k2, &k3]));
        let file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(KeyRing::path(dir.path())).unwrap()).unwrap();
        let in_file: Vec<&str> = file["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(in_file, vec![k2.as_str(), k3.as_str()], "newest last");
        assert_eq!(file["keys"][0]["retired_at"], r3);
        assert!(file["keys"][1].get("retired_at").is_none());
        assert_eq!(
            ring3.verify(&t_late, ISS, AUD, r3 - 1, TTL),
            Err(VerifyError::UnknownKey)
        );
    }
}

#[test]
fn rotation_can_change_the_algorithm() {
    let (dir, ring) = new_ring(Algorithm::EdDSA);
    let t1 = ring.sign(&claims()).unwrap();
    let (ring2, _) =
        KeyRing::rotate(dir.path(), Algorithm::ES256, TTL, NOW + 1, Duration::ZERO).unwrap();
    assert_eq!(ring2.algorithm(), Algorithm::ES256);
    let t2 = ring2.sign(&claims()).unwrap();
    assert_eq!(verify(&ring2, &t1).unwrap(), claims());
    assert_eq!(verify(&ring2, &t2).unwrap(), claims());
    let algs: BTreeSet<String> = ring2.jwks(NOW + 1, TTL)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(algs, set(&["EdDSA", "ES256"]));
}

#[test]
fn rotation_with_zero_ttl_drops_the_old_key() {
    let (dir, ring) = new_ring(Algorithm::EdDSA);
    let (ring2, k2) = KeyRing::rotate(
        dir.path(),
        Algorithm::EdDSA,
        Duration::ZERO,
        NOW,
        Duration::ZERO,
    )
    .unwrap();
    assert_ne!(ring.newest_kid(), k2);
    assert_eq!(
        ring2.jwks(NOW, Duration::ZERO)["keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn rotate_without_a_file_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        KeyRing::rotate(dir.path(), Algorithm::EdDSA, TTL, NOW, Duration::ZERO),
        Err(KeyError::Missing { .. })
    ));
    assert!(matches!(
        KeyRing::load(dir.path()),
        Err(KeyError::Missing { .. })
    ));
}

#[cfg(unix)]
#[test]
fn file_is_0600_and_new_dir_is_0700() {
    use std::os::unix::fs::PermissionsExt as _;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data").join("keys");
    let ring = KeyRing::load_or_create(&dir, Algorithm::EdDSA, NOW).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&KeyRing::path(&dir)), 0o600);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&root.path().join("data")), 0o700);
    KeyRing::rotate(&dir, Algorithm::EdDSA, TTL, NOW + 1, Duration::ZERO).unwrap();
    assert_eq!(mode(&KeyRing::path(&dir)), 0o600);
    // No temporary files are left behind; the lock file is private too.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".signing_keys.json.lock", "signing_keys.json"]);
    assert_eq!(mode(&dir.join(".signing_keys.json.lock")), 0o600);
    drop(ring);
}

/// A rotation with a delay publishes the new key at once and signs with it
/// only from `now + delay`; until then the previous key signs.
#[test]
fn a_new_key_is_published_before_it_signs() {
    for alg in Algorithm::ALL {
        let (dir, ring) = new_ring(alg);
        let k1 = ring.newest_kid().to_owned();
        let delay = Duration::from_secs(90);
        let r = NOW + 100;
        let (ring2, k2) = KeyRing::rotate(dir.path(), alg, TTL, r, delay).unwrap();
        assert_eq!(ring2.newest_kid(), k2);
        assert_eq!(ring2.newest_signs_from(), r + 90);
        // Published right away…
        assert_eq!(kids(&ring2, r), set(&[&k1, &k2]));
        // …but k1 signs until r + 90, k2 from then on.
        assert_eq!(ring2.signing_kid(r), k1);
        assert_eq!(ring2.signing_kid(r + 89), k1);
        assert_eq!(ring2.signing_kid(r + 90), k2);
        let kid_of = |iat: u64| {
            let t = ring2
                .sign(&AccessClaims {
                    iat,
                    exp: iat + 900,
                    ..claims()
                })
                .unwrap();
            jsonwebtoken::decode_header(&t).unwrap().kid.unwrap()
        };
        assert_eq!(kid_of(r + 89), k1);
        assert_eq!(kid_of(r + 90), k2);
        // k1 retires when k2 starts and stays published for the tokens it
        // signed until then.
        let edge = r + 90 + TTL.as_secs();
        assert_eq!(kids(&ring2, edge - 1), set(&[&k1, &k2]));
        assert_eq!(kids(&ring2, edge), set(&[&k2]));
        // The file says the same after a reload.
        let loaded = KeyRing::load(dir.path()).unwrap();
        assert_eq!(loaded.signing_kid(r), k1);
        assert_eq!(loaded.signing_kid(r + 90), k2);

        // Rotating again before k2 starts: k2 signs from r + 90 to the new
        // start, the third key after that.
        let (ring3, k3) = KeyRing::rotate(dir.path(), alg, TTL, r + 30, delay).unwrap();
        assert_eq!(ring3.signing_kid(r + 89), k1);
        assert_eq!(ring3.signing_kid(r + 90), k2);
        assert_eq!(ring3.signing_kid(r + 120), k3);
        assert_eq!(kids(&ring3, r + 30), set(&[&k1, &k2, &k3]));
    }
}

/// Rotations racing each other do not lose keys: each one reads what the
/// previous one wrote.
#[test]
fn concurrent_rotations_are_serialized() {
    let (dir, _) = new_ring(Algorithm::EdDSA);
    let path = dir.path().to_owned();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                KeyRing::rotate(
                    &path,
                    Algorithm::EdDSA,
                    Duration::from_secs(3600),
                    NOW + i,
                    Duration::from_secs(90),
                )
                .unwrap()
                .1
            })
        })
        .collect();
    let new_kids: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ring = KeyRing::load(&path).unwrap();
    let published = kids(&ring, NOW + 8);
    for kid in &new_kids {
        assert!(published.contains(kid.as_str()), "a rotation was lost");
    }
    assert_eq!(published.len(), 9);
}

#[test]
fn concurrent_creation_agrees_on_one_key() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    KeyRing::load_or_create(&path, Algorithm::EdDSA, NOW)
                        .unwrap()
                        .newest_kid()
                        .to_owned()
                })
            })
            .collect();
        let kids: BTreeSet<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(kids.len(), 1, "{kids:?}");
        let on_disk = KeyRing::load(&path).unwrap();
        assert_eq!(
            Some(on_disk.newest_kid()),
            kids.iter().next().map(String::as_str)
        );
    }
}

#[test]
fn corrupt_files_give_key_errors() {
    let (dir, _ring) = new_ring(Algorithm::EdDSA);
    let path = KeyRing::path(dir.path());
    let good = std::fs::read(&path).unwrap();
    let mut cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"null".to_vec(),
        b"{\"keys\":[]}".to_vec(),
        b"{\"keys\":[{}]}".to_vec(),
        vec![0xff; 100],
        good[..good.len() / 2].to_vec(),
        String::from_utf8(good.clone())
            .unwrap()
            .replace("EdDSA", "ES256")
            .into_bytes(),
        String::from_utf8(good.clone())
            .unwrap()
            .replace("\"kid\": \"", "\"kid\": \"x")
            .into_bytes(),
    ];
    // Flip a byte inside the base64 of the private key.
    let mut flipped = good.clone();
    let at = String::from_utf8_lossy(&good).find("MC4CAQ").unwrap() + 20;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    cases.push(flipped);
    for contents in cases {
        std::fs::write(&path, &contents).unwrap();
        for result in [
            KeyRing::load(dir.path()),
            KeyRing::load_or_create(dir.path(), Algorithm::EdDSA, NOW),
        ] {
            match result {
                Err(KeyError::Corrupt { path: p, reason }) => {
                    assert_eq!(p, path);
                    let msg = KeyError::Corrupt {
                        path: p,
                        reason: reason.clone(),
                    }
                    .to_string();
                    assert!(!msg.contains('\n'), "{msg}");
                    assert!(!msg.contains("PRIVATE"), "{msg}");
                }
                other => panic!("expected Corrupt, got {other:?}"),
            }
        }
        assert!(matches!(
            KeyRing::rotate(dir.path(), Algorithm::EdDSA, TTL, NOW, Duration::ZERO),
            Err(KeyError::Corrupt { .. })
        ));
        // A corrupt file is reported, never replaced by a fresh key.
        assert_eq!(std::fs::read(&path).unwrap(), contents);
    }
}

#[test]
fn key_file_that_is_a_directory_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(KeyRing::path(dir.path())).unwrap();
    assert!(matches!(
        KeyRing::load_or_create(dir.path(), Algorithm::EdDSA, NOW),
        Err(KeyError::Corrupt { .. })
    ));
}

#[test]
fn operator_pem_files() {
    for alg in Algorithm::ALL {
        let (dir, ring) = new_ring(alg);
        let pem = pem_of(dir.path(), ring.newest_kid());
        let pem_path = dir.path().join("operator.pem");
        std::fs::write(&pem_path, &pem).unwrap();
        let op = KeyRing::from_pem_file(&pem_path, alg).unwrap();
        assert!(!op.is_rotatable());
        assert_eq!(op.newest_kid(), ring.newest_kid());
        let token = op.sign(&claims()).unwrap();
        assert_eq!(verify(&ring, &token).unwrap(), claims());
        assert_eq!(kids(&op, NOW), set(&[ring.newest_kid()]));

        let other = match alg {
            Algorithm::EdDSA => Algorithm::ES256,
            Algorithm::ES256 => Algorithm::EdDSA,
        };
        let err = KeyRing::from_pem_file(&pem_path, other).unwrap_err();
        assert!(matches!(err, KeyError::External { .. }), "{err:?}");
        let msg = err.to_string();
        for line in pem.lines() {
            assert!(!msg.contains(line), "{msg}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    assert!(matches!(
        KeyRing::from_pem_file(&missing, Algorithm::EdDSA),
        Err(KeyError::External { .. })
    ));
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, [0xffu8, 0, 1, 2]).unwrap();
    assert!(matches!(
        KeyRing::from_pem_file(&junk, Algorithm::ES256),
        Err(KeyError::External { .. })
    ));
}

/// Keys as OpenSSL writes them: `openssl genpkey -algorithm ed25519` (PKCS#8 v1)
/// and `openssl ecparam -name prime256v1 -genkey` (SEC1).
#[test]
fn openssl_style_pem_files() {
    let ed = "-----BEGIN PRIVATE KEY-----\n\
              MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
              -----END PRIVATE KEY-----\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ed.pem");
    std::fs::write(&path, ed).unwrap();
    let ring = KeyRing::from_pem_file(&path, Algorithm::EdDSA).unwrap();
    // RFC 8037 Appendix A.3.
    assert_eq!(
        ring.newest_kid(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );

    let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
    let sec1 = secret.to_sec1_pem(p256::pkcs8::LineEnding::LF).unwrap();
    let path = dir.path().join("ec.pem");
    std::fs::write(&path, sec1.as_bytes()).unwrap();
    let ring = KeyRing::from_pem_file(&path, Algorithm::ES256).unwrap();
    let token = ring.sign(&claims()).unwrap();
    assert_eq!(verify(&ring, &token).unwrap(), claims());
}
