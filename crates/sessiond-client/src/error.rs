//! [`Error`]: what a call can fail with, mapped from the server's
//! problem+json status codes and from transport failures.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use sessiond_api::ProblemBody;

/// Longest detail kept from an error body that is not problem+json.
const MAX_DETAIL_CHARS: usize = 256;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: the request was malformed or a value is out of range.
    #[error("invalid request: {detail}")]
    Invalid {
        /// The server's explanation.
        detail: String,
    },
    /// 401: no credential, or an invalid, expired or revoked one (also a
    /// wrong API key, and a reused refresh token).
    #[error("unauthorized: missing, invalid, expired or revoked credential")]
    Unauthorized,
    /// 401 `insufficient_aal`: the session is live, but below the level
    /// the check required; the user must step up to `required`.
    #[error("authentication level too low: {detail}")]
    InsufficientAal {
        /// The level asked for.
        required: Option<sessiond_api::Aal>,
        /// The server's explanation.
        detail: String,
    },
    /// 401 `reauthentication_required`: the session is live, but the user
    /// authenticated longer ago than `max_age` allows.
    #[error("reauthentication required: {detail}")]
    ReauthenticationRequired {
        /// The longest age accepted, in seconds.
        max_age: Option<u64>,
        /// The server's explanation.
        detail: String,
    },
    /// 403: the server refused the change (CSRF check).
    #[error("forbidden")]
    Forbidden,
    /// 404: no live session with this id (for this caller).
    #[error("not found")]
    NotFound,
    /// 409: the user is at `max_sessions` and the policy is `reject`.
    #[error("session limit reached: {detail}")]
    LimitReached {
        /// The server's explanation.
        detail: String,
    },
    /// 409 `issued-before-revocation`: the user's sessions issued before a
    /// later time were revoked while this create was under way; retry it.
    #[error("issued before a revocation: {detail}")]
    IssuedBeforeRevocation {
        /// The server's explanation.
        detail: String,
    },
    /// 413: the body or the session data is over the limit.
    #[error("too large: {detail}")]
    TooLarge {
        /// The server's explanation.
        detail: String,
    },
    /// 410: the event id to resume from is older than the feed's
    /// retention; events after it are gone.
    #[error("event id expired: {detail}")]
    CursorExpired {
        /// The server's explanation.
        detail: String,
    },
    /// 429: too many failed credential checks from this address.
    #[error("rate limited")]
    RateLimited {
        /// How long the server asked to wait.
        retry_after: Option<Duration>,
    },
    /// 503 (the session store is unreachable), or the server itself could
    /// not be reached: connection refused or reset, or no answer in time.
    #[error("sessiond or its store is unavailable")]
    Unavailable {
        /// How long the server asked to wait, when it answered.
        retry_after: Option<Duration>,
    },
    /// Any other non-2xx answer (500 is a server bug).
    #[error("unexpected answer {status}: {detail}")]
    Server {
        /// HTTP status code.
        status: u16,
        /// The server's explanation, or the start of the body.
        detail: String,
    },
    /// A 2xx answer whose body is not what the API promises.
    #[error("cannot decode the answer: {0}")]
    Decode(String),
    /// The client was set up wrongly (bad base URL, unusable API key).
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether the server or its store could not be reached: retrying later
    /// may succeed, and the credential's validity is unknown (fail closed).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// The wait the server asked for (429 and 503).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::Unavailable { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// The error of a non-2xx answer.
    pub(crate) fn from_status(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let retry_after = retry_after(headers);
        match status.as_u16() {
            400 => Self::Invalid {
                detail: detail(status, body),
            },
            401 => match serde_json::from_slice::<ProblemBody>(body) {
                Ok(p) if p.kind == INSUFFICIENT_AAL => Self::InsufficientAal {
                    required: p.min_aal,
                    detail: p.detail,
                },
                Ok(p) if p.kind == REAUTHENTICATION_REQUIRED => Self::ReauthenticationRequired {
                    max_age: p.max_age,
                    detail: p.detail,
                },
                _ => Self::Unauthorized,
            },
            403 => Self::Forbidden,
            404 => Self::NotFound,
            409 if problem_type(body).as_deref() == Some(ISSUED_BEFORE_REVOCATION) => {
                Self::IssuedBeforeRevocation {
                    detail: detail(status, body),
                }
            }
            409 => Self::LimitReached {
                detail: detail(status, body),
            },
            413 => Self::TooLarge {
                detail: detail(status, body),
            },
            410 => Self::CursorExpired {
                detail: detail(status, body),
            },
            429 => Self::RateLimited { retry_after },
            503 => Self::Unavailable { retry_after },
            code => Self::Server {
                status: code,
                detail: detail(status, body),
            },
        }
    }

    /// The error of a request that got no (complete) answer.
    pub(crate) fn transport(e: &reqwest::Error) -> Self {
        if e.is_builder() {
            return Self::Config(e.to_string());
        }
        Self::Unavailable { retry_after: None }
    }
}

/// `Retry-After` in seconds (the form sessiond sends).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The problem type of a create refused by a revocation of what was issued
/// before a later time.
const ISSUED_BEFORE_REVOCATION: &str = "urn:sessiond:problem:issued-before-revocation";
/// The problem type of a session below the level a check required.
const INSUFFICIENT_AAL: &str = "urn:sessiond:problem:insufficient_aal";
/// The problem type of a session whose user authenticated too long ago.
const REAUTHENTICATION_REQUIRED: &str = "urn:sessiond:problem:reauthentication_required";

/// The problem's `type`, if the body is problem+json.
fn problem_type(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ProblemBody>(body)
        .ok()
        .map(|p| p.kind)
}

/// The problem's `detail`, else the start of the body, else the status text.
fn detail(status: StatusCode, body: &[u8]) -> String {
    if let Ok(problem) = serde_json::from_slice::<ProblemBody>(body) {
        return problem.detail;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("no detail").to_owned();
    }
    text.chars().take(MAX_DETAIL_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn problem(status: u16, detail: &str) -> Vec<u8> {
        serde_json::json!({"type": "urn:x", "title": "t", "status": status, "detail": detail})
            .to_string()
            .into_bytes()
    }

    fn map(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT);
        Error::from_status(status, headers, body)
    }

    #[test]
    fn statuses_map_to_variants() {
        let none = HeaderMap::new();
        assert!(matches!(map(400, &none, &problem(400, "bad user_id")),
            Error::Invalid { detail } if detail == "bad user_id"));
        assert!(matches!(map(401, &none, b""), Error::Unauthorized));
        assert!(matches!(map(403, &none, b""), Error::Forbidden));
        assert!(matches!(map(404, &none, b""), Error::NotFound));
        assert!(matches!(map(409, &none, &problem(409, "full")),
            Error::LimitReached { detail } if detail == "full"));
        let refused = serde_json::json!({
            "type": "urn:sessiond:problem:issued-before-revocation",
            "title": "t", "status": 409, "detail": "retry"
        })
        .to_string();
        assert!(matches!(map(409, &none, refused.as_bytes()),
            Error::IssuedBeforeRevocation { detail } if detail == "retry"));
        assert!(matches!(map(413, &none, b"too big"),
            Error::TooLarge { detail } if detail == "too big"));
        assert!(matches!(map(500, &none, b""),
            Error::Server { status: 500, detail } if detail == "Internal Server Error"));
        let long = "x".repeat(10_000);
        assert!(matches!(map(502, &none, long.as_bytes()),
            Error::Server { status: 502, detail } if detail.len() == MAX_DETAIL_CHARS));
        assert!(matches!(
            map(418, &none, &[0xff, 0xfe]),
            Error::Server { status: 418, .. }
        ));
    }

    #[test]
    fn retry_after_is_read_from_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let e = map(429, &headers, b"");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let e = map(503, &headers, b"");
        assert!(e.is_unavailable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(map(503, &headers, b"").retry_after(), None);
        assert!(!Error::NotFound.is_unavailable());
    }
}
