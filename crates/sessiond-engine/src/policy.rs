//! Per-role expiry and limit policies, and the engine-wide settings that go
//! with them.

use std::collections::BTreeMap;
use std::time::Duration;

/// What happens when a user already has `max_sessions` live sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LimitPolicy {
    /// Revoke the oldest sessions to make room; their ids are returned.
    #[default]
    EvictOldest,
    /// Refuse the new session.
    Reject,
}

/// Expiry and limits of one role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RolePolicy {
    /// Idle timeout: the session ends this long after its last activity.
    pub idle_ttl: Duration,
    /// Absolute lifetime from creation; activity never extends it.
    pub absolute_ttl: Duration,
    /// Most live sessions a user may hold under this role (at least 1).
    pub max_sessions: u32,
}

impl Default for RolePolicy {
    fn default() -> Self {
        Self {
            idle_ttl: Duration::from_secs(30 * 60),
            absolute_ttl: Duration::from_secs(30 * 24 * 3600),
            max_sessions: 10,
        }
    }
}

/// Everything the engine decides by.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Policy of sessions with no role or (unless `strict_roles`) an unknown one.
    pub default_role: RolePolicy,
    /// Named roles.
    pub roles: BTreeMap<String, RolePolicy>,
    /// Reject unknown roles instead of applying the default.
    pub strict_roles: bool,
    /// What to do when `max_sessions` is reached.
    pub limit_policy: LimitPolicy,
    /// Coalesce activity writes: a session is touched at most once per this
    /// interval, capped at a quarter of its idle timeout (so an active session
    /// is touched at least once every idle/4).
    pub touch_interval: Duration,
    /// Largest `data` accepted, as measured by [`crate::data_size`].
    pub max_data_bytes: usize,
    /// Bound on every store call; past it the call fails as unavailable.
    pub store_timeout: Duration,
    /// Device binding by role name (`default` for the default role).
    pub bindings: BTreeMap<String, crate::binding::Binding>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            default_role: RolePolicy::default(),
            roles: BTreeMap::new(),
            strict_roles: false,
            limit_policy: LimitPolicy::EvictOldest,
            touch_interval: Duration::from_secs(60),
            max_data_bytes: 16 * 1024,
            store_timeout: Duration::from_secs(2),
            bindings: BTreeMap::new(),
        }
    }
}

impl Policy {
    /// The policy of `role`, or `None` if it is unknown and roles are strict.
    pub fn role(&self, role: Option<&str>) -> Option<&RolePolicy> {
        match role.and_then(|r| self.roles.get(r)) {
            Some(p) => Some(p),
            None if role.is_some() && self.strict_roles => None,
            None => Some(&self.default_role),
        }
    }
}

impl Policy {
    /// The device binding of sessions of `role`, if it has one (an unknown
    /// role or none: the default role's).
    pub fn binding(&self, role: Option<&str>) -> Option<&crate::binding::Binding> {
        let name = role
            .filter(|r| self.roles.contains_key(*r))
            .unwrap_or("default");
        self.bindings.get(name)
    }

    /// The longest absolute lifetime of any role: how long a session created
    /// under the policy can live (a user's not-before mark is kept this long).
    pub fn longest_absolute_ttl(&self) -> Duration {
        self.roles
            .values()
            .map(|r| r.absolute_ttl)
            .fold(self.default_role.absolute_ttl, Duration::max)
    }
}

/// The touch interval actually used for a session with idle timeout
/// `idle_ttl_ms`: the configured interval, capped at a quarter of the idle
/// timeout so a session can never expire between two coalesced touches.
/// Stores apply exactly this rule (the Redis Lua scripts mirror it).
pub fn effective_touch_interval_ms(configured_ms: u64, idle_ttl_ms: u64) -> u64 {
    configured_ms.min(idle_ttl_ms / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_roles_fall_back_unless_strict() {
        let mut p = Policy::default();
        p.roles.insert(
            "admin".into(),
            RolePolicy {
                max_sessions: 2,
                ..RolePolicy::default()
            },
        );
        assert_eq!(p.role(Some("admin")).unwrap().max_sessions, 2);
        assert_eq!(p.role(Some("nobody")).unwrap().max_sessions, 10);
        assert_eq!(p.role(None).unwrap().max_sessions, 10);
        p.strict_roles = true;
        assert!(p.role(Some("nobody")).is_none());
        assert!(p.role(None).is_some());
    }

    #[test]
    fn touch_interval_is_capped_by_idle_timeout() {
        assert_eq!(effective_touch_interval_ms(60_000, 30 * 60_000), 60_000);
        assert_eq!(effective_touch_interval_ms(60_000, 100_000), 25_000);
    }
}
