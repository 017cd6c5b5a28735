//! JWT-mode access tokens for the server: the signing keys (generated into
//! `data_dir` or read from `jwt.key_file`, reloaded when `sessiond keys
//! rotate` changes them), issuing a token for a session, verifying one, and
//! the JWKS document.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sessiond_engine::{Session, Timestamp};
use sessiond_jwt::{AccessClaims, Algorithm, KeyError, KeyRing, VerifyError};

use crate::config::Config;
use crate::problem::Problem;

/// Signs and verifies access tokens with the keys in force.
#[derive(Debug)]
pub struct AccessTokens {
    ring: RwLock<Arc<KeyRing>>,
    /// Where the generated keys live; `None` for an operator's key file.
    dir: Option<PathBuf>,
    seen_modified: Mutex<Option<SystemTime>>,
    issuer: String,
    audience: String,
    ttl: Duration,
    jwks_max_age: Duration,
}

/// The longest a JWKS answer may be cached.
const JWKS_MAX_AGE: Duration = Duration::from_secs(60);

/// Unix seconds of `t` (before 1970: 0).
fn secs(t: Timestamp) -> u64 {
    u64::try_from(t.as_millis().div_euclid(1000)).unwrap_or(0)
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The signing algorithm named by `jwt.algorithm` (validated by the config).
pub fn algorithm(config: &Config) -> Result<Algorithm, KeyError> {
    config
        .jwt
        .algorithm
        .parse()
        .map_err(|e| KeyError::Crypto(format!("jwt.algorithm: {e}")))
}

/// The directory of generated signing keys.
pub fn key_dir(config: &Config) -> PathBuf {
    key_dir_in(&config.data_dir)
}

/// The directory of generated signing keys inside `data_dir`.
pub fn key_dir_in(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("keys")
}

impl AccessTokens {
    /// The keys of `config`: its `jwt.key_file`, or the key file in
    /// `data_dir/keys`, created with one fresh key on first start.
    pub fn open(config: &Config) -> Result<Self, KeyError> {
        let alg = algorithm(config)?;
        let (ring, dir) = match &config.jwt.key_file {
            Some(file) => (KeyRing::from_pem_file(file, alg)?, None),
            None => {
                let dir = key_dir(config);
                (KeyRing::load_or_create(&dir, alg, now_secs())?, Some(dir))
            }
        };
        let modified = dir.as_deref().and_then(modified_at);
        Ok(Self {
            ring: RwLock::new(Arc::new(ring)),
            dir,
            seen_modified: Mutex::new(modified),
            issuer: config.jwt.issuer.clone(),
            audience: config.jwt.audience.clone(),
            ttl: config.jwt.access_ttl,
            // A cache that honours max-age has refetched the JWKS before a
            // key published by `keys rotate` signs its first token.
            jwks_max_age: JWKS_MAX_AGE.min(config.jwt.rollover_delay / 2),
        })
    }

    fn ring(&self) -> Arc<KeyRing> {
        match self.ring.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-read the key file if it changed since the last look (after
    /// `sessiond keys rotate`). A file that does not load keeps the keys in
    /// force and is logged.
    pub fn reload_if_changed(&self) {
        let Some(dir) = &self.dir else { return };
        let modified = modified_at(dir);
        {
            let mut seen = match self.seen_modified.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            if *seen == modified {
                return;
            }
            *seen = modified;
        }
        match KeyRing::load(dir) {
            Ok(ring) => {
                tracing::info!(
                    newest_kid = ring.newest_kid(),
                    signs_from = ring.newest_signs_from(),
                    "signing keys reloaded"
                );
                match self.ring.write() {
                    Ok(mut r) => *r = Arc::new(ring),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(ring),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "signing keys changed but do not load; keeping the old ones")
            }
        }
    }

    /// An access token for `session`'s refresh generation `generation`,
    /// issued at `issued_at`, and its seconds left. The same inputs give the
    /// same token (deterministic signatures), so a refresh replayed within the
    /// grace period hands out the very same pair.
    pub fn issue(
        &self,
        session: &Session,
        generation: u64,
        issued_at: Timestamp,
    ) -> Result<(String, u64), Problem> {
        let iat = secs(issued_at);
        let exp = (iat + self.ttl.as_secs().max(1)).min(secs(session.absolute_expires_at));
        let claims = AccessClaims {
            sub: session.user_id.clone(),
            sid: session.id.to_string(),
            jti: format!("{}.{generation}", session.id),
            role: session.role.clone(),
            iat,
            exp,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            auth_time: Some(secs(session.auth.authenticated_at)),
            acr: Some(session.auth.aal.as_str().to_owned()),
            amr: Some(session.auth.amr.clone()),
        };
        let token = self.ring().sign(&claims).map_err(|e| {
            // The key file is unusable: a server fault, not the caller's.
            tracing::error!(error = %e, "cannot sign an access token");
            Problem::internal()
        })?;
        Ok((token, exp.saturating_sub(now_secs())))
    }

    /// The claims of a valid access token (signature, key, `exp`, `iss`,
    /// `aud`, `sub`/`sid`/`jti` checked).
    pub fn verify(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        self.ring()
            .verify(token, &self.issuer, &self.audience, now_secs(), self.ttl)
    }

    /// The JWKS document: keys about to sign, the signer, and every retired
    /// key whose tokens may still be live.
    pub fn jwks(&self) -> serde_json::Value {
        self.ring().jwks(now_secs(), self.ttl)
    }

    /// How long the JWKS document may be cached, in seconds.
    pub fn jwks_max_age_secs(&self) -> u64 {
        self.jwks_max_age.as_secs()
    }
}

/// Whether a bearer credential is a JWT (session and refresh tokens never
/// hold a dot).
pub fn is_jwt(credential: &str) -> bool {
    credential.contains('.')
}

fn modified_at(dir: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(KeyRing::path(dir))
        .and_then(|m| m.modified())
        .ok()
}
