//! axum extractors: [`SessionContext`] (always), [`Session`] (401 without a
//! live session) and `Option<Session>`.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::context::{Session, SessionContext};
use crate::error::Error;

/// Why a session extractor refused the request.
#[derive(Debug)]
pub enum SessionRejection {
    /// No live session: 401.
    NoSession,
    /// The route is not behind a [`crate::SessionLayer`]: a wiring bug, 500.
    MissingLayer,
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        match self {
            Self::NoSession => Error::NoSession.into_response(),
            Self::MissingLayer => {
                tracing::error!("a session extractor is used on a route without SessionLayer");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SessionContext {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<SessionContext>()
            .cloned()
            .ok_or(SessionRejection::MissingLayer)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ctx = SessionContext::from_request_parts(parts, state).await?;
        ctx.session().ok_or(SessionRejection::NoSession)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let ctx = <SessionContext as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        Ok(ctx.session())
    }
}
