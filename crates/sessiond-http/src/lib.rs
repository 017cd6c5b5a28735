//! The HTTP edge shared by the sessiond server and the axum layer: reading
//! credentials (Bearer, cookie), finding the client's address and the origin
//! it used behind trusted proxies, and the one CSRF policy.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod credential;
pub mod csrf;

pub use client::{ClientInfo, InvalidProxy, TrustedProxies};
pub use credential::{bearer, cookie};
pub use csrf::{CSRF_FORM_FIELD, CSRF_HEADER, Credential, CsrfRefusal, is_unsafe};
