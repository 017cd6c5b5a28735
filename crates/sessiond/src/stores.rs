//! Picks the session store named by the configuration (`embedded:PATH`,
//! `redis://`, `rediss://`) and describes store URLs for logs without secrets.

use std::path::PathBuf;
use std::sync::Arc;

use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{Store, StoreError};
use sessiond_redis::{RedisOptions, RedisStore};

use crate::config::Config;

/// Open the store of `config.store`: an [`EmbeddedStore`] in `PATH` (relative
/// to the working directory) for `embedded:PATH`, a [`RedisStore`] for
/// `redis://` and `rediss://` with `key_prefix`, `store_timeout` and
/// `store_ca_file`.
pub async fn open(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    let url = config.store_url();
    let url = url.as_str();
    if let Some(path) = url.strip_prefix("embedded:") {
        if path.is_empty() {
            return Err(StoreError::Unavailable(
                "store embedded: needs a directory, e.g. embedded:./data".to_owned(),
            ));
        }
        let store = EmbeddedStore::open(PathBuf::from(path), EmbeddedOptions::default()).await?;
        return Ok(Arc::new(store));
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("redis://") || lower.starts_with("rediss://") {
        let tls_ca_pem = match &config.store_ca_file {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot read store_ca_file {}: {e}",
                    path.display()
                ))
            })?),
        };
        let options = RedisOptions {
            key_prefix: config.key_prefix.clone(),
            timeout: config.store_timeout,
            tls_ca_pem,
        };
        let store = RedisStore::connect(url, options).await?;
        return Ok(Arc::new(store));
    }
    Err(StoreError::Unavailable(format!(
        "store {} is not supported; use embedded:PATH, redis:// or rediss://",
        crate::config::describe_store(url)
    )))
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
        let store = open(&config).await.unwrap();
        store.ping().await.unwrap();
        assert!(dir.path().join("db").join("sessions.db").exists());
    }

    #[tokio::test]
    async fn unsupported_schemes_fail() {
        let config = Config {
            store: Some("memcached://x".to_owned()),
            ..Config::default()
        };
        let err = open(&config).await.unwrap_err();
        assert!(err.to_string().contains("memcached://x"));
    }
}
