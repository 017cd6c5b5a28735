//! The near-cache's invalidation channel on Redis: one dedicated RESP3
//! connection with `CLIENT TRACKING ON`. Records the cache fills are read
//! over it, so Redis reports the next change to each of them on it (an
//! `invalidate` push, handled in the connection's reader before any later
//! reply is delivered). A PING every [`NearCache::CONFIRM_INTERVAL`] proves
//! it; a lost connection drops the whole cache at once (from the reader, on
//! the disconnect it sees) and a supervisor reconnects with backoff.
//!
//! Why not redis-rs's `cache-aio`: it is marked experimental, caches raw
//! replies of any command rather than decoded records, and does not promise
//! to drop the cache before the next hit when the connection is lost, which
//! is the rule this cache lives by.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{AsyncConnectionConfig, ErrorKind, ProtocolVersion, PushInfo, PushKind, Value};
use sessiond_engine::{NearCache, StoreError};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::connection::{is_connection_error, map_error};

/// The channel's name in `CLIENT LIST`.
pub const CONNECTION_NAME: &str = "sessiond-near-cache";

/// First delay before reconnecting; doubles up to [`MAX_DELAY`].
const MIN_DELAY: Duration = Duration::from_millis(25);
const MAX_DELAY: Duration = Duration::from_millis(500);
/// Delay after the server refused RESP3 or tracking (Redis before 6).
const REFUSED_DELAY: Duration = Duration::from_secs(30);

/// The running channel. Dropping it stops it.
pub(crate) struct Tracking {
    current: Arc<RwLock<Option<MultiplexedConnection>>>,
    supervisor: JoinHandle<()>,
    timeout: Duration,
}

impl Drop for Tracking {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}

impl Tracking {
    /// Open the channel of `client` (RESP2 or RESP3; it is switched to
    /// RESP3) reporting into `cache`, in the background.
    pub(crate) fn start(
        client: &redis::Client,
        timeout: Duration,
        cache: Arc<NearCache>,
    ) -> Result<Self, StoreError> {
        let info = client.get_connection_info().clone();
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(resp3))
            .map_err(|e| StoreError::Unavailable(format!("invalid redis url: {e}")))?;
        let current = Arc::new(RwLock::new(None));
        let supervisor = tokio::spawn(supervise(client, timeout, cache, current.clone()));
        Ok(Self {
            current,
            supervisor,
            timeout,
        })
    }

    /// GET `key` over the channel, so its next change is reported. `None`
    /// when the channel is not up or its connection just failed (read
    /// around it then).
    pub(crate) async fn get(&self, key: &str) -> Option<Result<Option<Vec<u8>>, StoreError>> {
        let mut conn = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
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
async fn supervise(
    client: redis::Client,
    timeout: Duration,
    cache: Arc<NearCache>,
    current: Arc<RwLock<Option<MultiplexedConnection>>>,
) {
    let mut delay = MIN_DELAY;
    let mut failing = false;
    loop {
        let lost = Arc::new(Notify::new());
        let wait = match establish(&client, timeout, &cache, &lost).await {
            Ok((mut conn, proven)) => {
                if failing {
                    tracing::info!("near-cache invalidation channel open again");
                    failing = false;
                }
                *current.write().unwrap_or_else(PoisonError::into_inner) = Some(conn.clone());
                cache.channel_up(proven);
                heartbeat(&mut conn, timeout, &cache, &lost).await;
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
                let refused = matches!(
                    e.kind(),
                    ErrorKind::RESP3NotSupported | ErrorKind::Server(_) | ErrorKind::Extension
                );
                let wait = if refused { REFUSED_DELAY } else { delay };
                delay = (delay * 2).min(MAX_DELAY);
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Connect, turn tracking on and prove the connection with a round trip
/// (returning when it was sent).
async fn establish(
    client: &redis::Client,
    timeout: Duration,
    cache: &Arc<NearCache>,
    lost: &Arc<Notify>,
) -> redis::RedisResult<(MultiplexedConnection, Instant)> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_push_sender(Pushes {
            cache: cache.clone(),
            lost: lost.clone(),
        });
    let run = async {
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
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
        setup.exec_async(&mut conn).await?;
        let sent = Instant::now();
        redis::cmd("PING").exec_async(&mut conn).await?;
        Ok((conn, sent))
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::from(
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
) {
    loop {
        tokio::select! {
            () = lost.notified() => return,
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
