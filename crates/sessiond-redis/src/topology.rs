//! Store URLs and the deployment each names: one Redis (`redis://`,
//! `rediss://`), a Cluster given by seed nodes (`redis+cluster://h1:p1,h2:p2`,
//! `rediss+cluster://…`), or a master found through Sentinel
//! (`redis+sentinel://h1:p1,h2:p2/mymaster`, `rediss+sentinel://…`). Parsing
//! says in one line what is wrong with a URL.

use std::fmt;

/// The Redis deployment a store URL names.
#[derive(Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server: the URL as given.
    Single(String),
    /// A Cluster: one `redis://` (or `rediss://`) URL per seed node, each
    /// with the URL's credentials.
    Cluster(Vec<String>),
    /// Sentinel: the sentinels' URLs and the master's name.
    Sentinel {
        /// One `redis://` URL per sentinel (no credentials: they are the
        /// data nodes').
        sentinels: Vec<String>,
        /// The monitored master's name.
        master: String,
        /// TLS to the data nodes (and the sentinels).
        tls: bool,
        /// `user:password` for the data nodes, if given.
        credentials: Option<String>,
        /// Database number (`?db=N` or `/name/N`), 0 by default.
        db: i64,
    },
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credentials.
        match self {
            Self::Single(_) => f.write_str("Single"),
            Self::Cluster(nodes) => write!(f, "Cluster({} seeds)", nodes.len()),
            Self::Sentinel {
                sentinels, master, ..
            } => write!(f, "Sentinel({} sentinels, {master:?})", sentinels.len()),
        }
    }
}

/// What is wrong with a store URL (one line; never the password).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(String);

const CLUSTER_FORM: &str =
    "expected redis+cluster://HOST:PORT,HOST:PORT,… (or rediss+cluster:// for TLS)";
const SENTINEL_FORM: &str =
    "expected redis+sentinel://HOST:PORT,HOST:PORT,…/MASTER_NAME (or rediss+sentinel:// for TLS)";

impl Topology {
    /// The deployment `url` names.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let lower = url.to_ascii_lowercase();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| UrlError("expected a URL like redis://HOST:PORT/".into()))?;
        match lower.split_once("://").map_or("", |(s, _)| s) {
            "redis" | "rediss" | "redis+unix" | "unix" => Ok(Self::Single(url.to_owned())),
            "redis+cluster" | "rediss+cluster" => {
                let tls = scheme.to_ascii_lowercase().starts_with("rediss");
                let (credentials, hosts, path) = split(rest);
                if !path.trim_matches('/').is_empty() {
                    return Err(UrlError(format!(
                        "a cluster URL has no database or path (\"/{}\"); {CLUSTER_FORM}",
                        path.trim_matches('/')
                    )));
                }
                let nodes = host_list(hosts, CLUSTER_FORM)?;
                let scheme = if tls { "rediss" } else { "redis" };
                let auth = credentials.map(|c| format!("{c}@")).unwrap_or_default();
                Ok(Self::Cluster(
                    nodes
                        .iter()
                        .map(|n| format!("{scheme}://{auth}{n}/"))
                        .collect(),
                ))
            }
            "redis+sentinel" | "rediss+sentinel" => {
                let tls = scheme.to_ascii_lowercase().starts_with("rediss");
                let (credentials, hosts, path) = split(rest);
                let mut parts = path.trim_matches('/').split('/');
                let master = parts.next().unwrap_or("");
                if master.is_empty() {
                    return Err(UrlError(format!(
                        "the sentinel URL names no master; {SENTINEL_FORM}"
                    )));
                }
                if !master
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                {
                    return Err(UrlError(format!(
                        "the master name {master:?} has characters other than letters, digits, '-', '_' and '.'; {SENTINEL_FORM}"
                    )));
                }
                let db = match parts.next() {
                    None | Some("") => 0,
                    Some(n) => n.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                        UrlError(format!(
                            "the database after the master name must be a number, not {n:?}"
                        ))
                    })?,
                };
                if parts.next().is_some() {
                    return Err(UrlError(format!(
                        "unexpected path after the master name and database; {SENTINEL_FORM}"
                    )));
                }
                let sentinels = host_list(hosts, SENTINEL_FORM)?
                    .iter()
                    .map(|n| format!("{}://{n}/", if tls { "rediss" } else { "redis" }))
                    .collect();
                Ok(Self::Sentinel {
                    sentinels,
                    master: master.to_owned(),
                    tls,
                    credentials: credentials.map(str::to_owned),
                    db,
                })
            }
            other => Err(UrlError(format!(
                "unknown scheme {other:?}; expected redis://, rediss://, redis+cluster://, rediss+cluster://, redis+sentinel:// or rediss+sentinel://"
            ))),
        }
    }
}

/// `[credentials@]hosts[/path]` → (credentials, hosts, path).
fn split(rest: &str) -> (Option<&str>, &str, &str) {
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    // The last '@' ends the credentials (a password may hold '@').
    match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..], path),
        None => (None, authority, path),
    }
}

/// `h1:p1,h2:p2` → each `host:port`, checked.
fn host_list(hosts: &str, form: &str) -> Result<Vec<String>, UrlError> {
    let mut out = Vec::new();
    for entry in hosts.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(UrlError(format!("an empty host in the list; {form}")));
        }
        let (host, port) = entry
            .rsplit_once(':')
            .ok_or_else(|| UrlError(format!("{entry:?} has no port; {form}")))?;
        let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
        let host_ok = !host.is_empty()
            && (host.starts_with('[') && host.ends_with(']')
                || host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b)));
        if !port_ok || !host_ok {
            return Err(UrlError(format!("{entry:?} is not HOST:PORT; {form}")));
        }
        out.push(entry.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_their_seeds() {
        assert_eq!(
            Topology::parse("redis+cluster://h1:7000,h2:7001,h3:7002"),
            Ok(Topology::Cluster(vec![
                "redis://h1:7000/".into(),
                "redis://h2:7001/".into(),
                "redis://h3:7002/".into()
            ]))
        );
        assert_eq!(
            Topology::parse("rediss+cluster://:pw@h1:7000,[::1]:7001/"),
            Ok(Topology::Cluster(vec![
                "rediss://:pw@h1:7000/".into(),
                "rediss://:pw@[::1]:7001/".into()
            ]))
        );
    }

    #[test]
    fn sentinel_urls_name_sentinels_and_master() {
        let Ok(Topology::Sentinel {
            sentinels,
            master,
            tls,
            credentials,
            db,
        }) = Topology::parse("redis+sentinel://u:p@s1:26379,s2:26379/mymaster/2")
        else {
            panic!("not a sentinel topology")
        };
        assert_eq!(sentinels, ["redis://s1:26379/", "redis://s2:26379/"]);
        assert_eq!(master, "mymaster");
        assert!(!tls);
        assert_eq!(credentials.as_deref(), Some("u:p"));
        assert_eq!(db, 2);
    }

    #[test]
    fn malformed_urls_say_why_in_one_line() {
        for (url, why) in [
            ("redis+cluster://", "an empty host"),
            ("redis+cluster://h1", "has no port"),
            ("redis+cluster://h1:7000,,h2:7001", "an empty host"),
            ("redis+cluster://h1:99999", "is not HOST:PORT"),
            ("redis+cluster://h1:7000/3", "no database"),
            ("redis+sentinel://s1:26379", "names no master"),
            ("redis+sentinel://s1:26379/", "names no master"),
            (
                "redis+sentinel://s1:26379/my master",
                "characters other than",
            ),
            ("redis+sentinel://s1:26379/m/x", "must be a number"),
            ("redis+sentinel://s1:x/m", "is not HOST:PORT"),
            ("memcached://h:1", "unknown scheme"),
        ] {
            let e = Topology::parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let e = Topology::parse("redis+cluster://:secret@h1")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn debug_never_shows_credentials() {
        let t =
            Topology::parse("redis+cluster://:secret@h1:7000").unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{t:?}").contains("secret"));
    }
}
