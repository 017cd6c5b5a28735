//! Picks the session store named by the configuration (`embedded:PATH`,
//! `postgres://`, `redis://`, `rediss://`…), behind the near-cache when the configuration
//! keeps it on.

use std::path::PathBuf;
use std::sync::Arc;

use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{
    CacheSource, CachedStore, DataKeys, NearCache, SealedStore, Store, StoreError,
};
use sessiond_postgres::{PostgresOptions, PostgresStore};
use sessiond_redis::{RedisOptions, RedisStore};

use crate::config::Config;

/// Whether the store is opened with the near-cache `[cache]` describes: a
/// server wants it; a one-shot command does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// As `[cache]` says.
    AsConfigured,
    /// Never.
    Off,
}

/// An open store and its near-cache, if it has one.
pub struct Opened {
    /// The store (the cached one when there is a cache).
    pub store: Arc<dyn Store>,
    /// The near-cache in front of it.
    pub cache: Option<Arc<NearCache>>,
}

impl Opened {
    fn plain(store: Arc<dyn Store>) -> Self {
        Self { store, cache: None }
    }
}

/// Open the store of `config.store`: an [`EmbeddedStore`] in `PATH` (relative
/// to the working directory; history kept for `history_retention`) for
/// `embedded:PATH`, a [`RedisStore`] for `redis://`, `rediss://`, a cluster's `redis+cluster://` and Sentinel's
/// `redis+sentinel://` (and their TLS forms) with `key_prefix`, `store_timeout` and
/// `store_ca_file`, behind a [`CachedStore`] when `caching` and `[cache]`
/// allow.
pub async fn open(config: &Config, caching: Caching) -> Result<Opened, StoreError> {
    let opened = open_store(config, caching).await?;
    let Some(path) = &config.encryption.key_file else {
        return Ok(opened);
    };
    let keys = data_keys(path)?;
    Ok(Opened {
        store: Arc::new(SealedStore::new(opened.store, Arc::new(keys))),
        cache: opened.cache,
    })
}

/// The data keys of `path`, the file created with a first key if missing.
fn data_keys(path: &std::path::Path) -> Result<DataKeys, StoreError> {
    if !path.exists() {
        let id = DataKeys::rotate(path).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        tracing::info!(path = %path.display(), key = %id, "created the data key file");
    }
    DataKeys::load(path).map_err(|e| StoreError::Unavailable(e.to_string()))
}

async fn open_store(config: &Config, caching: Caching) -> Result<Opened, StoreError> {
    let url = config.store_url();
    let url = url.as_str();
    if let Some(path) = url.strip_prefix("embedded:") {
        if path.is_empty() {
            return Err(StoreError::Unavailable(
                "store embedded: needs a directory, e.g. embedded:./data".to_owned(),
            ));
        }
        let options = EmbeddedOptions {
            history_retention: config.history_retention,
            event_retention: config.events.retention(),
            ..EmbeddedOptions::default()
        };
        let store = EmbeddedStore::open(PathBuf::from(path), options).await?;
        return Ok(cached(store, config, caching));
    }
    let lower = url.to_ascii_lowercase();
    // redis://, rediss://, and the Cluster and Sentinel forms (the store
    // parses which).
    if lower.starts_with("redis://")
        || lower.starts_with("rediss://")
        || lower.starts_with("redis+")
        || lower.starts_with("rediss+")
    {
        let options = RedisOptions {
            key_prefix: config.key_prefix.clone(),
            timeout: config.store_timeout,
            tls_ca_pem: read_ca_file(config)?,
            wait_replicas: config.store_wait_replicas,
            event_retention: config.events.retention(),
            record_events: config.events.enabled,
            ..RedisOptions::default()
        };
        let store = RedisStore::connect(url, options).await?;
        return Ok(cached(store, config, caching));
    }
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        let options = PostgresOptions {
            timeout: config.store_timeout,
            tls_ca_pem: read_ca_file(config)?,
            history_retention: config.history_retention,
            event_retention: config.events.retention(),
            ..PostgresOptions::default()
        };
        let store = PostgresStore::connect(url, options).await?;
        return Ok(cached(store, config, caching));
    }
    Err(StoreError::Unavailable(format!(
        "store {} is not supported; use embedded:PATH, postgres://, redis://, rediss://, redis+cluster:// or redis+sentinel://",
        crate::config::describe_store(url)
    )))
}

/// The PEM of `store_ca_file`, if set.
fn read_ca_file(config: &Config) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(path) = &config.store_ca_file else {
        return Ok(None);
    };
    std::fs::read(path).map(Some).map_err(|e| {
        StoreError::Unavailable(format!("cannot read store_ca_file {}: {e}", path.display()))
    })
}

/// `store` behind the near-cache, when `caching` and `[cache]` allow.
fn cached<S: CacheSource + 'static>(store: S, config: &Config, caching: Caching) -> Opened {
    match config.cache.options() {
        Some(options) if caching == Caching::AsConfigured => {
            let cached = CachedStore::new(store, options);
            let cache = cached.cache().clone();
            Opened {
                store: Arc::new(cached),
                cache: Some(cache),
            }
        }
        _ => Opened::plain(Arc::new(store)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_an_embedded_store_relative_path() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            store: Some(format!("embedded:{}", dir.path().join("db").display())),
            ..Config::default()
        };
        let opened = open(&config, Caching::AsConfigured).await.unwrap();
        assert!(opened.cache.is_some(), "a server caches the embedded store");
        opened.store.ping().await.unwrap();
        assert!(dir.path().join("db").join("sessions.db").exists());
        opened.store.close().await.unwrap();
        let opened = open(&config, Caching::Off).await.unwrap();
        assert!(opened.cache.is_none());
    }

    #[tokio::test]
    async fn unsupported_schemes_fail() {
        let config = Config {
            store: Some("memcached://x".to_owned()),
            ..Config::default()
        };
        let Err(err) = open(&config, Caching::Off).await else {
            panic!("opened memcached://")
        };
        assert!(err.to_string().contains("memcached://x"));
    }
}
