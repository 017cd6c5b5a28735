//! The connection to Redis: a self-reconnecting `ConnectionManager` to one
//! server, or a cluster connection (slots followed through MOVED/ASK, nodes
//! reconnected by itself); a deadline on every call, one retry of idempotent
//! calls after a dropped connection, and the mapping of redis errors onto
//! [`StoreError`].

use std::future::Future;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisConnectionInfo, RedisError, RedisFuture,
    RedisResult, ServerErrorKind, Value,
};
use sessiond_engine::StoreError;
use std::sync::{Arc, PoisonError};

use crate::scripts::LuaScript;
use crate::topology::Topology;

/// The link to the deployment: one server, a cluster, or the master that
/// Sentinel names.
#[derive(Clone)]
pub(crate) enum Link {
    /// One server (standalone, or a master behind a proxy).
    Single(ConnectionManager),
    /// A Redis Cluster: each command goes to the master of its key's slot.
    Cluster(ClusterConnection),
    /// The current master of a Sentinel-monitored set.
    Sentinel(SentinelLink),
}

/// A connection to the master Sentinel names, replaced when it fails or the
/// server it reaches is no longer the master (`READONLY`): the next call
/// asks the sentinels again, so a failover is followed without a restart.
#[derive(Clone)]
pub(crate) struct SentinelLink {
    inner: Arc<SentinelInner>,
}

struct SentinelInner {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    /// The connection to the master, the master's `host:port`, and how to
    /// connect to it (for the near-cache's channel).
    master: std::sync::RwLock<Option<(MultiplexedConnection, String, redis::ConnectionInfo)>>,
    /// Bumped whenever the master connection is dropped (a failover, or a
    /// failed connection): the near-cache's channel follows.
    switched: tokio::sync::watch::Sender<u64>,
    timeout: Duration,
    /// Asks the sentinels for the master every [`SENTINEL_CHECK`].
    watcher: std::sync::OnceLock<tokio::task::JoinHandle<()>>,
}

impl Drop for SentinelInner {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.get() {
            watcher.abort();
        }
    }
}

/// How often the sentinels are asked which server is the master: after a
/// failover, the old master may take writes (and lose them) until it is
/// demoted, so its connection is dropped as soon as the sentinels name
/// another.
const SENTINEL_CHECK: Duration = Duration::from_millis(500);

impl SentinelLink {
    /// The connection to the current master, asking the sentinels when there
    /// is none.
    async fn master(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let mut sentinel = self.inner.sentinel.lock().await;
        // Another call may have found it while this one waited.
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let client = sentinel.async_get_client().await?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.timeout))
            .set_response_timeout(None);
        let info = client.get_connection_info().clone();
        let addr = host_port(info.addr());
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *self
            .inner
            .master
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some((conn.clone(), addr, info));
        Ok(conn)
    }

    /// How to connect to the current master (asking the sentinels if need
    /// be).
    pub(crate) async fn master_info(&self) -> RedisResult<redis::ConnectionInfo> {
        self.master().await?;
        self.inner
            .master
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(_, _, info)| info.clone())
            .ok_or_else(|| RedisError::from(std::io::Error::from(std::io::ErrorKind::NotConnected)))
    }

    /// Changes whenever the master connection is dropped.
    pub(crate) fn switches(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.switched.subscribe()
    }

    /// Drop the master connection (held in `slot`), telling the followers.
    fn forget(&self, slot: &mut Option<(MultiplexedConnection, String, redis::ConnectionInfo)>) {
        if slot.take().is_some() {
            self.inner.switched.send_modify(|n| *n += 1);
        }
    }

    fn current(&self) -> Option<MultiplexedConnection> {
        self.inner
            .master
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(conn, _, _)| conn.clone())
    }

    /// Drop the connection unless it reaches `addr`, the master the
    /// sentinels name now.
    fn keep_only(&self, addr: &str) {
        let mut master = self
            .inner
            .master
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if master
            .as_ref()
            .is_some_and(|(_, current, _)| current != addr)
        {
            tracing::info!(master = %addr, "the sentinels name a new redis master; following it");
            self.forget(&mut master);
        }
    }

    /// Start asking the `sentinels` for the master of `name` every
    /// [`SENTINEL_CHECK`], for as long as the link lives.
    fn watch(&self, sentinels: Vec<String>, name: String) {
        let weak = Arc::downgrade(&self.inner);
        let timeout = self.inner.timeout;
        let task = tokio::spawn(async move {
            let mut asking: Option<MultiplexedConnection> = None;
            let mut next = 0usize;
            loop {
                tokio::time::sleep(SENTINEL_CHECK).await;
                let Some(inner) = weak.upgrade() else { return };
                let link = SentinelLink { inner };
                if asking.is_none() {
                    let url = &sentinels[next % sentinels.len()];
                    next += 1;
                    let config = AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(Some(timeout));
                    asking = match redis::Client::open(url.as_str()) {
                        Ok(c) => c
                            .get_multiplexed_async_connection_with_config(&config)
                            .await
                            .ok(),
                        Err(_) => None,
                    };
                }
                let Some(conn) = asking.as_mut() else {
                    continue;
                };
                let reply: RedisResult<Option<(String, u16)>> = redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(&name)
                    .query_async(conn)
                    .await;
                match reply {
                    Ok(Some((host, port))) => link.keep_only(&format!("{host}:{port}")),
                    Ok(None) => {}
                    Err(_) => asking = None,
                }
            }
        });
        let _ = self.inner.watcher.set(task);
    }

    /// After a call: forget the master if the connection failed or the server
    /// is not the master any more.
    fn judge<T>(&self, result: &RedisResult<T>) {
        if let Err(e) = result
            && (is_connection_error(e) || e.code() == Some("READONLY"))
        {
            let mut master = self
                .inner
                .master
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            self.forget(&mut master);
        }
    }
}

/// `host:port` of a TCP address (as Sentinel names masters).
fn host_port(addr: &redis::ConnectionAddr) -> String {
    match addr {
        redis::ConnectionAddr::Tcp(host, port)
        | redis::ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}"),
        other => other.to_string(),
    }
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel(s) => Box::pin(async move {
                let mut conn = s.master().await?;
                let result = conn.req_packed_command(cmd).await;
                s.judge(&result);
                result
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(s) => Box::pin(async move {
                let mut conn = s.master().await?;
                let result = conn.req_packed_commands(pipeline, offset, count).await;
                s.judge(&result);
                result
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel(s) => s.current().map_or(0, |c| c.get_db()),
        }
    }
}

/// Whether a call may be sent again after its connection dropped mid-flight
/// (the first attempt may or may not have run on the server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Read-only: running it twice is harmless.
    Once,
    /// Writes: a second run could report a different outcome.
    Never,
}

/// A multiplexed, self-healing connection with a bound on every call.
#[derive(Clone)]
pub(crate) struct Connection {
    /// The single server's client (the near-cache dials its own connection
    /// with it); `None` on a cluster.
    client: Option<redis::Client>,
    tls_ca_pem: Option<Vec<u8>>,
    manager: Link,
    timeout: Duration,
    /// Replicas a revoking write must reach before it is acknowledged (0:
    /// acknowledged by the master alone).
    wait_replicas: u32,
}

impl Connection {
    /// Connect to `url` and load `scripts` (so the first call of each is one
    /// EVALSHA), all within `timeout`. Loading is best effort: the EVAL
    /// fallback covers a server that refuses it or forgets the scripts.
    /// `rediss://` URLs verify the server against `tls_ca_pem` when given,
    /// else against the system's roots (`SSL_CERT_FILE` is honoured).
    pub(crate) async fn open(
        url: &str,
        timeout: Duration,
        tls_ca_pem: Option<&[u8]>,
        scripts: &[&LuaScript],
    ) -> Result<Self, StoreError> {
        let topology = Topology::parse(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid redis url: {e}")))?;
        match topology {
            Topology::Single(url) => Self::open_single(&url, timeout, tls_ca_pem, scripts).await,
            Topology::Cluster(nodes) => {
                Self::open_cluster(&nodes, timeout, tls_ca_pem, scripts).await
            }
            Topology::Sentinel {
                sentinels,
                master,
                tls,
                credentials,
                db,
            } => {
                let target = SentinelTarget {
                    sentinels,
                    master,
                    tls,
                    credentials,
                    db,
                };
                Self::open_sentinel(target, timeout, tls_ca_pem, scripts).await
            }
        }
    }

    async fn open_single(
        url: &str,
        timeout: Duration,
        tls_ca_pem: Option<&[u8]>,
        scripts: &[&LuaScript],
    ) -> Result<Self, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let client = client(url, tls_ca_pem)?;
        // Reconnect attempts back off from 25 ms to at most 500 ms, so service
        // resumes soon after Redis does; each attempt is bounded by `timeout`.
        // After 20 failed attempts (about 8 s) the manager stops until the
        // next call starts a new round.
        // No response timeout of its own: every call is bounded by `within`
        // (one timer per call, not two).
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(None)
            .set_min_delay(Duration::from_millis(25))
            .set_max_delay(Duration::from_millis(500))
            .set_exponent_base(2.0)
            .set_number_of_retries(20);
        let mut manager = tokio::time::timeout_at(
            deadline,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!("could not connect to redis within {timeout:?}"))
        })?
        .map_err(unavailable)?;
        let mut load = redis::pipe();
        for s in scripts {
            load.cmd("SCRIPT").arg("LOAD").arg(s.code).ignore();
        }
        if !matches!(
            tokio::time::timeout_at(deadline, load.exec_async(&mut manager)).await,
            Ok(Ok(()))
        ) {
            tracing::debug!("could not preload the Lua scripts; they load on first use");
        }
        Ok(Self {
            client: Some(client),
            tls_ca_pem: tls_ca_pem.map(<[u8]>::to_vec),
            manager: Link::Single(manager),
            timeout,
            wait_replicas: 0,
        })
    }

    /// Connect to the cluster that `nodes` (seeds) belong to. The client
    /// learns the slots from them, follows MOVED and ASK, and reconnects to
    /// nodes by itself; scripts are loaded on every master (best effort: the
    /// EVAL fallback covers a node that lacks them, e.g. a promoted replica).
    async fn open_cluster(
        nodes: &[String],
        timeout: Duration,
        tls_ca_pem: Option<&[u8]>,
        scripts: &[&LuaScript],
    ) -> Result<Self, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let tls = nodes.iter().any(|n| n.starts_with("rediss://"));
        if tls {
            // The crypto provider of the TLS stack; an error only means one
            // is installed already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut builder = ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(timeout)
            .retries(2)
            .min_retry_wait(25)
            .max_retry_wait(500);
        if let (true, Some(pem)) = (tls, tls_ca_pem) {
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            });
        }
        let client = builder
            .build()
            .map_err(|e| StoreError::Unavailable(format!("invalid redis cluster url: {e}")))?;
        let mut conn = tokio::time::timeout_at(deadline, client.get_async_connection())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "could not connect to the redis cluster within {timeout:?}"
                ))
            })?
            .map_err(unavailable)?;
        for s in scripts {
            let mut load = redis::cmd("SCRIPT");
            load.arg("LOAD").arg(s.code);
            let routing = RoutingInfo::MultiNode((
                MultipleNodeRoutingInfo::AllMasters,
                Some(ResponsePolicy::AllSucceeded),
            ));
            if !matches!(
                tokio::time::timeout_at(deadline, conn.route_command(load, routing)).await,
                Ok(Ok(_))
            ) {
                tracing::debug!(
                    "could not preload a Lua script on every master; it loads on first use"
                );
            }
        }
        Ok(Self {
            client: None,
            tls_ca_pem: tls_ca_pem.map(<[u8]>::to_vec),
            manager: Link::Cluster(conn),
            timeout,
            wait_replicas: 0,
        })
    }

    /// Connect to the master the sentinels of `target` name, within
    /// `timeout`, and load `scripts` there (best effort).
    async fn open_sentinel(
        target: SentinelTarget,
        timeout: Duration,
        tls_ca_pem: Option<&[u8]>,
        scripts: &[&LuaScript],
    ) -> Result<Self, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut info = RedisConnectionInfo::default().set_db(target.db);
        if let Some(credentials) = &target.credentials {
            let (user, password) = credentials.split_once(':').unwrap_or(("", credentials));
            if !user.is_empty() {
                info = info.set_username(user);
            }
            if !password.is_empty() {
                info = info.set_password(password);
            }
        }
        let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(info);
        if target.tls {
            let _ = rustls::crypto::ring::default_provider().install_default();
            node = node.set_tls_mode(redis::TlsMode::Secure);
        }
        if tls_ca_pem.is_some() {
            return Err(StoreError::Unavailable(
                "store_ca_file is not supported with Sentinel yet: use a certificate the system's roots trust".into(),
            ));
        }
        let sentinel = SentinelClient::build(
            target.sentinels.clone(),
            target.master.clone(),
            Some(node),
            SentinelServerType::Master,
        )
        .map_err(|e| StoreError::Unavailable(format!("invalid sentinel url: {e}")))?;
        let link = SentinelLink {
            inner: Arc::new(SentinelInner {
                sentinel: tokio::sync::Mutex::new(sentinel),
                master: std::sync::RwLock::new(None),
                switched: tokio::sync::watch::channel(0).0,
                timeout,
                watcher: std::sync::OnceLock::new(),
            }),
        };
        link.watch(target.sentinels.clone(), target.master.clone());
        tokio::time::timeout_at(deadline, link.master())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "no master {:?} found through the sentinels within {timeout:?}",
                    target.master
                ))
            })?
            .map_err(unavailable)?;
        let mut manager = Link::Sentinel(link);
        let mut load = redis::pipe();
        for s in scripts {
            load.cmd("SCRIPT").arg("LOAD").arg(s.code).ignore();
        }
        if !matches!(
            tokio::time::timeout_at(deadline, load.exec_async(&mut manager)).await,
            Ok(Ok(()))
        ) {
            tracing::debug!("could not preload the Lua scripts; they load on first use");
        }
        Ok(Self {
            client: None,
            tls_ca_pem: tls_ca_pem.map(<[u8]>::to_vec),
            manager,
            timeout,
            wait_replicas: 0,
        })
    }

    /// Acknowledge revoking writes only once `n` replicas have them.
    pub(crate) fn with_wait_replicas(mut self, n: u32) -> Self {
        self.wait_replicas = n;
        self
    }

    /// Where the near-cache's channel connects: the single server, or the
    /// master Sentinel names (followed across failovers); `None` on a
    /// cluster.
    pub(crate) fn tracking_target(&self) -> Option<TrackingTarget> {
        match (&self.manager, &self.client) {
            (Link::Single(_), Some(client)) => Some(TrackingTarget::Fixed(Box::new(
                client.get_connection_info().clone(),
            ))),
            (Link::Sentinel(link), _) => Some(TrackingTarget::Sentinel(link.clone())),
            _ => None,
        }
    }

    /// The CA certificates trusted for TLS instead of the system's roots.
    pub(crate) fn tls_ca_pem(&self) -> Option<&[u8]> {
        self.tls_ca_pem.as_deref()
    }

    /// The per-call bound.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Run `script`: EVALSHA, or EVAL if the server does not have it (which
    /// also caches it there).
    pub(crate) async fn eval(
        &self,
        script: &LuaScript,
        keys: &[String],
        args: &[Vec<u8>],
        retry: Retry,
    ) -> Result<Value, StoreError> {
        let attempt = || async {
            let mut conn = self.manager.clone();
            let mut evalsha = redis::cmd("EVALSHA");
            evalsha
                .arg(&script.hash)
                .arg(keys.len())
                .arg(keys)
                .arg(args);
            match evalsha.query_async::<Value>(&mut conn).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    let mut eval = redis::cmd("EVAL");
                    eval.arg(script.code).arg(keys.len()).arg(keys).arg(args);
                    eval.query_async::<Value>(&mut conn).await
                }
                other => other,
            }
        };
        self.call(script.name, retry, attempt)
            .await
            .map_err(|e| match e {
                StoreError::Unavailable(m) => StoreError::Unavailable(script.locate(&m)),
                StoreError::Corrupt(m) => StoreError::Corrupt(script.locate(&m)),
                other => other,
            })
    }

    /// [`Connection::eval`] of a write that revokes (a session, a user's
    /// sessions, a token by rotation or refresh): with `wait_replicas` set,
    /// `WAIT` follows the script in the same round trip, on the same node,
    /// and the write is acknowledged only once that many replicas have it;
    /// otherwise [`StoreError::Unavailable`] (applied on the master, maybe
    /// not on a replica that a failover would promote: the caller retries,
    /// revoking is idempotent).
    pub(crate) async fn eval_revoking(
        &self,
        script: &LuaScript,
        keys: &[String],
        args: &[Vec<u8>],
    ) -> Result<Value, StoreError> {
        if self.wait_replicas == 0 {
            return self.eval(script, keys, args, Retry::Never).await;
        }
        // WAIT gets half the call's budget, so its own answer comes back.
        let wait_ms = u64::try_from((self.timeout / 2).as_millis()).unwrap_or(u64::MAX);
        let attempt = || async {
            let mut conn = self.manager.clone();
            let mut pipe = redis::pipe();
            pipe.cmd("EVALSHA")
                .arg(&script.hash)
                .arg(keys.len())
                .arg(keys)
                .arg(args)
                .cmd("WAIT")
                .arg(self.wait_replicas)
                .arg(wait_ms);
            match pipe.query_async::<Vec<Value>>(&mut conn).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    let mut pipe = redis::pipe();
                    pipe.cmd("EVAL")
                        .arg(script.code)
                        .arg(keys.len())
                        .arg(keys)
                        .arg(args)
                        .cmd("WAIT")
                        .arg(self.wait_replicas)
                        .arg(wait_ms);
                    pipe.query_async::<Vec<Value>>(&mut conn).await
                }
                other => other,
            }
            .map(Value::Array)
        };
        let reply = self
            .call(script.name, Retry::Never, attempt)
            .await
            .map_err(|e| match e {
                StoreError::Unavailable(m) => StoreError::Unavailable(script.locate(&m)),
                StoreError::Corrupt(m) => StoreError::Corrupt(script.locate(&m)),
                other => other,
            })?;
        let Value::Array(mut replies) = reply else {
            return Err(StoreError::Corrupt(
                "unexpected reply to a script and WAIT".into(),
            ));
        };
        let acked = match replies.pop() {
            Some(Value::Int(n)) => n,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unexpected reply to WAIT: {other:?}"
                )));
            }
        };
        let result = replies
            .pop()
            .ok_or_else(|| StoreError::Corrupt("no reply to the script".into()))?;
        if acked < i64::from(self.wait_replicas) {
            return Err(StoreError::Unavailable(format!(
                "{}: applied on the master but confirmed by {acked} of {} replicas within {wait_ms} ms; retry",
                script.name, self.wait_replicas
            )));
        }
        Ok(result)
    }

    /// Count the keys matching `pattern`, one SCAN page (1000 keys) per
    /// round trip, each within the timeout. Cost grows with the keyspace: for
    /// statistics, not for request paths.
    pub(crate) async fn count_keys(&self, pattern: &str) -> Result<u64, StoreError> {
        let Link::Cluster(cluster) = &self.manager else {
            return self.count_keys_on(pattern, None).await;
        };
        // On a cluster, every master is scanned (replicas hold copies).
        let attempt = || async {
            let mut conn = cluster.clone();
            conn.route_command(
                redis::cmd("CLUSTER").arg("SHARDS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await
        };
        let shards = self.call("cluster shards", Retry::Once, attempt).await?;
        let masters: Vec<(String, u16)> = shard_nodes(&shards)?
            .into_iter()
            .filter(|n| n.role == "master" && n.health != "fail")
            .map(|n| (n.host, n.port))
            .collect();
        let mut total = 0;
        for (host, port) in masters {
            total += self.count_keys_on(pattern, Some((host, port))).await?;
        }
        Ok(total)
    }

    /// [`Connection::count_keys`] on one node (`None`: the single server).
    async fn count_keys_on(
        &self,
        pattern: &str,
        node: Option<(String, u16)>,
    ) -> Result<u64, StoreError> {
        let mut cursor = 0u64;
        let mut total = 0u64;
        loop {
            let attempt = || async {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000);
                match (&self.manager, &node) {
                    (Link::Cluster(c), Some((host, port))) => {
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        });
                        c.clone().route_command(scan, routing).await
                    }
                    _ => scan.query_async::<Value>(&mut self.manager.clone()).await,
                }
            };
            let page = self.call("scan", Retry::Once, attempt).await?;
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::from_redis_value(page)
                .map_err(|e| StoreError::Corrupt(format!("unexpected SCAN reply: {e}")))?;
            total += keys.len() as u64;
            if next == 0 {
                return Ok(total);
            }
            cursor = next;
        }
    }

    /// GET `key`: its bytes, or `None` if it does not exist. A plain read,
    /// retried once on a dropped connection.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let attempt = || async {
            let mut conn = self.manager.clone();
            redis::cmd("GET")
                .arg(key)
                .query_async::<Value>(&mut conn)
                .await
        };
        match self.call("get", Retry::Once, attempt).await? {
            Value::Nil => Ok(None),
            Value::BulkString(bytes) => Ok(Some(bytes)),
            other => Err(StoreError::Corrupt(format!(
                "unexpected reply to GET: {other:?}"
            ))),
        }
    }

    /// The nodes of the cluster and their state (empty for one server).
    pub(crate) async fn nodes(&self) -> Result<Vec<ShardNode>, StoreError> {
        let Link::Cluster(cluster) = &self.manager else {
            return Ok(Vec::new());
        };
        let attempt = || async {
            let mut conn = cluster.clone();
            conn.route_command(
                redis::cmd("CLUSTER").arg("SHARDS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await
        };
        let shards = self.call("cluster shards", Retry::Once, attempt).await?;
        shard_nodes(&shards)
    }

    /// PING.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        let attempt = || async {
            let mut conn = self.manager.clone();
            redis::cmd("PING").query_async::<Value>(&mut conn).await
        };
        self.call("ping", Retry::Once, attempt).await.map(drop)
    }

    /// Run `attempt` (twice at most, per `retry`) within the deadline.
    async fn call<F, Fut>(&self, what: &str, retry: Retry, attempt: F) -> Result<Value, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Value, RedisError>>,
    {
        let run = async {
            match attempt().await {
                Err(e) if retry == Retry::Once && is_connection_error(&e) => {
                    tracing::debug!(op = what, error = %e, "connection dropped; retrying once");
                    attempt().await
                }
                other => other,
            }
        };
        let result = within(self.timeout, run).await?;
        result.map_err(|e| {
            let mapped = map_error(e);
            tracing::debug!(op = what, error = %mapped, "redis call failed");
            mapped
        })
    }
}

/// Where the near-cache's channel connects.
#[derive(Clone)]
pub(crate) enum TrackingTarget {
    /// One server.
    Fixed(Box<redis::ConnectionInfo>),
    /// Whichever server the sentinels name master now.
    Sentinel(SentinelLink),
}

/// What a Sentinel URL names.
struct SentinelTarget {
    sentinels: Vec<String>,
    master: String,
    tls: bool,
    credentials: Option<String>,
    db: i64,
}

/// A node of a `CLUSTER SHARDS` reply.
pub(crate) struct ShardNode {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `master` or `replica`.
    pub(crate) role: String,
    /// `online`, `fail` or `loading`.
    pub(crate) health: String,
    /// Index of its shard in the reply.
    pub(crate) shard: u32,
    /// Whether its shard owns slots.
    pub(crate) has_slots: bool,
}

/// Every node of a `CLUSTER SHARDS` reply.
fn shard_nodes(reply: &Value) -> Result<Vec<ShardNode>, StoreError> {
    let corrupt = || StoreError::Corrupt("unexpected CLUSTER SHARDS reply".into());
    let text = |v: &Value| -> Option<String> {
        match v {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        }
    };
    // A reply's maps come as flat key/value arrays (RESP2) or as maps (RESP3).
    let pairs = |v: &Value| -> Option<Vec<(String, Value)>> {
        match v {
            Value::Array(items) => items
                .chunks(2)
                .map(|kv| match kv {
                    [k, v] => Some((text(k)?, v.clone())),
                    _ => None,
                })
                .collect(),
            Value::Map(items) => items
                .iter()
                .map(|(k, v)| Some((text(k)?, v.clone())))
                .collect(),
            _ => None,
        }
    };
    let Value::Array(shards) = reply else {
        return Err(corrupt());
    };
    let mut found = Vec::new();
    for (index, shard) in (0u32..).zip(shards) {
        let fields = pairs(shard).ok_or_else(corrupt)?;
        let Some((_, Value::Array(nodes))) = fields.iter().find(|(k, _)| k == "nodes") else {
            return Err(corrupt());
        };
        let has_slots = matches!(
            fields.iter().find(|(k, _)| k == "slots"),
            Some((_, Value::Array(slots))) if !slots.is_empty()
        );
        for node in nodes {
            let node = pairs(node).ok_or_else(corrupt)?;
            let get = |key: &str| node.iter().find(|(k, _)| k == key).map(|(_, v)| v);
            let role = get("role").and_then(text).ok_or_else(corrupt)?;
            let health = get("health").and_then(text).unwrap_or_default();
            let host = get("endpoint")
                .and_then(text)
                .filter(|h| !h.is_empty() && h != "?")
                .or_else(|| get("ip").and_then(text))
                .ok_or_else(corrupt)?;
            let port = match get("port") {
                Some(Value::Int(p)) => u16::try_from(*p).map_err(|_| corrupt())?,
                _ => return Err(corrupt()),
            };
            found.push(ShardNode {
                host,
                port,
                role,
                health,
                shard: index,
                has_slots,
            });
        }
    }
    Ok(found)
}

/// `fut`, or [`StoreError::Unavailable`] once `limit` has passed.
async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> Result<T, StoreError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| StoreError::Unavailable(format!("no answer from redis within {limit:?}")))
}

/// Whether `e` means the connection itself failed (so a retry goes out on a
/// fresh one).
pub(crate) fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Map a redis error: a record of the wrong type is corrupt; everything else
/// (I/O, timeouts, cluster or replica trouble, a server refusing work) means
/// the store cannot serve the call right now.
pub(crate) fn map_error(e: RedisError) -> StoreError {
    if e.code() == Some("WRONGTYPE") || e.to_string().contains("WRONGTYPE") {
        return StoreError::Corrupt(format!("a key holds the wrong type: {e}"));
    }
    unavailable(e)
}

/// A client for `url`; TLS settings apply to `rediss://` only.
fn client(url: &str, tls_ca_pem: Option<&[u8]>) -> Result<redis::Client, StoreError> {
    let invalid = |e: RedisError| StoreError::Unavailable(format!("invalid redis url: {e}"));
    let is_tls = url
        .get(..9)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"));
    if !is_tls {
        return redis::Client::open(url).map_err(invalid);
    }
    // The crypto provider of the TLS stack; an error only means one is
    // installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match tls_ca_pem {
        None => redis::Client::open(url).map_err(invalid),
        Some(pem) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        )
        .map_err(|e| StoreError::Unavailable(format!("redis TLS settings: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_unavailable_and_retried() {
        let e = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_connection_error(&e));
        assert!(matches!(map_error(e), StoreError::Unavailable(_)));
        let e = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(map_error(e), StoreError::Unavailable(_)));
    }

    #[tokio::test]
    async fn connect_to_nothing_fails_within_the_timeout() {
        // Port 1 on localhost: nothing listens there.
        let started = std::time::Instant::now();
        let result = Connection::open(
            "redis://127.0.0.1:1/",
            Duration::from_millis(300),
            None,
            &[],
        )
        .await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))));
        assert!(started.elapsed() < Duration::from_millis(800));
        assert!(matches!(
            Connection::open("not a url", Duration::from_millis(300), None, &[]).await,
            Err(StoreError::Unavailable(_))
        ));
    }
}
