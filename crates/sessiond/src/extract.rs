//! Request extractors: JSON bodies whose rejections are problem+json, the
//! client behind trusted proxies, the admin API key, and the caller's own
//! session credential (Bearer or cookie) under the CSRF policy.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sessiond_engine::{Session, csrf_token_for};
use sessiond_http::csrf::{self, Credential};
use sessiond_http::{ClientInfo, bearer, cookie};

use crate::problem::Problem;
use crate::ratelimit::FailureBudget;
use crate::state::AppState;

/// A JSON body: 400 on malformed JSON, wrong types or unknown fields, 413
/// over the body limit, 415 without a JSON content type.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        if !is_json(req.headers()) {
            return Err(Problem::unsupported_media_type());
        }
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Problem::too_large("request body over the limit")
            } else {
                Problem::bad_request(e.body_text())
            }
        })?;
        // The fast path; a body that fails is parsed again by axum's
        // extractor, whose message names the offending field.
        if let Ok(value) = serde_json::from_slice(&body) {
            return Ok(Self(value));
        }
        match Json::<T>::from_bytes(&body) {
            Ok(Json(v)) => Ok(Self(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(Problem::bad_request(e.body_text())),
            Err(JsonRejection::JsonSyntaxError(_)) => Err(Problem::bad_request("malformed JSON")),
            Err(e) => Err(Problem::bad_request(e.body_text())),
        }
    }
}

/// A JSON body that may be left out: no body and no `Content-Type` is
/// `T::default()`; anything else is read as [`JsonBody`] is.
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let headers = req.headers();
        let empty = !headers.contains_key(axum::http::header::CONTENT_TYPE)
            && headers
                .get(axum::http::header::CONTENT_LENGTH)
                .is_none_or(|v| v.as_bytes() == b"0")
            && !headers.contains_key(axum::http::header::TRANSFER_ENCODING);
        if empty {
            return Ok(Self(T::default()));
        }
        JsonBody::from_request(req, state)
            .await
            .map(|JsonBody(v)| Self(v))
    }
}

/// Whether the request says its body is JSON: `application/json` or an
/// `application/…+json` type, with any parameters.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype
                .len()
                .checked_sub(5)
                .and_then(|at| subtype.get(at..))
                .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json")))
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

/// Two path parameters: 400 problem+json when they do not decode.
pub struct PathPair(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathPair {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map(|Path((a, b))| Self(a, b))
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

/// The client of a request: its address and the origin it used, read from
/// forwarding headers only when the TCP peer is one of `trusted_proxies`.
pub fn client_info(parts: &Parts, state: &AppState) -> ClientInfo {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
    ClientInfo::from_request(peer, &parts.headers, &state.trusted_proxies)
}

/// Count a failed check in `budget`: 401 with `detail` within the budget,
/// 429 with `Retry-After` beyond it.
pub fn failed_check(budget: &FailureBudget, ip: IpAddr, detail: &str) -> Problem {
    match budget.record_failure(ip) {
        Ok(()) => Problem::unauthorized(detail),
        Err(wait) => Problem::rate_limited(wait.as_secs_f64().ceil() as u64),
    }
}

/// Proof of an admin caller: `Authorization: Bearer <api key>`. A valid key
/// is never throttled; wrong keys count against the client's admin budget.
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        if bearer(&parts.headers).is_some_and(|key| state.api_key.verify(key)) {
            return Ok(Self);
        }
        let ip = client_info(parts, state).ip;
        Err(failed_check(
            &state.limiter.admin,
            ip,
            "admin routes need Authorization: Bearer <api key>",
        ))
    }
}

/// The client (see [`client_info`]).
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_info(parts, state)))
    }
}

/// What the `forward_auth` rules require of the request a proxy is deciding
/// on, by its path (`X-Forwarded-Uri` from Traefik, else `X-Original-URI`
/// as nginx is usually set up); nothing when neither is sent.
pub struct PathRequirement(pub sessiond_engine::AuthRequirement);

impl FromRequestParts<AppState> for PathRequirement {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let original = ["x-forwarded-uri", "x-original-uri"]
            .iter()
            .find_map(|h| parts.headers.get(*h).and_then(|v| v.to_str().ok()));
        Ok(Self(
            original
                .map(|path| state.forward_auth_requirement(path))
                .unwrap_or_default(),
        ))
    }
}

/// The caller of a public route: the live session its credential proves.
pub struct Caller {
    /// The caller's session (touched).
    pub session: Session,
    /// Whether the credential came from the cookie (then changes need CSRF proof).
    pub via_cookie: bool,
    /// The bindings of the session's role that this request broke, when
    /// the role flags instead of revoking (empty: none).
    pub risk: Vec<sessiond_engine::BindTo>,
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

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
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
        let client = client_info(parts, state);
        let refused = || {
            failed_check(
                &state.limiter.credentials,
                client.ip,
                "the session token is invalid, expired or revoked",
            )
        };
        let session = match found {
            Ok(Some(session)) => session,
            Ok(None) | Err(sessiond_engine::Error::Invalid { .. }) => return Err(refused()),
            Err(e) => return Err(e.into()),
        };
        let presenter = sessiond_engine::Presenter {
            ip: Some(client.ip),
            user_agent: parts
                .headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
        };
        let risk = match state.engine.check_binding(&session, &presenter).await? {
            sessiond_engine::BindingCheck::Kept => Vec::new(),
            sessiond_engine::BindingCheck::Flagged(broken) => broken,
            sessiond_engine::BindingCheck::Revoked(_) => return Err(refused()),
        };
        let credential = if via_cookie {
            Credential::Cookie(token)
        } else {
            Credential::Bearer
        };
        csrf::check(
            &parts.method,
            &parts.headers,
            &client,
            credential,
            csrf::header_token(&parts.headers),
        )
        .map_err(Problem::csrf)?;
        Ok(Caller {
            session,
            via_cookie,
            risk,
            token: token.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        let headers = |ct: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_str(ct).unwrap_or_else(|e| panic!("{e}")),
            );
            h
        };
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/problem+json",
            "application/vnd.api+JSON",
        ] {
            assert!(is_json(&headers(ok)), "{ok}");
        }
        for bad in [
            "text/json",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "json",
            "+json",
            "application/+jso",
        ] {
            assert!(!is_json(&headers(bad)), "{bad}");
        }
        assert!(!is_json(&axum::http::HeaderMap::new()));
    }

    #[test]
    fn csrf_tokens_are_per_token() {
        assert_eq!(csrf_token_for("a"), csrf_token_for("a"));
        assert_ne!(csrf_token_for("a"), csrf_token_for("b"));
    }
}
