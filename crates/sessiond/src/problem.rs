//! Every error answer: `application/problem+json` bodies (RFC 9457) and the
//! one mapping from engine errors to HTTP status codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sessiond_api::ProblemBody;
use sessiond_engine::{Aal, AuthShortfall, Error};

/// An error answer, ready to send.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    retry_after_secs: Option<u64>,
    /// The `WWW-Authenticate` header, if any.
    challenge: Option<String>,
    /// Extension members of an authentication shortfall.
    min_aal: Option<Aal>,
    max_age: Option<u64>,
}

/// The challenge of a missing or bad credential.
const INVALID_TOKEN: &str = r#"Bearer realm="sessiond", error="invalid_token""#;

impl Problem {
    fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            retry_after_secs: None,
            challenge: None,
            min_aal: None,
            max_age: None,
        }
    }

    /// 431: the request's headers are larger than the limit.
    pub fn headers_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            "Request header fields too large",
            format!("the request line and headers exceed {limit} bytes"),
        )
    }

    /// 400: the request is malformed or a value is out of range.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    /// 401 with a `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self {
            challenge: Some(INVALID_TOKEN.to_owned()),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                detail,
            )
        }
    }

    /// 401: the session is live but its authentication falls short of what
    /// the check required (RFC 9470's `insufficient_user_authentication`):
    /// `insufficient_aal` (step up to `min_aal`) or
    /// `reauthentication_required` (authenticate again within `max_age`).
    pub fn auth_shortfall(shortfall: &AuthShortfall) -> Self {
        match *shortfall {
            AuthShortfall::InsufficientAal { required, current } => Self {
                challenge: Some(format!(
                    r#"Bearer realm="sessiond", error="insufficient_user_authentication", error_description="a higher authentication level is required", acr_values="{required}""#
                )),
                min_aal: Some(required),
                ..Self::new(
                    StatusCode::UNAUTHORIZED,
                    "insufficient_aal",
                    "Insufficient authentication level",
                    format!(
                        "this needs authentication at {required} or above; the session is at {current}: step up and retry"
                    ),
                )
            },
            AuthShortfall::ReauthenticationRequired {
                max_age,
                authenticated_at,
            } => {
                let secs = max_age.as_secs();
                Self {
                    challenge: Some(format!(
                        r#"Bearer realm="sessiond", error="insufficient_user_authentication", error_description="a more recent authentication is required", max_age="{secs}""#
                    )),
                    max_age: Some(secs),
                    ..Self::new(
                        StatusCode::UNAUTHORIZED,
                        "reauthentication_required",
                        "Reauthentication required",
                        format!(
                            "this needs an authentication within the last {secs} s; the user last authenticated at {}: authenticate again and retry",
                            authenticated_at.to_rfc3339()
                        ),
                    )
                }
            }
        }
    }

    /// 403: a change refused by the CSRF policy.
    pub fn csrf(refusal: sessiond_http::CsrfRefusal) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "CSRF check failed",
            refusal.detail(),
        )
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this path does not accept this method",
        )
    }

    /// 408: the request was not received and answered in time.
    pub fn timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "Request timeout",
            format!(
                "the request was not received and answered within {}",
                crate::config::duration_text::format(limit)
            ),
        )
    }

    /// 413.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Payload too large",
            detail,
        )
    }

    /// 415.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send a JSON body with Content-Type: application/json",
        )
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                "too many failed credential checks from this address; retry later",
            )
        }
    }

    /// 501: a documented feature that this build, or the configured store,
    /// does not serve.
    pub fn not_implemented(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "not-implemented",
            "Not implemented",
            detail,
        )
    }

    /// 503 with `Retry-After`: the store is unreachable.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            retry_after_secs: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "Store unavailable",
                detail,
            )
        }
    }

    /// 500: a bug or a damaged record; the detail stays generic.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server failed to handle this request",
        )
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Its JSON body.
    pub fn body(&self) -> ProblemBody {
        ProblemBody {
            kind: format!("urn:sessiond:problem:{}", self.slug),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            min_aal: self.min_aal,
            max_age: self.max_age,
        }
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { field, reason } => {
                Self::bad_request(format!("invalid {field}: expected {reason}"))
            }
            Error::NotFound => Self::not_found("no live session with this id"),
            Error::RefreshTokenReused => Self::unauthorized(
                "refresh token reused after its grace period: the session has been revoked",
            ),
            Error::LimitReached { max } => Self::new(
                StatusCode::CONFLICT,
                "session-limit",
                "Session limit reached",
                format!("the user already has {max} live sessions and the policy is reject"),
            ),
            Error::IssuedBeforeRevocation => Self::new(
                StatusCode::CONFLICT,
                "issued-before-revocation",
                "Issued before a revocation",
                "the user's sessions issued before a later time have been revoked; \
                 this create started before then: retry it",
            ),
            Error::DataTooLarge { size, max } => Self::too_large(format!(
                "session data would be {size} bytes, over the limit of {max}"
            )),
            Error::Unavailable(reason) => {
                tracing::warn!(%reason, "store unavailable");
                Self::unavailable("the session store is unreachable; retry shortly")
            }
            Error::Corrupt(reason) => {
                tracing::error!(%reason, "corrupt stored record");
                Self::internal()
            }
            // What the store says is missing and where to find it.
            Error::Unsupported(detail) => Self::not_implemented(detail),
            Error::AuthRequirement(shortfall) => Self::auth_shortfall(&shortfall),
            Error::CursorExpired(detail) => Self::new(
                StatusCode::GONE,
                "event-cursor-expired",
                "Event cursor expired",
                format!(
                    "cannot resume from this event id without missing events: {detail}; \
                     start again from the oldest kept event or from now"
                ),
            ),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let json = serde_json::to_vec(&self.body()).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_spec_statuses() {
        let cases = [
            (Error::NotFound, 404),
            (Error::LimitReached { max: 2 }, 409),
            (Error::IssuedBeforeRevocation, 409),
            (Error::DataTooLarge { size: 2, max: 1 }, 413),
            (Error::Unavailable("down".into()), 503),
            (Error::Corrupt("bad".into()), 500),
            (Error::Unsupported("no history here".into()), 501),
            (Error::CursorExpired("gone".into()), 410),
        ];
        for (e, status) in cases {
            assert_eq!(Problem::from(e).status().as_u16(), status);
        }
        let invalid = Problem::from(Error::Invalid {
            field: "user_id",
            reason: "1..=256 bytes".into(),
        });
        assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
        let r = Problem::unavailable("x").into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert!(
            Problem::unauthorized("x")
                .into_response()
                .headers()
                .contains_key(header::WWW_AUTHENTICATE)
        );
    }
}
