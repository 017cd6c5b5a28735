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
}
