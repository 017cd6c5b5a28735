//! The JSON bodies of the sessiond HTTP API, defined once: the server
//! serializes and parses them, the client parses and sends them, the axum
//! layer shows [`SessionView`]s. With the `openapi` feature they carry their
//! OpenAPI schemas.
//!
//! Requests reject unknown fields; responses ignore them (a newer server may
//! add some). A [`SessionView`] or [`HistoryEventView`] never holds a token
//! or its hash; tokens are [`Secret`]s, redacted in `Debug`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod requests;
mod responses;
mod secret;
mod session;

pub use requests::{
    AuthQuery, Authenticate, ConnectionBeat, CreateSession, EventsQuery, Extend, HistoryQuery,
    Introspect, ListSessionsQuery, PatchData, RefreshBody, RevokeIssuedBefore, RevokeQuery,
    RevokeUserQuery,
};
pub use responses::{
    ConnectionView, CreateResponse, Created, CreatedJwt, DevicePresenceView, EventView,
    HistoryEventView, HistoryList, Introspection, NodeState, PresenceView, ProblemBody, Readiness,
    RevokedCount, Risk, Rotated, SessionList, SessionListPage, Stats, TokenPair,
};
pub use secret::Secret;
pub use session::SessionView;
pub use sessiond_engine::Aal;
