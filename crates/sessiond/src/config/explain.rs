//! Turning what the layering reports into one line that names the key, the
//! value and what is accepted.

use super::error::{one_line, quoted};
use super::{ConfigError, describe_store};

/// Turn an error of the `config` crate into one naming key, value and what is
/// accepted; the value is read back from the merged tree.
pub(super) fn explain(err: &config::ConfigError, tree: &config::Value) -> ConfigError {
    let (key, inner) = unwrap_key(err);
    let message = inner.to_string();
    if let Some(field) = unknown_field(&message) {
        let key = match key {
            Some(k) if !k.is_empty() => format!("{k}.{field}"),
            _ => field,
        };
        return ConfigError::UnknownKey {
            suggestion: super::strict::suggest(&key),
            key,
            origin: None,
        };
    }
    if let config::ConfigError::NotFound(missing) = inner {
        let key = match key {
            Some(k) if !k.is_empty() && k != *missing => k,
            _ => missing.clone(),
        };
        let reason = expectation(&key).unwrap_or("expected a value").to_owned();
        return ConfigError::Missing {
            key,
            reason,
            origin: None,
        };
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
                config::ValueKind::String(s) => quoted(&describe_store(s)),
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

/// What a key accepts, for error messages (from the reference).
pub(super) fn expectation(key: &str) -> Option<&'static str> {
    super::reference::lookup(key).map(|doc| doc.expected)
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{error, from};

    #[test]
    fn bad_values_name_key_value_and_what_is_accepted() {
        let cases: &[(&str, &str)] = &[
            (
                "[jwt]\naccess_ttl = \"15 parsecs\"",
                r#"invalid config: jwt.access_ttl = "15 parsecs" (from config.toml:2): expected a duration like "900ms", "30s", "15m", "12h", "30d""#,
            ),
            (
                "max_sessions_policy = \"random\"",
                r#"invalid config: max_sessions_policy = "random" (from config.toml:1): expected one of evict_oldest, reject"#,
            ),
            (
                "default_mode = \"cookie\"",
                r#"invalid config: default_mode = "cookie" (from config.toml:1): expected one of opaque, jwt"#,
            ),
            (
                "[cookie]\nsame_site = \"sometimes\"",
                r#"invalid config: cookie.same_site = "sometimes" (from config.toml:2): expected one of strict, lax, none"#,
            ),
            (
                "[log]\nformat = \"xml\"",
                r#"invalid config: log.format = "xml" (from config.toml:2): expected one of text, json"#,
            ),
            (
                "[limits]\nmax_body_bytes = \"lots\"",
                r#"invalid config: limits.max_body_bytes = "lots" (from config.toml:2): expected a whole number above 0"#,
            ),
            (
                "[limits]\nmax_body_bytes = -5",
                "invalid config: limits.max_body_bytes = -5 (from config.toml:2): expected a whole number above 0",
            ),
            (
                "touch_interval = 60",
                r#"invalid config: touch_interval = 60 (from config.toml:1): expected a duration like "900ms", "30s", "15m", "12h", "30d""#,
            ),
            (
                "[cookie]\nsecure = \"maybe\"",
                r#"invalid config: cookie.secure = "maybe" (from config.toml:2): expected true or false"#,
            ),
            (
                "jwt = 5",
                "invalid config: jwt = 5 (from config.toml:1): expected a table",
            ),
            (
                "[roles.admin]\nidle_ttl = \"soon\"\nabsolute_ttl = \"1h\"\nmax_sessions = 1",
                r#"invalid config: roles.admin.idle_ttl = "soon" (from config.toml:2): expected a duration like "900ms", "30s", "15m", "12h", "30d""#,
            ),
            (
                "[roles.admin]\nidle_ttl = \"1m\"",
                "invalid config: roles.admin.absolute_ttl is missing (from config.toml:1): expected a duration like \"900ms\", \"30s\", \"15m\", \"12h\", \"30d\"",
            ),
        ];
        for (toml, expected) in cases {
            assert_eq!(&error(toml), expected, "{toml}");
        }
        assert_eq!(
            from("", &[("SESSIOND_JWT__ACCESS_TTL", "15 parsecs")])
                .unwrap_err()
                .to_string(),
            r#"invalid config: jwt.access_ttl = "15 parsecs" (from environment variable SESSIOND_JWT__ACCESS_TTL): expected a duration like "900ms", "30s", "15m", "12h", "30d""#
        );
        assert_eq!(
            from("", &[("SESSIOND_LIMITS__MAX_DATA_BYTES", "many")])
                .unwrap_err()
                .to_string(),
            r#"invalid config: limits.max_data_bytes = "many" (from environment variable SESSIOND_LIMITS__MAX_DATA_BYTES): expected a whole number above 0"#
        );
    }
}
