//! Reading the session cookie from a request and writing `Set-Cookie`
//! values that set or clear it.

use axum::http::{HeaderMap, HeaderValue, header};

use crate::settings::{CookieSettings, SameSite};

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn read<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` carrying `token` for `max_age_secs`.
pub(crate) fn setting(s: &CookieSettings, token: &str, max_age_secs: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{}={token}{}; Max-Age={max_age_secs}",
        s.name,
        attributes(s)
    ))
    .ok()
}

/// `Set-Cookie` removing the cookie (browsers match name, domain and path).
pub(crate) fn clearing(s: &CookieSettings) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("{}={}; Max-Age=0", s.name, attributes(s))).ok()
}

fn attributes(s: &CookieSettings) -> String {
    let mut v = format!("; Path={}; HttpOnly", s.path);
    if let Some(domain) = &s.domain {
        v.push_str("; Domain=");
        v.push_str(domain);
    }
    if s.secure {
        v.push_str("; Secure");
    }
    v.push_str(match s.same_site {
        SameSite::Strict => "; SameSite=Strict",
        SameSite::Lax => "; SameSite=Lax",
        SameSite::None => "; SameSite=None",
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_named_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; sessiond=tok; b=2"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("c=3"));
        assert_eq!(read(&h, "sessiond"), Some("tok"));
        assert_eq!(read(&h, "c"), Some("3"));
        assert_eq!(read(&h, "sessiond2"), None);
        let mut empty = HeaderMap::new();
        empty.append(header::COOKIE, HeaderValue::from_static("sessiond="));
        assert_eq!(read(&empty, "sessiond"), None);
    }

    #[test]
    fn set_and_clear_carry_the_same_attributes() {
        let s = CookieSettings {
            domain: Some("example.com".into()),
            ..CookieSettings::default()
        };
        let set = setting(&s, "sds_x", 60).unwrap();
        assert_eq!(
            set.to_str().unwrap(),
            "sessiond=sds_x; Path=/; HttpOnly; Domain=example.com; Secure; SameSite=Lax; Max-Age=60"
        );
        let clear = clearing(&s).unwrap();
        assert_eq!(
            clear.to_str().unwrap(),
            "sessiond=; Path=/; HttpOnly; Domain=example.com; Secure; SameSite=Lax; Max-Age=0"
        );
    }
}
