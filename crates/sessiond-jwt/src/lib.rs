//! Access-token signing for sessiond: the signing keys and their key file,
//! the JWKS document, and signing and verifying JWTs (EdDSA or ES256).
//!
//! The crate knows nothing of HTTP or stores; time is always passed in as
//! unix seconds so callers control the clock.
//!
//! ```
//! use std::time::Duration;
//! use sessiond_jwt::{AccessClaims, Algorithm, KeyRing};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let data_dir = tmp.path();
//! let now = 1_700_000_000;
//! let ttl = Duration::from_secs(900);
//! let ring = KeyRing::load_or_create(data_dir, Algorithm::EdDSA, now)?;
//! let claims = AccessClaims {
//!     sub: "user-1".into(), sid: "s_1".into(), jti: "j_1".into(), role: None,
//!     iat: now, exp: now + 900, iss: "sessiond".into(), aud: "sessiond".into(),
//!     auth_time: Some(now), acr: Some("aal2".into()), amr: Some(vec!["pwd".into(), "otp".into()]),
//! };
//! let token = ring.sign(&claims)?;
//! assert_eq!(ring.verify(&token, "sessiond", "sessiond", now, ttl)?, claims);
//! let jwks = ring.jwks(now, ttl); // serve as /.well-known/jwks.json
//! assert_eq!(jwks["keys"][0]["kid"], ring.newest_kid());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod algorithm;
pub mod claims;
pub mod error;
mod keyfile;
mod keys;
pub mod ring;
pub mod verify;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use claims::AccessClaims;
pub use error::{KeyError, VerifyError};
pub use keyfile::KEY_FILE_NAME;
pub use ring::KeyRing;
pub use verify::{MAX_IAT_SKEW_SECS, MAX_TOKEN_BYTES};
