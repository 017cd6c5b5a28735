//! Cookie attributes, in the shape of sessiond's `[cookie]` config section.

use serde::Deserialize;

/// The cookie's `SameSite` attribute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
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

/// How the session cookie is set. It is always `HttpOnly`; its lifetime is
/// the session's absolute lifetime.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookieSettings {
    /// Cookie name (default `sessiond`).
    pub name: String,
    /// `Secure`: sent over HTTPS only (default true; turn off for plain-HTTP
    /// development on localhost only).
    pub secure: bool,
    /// `SameSite` (default lax).
    pub same_site: SameSite,
    /// `Domain`, if the cookie is shared with subdomains.
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

impl CookieSettings {
    /// Check the attributes can be put in a `Set-Cookie` header.
    pub fn validate(&self) -> Result<(), String> {
        let token_char = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
        if self.name.is_empty() || !self.name.chars().all(token_char) {
            return Err(format!("cookie name {:?} is not an HTTP token", self.name));
        }
        let attr_ok = |s: &str| s.chars().all(|c| c.is_ascii_graphic() && c != ';');
        if !self.path.starts_with('/') || !attr_ok(&self.path) {
            return Err(format!(
                "cookie path {:?} must start with / and hold no ';' or spaces",
                self.path
            ));
        }
        if let Some(d) = &self.domain
            && (d.is_empty() || !attr_ok(d))
        {
            return Err(format!("cookie domain {d:?} is not a domain"));
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(
                "same_site = none needs secure = true (browsers refuse it otherwise)".into(),
            );
        }
        Ok(())
    }
}

/// Layer settings that cannot work, and why.
#[derive(Debug, thiserror::Error)]
#[error("invalid session layer settings: {0}")]
pub struct InvalidSettings(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_values_are_named() {
        assert_eq!(CookieSettings::default().validate(), Ok(()));
        for bad in [
            CookieSettings {
                name: "a b".into(),
                ..Default::default()
            },
            CookieSettings {
                name: String::new(),
                ..Default::default()
            },
            CookieSettings {
                name: "a;b".into(),
                ..Default::default()
            },
            CookieSettings {
                path: "x".into(),
                ..Default::default()
            },
            CookieSettings {
                path: "/a;b".into(),
                ..Default::default()
            },
            CookieSettings {
                domain: Some("a b".into()),
                ..Default::default()
            },
            CookieSettings {
                same_site: SameSite::None,
                secure: false,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
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
