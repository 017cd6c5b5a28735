//! The payload of a sessiond access token.

use serde::{Deserialize, Serialize};

/// The claims of an access token (the JWT payload).
///
/// `sub` is the user id, `sid` the session id and `jti` the id of this token;
/// times are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user the session belongs to.
    pub sub: String,
    /// The session id.
    pub sid: String,
    /// The unique id of this access token.
    pub jti: String,
    /// The session's role, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Issued at (unix seconds).
    pub iat: u64,
    /// Expires at (unix seconds); the token is invalid from this second on.
    pub exp: u64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// When the user last authenticated (unix seconds), as in OpenID
    /// Connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
    /// Authentication context class: the session's assurance level
    /// (`aal1`..`aal3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// Authentication methods (RFC 8176), e.g. `["pwd", "otp"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
}
