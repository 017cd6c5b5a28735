//! [`Secret`]: a token or key that never shows in `Debug` output, so logging a
//! request or response with `{:?}` cannot leak a credential.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret string (session token, refresh token, access token).
///
/// `Debug` prints `Secret([redacted])`; there is deliberately no `Display`
/// and no `PartialEq` (compare with [`Secret::expose`] when you must). On
/// the wire it is a plain JSON string.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: hand it to the client (cookie, response body),
    /// never to a log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret as an owned string.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_and_serde_is_a_plain_string() {
        let s = Secret::new("sdt_very-secret-value");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert!(!format!("{s:#?}").contains("very-secret"));
        let json = serde_json::to_string(&s).unwrap_or_default();
        assert_eq!(json, "\"sdt_very-secret-value\"");
        let back: Result<Secret, _> = serde_json::from_str(&json);
        assert_eq!(
            back.map(Secret::into_inner).ok().as_deref(),
            Some("sdt_very-secret-value")
        );
    }
}
