//! Typed errors: what a store can report, and what the engine reports to its
//! callers. Callers match on variants; nothing here is meant to be parsed.

use std::time::Duration;

/// Failure of a store operation.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time. Safe to
    /// retry later; callers must treat the credential as unverified.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The user already has `max` live sessions and the policy is `reject`.
    #[error("the user already has {max} live sessions")]
    LimitReached {
        /// The limit that was hit.
        max: u32,
    },
    /// The data after the update would be `size` bytes, over `max`.
    #[error("session data would be {size} bytes, over the limit of {max}")]
    DataTooLarge {
        /// Size the data would have had.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The new session was created before the user's not-before mark: a
    /// revocation of everything issued before then got there first.
    #[error("the user's sessions issued before a later time have been revoked")]
    IssuedBeforeRevocation,
    /// A stored record could not be decoded.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// This store does not offer the operation (history on a store that
    /// keeps none); what is missing and where to find it.
    #[error("not supported by this store: {0}")]
    Unsupported(String),
    /// An event cursor names a position the feed no longer holds: events
    /// after it have left the feed (past its retention), so resuming from
    /// it would silently skip them.
    #[error("event cursor expired: {0}")]
    CursorExpired(String),
    /// A cursor (of the event feed or of the listing) this store could not
    /// have made.
    #[error("not a cursor of this store: {0}")]
    InvalidCursor(String),
}

/// Failure of an engine call.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad input: `field` and why.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending input field.
        field: &'static str,
        /// What is accepted.
        reason: String,
    },
    /// No live session matches.
    #[error("session not found")]
    NotFound,
    /// A retired refresh token was presented after the grace period: its
    /// session has been revoked.
    #[error("refresh token reused: the session has been revoked")]
    RefreshTokenReused,
    /// `reject` policy: the user already has `max` live sessions.
    #[error("the user already has {max} live sessions")]
    LimitReached {
        /// The limit.
        max: u32,
    },
    /// See [`StoreError::IssuedBeforeRevocation`]: the create lost a race
    /// with a revocation of everything issued before a later time.
    #[error("the user's sessions issued before a later time have been revoked")]
    IssuedBeforeRevocation,
    /// Data over the limit.
    #[error("session data would be {size} bytes, over the limit of {max}")]
    DataTooLarge {
        /// Size the data would have had.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The store is unreachable or too slow; retry after a moment.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored record could not be decoded.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// The store does not offer this operation (see
    /// [`StoreError::Unsupported`]).
    #[error("not supported by this store: {0}")]
    Unsupported(String),
    /// See [`StoreError::CursorExpired`].
    #[error("event cursor expired: {0}")]
    CursorExpired(String),
    /// The session is live but its authentication does not meet what the
    /// check required (too low a level, or too long ago).
    #[error("the session's authentication does not meet the requirement: {0:?}")]
    AuthRequirement(crate::authentication::AuthShortfall),
}

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn timed_out(after: Duration) -> Self {
        Self::Unavailable(format!("no answer within {after:?}"))
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::LimitReached { max } => Self::LimitReached { max },
            StoreError::DataTooLarge { size, max } => Self::DataTooLarge { size, max },
            StoreError::IssuedBeforeRevocation => Self::IssuedBeforeRevocation,
            StoreError::Corrupt(m) => Self::Corrupt(m),
            StoreError::Unsupported(m) => Self::Unsupported(m),
            StoreError::CursorExpired(m) => Self::CursorExpired(m),
            StoreError::InvalidCursor(m) => Self::Invalid {
                field: "cursor",
                reason: format!("a cursor this server handed out ({m})"),
            },
        }
    }
}
