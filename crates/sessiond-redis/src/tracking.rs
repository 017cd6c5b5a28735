//! The near-cache's invalidation channel on Redis: one dedicated RESP3
//! connection with `CLIENT TRACKING ON`. Records the cache fills are read
//! over it, so Redis reports the next change to each of them on it (an
//! `invalidate` push, applied in the connection's reader before any later
//! reply is delivered). Before every lookup the socket is probed
//! ([`crate::channel_socket`]): a lookup is served from memory only when
//! nothing has arrived that is not applied yet, and a closed socket drops
//! the cache there and then. A PING every [`NearCache::CONFIRM_INTERVAL`]
//! proves the connection (a silent network or a frozen server stops hits
//! after [`NearCache::LEASE`]); a supervisor reconnects with backoff. Behind
//! Sentinel, the channel connects to whichever server is master and is
//! dropped (with the cache) whenever the store's master connection is. On a
//! Cluster, the channel is one connection per master in broadcasting mode
//! (`BCAST PREFIX` of the record keys: every change to a record is
//! reported, whichever connection read it); losing any of them, or a change
//! in the set of masters, drops the cache.
//!
//! Why not redis-rs's `cache-aio`: it is marked experimental, caches raw
//! replies of any command rather than decoded records, and does not promise
//! to drop the cache before the next hit when the connection is lost, which
//! is the rule this cache lives by.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{
    AsyncConnectionConfig, ConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError, Value,
};
use sessiond_engine::{NearCache, StoreError};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::channel_socket;
use crate::connection::TrackingTarget;
use crate::errors::{is_connection_error, map_error};
use sessiond_engine::near_cache::channel_socket::{Probe, SocketState};

/// The channel's name in `CLIENT LIST`.
pub const CONNECTION_NAME: &str = "sessiond-near-cache";

/// First delay before reconnecting; doubles up to [`MAX_DELAY`].
const MIN_DELAY: Duration = Duration::from_millis(25);
const MAX_DELAY: Duration = Duration::from_millis(500);
/// Delay after the server refused RESP3 or tracking (Redis before 6).
const REFUSED_DELAY: Duration = Duration::from_secs(30);

/// The running channel. Dropping it stops it.
pub(crate) struct Tracking {
    /// The connections of the channel while it is up: one, or one per
    /// cluster master.
    current: Arc<RwLock<Option<Vec<Live>>>>,
    /// Whether reads go over the channel (one server) or around it (a
    /// cluster, where the channel broadcasts).
    tracked_reads: bool,
    cache: Arc<NearCache>,
    supervisor: JoinHandle<()>,
    timeout: Duration,
}

/// One established connection of the channel.
struct Live {
    conn: MultiplexedConnection,
    probe: Probe,
    lost: Arc<Notify>,
    driver: JoinHandle<()>,
    /// Behind Sentinel: the store's master switches, and the count seen
    /// when this connection was made (a later one means it may reach a
    /// server that is no longer the master).
    switches: Option<(tokio::sync::watch::Receiver<u64>, u64)>,
    /// On a cluster, its master's `host:port` (empty otherwise).
    name: String,
}

impl Live {
    /// Whether the master changed since this connection was made.
    fn outdated(&self) -> bool {
        self.switches
            .as_ref()
            .is_some_and(|(rx, seen)| *rx.borrow() != *seen)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Drop for Tracking {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}

/// Where and how to connect.
struct Target {
    server: TrackingTarget,
    tls_ca_pem: Option<Vec<u8>>,
    timeout: Duration,
    /// On a cluster: the prefix of the record keys to broadcast changes of.
    bcast_prefix: Option<String>,
}

impl Target {
    /// The servers to connect to now (named by `host:port`), spoken to in
    /// RESP3.
    async fn servers(&self) -> Result<Vec<(String, ConnectionInfo)>, RedisError> {
        let servers = match &self.server {
            TrackingTarget::Fixed(info) => vec![(String::new(), (**info).clone())],
            TrackingTarget::Sentinel(link) => vec![(String::new(), link.master_info().await?)],
            TrackingTarget::Cluster(cluster) => cluster.masters().await?,
        };
        Ok(servers
            .into_iter()
            .map(|(name, info)| {
                let resp3 = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                (name, info.set_redis_settings(resp3))
            })
            .collect())
    }

    /// Changes when the server to connect to may have changed.
    fn switches(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        match &self.server {
            TrackingTarget::Fixed(_) | TrackingTarget::Cluster(_) => None,
            TrackingTarget::Sentinel(link) => Some(link.switches()),
        }
    }
}

impl Tracking {
    /// Open the channel to `server` (in RESP3) reporting into `cache`, in
    /// the background.
    pub(crate) fn start(
        server: TrackingTarget,
        tls_ca_pem: Option<&[u8]>,
        timeout: Duration,
        cache: Arc<NearCache>,
        record_prefix: &str,
    ) -> Self {
        let bcast_prefix =
            matches!(server, TrackingTarget::Cluster(_)).then(|| record_prefix.to_owned());
        let tracked_reads = bcast_prefix.is_none();
        let target = Target {
            server,
            tls_ca_pem: tls_ca_pem.map(<[u8]>::to_vec),
            timeout,
            bcast_prefix,
        };
        let current = Arc::new(RwLock::new(None));
        let supervisor = tokio::spawn(supervise(target, cache.clone(), current.clone()));
        Self {
            current,
            tracked_reads,
            cache,
            supervisor,
            timeout,
        }
    }

    /// Whether a lookup may be served from memory now: the channel is up and
    /// has nothing arrived that is not applied. A closed socket drops the
    /// cache here.
    pub(crate) fn quiet(&self) -> bool {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let Some(lives) = current.as_ref() else {
            return false;
        };
        let mut quiet = true;
        for live in lives {
            if live.outdated() {
                self.cache.channel_lost();
                live.lost.notify_one();
                return false;
            }
            match live.probe.state() {
                SocketState::Quiet => {}
                SocketState::Busy => quiet = false,
                SocketState::Closed => {
                    self.cache.channel_lost();
                    live.lost.notify_one();
                    return false;
                }
            }
        }
        quiet
    }

    /// Whether every change to a record is reported whichever connection
    /// read it (a cluster's broadcasting channel), so reads need not go over
    /// the channel.
    pub(crate) fn broadcasts(&self) -> bool {
        !self.tracked_reads
    }

    /// GET `key` over the channel, so its next change is reported. `None`
    /// when the channel is not up or its connection just failed (read
    /// around it then).
    pub(crate) async fn get(&self, key: &str) -> Option<Result<Option<Vec<u8>>, StoreError>> {
        if !self.tracked_reads {
            return None;
        }
        let mut conn = {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            let live = current.as_ref()?.first()?;
            // A channel to a server that may no longer be the master: read
            // around it.
            if live.outdated() {
                return None;
            }
            live.conn.clone()
        };
        let mut get = redis::cmd("GET");
        get.arg(key);
        let call = get.query_async::<Value>(&mut conn);
        Some(match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer from redis within {:?}",
                self.timeout
            ))),
            Ok(Err(e)) if is_connection_error(&e) => return None,
            Ok(Err(e)) => Err(map_error(e)),
            Ok(Ok(Value::Nil)) => Ok(None),
            Ok(Ok(Value::BulkString(bytes))) => Ok(Some(bytes)),
            Ok(Ok(other)) => Err(StoreError::Corrupt(format!(
                "unexpected reply to GET: {other:?}"
            ))),
        })
    }

    /// Stop the channel and drop its connection.
    pub(crate) fn stop(&self) {
        self.supervisor.abort();
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = None;
        self.cache.channel_lost();
    }
}

/// Applies Redis's pushes to the cache, in the connection's reader.
struct Pushes {
    cache: Arc<NearCache>,
    lost: Arc<Notify>,
}

impl AsyncPushSender for Pushes {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        match info.kind {
            PushKind::Invalidate => match info.data.first() {
                Some(Value::Array(keys)) => {
                    for key in keys {
                        match key {
                            Value::BulkString(key) => self.cache.invalidate_key(key),
                            Value::SimpleString(key) => self.cache.invalidate_key(key.as_bytes()),
                            // Not a key we can name: drop everything.
                            _ => self.cache.flush(),
                        }
                    }
                }
                // Nil: the database was flushed.
                _ => self.cache.flush(),
            },
            PushKind::Disconnection => {
                self.cache.channel_lost();
                self.lost.notify_one();
            }
            _ => {}
        }
        Ok(())
    }
}

/// Keep the channel up for as long as the task runs.
async fn supervise(target: Target, cache: Arc<NearCache>, current: Arc<RwLock<Option<Vec<Live>>>>) {
    let mut delay = MIN_DELAY;
    let mut failing = false;
    loop {
        let wait = match establish(&target, &cache).await {
            Ok((lives, proven, lost)) => {
                if failing {
                    tracing::info!("near-cache invalidation channel open again");
                    failing = false;
                }
                let conns: Vec<MultiplexedConnection> =
                    lives.iter().map(|l| l.conn.clone()).collect();
                let switches = lives
                    .first()
                    .and_then(|l| l.switches.as_ref())
                    .map(|(rx, _)| rx.clone());
                let names: Vec<String> = lives.iter().map(|l| l.name.clone()).collect();
                *current.write().unwrap_or_else(PoisonError::into_inner) = Some(lives);
                cache.channel_up(proven);
                heartbeat(&target, conns, &names, &cache, &lost, switches).await;
                *current.write().unwrap_or_else(PoisonError::into_inner) = None;
                cache.channel_lost();
                tracing::warn!("near-cache invalidation channel lost: cache dropped, reconnecting");
                delay = MIN_DELAY;
                MIN_DELAY
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot open the near-cache invalidation channel; every introspection reads redis until it opens");
                    failing = true;
                }
                let refused = e.kind() == redis::ErrorKind::RESP3NotSupported
                    || matches!(
                        e.kind(),
                        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
                    );
                let wait = if refused { REFUSED_DELAY } else { delay };
                delay = (delay * 2).min(MAX_DELAY);
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Connect to every server of the target, name each connection, turn
/// tracking on and prove it with a round trip; returns the connections, the
/// earliest time a proving round trip was sent, and the notice of any
/// connection's loss.
async fn establish(
    target: &Target,
    cache: &Arc<NearCache>,
) -> Result<(Vec<Live>, Instant, Arc<Notify>), RedisError> {
    let lost = Arc::new(Notify::new());
    // Subscribed before the server is resolved: a switch after this point
    // is noticed.
    let switches = target.switches().map(|mut rx| {
        let seen = *rx.borrow_and_update();
        (rx, seen)
    });
    let run = async {
        let servers = target.servers().await?;
        if servers.is_empty() {
            return Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no server to track",
            )));
        }
        let mut lives = Vec::with_capacity(servers.len());
        let mut proven: Option<Instant> = None;
        for (name, info) in servers {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(target.timeout))
                .set_response_timeout(Some(target.timeout))
                .set_push_sender(Pushes {
                    cache: cache.clone(),
                    lost: lost.clone(),
                });
            let dialed =
                channel_socket::dial(&info, target.tls_ca_pem.as_deref(), target.timeout).await?;
            let (mut conn, driver) = MultiplexedConnection::new_with_config(
                info.redis_settings(),
                dialed.stream,
                config,
            )
            .await?;
            let driver = tokio::spawn(driver);
            let mut setup = redis::pipe();
            setup
                .cmd("CLIENT")
                .arg("SETNAME")
                .arg(CONNECTION_NAME)
                .ignore();
            let tracking = setup.cmd("CLIENT").arg("TRACKING").arg("ON");
            if let Some(prefix) = &target.bcast_prefix {
                tracking.arg("BCAST").arg("PREFIX").arg(prefix);
            }
            tracking.ignore();
            let live = Live {
                conn: conn.clone(),
                probe: dialed.probe,
                lost: lost.clone(),
                driver,
                switches: switches.clone(),
                name,
            };
            setup.exec_async(&mut conn).await?;
            let sent = Instant::now();
            redis::cmd("PING").exec_async(&mut conn).await?;
            proven = Some(proven.map_or(sent, |p| p.min(sent)));
            lives.push(live);
        }
        Ok((lives, proven.unwrap_or_else(Instant::now), lost.clone()))
    };
    tokio::time::timeout(target.timeout, run)
        .await
        .unwrap_or_else(|_| {
            Err(RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))
        })
}

/// How many heartbeats between checks that a cluster's masters are still
/// the ones the channel tracks.
const TOPOLOGY_EVERY: u32 = 10;

/// Prove the channel every [`NearCache::CONFIRM_INTERVAL`] until it fails
/// (any connection), the store's master switches (Sentinel), or the set of
/// masters changes (Cluster).
async fn heartbeat(
    target: &Target,
    mut conns: Vec<MultiplexedConnection>,
    names: &[String],
    cache: &NearCache,
    lost: &Notify,
    mut switches: Option<tokio::sync::watch::Receiver<u64>>,
) {
    let switched = async move {
        match switches.as_mut() {
            // The store's master connection was dropped: follow it.
            Some(rx) => drop(rx.changed().await),
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(switched);
    let mut beats = 0u32;
    loop {
        tokio::select! {
            () = lost.notified() => return,
            () = &mut switched => return,
            () = tokio::time::sleep(NearCache::CONFIRM_INTERVAL) => {}
        }
        let sent = Instant::now();
        for conn in &mut conns {
            let ping = redis::cmd("PING");
            let ping = ping.exec_async(conn);
            if !matches!(tokio::time::timeout(target.timeout, ping).await, Ok(Ok(()))) {
                return;
            }
        }
        cache.confirm(sent);
        beats += 1;
        if let TrackingTarget::Cluster(cluster) = &target.server
            && beats.is_multiple_of(TOPOLOGY_EVERY)
        {
            match cluster.masters().await {
                Ok(masters) => {
                    let mut now: Vec<&str> = masters.iter().map(|(n, _)| n.as_str()).collect();
                    let mut tracked: Vec<&str> = names.iter().map(String::as_str).collect();
                    now.sort_unstable();
                    tracked.sort_unstable();
                    if now != tracked {
                        tracing::info!(
                            "the cluster's masters changed; re-opening the near-cache channel"
                        );
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }
}
