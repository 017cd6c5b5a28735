//! Call counting: a store observer that counts the calls of each operation,
//! to show how many store round trips a higher layer makes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sessiond_engine::{ObservedStore, Op, Outcome, Store, StoreObserver};

/// Counts every observed call by operation.
#[derive(Debug, Default)]
pub struct CallCounter {
    counts: Mutex<BTreeMap<Op, u64>>,
}

impl StoreObserver for CallCounter {
    fn observe(&self, op: Op, _: Duration, _: Outcome<'_>) {
        *self.counts.lock().unwrap().entry(op).or_default() += 1;
    }
}

impl CallCounter {
    /// Calls so far, by operation name.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        let counts = self.counts.lock().unwrap();
        counts.iter().map(|(op, n)| (op.as_str(), *n)).collect()
    }

    /// Calls of `op` so far.
    pub fn calls(&self, op: Op) -> u64 {
        self.counts.lock().unwrap().get(&op).copied().unwrap_or(0)
    }

    /// Calls of operations that write ([`Op::writes`]) so far.
    pub fn writes(&self) -> u64 {
        let counts = self.counts.lock().unwrap();
        counts
            .iter()
            .filter(|(op, _)| op.writes())
            .map(|(_, n)| n)
            .sum()
    }
}

/// A store whose calls are counted: `store.observer().counts()`.
pub type CountingStore = ObservedStore<CallCounter>;

/// Count the calls made to `inner`.
pub fn counting(inner: Arc<dyn Store>) -> CountingStore {
    ObservedStore::new(inner, CallCounter::default())
}
