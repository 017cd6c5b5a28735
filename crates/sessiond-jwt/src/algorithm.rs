//! The JWS signature algorithms sessiond signs access tokens with.

use std::fmt;
use std::str::FromStr;

/// A signature algorithm for access tokens (the JWS `alg` header value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Ed25519 signatures (RFC 8037), the default.
    EdDSA,
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4), deterministic (RFC 6979).
    ES256,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 2] = [Algorithm::EdDSA, Algorithm::ES256];

    /// The JWS name: `"EdDSA"` or `"ES256"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no supported algorithm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported algorithm {0:?}; accepted: \"EdDSA\", \"ES256\"")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// Parses the exact JWS names `"EdDSA"` and `"ES256"` (case-sensitive, as in RFC 7518).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "EdDSA" => Ok(Algorithm::EdDSA),
            "ES256" => Ok(Algorithm::ES256),
            other => Err(UnknownAlgorithm(other.chars().take(32).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_names_only() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
            assert_eq!(alg.to_string(), alg.as_str());
        }
        for bad in [
            "eddsa", "es256", "ES256 ", "", "none", "HS256", "RS256", "Ed25519",
        ] {
            assert!(bad.parse::<Algorithm>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn error_names_what_is_accepted() {
        let err = "HS256".parse::<Algorithm>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported algorithm \"HS256\"; accepted: \"EdDSA\", \"ES256\""
        );
    }
}
