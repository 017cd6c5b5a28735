//! The near-cache's invalidation channel: a connection of its own that
//! `LISTEN`s on the schema's channel, where every change sends the hex of
//! the changed record's token hash, and does nothing else (only
//! notifications flow on it). It is proven every
//! [`NearCache::CONFIRM_INTERVAL`] by a notification to a private channel of
//! its own, sent through the pool: notifications arrive in commit order, so
//! when that one arrives, every change committed before it was sent has been
//! applied. Losing the connection drops the whole cache first, then
//! reconnects.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use sessiond_engine::NearCache;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Pause before reconnecting after a loss, doubling up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A running channel; stops when dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    task: JoinHandle<()>,
    connected: Arc<AtomicBool>,
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
        let connected = Arc::new(AtomicBool::new(false));
        let flag = connected.clone();
        let task = tokio::spawn(async move {
            let mut backoff = MIN_BACKOFF;
            loop {
                let started = Instant::now();
                let why = listen(&pool, &config, &tls, &channel, timeout, &cache, &flag).await;
                // Before anything else: no hit is served from here on.
                flag.store(false, Ordering::SeqCst);
                cache.channel_lost();
                tracing::warn!(reason = %why, "near-cache invalidation channel lost; cache dropped");
                if started.elapsed() > MAX_BACKOFF * 2 {
                    backoff = MIN_BACKOFF;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
        Self { task, connected }
    }

    /// Whether the channel's connection is up (hits need it, and a recent
    /// confirmation, which the cache checks).
    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection's life: listen, confirm, apply; returns why it ended.
async fn listen(
    pool: &Pool,
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    channel: &str,
    timeout: Duration,
    cache: &Arc<NearCache>,
    connected: &Arc<AtomicBool>,
) -> String {
    let connect = tokio::time::timeout(timeout, config.connect(tls.clone()));
    let (client, mut connection) = match connect.await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return format!("cannot connect: {e}"),
        Err(_) => return "connecting timed out".to_owned(),
    };
    let ping_channel = format!("{channel}_ping_{}", random_suffix());
    // Pings in flight: number and when it was sent.
    let sent: Arc<Mutex<VecDeque<(u64, Instant)>>> = Arc::default();
    let (lost_tx, mut lost_rx) = tokio::sync::oneshot::channel::<String>();
    let driver = {
        let cache = cache.clone();
        let sent = sent.clone();
        let channel = channel.to_owned();
        let ping_channel = ping_channel.clone();
        let connected = connected.clone();
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
                                connected.store(true, Ordering::SeqCst);
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
            connected.store(false, Ordering::SeqCst);
            cache.channel_lost();
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
