//! Extractor guards on the session's authentication: [`RequireAal`] (a
//! level, e.g. `RequireAal<2>` for a second factor) and [`RequireRecentAuth`]
//! (an authentication within some seconds), for sensitive routes. Both
//! answer 401 with RFC 9470's `insufficient_user_authentication` challenge
//! so that the app can send the user to step up or sign in again.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use sessiond_engine::{Aal, AuthRequirement, Clock, SystemClock};

use crate::context::Session;
use crate::error::Error;
use crate::extract::SessionRejection;

/// A live session whose assurance level is at least `LEVEL` (1..=3);
/// otherwise 401 ([`Error::InsufficientAal`]), or 401 without a session.
#[derive(Clone, Debug)]
pub struct RequireAal<const LEVEL: u8>(pub Session);

/// A live session whose user authenticated at most `MAX_AGE_SECS` seconds
/// ago; otherwise 401 ([`Error::ReauthenticationRequired`]).
#[derive(Clone, Debug)]
pub struct RequireRecentAuth<const MAX_AGE_SECS: u64>(pub Session);

/// Why a guard refused the request.
#[derive(Debug)]
pub enum GuardRejection {
    /// No session, or the guard is not behind the layer.
    Session(SessionRejection),
    /// The session falls short of the guard.
    Unmet(Error),
}

impl IntoResponse for GuardRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Session(r) => r.into_response(),
            Self::Unmet(e) => e.into_response(),
        }
    }
}

impl Session {
    /// Whether the session's authentication meets `requirement` now (by
    /// this process's clock): [`Error::InsufficientAal`] or
    /// [`Error::ReauthenticationRequired`] say what is short.
    pub fn require(&self, requirement: &AuthRequirement) -> Result<(), Error> {
        let view = self.view()?;
        let auth = sessiond_engine::AuthContext {
            authenticated_at: view.authenticated_at,
            aal: view.aal,
            amr: view.amr,
        };
        requirement
            .check(&auth, SystemClock.now())
            .map_err(|shortfall| match shortfall {
                sessiond_engine::AuthShortfall::InsufficientAal { required, .. } => {
                    Error::InsufficientAal { required }
                }
                sessiond_engine::AuthShortfall::ReauthenticationRequired { max_age, .. } => {
                    Error::ReauthenticationRequired {
                        max_age_secs: max_age.as_secs(),
                    }
                }
            })
    }
}

async fn guarded<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    requirement: AuthRequirement,
) -> Result<Session, GuardRejection> {
    let session = <Session as FromRequestParts<S>>::from_request_parts(parts, state)
        .await
        .map_err(GuardRejection::Session)?;
    session
        .require(&requirement)
        .map_err(GuardRejection::Unmet)?;
    Ok(session)
}

impl<S: Send + Sync, const LEVEL: u8> FromRequestParts<S> for RequireAal<LEVEL> {
    type Rejection = GuardRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // A level above 3 can never be met: refuse rather than wave through.
        let min_aal = Aal::from_level(LEVEL.max(1)).unwrap_or(Aal::Aal3);
        if LEVEL > 3 {
            return Err(GuardRejection::Unmet(Error::InsufficientAal {
                required: Aal::Aal3,
            }));
        }
        let requirement = AuthRequirement {
            min_aal: Some(min_aal),
            max_age: None,
        };
        guarded(parts, state, requirement).await.map(Self)
    }
}

impl<S: Send + Sync, const MAX_AGE_SECS: u64> FromRequestParts<S>
    for RequireRecentAuth<MAX_AGE_SECS>
{
    type Rejection = GuardRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let requirement = AuthRequirement {
            min_aal: None,
            max_age: Some(Duration::from_secs(MAX_AGE_SECS)),
        };
        guarded(parts, state, requirement).await.map(Self)
    }
}
