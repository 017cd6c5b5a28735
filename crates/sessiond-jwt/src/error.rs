//! Errors of key handling ([`KeyError`]) and of token verification ([`VerifyError`]).

use std::path::PathBuf;

/// Why signing keys could not be loaded, created, rotated or used.
///
/// The message is one line and never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a file or directory failed.
    #[error("signing keys: {path}: {reason}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The key file does not exist.
    #[error("signing keys: {path}: no such file")]
    Missing {
        /// The expected key file.
        path: PathBuf,
    },
    /// The key file exists but is not a valid key file.
    #[error("signing keys: {path} is corrupt: {reason}")]
    Corrupt {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A private key file supplied by the operator cannot be used.
    #[error("signing key {path}: {reason}")]
    External {
        /// The PEM file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A cryptographic operation (key generation, randomness, signing) failed.
    #[error("signing keys: {0}")]
    Crypto(String),
}

/// Why an access token was rejected.
///
/// Every variant means "not authenticated"; the distinction is for logs and
/// metrics, not for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum VerifyError {
    /// The token is longer than [`crate::MAX_TOKEN_BYTES`].
    #[error("token too large")]
    TooLarge,
    /// Not a compact JWS of three base64url segments holding a JSON header and payload.
    #[error("malformed token")]
    Malformed,
    /// The header names an algorithm other than `EdDSA` or `ES256` (`none`, `HS256`, `RS256`…).
    #[error("unsupported token algorithm")]
    UnsupportedAlgorithm,
    /// The header's algorithm differs from the algorithm of the key named by `kid`.
    #[error("token algorithm does not match its key")]
    AlgorithmMismatch,
    /// The header has no `kid`.
    #[error("token has no key id")]
    MissingKeyId,
    /// The header carries a parameter this verifier refuses (`crit`) or a `typ` other than `JWT`.
    #[error("unsupported token header")]
    UnsupportedHeader,
    /// The `kid` names no key that is currently published.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is not after now.
    #[error("token expired")]
    Expired,
    /// `iat` is more than the allowed clock skew in the future.
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` is not the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// A required claim is absent or empty.
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type (for example a string `exp`).
    #[error("invalid claim {0}")]
    InvalidClaim(&'static str),
}
