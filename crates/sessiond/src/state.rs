//! What every handler can reach: the engine over the observed store, the
//! API key, the limiter, the access-token keys and the settings requests
//! need; and the one way to resolve a session credential.

use std::sync::Arc;

use sessiond_engine::{
    AuthRequirement, Engine, Error as EngineError, NearCache, ObservedStore, Session, Timestamp,
};
use sessiond_http::TrustedProxies;

use crate::access_tokens::{self, AccessTokens};
use crate::api_key::ApiKey;
use crate::config::{Config, CookieConfig, Mode};
use crate::metrics::{Metrics, StoreMetrics};
use crate::ratelimit::FailedAuthLimiter;

/// The server's store: the configured one, observed by the metrics.
pub type MeteredStore = ObservedStore<StoreMetrics>;

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
    /// The engine over the observed store.
    pub engine: Engine,
    /// The store, observed by the metrics (counters for `/v1/stats`).
    pub store: Arc<MeteredStore>,
    /// The near-cache in front of the store, if any (its counters).
    pub cache: Option<Arc<NearCache>>,
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
    /// How event streams are served.
    pub events: crate::config::EventsConfig,
    /// Set when the server stops: open event streams end.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// `GET /v1/auth`'s requirements by path prefix, longest first.
    pub forward_auth: Vec<(String, AuthRequirement)>,
}

impl AppState {
    /// State for `config` over `store` (with `cache` in front of it).
    pub fn new(
        config: &Config,
        store: Arc<MeteredStore>,
        cache: Option<Arc<NearCache>>,
        api_key: ApiKey,
        metrics: Metrics,
        tokens: AccessTokens,
    ) -> Self {
        let engine = Engine::new(store.clone(), config.policy());
        Self(Arc::new(Shared {
            engine,
            store,
            cache,
            api_key,
            cookie: config.cookie.clone(),
            limiter: FailedAuthLimiter::per_minute(config.limits.failed_auth_per_minute),
            trusted_proxies: config.trusted_proxies(),
            metrics,
            default_mode: config.default_mode,
            tokens,
            reuse_grace: config.refresh.reuse_grace,
            events: config.events.clone(),
            stopping: tokio::sync::watch::Sender::new(false),
            forward_auth: forward_auth_rules(config),
        }))
    }
}

/// The `forward_auth` rules, longest prefix first.
fn forward_auth_rules(config: &Config) -> Vec<(String, AuthRequirement)> {
    let mut rules: Vec<(String, AuthRequirement)> = config
        .forward_auth
        .values()
        .map(|r| (r.path_prefix.clone(), r.requirement()))
        .collect();
    rules.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    rules
}

impl Shared {
    /// What `GET /v1/auth` requires for a request to `path` (the query
    /// string, if any, is not part of it): the longest matching rule's.
    pub fn forward_auth_requirement(&self, path: &str) -> AuthRequirement {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        self.forward_auth
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|(_, r)| *r)
            .unwrap_or_default()
    }

    /// The live session a credential proves: a session token (introspected,
    /// touched if `touch`), or a JWT access token (verified offline, then the
    /// session behind `sid` must still be live, belong to `sub` and still be
    /// a JWT-mode session, so a revocation or a rotation counts at once; a
    /// token issued before the user's not-before mark is refused).
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
        let issued_at = Timestamp::from_millis(
            i64::try_from(claims.iat.saturating_mul(1000)).unwrap_or(i64::MAX),
        );
        match self.engine.access_session(&claims.sid, issued_at).await {
            // Rotating a JWT-mode session by id makes it an opaque one: the
            // access tokens it had issued die with its refresh chain.
            Ok(s) if s.user_id == claims.sub && s.mode == Mode::Jwt => Ok(Some(s)),
            Ok(_) | Err(EngineError::NotFound | EngineError::Invalid { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
