//! Test support: an axum app behind `SessionLayer`, over the engine with an
//! embedded store, the engine with a private redis-server, or a real sessiond
//! server reached over HTTP; every store call is counted.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::routing::{get, post};
use axum::{Form, Json};
use serde_json::{Value, json};
use sessiond_axum::{
    CookieSettings, EngineBackend, Error, RemoteBackend, RequireAal, RequireRecentAuth, Session,
    SessionContext, SessionId, SessionLayer,
};
use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{Aal, AuthRequirement, Engine, Policy, Store};
use sessiond_redis::{RedisOptions, RedisStore};
use sessiond_testkit::CountingStore;
use sessiond_testkit::redis_server::RedisServer;
use tempfile::TempDir;
use tower::ServiceExt;

pub const API_KEY: &str = "sdk_layer-test-key-0123456789";
pub const DESKTOP_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";
pub const MOBILE_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

/// Where the layer's sessions live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Redis,
    Remote,
}

/// The app under test and the counted store beneath it.
pub struct Harness {
    pub app: Router,
    pub store: Arc<CountingStore>,
    /// The engine over the same store, to act behind the layer's back.
    pub engine: Engine,
    pub redis: Option<RedisServer>,
    pub server: Option<sessiond::server::RunningServer>,
    _dir: TempDir,
}

/// One response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The `Set-Cookie` values.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The session token a `Set-Cookie` hands out (none for a clearing one).
    pub fn new_token(&self) -> Option<String> {
        self.set_cookies().iter().find_map(|c| {
            let v = c.strip_prefix("sid=")?.split(';').next()?;
            (!v.is_empty()).then(|| v.to_owned())
        })
    }

    pub fn clears_cookie(&self) -> bool {
        self.set_cookies()
            .iter()
            .any(|c| c.starts_with("sid=;") && c.contains("Max-Age=0"))
    }
}

/// A request to the app.
pub struct Call {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Body,
}

impl Call {
    pub fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            path: path.into(),
            headers: vec![("host".into(), "app.test".into())],
            body: Body::empty(),
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: &str) -> Self {
        Self::new(Method::POST, path)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn cookie(self, token: &str) -> Self {
        self.header("cookie", &format!("theme=dark; sid={token}"))
    }

    pub fn csrf(self, csrf: &str) -> Self {
        self.header("x-csrf-token", csrf)
    }

    pub fn form(mut self, body: &str) -> Self {
        self.headers.push((
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        self.body = Body::from(body.to_owned());
        self
    }
}

impl Harness {
    pub async fn start(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (inner, redis): (Arc<dyn Store>, _) = match backend {
            Backend::Redis => {
                let redis = tokio::task::spawn_blocking(RedisServer::start)
                    .await
                    .unwrap();
                let store = RedisStore::connect(&redis.url(), RedisOptions::default())
                    .await
                    .unwrap();
                (Arc::new(store), Some(redis))
            }
            Backend::Embedded | Backend::Remote => {
                let store =
                    EmbeddedStore::open(dir.path().join("store"), EmbeddedOptions::default())
                        .await
                        .unwrap();
                (Arc::new(store), None)
            }
        };
        let store = Arc::new(sessiond_testkit::counting(inner));
        let engine = Engine::new(store.clone(), Policy::default());
        let (layer, server) = match backend {
            Backend::Embedded | Backend::Redis => {
                (SessionLayer::new(EngineBackend::new(engine.clone())), None)
            }
            Backend::Remote => {
                let config = sessiond::config::Config {
                    listen: "127.0.0.1:0".into(),
                    store: Some(format!("embedded:{}", dir.path().join("store").display())),
                    data_dir: dir.path().join("data"),
                    api_key: Some(API_KEY.into()),
                    ..sessiond::config::Config::default()
                };
                let server = sessiond::server::start_with_store(config, store.clone())
                    .await
                    .unwrap();
                let client =
                    sessiond_client::Client::new(&format!("http://{}", server.addr), API_KEY)
                        .unwrap();
                (SessionLayer::new(RemoteBackend::new(client)), Some(server))
            }
        };
        let cookie = CookieSettings {
            name: "sid".into(),
            ..CookieSettings::default()
        };
        let app = routes().layer(layer.with_cookie(cookie).unwrap().with_max_form_bytes(4096));
        Self {
            app,
            store,
            engine,
            redis,
            server,
            _dir: dir,
        }
    }

    pub async fn send(&self, call: Call) -> Reply {
        let mut req = Request::builder().method(call.method).uri(call.path);
        for (k, v) in &call.headers {
            req = req.header(k, v);
        }
        let mut req = req.body(call.body).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 44], 50000))));
        let response = self.app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    /// Log `user` in from a device with `user_agent`; (token, csrf token).
    pub async fn login(&self, user: &str, user_agent: &str) -> (String, String) {
        let r = self
            .send(
                Call::post("/login")
                    .header("user-agent", user_agent)
                    .form(&format!("user={user}&role=")),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let token = r.new_token().expect("login sets the cookie");
        let me = self.send(Call::get("/me").cookie(&token)).await;
        assert_eq!(me.status, 200, "{}", me.body);
        (token, me.json()["csrf"].as_str().unwrap().to_owned())
    }
}

#[derive(serde::Deserialize)]
struct LoginForm {
    user: String,
    role: String,
}

#[derive(serde::Deserialize)]
struct NoteForm {
    note: String,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

pub fn routes() -> Router {
    Router::new()
        .route("/plain", get(|| async { "plain" }))
        .route(
            "/ended",
            get(|ctx: SessionContext| async move { ctx.ended().to_string() }),
        )
        .route(
            "/maybe",
            get(|s: Option<Session>| async move {
                s.map_or("anonymous".to_owned(), |s| s.user_id().to_owned())
            }),
        )
        .route(
            "/me",
            get(|s: Session| async move {
                let data = s.view()?.data;
                Ok::<_, Error>(Json(json!({
                    "id": s.id(),
                    "user": s.user_id(),
                    "role": s.role(),
                    "csrf": s.csrf_token(),
                    "data": data,
                })))
            }),
        )
        .route("/noop", get(|_s: Session| async { "untouched" }))
        .route(
            "/second-factor",
            get(|RequireAal::<2>(s): RequireAal<2>| async move { s.user_id().to_owned() }),
        )
        .route(
            "/recent",
            get(|RequireRecentAuth::<2>(s): RequireRecentAuth<2>| async move {
                s.user_id().to_owned()
            }),
        )
        .route(
            "/login",
            post(|ctx: SessionContext, Form(f): Form<LoginForm>| async move {
                let role = (!f.role.is_empty()).then_some(f.role.as_str());
                let s = ctx.login(&f.user, role).await?;
                Ok::<_, Error>(s.id().to_string())
            }),
        )
        .route(
            "/login-mfa",
            post(|ctx: SessionContext, Form(f): Form<LoginForm>| async move {
                let role = (!f.role.is_empty()).then_some(f.role.as_str());
                let s = ctx
                    .login_authenticated(&f.user, role, Aal::Aal2, &["pwd", "otp"])
                    .await?;
                let view = s.view()?;
                Ok::<_, Error>(Json(json!({"aal": view.aal, "amr": view.amr})))
            }),
        )
        .route(
            "/step-up",
            post(|s: Session| async move {
                s.step_up(Aal::Aal2, "otp").await?;
                // The guard sees the new level within the same request.
                s.require(&AuthRequirement {
                    min_aal: Some(Aal::Aal2),
                    max_age: None,
                })?;
                let view = s.view()?;
                Ok::<_, Error>(Json(json!({"aal": view.aal, "amr": view.amr})))
            }),
        )
        .route(
            "/count",
            post(|s: Session| async move {
                let n: u64 = s.get("count")?.unwrap_or(0) + 1;
                s.insert("count", n)?;
                Ok::<_, Error>(n.to_string())
            }),
        )
        .route(
            "/set3",
            post(|s: Session| async move {
                s.insert("a", 1)?;
                s.insert("b", json!({"nested": [1, 2]}))?;
                s.insert("c", "three")?;
                Ok::<_, Error>("set")
            }),
        )
        .route(
            "/same",
            post(|s: Session| async move {
                s.insert("a", 1)?;
                Ok::<_, Error>("same")
            }),
        )
        .route(
            "/remove/{key}",
            post(|s: Session, Path(key): Path<String>| async move {
                Ok::<_, Error>(s.remove(&key)?.to_string())
            }),
        )
        .route(
            "/wrong-type",
            get(|s: Session| async move {
                let v: Option<Vec<String>> = s.get("count")?;
                Ok::<_, Error>(format!("{v:?}"))
            }),
        )
        .route(
            "/note",
            post(|s: Session, Form(f): Form<NoteForm>| async move {
                s.insert("note", &f.note)?;
                Ok::<_, Error>(f.note)
            }),
        )
        .route(
            "/logout",
            post(|s: Session| async move {
                s.logout().await?;
                Ok::<_, Error>("bye")
            }),
        )
        .route(
            "/devices",
            get(|s: Session| async move { Ok::<_, Error>(Json(s.devices().await?)) }),
        )
        .route(
            "/others",
            post(
                |s: Session| async move { Ok::<_, Error>(s.sign_out_others().await?.to_string()) },
            ),
        )
        .route(
            "/sign-out/{id}",
            post(|s: Session, Path(id): Path<String>| async move {
                let id = SessionId::parse(&id).ok_or(Error::NotFound)?;
                s.sign_out(&id).await?;
                Ok::<_, Error>("signed out")
            }),
        )
}

/// One `#[tokio::test]` per (case, backend).
#[macro_export]
macro_rules! layer_tests {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::common::Harness::start(super::common::Backend::Embedded).await).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::common::Harness::start(super::common::Backend::Redis).await).await;
                }
            )*
        }
        mod remote {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::common::Harness::start(super::common::Backend::Remote).await).await;
                }
            )*
        }
    };
}
