//! A small site on `sessiond-axum`: sign in as a demo user, count clicks in
//! the session, and see and sign out your devices, which show whether they
//! are online; an open page goes to the login page as soon as its session
//! ends. Server-rendered HTML with plain CSS and a few lines of plain
//! JavaScript; forms carry the CSRF token.
#![forbid(unsafe_code)]

pub mod live;
pub mod pages;
pub mod remote_sign_outs;
pub mod throttle;
pub mod users;

use askama::Template;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::{Deserialize, Serialize};
use sessiond_axum::{
    Error, Session, SessionContext, SessionId, SessionLayer, WebSocketUpgrade, cookie,
};
use sessiond_engine::{Clock, Policy, RolePolicy, SystemClock};

use crate::live::{Live, PresenceError};
use crate::pages::{Confirm, DeviceRow, Devices, Home, Login};
use crate::remote_sign_outs::RemoteSignOuts;
use crate::throttle::{LoginGuard, LoginLimits, Refused};
use crate::users::USERS;

/// Two roles, as in sessiond's example config: admins get shorter sessions
/// and at most two devices.
pub fn policy() -> Policy {
    let mut policy = Policy::default();
    policy.roles.insert(
        "admin".into(),
        RolePolicy {
            idle_ttl: std::time::Duration::from_secs(15 * 60),
            absolute_ttl: std::time::Duration::from_secs(12 * 3600),
            max_sessions: 2,
        },
    );
    policy
}

const STYLE: &str = include_str!("../static/style.css");

/// The site, with sessions from `layer`, live pages over the same sessions
/// (`None`: pages do not follow their session, and devices show no
/// presence), and the default sign-in limits.
pub fn app(layer: SessionLayer, live: Option<Live>) -> Router {
    app_with_guard(
        layer,
        live,
        Arc::new(LoginGuard::new(LoginLimits::default())),
    )
}

/// The site, with sessions from `layer`, live pages from `live`, and
/// sign-ins admitted by `guard`.
pub fn app_with_guard(layer: SessionLayer, live: Option<Live>, guard: Arc<LoginGuard>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/count", post(count))
        .route("/devices", get(devices))
        .route("/devices.json", get(devices_json))
        .route("/live", get(live_socket))
        .route(
            "/devices/sign-out-others",
            get(confirm_sign_out_others).post(sign_out_others),
        )
        .route(
            "/devices/{id}/sign-out",
            get(confirm_sign_out).post(sign_out),
        )
        .route("/style.css", get(style))
        .layer(Extension(guard))
        .layer(Extension(live))
        .layer(Extension(Arc::new(RemoteSignOuts::default())))
        .layer(layer)
}

/// Cookie naming the device's session id (not a secret): after the session
/// ends, it tells whether another device signed this one out.
const DEVICE_COOKIE: &str = "demo_device";
/// Cookie carrying the login page's one-time notice.
const NOTICE_COOKIE: &str = "demo_notice";

/// A page, or a failure shown as one, with cookies to set.
enum Page {
    Html(String, Vec<String>),
    Redirect(String, Vec<String>),
    Status(StatusCode, String),
    /// 401 for a page's script, with cookies for the login page.
    SignedOut(Vec<String>),
}

impl Page {
    fn redirect(to: impl Into<String>) -> Self {
        Self::Redirect(to.into(), Vec::new())
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let (mut response, cookies) = match self {
            Self::Html(body, cookies) => (Html(body).into_response(), cookies),
            // 303: the browser follows a form post with a GET.
            Self::Redirect(to, cookies) => (Redirect::to(&to).into_response(), cookies),
            Self::Status(status, body) => ((status, Html(body)).into_response(), Vec::new()),
            Self::SignedOut(cookies) => (
                (StatusCode::UNAUTHORIZED, "signed out").into_response(),
                cookies,
            ),
        };
        for cookie in cookies {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response
    }
}

/// Who sent a request: a live session, or no one, with the cookies that let
/// the login page say why if the request's session just ended.
enum Visitor {
    SignedIn(Session),
    SignedOut(Vec<String>),
}

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = Page;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Page> {
        let ctx = SessionContext::from_request_parts(parts, state)
            .await
            .map_err(|_| Page::Status(StatusCode::INTERNAL_SERVER_ERROR, "<h1>500</h1>".into()))?;
        if let Some(session) = ctx.session() {
            return Ok(Self::SignedIn(session));
        }
        let remote = parts
            .extensions
            .get::<Arc<RemoteSignOuts>>()
            .cloned()
            .unwrap_or_default();
        Ok(Self::SignedOut(ended_cookies(
            &ctx,
            &parts.headers,
            &remote,
        )))
    }
}

/// The signed-in visitor's session. Without one, the answer is the way to
/// the login page (saying why, once, if the session just ended).
struct SignedIn(Session);

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = Page;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Page> {
        match Visitor::from_request_parts(parts, state).await? {
            Visitor::SignedIn(session) => Ok(Self(session)),
            Visitor::SignedOut(cookies) => Err(Page::Redirect("/login".into(), cookies)),
        }
    }
}

/// [`SignedIn`] for a page's script: without a session, 401, with the same
/// cookies for the login page as the redirect (the layer clears the ended
/// session's cookie on this answer, so the login page could not tell why
/// any more).
struct SignedInScript(Session);

impl<S: Send + Sync> FromRequestParts<S> for SignedInScript {
    type Rejection = Page;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Page> {
        match Visitor::from_request_parts(parts, state).await? {
            Visitor::SignedIn(session) => Ok(Self(session)),
            Visitor::SignedOut(cookies) => Err(Page::SignedOut(cookies)),
        }
    }
}

/// Why the request's session ended, if its cookie named a session that did
/// (signed out from another device, or simply ended): the login notice's
/// code.
fn ended_notice(
    ctx: &SessionContext,
    headers: &HeaderMap,
    remote: &RemoteSignOuts,
) -> Option<&'static str> {
    if !ctx.ended() {
        return None;
    }
    let remotely = cookie(headers, DEVICE_COOKIE)
        .and_then(SessionId::parse)
        .is_some_and(|id| remote.take(&id));
    Some(if remotely {
        "signed_out_remotely"
    } else {
        "ended"
    })
}

/// The cookies that make the login page say why the request's session
/// ended, once; none if it did not.
fn ended_cookies(
    ctx: &SessionContext,
    headers: &HeaderMap,
    remote: &RemoteSignOuts,
) -> Vec<String> {
    match ended_notice(ctx, headers, remote) {
        None => Vec::new(),
        Some(notice) => vec![
            format!("{NOTICE_COOKIE}={notice}; Path=/login; Max-Age=300; HttpOnly; SameSite=Lax"),
            clear_device_cookie(),
        ],
    }
}

/// Forget the device's session id.
fn clear_device_cookie() -> String {
    format!("{DEVICE_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")
}

fn render(t: impl Template) -> Page {
    match t.render() {
        Ok(html) => Page::Html(html, Vec::new()),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page");
            Page::Status(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
        }
    }
}

/// A session failure: signed out → the login page; anything else → its
/// status.
fn failed(e: Error) -> Page {
    match e {
        Error::NoSession => Page::redirect("/login"),
        other => {
            let status = other.status();
            Page::Status(status, format!("<h1>{status}</h1>"))
        }
    }
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

async fn home(SignedIn(session): SignedIn) -> Page {
    let view = match session.view() {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    let counter = session.get::<u64>("counter").ok().flatten().unwrap_or(0);
    render(Home {
        user: view.user_id.clone(),
        role: view.role.clone().unwrap_or_else(|| "—".into()),
        counter,
        data_json: serde_json::to_string_pretty(&view.data).unwrap_or_default(),
        csrf: session.csrf_token(),
    })
}

async fn login_page(
    ctx: SessionContext,
    headers: HeaderMap,
    Extension(remote): Extension<Arc<RemoteSignOuts>>,
) -> Page {
    if ctx.session().is_some() {
        return Page::redirect("/");
    }
    // A page sent here directly rather than redirected (by its script, say)
    // still has the ended session's cookie: why is told from it. Otherwise
    // a redirect here left the reason in a cookie.
    let (code, cookies) = match ended_notice(&ctx, &headers, &remote) {
        Some(code) => (Some(code), vec![clear_device_cookie()]),
        None => match cookie(&headers, NOTICE_COOKIE) {
            // Shown once: the notice cookie goes with this page.
            Some(code) => (
                Some(code),
                vec![format!(
                    "{NOTICE_COOKIE}=; Path=/login; Max-Age=0; HttpOnly; SameSite=Lax"
                )],
            ),
            None => (None, Vec::new()),
        },
    };
    let notice = code.map(|code| match code {
        "signed_out_remotely" => "You were signed out from another device.",
        _ => "Your session has ended. Please sign in again.",
    });
    match render(Login {
        error: None,
        notice: notice.map(str::to_owned),
        users: &USERS,
    }) {
        Page::Html(body, _) => Page::Html(body, cookies),
        page => page,
    }
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(
    ctx: SessionContext,
    Extension(guard): Extension<Arc<LoginGuard>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Page {
    let (name, password) = (form.username.trim().to_owned(), form.password);
    let slot = match guard.admit(&name, peer.ip()).await {
        Ok(slot) => slot,
        Err(Refused::TooMany(wait)) => {
            return login_refused(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many sign-in attempts; try again in {} s.",
                    wait.as_secs().max(1)
                ),
            );
        }
        Err(Refused::Busy) => {
            return login_refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy; try again in a moment.".into(),
            );
        }
    };
    // argon2 is slow by design: keep it off the async workers.
    let user = tokio::task::spawn_blocking(move || {
        let user = users::authenticate(&name, &password);
        drop(slot);
        user
    })
    .await
    .ok()
    .flatten();
    let Some(user) = user else {
        return login_refused(
            StatusCode::UNAUTHORIZED,
            "Wrong user name or password.".into(),
        );
    };
    match ctx.login(user.name, user.role).await {
        Ok(session) => Page::Redirect(
            "/".into(),
            vec![format!(
                "{DEVICE_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax",
                session.id()
            )],
        ),
        Err(e) => failed(e),
    }
}

/// The login page again, with `message`, answered with `status`.
fn login_refused(status: StatusCode, message: String) -> Page {
    match render(Login {
        error: Some(message),
        notice: None,
        users: &USERS,
    }) {
        Page::Html(body, _) => Page::Status(status, body),
        other => other,
    }
}

async fn logout(session: Option<Session>) -> Page {
    if let Some(s) = session
        && let Err(e) = s.logout().await
    {
        return failed(e);
    }
    Page::Redirect("/login".into(), vec![clear_device_cookie()])
}

async fn count(SignedIn(session): SignedIn) -> Page {
    let next = session.get::<u64>("counter").ok().flatten().unwrap_or(0) + 1;
    match session.insert("counter", next) {
        Ok(()) => Page::redirect("/"),
        Err(e) => failed(e),
    }
}

/// The session's one-time notice for the devices page (a "flash").
const FLASH: &str = "flash";

async fn devices(SignedIn(session): SignedIn, Extension(live): Extension<Option<Live>>) -> Page {
    let list = match session.devices().await {
        Ok(list) => list,
        Err(e) => return failed(e),
    };
    let online = match &live {
        Some(live) => online_or_none(live, session.user_id()).await,
        None => HashSet::new(),
    };
    let notice = session.get::<String>(FLASH).ok().flatten();
    if notice.is_some()
        && let Err(e) = session.remove(FLASH)
    {
        return failed(e);
    }
    let now = SystemClock.now();
    render(Devices {
        user: session.user_id().to_owned(),
        // This device first, then the others newest first.
        devices: {
            let mut rows: Vec<DeviceRow> = list
                .into_iter()
                .map(|s| {
                    let online = online.contains(&s.id);
                    DeviceRow::new(s, now, online)
                })
                .collect();
            rows.sort_by_key(|r| !r.current);
            rows
        },
        live: live.is_some(),
        notice,
        csrf: session.csrf_token(),
    })
}

/// Who of `user_id` is online; no one if presence cannot be read now (the
/// page shows its devices all the same, and its script asks again).
async fn online_or_none(live: &Live, user_id: &str) -> HashSet<SessionId> {
    live.online(user_id).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "reading presence");
        HashSet::new()
    })
}

/// One device in `GET /devices.json`.
#[derive(Serialize)]
struct DevicePresence {
    id: String,
    online: bool,
}

/// `GET /devices.json`.
#[derive(Serialize)]
struct DevicesPresence {
    devices: Vec<DevicePresence>,
}

/// `GET /devices.json`: the user's devices (as "Your devices" lists them)
/// and whether each holds a live connection now, for that page's script;
/// 404 without live pages.
async fn devices_json(
    SignedInScript(session): SignedInScript,
    Extension(live): Extension<Option<Live>>,
) -> Response {
    let Some(live) = live else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let list = match session.devices().await {
        Ok(list) => list,
        Err(e) => return e.into_response(),
    };
    let online = match live.online(session.user_id()).await {
        Ok(online) => online,
        Err(PresenceError::Unsupported) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "reading presence");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let body = DevicesPresence {
        devices: list
            .into_iter()
            .map(|s| DevicePresence {
                online: online.contains(&s.id),
                id: s.id.to_string(),
            })
            .collect(),
    };
    match serde_json::to_vec(&body) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "writing devices.json");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `GET /live`: the page's WebSocket on its session, closed by the server
/// with 4001 ("session ended") when the session ends anywhere. Asked
/// without upgrading (by a page whose socket dropped), it says whether to
/// connect again: 204 while the session is live, 401 once it ended; 404
/// without live pages.
async fn live_socket(
    SignedInScript(session): SignedInScript,
    Extension(live): Extension<Option<Live>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some(live) = live else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match upgrade {
        Ok(ws) => live.sockets().upgrade(ws, &session, live::serve_page).await,
        Err(_) => StatusCode::NO_CONTENT.into_response(),
    }
}

/// "Signed out 1 device." / "Signed out 3 devices."
fn signed_out_notice(n: u64) -> String {
    match n {
        0 => "No other device was signed in.".to_owned(),
        1 => "Signed out 1 device.".to_owned(),
        n => format!("Signed out {n} devices."),
    }
}

/// `GET /devices/{id}/sign-out`: which device, and are you sure?
async fn confirm_sign_out(SignedIn(session): SignedIn, Path(id): Path<String>) -> Page {
    let list = match session.devices().await {
        Ok(list) => list,
        Err(e) => return failed(e),
    };
    let Some(device) = list.into_iter().find(|s| s.id.as_str() == id) else {
        return failed(Error::NotFound);
    };
    let own = device.id == *session.id();
    let name = pages::device_name(
        device.device.browser.as_deref(),
        device.device.os.as_deref(),
    );
    render(Confirm {
        title: if own {
            "Sign out of this device?".into()
        } else {
            format!("Sign out {name}?")
        },
        message: if own {
            "You will need to sign in again here.".into()
        } else {
            format!(
                "{name} ({}) will be signed out at its next request and will need to sign in again.",
                device.device.ip.as_deref().unwrap_or("unknown address")
            )
        },
        action: format!("/devices/{id}/sign-out"),
        button: "Sign out".into(),
        csrf: session.csrf_token(),
    })
}

async fn sign_out(
    SignedIn(session): SignedIn,
    Extension(remote): Extension<Arc<RemoteSignOuts>>,
    Path(id): Path<String>,
) -> Page {
    let Some(id) = SessionId::parse(&id) else {
        return failed(Error::NotFound);
    };
    let own = id == *session.id();
    match session.sign_out(&id).await {
        Ok(()) if own => Page::Redirect("/login".into(), vec![clear_device_cookie()]),
        Ok(()) => {
            remote.record([id]);
            match session.insert(FLASH, signed_out_notice(1)) {
                Ok(()) => Page::redirect("/devices"),
                Err(e) => failed(e),
            }
        }
        Err(e) => failed(e),
    }
}

/// `GET /devices/sign-out-others`: are you sure?
async fn confirm_sign_out_others(SignedIn(session): SignedIn) -> Page {
    let others = match session.devices().await {
        Ok(list) => list.iter().filter(|s| s.id != *session.id()).count(),
        Err(e) => return failed(e),
    };
    render(Confirm {
        title: "Sign out all other devices?".into(),
        message: match others {
            1 => "1 other device will be signed out and will need to sign in again.".into(),
            n => format!("{n} other devices will be signed out and will need to sign in again."),
        },
        action: "/devices/sign-out-others".into(),
        button: "Sign out all other devices".into(),
        csrf: session.csrf_token(),
    })
}

async fn sign_out_others(
    SignedIn(session): SignedIn,
    Extension(remote): Extension<Arc<RemoteSignOuts>>,
) -> Page {
    let others: Vec<SessionId> = match session.devices().await {
        Ok(list) => list
            .into_iter()
            .map(|s| s.id)
            .filter(|id| id != session.id())
            .collect(),
        Err(e) => return failed(e),
    };
    match session.sign_out_others().await {
        Ok(n) => {
            remote.record(others);
            match session.insert(FLASH, signed_out_notice(n)) {
                Ok(()) => Page::redirect("/devices"),
                Err(e) => failed(e),
            }
        }
        Err(e) => failed(e),
    }
}
