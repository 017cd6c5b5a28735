//! Request extractors: JSON bodies whose rejections are problem+json, the
//! admin API key, and the caller's own session credential (Bearer or cookie)
//! with the CSRF check for cookie-authenticated changes.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use serde::de::DeserializeOwned;
use sessiond_engine::{Session, csrf_token_for, csrf_token_matches};

use crate::app::AppState;
use crate::problem::Problem;

/// Header carrying the double-submit CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A JSON body: 400 on malformed JSON, wrong types or unknown fields, 413
/// over the body limit, 415 without a JSON content type.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(Problem::unsupported_media_type()),
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(Problem::too_large("request body over the limit"))
            }
            Err(JsonRejection::JsonDataError(e)) => Err(Problem::bad_request(e.body_text())),
            Err(JsonRejection::JsonSyntaxError(_)) => Err(Problem::bad_request("malformed JSON")),
            Err(e) => Err(Problem::bad_request(e.body_text())),
        }
    }
}

/// Query parameters: 400 problem+json on unknown or malformed parameters.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Self(v))
            .map_err(|e| Problem::bad_request(e.body_text()))
    }
}

/// One path parameter: 400 problem+json when it does not decode.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|e| Problem::bad_request(e.body_text()))
    }
}

/// The client address (the TCP peer; proxies are not trusted by default).
pub fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// Proof of an admin caller: `Authorization: Bearer <api key>`.
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let ip = client_ip(parts);
        if let Err(wait) = state.limiter.check(ip) {
            return Err(Problem::rate_limited(wait.as_secs_f64().ceil() as u64));
        }
        match bearer(&parts.headers) {
            Some(key) if state.api_key.verify(key) => Ok(Self),
            _ => {
                state.limiter.record_failure(ip);
                Err(Problem::unauthorized(
                    "admin routes need Authorization: Bearer <api key>",
                ))
            }
        }
    }
}

/// The client's IP address (see [`client_ip`]).
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(parts)))
    }
}

/// The caller of a public route: the live session its credential proves.
pub struct Caller {
    /// The caller's session (touched).
    pub session: Session,
    /// Whether the credential came from the cookie (then changes need CSRF proof).
    pub via_cookie: bool,
    /// The credential itself, to derive the CSRF token from. Never log it.
    token: String,
}

impl Caller {
    /// The double-submit CSRF token of this session: derived from its token,
    /// so only a holder of the token can know it.
    pub fn csrf_token(&self) -> String {
        csrf_token_for(&self.token)
    }
}

fn same_origin(headers: &HeaderMap) -> bool {
    let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let ip = client_ip(parts);
        if let Err(wait) = state.limiter.check(ip) {
            return Err(Problem::rate_limited(wait.as_secs_f64().ceil() as u64));
        }
        let (token, via_cookie) = match bearer(&parts.headers) {
            Some(t) => (t, false),
            None => match cookie(&parts.headers, &state.cookie.name) {
                Some(t) => (t, true),
                None => {
                    return Err(Problem::unauthorized(
                        "send a session token as Authorization: Bearer or in the session cookie",
                    ));
                }
            },
        };
        // The cookie carries session tokens only; Bearer either kind.
        let found = if via_cookie {
            state.engine.introspect(token, true).await
        } else {
            state.session_for(token, true).await
        };
        let session = match found {
            Ok(Some(session)) => session,
            Ok(None) | Err(sessiond_engine::Error::Invalid { .. }) => {
                state.limiter.record_failure(ip);
                return Err(Problem::unauthorized(
                    "the session token is invalid, expired or revoked",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let caller = Caller {
            session,
            via_cookie,
            token: token.to_owned(),
        };
        let changes_state = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if caller.via_cookie && changes_state {
            let presented = parts.headers.get(CSRF_HEADER).map(|v| v.as_bytes());
            let token_ok = presented.is_some_and(|p| csrf_token_matches(p, &caller.csrf_token()));
            if !token_ok && !same_origin(&parts.headers) {
                return Err(Problem::csrf());
            }
        }
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn parses_bearer_and_cookies() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sessiond=tok; b=2"),
        );
        assert_eq!(cookie(&h, "sessiond"), Some("tok"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("app.example:8080"));
        assert!(!same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://app.example:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn csrf_tokens_are_per_token() {
        assert_eq!(csrf_token_for("a"), csrf_token_for("a"));
        assert_ne!(csrf_token_for("a"), csrf_token_for("b"));
    }
}
