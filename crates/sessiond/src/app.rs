//! Application state and the assembled router: routes, body and head limits,
//! request timeout, panic catcher, metrics and access log.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use sessiond_engine::{Engine, Error as EngineError, Session};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::routes;

use crate::access_tokens::{self, AccessTokens};
use crate::api_key::ApiKey;
use crate::config::{Config, CookieConfig, Mode};
use crate::metrics::{MeteredStore, Metrics};
use crate::problem::Problem;
use crate::ratelimit::FailedAuthLimiter;
use crate::request_limits::{self, RequestLimits};
use crate::{openapi, routes, telemetry};
use sessiond_http::TrustedProxies;

/// What every handler can reach; cloning it is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The contents of [`AppState`].
pub struct Shared {
    /// The engine over the metered store.
    pub engine: Engine,
    /// The store's counters, for `/v1/stats`.
    pub metered: Arc<MeteredStore>,
    /// Verifies admin API keys.
    pub api_key: ApiKey,
    /// Session cookie attributes.
    pub cookie: CookieConfig,
    /// Throttles failed credential checks per client address.
    pub limiter: FailedAuthLimiter,
    /// Peers whose forwarding headers name the client.
    pub trusted_proxies: TrustedProxies,
    /// Prometheus registry.
    pub metrics: Metrics,
    /// Mode of sessions created without one.
    pub default_mode: Mode,
    /// Signs and verifies JWT-mode access tokens.
    pub tokens: AccessTokens,
    /// How long a retired refresh token still gets its successor back.
    pub reuse_grace: std::time::Duration,
    /// The OpenAPI document, serialized once.
    pub openapi: String,
}

impl AppState {
    /// State for `config` over `store` (already wrapped in [`MeteredStore`]).
    pub fn new(
        config: &Config,
        metered: Arc<MeteredStore>,
        api_key: ApiKey,
        metrics: Metrics,
        tokens: AccessTokens,
    ) -> Self {
        let store: Arc<dyn sessiond_engine::Store> = metered.clone();
        Self(Arc::new(Shared {
            engine: Engine::new(store, config.policy()),
            metered,
            api_key,
            cookie: config.cookie.clone(),
            limiter: FailedAuthLimiter::per_minute(config.limits.failed_auth_per_minute),
            trusted_proxies: config.trusted_proxies(),
            metrics,
            default_mode: config.default_mode,
            tokens,
            reuse_grace: config.refresh.reuse_grace,
            openapi: openapi_document().to_json().unwrap_or_else(|_| "{}".into()),
        }))
    }
}

impl Shared {
    /// The live session a credential proves: a session token (introspected,
    /// touched if `touch`), or a JWT access token (verified offline, then the
    /// session behind `sid` must still be live, belong to `sub` and still be
    /// a JWT-mode session, so a revocation or a rotation counts at once).
    /// `Ok(None)` for anything else.
    pub async fn session_for(
        &self,
        credential: &str,
        touch: bool,
    ) -> Result<Option<Session>, EngineError> {
        if !access_tokens::is_jwt(credential) {
            return match self.engine.introspect(credential, touch).await {
                Err(EngineError::Invalid { .. }) => Ok(None),
                other => other,
            };
        }
        let Ok(claims) = self.tokens.verify(credential) else {
            return Ok(None);
        };
        match self.engine.get(&claims.sid).await {
            // Rotating a JWT-mode session by id makes it an opaque one: the
            // access tokens it had issued die with its refresh chain.
            Ok(s) if s.user_id == claims.sub && s.mode == Mode::Jwt => Ok(Some(s)),
            Ok(_) | Err(EngineError::NotFound | EngineError::Invalid { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The OpenAPI document of [`router`]'s routes.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    routes::all()
        .routes(routes!(openapi::document))
        .into_openapi()
}

/// The whole HTTP service.
pub fn router(state: AppState, config: &Config) -> Router {
    let (router, _) = routes::all()
        .routes(routes!(openapi::document))
        .split_for_parts();
    router
        .fallback(|| async { Problem::not_found("no such route") })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        // One `layer` call for the whole stack: each `Router::layer` boxes
        // the route again, and every boxed layer clones the boxes beneath it
        // on each request. Outermost first: access log, metrics, no-store,
        // request limits (head size, declared body size, timeout), panic
        // catcher, body limit.
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn(telemetry::access_log))
                .layer(middleware::from_fn(crate::metrics::track))
                // Answers carry sessions, tokens and CSRF tokens: no cache
                // keeps them, unless a route says otherwise (the JWKS).
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ))
                .layer(middleware::from_fn_with_state(
                    RequestLimits {
                        max_header_bytes: config.limits.max_header_bytes,
                        max_body_bytes: config.limits.max_body_bytes,
                        timeout: config.request_timeout,
                    },
                    request_limits::enforce,
                ))
                .layer(CatchPanicLayer::custom(|_| panic_response()))
                .layer(DefaultBodyLimit::max(config.limits.max_body_bytes)),
        )
        .with_state(state)
}

fn panic_response() -> Response {
    tracing::error!("handler panicked");
    Problem::internal().into_response()
}
