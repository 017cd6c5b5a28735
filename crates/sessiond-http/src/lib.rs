//! The HTTP edge shared by the sessiond server and the axum layer: reading
//! credentials (Bearer, cookie), setting and clearing the session cookie,
//! finding the client's address and the origin it used behind trusted
//! proxies, and the one CSRF policy.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod cookies;
pub mod credential;
pub mod csrf;

pub use client::{ClientInfo, InvalidProxy, TrustedProxies};
pub use cookies::{CookieSettings, InvalidCookie, SameSite};
pub use credential::{bearer, cookie};
pub use csrf::{CSRF_FORM_FIELD, CSRF_HEADER, Credential, CsrfRefusal, is_unsafe};

#[cfg(test)]
mod test_support {
    //! Helpers for this crate's unit tests.
    use http::{HeaderMap, HeaderValue};

    /// A header map from `(name, value)` pairs, repeats appended.
    pub(crate) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }
}
