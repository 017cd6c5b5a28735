//! Configuration: the model (docs/configuration.md) and its defaults. Loading
//! it from a file, the environment and flags is in `load`, checking it in
//! `validate`, and the one-line explanations of bad values in `explain`.

mod error;
mod explain;
mod load;
pub mod reference;
mod strict;
mod validate;

pub mod duration_text;
pub mod string_list;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sessiond_engine::{LimitPolicy, Policy, RolePolicy};

pub use error::{ConfigError, ConfigErrors};
pub use load::Loaded;

/// The whole configuration (docs/configuration.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// A second address for the operator routes: `/metrics` is then served
    /// there only, `/healthz` and `/readyz` there too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<String>,
    /// `embedded:PATH`, `postgres://…`, `redis://…`, `rediss://…`; unset: the embedded store
    /// in `data_dir` (see [`Config::store_url`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// API key file, signing keys, and the embedded store unless `store`
    /// names another.
    pub data_dir: PathBuf,
    /// Admin API key; generated into `data_dir` when absent.
    pub api_key: Option<String>,
    /// `opaque` or `jwt`.
    pub default_mode: Mode,
    /// Coalescing interval of activity writes.
    #[serde(with = "duration_text")]
    pub touch_interval: Duration,
    /// `evict_oldest` or `reject`.
    pub max_sessions_policy: MaxSessionsPolicy,
    /// Redis key prefix.
    pub key_prefix: String,
    /// CA certificates (PEM file) trusted for `rediss://` instead of the
    /// system's roots, and for `postgres://` TLS when the URL names no
    /// `sslrootcert`.
    pub store_ca_file: Option<PathBuf>,
    /// Bound on every store call.
    #[serde(with = "duration_text")]
    pub store_timeout: Duration,
    /// Redis replicas every revoking write must reach before it is
    /// acknowledged (`WAIT`); 0: off.
    pub store_wait_replicas: u32,
    /// SQL stores: how long lifecycle events stay in the history.
    #[serde(with = "duration_text")]
    pub history_retention: Duration,
    /// Bound on every HTTP request.
    #[serde(with = "duration_text")]
    pub request_timeout: Duration,
    /// Reject roles that are not configured instead of using `default`.
    pub strict_roles: bool,
    /// Reverse proxies (IP addresses or CIDR ranges) whose
    /// `X-Forwarded-For`/`-Proto`/`-Host` or `Forwarded` headers name the
    /// client; empty: the TCP peer is the client. A list, or one string
    /// of comma-separated entries (handy in the environment).
    #[serde(with = "string_list")]
    pub trusted_proxies: Vec<String>,
    /// Size and rate limits.
    pub limits: Limits,
    /// The near-cache in front of the store.
    pub cache: CacheConfig,
    /// The event feed.
    pub events: EventsConfig,
    /// Session cookie attributes.
    pub cookie: CookieConfig,
    /// JWT mode settings.
    pub jwt: JwtConfig,
    /// Refresh token settings.
    pub refresh: RefreshConfig,
    /// Logging.
    pub log: LogConfig,
    /// Per-role policies; `default` applies to sessions without a known role.
    pub roles: BTreeMap<String, RoleConfig>,
    /// Requirements `GET /v1/auth` places on the authentication of the
    /// session, by the path of the request the proxy is deciding on.
    pub forward_auth: BTreeMap<String, ForwardAuthRule>,
    /// Encryption at rest of session data and device facts.
    pub encryption: EncryptionConfig,
}

/// Encryption at rest: with `key_file` set, each data value and the
/// device's user agent and IP are sealed before they reach the store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// The data key file (created with one key if missing; `sessiond keys
    /// rotate --data` adds one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

/// One rule of `GET /v1/auth`: requests under `path_prefix` (as the proxy
/// reports it in `X-Forwarded-Uri` or `X-Original-URI`) need the session's
/// authentication to meet `min_aal` and `max_age`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthRule {
    /// The paths it applies to (the longest matching prefix wins).
    pub path_prefix: String,
    /// At least this level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_aal: Option<sessiond_engine::Aal>,
    /// At most this long since the user last authenticated.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration_text::optional"
    )]
    pub max_age: Option<Duration>,
}

impl ForwardAuthRule {
    /// What the rule requires.
    pub fn requirement(&self) -> sessiond_engine::AuthRequirement {
        sessiond_engine::AuthRequirement {
            max_age: self.max_age,
            min_aal: self.min_aal,
        }
    }
}

/// Token mode of a new session (the engine's).
pub use sessiond_engine::Mode;

/// What happens at `max_sessions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MaxSessionsPolicy {
    /// Evict the oldest sessions.
    #[default]
    EvictOldest,
    /// Refuse the new session (409).
    Reject,
}

/// Size and rate limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body (413 beyond).
    pub max_body_bytes: usize,
    /// Largest session `data` (413 beyond).
    pub max_data_bytes: usize,
    /// Largest request head: names and values of all headers (431 beyond).
    pub max_header_bytes: usize,
    /// Failed credential checks allowed per client address per minute, for
    /// admin API keys and for session credentials separately (429 beyond);
    /// 0 turns the limit off.
    pub failed_auth_per_minute: u32,
    /// Longest time from the first byte of a request head to its end.
    #[serde(with = "duration_text")]
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may stay idle before it is closed.
    #[serde(with = "duration_text")]
    pub idle_timeout: Duration,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// At shutdown, how long requests in flight may take to finish.
    #[serde(with = "duration_text")]
    pub drain_timeout: Duration,
}

/// The near-cache: introspections served from memory, invalidated by the
/// store (Redis CLIENT TRACKING; the embedded store's change counter).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// On unless turned off.
    pub enabled: bool,
    /// Most sessions held.
    pub max_entries: usize,
    /// Most bytes held (estimated per session).
    pub max_bytes: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        let d = sessiond_engine::CacheOptions::default();
        Self {
            enabled: true,
            max_entries: d.max_entries,
            max_bytes: d.max_bytes,
        }
    }
}

impl CacheConfig {
    /// The cache's bounds, when it is on.
    pub fn options(&self) -> Option<sessiond_engine::CacheOptions> {
        self.enabled.then_some(sessiond_engine::CacheOptions {
            max_entries: self.max_entries,
            max_bytes: self.max_bytes,
        })
    }
}

/// The event feed (`GET /v1/events`): how long and how much of it the store
/// keeps, and how subscribers are served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Redis: whether writes record their events (the SQL stores always do:
    /// their history is the same table).
    pub enabled: bool,
    /// Events recorded longer ago leave the feed.
    #[serde(with = "duration_text")]
    pub retention: Duration,
    /// Most events the feed keeps; the oldest leave first.
    pub max_events: u64,
    /// How often a subscriber with nothing new looks for new events.
    #[serde(with = "duration_text")]
    pub poll_interval: Duration,
    /// How often a quiet subscription gets a heartbeat comment.
    #[serde(with = "duration_text")]
    pub heartbeat: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        let d = sessiond_engine::EventRetention::default();
        Self {
            enabled: true,
            retention: d.max_age,
            max_events: d.max_events,
            poll_interval: Duration::from_millis(250),
            heartbeat: Duration::from_secs(15),
        }
    }
}

impl EventsConfig {
    /// What the store keeps.
    pub fn retention(&self) -> sessiond_engine::EventRetention {
        sessiond_engine::EventRetention {
            max_age: self.retention,
            max_events: self.max_events,
        }
    }
}

/// Session cookie attributes: the same type the axum layer takes.
pub use sessiond_http::{CookieSettings as CookieConfig, SameSite};

/// JWT mode settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// `iss` claim.
    pub issuer: String,
    /// `aud` claim.
    pub audience: String,
    /// Access token lifetime.
    #[serde(with = "duration_text")]
    pub access_ttl: Duration,
    /// `EdDSA` or `ES256`.
    pub algorithm: String,
    /// A PEM (PKCS#8) private key to sign with instead of the keys generated
    /// into `data_dir` (then `sessiond keys rotate` does not apply).
    pub key_file: Option<PathBuf>,
    /// How long after `sessiond keys rotate` the new key starts to sign. It
    /// is in the JWKS from the start, so verifiers that cache the JWKS learn
    /// it first; the JWKS is served with `max-age` of at most half of this.
    #[serde(with = "duration_text")]
    pub rollover_delay: Duration,
}

/// Refresh token settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RefreshConfig {
    /// Window in which a retired refresh token is not yet treated as reuse.
    #[serde(with = "duration_text")]
    pub reuse_grace: Duration,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
}

/// Policy of one role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Idle timeout.
    #[serde(with = "duration_text")]
    pub idle_ttl: Duration,
    /// Absolute lifetime.
    #[serde(with = "duration_text")]
    pub absolute_ttl: Duration,
    /// Most live sessions per user.
    pub max_sessions: u32,
    /// What the role's sessions are bound to: `ip_prefix`, `ua_family`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bind: Vec<sessiond_engine::BindTo>,
    /// What a session presented off its binding gets: `revoke` or `flag`.
    #[serde(default)]
    pub on_mismatch: sessiond_engine::OnMismatch,
    /// IPv4 prefix length `ip_prefix` compares.
    #[serde(default = "default_ipv4_prefix")]
    pub bind_ipv4_prefix: u8,
    /// IPv6 prefix length `ip_prefix` compares.
    #[serde(default = "default_ipv6_prefix")]
    pub bind_ipv6_prefix: u8,
}

fn default_ipv4_prefix() -> u8 {
    24
}

fn default_ipv6_prefix() -> u8 {
    48
}

/// Values given on the command line; each one overrides every other source.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// `--listen ADDR`.
    pub listen: Option<String>,
    /// `--store URL`.
    pub store: Option<String>,
    /// `--data-dir DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--log-format text|json`.
    pub log_format: Option<LogFormat>,
    /// `--default-mode opaque|jwt`.
    pub default_mode: Option<Mode>,
}

/// Prefix of the environment variables read.
pub const ENV_PREFIX: &str = "SESSIOND";

/// What a duration value must look like.
pub const DURATION_EXPECTED: &str =
    r#"expected a duration like "900ms", "30s", "15m", "12h", "30d""#;

/// Longest TTL a role may have (400 days), as in the engine.
const MAX_ROLE_TTL: Duration = sessiond_engine::engine::MAX_TTL;

impl Default for Config {
    fn default() -> Self {
        let mut roles = BTreeMap::new();
        roles.insert("default".to_owned(), RoleConfig::default());
        Self {
            listen: "127.0.0.1:7420".to_owned(),
            admin_listen: None,
            store: None,
            data_dir: PathBuf::from("./data"),
            api_key: None,
            default_mode: Mode::Opaque,
            touch_interval: Duration::from_secs(60),
            max_sessions_policy: MaxSessionsPolicy::EvictOldest,
            key_prefix: "sessiond:".to_owned(),
            store_ca_file: None,
            store_timeout: Duration::from_secs(2),
            store_wait_replicas: 0,
            history_retention: sessiond_engine::history::DEFAULT_RETENTION,
            request_timeout: Duration::from_secs(10),
            strict_roles: false,
            trusted_proxies: Vec::new(),
            limits: Limits::default(),
            cache: CacheConfig::default(),
            events: EventsConfig::default(),
            cookie: CookieConfig::default(),
            jwt: JwtConfig::default(),
            refresh: RefreshConfig::default(),
            log: LogConfig::default(),
            roles,
            forward_auth: BTreeMap::new(),
            encryption: EncryptionConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 65_536,
            max_data_bytes: 16_384,
            max_header_bytes: 16_384,
            failed_auth_per_minute: 30,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 4096,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            issuer: "sessiond".to_owned(),
            audience: "sessiond".to_owned(),
            access_ttl: Duration::from_secs(15 * 60),
            algorithm: "EdDSA".to_owned(),
            key_file: None,
            rollover_delay: Duration::from_secs(120),
        }
    }
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            reuse_grace: Duration::from_secs(10),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
        }
    }
}

impl Default for RoleConfig {
    fn default() -> Self {
        let p = RolePolicy::default();
        Self {
            idle_ttl: p.idle_ttl,
            absolute_ttl: p.absolute_ttl,
            max_sessions: p.max_sessions,
            bind: Vec::new(),
            on_mismatch: sessiond_engine::OnMismatch::default(),
            bind_ipv4_prefix: default_ipv4_prefix(),
            bind_ipv6_prefix: default_ipv6_prefix(),
        }
    }
}

impl LogFormat {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

impl Config {
    /// The store to open: `store`, or else the embedded store in `data_dir`
    /// (`embedded:./data` by default).
    pub fn store_url(&self) -> String {
        self.store
            .clone()
            .unwrap_or_else(|| format!("embedded:{}", self.data_dir.display()))
    }

    /// The trusted proxies (validated by [`Config::validate`]).
    pub fn trusted_proxies(&self) -> sessiond_http::TrustedProxies {
        sessiond_http::TrustedProxies::parse(&self.trusted_proxies).unwrap_or_default()
    }

    /// How the server bounds its connections.
    pub fn connection_limits(&self) -> crate::connections::ConnectionLimits {
        crate::connections::ConnectionLimits {
            header_read_timeout: self.limits.header_read_timeout,
            idle_timeout: self.limits.idle_timeout,
            max_connections: self.limits.max_connections,
            drain_timeout: self.limits.drain_timeout,
        }
    }

    /// The engine policy this configuration describes.
    pub fn policy(&self) -> Policy {
        let role = |r: &RoleConfig| RolePolicy {
            idle_ttl: r.idle_ttl,
            absolute_ttl: r.absolute_ttl,
            max_sessions: r.max_sessions,
        };
        Policy {
            default_role: self.roles.get("default").map(role).unwrap_or_default(),
            roles: self
                .roles
                .iter()
                .filter(|(name, _)| name.as_str() != "default")
                .map(|(name, r)| (name.clone(), role(r)))
                .collect(),
            strict_roles: self.strict_roles,
            limit_policy: match self.max_sessions_policy {
                MaxSessionsPolicy::EvictOldest => LimitPolicy::EvictOldest,
                MaxSessionsPolicy::Reject => LimitPolicy::Reject,
            },
            touch_interval: self.touch_interval,
            max_data_bytes: self.limits.max_data_bytes,
            store_timeout: self.store_timeout,
            bindings: self
                .roles
                .iter()
                .filter(|(_, r)| !r.bind.is_empty())
                .map(|(name, r)| {
                    let binding = sessiond_engine::Binding {
                        to: r.bind.clone(),
                        on_mismatch: r.on_mismatch,
                        ipv4_prefix: r.bind_ipv4_prefix,
                        ipv6_prefix: r.bind_ipv6_prefix,
                    };
                    (name.clone(), binding)
                })
                .collect(),
        }
    }

    /// A copy safe to print: the API key and any store password are `***`.
    pub fn masked(&self) -> Config {
        let mut c = self.clone();
        if c.api_key.is_some() {
            c.api_key = Some("***".to_owned());
        }
        c.store = Some(describe_store(&self.store_url()));
        c
    }

    /// The configuration as a TOML document (mask it first to print it).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// `url` fit for logs: the user-info part of a Redis URL keeps its user name
/// but its password becomes `***` (`redis://:***@host:6379/`). Other store
/// names are returned as they are.
pub fn describe_store(store_url: &str) -> String {
    let Some(scheme_end) = store_url.find("://") else {
        return store_url.to_owned();
    };
    let (scheme, rest) = store_url.split_at(scheme_end + 3);
    // The last '@' ends the user info even if a password holds a raw '@'.
    let Some(at) = rest.rfind('@') else {
        return format!("{scheme}{}", mask_query_password(rest));
    };
    let (userinfo, host) = rest.split_at(at);
    let masked = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        // `redis://secret@host` is read as a user name by some clients and as
        // a password by people: never print it.
        None if userinfo.is_empty() => String::new(),
        None => "***".to_owned(),
    };
    format!("{scheme}{masked}{}", mask_query_password(host))
}

/// `…?password=secret&x=1` with the password masked (PostgreSQL URLs may
/// carry it there).
fn mask_query_password(rest: &str) -> String {
    let Some((path, query)) = rest.split_once('?') else {
        return rest.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the configuration's unit tests.
    use super::*;

    pub(crate) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    pub(crate) fn from(toml: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        Config::from_sources(Some(toml), &env(pairs), &Overrides::default()).map(|l| l.config)
    }

    pub(crate) fn error(toml: &str) -> String {
        from(toml, &[]).unwrap_err().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_masks_passwords_only() {
        assert_eq!(describe_store("embedded:./data"), "embedded:./data");
        assert_eq!(
            describe_store("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            describe_store("redis://:hunter2@cache:6379/"),
            "redis://:***@cache:6379/"
        );
        assert_eq!(
            describe_store("rediss://app:p@ss@cache.example:6380/1"),
            "rediss://app:***@cache.example:6380/1"
        );
        assert_eq!(describe_store("redis://token@cache/"), "redis://***@cache/");
        assert!(!describe_store("redis://u:s3cret@h/").contains("s3cret"));
        assert_eq!(
            describe_store("postgres://app:pw@db/app?password=pw2&sslmode=require"),
            "postgres://app:***@db/app?password=***&sslmode=require"
        );
        assert_eq!(
            describe_store("postgres://db/app?password=pw"),
            "postgres://db/app?password=***"
        );
    }
}
