//! How and when a session's user authenticated (assurance level, methods,
//! time), a new authentication (step-up), and the requirements a check can
//! place on them (`max_age`, `min_aal`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// Most methods a session's `amr` holds.
pub const MAX_METHODS: usize = 16;
/// Longest method name, in bytes.
pub const MAX_METHOD_BYTES: usize = 32;

/// Authenticator assurance level (NIST SP 800-63B): `aal1` single factor,
/// `aal2` two factors, `aal3` hardware-bound.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Aal {
    /// One factor.
    #[default]
    Aal1,
    /// Two factors.
    Aal2,
    /// Two factors, one hardware-bound and phishing-resistant.
    Aal3,
}

impl Aal {
    /// The wire name, e.g. `aal2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aal1 => "aal1",
            Self::Aal2 => "aal2",
            Self::Aal3 => "aal3",
        }
    }

    /// The level as a number, 1..=3 (how stores keep it).
    pub fn level(self) -> u8 {
        match self {
            Self::Aal1 => 1,
            Self::Aal2 => 2,
            Self::Aal3 => 3,
        }
    }

    /// The level of a number kept by a store.
    pub fn from_level(level: u8) -> Option<Self> {
        Some(match level {
            1 => Self::Aal1,
            2 => Self::Aal2,
            3 => Self::Aal3,
            _ => return None,
        })
    }

    /// Parse a wire name (`aal1`..`aal3`, or `1`..`3`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "aal1" | "1" => Some(Self::Aal1),
            "aal2" | "2" => Some(Self::Aal2),
            "aal3" | "3" => Some(Self::Aal3),
            _ => None,
        }
    }
}

impl fmt::Display for Aal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `method` is an acceptable authentication method name (RFC 8176
/// values such as `pwd`, `otp`, `hwk`, or the app's own, e.g. `webauthn`):
/// 1..=32 characters from `[A-Za-z0-9_.:-]`.
pub fn valid_method(method: &str) -> bool {
    crate::presence::well_formed(method, MAX_METHOD_BYTES)
}

/// How and when the user of a session last authenticated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthContext {
    /// When the user last authenticated (at create, or a later step-up).
    pub authenticated_at: Timestamp,
    /// The highest assurance level reached.
    pub aal: Aal,
    /// The methods used, in the order first used, each once.
    pub amr: Vec<String>,
}

impl AuthContext {
    /// The context of a session created at `at` with nothing said about
    /// its authentication: `aal1`, no methods.
    pub fn at(at: Timestamp) -> Self {
        Self {
            authenticated_at: at,
            aal: Aal::Aal1,
            amr: Vec::new(),
        }
    }

    /// The context after `auth` at `now`: the level raised to `auth.aal`
    /// (never lowered), the method added if new (the oldest dropped past
    /// [`MAX_METHODS`]), `authenticated_at = now`.
    pub fn after(&self, auth: &Authentication, now: Timestamp) -> Self {
        let mut amr = self.amr.clone();
        if !amr.contains(&auth.method) {
            amr.push(auth.method.clone());
        }
        if amr.len() > MAX_METHODS {
            amr.drain(..amr.len() - MAX_METHODS);
        }
        Self {
            authenticated_at: now.max(self.authenticated_at),
            aal: self.aal.max(auth.aal),
            amr,
        }
    }
}

/// A new authentication of a session's user, recorded by
/// [`crate::Store::authenticate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authentication {
    /// The level it reached.
    pub aal: Aal,
    /// The method used ([`valid_method`]).
    pub method: String,
}

/// What a check requires of a session's authentication.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthRequirement {
    /// At most this long since `authenticated_at`.
    pub max_age: Option<Duration>,
    /// At least this level.
    pub min_aal: Option<Aal>,
}

/// Why a session does not meet an [`AuthRequirement`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthShortfall {
    /// The level is below `required`: the user must step up.
    InsufficientAal {
        /// The level asked for.
        required: Aal,
        /// The session's level.
        current: Aal,
    },
    /// The last authentication is older than `max_age`: the user must
    /// authenticate again.
    ReauthenticationRequired {
        /// The longest age accepted.
        max_age: Duration,
        /// When the user last authenticated.
        authenticated_at: Timestamp,
    },
}

impl AuthRequirement {
    /// Whether the requirement asks for anything.
    pub fn is_empty(&self) -> bool {
        self.max_age.is_none() && self.min_aal.is_none()
    }

    /// The stricter of two requirements (shorter age, higher level).
    pub fn and(self, other: Self) -> Self {
        Self {
            max_age: match (self.max_age, other.max_age) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            min_aal: self.min_aal.max(other.min_aal),
        }
    }

    /// Check `auth` at `now`. A too-low level is reported first: a step-up
    /// to it is also a new authentication, so it settles both.
    pub fn check(&self, auth: &AuthContext, now: Timestamp) -> Result<(), AuthShortfall> {
        if let Some(required) = self.min_aal
            && auth.aal < required
        {
            return Err(AuthShortfall::InsufficientAal {
                required,
                current: auth.aal,
            });
        }
        if let Some(max_age) = self.max_age {
            let age = i128::from(now.as_millis()) - i128::from(auth.authenticated_at.as_millis());
            if age > max_age.as_millis() as i128 {
                return Err(AuthShortfall::ReauthenticationRequired {
                    max_age,
                    authenticated_at: auth.authenticated_at,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn levels_round_trip_and_order() {
        for a in [Aal::Aal1, Aal::Aal2, Aal::Aal3] {
            assert_eq!(Aal::parse(a.as_str()), Some(a));
            assert_eq!(Aal::from_level(a.level()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        assert!(Aal::Aal1 < Aal::Aal2 && Aal::Aal2 < Aal::Aal3);
        for bad in ["", "aal0", "aal4", "AAL2", "0", "4"] {
            assert_eq!(Aal::parse(bad), None, "{bad}");
        }
        assert_eq!(Aal::from_level(0), None);
    }

    #[test]
    fn a_step_up_raises_adds_and_moves_but_never_lowers() {
        let ctx = AuthContext {
            authenticated_at: at(1_000),
            aal: Aal::Aal2,
            amr: vec!["pwd".into(), "otp".into()],
        };
        let up = ctx.after(
            &Authentication {
                aal: Aal::Aal1,
                method: "pwd".into(),
            },
            at(5_000),
        );
        assert_eq!(up.aal, Aal::Aal2, "never lowered");
        assert_eq!(up.amr, ["pwd", "otp"], "each method once");
        assert_eq!(up.authenticated_at, at(5_000));
        let up = up.after(
            &Authentication {
                aal: Aal::Aal3,
                method: "hwk".into(),
            },
            at(6_000),
        );
        assert_eq!((up.aal, up.amr.len()), (Aal::Aal3, 3));
        let mut many = AuthContext::at(at(0));
        for n in 0..40 {
            many = many.after(
                &Authentication {
                    aal: Aal::Aal1,
                    method: format!("m{n}"),
                },
                at(n),
            );
        }
        assert_eq!(many.amr.len(), MAX_METHODS);
        assert_eq!(many.amr.last().map(String::as_str), Some("m39"));
    }

    #[test]
    fn requirements_report_the_level_first_then_the_age() {
        let ctx = AuthContext {
            authenticated_at: at(10_000),
            aal: Aal::Aal1,
            amr: vec![],
        };
        let both = AuthRequirement {
            max_age: Some(Duration::from_secs(5)),
            min_aal: Some(Aal::Aal2),
        };
        assert!(matches!(
            both.check(&ctx, at(60_000)),
            Err(AuthShortfall::InsufficientAal {
                required: Aal::Aal2,
                current: Aal::Aal1
            })
        ));
        let age = AuthRequirement {
            max_age: Some(Duration::from_secs(5)),
            min_aal: None,
        };
        assert_eq!(
            age.check(&ctx, at(15_000)),
            Ok(()),
            "exactly max_age is fine"
        );
        assert!(matches!(
            age.check(&ctx, at(15_001)),
            Err(AuthShortfall::ReauthenticationRequired { .. })
        ));
        assert_eq!(
            AuthRequirement::default().check(&ctx, at(i64::MAX / 2)),
            Ok(())
        );
        let stricter = age.and(AuthRequirement {
            max_age: Some(Duration::from_secs(60)),
            min_aal: Some(Aal::Aal3),
        });
        assert_eq!(stricter.max_age, Some(Duration::from_secs(5)));
        assert_eq!(stricter.min_aal, Some(Aal::Aal3));
    }

    #[test]
    fn method_names_are_checked() {
        for ok in ["pwd", "otp", "webauthn", "urn:x.y-z_1"] {
            assert!(valid_method(ok), "{ok}");
        }
        for bad in ["", "has space", "é", &"x".repeat(33)] {
            assert!(!valid_method(bad), "{bad}");
        }
    }
}
