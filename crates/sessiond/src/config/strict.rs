//! Exact types for every value of every source, checked before the layers
//! are merged: a boolean is `true` or `false`, a whole number has no
//! fraction, a duration or a choice is one the key accepts. Every bad value
//! and unknown key of a source is reported (with its file line or
//! environment variable), unknown keys with the nearest known one.

use std::collections::HashMap;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::ConfigError;
use super::duration_text;
use super::error::quoted;
use super::reference::{self, KeyDoc, Kind};

/// What the pass found in a file: its errors, and the line of every key.
#[derive(Debug, Default)]
pub(super) struct FileReport {
    pub(super) errors: Vec<ConfigError>,
    pub(super) lines: HashMap<String, usize>,
}

/// Check every key and value of the TOML `text` (already known to parse),
/// named `file` in messages.
pub(super) fn check_file(text: &str, file: &str) -> FileReport {
    let mut report = FileReport::default();
    let Ok(table) = DeTable::parse(text) else {
        return report;
    };
    let mut walk = Walk {
        text,
        file,
        report: &mut report,
    };
    walk.table("", table.get_ref());
    // In the order of the file.
    let line_of = |e: &ConfigError| {
        e.key()
            .and_then(|k| report.lines.get(k))
            .copied()
            .unwrap_or(0)
    };
    let mut errors = std::mem::take(&mut report.errors);
    errors.sort_by_key(|e| line_of(e));
    report.errors = errors;
    report
}

struct Walk<'a> {
    text: &'a str,
    file: &'a str,
    report: &'a mut FileReport,
}

impl Walk<'_> {
    fn table(&mut self, prefix: &str, table: &DeTable<'_>) {
        for (name, value) in table.iter() {
            let key = if prefix.is_empty() {
                name.get_ref().to_string()
            } else {
                format!("{prefix}.{}", name.get_ref())
            };
            let line = self.line(name.span().start);
            self.report.lines.insert(key.clone(), line);
            let origin = Some(format!("{}:{line}", self.file));
            let Some(doc) = reference::lookup(&key) else {
                self.report.errors.push(ConfigError::UnknownKey {
                    suggestion: suggest(&key),
                    key,
                    origin,
                });
                continue;
            };
            match (doc.kind(), value.get_ref()) {
                (Kind::Table, DeValue::Table(inner)) => self.table(&key, inner),
                (kind, found) => {
                    if let Err(reason) = check_toml_value(doc, kind, found) {
                        let written = self.written(value);
                        self.report.errors.push(ConfigError::Invalid {
                            value: if key == "api_key" {
                                "\"***\"".to_owned()
                            } else {
                                written
                            },
                            key,
                            reason,
                            origin,
                        });
                    }
                }
            }
        }
    }

    /// 1-based line of byte `at`.
    fn line(&self, at: usize) -> usize {
        let at = at.min(self.text.len());
        self.text.get(..at).map_or(0, |t| t.matches('\n').count()) + 1
    }

    /// The value as the file writes it (first line of it, for tables).
    fn written(&self, value: &Spanned<DeValue<'_>>) -> String {
        match value.get_ref() {
            DeValue::Table(_) => "a table".to_owned(),
            _ => self
                .text
                .get(value.span())
                .and_then(|t| t.lines().next())
                .unwrap_or("?")
                .trim()
                .to_owned(),
        }
    }
}

/// `Err(what is accepted)` unless `value` is exactly of `kind`.
fn check_toml_value(doc: &KeyDoc, kind: Kind, value: &DeValue<'_>) -> Result<(), String> {
    let expected = || doc.expected.to_owned();
    match (kind, value) {
        (Kind::Bool, DeValue::Boolean(_)) => Ok(()),
        (Kind::WholeNumber, DeValue::Integer(n)) => {
            let negative = n.as_str().trim_start().starts_with('-');
            if negative { Err(expected()) } else { Ok(()) }
        }
        (Kind::Text | Kind::Duration | Kind::OneOf(_) | Kind::List, DeValue::String(s)) => {
            check_text(doc, kind, s)
        }
        (Kind::List, DeValue::Array(items)) => {
            if items
                .iter()
                .all(|item| matches!(item.get_ref(), DeValue::String(_)))
            {
                Ok(())
            } else {
                Err(expected())
            }
        }
        _ => Err(expected()),
    }
}

/// `Err(what is accepted)` unless `text` is a value of `kind`.
fn check_text(doc: &KeyDoc, kind: Kind, text: &str) -> Result<(), String> {
    match kind {
        Kind::Duration => duration_text::parse(text).map(drop),
        Kind::OneOf(choices) if !choices.split(", ").any(|c| c == text) => {
            Err(doc.expected.to_owned())
        }
        _ => Ok(()),
    }
}

/// Check the value of environment variable `name`, which sets `key`.
pub(super) fn check_env(name: &str, key: &str, value: &str) -> Option<ConfigError> {
    let doc = reference::lookup(key)?;
    let kind = doc.kind();
    let ok = match kind {
        Kind::Bool => matches!(value, "true" | "false"),
        Kind::WholeNumber => !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()),
        Kind::Table => false,
        Kind::Text | Kind::Duration | Kind::OneOf(_) | Kind::List => {
            check_text(doc, kind, value).is_ok()
        }
    };
    (!ok).then(|| ConfigError::Invalid {
        key: key.to_owned(),
        value: if key == "api_key" {
            "\"***\"".to_owned()
        } else {
            quoted(value)
        },
        reason: doc.expected.to_owned(),
        origin: Some(format!("environment variable {name}")),
    })
}

/// The known key nearest to the unknown `key`, if one is near enough to be
/// what was meant.
pub(super) fn suggest(key: &str) -> Option<String> {
    let (parent, _) = key.rsplit_once('.').unwrap_or(("", key));
    let candidates = reference::KEYS.iter().map(|doc| {
        // A role's keys are suggested under the role's own name.
        match (
            doc.key.strip_prefix("roles.*."),
            parent.strip_prefix("roles."),
        ) {
            (Some(field), Some(role)) if !role.contains('.') => format!("roles.{role}.{field}"),
            _ => doc.key.to_owned(),
        }
    });
    candidates
        .filter(|c| !c.contains('*'))
        .map(|c| (strsim::jaro_winkler(key, &c), c))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_keys_are_suggested() {
        assert_eq!(suggest("listn").as_deref(), Some("listen"));
        assert_eq!(suggest("jwt.access_tll").as_deref(), Some("jwt.access_ttl"));
        assert_eq!(
            suggest("roles.admin.max_session").as_deref(),
            Some("roles.admin.max_sessions")
        );
        assert_eq!(suggest("cookie.secur").as_deref(), Some("cookie.secure"));
        assert_eq!(suggest("completely_different"), None);
    }

    #[test]
    fn environment_values_are_exact() {
        for (key, value) in [
            ("strict_roles", "yes"),
            ("strict_roles", "1"),
            ("cookie.secure", "off"),
            ("cookie.secure", "TRUE "),
            ("limits.max_body_bytes", "12.7"),
            ("limits.max_body_bytes", "-1"),
            ("limits.max_body_bytes", ""),
            ("jwt.access_ttl", "soon"),
            ("log.format", "xml"),
            ("jwt", "x"),
        ] {
            assert!(
                check_env("SESSIOND_X", key, value).is_some(),
                "{key} = {value}"
            );
        }
        for (key, value) in [
            ("strict_roles", "true"),
            ("cookie.secure", "false"),
            ("limits.max_body_bytes", "65536"),
            ("jwt.access_ttl", "15m"),
            ("log.format", "json"),
            ("api_key", "12345678901234567"),
        ] {
            assert!(
                check_env("SESSIOND_X", key, value).is_none(),
                "{key} = {value}"
            );
        }
    }

    #[test]
    fn every_bad_value_of_a_file_is_reported_with_its_line() {
        let text = "strict_roles = \"yes\"\n[limits]\nmax_body_bytes = 12.7\n[cookie]\nsecure = 1\nsecur = true\n";
        let report = check_file(text, "s.toml");
        let lines: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                r#"invalid config: strict_roles = "yes" (from s.toml:1): expected true or false"#,
                "invalid config: limits.max_body_bytes = 12.7 (from s.toml:3): expected a whole number above 0",
                "invalid config: cookie.secure = 1 (from s.toml:5): expected true or false",
                r#"invalid config: unknown key "cookie.secur" in s.toml:6 (did you mean "cookie.secure"?)"#,
            ]
        );
    }
}
