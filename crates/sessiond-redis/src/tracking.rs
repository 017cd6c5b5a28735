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
//! dropped (with the cache) whenever the store's master connection is.
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

use crate::channel_socket::{self, Probe, SocketState};
use crate::connection::{TrackingTarget, is_connection_error, map_error};

/// The channel's name in `CLIENT LIST`.
pub const CONNECTION_NAME: &str = "sessiond-near-cache";

/// First delay before reconnecting; doubles up to [`MAX_DELAY`].
const MIN_DELAY: Duration = Duration::from_millis(25);
const MAX_DELAY: Duration = Duration::from_millis(500);
/// Delay after the server refused RESP3 or tracking (Redis before 6).
const REFUSED_DELAY: Duration = Duration::from_secs(30);

/// The running channel. Dropping it stops it.
pub(crate) struct Tracking {
    current: Arc<RwLock<Option<Live>>>,
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
}

impl Target {
    /// The server to connect to now, spoken to in RESP3.
    async fn info(&self) -> Result<ConnectionInfo, RedisError> {
        let info = match &self.server {
            TrackingTarget::Fixed(info) => (**info).clone(),
            TrackingTarget::Sentinel(link) => link.master_info().await?,
        };
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        Ok(info.set_redis_settings(resp3))
    }

    /// Changes when the server to connect to may have changed.
    fn switches(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        match &self.server {
            TrackingTarget::Fixed(_) => None,
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
    ) -> Self {
        let target = Target {
            server,
            tls_ca_pem: tls_ca_pem.map(<[u8]>::to_vec),
            timeout,
        };
        let current = Arc::new(RwLock::new(None));
        let supervisor = tokio::spawn(supervise(target, cache.clone(), current.clone()));
        Self {
            current,
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
        let Some(live) = current.as_ref() else {
            return false;
        };
        if live.outdated() {
            self.cache.channel_lost();
            live.lost.notify_one();
            return false;
        }
        match live.probe.state() {
            SocketState::Quiet => true,
            SocketState::Busy => false,
            SocketState::Closed => {
                self.cache.channel_lost();
                live.lost.notify_one();
                false
            }
        }
    }

    /// GET `key` over the channel, so its next change is reported. `None`
    /// when the channel is not up or its connection just failed (read
    /// around it then).
    pub(crate) async fn get(&self, key: &str) -> Option<Result<Option<Vec<u8>>, StoreError>> {
        let mut conn = {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            let live = current.as_ref()?;
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
async fn supervise(target: Target, cache: Arc<NearCache>, current: Arc<RwLock<Option<Live>>>) {
    let mut delay = MIN_DELAY;
    let mut failing = false;
    loop {
        let wait = match establish(&target, &cache).await {
            Ok((live, proven)) => {
                if failing {
                    tracing::info!("near-cache invalidation channel open again");
                    failing = false;
                }
                let (mut conn, lost) = (live.conn.clone(), live.lost.clone());
                let switches = live.switches.as_ref().map(|(rx, _)| rx.clone());
                *current.write().unwrap_or_else(PoisonError::into_inner) = Some(live);
                cache.channel_up(proven);
                heartbeat(&mut conn, target.timeout, &cache, &lost, switches).await;
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

/// Connect, name the connection, turn tracking on and prove it with a round
/// trip (returning when that was sent).
async fn establish(target: &Target, cache: &Arc<NearCache>) -> Result<(Live, Instant), RedisError> {
    let lost = Arc::new(Notify::new());
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(target.timeout))
        .set_response_timeout(Some(target.timeout))
        .set_push_sender(Pushes {
            cache: cache.clone(),
            lost: lost.clone(),
        });
    // Subscribed before the server is resolved: a switch after this point
    // is noticed.
    let switches = target.switches().map(|mut rx| {
        let seen = *rx.borrow_and_update();
        (rx, seen)
    });
    let run = async {
        let info = target.info().await?;
        let dialed =
            channel_socket::dial(&info, target.tls_ca_pem.as_deref(), target.timeout).await?;
        let (mut conn, driver) =
            MultiplexedConnection::new_with_config(info.redis_settings(), dialed.stream, config)
                .await?;
        let driver = tokio::spawn(driver);
        let mut setup = redis::pipe();
        setup
            .cmd("CLIENT")
            .arg("SETNAME")
            .arg(CONNECTION_NAME)
            .ignore()
            .cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .ignore();
        let live = Live {
            conn: conn.clone(),
            probe: dialed.probe,
            lost,
            driver,
            switches: switches.clone(),
        };
        setup.exec_async(&mut conn).await?;
        let sent = Instant::now();
        redis::cmd("PING").exec_async(&mut conn).await?;
        Ok((live, sent))
    };
    tokio::time::timeout(target.timeout, run)
        .await
        .unwrap_or_else(|_| {
            Err(RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))
        })
}

/// Prove the channel every [`NearCache::CONFIRM_INTERVAL`] until it fails.
async fn heartbeat(
    conn: &mut MultiplexedConnection,
    timeout: Duration,
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
    loop {
        tokio::select! {
            () = lost.notified() => return,
            () = &mut switched => return,
            () = tokio::time::sleep(NearCache::CONFIRM_INTERVAL) => {}
        }
        let sent = Instant::now();
        let ping = redis::cmd("PING");
        let ping = ping.exec_async(conn);
        match tokio::time::timeout(timeout, ping).await {
            Ok(Ok(())) => cache.confirm(sent),
            _ => return,
        }
    }
}
