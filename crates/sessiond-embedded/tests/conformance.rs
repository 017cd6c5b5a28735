//! The store conformance suite, run against a fresh embedded store in a
//! fresh temporary directory per case: once as it is, once behind the
//! observing decorator (`ObservedStore`), which must change nothing.
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

mod observed {
    sessiond_testkit::conformance_tests!(
        |clock| async move { super::fixture(clock).await.observed() }
    );
}
