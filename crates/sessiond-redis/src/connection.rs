//! The connection to Redis: a self-reconnecting `ConnectionManager`, a
//! deadline on every call, one retry of idempotent calls after a dropped
//! connection, and the mapping of redis errors onto [`StoreError`].

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, ServerErrorKind, Value};
use sessiond_engine::StoreError;

use crate::scripts::LuaScript;

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
    client: redis::Client,
    tls_ca_pem: Option<Vec<u8>>,
    manager: ConnectionManager,
    timeout: Duration,
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
            client,
            tls_ca_pem: tls_ca_pem.map(<[u8]>::to_vec),
            manager,
            timeout,
        })
    }

    /// The client the connection was made with (its URL and TLS settings).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
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

    /// Count the keys matching `pattern`, one SCAN page (1000 keys) per
    /// round trip, each within the timeout. Cost grows with the keyspace: for
    /// statistics, not for request paths.
    pub(crate) async fn count_keys(&self, pattern: &str) -> Result<u64, StoreError> {
        let mut cursor = 0u64;
        let mut total = 0u64;
        loop {
            let attempt = || async {
                let mut conn = self.manager.clone();
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async::<Value>(&mut conn)
                    .await
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
