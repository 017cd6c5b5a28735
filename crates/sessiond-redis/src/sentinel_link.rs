//! The link to the master of a Sentinel-monitored set. The master is the one
//! the sentinels agree on in the newest configuration (the highest
//! `config-epoch` among those that answer: right after a failover, a sentinel
//! that has not heard of it yet still names the old master). The connection
//! is replaced when it fails, when the server answers `READONLY`, and when a
//! check every [`SENTINEL_CHECK`] finds the sentinels naming another server
//! (the old master takes writes, and loses them, until it is demoted). Every
//! replacement is announced to followers (the near-cache's channel).

use std::sync::{Arc, OnceLock, PoisonError, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::watch;

use crate::clients::client_for;
use crate::errors::is_connection_error;

/// How often the sentinels are asked which server is the master.
const SENTINEL_CHECK: Duration = Duration::from_millis(500);

/// What a Sentinel URL names.
#[derive(Clone)]
pub(crate) struct SentinelTarget {
    /// One URL per sentinel.
    pub(crate) sentinels: Vec<String>,
    /// The master set's name.
    pub(crate) master: String,
    /// TLS to the data nodes.
    pub(crate) tls: bool,
    /// `user:password` for the data nodes.
    pub(crate) credentials: Option<String>,
    /// Database number.
    pub(crate) db: i64,
}

/// A self-following connection to the master (cheap to clone).
#[derive(Clone)]
pub(crate) struct SentinelLink {
    inner: Arc<Inner>,
}

struct Inner {
    target: SentinelTarget,
    tls_ca_pem: Option<Vec<u8>>,
    timeout: Duration,
    /// Connections to the sentinels, by position in `target.sentinels`.
    sentinels: tokio::sync::Mutex<Vec<Option<MultiplexedConnection>>>,
    /// Serializes finding a new master.
    finding: tokio::sync::Mutex<()>,
    /// The master: its connection, `host:port`, and a client for it.
    master: RwLock<Option<Master>>,
    /// Bumped whenever the master connection is dropped.
    switched: watch::Sender<u64>,
    watcher: OnceLock<tokio::task::JoinHandle<()>>,
}

#[derive(Clone)]
struct Master {
    conn: MultiplexedConnection,
    addr: String,
    client: redis::Client,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.get() {
            watcher.abort();
        }
    }
}

impl SentinelLink {
    /// A link to the master `target` names; it connects on first use and
    /// starts checking the sentinels in the background.
    pub(crate) fn new(
        target: SentinelTarget,
        tls_ca_pem: Option<&[u8]>,
        timeout: Duration,
    ) -> Self {
        let n = target.sentinels.len();
        let link = Self {
            inner: Arc::new(Inner {
                target,
                tls_ca_pem: tls_ca_pem.map(<[u8]>::to_vec),
                timeout,
                sentinels: tokio::sync::Mutex::new(vec![None; n]),
                finding: tokio::sync::Mutex::new(()),
                master: RwLock::new(None),
                switched: watch::channel(0).0,
                watcher: OnceLock::new(),
            }),
        };
        let weak = Arc::downgrade(&link.inner);
        let _ = link.inner.watcher.set(tokio::spawn(watch_sentinels(weak)));
        link
    }

    /// The master's name in the URL.
    pub(crate) fn master_name(&self) -> &str {
        &self.inner.target.master
    }

    /// The connection to the current master, finding it when there is none.
    pub(crate) async fn master(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(m) = self.current() {
            return Ok(m.conn);
        }
        let _finding = self.inner.finding.lock().await;
        // Another call may have found it while this one waited.
        if let Some(m) = self.current() {
            return Ok(m.conn);
        }
        let (host, port) = self.ask().await?.ok_or_else(|| {
            RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no sentinel names a master {:?}", self.master_name()),
            ))
        })?;
        let client = self.client_for(&host, port)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.timeout))
            .set_response_timeout(None);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // It must say so itself (a demoted master is a replica now).
        let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
        if !matches!(role.first(), Some(Value::BulkString(r)) if r == b"master") {
            return Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!("{host}:{port} is not a master (yet)"),
            )));
        }
        *self
            .inner
            .master
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Master {
            conn: conn.clone(),
            addr: format!("{host}:{port}"),
            client,
        });
        Ok(conn)
    }

    /// How to connect to the current master (finding it if need be).
    pub(crate) async fn master_info(&self) -> RedisResult<redis::ConnectionInfo> {
        self.master().await?;
        self.current()
            .map(|m| m.client.get_connection_info().clone())
            .ok_or_else(|| RedisError::from(std::io::Error::from(std::io::ErrorKind::NotConnected)))
    }

    /// Changes whenever the master connection is dropped.
    pub(crate) fn switches(&self) -> watch::Receiver<u64> {
        self.inner.switched.subscribe()
    }

    fn current(&self) -> Option<Master> {
        self.inner
            .master
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Drop the master connection if `stale` says so, telling followers.
    fn forget_if(&self, stale: impl FnOnce(&Master) -> bool) {
        let mut master = self
            .inner
            .master
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if master.as_ref().is_some_and(stale) {
            *master = None;
            self.inner.switched.send_modify(|n| *n += 1);
        }
    }

    /// After a call: forget the master if the connection failed or the
    /// server is not the master any more.
    fn judge<T>(&self, result: &RedisResult<T>) {
        if let Err(e) = result
            && (is_connection_error(e) || e.code() == Some("READONLY"))
        {
            self.forget_if(|_| true);
        }
    }

    /// The master the sentinels name in their newest configuration.
    async fn ask(&self) -> RedisResult<Option<(String, u16)>> {
        let t = &self.inner.target;
        let mut conns = self.inner.sentinels.lock().await;
        let mut best: Option<(i64, String, u16)> = None;
        let mut last_error = None;
        for (i, url) in t.sentinels.iter().enumerate() {
            if conns[i].is_none() {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.inner.timeout))
                    .set_response_timeout(Some(self.inner.timeout));
                match client_for(url, self.inner.tls_ca_pem.as_deref()) {
                    Ok(c) => match c
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                    {
                        Ok(conn) => conns[i] = Some(conn),
                        Err(e) => last_error = Some(e),
                    },
                    Err(e) => last_error = Some(e),
                }
            }
            let Some(conn) = conns[i].as_mut() else {
                continue;
            };
            let reply: RedisResult<Vec<String>> = redis::cmd("SENTINEL")
                .arg("MASTER")
                .arg(&t.master)
                .query_async(conn)
                .await;
            match reply {
                Ok(fields) => {
                    let get = |key: &str| {
                        fields
                            .chunks(2)
                            .find(|kv| kv.first().map(String::as_str) == Some(key))
                            .and_then(|kv| kv.get(1))
                    };
                    let (Some(ip), Some(port), epoch) = (
                        get("ip"),
                        get("port").and_then(|p| p.parse::<u16>().ok()),
                        get("config-epoch").and_then(|e| e.parse::<i64>().ok()),
                    ) else {
                        continue;
                    };
                    let epoch = epoch.unwrap_or(0);
                    if best.as_ref().is_none_or(|(e, _, _)| epoch > *e) {
                        best = Some((epoch, ip.clone(), port));
                    }
                }
                Err(e) => {
                    conns[i] = None;
                    last_error = Some(e);
                }
            }
        }
        match (best, last_error) {
            (Some((_, host, port)), _) => Ok(Some((host, port))),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(None),
        }
    }

    /// A client for the data node at `host:port`, with the URL's TLS,
    /// credentials and database.
    fn client_for(&self, host: &str, port: u16) -> RedisResult<redis::Client> {
        let t = &self.inner.target;
        let scheme = if t.tls { "rediss" } else { "redis" };
        let auth = t
            .credentials
            .as_deref()
            .map(|c| format!("{c}@"))
            .unwrap_or_default();
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let url = format!("{scheme}://{auth}{host}:{port}/{}", t.db);
        client_for(&url, self.inner.tls_ca_pem.as_deref())
    }
}

/// Every [`SENTINEL_CHECK`], ask the sentinels and drop the master
/// connection if they name another server; stops with the link.
async fn watch_sentinels(weak: Weak<Inner>) {
    loop {
        tokio::time::sleep(SENTINEL_CHECK).await;
        let Some(inner) = weak.upgrade() else { return };
        let link = SentinelLink { inner };
        if let Ok(Some((host, port))) = link.ask().await {
            let named = format!("{host}:{port}");
            link.forget_if(|m| {
                let moved = m.addr != named;
                if moved {
                    tracing::info!(master = %named, "the sentinels name a new redis master; following it");
                }
                moved
            });
        }
    }
}

impl ConnectionLike for SentinelLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut conn = self.master().await?;
            let result = conn.req_packed_command(cmd).await;
            self.judge(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut conn = self.master().await?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            self.judge(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.target.db
    }
}
