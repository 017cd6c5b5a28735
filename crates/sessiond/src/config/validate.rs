//! Checking every value of a configuration and the rules between values.

use std::net::SocketAddr;
use std::time::Duration;

use super::duration_text;
use super::error::ConfigErrors;
use super::error::quoted;
use super::{Config, ConfigError, MAX_ROLE_TTL, RoleConfig, describe_store};

impl Config {
    /// Check every value and every rule between values; every broken one is
    /// reported.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut found = Found::default();
        if !listen_is_valid(&self.listen) {
            found.push(ConfigError::invalid(
                "listen",
                quoted(&self.listen),
                r#"expected HOST:PORT like "127.0.0.1:7420", "[::]:7420" or "localhost:7420""#,
            ));
        }
        if let Some(admin) = &self.admin_listen {
            if !listen_is_valid(admin) {
                found.push(ConfigError::invalid(
                    "admin_listen",
                    quoted(admin),
                    r#"expected HOST:PORT like "127.0.0.1:7421" or "localhost:7421""#,
                ));
            } else if *admin == self.listen {
                found.push(ConfigError::invalid(
                    "admin_listen",
                    quoted(admin),
                    "expected an address other than listen's",
                ));
            }
        }
        found.check(validate_store(&self.store_url()));
        if self.data_dir.as_os_str().is_empty() {
            found.push(ConfigError::invalid(
                "data_dir",
                "\"\"",
                "expected a directory path",
            ));
        }
        if let Some(key) = &self.api_key
            && (key.len() < 16 || !key.bytes().all(|b| b.is_ascii_graphic()))
        {
            found.push(ConfigError::invalid(
                "api_key",
                "\"***\"",
                "expected at least 16 printable ASCII characters without spaces",
            ));
        }
        if self.key_prefix.contains(['{', '}']) || self.key_prefix.chars().any(char::is_control) {
            found.push(ConfigError::invalid(
                "key_prefix",
                quoted(&self.key_prefix),
                "expected no '{', '}' or control characters (Redis takes braces as the hash tag)",
            ));
        }
        found.check(check_range(
            "touch_interval",
            self.touch_interval,
            Duration::ZERO,
            MAX_ROLE_TTL,
        ));
        found.check(check_range(
            "store_timeout",
            self.store_timeout,
            Duration::from_millis(10),
            Duration::from_secs(60),
        ));
        if self.store_wait_replicas > 16 {
            found.push(ConfigError::invalid(
                "store_wait_replicas",
                self.store_wait_replicas.to_string(),
                "expected 0 (off) to 16",
            ));
        }
        found.check(check_range(
            "history_retention",
            self.history_retention,
            Duration::from_secs(3600),
            Duration::from_secs(3650 * 86_400),
        ));
        found.check(check_range(
            "request_timeout",
            self.request_timeout,
            Duration::from_millis(10),
            Duration::from_secs(3600),
        ));
        if let Err(bad) = sessiond_http::TrustedProxies::parse(&self.trusted_proxies) {
            found.push(ConfigError::invalid(
                "trusted_proxies",
                quoted(&bad.0),
                "expected IP addresses or CIDR ranges like \"10.0.0.0/8\" or \"::1\"",
            ));
        }
        self.validate_limits_and_cache(&mut found);
        self.validate_events(&mut found);
        found.check(self.validate_cookie());
        self.validate_jwt(&mut found);
        found.check(check_range(
            "refresh.reuse_grace",
            self.refresh.reuse_grace,
            Duration::ZERO,
            Duration::from_secs(600),
        ));
        for (name, rule) in &self.forward_auth {
            if !rule.path_prefix.starts_with('/') {
                found.push(ConfigError::invalid(
                    format!("forward_auth.{name}.path_prefix"),
                    quoted(&rule.path_prefix),
                    "expected a path starting with /",
                ));
            }
            if rule.min_aal.is_none() && rule.max_age.is_none() {
                found.push(ConfigError::invalid(
                    format!("forward_auth.{name}"),
                    quoted(name),
                    "expected min_aal or max_age (a rule that requires nothing)",
                ));
            }
        }
        for (name, role) in &self.roles {
            validate_role(name, role, &mut found);
        }
        found.finish()
    }

    fn validate_events(&self, found: &mut Found) {
        let e = &self.events;
        found.check(check_range(
            "events.retention",
            e.retention,
            Duration::from_secs(60),
            Duration::from_secs(3650 * 86_400),
        ));
        if e.max_events == 0 {
            found.push(ConfigError::invalid(
                "events.max_events",
                "0",
                "expected a number above 0",
            ));
        }
        found.check(check_range(
            "events.poll_interval",
            e.poll_interval,
            Duration::from_millis(10),
            Duration::from_secs(60),
        ));
        found.check(check_range(
            "events.heartbeat",
            e.heartbeat,
            Duration::from_secs(1),
            Duration::from_secs(300),
        ));
    }

    fn validate_limits_and_cache(&self, found: &mut Found) {
        let l = &self.limits;
        for (key, value) in [
            ("limits.max_body_bytes", l.max_body_bytes as u64),
            ("limits.max_data_bytes", l.max_data_bytes as u64),
            ("limits.max_header_bytes", l.max_header_bytes as u64),
            ("limits.max_connections", l.max_connections as u64),
            ("cache.max_entries", self.cache.max_entries as u64),
            ("cache.max_bytes", self.cache.max_bytes as u64),
        ] {
            if value == 0 {
                found.push(ConfigError::invalid(key, "0", "expected a number above 0"));
            }
        }
        for (key, value) in [
            ("limits.header_read_timeout", l.header_read_timeout),
            ("limits.idle_timeout", l.idle_timeout),
            ("limits.drain_timeout", l.drain_timeout),
        ] {
            found.check(check_range(
                key,
                value,
                Duration::from_millis(10),
                Duration::from_secs(3600),
            ));
        }
        if l.max_data_bytes > l.max_body_bytes && l.max_body_bytes > 0 {
            found.push(ConfigError::invalid(
                "limits.max_data_bytes",
                l.max_data_bytes.to_string(),
                format!(
                    "expected at most limits.max_body_bytes ({})",
                    l.max_body_bytes
                ),
            ));
        }
    }

    fn validate_cookie(&self) -> Result<(), ConfigError> {
        self.cookie.validate().map_err(|bad| {
            ConfigError::invalid(format!("cookie.{}", bad.field), bad.value, bad.expected)
        })
    }

    fn validate_jwt(&self, found: &mut Found) {
        let j = &self.jwt;
        for (key, value) in [("jwt.issuer", &j.issuer), ("jwt.audience", &j.audience)] {
            if value.trim().is_empty() || value.chars().any(char::is_control) {
                found.push(ConfigError::invalid(
                    key,
                    quoted(value),
                    "expected a non-empty string without control characters",
                ));
            }
        }
        found.check(check_range(
            "jwt.access_ttl",
            j.access_ttl,
            Duration::from_secs(1),
            Duration::from_secs(24 * 3600),
        ));
        found.check(check_range(
            "jwt.rollover_delay",
            j.rollover_delay,
            Duration::ZERO,
            Duration::from_secs(3600),
        ));
        if !matches!(j.algorithm.as_str(), "EdDSA" | "ES256") {
            found.push(ConfigError::invalid(
                "jwt.algorithm",
                quoted(&j.algorithm),
                "expected one of EdDSA, ES256",
            ));
        }
    }
}

/// The errors found so far.
#[derive(Default)]
struct Found(Vec<ConfigError>);

impl Found {
    fn push(&mut self, e: ConfigError) {
        self.0.push(e);
    }

    fn check(&mut self, result: Result<(), ConfigError>) {
        if let Err(e) = result {
            self.0.push(e);
        }
    }

    fn finish(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.0))
        }
    }
}

/// `HOST:PORT` with a port number and an IP address or host name (resolved
/// when the server starts).
fn listen_is_valid(listen: &str) -> bool {
    if listen.parse::<SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = listen.rsplit_once(':') else {
        return false;
    };
    port.parse::<u16>().is_ok()
        && !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn validate_store(store: &str) -> Result<(), ConfigError> {
    const ACCEPTED: &str = "expected embedded:PATH, postgres://USER@HOST:PORT/DATABASE, redis://HOST:PORT/, rediss://HOST:PORT/, redis+cluster://HOST:PORT,HOST:PORT,… or redis+sentinel://HOST:PORT,HOST:PORT,…/MASTER";
    let shown = || quoted(&describe_store(store));
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
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return sessiond_postgres::check_url(store)
            .map_err(|e| ConfigError::invalid("store", shown(), e));
    }
    if lower.starts_with("redis+") || lower.starts_with("rediss+") {
        return sessiond_redis::Topology::parse(store)
            .map(drop)
            .map_err(|e| ConfigError::invalid("store", shown(), e.to_string()));
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

fn validate_role(name: &str, role: &RoleConfig, found: &mut Found) {
    let max_len = sessiond_engine::engine::MAX_ROLE_BYTES;
    if name.is_empty() || name.len() > max_len || name.chars().any(char::is_control) {
        found.push(ConfigError::invalid(
            "roles",
            quoted(name),
            format!("expected role names of 1 to {max_len} bytes without control characters"),
        ));
        return;
    }
    let key = |field: &str| format!("roles.{name}.{field}");
    let min = Duration::from_secs(1);
    let idle = check_range(&key("idle_ttl"), role.idle_ttl, min, MAX_ROLE_TTL);
    let absolute = check_range(&key("absolute_ttl"), role.absolute_ttl, min, MAX_ROLE_TTL);
    let both_in_range = idle.is_ok() && absolute.is_ok();
    found.check(idle);
    found.check(absolute);
    if both_in_range && role.idle_ttl > role.absolute_ttl {
        found.push(ConfigError::invalid(
            key("idle_ttl"),
            quoted(&duration_text::format(role.idle_ttl)),
            format!(
                "expected at most roles.{name}.absolute_ttl ({})",
                duration_text::format(role.absolute_ttl)
            ),
        ));
    }
    if role.max_sessions == 0 {
        found.push(ConfigError::invalid(
            key("max_sessions"),
            "0",
            "expected a whole number above 0",
        ));
    }
    if role.bind_ipv4_prefix > 32 {
        found.push(ConfigError::invalid(
            key("bind_ipv4_prefix"),
            role.bind_ipv4_prefix.to_string(),
            "expected a whole number from 0 to 32",
        ));
    }
    if role.bind_ipv6_prefix > 128 {
        found.push(ConfigError::invalid(
            key("bind_ipv6_prefix"),
            role.bind_ipv6_prefix.to_string(),
            "expected a whole number from 0 to 128",
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::from;

    #[test]
    fn validation_names_key_and_value() {
        let cases: &[(&str, &str, &str)] = &[
            ("listen = \"localhost\"", "listen", "\"localhost\""),
            (
                "store = \"postgres://x?sslmode=sometimes\"",
                "store",
                "\"postgres://x?sslmode=sometimes\"",
            ),
            ("store = \"mysql://x\"", "store", "\"mysql://x\""),
            ("store = \"embedded:\"", "store", "\"embedded:\""),
            ("key_prefix = \"a{b}\"", "key_prefix", "\"a{b}\""),
            ("store_timeout = \"5ms\"", "store_timeout", "\"5ms\""),
            ("store_timeout = \"2m\"", "store_timeout", "\"2m\""),
            ("request_timeout = \"0s\"", "request_timeout", "\"0s\""),
            (
                "history_retention = \"30m\"",
                "history_retention",
                "\"30m\"",
            ),
            (
                "history_retention = \"3651d\"",
                "history_retention",
                "\"3651d\"",
            ),
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
            assert_eq!(err.0.len(), 1, "{toml}: {err}");
            assert_eq!(err.0[0].key(), Some(*key), "{toml}: {err}");
            let text = err.to_string();
            assert!(
                text.starts_with(&format!(
                    "invalid config: {key} = {value} (from config.toml:"
                )),
                "{toml}: {text}"
            );
            assert!(!text.contains('\n'), "{text}");
        }
    }

    #[test]
    fn cluster_and_sentinel_urls_are_checked() {
        for (url, why) in [
            ("redis+sentinel://h:26379", "names no master"),
            ("redis+sentinel://h/mymaster", "has no port"),
            ("redis+cluster://h1", "has no port"),
            ("redis+cluster://h1:7000,,h2:7001", "an empty host"),
            ("rediss+cluster://:secret@h1:7000/4", "no database"),
        ] {
            let err = from(&format!("store = \"{url}\""), &[]).unwrap_err();
            let text = err.to_string();
            assert_eq!(err.0.len(), 1, "{text}");
            assert!(text.starts_with("invalid config: store = \""), "{text}");
            assert!(text.contains(why), "{url}: {text}");
            assert!(!text.contains("secret"), "{text}");
        }
        for ok in [
            "redis://127.0.0.1:6379/",
            "rediss://:pw@cache:6380/0",
            "embedded:/tmp/x",
            "redis+cluster://h1:7000,h2:7001,h3:7002",
            "rediss+cluster://:pw@h1:7000/",
            "redis+sentinel://s1:26379,s2:26379,s3:26379/mymaster",
        ] {
            from(&format!("store = \"{ok}\""), &[]).unwrap();
        }
    }

    #[test]
    fn secrets_never_appear_in_errors() {
        let text = from("api_key = \"short\"", &[]).unwrap_err().to_string();
        assert!(
            text.starts_with("invalid config: api_key = \"***\" (from config.toml:1): "),
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
}
