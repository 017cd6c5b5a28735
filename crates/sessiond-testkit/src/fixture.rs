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
}
