//! Test servers shared by the cases of one test binary while any of them
//! runs (a static would never be dropped, and would leave the processes
//! behind), and waiting for a near-cache to serve.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sessiond_engine::NearCache;

/// A server the cases share by `Arc`: the first case starts it, the last
/// one out stops it.
pub struct Shared<T>(Mutex<Weak<T>>);

impl<T> Shared<T> {
    /// Nothing running yet.
    pub const fn new() -> Self {
        Self(Mutex::new(Weak::new()))
    }

    /// The running server, or a new one from `start`.
    pub fn get(&self, start: impl FnOnce() -> T) -> Arc<T> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = slot.upgrade() {
            return server;
        }
        let server = Arc::new(start());
        *slot = Arc::downgrade(&server);
        server
    }
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Wait (at most 10 s) until `cache` serves hits: its invalidation channel
/// is up and proven.
///
/// # Panics
/// When it never does.
pub async fn wait_serving(cache: &NearCache) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cache.serving() {
        assert!(
            Instant::now() < deadline,
            "the invalidation channel never came up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
