//! The store conformance suite, run against a fresh embedded store in a
//! fresh temporary directory per case: as it is, behind the observing
//! decorator (`ObservedStore`) and behind the near-cache (`CachedStore`),
//! neither of which may change anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_testkit::{Fixture, ManualClock};

async fn fixture(clock: ManualClock) -> Fixture {
    let dir = tempfile::TempDir::new().unwrap();
    let options = EmbeddedOptions {
        clock: Arc::new(clock),
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open(dir.path(), options).await.unwrap();
    Fixture::new(Arc::new(store), dir)
}

mod bare {
    sessiond_testkit::conformance_tests!(super::fixture);
}

async fn cached_fixture(clock: ManualClock) -> Fixture {
    let dir = tempfile::TempDir::new().unwrap();
    let options = EmbeddedOptions {
        clock: Arc::new(clock),
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open(dir.path(), options).await.unwrap();
    let cached = sessiond_engine::CachedStore::new(store, sessiond_engine::CacheOptions::default());
    Fixture::new(Arc::new(cached), dir)
}

mod cached {
    sessiond_testkit::conformance_tests!(super::cached_fixture);
}

mod sealed {
    sessiond_testkit::conformance_tests!(
        |clock| async move { super::fixture(clock).await.sealed() }
    );
}

mod observed {
    sessiond_testkit::conformance_tests!(
        |clock| async move { super::fixture(clock).await.observed() }
    );
}
