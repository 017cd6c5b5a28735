//! The session record, its app-owned data, data updates and revocation reasons.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::authentication::AuthContext;
use crate::clock::Timestamp;
use crate::device::Device;
use crate::id::SessionId;
use crate::policy::effective_touch_interval_ms;

/// App-owned JSON object stored with a session.
pub type SessionData = Map<String, Value>;

/// How an introspection records activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TouchRule {
    /// Configured touch interval in ms. A session is touched only when
    /// `now - last_seen_at >= effective_touch_interval_ms(interval_ms, idle_ttl_ms)`;
    /// a touch sets `last_seen_at = now` and
    /// `expires_at = max(expires_at, min(now + idle_ttl_ms, absolute_expires_at))`.
    pub interval_ms: u64,
}

/// How a session's client proves it: `opaque` (one session token) or `jwt`
/// (short-lived access tokens and a rotating refresh token).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Mode {
    /// One opaque session token, checked by introspection.
    #[default]
    Opaque,
    /// Short-lived signed access tokens plus a rotating refresh token.
    Jwt,
}

impl Mode {
    /// The wire and config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opaque => "opaque",
            Self::Jwt => "jwt",
        }
    }
}

/// One login of one user on one device. Holds no token and no token hash, so
/// it is safe to return to any caller and to log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Public handle.
    pub id: SessionId,
    /// The app's user id (1..=256 bytes).
    pub user_id: String,
    /// Role the session's policy came from (none = the default role).
    pub role: Option<String>,
    /// App-owned data.
    pub data: SessionData,
    /// Device facts.
    pub device: Device,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last recorded activity (coalesced by the touch interval).
    pub last_seen_at: Timestamp,
    /// Idle deadline: slides with activity, never past `absolute_expires_at`.
    pub expires_at: Timestamp,
    /// Absolute deadline: never moves.
    pub absolute_expires_at: Timestamp,
    /// Idle timeout in milliseconds that activity slides `expires_at` by.
    pub idle_ttl_ms: u64,
    /// Opaque token or JWT with refresh tokens.
    pub mode: Mode,
    /// How and when the user last authenticated.
    pub auth: AuthContext,
}

impl Session {
    /// Whether the session is live at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at && now < self.absolute_expires_at
    }

    /// Whether an introspection under `rule` records activity at `now`: once
    /// the effective touch interval has passed since `last_seen_at`.
    pub fn touch_due(&self, rule: TouchRule, now: Timestamp) -> bool {
        let interval = effective_touch_interval_ms(rule.interval_ms, self.idle_ttl_ms);
        let elapsed = i128::from(now.as_millis()) - i128::from(self.last_seen_at.as_millis());
        elapsed >= i128::from(interval)
    }

    /// The idle deadline after activity or an extension of `ttl_ms` at `now`:
    /// `max(expires_at, min(now + ttl_ms, absolute_expires_at))`.
    pub fn slid_deadline(&self, ttl_ms: u64, now: Timestamp) -> Timestamp {
        let pushed = now.plus(Duration::from_millis(ttl_ms));
        self.expires_at.max(pushed.min(self.absolute_expires_at))
    }
}

/// Size of session data as every store measures it: the bytes of each key plus
/// the bytes of its compact JSON value (of a value sealed at rest, the length
/// of its plaintext, which it carries: see [`crate::sealed`]). (Stores that
/// keep one field per key can compute it without re-encoding the whole
/// object.)
pub fn data_size(data: &SessionData) -> usize {
    data.iter().map(|(k, v)| k.len() + value_len(v)).sum()
}

fn value_len(v: &Value) -> usize {
    if let Value::String(s) = v
        && let Some(len) = crate::sealed::format::sealed_len(s)
    {
        return len;
    }
    // Serializing a `Value` cannot fail (keys are strings).
    serde_json::to_string(v).map(|s| s.len()).unwrap_or(0)
}

/// A change to a session's data. Expiry is never changed by it.
#[derive(Clone, Debug, PartialEq)]
pub enum DataUpdate {
    /// Top-level merge, applied atomically in the store: each key is set to its
    /// new value, a key whose value is `null` is removed, other keys stay.
    Merge(SessionData),
    /// Replace the whole object.
    Replace(SessionData),
}

impl DataUpdate {
    /// Apply the update to `data` (the one definition of a merge that stores
    /// which merge in Rust, under a row lock, share).
    pub fn apply_to(&self, data: &mut SessionData) {
        match self {
            Self::Replace(new) => data.clone_from(new),
            Self::Merge(changes) => {
                for (key, value) in changes {
                    if value.is_null() {
                        data.remove(key);
                    } else {
                        data.insert(key.clone(), value.clone());
                    }
                }
            }
        }
    }
}

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RevokeReason {
    /// The user logged out.
    Logout,
    /// The user revoked it from another device.
    RevokedByUser,
    /// The user signed out every other device ("sign out other devices").
    SignedOutOtherDevices,
    /// An operator or the app's backend revoked it.
    RevokedByAdmin,
    /// Evicted because the user went over `max_sessions`.
    EvictedMaxSessions,
    /// A retired refresh token was presented again.
    RefreshTokenReuse,
    /// Replaced by a rotation.
    Rotated,
    /// Its deadline passed.
    Expired,
    /// Presented from another network or browser than its device binding
    /// allows.
    BindingMismatch,
    /// An app-supplied reason.
    Other(String),
}

impl RevokeReason {
    /// Longest app-supplied reason accepted.
    pub const MAX_LEN: usize = 64;

    /// The wire name, e.g. `revoked_by_user`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Logout => "logout",
            Self::RevokedByUser => "revoked_by_user",
            Self::SignedOutOtherDevices => "signed_out_other_devices",
            Self::RevokedByAdmin => "revoked_by_admin",
            Self::EvictedMaxSessions => "evicted_max_sessions",
            Self::RefreshTokenReuse => "refresh_token_reuse",
            Self::Rotated => "rotated",
            Self::Expired => "expired",
            Self::BindingMismatch => "binding_mismatch",
            Self::Other(s) => s,
        }
    }

    /// Parse a reason: a known name, or an app-supplied string of 1..=64
    /// characters from `[A-Za-z0-9_.:-]` (safe as a metric label and log field).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "logout" => Self::Logout,
            "revoked_by_user" => Self::RevokedByUser,
            "signed_out_other_devices" => Self::SignedOutOtherDevices,
            "revoked_by_admin" => Self::RevokedByAdmin,
            "evicted_max_sessions" => Self::EvictedMaxSessions,
            "refresh_token_reuse" => Self::RefreshTokenReuse,
            "rotated" => Self::Rotated,
            "expired" => Self::Expired,
            "binding_mismatch" => Self::BindingMismatch,
            other => {
                let ok = !other.is_empty()
                    && other.len() <= Self::MAX_LEN
                    && other
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
                if !ok {
                    return None;
                }
                Self::Other(other.to_owned())
            }
        })
    }
}

impl fmt::Display for RevokeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_size_counts_keys_and_compact_values() {
        let Value::Object(m) = json!({"ab": 1, "c": "xyz", "d": {"e": [1, 2]}}) else {
            unreachable!()
        };
        assert_eq!(data_size(&m), 2 + 1 + 1 + 5 + 1 + 11);
        assert_eq!(data_size(&Map::new()), 0);
    }

    #[test]
    fn reasons_round_trip_and_reject_junk() {
        for r in [
            "logout",
            "revoked_by_user",
            "signed_out_other_devices",
            "rotated",
            "expired",
            "password_changed",
            "a.b:c-d",
        ] {
            assert_eq!(RevokeReason::parse(r).unwrap().as_str(), r);
        }
        assert_eq!(
            RevokeReason::parse("signed_out_other_devices"),
            Some(RevokeReason::SignedOutOtherDevices),
            "a known reason, not an app-supplied one"
        );
        for bad in ["", "has space", "new\nline", &"x".repeat(65), "ünïcode"] {
            assert!(RevokeReason::parse(bad).is_none(), "{bad:?}");
        }
    }
}
