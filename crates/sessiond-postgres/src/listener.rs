//! The near-cache's invalidation channel: a connection of its own that
//! `LISTEN`s on the schema's channel, where every change sends the hex of
//! the changed record's token hash, and does nothing else (only
//! notifications flow on it). It is proven every
//! [`NearCache::CONFIRM_INTERVAL`] by a notification to a private channel of
//! its own, sent through the pool: notifications arrive in commit order, so
//! when that one arrives, every change committed before it was sent has been
//! applied. Its socket is dialed here and peeked before every hit, so a
//! change that has reached this host is never outrun by a lookup. Losing the
//! connection drops the whole cache first, then reconnects.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use sessiond_engine::NearCache;
use sessiond_engine::near_cache::channel_socket::{
    Dialed, Probe, SocketState, Stream, Watched, probed_tcp, watched,
};
use tokio::net::UnixStream;
use tokio::task::JoinHandle;
use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Connection};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Pause before reconnecting after a loss, doubling up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The probe of the connection that listens now, if one does.
type Current = Arc<RwLock<Option<Probe>>>;

/// A running channel; stops when dropped.
pub(crate) struct Listener {
    task: JoinHandle<()>,
    current: Current,
    cache: Arc<NearCache>,
}

impl Listener {
    /// Start listening on `channel` with its own connection.
    pub(crate) fn start(
        pool: Pool,
        config: tokio_postgres::Config,
        tls: MakeRustlsConnect,
        channel: String,
        timeout: Duration,
        cache: Arc<NearCache>,
    ) -> Self {
        let current: Current = Arc::default();
        let task = {
            let (current, cache) = (current.clone(), cache.clone());
            tokio::spawn(async move {
                let mut backoff = MIN_BACKOFF;
                loop {
                    let started = Instant::now();
                    let why =
                        listen(&pool, &config, &tls, &channel, timeout, &cache, &current).await;
                    // Before anything else: no hit is served from here on.
                    lost(&current, &cache);
                    tracing::warn!(reason = %why, "near-cache invalidation channel lost; cache dropped");
                    if started.elapsed() > MAX_BACKOFF * 2 {
                        backoff = MIN_BACKOFF;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            })
        };
        Self {
            task,
            current,
            cache,
        }
    }

    /// Whether a hit may be served now: a connection listens, and nothing
    /// has arrived on it that is not applied (its socket is peeked). A
    /// closed socket drops the cache here.
    pub(crate) fn quiet(&self) -> bool {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let Some(probe) = current.as_ref() else {
            return false;
        };
        match probe.state() {
            SocketState::Quiet => true,
            SocketState::Busy => false,
            SocketState::Closed => {
                drop(current);
                lost(&self.current, &self.cache);
                false
            }
        }
    }
}

/// The listening connection is gone: forget its probe, drop the cache.
fn lost(current: &Current, cache: &NearCache) {
    // Under the probe's lock, so no lookup sees the old probe afterwards.
    let mut probe = current.write().unwrap_or_else(PoisonError::into_inner);
    *probe = None;
    cache.channel_lost();
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Dial the first host of `config` that answers, on a socket of our own
/// (so it can be peeked), and connect over it.
async fn connect(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
) -> Result<
    (
        tokio_postgres::Client,
        Connection<
            Watched<Box<dyn Stream>>,
            <MakeRustlsConnect as MakeTlsConnect<Watched<Box<dyn Stream>>>>::Stream,
        >,
        Probe,
    ),
    String,
> {
    let ports = config.get_ports();
    let mut last = "no host to connect to".to_owned();
    for (i, host) in config.get_hosts().iter().enumerate() {
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let (dialed, name) = match host {
            Host::Tcp(name) => match probed_tcp(name.clone(), port).await {
                Ok((tcp, socket)) => (watched(Box::new(tcp), socket), name.clone()),
                Err(e) => {
                    last = format!("cannot connect to {name}:{port}: {e}");
                    continue;
                }
            },
            Host::Unix(dir) => {
                let path = dir.join(format!(".s.PGSQL.{port}"));
                match unix_socket(&path).await {
                    Ok((unix, socket)) => (watched(Box::new(unix), socket), "localhost".to_owned()),
                    Err(e) => {
                        last = format!("cannot connect to {}: {e}", path.display());
                        continue;
                    }
                }
            }
        };
        let Dialed { stream, probe } = dialed;
        let mut make = tls.clone();
        let tls_connect =
            MakeTlsConnect::<Watched<Box<dyn Stream>>>::make_tls_connect(&mut make, &name)
                .map_err(|e| format!("TLS for {name}: {e}"))?;
        // Boxed with its `Send` bound stated: the compiler cannot prove it
        // for the spawned loop through the client library's generic future.
        let connecting: Pin<
            Box<dyn Future<Output = Result<_, tokio_postgres::Error>> + Send + '_>,
        > = Box::pin(config.connect_raw(stream, tls_connect));
        match connecting.await {
            Ok((client, connection)) => return Ok((client, connection, probe)),
            Err(e) => last = format!("cannot connect to {name}: {e}"),
        }
    }
    Err(last)
}

async fn unix_socket(path: &std::path::Path) -> std::io::Result<(UnixStream, socket2::Socket)> {
    let unix = UnixStream::connect(path).await?;
    let std = unix.into_std()?;
    let socket = socket2::Socket::from(std.try_clone()?);
    Ok((UnixStream::from_std(std)?, socket))
}

/// One connection's life: listen, confirm, apply; returns why it ended.
async fn listen(
    pool: &Pool,
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    channel: &str,
    timeout: Duration,
    cache: &Arc<NearCache>,
    current: &Current,
) -> String {
    let (client, mut connection, probe) =
        match tokio::time::timeout(timeout, connect(config, tls)).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return e,
            Err(_) => return "connecting timed out".to_owned(),
        };
    let mut probe = Some(probe);
    let ping_channel = format!("{channel}_ping_{}", random_suffix());
    // Pings in flight: number and when it was sent.
    let sent: Arc<Mutex<VecDeque<(u64, Instant)>>> = Arc::default();
    let (lost_tx, mut lost_rx) = tokio::sync::oneshot::channel::<String>();
    let driver = {
        let cache = cache.clone();
        let sent = sent.clone();
        let channel = channel.to_owned();
        let ping_channel = ping_channel.clone();
        let current = current.clone();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            let why = loop {
                match messages.next().await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if n.channel() == channel {
                            apply(&cache, n.payload());
                        } else if n.channel() == ping_channel {
                            let at = confirmed(&sent, n.payload());
                            if let Some(at) = at {
                                if let Some(probe) = probe.take() {
                                    // Listening and proven: lookups may peek it.
                                    *current.write().unwrap_or_else(PoisonError::into_inner) =
                                        Some(probe);
                                }
                                cache.channel_up(at);
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break format!("connection failed: {e}"),
                    None => break "connection closed".to_owned(),
                }
            };
            // Before anything else: no hit is served from here on.
            lost(&current, &cache);
            let _ = lost_tx.send(why);
        })
    };
    let listen = format!("LISTEN \"{channel}\"; LISTEN \"{ping_channel}\"");
    let why = match tokio::time::timeout(timeout, client.batch_execute(&listen)).await {
        Ok(Ok(())) => ping_until_lost(pool, &ping_channel, &sent, timeout, &mut lost_rx).await,
        Ok(Err(e)) => format!("LISTEN failed: {e}"),
        Err(_) => "LISTEN timed out".to_owned(),
    };
    driver.abort();
    why
}

/// Notify the private channel through the pool every confirm interval
/// until the listening connection is lost. A ping that fails is skipped:
/// without confirmations the cache stops serving hits by itself.
async fn ping_until_lost(
    pool: &Pool,
    ping_channel: &str,
    sent: &Mutex<VecDeque<(u64, Instant)>>,
    timeout: Duration,
    lost: &mut tokio::sync::oneshot::Receiver<String>,
) -> String {
    let mut tick = tokio::time::interval(NearCache::CONFIRM_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            why = &mut *lost => return why.unwrap_or_else(|_| "listener stopped".to_owned()),
            _ = tick.tick() => {}
        }
        n += 1;
        {
            let mut sent = sent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Keep a bounded record: pings that never came back are stale.
            while sent.len() >= 64 {
                sent.pop_front();
            }
            sent.push_back((n, Instant::now()));
        }
        // The simple protocol, one round trip (the channel name is ours and
        // plain, the payload a number).
        let notify = format!("NOTIFY \"{ping_channel}\", '{n}'");
        let ping = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .batch_execute(&notify)
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(timeout, ping).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "near-cache confirmation failed"),
            Err(_) => tracing::debug!("near-cache confirmation timed out"),
        }
    }
}

/// When ping `payload` was sent, if it is one of ours.
fn confirmed(sent: &Mutex<VecDeque<(u64, Instant)>>, payload: &str) -> Option<Instant> {
    let n: u64 = payload.parse().ok()?;
    let mut sent = sent
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut at = None;
    while let Some(&(m, when)) = sent.front() {
        if m > n {
            break;
        }
        sent.pop_front();
        if m == n {
            at = Some(when);
        }
    }
    at
}

/// Apply a change notification: the hex of a record's token hash, or
/// anything else (never sent by this build) as "everything may have
/// changed".
fn apply(cache: &NearCache, payload: &str) {
    match decode_hex(payload) {
        Some(key) => cache.invalidate_key(&key),
        None => cache.flush(),
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.is_empty() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// A random suffix so each connection's ping channel is its own.
fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Without randomness, the process and the time still separate
        // instances.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        return format!("{}_{nanos}", std::process::id());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_decode_to_keys_or_flush() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex(""), None);
    }

    #[test]
    fn a_ping_confirms_when_it_was_sent_and_retires_older_ones() {
        let t0 = Instant::now();
        let sent = Mutex::new(VecDeque::from([(1, t0), (2, t0), (3, t0)]));
        assert_eq!(confirmed(&sent, "2"), Some(t0));
        assert_eq!(sent.lock().unwrap().len(), 1);
        assert_eq!(confirmed(&sent, "2"), None);
        assert_eq!(confirmed(&sent, "x"), None);
    }
}
