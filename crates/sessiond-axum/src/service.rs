//! The tower layer: finds the credential, refuses cross-site and CSRF-less
//! changes, loads the session once, runs the handler, then saves its data
//! changes in one write and sets or clears the cookie.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sessiond_http::csrf::{self, Credential, CsrfRefusal};
use sessiond_http::{ClientInfo, CookieSettings, TrustedProxies};
use tower::{Layer, Service};

use crate::backend::SessionBackend;
use crate::context::{CookieChange, SessionContext};
use crate::error::{Error, InvalidSettings};

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
    trusted_proxies: TrustedProxies,
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
                trusted_proxies: TrustedProxies::none(),
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
        cookie
            .validate()
            .map_err(|bad| InvalidSettings(bad.to_string()))?;
        Ok(self.edit(|c| c.cookie = cookie))
    }

    /// Largest urlencoded form body read to find its CSRF field (default 64
    /// KiB); a larger one without the `x-csrf-token` header is refused (413).
    pub fn with_max_form_bytes(self, max: usize) -> Self {
        self.edit(|c| c.max_form_bytes = max)
    }

    /// Believe the forwarding headers (`X-Forwarded-For`, `-Proto`, `-Host`,
    /// or `Forwarded`) of requests from these reverse proxies: the client
    /// address recorded at login, and the origin the CSRF check compares
    /// `Origin` with, then come from them (see [`TrustedProxies`]). By
    /// default no proxy is trusted.
    pub fn with_trusted_proxies(self, proxies: TrustedProxies) -> Self {
        self.edit(|c| c.trusted_proxies = proxies)
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

/// Whether the request asks to become a WebSocket (`Upgrade: websocket`).
fn is_websocket_upgrade(headers: &header::HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
}

fn forbidden(refusal: CsrfRefusal) -> Response {
    (StatusCode::FORBIDDEN, refusal.detail()).into_response()
}

/// The CSRF token an unsafe request presents: its header, or else (for an
/// urlencoded form) its form field, read from the body up to `max_form_bytes`
/// and put back for the handler.
async fn presented_token(
    req: Request<Body>,
    credential: Credential<'_>,
    max_form_bytes: usize,
) -> Result<(Request<Body>, Option<Vec<u8>>), Response> {
    if !csrf::token_may_be_in_form(req.method(), req.headers(), credential) {
        let token = csrf::header_token(req.headers()).map(<[u8]>::to_vec);
        return Ok((req, token));
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, max_form_bytes).await else {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response());
    };
    let token = csrf::form_token(&bytes).map(String::into_bytes);
    Ok((Request::from_parts(parts, Body::from(bytes)), token))
}

async fn handle<S>(config: &LayerConfig, mut inner: S, req: Request<Body>) -> Response
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let client = ClientInfo::from_request(
        peer.unwrap_or(IpAddr::from([127, 0, 0, 1])),
        req.headers(),
        &config.trusted_proxies,
    );
    let bearer = sessiond_http::bearer(req.headers()).map(str::to_owned);
    let cookie = match bearer {
        Some(_) => None,
        None => sessiond_http::cookie(req.headers(), &config.cookie.name).map(str::to_owned),
    };
    let presented_cookie = cookie.is_some();
    let loaded = match bearer.as_ref().or(cookie.as_ref()) {
        None => None,
        Some(token) => match config.backend.load(token).await {
            Ok(found) => found.map(|session| (session, token.clone())),
            // Fail closed: no session is assumed while the store is down.
            Err(e) => return Error::Backend(e).into_response(),
        },
    };
    let stale_cookie = presented_cookie && loaded.is_none();
    let signed_in = loaded.is_some();
    let credential = match (&bearer, &loaded) {
        (Some(_), _) => Credential::Bearer,
        (None, Some((_, token))) => Credential::Cookie(token),
        (None, None) => Credential::None,
    };
    let (mut req, presented) = match presented_token(req, credential, config.max_form_bytes).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    if let Err(refusal) = csrf::check(
        req.method(),
        req.headers(),
        &client,
        credential,
        presented.as_deref(),
    ) {
        return forbidden(refusal);
    }
    // A WebSocket handshake is a GET that no CSRF token comes with, yet it
    // opens a channel both ways: a page of another site must not open one
    // with the user's cookie (browsers always send `Origin` on it).
    if matches!(credential, Credential::Cookie(_))
        && is_websocket_upgrade(req.headers())
        && csrf::cross_site(req.headers(), &client)
    {
        return forbidden(CsrfRefusal::CrossSite);
    }
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Without a known peer (no ConnectInfo), record no address.
    let ip = peer.map(|_| client.ip.to_string());
    let ctx = SessionContext::new(config.backend.clone(), loaded, user_agent, ip, stale_cookie);
    req.extensions_mut().insert(ctx.clone());
    let mut response = match inner.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };

    let pending = ctx.take_pending();
    let mut cookie_change = pending.cookie;
    if let Some((id, changes)) = pending.save {
        match config.backend.merge_data(&id, changes).await {
            Ok(Some(_)) => {}
            // Ended meanwhile (signed out from another device): the changes
            // went with it, and this client is signed out.
            Ok(None) => {
                response = Error::NoSession.into_response();
                cookie_change = CookieChange::Clear;
            }
            Err(e) => response = Error::Backend(e).into_response(),
        }
    }
    let set_cookie = match cookie_change {
        CookieChange::Set {
            token,
            max_age_secs,
        } => config.cookie.set(&token, max_age_secs),
        CookieChange::Clear => config.cookie.clear(),
        CookieChange::Keep if stale_cookie => config.cookie.clear(),
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
