//! The connection to Redis: a self-reconnecting `ConnectionManager` to one
//! server, or a cluster connection (slots followed through MOVED/ASK, nodes
//! reconnected by itself); a deadline on every call, one retry of idempotent
//! calls after a dropped connection, and the mapping of redis errors onto
//! [`StoreError`].

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
};
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};
use sessiond_engine::StoreError;

use crate::clients::client_for;
use crate::errors::{is_connection_error, map_error, unavailable};
use crate::scripts::LuaScript;
use crate::sentinel_link::{SentinelLink, SentinelTarget};
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

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel(s) => s.req_packed_command(cmd),
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
            Self::Sentinel(s) => s.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel(s) => s.get_db(),
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
    /// On a cluster: a seed node's URL (its scheme and credentials serve
    /// for every node).
    cluster_seed: Option<String>,
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
        let manager = tokio::time::timeout_at(
            deadline,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!("could not connect to redis within {timeout:?}"))
        })?
        .map_err(unavailable)?;
        let mut conn = Self::assemble(Link::Single(manager), timeout, tls_ca_pem);
        conn.client = Some(client);
        conn.preload(scripts, deadline).await;
        Ok(conn)
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
        let conn = tokio::time::timeout_at(deadline, client.get_async_connection())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "could not connect to the redis cluster within {timeout:?}"
                ))
            })?
            .map_err(unavailable)?;
        let mut conn = Self::assemble(Link::Cluster(conn), timeout, tls_ca_pem);
        conn.cluster_seed = nodes.first().cloned();
        conn.preload(scripts, deadline).await;
        Ok(conn)
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
        let master = target.master.clone();
        let link = SentinelLink::new(target, tls_ca_pem, timeout);
        tokio::time::timeout_at(deadline, link.master())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "no master {master:?} found through the sentinels within {timeout:?}"
                ))
            })?
            .map_err(unavailable)?;
        let conn = Self::assemble(Link::Sentinel(link), timeout, tls_ca_pem);
        conn.preload(scripts, deadline).await;
        Ok(conn)
    }

    /// A connection over `link` with the defaults of every deployment.
    fn assemble(link: Link, timeout: Duration, tls_ca_pem: Option<&[u8]>) -> Self {
        Self {
            client: None,
            tls_ca_pem: tls_ca_pem.map(<[u8]>::to_vec),
            manager: link,
            timeout,
            wait_replicas: 0,
            cluster_seed: None,
        }
    }

    /// Load `scripts` (on every master of a cluster) before `deadline`, so
    /// the first call of each is one EVALSHA. Best effort: the EVAL fallback
    /// covers a server that refuses it or forgets the scripts.
    async fn preload(&self, scripts: &[&LuaScript], deadline: tokio::time::Instant) {
        let loaded = match &self.manager {
            Link::Cluster(cluster) => {
                let mut all = true;
                for s in scripts {
                    let mut load = redis::cmd("SCRIPT");
                    load.arg("LOAD").arg(s.code);
                    let routing = RoutingInfo::MultiNode((
                        MultipleNodeRoutingInfo::AllMasters,
                        Some(ResponsePolicy::AllSucceeded),
                    ));
                    let mut conn = cluster.clone();
                    let sent = conn.route_command(load, routing);
                    all &= matches!(tokio::time::timeout_at(deadline, sent).await, Ok(Ok(_)));
                }
                all
            }
            link => {
                let mut load = redis::pipe();
                for s in scripts {
                    load.cmd("SCRIPT").arg("LOAD").arg(s.code).ignore();
                }
                let mut conn = link.clone();
                let sent = load.exec_async(&mut conn);
                matches!(tokio::time::timeout_at(deadline, sent).await, Ok(Ok(())))
            }
        };
        if !loaded {
            tracing::debug!("could not preload the Lua scripts; they load on first use");
        }
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
            (Link::Cluster(_), _) => Some(TrackingTarget::Cluster(Box::new(ClusterNodes {
                conn: self.clone(),
                seed: self.cluster_seed.clone().unwrap_or_default(),
            }))),
            (Link::Single(_), None) => None,
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

    /// Run `pipes` concurrently, each a few commands on the keys of one hash
    /// slot, within one deadline; their replies, in order. Retried once
    /// after a dropped connection: for reads and idempotent writes only.
    pub(crate) async fn pipelines(
        &self,
        what: &str,
        pipes: &[Pipeline],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        // On a cluster, a few at a time and none after a failure: calls
        // queued for a node that is down keep its client retrying and
        // refreshing the slot map, which holds up every other call.
        let at_once = match self.manager {
            Link::Cluster(_) => PIPELINES_AT_ONCE_ON_A_CLUSTER,
            _ => pipes.len().max(1),
        };
        let attempt = || async {
            let mut replies = Vec::with_capacity(pipes.len());
            for chunk in pipes.chunks(at_once) {
                let runs = chunk.iter().map(|pipe| {
                    let mut conn = self.manager.clone();
                    async move { pipe.query_async::<Vec<Value>>(&mut conn).await }
                });
                let done = futures_util::future::try_join_all(runs).await?;
                replies.extend(done.into_iter().map(Value::Array));
            }
            Ok(Value::Array(replies))
        };
        let reply = self.call(what, Retry::Once, attempt).await?;
        let Value::Array(replies) = reply else {
            return Err(StoreError::Corrupt(format!("{what}: unexpected reply")));
        };
        Ok(replies
            .into_iter()
            .map(|r| match r {
                Value::Array(items) => items,
                other => vec![other],
            })
            .collect())
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

/// Pipelines [`Connection::pipelines`] sends at once on a cluster.
const PIPELINES_AT_ONCE_ON_A_CLUSTER: usize = 16;

/// Where the near-cache's channel connects.
#[derive(Clone)]
pub(crate) enum TrackingTarget {
    /// One server.
    Fixed(Box<redis::ConnectionInfo>),
    /// Whichever server the sentinels name master now.
    Sentinel(SentinelLink),
    /// Every master of a cluster.
    Cluster(Box<ClusterNodes>),
}

/// The masters of a cluster, for the near-cache's channel.
#[derive(Clone)]
pub(crate) struct ClusterNodes {
    conn: Connection,
    seed: String,
}

impl ClusterNodes {
    /// Each online master that serves slots: its `host:port` and how to
    /// connect to it (the seed's scheme, credentials and TLS settings).
    pub(crate) async fn masters(&self) -> RedisResult<Vec<(String, redis::ConnectionInfo)>> {
        let nodes = self
            .conn
            .nodes()
            .await
            .map_err(|e| RedisError::from(std::io::Error::other(e.to_string())))?;
        let (scheme, rest) = self.seed.split_once("://").unwrap_or(("redis", ""));
        let auth = rest
            .split('/')
            .next()
            .and_then(|authority| authority.rsplit_once('@'))
            .map(|(auth, _)| format!("{auth}@"))
            .unwrap_or_default();
        let mut masters = Vec::new();
        for n in nodes {
            if n.role != "master" || n.health != "online" || !n.has_slots {
                continue;
            }
            let host = if n.host.contains(':') {
                format!("[{}]", n.host)
            } else {
                n.host.clone()
            };
            let url = format!("{scheme}://{auth}{host}:{}/", n.port);
            let client = client_for(&url, self.conn.tls_ca_pem())?;
            masters.push((
                format!("{}:{}", n.host, n.port),
                client.get_connection_info().clone(),
            ));
        }
        Ok(masters)
    }
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

/// A client for `url` or [`StoreError::Unavailable`]; TLS settings apply
/// to `rediss://` only.
fn client(url: &str, tls_ca_pem: Option<&[u8]>) -> Result<redis::Client, StoreError> {
    client_for(url, tls_ca_pem).map_err(|e| {
        StoreError::Unavailable(if e.kind() == ErrorKind::InvalidClientConfig {
            format!("invalid redis url: {e}")
        } else {
            format!("redis TLS settings: {e}")
        })
    })
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
