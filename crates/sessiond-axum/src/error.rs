//! What handlers get when a session operation fails, and the HTTP answer
//! each failure turns into.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use sessiond_engine::Aal;

use crate::backend::BackendError;

/// A session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request has no live session (or it was logged out in this request).
    #[error("not signed in")]
    NoSession,
    /// No live session of this user has that id.
    #[error("no such session")]
    NotFound,
    /// A value could not be turned into JSON or back (a type the app did not
    /// store under that key).
    #[error("session data: {0}")]
    Data(String),
    /// The session's assurance level is below `required`: the user must
    /// step up.
    #[error("authentication at {required} or above is required")]
    InsufficientAal {
        /// The level asked for.
        required: Aal,
    },
    /// The user authenticated longer ago than `max_age_secs`: they must
    /// authenticate again.
    #[error("an authentication within the last {max_age_secs} s is required")]
    ReauthenticationRequired {
        /// The longest age accepted, in seconds.
        max_age_secs: u64,
    },
    /// The backend refused or could not be reached.
    #[error(transparent)]
    Backend(BackendError),
}

impl Error {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoSession
            | Self::InsufficientAal { .. }
            | Self::ReauthenticationRequired { .. } => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Data(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Backend(b) => match b {
                BackendError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                BackendError::Invalid(_) => StatusCode::BAD_REQUEST,
                BackendError::LimitReached(_) | BackendError::IssuedBeforeRevocation(_) => {
                    StatusCode::CONFLICT
                }
                BackendError::DataTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                BackendError::Other(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

/// A plain-text answer; server-side failures are logged and answered
/// without their details.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let text = if status.is_server_error() {
            tracing::error!(error = %self, "session operation failed");
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            self.to_string()
        };
        let mut response = (status, text).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        // RFC 9470: what the user must do, for a client that can act on it.
        let challenge = match &self {
            Self::InsufficientAal { required } => Some(format!(
                r#"Bearer error="insufficient_user_authentication", acr_values="{required}""#
            )),
            Self::ReauthenticationRequired { max_age_secs } => Some(format!(
                r#"Bearer error="insufficient_user_authentication", max_age="{max_age_secs}""#
            )),
            _ => (status == StatusCode::UNAUTHORIZED).then(|| "Bearer".to_owned()),
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let cases = [
            (Error::NoSession, 401),
            (Error::NotFound, 404),
            (Error::Data("x".into()), 500),
            (
                Error::Backend(BackendError::Unavailable("down".into())),
                503,
            ),
            (Error::Backend(BackendError::Invalid("x".into())), 400),
            (Error::Backend(BackendError::LimitReached("x".into())), 409),
            (
                Error::Backend(BackendError::IssuedBeforeRevocation("x".into())),
                409,
            ),
            (Error::Backend(BackendError::DataTooLarge("x".into())), 413),
            (
                Error::Backend(BackendError::Other("secret detail".into())),
                500,
            ),
        ];
        for (e, status) in cases {
            let r = e.into_response();
            assert_eq!(r.status().as_u16(), status);
            if status == 503 {
                assert_eq!(r.headers()[header::RETRY_AFTER], "1");
            }
        }
    }
}

/// Layer settings that cannot work, and why.
#[derive(Debug, thiserror::Error)]
#[error("invalid session layer settings: {0}")]
pub struct InvalidSettings(pub String);
