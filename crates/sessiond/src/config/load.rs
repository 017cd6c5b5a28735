//! Loading the configuration: defaults, then a TOML file, then `SESSIOND_*`
//! environment variables, then flags (flags win).

use std::collections::HashMap;
use std::path::Path;

use super::error::{ConfigErrors, one_line};
use super::explain::{expectation, explain};
use super::strict;
use super::{Config, ConfigError, ENV_PREFIX, LogFormat, Mode, Overrides};

/// A loaded configuration and what was noticed on the way.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The effective, validated configuration.
    pub config: Config,
    /// One line each, for stderr: environment variables that name no
    /// setting (they are ignored, so an app's own `SESSIOND_URL` cannot stop
    /// sessiond).
    pub warnings: Vec<String>,
}

impl Config {
    /// The effective configuration: defaults, then `file` (TOML), then the
    /// `SESSIOND_*` environment, then `flags`; validated.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> Result<Loaded, ConfigErrors> {
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
    pub fn check_file(file: &Path) -> Result<Config, ConfigErrors> {
        let text = read_file(file)?;
        let name = file.display().to_string();
        Self::layered(Some((&text, &name)), &[], &Overrides::default()).map(|l| l.config)
    }

    /// [`Config::load`] over explicit sources: the file's text, the
    /// environment as `(name, value)` pairs (only `SESSIOND_*` names count),
    /// and the flags; validated.
    pub fn from_sources(
        toml: Option<&str>,
        env: &[(String, String)],
        flags: &Overrides,
    ) -> Result<Loaded, ConfigErrors> {
        Self::layered(toml.map(|t| (t, "config.toml")), env, flags)
    }

    fn layered(
        toml: Option<(&str, &str)>,
        env: &[(String, String)],
        flags: &Overrides,
    ) -> Result<Loaded, ConfigErrors> {
        let other = |e: config::ConfigError| ConfigError::Other(one_line(&e.to_string()));
        let mut sources = Sources {
            file: None,
            env: Vec::new(),
            flags,
        };
        // Values of the wrong type, from every source, before anything is
        // merged (the layering would coerce them).
        let mut wrong = Vec::new();
        let defaults = config::Config::try_from(&Config::default()).map_err(other)?;
        let mut builder = config::Config::builder().add_source(defaults);
        if let Some((text, name)) = toml {
            let table = check_toml(text, name)?;
            let report = strict::check_file(text, name);
            wrong.extend(report.errors);
            sources.file = Some((name, table, report.lines));
            builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
        }
        let mut warnings = Vec::new();
        let mut vars = config::Map::new();
        for (name, value) in env {
            let Some(key) = env_key(name) else { continue };
            if expectation(&key).is_none() {
                warnings.push(format!(
                    "warning: ignoring environment variable {name}: sessiond has no setting {key:?}"
                ));
                continue;
            }
            if let Some(e) = strict::check_env(name, &key, value) {
                wrong.push(e);
                continue;
            }
            sources.env.push((name.clone(), key));
            vars.insert(name.clone(), value.clone());
        }
        if !wrong.is_empty() {
            return Err(ConfigErrors(wrong));
        }
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
        let located = |e: ConfigError| e.located(|key| sources.of(key));
        let merged = builder.build().map_err(|e| located(other(e)))?;
        let config: Config = merged
            .clone()
            .try_deserialize()
            .map_err(|e| located(explain(&e, &merged.cache)))?;
        config
            .validate()
            .map_err(|ConfigErrors(all)| ConfigErrors(all.into_iter().map(located).collect()))?;
        Ok(Loaded { config, warnings })
    }
}

/// The dotted key a `SESSIOND_*` variable sets (`SESSIOND_JWT__ACCESS_TTL`
/// → `jwt.access_ttl`); `None` for other names.
fn env_key(name: &str) -> Option<String> {
    let prefix = format!("{ENV_PREFIX}_");
    let rest = name
        .get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(&prefix))
        .and_then(|_| name.get(prefix.len()..))
        .filter(|rest| !rest.is_empty())?;
    Some(rest.to_ascii_lowercase().replace("__", "."))
}

/// Where each setting of a configuration came from.
struct Sources<'a> {
    /// The file's name, contents, and the line of each key.
    file: Option<(&'a str, toml::Table, HashMap<String, usize>)>,
    /// Environment variables read, with the dotted key each sets.
    env: Vec<(String, String)>,
    flags: &'a Overrides,
}

impl Sources<'_> {
    /// The source of `key` (or of a table above or below it): a flag, an
    /// environment variable or the file, in that order; `None` for defaults.
    fn of(&self, key: &str) -> Option<String> {
        let flag = match key {
            "listen" if self.flags.listen.is_some() => Some("--listen"),
            "store" if self.flags.store.is_some() => Some("--store"),
            "data_dir" if self.flags.data_dir.is_some() => Some("--data-dir"),
            "log.format" if self.flags.log_format.is_some() => Some("--log-format"),
            "default_mode" if self.flags.default_mode.is_some() => Some("--default-mode"),
            _ => None,
        };
        if let Some(flag) = flag {
            return Some(format!("flag {flag}"));
        }
        let related = |set: &str| {
            set == key
                || key.strip_prefix(set).is_some_and(|r| r.starts_with('.'))
                || set.strip_prefix(key).is_some_and(|r| r.starts_with('.'))
        };
        if let Some((name, _)) = self.env.iter().rev().find(|(_, set)| related(set)) {
            return Some(format!("environment variable {name}"));
        }
        let (file, table, lines) = self.file.as_ref()?;
        let mut node: Option<&toml::Value> = None;
        for part in key.split('.').filter(|p| !p.is_empty()) {
            node = match node {
                None => table.get(part),
                Some(toml::Value::Table(t)) => t.get(part),
                Some(_) => break,
            };
            node?;
        }
        (node.is_some() || key.is_empty()).then(|| match lines.get(key) {
            Some(line) => format!("{file}:{line}"),
            None => (*file).to_owned(),
        })
    }
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// `SESSIOND_*` variables of the process (others are never read). A value
/// that is not UTF-8 is an error for a setting and ignored otherwise.
fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(key) = name.to_str().and_then(env_key) else {
            continue;
        };
        let name = name.to_string_lossy().into_owned();
        let value = match value.into_string() {
            Ok(value) => value,
            Err(raw) if expectation(&key).is_none() => raw.to_string_lossy().into_owned(),
            Err(_) => {
                return Err(
                    ConfigError::invalid(key, "(not UTF-8)", "expected a UTF-8 value")
                        .located(|_| Some(format!("environment variable {name}"))),
                );
            }
        };
        vars.push((name, value));
    }
    Ok(vars)
}

/// Reject a file that is not TOML with one line giving line and column.
fn check_toml(text: &str, file: &str) -> Result<toml::Table, ConfigError> {
    match text.parse::<toml::Table>() {
        Ok(table) => Ok(table),
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

#[cfg(test)]
mod tests {
    use crate::config::testing::{env, error, from};
    use crate::config::*;
    use sessiond_engine::{LimitPolicy, RolePolicy};
    use std::path::PathBuf;
    use std::time::Duration;

    #[test]
    fn defaults_follow_the_spec() {
        let c = Config::from_sources(None, &[], &Overrides::default())
            .unwrap()
            .config;
        assert_eq!(c, Config::default());
        assert_eq!(c.listen, "127.0.0.1:7420");
        assert_eq!(c.store, None);
        assert_eq!(c.store_url(), "embedded:./data");
        assert_eq!(c.touch_interval, Duration::from_secs(60));
        assert_eq!(c.jwt.access_ttl, Duration::from_secs(900));
        assert_eq!(c.refresh.reuse_grace, Duration::from_secs(10));
        assert_eq!(c.history_retention, Duration::from_secs(90 * 86_400));
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
history_retention = "30d"

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
        assert_eq!(c.history_retention, Duration::from_secs(30 * 86_400));
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
        let c = Config::from_sources(Some(file), &vars, &flags)
            .unwrap()
            .config;
        assert_eq!(c.listen, "127.0.0.1:3");
        assert_eq!(c.store.as_deref(), Some("embedded:/env"));
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
        let c = Config::from_sources(Some(file), &vars, &flags)
            .unwrap()
            .config;
        assert_eq!(c.store.as_deref(), Some("redis://h:1/"));
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
    fn unknown_keys_in_the_file_are_rejected() {
        assert_eq!(
            error("listn = \"127.0.0.1:1\""),
            r#"invalid config: unknown key "listn" in config.toml:1 (did you mean "listen"?)"#
        );
        assert_eq!(
            error("[jwt]\naccess_tll = \"1m\""),
            r#"invalid config: unknown key "jwt.access_tll" in config.toml:2 (did you mean "jwt.access_ttl"?)"#
        );
        assert_eq!(
            error(
                "[roles.admin]\nidle_ttl = \"1m\"\nabsolute_ttl = \"1h\"\nmax_sessions = 1\nmax = 2"
            ),
            r#"invalid config: unknown key "roles.admin.max" in config.toml:5 (did you mean "roles.admin.max_sessions"?)"#
        );
    }

    /// Booleans are booleans and whole numbers whole, in the file and in the
    /// environment: nothing is coerced or rounded.
    #[test]
    fn values_must_have_exactly_their_type() {
        for (toml, key) in [
            ("strict_roles = \"yes\"", "strict_roles"),
            ("strict_roles = 1", "strict_roles"),
            ("[cookie]\nsecure = \"off\"", "cookie.secure"),
            ("[limits]\nmax_body_bytes = 12.7", "limits.max_body_bytes"),
            (
                "[limits]\nmax_body_bytes = \"65536\"",
                "limits.max_body_bytes",
            ),
            ("[cache]\nenabled = \"true\"", "cache.enabled"),
            ("touch_interval = 60", "touch_interval"),
            ("history_retention = 90", "history_retention"),
            ("trusted_proxies = [1, 2]", "trusted_proxies"),
        ] {
            let err = from(toml, &[]).unwrap_err();
            assert_eq!(err.0.len(), 1, "{toml}: {err}");
            assert_eq!(err.0[0].key(), Some(key), "{toml}: {err}");
        }
        let err = from(
            "",
            &[
                ("SESSIOND_STRICT_ROLES", "yes"),
                ("SESSIOND_LIMITS__MAX_BODY_BYTES", "12.7"),
                ("SESSIOND_COOKIE__SECURE", "off"),
            ],
        )
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 3, "{text}");
        for name in [
            "SESSIOND_STRICT_ROLES",
            "SESSIOND_LIMITS__MAX_BODY_BYTES",
            "SESSIOND_COOKIE__SECURE",
        ] {
            assert!(
                text.contains(&format!("(from environment variable {name})")),
                "{text}"
            );
        }
    }

    /// Every broken rule is reported, not only the first.
    #[test]
    fn every_error_is_reported_at_once() {
        let err = from(
            "store_timeout = \"1ms\"\n[limits]\nmax_body_bytes = 0\n[roles.default]\nmax_sessions = 0\n",
            &[],
        )
        .unwrap_err();
        let keys: Vec<_> = err.0.iter().filter_map(ConfigError::key).collect();
        assert_eq!(
            keys,
            [
                "store_timeout",
                "limits.max_body_bytes",
                "roles.default.max_sessions"
            ],
            "{err}"
        );
        assert_eq!(err.to_string().lines().count(), 3);
    }

    #[test]
    fn listen_takes_a_host_name() {
        let flags = Overrides {
            listen: Some("localhost:7420".to_owned()),
            ..Overrides::default()
        };
        let c = Config::from_sources(None, &[], &flags).unwrap().config;
        assert_eq!(c.listen, "localhost:7420");
        for bad in [
            "localhost",
            "local host:1",
            ":7420",
            "host:99999",
            "-bad-:1",
        ] {
            assert!(from(&format!("listen = \"{bad}\""), &[]).is_err(), "{bad}");
        }
    }

    /// An app's own `SESSIOND_URL` in the environment must not stop sessiond:
    /// variables that name no setting are ignored with a warning.
    #[test]
    fn unknown_environment_variables_are_warnings() {
        let loaded = Config::from_sources(
            None,
            &env(&[
                ("SESSIOND_URL", "http://127.0.0.1:7420"),
                ("SESSIOND_JWT__NOPE", "x"),
                ("SESSIOND_LISTEN", "127.0.0.1:9"),
                ("SESSIOND_", "x"),
                ("OTHER_THING", "x"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(loaded.config.listen, "127.0.0.1:9");
        assert_eq!(
            loaded.warnings,
            [
                r#"warning: ignoring environment variable SESSIOND_URL: sessiond has no setting "url""#,
                r#"warning: ignoring environment variable SESSIOND_JWT__NOPE: sessiond has no setting "jwt.nope""#,
            ]
        );
    }

    #[test]
    fn trusted_proxies_are_a_list_or_one_comma_separated_string() {
        let c = from("trusted_proxies = [\"10.0.0.0/8\", \"::1\"]", &[]).unwrap();
        assert_eq!(c.trusted_proxies, ["10.0.0.0/8", "::1"]);
        let c = from(
            "",
            &[("SESSIOND_TRUSTED_PROXIES", "127.0.0.1, 192.0.2.0/24 ,")],
        )
        .unwrap();
        assert_eq!(c.trusted_proxies, ["127.0.0.1", "192.0.2.0/24"]);
        assert!(c.trusted_proxies().contains("192.0.2.9".parse().unwrap()));
        let text = from(
            "",
            &[("SESSIOND_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            text.starts_with(
                "invalid config: trusted_proxies = \"proxy.local\" (from environment variable SESSIOND_TRUSTED_PROXIES): "
            ),
            "{text}"
        );
    }

    /// Every error says where the bad value came from.
    #[test]
    fn errors_name_their_source() {
        let flags = Overrides {
            listen: Some("nowhere".into()),
            ..Overrides::default()
        };
        let text = Config::from_sources(Some("listen = \"127.0.0.1:1\""), &[], &flags)
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with(r#"invalid config: listen = "nowhere" (from flag --listen): "#),
            "{text}"
        );
        let text = from(
            "[limits]\nmax_body_bytes = 100",
            &[("SESSIOND_LIMITS__MAX_DATA_BYTES", "200")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            text.starts_with(
                "invalid config: limits.max_data_bytes = 200 (from environment variable SESSIOND_LIMITS__MAX_DATA_BYTES): "
            ),
            "{text}"
        );
        // A rule broken by a default names no source.
        let text = error("[limits]\nmax_body_bytes = 100");
        assert!(
            text.starts_with("invalid config: limits.max_data_bytes = 16384: "),
            "{text}"
        );
    }

    #[test]
    fn syntax_errors_are_one_line_with_position() {
        let err = from("listen = \"a\"\n[jwt\n", &[]).unwrap_err();
        let [ConfigError::Syntax { line, .. }] = err.0.as_slice() else {
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
        assert_eq!(c.config.listen, "127.0.0.1:9999");
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
            store: Some("redis://:pw123@cache:6379/".to_owned()),
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
        assert_eq!(back.config, Config::default());
    }
}
