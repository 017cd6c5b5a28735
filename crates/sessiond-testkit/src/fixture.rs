//! [`Fixture`]: a store under test and whatever must outlive it.

use std::any::Any;
use std::sync::Arc;

use sessiond_engine::Store;

/// A store under test and whatever must outlive it (a temp dir, a
/// redis-server).
pub struct Fixture {
    /// The store.
    pub store: Arc<dyn Store>,
    _guard: Box<dyn Any + Send>,
}

impl Fixture {
    /// Wrap `store`, keeping `guard` alive until the case ends.
    pub fn new(store: Arc<dyn Store>, guard: impl Any + Send) -> Self {
        Self {
            store,
            _guard: Box::new(guard),
        }
    }

    /// The same store behind the observing decorator (with a call counter),
    /// so a suite run through it shows the decorator forwards every
    /// operation faithfully.
    pub fn observed(self) -> Self {
        Self {
            store: Arc::new(crate::counting(self.store)),
            _guard: self._guard,
        }
    }

    /// The same store with encryption at rest (a [`SealedStore`] with a
    /// fresh key file), so a suite run through it shows that sealing
    /// changes nothing a caller sees.
    ///
    /// [`SealedStore`]: sessiond_engine::SealedStore
    pub fn sealed(self) -> Self {
        let dir = tempfile::TempDir::new().expect("a temporary directory for the key file");
        let path = dir.path().join("data.keys");
        sessiond_engine::DataKeys::rotate(&path).expect("a new data key file");
        let keys = sessiond_engine::DataKeys::load(&path).expect("the data key file");
        Self {
            store: Arc::new(sessiond_engine::SealedStore::new(
                self.store,
                Arc::new(keys),
            )),
            _guard: Box::new((self._guard, dir)),
        }
    }
}
