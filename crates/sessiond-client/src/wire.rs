//! Request bodies and response envelopes that only the client itself needs.

use serde::{Deserialize, Serialize};
use sessiond_engine::{Mode, SessionData};

use crate::types::{CreateSession, SessionView};

/// `POST /v1/sessions`: the request plus the mode the method stands for.
#[derive(Serialize)]
pub(crate) struct CreateBody<'a> {
    #[serde(flatten)]
    pub request: &'a CreateSession,
    pub mode: Mode,
}

/// `POST /v1/sessions/introspect`.
#[derive(Serialize)]
pub(crate) struct IntrospectBody<'a> {
    pub token: &'a str,
    pub touch: bool,
}

/// Answer of introspection.
#[derive(Deserialize)]
pub(crate) struct Introspection {
    pub active: bool,
    pub session: Option<SessionView>,
}

/// `PATCH /v1/sessions/{id}`.
#[derive(Serialize)]
pub(crate) struct PatchBody<'a> {
    pub data: &'a SessionData,
    pub merge: bool,
}

/// `POST /v1/sessions/{id}/extend`.
#[derive(Serialize)]
pub(crate) struct ExtendBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_ttl_seconds: Option<u64>,
}

/// `POST /v1/tokens/refresh`.
#[derive(Serialize)]
pub(crate) struct RefreshBody<'a> {
    pub refresh_token: &'a str,
}

/// A list of sessions.
#[derive(Deserialize)]
pub(crate) struct SessionList {
    pub sessions: Vec<SessionView>,
}

/// How many sessions a bulk revocation removed.
#[derive(Deserialize)]
pub(crate) struct RevokedCount {
    pub revoked: u64,
}
