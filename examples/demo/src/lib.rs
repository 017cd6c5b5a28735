//! A small site on `sessiond-axum`: sign in as a demo user, count clicks in
//! the session, and see and sign out your devices. Server-rendered HTML with
//! plain CSS; every form carries the session's CSRF token.
#![forbid(unsafe_code)]

pub mod pages;
pub mod throttle;
pub mod users;

use askama::Template;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;
use sessiond_axum::{Error, Session, SessionContext, SessionId, SessionLayer};
use sessiond_engine::{Clock, Policy, RolePolicy, SystemClock};

use crate::pages::{DeviceRow, Devices, Home, Login};
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

/// The site, with sessions from `layer` and the default sign-in limits.
pub fn app(layer: SessionLayer) -> Router {
    app_with_guard(layer, Arc::new(LoginGuard::new(LoginLimits::default())))
}

/// The site, with sessions from `layer` and sign-ins admitted by `guard`.
pub fn app_with_guard(layer: SessionLayer, guard: Arc<LoginGuard>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/count", post(count))
        .route("/devices", get(devices))
        .route("/devices/sign-out-others", post(sign_out_others))
        .route("/devices/{id}/sign-out", post(sign_out))
        .route("/style.css", get(style))
        .layer(Extension(guard))
        .layer(layer)
}

/// A page, or a failure shown as one.
enum Page {
    Html(String),
    Redirect(String),
    Status(StatusCode, String),
}

impl Page {
    fn redirect(to: impl Into<String>) -> Self {
        Self::Redirect(to.into())
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        match self {
            Self::Html(body) => Html(body).into_response(),
            // 303: the browser follows a form post with a GET.
            Self::Redirect(to) => Redirect::to(&to).into_response(),
            Self::Status(status, body) => (status, Html(body)).into_response(),
        }
    }
}

fn render(t: impl Template) -> Page {
    match t.render() {
        Ok(html) => Page::Html(html),
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

async fn home(session: Option<Session>) -> Page {
    let Some(session) = session else {
        return Page::redirect("/login");
    };
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

async fn login_page(session: Option<Session>) -> Page {
    if session.is_some() {
        return Page::redirect("/");
    }
    render(Login {
        error: None,
        users: &USERS,
    })
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
        Ok(_) => Page::redirect("/"),
        Err(e) => failed(e),
    }
}

/// The login page again, with `message`, answered with `status`.
fn login_refused(status: StatusCode, message: String) -> Page {
    match render(Login {
        error: Some(message),
        users: &USERS,
    }) {
        Page::Html(body) => Page::Status(status, body),
        other => other,
    }
}

async fn logout(session: Option<Session>) -> Page {
    if let Some(s) = session
        && let Err(e) = s.logout().await
    {
        return failed(e);
    }
    Page::redirect("/login")
}

async fn count(session: Option<Session>) -> Page {
    let Some(session) = session else {
        return Page::redirect("/login");
    };
    let next = session.get::<u64>("counter").ok().flatten().unwrap_or(0) + 1;
    match session.insert("counter", next) {
        Ok(()) => Page::redirect("/"),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
struct DevicesQuery {
    signed_out: Option<u64>,
}

async fn devices(session: Option<Session>, Query(q): Query<DevicesQuery>) -> Page {
    let Some(session) = session else {
        return Page::redirect("/login");
    };
    let list = match session.devices().await {
        Ok(list) => list,
        Err(e) => return failed(e),
    };
    let now = SystemClock.now();
    render(Devices {
        user: session.user_id().to_owned(),
        devices: list.into_iter().map(|s| DeviceRow::new(s, now)).collect(),
        notice: q.signed_out.map(|n| match n {
            1 => "Signed out 1 device.".to_owned(),
            n => format!("Signed out {n} devices."),
        }),
        csrf: session.csrf_token(),
    })
}

async fn sign_out(session: Option<Session>, Path(id): Path<String>) -> Page {
    let Some(session) = session else {
        return Page::redirect("/login");
    };
    let Some(id) = SessionId::parse(&id) else {
        return failed(Error::NotFound);
    };
    let own = id == *session.id();
    match session.sign_out(&id).await {
        Ok(()) if own => Page::redirect("/login"),
        Ok(()) => Page::redirect("/devices?signed_out=1"),
        Err(e) => failed(e),
    }
}

async fn sign_out_others(session: Option<Session>) -> Page {
    let Some(session) = session else {
        return Page::redirect("/login");
    };
    match session.sign_out_others().await {
        Ok(n) => Page::redirect(format!("/devices?signed_out={n}")),
        Err(e) => failed(e),
    }
}
