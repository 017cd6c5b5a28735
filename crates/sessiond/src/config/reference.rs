//! Every configuration key, once: what a bad value is told it should be,
//! what the key means, its flag. Error messages read it, and
//! `docs/configuration.md` and the README's table are generated from it (a
//! test keeps them equal), so the reference cannot drift from the model.

use super::{Config, DURATION_EXPECTED};

/// One key of the configuration.
#[derive(Clone, Copy, Debug)]
pub struct KeyDoc {
    /// Dotted key; `*` stands for any one name (a role).
    pub key: &'static str,
    /// What a value of the wrong type is told is accepted.
    pub expected: &'static str,
    /// What the key does (empty for tables, which are not listed).
    pub meaning: &'static str,
    /// The command-line flag that also sets it.
    pub flag: Option<&'static str>,
    /// The default when it is not the model's own value (a key without one).
    pub default: Option<&'static str>,
}

/// The type a key's values have, as the strict pass checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Any string.
    Text,
    /// `true` or `false`.
    Bool,
    /// A whole number, 0 or more (rules like "above 0" come later).
    WholeNumber,
    /// A duration string.
    Duration,
    /// One of the listed strings (`"a, b, c"`).
    OneOf(&'static str),
    /// A list of strings, or one comma-separated string.
    List,
    /// A table of keys.
    Table,
}

impl KeyDoc {
    /// The type of the key's values (read from what it expects).
    pub fn kind(&self) -> Kind {
        let e = self.expected;
        if e == BOOLEAN {
            Kind::Bool
        } else if e == DURATION_EXPECTED {
            Kind::Duration
        } else if e.starts_with("expected a whole number") {
            Kind::WholeNumber
        } else if e.starts_with("expected a list") {
            Kind::List
        } else if e.starts_with("expected a table") {
            Kind::Table
        } else if let Some(choices) = e.strip_prefix("expected one of ") {
            Kind::OneOf(choices)
        } else {
            Kind::Text
        }
    }
}

const STRING: &str = "expected a string";
const TABLE: &str = "expected a table";
const WHOLE_NUMBER: &str = "expected a whole number above 0";
const BOOLEAN: &str = "expected true or false";

const fn key(key: &'static str, expected: &'static str, meaning: &'static str) -> KeyDoc {
    KeyDoc {
        key,
        expected,
        meaning,
        flag: None,
        default: None,
    }
}

const fn table(key: &'static str) -> KeyDoc {
    KeyDoc {
        key,
        expected: TABLE,
        meaning: "",
        flag: None,
        default: None,
    }
}

/// The keys, in the order the reference lists them.
pub const KEYS: &[KeyDoc] = &[
    KeyDoc {
        flag: Some("--listen"),
        ..key("listen", STRING, "address and port to serve on")
    },
    KeyDoc {
        default: Some("none: every route on `listen`"),
        ..key(
            "admin_listen",
            STRING,
            "address and port of the operator routes: `/metrics` is served there only (not on `listen`), `/healthz` and `/readyz` too",
        )
    },
    KeyDoc {
        flag: Some("--store"),
        default: Some("the embedded store in `data_dir`"),
        ..key(
            "store",
            STRING,
            "`embedded:PATH`, `postgres://USER@HOST:PORT/DB` (`?sslmode=` as libpq: disable, prefer, require, verify-ca, verify-full, with `sslrootcert=FILE`), `redis://…` or `rediss://…` (TLS), a Redis Cluster: `redis+cluster://HOST:PORT,HOST:PORT,…`, or Sentinel: `redis+sentinel://HOST:PORT,HOST:PORT,…/MASTER` (`rediss+…` for TLS)",
        )
    },
    KeyDoc {
        flag: Some("--data-dir"),
        ..key(
            "data_dir",
            STRING,
            "directory (mode 0700) of the generated API key and signing keys, and of the embedded store unless `store` names another",
        )
    },
    KeyDoc {
        default: Some("generated into `data_dir/api_key` (mode 0600)"),
        ..key(
            "api_key",
            STRING,
            "admin API key (at least 16 printable characters); usually set as `SESSIOND_API_KEY`",
        )
    },
    KeyDoc {
        flag: Some("--default-mode"),
        ..key(
            "default_mode",
            "expected one of opaque, jwt",
            "mode of sessions created without one: `opaque` or `jwt`",
        )
    },
    key(
        "touch_interval",
        DURATION_EXPECTED,
        "activity is recorded at most this often per session (capped at a quarter of its idle timeout)",
    ),
    key(
        "max_sessions_policy",
        "expected one of evict_oldest, reject",
        "at a role's `max_sessions`: `evict_oldest` (the evicted ids are returned) or `reject` (409)",
    ),
    key(
        "key_prefix",
        STRING,
        "prefix of every Redis key (no `{` or `}`)",
    ),
    KeyDoc {
        default: Some("the system's roots (which honour `SSL_CERT_FILE`)"),
        ..key(
            "store_ca_file",
            STRING,
            "PEM file of the CA certificates trusted for `rediss://`, and for `postgres://` TLS when the URL names no `sslrootcert`",
        )
    },
    key(
        "store_timeout",
        DURATION_EXPECTED,
        "bound on every store call; past it the request answers 503 (10ms to 60s)",
    ),
    key(
        "store_wait_replicas",
        "expected a whole number (0 turns it off)",
        "Redis: replicas that every revoking write (revoke, sign out, rotate, refresh) must reach before it is acknowledged, checked with `WAIT`; fewer within half of `store_timeout`: 503 (0 to 16)",
    ),
    key(
        "history_retention",
        DURATION_EXPECTED,
        "SQL stores (embedded, PostgreSQL): how long the history of lifecycle events (`GET /v1/users/{user_id}/history`) is kept; older events are pruned in the background (1h to 3650d)",
    ),
    key(
        "request_timeout",
        DURATION_EXPECTED,
        "bound on a request from the end of its head to the end of its answer; past it: 408",
    ),
    key(
        "strict_roles",
        BOOLEAN,
        "refuse roles that are not configured instead of applying `default`",
    ),
    key(
        "trusted_proxies",
        "expected a list of IP addresses or CIDR ranges, or one comma-separated string",
        "reverse proxies (IP addresses or CIDR ranges) whose `X-Forwarded-For`/`-Proto`/`-Host` or `Forwarded` headers name the client",
    ),
    table("limits"),
    key(
        "limits.max_body_bytes",
        WHOLE_NUMBER,
        "largest request body; beyond: 413 (a larger declared `Content-Length` at once)",
    ),
    key(
        "limits.max_data_bytes",
        WHOLE_NUMBER,
        "largest session `data` (at most `max_body_bytes`); beyond: 413",
    ),
    key(
        "limits.max_header_bytes",
        WHOLE_NUMBER,
        "largest request head (target and all headers); beyond: 431",
    ),
    key(
        "limits.failed_auth_per_minute",
        "expected a whole number (0 turns the limit off)",
        "failed credential checks per client address and minute, for API keys and session credentials separately; beyond: 429; a valid credential is never refused; 0 turns it off",
    ),
    key(
        "limits.header_read_timeout",
        DURATION_EXPECTED,
        "a client must send a whole request head within this from its first byte, or it is disconnected",
    ),
    key(
        "limits.idle_timeout",
        DURATION_EXPECTED,
        "keep-alive connections with no request for this long are closed",
    ),
    key(
        "limits.max_connections",
        WHOLE_NUMBER,
        "connections open at once; more wait to be accepted (keep it below `ulimit -n`)",
    ),
    key(
        "limits.drain_timeout",
        DURATION_EXPECTED,
        "on SIGTERM, how long requests in flight may take to finish before their connections are closed",
    ),
    table("cache"),
    key(
        "cache.enabled",
        BOOLEAN,
        "near-cache: introspections served from memory, invalidated by Redis (CLIENT TRACKING) or, on the embedded store, by a check of the database's change counter before each lookup",
    ),
    key(
        "cache.max_entries",
        WHOLE_NUMBER,
        "most sessions the near-cache holds; the least recently used go first",
    ),
    key(
        "cache.max_bytes",
        WHOLE_NUMBER,
        "most bytes the near-cache holds (estimated per session)",
    ),
    table("events"),
    key(
        "events.enabled",
        BOOLEAN,
        "Redis: whether writes record their events in the feed (in the same script); off, `GET /v1/events` stays empty. The embedded store and PostgreSQL always record them (their history is the same table)",
    ),
    key(
        "events.retention",
        DURATION_EXPECTED,
        "how long the event feed (`GET /v1/events`) keeps an event; a subscriber resuming from an older one gets 410 (1m to 3650d; at most `history_retention`)",
    ),
    key(
        "events.max_events",
        WHOLE_NUMBER,
        "most events the feed keeps; the oldest leave first",
    ),
    key(
        "events.poll_interval",
        DURATION_EXPECTED,
        "how often a subscriber that is up to date looks for new events (10ms to 60s)",
    ),
    key(
        "events.heartbeat",
        DURATION_EXPECTED,
        "how often a quiet event stream gets a heartbeat comment (1s to 300s)",
    ),
    table("cookie"),
    key(
        "cookie.name",
        STRING,
        "name of the session cookie (always HttpOnly)",
    ),
    key(
        "cookie.secure",
        BOOLEAN,
        "`Secure` attribute (browsers also send Secure cookies to `http://localhost`)",
    ),
    key(
        "cookie.same_site",
        "expected one of strict, lax, none",
        "`SameSite` attribute: `strict`, `lax` or `none` (needs `secure`)",
    ),
    KeyDoc {
        default: Some("none (host-only cookie)"),
        ..key("cookie.domain", STRING, "`Domain` attribute")
    },
    key("cookie.path", STRING, "`Path` attribute"),
    table("jwt"),
    key("jwt.issuer", STRING, "`iss` of access tokens"),
    key("jwt.audience", STRING, "`aud` of access tokens"),
    key(
        "jwt.access_ttl",
        DURATION_EXPECTED,
        "lifetime of access tokens (1s to 24h)",
    ),
    key(
        "jwt.algorithm",
        STRING,
        "signing algorithm: `EdDSA` or `ES256`",
    ),
    KeyDoc {
        default: Some("keys generated into `data_dir/keys`"),
        ..key(
            "jwt.key_file",
            STRING,
            "PEM (PKCS#8) private key to sign with; then `sessiond keys rotate` does not apply",
        )
    },
    key(
        "jwt.rollover_delay",
        DURATION_EXPECTED,
        "after `sessiond keys rotate`, how long the new key is published before it signs (the JWKS `max-age` is at most half of it)",
    ),
    table("refresh"),
    key(
        "refresh.reuse_grace",
        DURATION_EXPECTED,
        "how long a retired refresh token still returns its successor (racing tabs); after it, presenting it revokes the session",
    ),
    table("log"),
    KeyDoc {
        flag: Some("--log-format"),
        ..key(
            "log.format",
            "expected one of text, json",
            "`text` or `json` (the level comes from `RUST_LOG`)",
        )
    },
    KeyDoc {
        expected: "expected a table of roles",
        ..table("roles")
    },
    KeyDoc {
        expected: "expected a table with idle_ttl, absolute_ttl and max_sessions (and bind, on_mismatch)",
        ..table("roles.*")
    },
    key(
        "roles.*.idle_ttl",
        DURATION_EXPECTED,
        "idle timeout of the role's sessions; slides with activity (1s to 400d)",
    ),
    key(
        "roles.*.absolute_ttl",
        DURATION_EXPECTED,
        "absolute lifetime of the role's sessions; never slides (1s to 400d)",
    ),
    key(
        "roles.*.max_sessions",
        WHOLE_NUMBER,
        "most live sessions a user may hold when the new session has this role",
    ),
    KeyDoc {
        default: Some("none"),
        ..key(
            "roles.*.bind",
            "expected a list of ip_prefix, ua_family",
            "device binding of the role's sessions: `ip_prefix` (the client's network, see the prefix lengths) and `ua_family` (its browser family); checked by introspection (with the body's `ip` and `user_agent`), `/v1/me`, `/v1/auth` and every session-token route",
        )
    },
    key(
        "roles.*.on_mismatch",
        "expected one of revoke, flag",
        "a session presented off its binding is revoked (reason `binding_mismatch`; the check answers inactive/401) or, with `flag`, stays active with `risk` set",
    ),
    key(
        "roles.*.bind_ipv4_prefix",
        "expected a whole number from 0 to 32",
        "prefix length of an IPv4 address that `ip_prefix` compares",
    ),
    key(
        "roles.*.bind_ipv6_prefix",
        "expected a whole number from 0 to 128",
        "prefix length of an IPv6 address that `ip_prefix` compares",
    ),
    KeyDoc {
        expected: "expected a table of named rules",
        ..table("forward_auth")
    },
    table("encryption"),
    KeyDoc {
        default: Some("none: stored as sent"),
        ..key(
            "encryption.key_file",
            STRING,
            "data key file (mode 0600; created with one key if missing): each `data` value and the device's user agent and IP are sealed with XChaCha20-Poly1305 before they reach the store; `sessiond keys rotate --data` adds a key that seals new writes while older ones still open what they sealed",
        )
    },
    KeyDoc {
        expected: "expected a table with path_prefix, and min_aal or max_age",
        ..table("forward_auth.*")
    },
    KeyDoc {
        default: Some("none (required in each rule)"),
        ..key(
            "forward_auth.*.path_prefix",
            STRING,
            "`GET /v1/auth` applies the rule to requests whose path (from `X-Forwarded-Uri` or `X-Original-URI`) starts with this; the longest matching prefix wins",
        )
    },
    KeyDoc {
        default: Some("none"),
        ..key(
            "forward_auth.*.min_aal",
            "expected one of aal1, aal2, aal3",
            "the rule's requests need a session at this assurance level or above (else 401 `insufficient_aal`)",
        )
    },
    KeyDoc {
        default: Some("none"),
        ..key(
            "forward_auth.*.max_age",
            DURATION_EXPECTED,
            "the rule's requests need a session whose user authenticated at most this long ago (else 401 `reauthentication_required`)",
        )
    },
];

/// The entry of dotted `key` (a role's keys match `roles.*`).
pub fn lookup(key: &str) -> Option<&'static KeyDoc> {
    let parts: Vec<&str> = key.split('.').collect();
    KEYS.iter().find(|doc| {
        let pattern: Vec<&str> = doc.key.split('.').collect();
        pattern.len() == parts.len() && pattern.iter().zip(&parts).all(|(p, k)| *p == "*" || p == k)
    })
}

/// The environment variable that sets `key` (`NAME` for a role).
pub fn env_var(key: &str) -> String {
    format!(
        "{}_{}",
        super::ENV_PREFIX,
        key.replace('*', "NAME")
            .replace('.', "__")
            .to_ascii_uppercase()
    )
}

/// The reference as a Markdown table: key, default, environment variable
/// and flag, meaning.
pub fn markdown() -> String {
    let defaults = toml::Value::try_from(Config::default()).unwrap_or(toml::Value::Boolean(false));
    let mut out =
        String::from("| key | default | environment / flag | meaning |\n|---|---|---|---|\n");
    for doc in KEYS.iter().filter(|d| !d.meaning.is_empty()) {
        let default = doc
            .default
            .map(str::to_owned)
            .or_else(|| default_of(&defaults, doc.key))
            .unwrap_or_else(|| "none".to_owned());
        let mut set_by = format!("`{}`", env_var(doc.key));
        if let Some(flag) = doc.flag {
            set_by.push_str(&format!(", `{flag}`"));
        }
        out.push_str(&format!(
            "| `{}` | {default} | {set_by} | {} |\n",
            doc.key, doc.meaning
        ));
    }
    out
}

/// The default of `key` in the serialized defaults (a role's keys: those of
/// the `default` role).
fn default_of(defaults: &toml::Value, key: &str) -> Option<String> {
    let mut node = defaults;
    for part in key.split('.') {
        let part = if part == "*" { "default" } else { part };
        node = node.get(part)?;
    }
    Some(match node {
        toml::Value::Array(items) if items.is_empty() => "none".to_owned(),
        other => format!("`{other}`"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of the model is documented, and every documented key is
    /// one of the model (or an optional key, which has no default).
    #[test]
    fn the_reference_covers_the_model_exactly() {
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let mut leaves = Vec::new();
        collect(&defaults, String::new(), &mut leaves);
        for leaf in &leaves {
            let documented = lookup(leaf).is_some_and(|d| !d.meaning.is_empty());
            assert!(documented, "{leaf} is not in config/reference.rs");
        }
        for doc in KEYS.iter().filter(|d| !d.meaning.is_empty()) {
            let concrete = doc.key.replace('*', "default");
            assert!(
                leaves.contains(&concrete) || doc.default.is_some(),
                "{} is documented but not in the model",
                doc.key
            );
        }
    }

    fn collect(node: &toml::Value, prefix: String, out: &mut Vec<String>) {
        match node {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    collect(v, key, out);
                }
            }
            _ => out.push(prefix),
        }
    }

    #[test]
    fn lookup_and_env_names() {
        assert_eq!(
            lookup("roles.admin.idle_ttl").unwrap().key,
            "roles.*.idle_ttl"
        );
        assert_eq!(lookup("roles.admin").unwrap().key, "roles.*");
        assert!(lookup("roles.admin.nope").is_none());
        assert!(lookup("url").is_none());
        assert_eq!(env_var("jwt.access_ttl"), "SESSIOND_JWT__ACCESS_TTL");
        assert_eq!(
            env_var("roles.*.max_sessions"),
            "SESSIOND_ROLES__NAME__MAX_SESSIONS"
        );
        let table = markdown();
        assert!(
            table.contains("| `jwt.access_ttl` | `\"15m\"` | `SESSIOND_JWT__ACCESS_TTL` |"),
            "{table}"
        );
        assert!(table.contains("`--data-dir`"), "{table}");
        assert!(!table.contains("| `limits` |"), "tables are not listed");
    }
}
