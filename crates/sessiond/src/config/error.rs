//! The error a bad configuration stops start-up with, and the helpers that
//! write values into its one line.

/// A configuration that cannot be used. Its `Display` is one line naming the
/// key, the value and what is accepted; secrets are never echoed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key holds a value that is not accepted.
    #[error("invalid config: {key} = {value}{}: {reason}", note(.origin))]
    Invalid {
        /// Dotted key, e.g. `jwt.access_ttl`.
        key: String,
        /// The value as written (strings quoted; secrets masked).
        value: String,
        /// What is accepted, e.g. `expected one of evict_oldest, reject`.
        reason: String,
        /// Where the value came from, e.g. `environment variable
        /// SESSIOND_JWT__ACCESS_TTL`; `None` for a default.
        origin: Option<String>,
    },
    /// A key in the file that sessiond does not know (often a typo).
    #[error("invalid config: unknown key {key:?}{}{}", place(.origin), did_you_mean(.suggestion))]
    UnknownKey {
        /// Dotted key.
        key: String,
        /// Where it was written.
        origin: Option<String>,
        /// The known key it is nearest to.
        suggestion: Option<String>,
    },
    /// A key that has no default is absent.
    #[error("invalid config: {key} is missing{}: {reason}", note(.origin))]
    Missing {
        /// Dotted key.
        key: String,
        /// What is accepted.
        reason: String,
        /// Where the table that lacks it was written.
        origin: Option<String>,
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
    pub(super) fn invalid(
        key: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
            origin: None,
        }
    }

    /// The same error, saying where its key was set (`source_of` maps a
    /// dotted key to its source, `None` for a default).
    pub(super) fn located(mut self, source_of: impl Fn(&str) -> Option<String>) -> Self {
        match &mut self {
            Self::Invalid { key, origin, .. } | Self::UnknownKey { key, origin, .. }
                if origin.is_none() =>
            {
                *origin = source_of(key);
            }
            Self::Missing { key, origin, .. } => {
                let table = key.rsplit_once('.').map_or("", |(table, _)| table);
                *origin = source_of(table);
            }
            _ => {}
        }
        self
    }

    /// The dotted key the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. }
            | Self::UnknownKey { key, .. }
            | Self::Missing { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// ` (from SOURCE)`, or nothing for a default.
fn note(origin: &Option<String>) -> String {
    origin
        .as_deref()
        .map_or_else(String::new, |s| format!(" (from {s})"))
}

/// ` (did you mean "KEY"?)`, or nothing.
fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_deref()
        .map_or_else(String::new, |s| format!(" (did you mean {s:?}?)"))
}

/// Everything wrong with a configuration, one error per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

/// ` in SOURCE`, or nothing.
fn place(origin: &Option<String>) -> String {
    origin
        .as_deref()
        .map_or_else(String::new, |s| format!(" in {s}"))
}

/// `text` on one line, runs of white space made one space.
pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `s` as a quoted, escaped string.
pub(super) fn quoted(s: &str) -> String {
    format!("{s:?}")
}
