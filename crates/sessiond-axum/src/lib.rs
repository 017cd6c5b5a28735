//! Sessions for axum and tower apps: one [`SessionLayer`] reads the session
//! cookie (or `Authorization: Bearer`), loads the session once per request,
//! and saves what the handler changed in at most one store write afterwards.
//!
//! Handlers take a [`Session`] (401 without one), an `Option<Session>`, or a
//! [`SessionContext`] (always there: [`SessionContext::login`] starts a
//! session). A session knows its user's other devices
//! ([`Session::devices`], [`Session::sign_out_others`]) and carries a CSRF
//! token ([`Session::csrf_token`]) that cookie-authenticated unsafe requests
//! must present, as the `x-csrf-token` header or the `csrf_token` form field.
//!
//! Sessions live behind a [`SessionBackend`]: the engine in this process
//! ([`EngineBackend`], over the embedded store or Redis) or a shared sessiond
//! server (`RemoteBackend`, through `sessiond-client`; the `remote`
//! feature).
//!
//! WebSocket routes use [`LiveSockets`]: each socket is registered as a
//! connection of its session (presence), kept alive by heartbeats, and
//! closed within a second of its session ending, wherever it was revoked.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use sessiond_axum::{EngineBackend, Session, SessionLayer};
//!
//! async fn counter(session: Session) -> Result<String, sessiond_axum::Error> {
//!     let visits: u64 = session.get("visits")?.unwrap_or(0) + 1;
//!     session.insert("visits", visits)?;
//!     Ok(format!("{} has been here {visits} times", session.user_id()))
//! }
//!
//! # fn app(engine: sessiond_engine::Engine) -> Router {
//! Router::new()
//!     .route("/", get(counter))
//!     .layer(SessionLayer::new(EngineBackend::new(engine)))
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod context;
mod error;
mod extract;
mod guards;
mod live;
#[cfg(feature = "remote")]
mod remote;
mod service;

pub use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
pub use backend::{
    BackendError, ENGINE_POLL_INTERVAL, EngineBackend, LoggedIn, NewLogin, SessionBackend,
    SessionEnds,
};
pub use context::{Session, SessionContext};
pub use error::{Error, InvalidSettings};
pub use extract::SessionRejection;
pub use guards::{GuardRejection, RequireAal, RequireRecentAuth};
pub use live::{
    CLOSE_SESSION_ENDED, CLOSE_UNCONFIRMED, DEFAULT_HEARTBEAT, DEFAULT_TTL, LiveConnection,
    LiveEnd, LiveOptions, LiveSender, LiveSocket, LiveSockets,
};
#[cfg(feature = "remote")]
pub use remote::RemoteBackend;
pub use service::{SessionLayer, SessionService};
pub use sessiond_api::SessionView;
pub use sessiond_engine::{Aal, AuthRequirement, RevokeReason, SessionData, SessionId};
pub use sessiond_http::{
    CSRF_FORM_FIELD, CSRF_HEADER, CookieSettings, SameSite, TrustedProxies, cookie,
};
