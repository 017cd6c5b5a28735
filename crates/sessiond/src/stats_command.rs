//! What `sessiond stats` prints: the running server's `/v1/stats` (the same
//! totals, since that server started), or, when no server answers, what the
//! store alone can tell (reachable, live sessions).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use sessiond_api::Stats;

use crate::config::Config;

/// How long to wait for the server before counting in the store.
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(3);

/// The server `sessiond stats` asks by default: the configured `listen`
/// address, a wildcard host asked on loopback.
pub fn default_url(config: &Config) -> String {
    let listen = &config.listen;
    let local = if let Some(port) = listen.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = listen.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        listen.clone()
    };
    format!("http://{local}")
}

/// What the store alone tells (no server answered).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoreOnly {
    /// Live sessions of all users.
    pub live_sessions: u64,
    /// `ok`: the store answered.
    pub store: String,
}

/// A user's live sessions, when `--user` asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserCount {
    /// The user id.
    pub id: String,
    /// Live sessions.
    pub live_sessions: u64,
}

/// The server's totals as text, one per line.
pub fn server_text(url: &str, store: &str, stats: &Stats) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "server: {url}");
    let _ = writeln!(out, "store: {store}: {}", stats.store);
    match stats.live_sessions {
        Some(n) => {
            let _ = writeln!(out, "live sessions: {n}");
        }
        None => {
            let _ = writeln!(out, "live sessions: unknown (store unavailable)");
        }
    }
    let _ = writeln!(out, "created since start: {}", stats.created);
    let _ = writeln!(
        out,
        "revoked since start: {}",
        revoked_line(&stats.revoked_by_reason)
    );
    let _ = writeln!(out, "store errors since start: {}", stats.store_errors);
    out
}

/// `7 (logout 3, revoked_by_admin 4)`, or `0`.
fn revoked_line(by_reason: &BTreeMap<String, u64>) -> String {
    let total: u64 = by_reason.values().sum();
    if by_reason.is_empty() {
        return total.to_string();
    }
    let parts: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
    format!("{total} ({})", parts.join(", "))
}

/// The store's own answer as text.
pub fn store_text(store: &str, counted: &StoreOnly) -> String {
    format!(
        "store: {store}: {}\nlive sessions: {}\n",
        counted.store, counted.live_sessions
    )
}

/// JSON of `totals` (the server's `/v1/stats` body, or the store's own
/// answer), with the user's count when asked.
pub fn json(totals: &impl Serialize, user: Option<&UserCount>) -> serde_json::Value {
    let mut value = serde_json::to_value(totals).unwrap_or(serde_json::Value::Null);
    if let (Some(user), Some(object)) = (user, value.as_object_mut()) {
        object.insert(
            "user".to_owned(),
            serde_json::to_value(user).unwrap_or(serde_json::Value::Null),
        );
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_server_is_the_listen_address_on_loopback() {
        let mut c = Config::default();
        assert_eq!(default_url(&c), "http://127.0.0.1:7420");
        c.listen = "0.0.0.0:8080".into();
        assert_eq!(default_url(&c), "http://127.0.0.1:8080");
        c.listen = "[::]:8080".into();
        assert_eq!(default_url(&c), "http://[::1]:8080");
        c.listen = "localhost:9".into();
        assert_eq!(default_url(&c), "http://localhost:9");
    }

    #[test]
    fn server_totals_read_as_lines() {
        let stats = Stats {
            live_sessions: Some(12),
            created: 40,
            revoked_by_reason: [("logout".to_owned(), 3), ("revoked_by_admin".to_owned(), 1)]
                .into(),
            store_errors: 0,
            store: "ok".into(),
        };
        assert_eq!(
            server_text("http://127.0.0.1:7420", "embedded:./data", &stats),
            "server: http://127.0.0.1:7420\nstore: embedded:./data: ok\nlive sessions: 12\n\
             created since start: 40\nrevoked since start: 4 (logout 3, revoked_by_admin 1)\n\
             store errors since start: 0\n"
        );
        let json = json(
            &stats,
            Some(&UserCount {
                id: "alice".into(),
                live_sessions: 2,
            }),
        );
        assert_eq!(json["created"], 40);
        assert_eq!(json["revoked_by_reason"]["logout"], 3);
        assert_eq!(json["user"]["live_sessions"], 2);
    }
}
