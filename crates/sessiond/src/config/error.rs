//! The error a bad configuration stops start-up with, and the helpers that
//! write values into its one line.

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
    pub(super) fn invalid(
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

/// `text` on one line, runs of white space made one space.
pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `s` as a quoted, escaped string.
pub(super) fn quoted(s: &str) -> String {
    format!("{s:?}")
}
