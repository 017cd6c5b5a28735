//! The tower layer: finds the credential, refuses cross-site and CSRF-less
//! changes, loads the session once, runs the handler, then saves its data
//! changes in one write and sets or clears the cookie.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sessiond_engine::{csrf_token_for, csrf_token_matches};
use tower::{Layer, Service};

use crate::backend::SessionBackend;
use crate::context::{CookieChange, SessionContext};
use crate::cookies;
use crate::csrf::{self, CSRF_HEADER};
use crate::error::Error;
use crate::settings::{CookieSettings, InvalidSettings};

/// Default cap on a form body read for its CSRF field.
pub const DEFAULT_MAX_FORM_BYTES: usize = 64 * 1024;

/// Adds sessions to every route beneath it.
#[derive(Clone, Debug)]
pub struct SessionLayer {
    config: Arc<LayerConfig>,
}

#[derive(Clone, Debug)]
struct LayerConfig {
    backend: Arc<dyn SessionBackend>,
    cookie: CookieSettings,
    max_form_bytes: usize,
    forwarded_for: bool,
}

impl SessionLayer {
    /// Sessions from `backend`, with the default cookie (`sessiond`, Secure,
    /// HttpOnly, SameSite=Lax, Path=/).
    pub fn new(backend: impl SessionBackend) -> Self {
        Self {
            config: Arc::new(LayerConfig {
                backend: Arc::new(backend),
                cookie: CookieSettings::default(),
                max_form_bytes: DEFAULT_MAX_FORM_BYTES,
                forwarded_for: false,
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut LayerConfig)) -> Self {
        let mut config = LayerConfig::clone(&self.config);
        f(&mut config);
        self.config = Arc::new(config);
        self
    }

    /// Use these cookie attributes.
    pub fn with_cookie(self, cookie: CookieSettings) -> Result<Self, InvalidSettings> {
        cookie.validate().map_err(InvalidSettings)?;
        Ok(self.edit(|c| c.cookie = cookie))
    }

    /// Largest urlencoded form body read to find its CSRF field (default 64
    /// KiB); a larger one without the `x-csrf-token` header is refused (413).
    pub fn with_max_form_bytes(self, max: usize) -> Self {
        self.edit(|c| c.max_form_bytes = max)
    }

    /// Take the client IP recorded at login from the last `X-Forwarded-For`
    /// entry (the one your reverse proxy added) instead of the peer address.
    /// Only behind exactly one trusted proxy: clients can send the header.
    pub fn with_forwarded_for(self, trusted: bool) -> Self {
        self.edit(|c| c.forwarded_for = trusted)
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> SessionService<S> {
        SessionService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around a route.
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    config: Arc<LayerConfig>,
}

impl<S> Service<Request<Body>> for SessionService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The clone is not ready; the ready one serves this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(async move { Ok(handle(&config, inner, req).await) })
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

fn forbidden(why: &'static str) -> Response {
    (StatusCode::FORBIDDEN, why).into_response()
}

fn client_ip(req: &Request<Body>, forwarded_for: bool) -> Option<String> {
    if forwarded_for
        && let Some(last) = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| v.parse::<std::net::IpAddr>().is_ok())
    {
        return Some(last.to_owned());
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}

/// Check the CSRF proof of a cookie-authenticated unsafe request: the header,
/// or else the form field (the body is read, up to the limit, and put back).
async fn check_csrf(
    req: Request<Body>,
    token: &str,
    max_form_bytes: usize,
) -> Result<Request<Body>, Response> {
    let expected = csrf_token_for(token);
    if let Some(presented) = req.headers().get(CSRF_HEADER) {
        return if csrf_token_matches(presented.as_bytes(), &expected) {
            Ok(req)
        } else {
            Err(forbidden("wrong CSRF token"))
        };
    }
    if !csrf::is_form(req.headers()) {
        return Err(forbidden("missing CSRF token"));
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, max_form_bytes).await else {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response());
    };
    match csrf::form_field(&bytes) {
        Some(v) if csrf_token_matches(v.as_bytes(), &expected) => {
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        Some(_) => Err(forbidden("wrong CSRF token")),
        None => Err(forbidden("missing CSRF token")),
    }
}

async fn handle<S>(config: &LayerConfig, mut inner: S, mut req: Request<Body>) -> Response
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    let unsafe_method = csrf::is_unsafe(req.method());
    let bearer = bearer(req.headers());
    let from_cookie = bearer.is_none();
    if unsafe_method && from_cookie && csrf::cross_origin(req.headers()) {
        return forbidden("cross-origin request refused");
    }
    let cookie = if from_cookie {
        cookies::read(req.headers(), &config.cookie.name).map(str::to_owned)
    } else {
        None
    };
    let presented_cookie = cookie.is_some();
    let loaded = match bearer.or(cookie) {
        None => None,
        Some(token) => match config.backend.load(&token).await {
            Ok(found) => found.map(|session| (session, token)),
            // Fail closed: no session is assumed while the store is down.
            Err(e) => return Error::Backend(e).into_response(),
        },
    };
    let stale_cookie = presented_cookie && loaded.is_none();
    let signed_in = loaded.is_some();
    if unsafe_method
        && from_cookie
        && let Some((_, token)) = &loaded
    {
        req = match check_csrf(req, token, config.max_form_bytes).await {
            Ok(req) => req,
            Err(refused) => return refused,
        };
    }
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ip = client_ip(&req, config.forwarded_for);
    let ctx = SessionContext::new(config.backend.clone(), loaded, user_agent, ip);
    req.extensions_mut().insert(ctx.clone());
    let mut response = match inner.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };

    let pending = ctx.take_pending();
    let mut cookie = pending.cookie;
    if let Some((id, changes)) = pending.save {
        match config.backend.merge_data(&id, changes).await {
            Ok(Some(_)) => {}
            // Ended meanwhile (signed out from another device): the changes
            // went with it, and this client is signed out.
            Ok(None) => {
                response = Error::NoSession.into_response();
                cookie = CookieChange::Clear;
            }
            Err(e) => response = Error::Backend(e).into_response(),
        }
    }
    let set_cookie = match cookie {
        CookieChange::Set {
            token,
            max_age_secs,
        } => cookies::setting(&config.cookie, &token, max_age_secs),
        CookieChange::Clear => cookies::clearing(&config.cookie),
        CookieChange::Keep if stale_cookie => cookies::clearing(&config.cookie),
        CookieChange::Keep => None,
    };
    let headers = response.headers_mut();
    if let Some(value) = set_cookie {
        headers.append(header::SET_COOKIE, value);
        // A response that hands out or removes a credential is never cached.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    } else if signed_in && !headers.contains_key(header::CACHE_CONTROL) {
        // Nor is a page rendered for a signed-in user (unless the handler
        // says otherwise): after a sign-out, Back must not show it again.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn client_ip_prefers_the_proxy_entry_only_when_trusted() {
        let mut req = Request::new(Body::empty());
        req.headers_mut().insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, not-an-ip, 2.2.2.2"),
        );
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
        assert_eq!(client_ip(&req, false).as_deref(), Some("127.0.0.1"));
        assert_eq!(client_ip(&req, true).as_deref(), Some("2.2.2.2"));
    }
}
