//! Configuration: defaults, then a TOML file, then `SESSIOND_*` environment
//! variables, then flags (flags win). Every bad value stops start-up with one
//! line naming the key, the value and what is accepted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sessiond_engine::{LimitPolicy, Policy, RolePolicy};

/// The whole configuration (SPEC.md section 4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// `embedded:PATH`, `redis://…`, `rediss://…`.
    pub store: String,
    /// API key file, signing keys.
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
    /// system's roots.
    pub store_ca_file: Option<PathBuf>,
    /// Bound on every store call.
    #[serde(with = "duration_text")]
    pub store_timeout: Duration,
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

/// `SameSite` attribute of the session cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`.
    #[default]
    Lax,
    /// `SameSite=None` (requires `secure`).
    None,
}

/// Session cookie attributes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CookieConfig {
    /// Cookie name.
    pub name: String,
    /// `Secure` attribute.
    pub secure: bool,
    /// `SameSite` attribute.
    pub same_site: SameSite,
    /// `Domain` attribute, if any.
    pub domain: Option<String>,
    /// `Path` attribute.
    pub path: String,
}

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

/// A configuration that cannot be used. Its `Display` is one line naming the
/// key, the value and what is accepted; secrets are never echoed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key holds a value that is not accepted.
    #[error("invalid config: {key} = {value}: {reason}")]
    Invalid {
        /// Dotted key, e.g. `jwt.access_ttl`.
        key: String,
        /// The value as written (strings quoted; secrets masked).
        value: String,
        /// What is accepted, e.g. `expected one of evict_oldest, reject`.
        reason: String,
    },
    /// A key that sessiond does not know (often a typo).
    #[error("invalid config: unknown key {key:?}")]
    UnknownKey {
        /// Dotted key.
        key: String,
    },
    /// A key that has no default is absent.
    #[error("invalid config: {key} is missing: {reason}")]
    Missing {
        /// Dotted key.
        key: String,
        /// What is accepted.
        reason: String,
    },
    /// The file is not valid TOML.
    #[error("invalid config: {file}: line {line}, column {column}: {message}")]
    Syntax {
        /// File name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What the TOML parser expected.
        message: String,
    },
    /// The file could not be read.
    #[error("invalid config: cannot read {path}: {reason}")]
    Read {
        /// File name.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// Anything else the layering reported.
    #[error("invalid config: {0}")]
    Other(String),
}

impl ConfigError {
    fn invalid(
        key: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// The dotted key the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. } | Self::UnknownKey { key } | Self::Missing { key, .. } => {
                Some(key)
            }
            _ => None,
        }
    }
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
            store: "embedded:./data".to_owned(),
            data_dir: PathBuf::from("./data"),
            api_key: None,
            default_mode: Mode::Opaque,
            touch_interval: Duration::from_secs(60),
            max_sessions_policy: MaxSessionsPolicy::EvictOldest,
            key_prefix: "sessiond:".to_owned(),
            store_ca_file: None,
            store_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            strict_roles: false,
            trusted_proxies: Vec::new(),
            limits: Limits::default(),
            cookie: CookieConfig::default(),
            jwt: JwtConfig::default(),
            refresh: RefreshConfig::default(),
            log: LogConfig::default(),
            roles,
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

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: "sessiond".to_owned(),
            secure: true,
            same_site: SameSite::Lax,
            domain: None,
            path: "/".to_owned(),
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

/// Durations as text: `"900ms"`, `"30s"`, `"15m"`, `"12h"`, `"30d"` (any
/// `humantime` duration is read; the shortest exact single unit is written).
pub mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Parse a duration, or say what is accepted.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err(super::DURATION_EXPECTED.to_owned());
        }
        humantime::parse_duration(text).map_err(|_| super::DURATION_EXPECTED.to_owned())
    }

    /// Write a duration in the largest unit that holds it exactly.
    pub fn format(d: Duration) -> String {
        if !d.subsec_nanos().is_multiple_of(1_000_000) {
            return humantime::format_duration(d).to_string();
        }
        let ms = d.as_millis();
        if ms == 0 {
            return "0s".to_owned();
        }
        const UNITS: [(u128, &str); 5] = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
            (1, "ms"),
        ];
        for (unit, suffix) in UNITS {
            if ms.is_multiple_of(unit) {
                return format!("{}{suffix}", ms / unit);
            }
        }
        format!("{ms}ms")
    }

    /// `serde(with)` serializer.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    /// `serde(with)` deserializer.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
    }
}

/// A list of strings, also read from one string of comma-separated entries.
pub mod string_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        One(String),
        Many(Vec<String>),
    }

    /// `serde(with)` serializer: a list.
    pub fn serialize<S: Serializer>(list: &[String], s: S) -> Result<S::Ok, S::Error> {
        list.serialize(s)
    }

    /// `serde(with)` deserializer: a list, or `"a, b"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Written::deserialize(d)? {
            Written::One(text) => text
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect(),
            Written::Many(list) => list,
        })
    }
}

impl Config {
    /// The effective configuration: defaults, then `file` (TOML), then the
    /// `SESSIOND_*` environment, then `flags`; validated.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> Result<Config, ConfigError> {
        let text = file.map(read_file).transpose()?;
        let env = process_env()?;
        let name = file.map(|p| p.display().to_string());
        let toml = text
            .as_deref()
            .map(|t| (t, name.as_deref().unwrap_or("config")));
        Self::layered(toml, &env, flags)
    }

    /// The defaults and `file` alone (no environment, no flags), validated:
    /// what `sessiond config check FILE` reports on.
    pub fn check_file(file: &Path) -> Result<Config, ConfigError> {
        let text = read_file(file)?;
        let name = file.display().to_string();
        Self::layered(Some((&text, &name)), &[], &Overrides::default())
    }

    /// [`Config::load`] over explicit sources: the file's text, the
    /// environment as `(name, value)` pairs (only `SESSIOND_*` names count),
    /// and the flags; validated.
    pub fn from_sources(
        toml: Option<&str>,
        env: &[(String, String)],
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        Self::layered(toml.map(|t| (t, "config file")), env, flags)
    }

    fn layered(
        toml: Option<(&str, &str)>,
        env: &[(String, String)],
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        let other = |e: config::ConfigError| ConfigError::Other(one_line(&e.to_string()));
        let defaults = config::Config::try_from(&Config::default()).map_err(other)?;
        let mut builder = config::Config::builder().add_source(defaults);
        if let Some((text, name)) = toml {
            check_toml(text, name)?;
            builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
        }
        let prefix = format!("{ENV_PREFIX}_");
        let vars: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| {
                k.len() > prefix.len() && k[..prefix.len()].eq_ignore_ascii_case(&prefix)
            })
            .cloned()
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("_")
                .separator("__")
                .ignore_empty(true)
                .source(Some(vars)),
        );
        let data_dir = flags.data_dir.as_ref().map(|d| d.display().to_string());
        builder = builder
            .set_override_option("listen", flags.listen.clone())
            .and_then(|b| b.set_override_option("store", flags.store.clone()))
            .and_then(|b| b.set_override_option("data_dir", data_dir))
            .and_then(|b| {
                b.set_override_option("log.format", flags.log_format.map(LogFormat::as_str))
            })
            .and_then(|b| {
                b.set_override_option("default_mode", flags.default_mode.map(Mode::as_str))
            })
            .map_err(other)?;
        let merged = builder.build().map_err(other)?;
        let config: Config = merged
            .clone()
            .try_deserialize()
            .map_err(|e| explain(&e, &merged.cache))?;
        config.validate()?;
        Ok(config)
    }

    /// Check every value and every rule between values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                "listen",
                quoted(&self.listen),
                r#"expected an IP address and port like "127.0.0.1:7420" or "[::]:7420""#,
            ));
        }
        validate_store(&self.store)?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "data_dir",
                "\"\"",
                "expected a directory path",
            ));
        }
        if let Some(key) = &self.api_key
            && (key.len() < 16 || !key.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ConfigError::invalid(
                "api_key",
                "\"***\"",
                "expected at least 16 printable ASCII characters without spaces",
            ));
        }
        if self.key_prefix.contains(['{', '}']) || self.key_prefix.chars().any(char::is_control) {
            return Err(ConfigError::invalid(
                "key_prefix",
                quoted(&self.key_prefix),
                "expected no '{', '}' or control characters (Redis takes braces as the hash tag)",
            ));
        }
        check_range(
            "touch_interval",
            self.touch_interval,
            Duration::ZERO,
            MAX_ROLE_TTL,
        )?;
        check_range(
            "store_timeout",
            self.store_timeout,
            Duration::from_millis(10),
            Duration::from_secs(60),
        )?;
        check_range(
            "request_timeout",
            self.request_timeout,
            Duration::from_millis(10),
            Duration::from_secs(3600),
        )?;
        if let Err(bad) = sessiond_http::TrustedProxies::parse(&self.trusted_proxies) {
            return Err(ConfigError::invalid(
                "trusted_proxies",
                quoted(&bad.0),
                "expected IP addresses or CIDR ranges like \"10.0.0.0/8\" or \"::1\"",
            ));
        }
        self.validate_limits()?;
        self.validate_cookie()?;
        self.validate_jwt()?;
        check_range(
            "refresh.reuse_grace",
            self.refresh.reuse_grace,
            Duration::ZERO,
            Duration::from_secs(600),
        )?;
        for (name, role) in &self.roles {
            validate_role(name, role)?;
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        for (key, value) in [
            ("limits.max_body_bytes", l.max_body_bytes as u64),
            ("limits.max_data_bytes", l.max_data_bytes as u64),
            ("limits.max_header_bytes", l.max_header_bytes as u64),
            ("limits.max_connections", l.max_connections as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "0", "expected a number above 0"));
            }
        }
        for (key, value) in [
            ("limits.header_read_timeout", l.header_read_timeout),
            ("limits.idle_timeout", l.idle_timeout),
            ("limits.drain_timeout", l.drain_timeout),
        ] {
            check_range(
                key,
                value,
                Duration::from_millis(10),
                Duration::from_secs(3600),
            )?;
        }
        if l.max_data_bytes > l.max_body_bytes {
            return Err(ConfigError::invalid(
                "limits.max_data_bytes",
                l.max_data_bytes.to_string(),
                format!(
                    "expected at most limits.max_body_bytes ({})",
                    l.max_body_bytes
                ),
            ));
        }
        Ok(())
    }

    fn validate_cookie(&self) -> Result<(), ConfigError> {
        let c = &self.cookie;
        if !is_token(&c.name) {
            return Err(ConfigError::invalid(
                "cookie.name",
                quoted(&c.name),
                "expected a cookie name: letters, digits and !#$%&'*+-.^_`|~",
            ));
        }
        if c.same_site == SameSite::None && !c.secure {
            return Err(ConfigError::invalid(
                "cookie.same_site",
                "\"none\"",
                "expected strict or lax unless cookie.secure = true (browsers drop SameSite=None cookies that are not Secure)",
            ));
        }
        if !c.path.starts_with('/') || !is_attribute_value(&c.path) {
            return Err(ConfigError::invalid(
                "cookie.path",
                quoted(&c.path),
                "expected a path starting with '/' without ';', spaces or control characters",
            ));
        }
        if let Some(domain) = &c.domain
            && (domain.is_empty() || !is_attribute_value(domain))
        {
            return Err(ConfigError::invalid(
                "cookie.domain",
                quoted(domain),
                "expected a domain name like \"example.com\"",
            ));
        }
        Ok(())
    }

    fn validate_jwt(&self) -> Result<(), ConfigError> {
        let j = &self.jwt;
        for (key, value) in [("jwt.issuer", &j.issuer), ("jwt.audience", &j.audience)] {
            if value.trim().is_empty() || value.chars().any(char::is_control) {
                return Err(ConfigError::invalid(
                    key,
                    quoted(value),
                    "expected a non-empty string without control characters",
                ));
            }
        }
        check_range(
            "jwt.access_ttl",
            j.access_ttl,
            Duration::from_secs(1),
            Duration::from_secs(24 * 3600),
        )?;
        check_range(
            "jwt.rollover_delay",
            j.rollover_delay,
            Duration::ZERO,
            Duration::from_secs(3600),
        )?;
        if !matches!(j.algorithm.as_str(), "EdDSA" | "ES256") {
            return Err(ConfigError::invalid(
                "jwt.algorithm",
                quoted(&j.algorithm),
                "expected one of EdDSA, ES256",
            ));
        }
        Ok(())
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
        }
    }

    /// A copy safe to print: the API key and any store password are `***`.
    pub fn masked(&self) -> Config {
        let mut c = self.clone();
        if c.api_key.is_some() {
            c.api_key = Some("***".to_owned());
        }
        c.store = crate::stores::describe(&c.store);
        c
    }

    /// The configuration as a TOML document (mask it first to print it).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// `SESSIOND_*` variables of the process (others are never read).
fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let prefix = format!("{ENV_PREFIX}_");
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Ok(name) = name.into_string() else {
            continue;
        };
        if !(name.len() > prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(&prefix)) {
            continue;
        }
        let value = value.into_string().map_err(|_| {
            ConfigError::invalid(name.clone(), "(not UTF-8)", "expected a UTF-8 value")
        })?;
        vars.push((name, value));
    }
    Ok(vars)
}

/// Reject a file that is not TOML with one line giving line and column.
fn check_toml(text: &str, file: &str) -> Result<(), ConfigError> {
    match text.parse::<toml::Table>() {
        Ok(_) => Ok(()),
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start).min(text.len());
            let before = text.get(..at).unwrap_or("");
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            Err(ConfigError::Syntax {
                file: file.to_owned(),
                line,
                column,
                message: one_line(e.message()),
            })
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// Turn an error of the `config` crate into one naming key, value and what is
/// accepted; the value is read back from the merged tree.
fn explain(err: &config::ConfigError, tree: &config::Value) -> ConfigError {
    let (key, inner) = unwrap_key(err);
    let message = inner.to_string();
    if let Some(field) = unknown_field(&message) {
        let key = match key {
            Some(k) if !k.is_empty() => format!("{k}.{field}"),
            _ => field,
        };
        return ConfigError::UnknownKey { key };
    }
    if let config::ConfigError::NotFound(missing) = inner {
        let key = match key {
            Some(k) if !k.is_empty() && k != *missing => k,
            _ => missing.clone(),
        };
        let reason = expectation(&key).unwrap_or("expected a value").to_owned();
        return ConfigError::Missing { key, reason };
    }
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return ConfigError::Other(one_line(&message));
    };
    let reason = match (expectation(&key), inner) {
        (Some(e), _) => e.to_owned(),
        (None, config::ConfigError::Type { expected, .. }) => format!("expected {expected}"),
        (None, _) => one_line(&message),
    };
    let value = if key == "api_key" {
        "\"***\"".to_owned()
    } else if key == "store" {
        lookup(tree, &key).map_or_else(
            || "?".to_owned(),
            |v| match &v.kind {
                config::ValueKind::String(s) => quoted(&crate::stores::describe(s)),
                _ => render(v),
            },
        )
    } else {
        lookup(tree, &key).map_or_else(|| "?".to_owned(), render)
    };
    ConfigError::invalid(key, value, reason)
}

/// The key an error is about and the error underneath the key annotations.
fn unwrap_key(err: &config::ConfigError) -> (Option<String>, &config::ConfigError) {
    match err {
        config::ConfigError::At { error, key, .. } => {
            let (inner_key, inner) = unwrap_key(error);
            (key.clone().or(inner_key), inner)
        }
        config::ConfigError::Type { key, .. } => (key.clone(), err),
        config::ConfigError::NotFound(key) => (Some(key.clone()), err),
        other => (None, other),
    }
}

/// `unknown field `x`, expected …` (serde's wording) → `x`.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest
        .rfind("`, expected")
        .or_else(|| rest.rfind("`, there are no fields"))?;
    Some(rest[..end].to_owned())
}

fn lookup<'a>(tree: &'a config::Value, key: &str) -> Option<&'a config::Value> {
    let mut node = tree;
    for part in key.split('.') {
        match &node.kind {
            config::ValueKind::Table(t) => node = t.get(part)?,
            _ => return None,
        }
    }
    Some(node)
}

fn render(v: &config::Value) -> String {
    match &v.kind {
        config::ValueKind::String(s) => quoted(s),
        config::ValueKind::Table(_) => "a table".to_owned(),
        config::ValueKind::Array(_) => "a list".to_owned(),
        config::ValueKind::Nil => "nothing".to_owned(),
        other => other.to_string(),
    }
}

/// What a key accepts, for error messages.
fn expectation(key: &str) -> Option<&'static str> {
    let parts: Vec<&str> = key.split('.').collect();
    Some(match parts.as_slice() {
        ["touch_interval" | "store_timeout" | "request_timeout"]
        | [
            "limits",
            "header_read_timeout" | "idle_timeout" | "drain_timeout",
        ]
        | ["jwt", "access_ttl" | "rollover_delay"]
        | ["refresh", "reuse_grace"]
        | ["roles", _, "idle_ttl" | "absolute_ttl"] => DURATION_EXPECTED,
        ["default_mode"] => "expected one of opaque, jwt",
        ["max_sessions_policy"] => "expected one of evict_oldest, reject",
        ["cookie", "same_site"] => "expected one of strict, lax, none",
        ["log", "format"] => "expected one of text, json",
        [
            "limits",
            "max_body_bytes" | "max_data_bytes" | "max_header_bytes" | "max_connections",
        ]
        | ["roles", _, "max_sessions"] => "expected a whole number above 0",
        ["limits", "failed_auth_per_minute"] => "expected a whole number (0 turns the limit off)",
        ["strict_roles"] | ["cookie", "secure"] => "expected true or false",
        ["trusted_proxies"] => {
            "expected a list of IP addresses or CIDR ranges, or one comma-separated string"
        }
        ["limits" | "cookie" | "jwt" | "refresh" | "log"] => "expected a table",
        ["roles"] => "expected a table of roles",
        ["roles", _] => "expected a table with idle_ttl, absolute_ttl and max_sessions",
        ["listen" | "store" | "data_dir" | "api_key" | "key_prefix" | "store_ca_file"]
        | ["cookie", "name" | "domain" | "path"]
        | ["jwt", "issuer" | "audience" | "algorithm" | "key_file"] => "expected a string",
        _ => return None,
    })
}

fn validate_store(store: &str) -> Result<(), ConfigError> {
    const ACCEPTED: &str = "expected embedded:PATH, redis://HOST:PORT/ or rediss://HOST:PORT/";
    let shown = || quoted(&crate::stores::describe(store));
    if let Some(path) = store.strip_prefix("embedded:") {
        if path.is_empty() {
            return Err(ConfigError::invalid("store", shown(), ACCEPTED));
        }
        return Ok(());
    }
    let lower = store.to_ascii_lowercase();
    if lower.starts_with("redis://") || lower.starts_with("rediss://") {
        let rest = &store[store.find("://").map_or(0, |i| i + 3)..];
        if rest.is_empty() || rest.starts_with('/') {
            return Err(ConfigError::invalid(
                "store",
                shown(),
                "expected a host after the scheme, e.g. redis://127.0.0.1:6379/",
            ));
        }
        return Ok(());
    }
    for scheme in [
        "redis+sentinel://",
        "redis+cluster://",
        "rediss+sentinel://",
        "rediss+cluster://",
    ] {
        if lower.starts_with(scheme) {
            return Err(ConfigError::invalid(
                "store",
                shown(),
                format!("{scheme} is not supported yet; {ACCEPTED}"),
            ));
        }
    }
    Err(ConfigError::invalid("store", shown(), ACCEPTED))
}

fn check_range(key: &str, d: Duration, min: Duration, max: Duration) -> Result<(), ConfigError> {
    if d < min || d > max {
        let lower = if min.is_zero() {
            "0s".to_owned()
        } else {
            duration_text::format(min)
        };
        return Err(ConfigError::invalid(
            key,
            quoted(&duration_text::format(d)),
            format!(
                "expected a duration from {lower} to {}",
                duration_text::format(max)
            ),
        ));
    }
    Ok(())
}

fn validate_role(name: &str, role: &RoleConfig) -> Result<(), ConfigError> {
    let max_len = sessiond_engine::engine::MAX_ROLE_BYTES;
    if name.is_empty() || name.len() > max_len || name.chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            "roles",
            quoted(name),
            format!("expected role names of 1 to {max_len} bytes without control characters"),
        ));
    }
    let key = |field: &str| format!("roles.{name}.{field}");
    let min = Duration::from_secs(1);
    check_range(&key("idle_ttl"), role.idle_ttl, min, MAX_ROLE_TTL)?;
    check_range(&key("absolute_ttl"), role.absolute_ttl, min, MAX_ROLE_TTL)?;
    if role.idle_ttl > role.absolute_ttl {
        return Err(ConfigError::invalid(
            key("idle_ttl"),
            quoted(&duration_text::format(role.idle_ttl)),
            format!(
                "expected at most roles.{name}.absolute_ttl ({})",
                duration_text::format(role.absolute_ttl)
            ),
        ));
    }
    if role.max_sessions == 0 {
        return Err(ConfigError::invalid(
            key("max_sessions"),
            "0",
            "expected a whole number above 0",
        ));
    }
    Ok(())
}

/// An RFC 7230 token, as a cookie name must be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A cookie attribute value: visible ASCII without `;`.
fn is_attribute_value(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn from(toml: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_sources(Some(toml), &env(pairs), &Overrides::default())
    }

    fn error(toml: &str) -> String {
        from(toml, &[]).unwrap_err().to_string()
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = Config::from_sources(None, &[], &Overrides::default()).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.listen, "127.0.0.1:7420");
        assert_eq!(c.store, "embedded:./data");
        assert_eq!(c.touch_interval, Duration::from_secs(60));
        assert_eq!(c.jwt.access_ttl, Duration::from_secs(900));
        assert_eq!(c.refresh.reuse_grace, Duration::from_secs(10));
        assert_eq!(c.limits.max_body_bytes, 65_536);
        assert_eq!(c.cookie.same_site, SameSite::Lax);
        assert!(c.cookie.secure);
        let d = &c.roles["default"];
        assert_eq!(d.idle_ttl, Duration::from_secs(1800));
        assert_eq!(d.absolute_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(d.max_sessions, 10);
        c.validate().unwrap();
    }

    #[test]
    fn the_spec_example_file_loads() {
        let c = from(
            r#"
listen = "0.0.0.0:8080"
store = "redis://127.0.0.1:6379/"
data_dir = "/var/lib/sessiond"
default_mode = "jwt"
touch_interval = "30s"
max_sessions_policy = "reject"
key_prefix = "app:"
store_timeout = "900ms"

[limits]
max_body_bytes = 32768
max_data_bytes = 8192

[cookie]
name = "sid"
same_site = "strict"
domain = "example.com"

[jwt]
access_ttl = "5m"
algorithm = "ES256"

[log]
format = "json"

[roles.admin]
idle_ttl = "15m"
absolute_ttl = "12h"
max_sessions = 2
"#,
            &[],
        )
        .unwrap();
        assert_eq!(c.default_mode, Mode::Jwt);
        assert_eq!(c.max_sessions_policy, MaxSessionsPolicy::Reject);
        assert_eq!(c.store_timeout, Duration::from_millis(900));
        assert_eq!(c.limits.max_body_bytes, 32_768);
        assert_eq!(c.limits.failed_auth_per_minute, 30);
        assert_eq!(c.cookie.domain.as_deref(), Some("example.com"));
        assert_eq!(c.cookie.path, "/");
        assert_eq!(c.log.format, LogFormat::Json);
        // A file that adds a role keeps the default role.
        assert_eq!(c.roles.len(), 2);
        assert_eq!(c.roles["default"], RoleConfig::default());
        let p = c.policy();
        assert_eq!(p.limit_policy, LimitPolicy::Reject);
        assert_eq!(p.default_role, RolePolicy::default());
        assert_eq!(p.roles.len(), 1);
        assert_eq!(p.roles["admin"].max_sessions, 2);
        assert_eq!(
            p.roles["admin"].absolute_ttl,
            Duration::from_secs(12 * 3600)
        );
        assert_eq!(p.touch_interval, Duration::from_secs(30));
        assert_eq!(p.max_data_bytes, 8192);
        assert_eq!(p.store_timeout, Duration::from_millis(900));
    }

    #[test]
    fn a_partial_default_role_keeps_the_other_defaults() {
        let c = from("[roles.default]\nmax_sessions = 3\n", &[]).unwrap();
        assert_eq!(c.roles["default"].max_sessions, 3);
        assert_eq!(c.roles["default"].idle_ttl, Duration::from_secs(1800));
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let file = "listen = \"127.0.0.1:1\"\nstore = \"embedded:/file\"\ndata_dir = \"/file\"\n";
        let vars = env(&[
            ("SESSIOND_LISTEN", "127.0.0.1:2"),
            ("SESSIOND_STORE", "embedded:/env"),
            ("SESSIOND_LOG__FORMAT", "json"),
        ]);
        let flags = Overrides {
            listen: Some("127.0.0.1:3".to_owned()),
            default_mode: Some(Mode::Jwt),
            ..Overrides::default()
        };
        let c = Config::from_sources(Some(file), &vars, &flags).unwrap();
        assert_eq!(c.listen, "127.0.0.1:3");
        assert_eq!(c.store, "embedded:/env");
        assert_eq!(c.data_dir, PathBuf::from("/file"));
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.default_mode, Mode::Jwt);
        assert_eq!(c.key_prefix, "sessiond:");

        let flags = Overrides {
            store: Some("redis://h:1/".to_owned()),
            data_dir: Some(PathBuf::from("/flag")),
            log_format: Some(LogFormat::Text),
            ..Overrides::default()
        };
        let c = Config::from_sources(Some(file), &vars, &flags).unwrap();
        assert_eq!(c.store, "redis://h:1/");
        assert_eq!(c.data_dir, PathBuf::from("/flag"));
        assert_eq!(c.log.format, LogFormat::Text);
    }

    #[test]
    fn env_reaches_nested_keys_with_typed_values() {
        let c = from(
            "",
            &[
                ("SESSIOND_JWT__ACCESS_TTL", "30s"),
                ("SESSIOND_LIMITS__MAX_BODY_BYTES", "100000"),
                ("SESSIOND_COOKIE__SECURE", "false"),
                ("SESSIOND_COOKIE__SAME_SITE", "strict"),
                ("SESSIOND_STRICT_ROLES", "true"),
                ("SESSIOND_ROLES__DEFAULT__MAX_SESSIONS", "4"),
                ("SESSIOND_API_KEY", "0123456789012345"),
                ("SESSIOND_KEY_PREFIX", "007"),
                ("SESSIOND_MAX_SESSIONS_POLICY", "reject"),
                ("OTHER_LISTEN", "nonsense"),
                ("SESSIOND_COOKIE__DOMAIN", ""),
            ],
        )
        .unwrap();
        assert_eq!(c.jwt.access_ttl, Duration::from_secs(30));
        assert_eq!(c.limits.max_body_bytes, 100_000);
        assert!(!c.cookie.secure);
        assert_eq!(c.cookie.same_site, SameSite::Strict);
        assert!(c.strict_roles);
        assert_eq!(c.roles["default"].max_sessions, 4);
        // Strings that look like numbers stay exactly as written.
        assert_eq!(c.api_key.as_deref(), Some("0123456789012345"));
        assert_eq!(c.key_prefix, "007");
        assert_eq!(c.max_sessions_policy, MaxSessionsPolicy::Reject);
        assert_eq!(c.cookie.domain, None);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert_eq!(
            error("listn = \"127.0.0.1:1\""),
            r#"invalid config: unknown key "listn""#
        );
        assert_eq!(
            error("[jwt]\naccess_tll = \"1m\""),
            r#"invalid config: unknown key "jwt.access_tll""#
        );
        assert_eq!(
            error(
                "[roles.admin]\nidle_ttl = \"1m\"\nabsolute_ttl = \"1h\"\nmax_sessions = 1\nmax = 2"
            ),
            r#"invalid config: unknown key "roles.admin.max""#
        );
        assert_eq!(
            from("", &[("SESSIOND_LISTN", "x")])
                .unwrap_err()
                .to_string(),
            r#"invalid config: unknown key "listn""#
        );
        assert_eq!(
            from("", &[("SESSIOND_JWT__NOPE", "x")])
                .unwrap_err()
                .to_string(),
            r#"invalid config: unknown key "jwt.nope""#
        );
    }

    #[test]
    fn bad_values_name_key_value_and_what_is_accepted() {
        let cases: &[(&str, &str)] = &[
            (
                "[jwt]\naccess_ttl = \"15 parsecs\"",
                r#"invalid config: jwt.access_ttl = "15 parsecs": expected a duration like "900ms", "30s", "15m", "12h", "30d""#,
            ),
            (
                "max_sessions_policy = \"random\"",
                r#"invalid config: max_sessions_policy = "random": expected one of evict_oldest, reject"#,
            ),
            (
                "default_mode = \"cookie\"",
                r#"invalid config: default_mode = "cookie": expected one of opaque, jwt"#,
            ),
            (
                "[cookie]\nsame_site = \"sometimes\"",
                r#"invalid config: cookie.same_site = "sometimes": expected one of strict, lax, none"#,
            ),
            (
                "[log]\nformat = \"xml\"",
                r#"invalid config: log.format = "xml": expected one of text, json"#,
            ),
            (
                "[limits]\nmax_body_bytes = \"lots\"",
                r#"invalid config: limits.max_body_bytes = "lots": expected a whole number above 0"#,
            ),
            (
                "[limits]\nmax_body_bytes = -5",
                "invalid config: limits.max_body_bytes = -5: expected a whole number above 0",
            ),
            (
                "touch_interval = 60",
                r#"invalid config: touch_interval = 60: expected a duration like "900ms", "30s", "15m", "12h", "30d""#,
            ),
            (
                "[cookie]\nsecure = \"maybe\"",
                r#"invalid config: cookie.secure = "maybe": expected true or false"#,
            ),
            ("jwt = 5", "invalid config: jwt = 5: expected a table"),
            (
                "[roles.admin]\nidle_ttl = \"soon\"\nabsolute_ttl = \"1h\"\nmax_sessions = 1",
                r#"invalid config: roles.admin.idle_ttl = "soon": expected a duration like "900ms", "30s", "15m", "12h", "30d""#,
            ),
            (
                "[roles.admin]\nidle_ttl = \"1m\"",
                "invalid config: roles.admin.absolute_ttl is missing: expected a duration like \"900ms\", \"30s\", \"15m\", \"12h\", \"30d\"",
            ),
        ];
        for (toml, expected) in cases {
            assert_eq!(&error(toml), expected, "{toml}");
        }
        assert_eq!(
            from("", &[("SESSIOND_JWT__ACCESS_TTL", "15 parsecs")])
                .unwrap_err()
                .to_string(),
            r#"invalid config: jwt.access_ttl = "15 parsecs": expected a duration like "900ms", "30s", "15m", "12h", "30d""#
        );
        assert_eq!(
            from("", &[("SESSIOND_LIMITS__MAX_DATA_BYTES", "many")])
                .unwrap_err()
                .to_string(),
            r#"invalid config: limits.max_data_bytes = "many": expected a whole number above 0"#
        );
    }

    #[test]
    fn validation_names_key_and_value() {
        let cases: &[(&str, &str, &str)] = &[
            ("listen = \"localhost\"", "listen", "\"localhost\""),
            ("store = \"postgres://x\"", "store", "\"postgres://x\""),
            ("store = \"embedded:\"", "store", "\"embedded:\""),
            ("key_prefix = \"a{b}\"", "key_prefix", "\"a{b}\""),
            ("store_timeout = \"5ms\"", "store_timeout", "\"5ms\""),
            ("store_timeout = \"2m\"", "store_timeout", "\"2m\""),
            ("request_timeout = \"0s\"", "request_timeout", "\"0s\""),
            ("[jwt]\naccess_ttl = \"0s\"", "jwt.access_ttl", "\"0s\""),
            ("[jwt]\nalgorithm = \"HS256\"", "jwt.algorithm", "\"HS256\""),
            ("[jwt]\nissuer = \"\"", "jwt.issuer", "\"\""),
            ("[limits]\nmax_body_bytes = 0", "limits.max_body_bytes", "0"),
            (
                "[limits]\nmax_data_bytes = 70000",
                "limits.max_data_bytes",
                "70000",
            ),
            (
                "[limits]\nmax_connections = 0",
                "limits.max_connections",
                "0",
            ),
            (
                "[limits]\nidle_timeout = \"0s\"",
                "limits.idle_timeout",
                "\"0s\"",
            ),
            (
                "[cookie]\nname = \"my cookie\"",
                "cookie.name",
                "\"my cookie\"",
            ),
            ("[cookie]\nname = \"\"", "cookie.name", "\"\""),
            (
                "[cookie]\nsecure = false\nsame_site = \"none\"",
                "cookie.same_site",
                "\"none\"",
            ),
            ("[cookie]\npath = \"app\"", "cookie.path", "\"app\""),
            ("[cookie]\ndomain = \"a;b\"", "cookie.domain", "\"a;b\""),
            (
                "[refresh]\nreuse_grace = \"1h\"",
                "refresh.reuse_grace",
                "\"1h\"",
            ),
            (
                "[roles.default]\nmax_sessions = 0",
                "roles.default.max_sessions",
                "0",
            ),
            (
                "[roles.default]\nidle_ttl = \"500ms\"",
                "roles.default.idle_ttl",
                "\"500ms\"",
            ),
            (
                "[roles.default]\nabsolute_ttl = \"401d\"",
                "roles.default.absolute_ttl",
                "\"401d\"",
            ),
            (
                "[roles.x]\nidle_ttl = \"2h\"\nabsolute_ttl = \"1h\"\nmax_sessions = 1",
                "roles.x.idle_ttl",
                "\"2h\"",
            ),
        ];
        for (toml, key, value) in cases {
            let err = from(toml, &[]).unwrap_err();
            assert_eq!(err.key(), Some(*key), "{toml}: {err}");
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("invalid config: {key} = {value}: ")),
                "{toml}: {text}"
            );
            assert!(!text.contains('\n'), "{text}");
        }
    }

    #[test]
    fn cluster_and_sentinel_urls_are_not_supported_yet() {
        for url in [
            "redis+sentinel://h:26379/mymaster",
            "redis+cluster://h:7000/",
        ] {
            let text = from(&format!("store = \"{url}\""), &[])
                .unwrap_err()
                .to_string();
            assert!(
                text.starts_with(&format!("invalid config: store = \"{url}\": ")),
                "{text}"
            );
            assert!(text.contains("not supported yet"), "{text}");
        }
        for ok in [
            "redis://127.0.0.1:6379/",
            "rediss://:pw@cache:6380/0",
            "embedded:/tmp/x",
        ] {
            from(&format!("store = \"{ok}\""), &[]).unwrap();
        }
    }

    #[test]
    fn secrets_never_appear_in_errors() {
        let text = from("api_key = \"short\"", &[]).unwrap_err().to_string();
        assert!(
            text.starts_with("invalid config: api_key = \"***\": "),
            "{text}"
        );
        assert!(!text.contains("short"));
        let text = from("api_key = 12", &[]).unwrap_err().to_string();
        assert!(!text.contains("12"), "{text}");
        let text = from("store = \"ftp://u:hunter2@h/\"", &[])
            .unwrap_err()
            .to_string();
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn syntax_errors_are_one_line_with_position() {
        let err = from("listen = \"a\"\n[jwt\n", &[]).unwrap_err();
        let ConfigError::Syntax { line, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*line, 2);
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn load_reads_a_file_and_reports_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessiond.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9999\"\n").unwrap();
        let c = Config::load(Some(&path), &Overrides::default()).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9999");
        let missing = dir.path().join("nope.toml");
        let text = Config::load(Some(&missing), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("invalid config: cannot read "), "{text}");
        assert!(text.contains("nope.toml"), "{text}");
    }

    #[test]
    fn masked_toml_round_trips_without_secrets() {
        let c = Config {
            api_key: Some("sdk_supersecretsupersecret".to_owned()),
            store: "redis://:pw123@cache:6379/".to_owned(),
            ..Config::default()
        };
        let text = c.masked().to_toml();
        assert!(!text.contains("supersecret"), "{text}");
        assert!(!text.contains("pw123"), "{text}");
        assert!(text.contains("api_key = \"***\""), "{text}");
        assert!(text.contains("access_ttl = \"15m\""), "{text}");
        assert!(text.contains("absolute_ttl = \"30d\""), "{text}");
        let back = Config::from_sources(
            Some(&Config::default().to_toml()),
            &[],
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(back, Config::default());
    }

    #[test]
    fn duration_text_examples() {
        for (text, d) in [
            ("900ms", Duration::from_millis(900)),
            ("30s", Duration::from_secs(30)),
            ("15m", Duration::from_secs(900)),
            ("12h", Duration::from_secs(43_200)),
            ("30d", Duration::from_secs(30 * 86_400)),
        ] {
            assert_eq!(duration_text::parse(text), Ok(d));
            assert_eq!(duration_text::format(d), text);
        }
        assert_eq!(duration_text::format(Duration::from_secs(90)), "90s");
        assert_eq!(duration_text::format(Duration::ZERO), "0s");
        assert_eq!(
            duration_text::parse("1h 30m"),
            Ok(Duration::from_secs(5400))
        );
        for bad in ["", " ", "15 parsecs", "s", "-1s", "1.5.5s"] {
            assert_eq!(
                duration_text::parse(bad),
                Err(DURATION_EXPECTED.to_owned()),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn duration_text_never_panics(text in any::<String>()) {
            let _ = duration_text::parse(&text);
        }

        #[test]
        fn duration_text_never_panics_on_near_misses(text in "[0-9 .]{0,12}[a-zµ]{0,8}[0-9]{0,3}") {
            let _ = duration_text::parse(&text);
        }

        #[test]
        fn duration_text_round_trips(secs in 0u64..(10 * 400 * 86_400), nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(duration_text::parse(&duration_text::format(d)), Ok(d));
            let ms = Duration::from_millis(secs * 1000 + u64::from(nanos / 1_000_000));
            prop_assert_eq!(duration_text::parse(&duration_text::format(ms)), Ok(ms));
        }
    }
}
