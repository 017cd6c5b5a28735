//! Verification of access tokens: a strict compact-JWS parser and the claim
//! checks, all against a caller-supplied `now`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::algorithm::Algorithm;
use crate::claims::AccessClaims;
use crate::error::VerifyError;
use crate::ring::KeyRing;

/// Tokens longer than this are rejected before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How far in the future `iat` may be (clock skew between instances), in seconds.
pub const MAX_IAT_SKEW_SECS: u64 = 60;

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// The payload with every claim optional, so that a missing claim is
/// reported by name rather than as a parse error.
#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: Option<serde_json::Value>,
    #[serde(default)]
    sid: Option<serde_json::Value>,
    #[serde(default)]
    jti: Option<serde_json::Value>,
    #[serde(default)]
    role: Option<serde_json::Value>,
    #[serde(default)]
    iat: Option<serde_json::Value>,
    #[serde(default)]
    exp: Option<serde_json::Value>,
    #[serde(default)]
    iss: Option<serde_json::Value>,
    #[serde(default)]
    aud: Option<serde_json::Value>,
    #[serde(default)]
    auth_time: Option<serde_json::Value>,
    #[serde(default)]
    acr: Option<serde_json::Value>,
    #[serde(default)]
    amr: Option<serde_json::Value>,
}

fn b64(segment: &str) -> Result<Vec<u8>, VerifyError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| VerifyError::Malformed)
}

fn required_string(
    v: Option<serde_json::Value>,
    name: &'static str,
) -> Result<String, VerifyError> {
    match v {
        None | Some(serde_json::Value::Null) => Err(VerifyError::MissingClaim(name)),
        Some(serde_json::Value::String(s)) if s.is_empty() => Err(VerifyError::MissingClaim(name)),
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(_) => Err(VerifyError::InvalidClaim(name)),
    }
}

fn required_time(v: Option<serde_json::Value>, name: &'static str) -> Result<u64, VerifyError> {
    match v {
        None | Some(serde_json::Value::Null) => Err(VerifyError::MissingClaim(name)),
        Some(v) => v.as_u64().ok_or(VerifyError::InvalidClaim(name)),
    }
}

impl KeyRing {
    /// Verify a compact JWS access token and return its claims.
    ///
    /// Checks, in order: size (at most [`MAX_TOKEN_BYTES`]), three base64url
    /// segments, a JSON header whose `alg` is `EdDSA` or `ES256`, `typ` absent
    /// or `JWT`, no `crit`, a `kid` naming a key that `jwks(now, access_ttl)`
    /// publishes and whose algorithm equals `alg`; the signature; then `exp > now`
    /// (no leeway), `iat <= now + 60`, `iss == issuer`, `aud == audience`, and
    /// non-empty `sub`, `sid`, `jti`. Never panics.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        now: u64,
        access_ttl: Duration,
    ) -> Result<AccessClaims, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed);
        };
        if header_b64.is_empty() || payload_b64.is_empty() || signature_b64.is_empty() {
            return Err(VerifyError::Malformed);
        }

        let header: RawHeader =
            serde_json::from_slice(&b64(header_b64)?).map_err(|_| VerifyError::Malformed)?;
        let alg: Algorithm = header
            .alg
            .parse()
            .map_err(|_| VerifyError::UnsupportedAlgorithm)?;
        if header.crit.is_some() || header.typ.as_deref().is_some_and(|t| t != "JWT") {
            return Err(VerifyError::UnsupportedHeader);
        }
        let kid = header.kid.ok_or(VerifyError::MissingKeyId)?;
        let key = self
            .find(&kid)
            .filter(|k| k.published_at(now, access_ttl))
            .ok_or(VerifyError::UnknownKey)?;
        if key.pair.algorithm() != alg {
            return Err(VerifyError::AlgorithmMismatch);
        }

        let payload = b64(payload_b64)?;
        let signature = b64(signature_b64)?;
        // The signing input is the token up to the second dot.
        let signed_len = header_b64.len() + 1 + payload_b64.len();
        let message = token
            .as_bytes()
            .get(..signed_len)
            .ok_or(VerifyError::Malformed)?;
        if !key.pair.verify(message, &signature) {
            return Err(VerifyError::BadSignature);
        }

        let payload: serde_json::Value =
            serde_json::from_slice(&payload).map_err(|_| VerifyError::Malformed)?;
        if !payload.is_object() {
            return Err(VerifyError::Malformed);
        }
        let raw = RawClaims::deserialize(payload).map_err(|_| VerifyError::Malformed)?;
        let exp = required_time(raw.exp, "exp")?;
        if exp <= now {
            return Err(VerifyError::Expired);
        }
        let iat = required_time(raw.iat, "iat")?;
        if iat > now.saturating_add(MAX_IAT_SKEW_SECS) {
            return Err(VerifyError::IssuedInFuture);
        }
        let iss = required_string(raw.iss, "iss")?;
        if iss != issuer {
            return Err(VerifyError::WrongIssuer);
        }
        let aud = required_string(raw.aud, "aud")?;
        if aud != audience {
            return Err(VerifyError::WrongAudience);
        }
        let sub = required_string(raw.sub, "sub")?;
        let sid = required_string(raw.sid, "sid")?;
        let jti = required_string(raw.jti, "jti")?;
        let role = match raw.role {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(_) => return Err(VerifyError::InvalidClaim("role")),
        };
        let auth_time = match raw.auth_time {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or(VerifyError::InvalidClaim("auth_time"))?),
        };
        let acr = match raw.acr {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(_) => return Err(VerifyError::InvalidClaim("acr")),
        };
        let amr = match raw.amr {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value::<Vec<String>>(v)
                    .map_err(|_| VerifyError::InvalidClaim("amr"))?,
            ),
        };
        Ok(AccessClaims {
            sub,
            sid,
            jti,
            role,
            iat,
            exp,
            iss,
            aud,
            auth_time,
            acr,
            amr,
        })
    }
}
