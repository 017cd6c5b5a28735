//! The store conformance suite, run against a fresh embedded store in a
//! fresh temporary directory per case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};

sessiond_testkit::conformance_tests!(|clock: sessiond_testkit::ManualClock| async move {
    let dir = tempfile::TempDir::new().unwrap();
    let options = EmbeddedOptions {
        clock: Arc::new(clock),
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open(dir.path(), options).await.unwrap();
    sessiond_testkit::Fixture::new(Arc::new(store), dir)
});
