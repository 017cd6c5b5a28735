//! A typed async client for the sessiond HTTP API.
//!
//! [`Client`] has one method per route: the admin routes (create, introspect,
//! read, update, extend, rotate, revoke, per-user listing and revocation,
//! the listing of all users' sessions, history, the event feed, live connections and presence, stats)
//! authenticated with the API key, and the public routes an end user's
//! credential authenticates (refresh, `me`, "log out other devices", logout,
//! presence), plus the JWKS and readiness. Answers are typed: sessions are
//! [`SessionView`]s built on the engine's own types ([`SessionId`],
//! [`Timestamp`], [`Device`], [`Mode`]), and every failure is an [`Error`]
//! with meaning, mapped from the server's problem+json status codes.
//!
//! Tokens are [`Secret`]s: their `Debug` output is redacted, and
//! [`Secret::expose`] hands out the value. The client's own `Debug` never
//! shows the API key. Tokens travel only in request bodies and the
//! `Authorization` header, never in URLs; user ids are percent-encoded as
//! path segments. Nothing the network sends makes the client panic: a server
//! that cannot be reached or does not answer within the timeout (5 s unless
//! [`Client::with_timeout`] says otherwise) is [`Error::Unavailable`], like a
//! server whose store is down.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use sessiond_client::{Client, CreateSession, Error};
//!
//! # async fn example() -> Result<(), Error> {
//! let client = Client::new("http://127.0.0.1:7420", "sdk_my-api-key-0123456789")?
//!     .with_timeout(Duration::from_secs(2))?;
//!
//! // After the app has authenticated the user:
//! let created = client
//!     .create(&CreateSession {
//!         user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
//!         ip: Some("203.0.113.7".into()),
//!         ..CreateSession::new("alice@example.com")
//!     })
//!     .await?;
//! let token = created.token.expose(); // set it as the session cookie
//!
//! // On each request:
//! match client.introspect(token, true).await {
//!     Ok(Some(session)) => println!("user {} on {:?}", session.user_id, session.device.kind),
//!     Ok(None) => println!("not logged in"),
//!     Err(e) if e.is_unavailable() => println!("fail closed: {e}"),
//!     Err(e) => return Err(e),
//! }
//!
//! // "Log out my other devices":
//! let ended = client.revoke_my_other_sessions(token).await?;
//! println!("{ended} other sessions ended");
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod error;
mod events;

pub use client::{Client, DEFAULT_TIMEOUT};
pub use error::Error;
pub use events::{EventStream, EventsRequest, StartAt};
pub use sessiond_api::{
    ConnectionView, CreateSession, Created, CreatedJwt, DevicePresenceView, EventView,
    ListSessionsQuery, PresenceView, Readiness, Rotated, Secret, SessionListPage, SessionView,
    Stats, TokenPair,
};

pub use sessiond_engine::{Device, DeviceKind, EventKind, Mode, SessionData, SessionId, Timestamp};
