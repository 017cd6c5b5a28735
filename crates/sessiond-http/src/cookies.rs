//! The session cookie: its attributes (the `[cookie]` config section and the
//! layer's settings are this one type) and the `Set-Cookie` values that set
//! and clear it, built with the `cookie` crate.

use cookie::Cookie;
use http::HeaderValue;
use serde::{Deserialize, Serialize};

/// The cookie's `SameSite` attribute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// Never sent on cross-site requests.
    Strict,
    /// Sent on top-level cross-site navigations (the default).
    #[default]
    Lax,
    /// Always sent (needs `secure`).
    None,
}

/// How the session cookie is set. It is always `HttpOnly`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookieSettings {
    /// Cookie name (default `sessiond`).
    pub name: String,
    /// `Secure`: sent over HTTPS only (default true; browsers also send
    /// Secure cookies to `http://localhost`).
    pub secure: bool,
    /// `SameSite` (default lax).
    pub same_site: SameSite,
    /// `Domain`, if the cookie is shared with subdomains.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// `Path` (default `/`).
    pub path: String,
}

impl Default for CookieSettings {
    fn default() -> Self {
        Self {
            name: "sessiond".into(),
            secure: true,
            same_site: SameSite::Lax,
            domain: None,
            path: "/".into(),
        }
    }
}

/// An attribute that cannot go into a `Set-Cookie` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidCookie {
    /// The attribute: `name`, `path`, `domain` or `same_site`.
    pub field: &'static str,
    /// Its value, quoted.
    pub value: String,
    /// What is accepted.
    pub expected: &'static str,
}

impl std::fmt::Display for InvalidCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cookie {} {}: {}", self.field, self.value, self.expected)
    }
}

impl std::error::Error for InvalidCookie {}

impl CookieSettings {
    /// Check that the attributes can be put in a `Set-Cookie` header and
    /// that browsers will keep the cookie.
    pub fn validate(&self) -> Result<(), InvalidCookie> {
        let invalid = |field, value: &str, expected| InvalidCookie {
            field,
            value: format!("{value:?}"),
            expected,
        };
        let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if self.name.is_empty() || !self.name.bytes().all(token_char) {
            return Err(invalid(
                "name",
                &self.name,
                "expected a cookie name: letters, digits and !#$%&'*+-.^_`|~",
            ));
        }
        let attribute = |s: &str| s.bytes().all(|b| b.is_ascii_graphic() && b != b';');
        if !self.path.starts_with('/') || !attribute(&self.path) {
            return Err(invalid(
                "path",
                &self.path,
                "expected a path starting with '/' without ';', spaces or control characters",
            ));
        }
        if let Some(domain) = &self.domain
            && (domain.is_empty() || !attribute(domain))
        {
            return Err(invalid(
                "domain",
                domain,
                "expected a domain name like \"example.com\"",
            ));
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(invalid(
                "same_site",
                "none",
                "expected strict or lax unless secure = true (browsers drop SameSite=None cookies that are not Secure)",
            ));
        }
        Ok(())
    }

    /// `Set-Cookie` carrying `token` for `max_age_secs`.
    pub fn set(&self, token: &str, max_age_secs: u64) -> Option<HeaderValue> {
        let age = i64::try_from(max_age_secs).unwrap_or(i64::MAX);
        self.header(token, cookie::time::Duration::seconds(age))
    }

    /// `Set-Cookie` removing the cookie: the same name, domain and path
    /// (browsers match on those), empty, expired.
    pub fn clear(&self) -> Option<HeaderValue> {
        self.header("", cookie::time::Duration::ZERO)
    }

    fn header(&self, value: &str, max_age: cookie::time::Duration) -> Option<HeaderValue> {
        let mut c = Cookie::build((self.name.as_str(), value))
            .path(self.path.as_str())
            .http_only(true)
            .secure(self.secure)
            .same_site(match self.same_site {
                SameSite::Strict => cookie::SameSite::Strict,
                SameSite::Lax => cookie::SameSite::Lax,
                SameSite::None => cookie::SameSite::None,
            })
            .max_age(max_age)
            .build();
        if let Some(domain) = &self.domain {
            c.set_domain(domain.as_str());
        }
        HeaderValue::from_str(&c.to_string()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_clear_carry_the_same_attributes() {
        let s = CookieSettings {
            domain: Some("example.com".into()),
            ..CookieSettings::default()
        };
        assert_eq!(
            s.set("sds_x", 60).unwrap(),
            "sessiond=sds_x; HttpOnly; SameSite=Lax; Secure; Path=/; Domain=example.com; Max-Age=60"
        );
        assert_eq!(
            s.clear().unwrap(),
            "sessiond=; HttpOnly; SameSite=Lax; Secure; Path=/; Domain=example.com; Max-Age=0"
        );
        let plain = CookieSettings {
            name: "sid".into(),
            secure: false,
            same_site: SameSite::Strict,
            path: "/app".into(),
            domain: None,
        };
        assert_eq!(
            plain.set("v", 5).unwrap(),
            "sid=v; HttpOnly; SameSite=Strict; Path=/app; Max-Age=5"
        );
    }

    #[test]
    fn bad_attributes_are_named() {
        assert_eq!(CookieSettings::default().validate(), Ok(()));
        for (bad, field) in [
            (
                CookieSettings {
                    name: "a b".into(),
                    ..CookieSettings::default()
                },
                "name",
            ),
            (
                CookieSettings {
                    name: String::new(),
                    ..CookieSettings::default()
                },
                "name",
            ),
            (
                CookieSettings {
                    path: "x".into(),
                    ..CookieSettings::default()
                },
                "path",
            ),
            (
                CookieSettings {
                    path: "/a;b".into(),
                    ..CookieSettings::default()
                },
                "path",
            ),
            (
                CookieSettings {
                    domain: Some("a b".into()),
                    ..CookieSettings::default()
                },
                "domain",
            ),
            (
                CookieSettings {
                    same_site: SameSite::None,
                    secure: false,
                    ..CookieSettings::default()
                },
                "same_site",
            ),
        ] {
            assert_eq!(bad.validate().unwrap_err().field, field, "{bad:?}");
        }
    }

    #[test]
    fn reads_the_config_section_shape() {
        let s: CookieSettings =
            serde_json::from_str(r#"{"name":"sid","secure":false,"same_site":"strict"}"#).unwrap();
        assert_eq!(s.name, "sid");
        assert_eq!(s.same_site, SameSite::Strict);
        assert_eq!(s.path, "/");
        assert!(serde_json::from_str::<CookieSettings>(r#"{"nmae":"x"}"#).is_err());
    }
}
