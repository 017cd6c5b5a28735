//! Test support shared by every store: the conformance suite that each store
//! must pass, and a harness that runs a private `redis-server`.
//!
//! A store's `tests/conformance.rs` is one macro call:
//!
//! ```text
//! sessiond_testkit::conformance_tests!(|clock: sessiond_testkit::ManualClock| async move {
//!     let dir = tempfile::TempDir::new().unwrap();
//!     let store = MyStore::open(dir.path(), clock).await.unwrap();
//!     sessiond_testkit::Fixture::new(std::sync::Arc::new(store), dir)
//! });
//! ```
//!
//! The factory gets the case's [`ManualClock`] (the engine runs on it; a store
//! with background expiry should use it too) and returns a [`Fixture`]: the
//! store plus a guard kept alive for the case (a temp dir, a redis-server).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

pub mod authentication_cases;
pub mod conformance;
pub mod counting;
pub mod csrf_cases;
pub mod event_cases;
pub mod fixture;
pub mod history_cases;
pub mod issued_before_cases;
pub mod listing_cases;
pub mod postgres_server;
pub mod presence_cases;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_server;
pub mod refresh_rotation;
pub mod shared;

pub use counting::{CallCounter, CountingStore, counting};
pub use fixture::Fixture;
pub use sessiond_engine::ManualClock;
pub use shared::{Shared, wait_serving};

/// Expands to one `#[tokio::test]` per conformance case, each with a fresh
/// store from `$factory` (a closure `ManualClock -> impl Future<Output = Fixture>`).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases $factory;
            create_then_get_returns_every_field,
            introspect_finds_only_the_right_token,
            touch_is_coalesced_and_slides_idle_expiry,
            idle_expiry_ends_a_session,
            absolute_deadline_never_slides,
            merge_keeps_other_keys_and_expiry,
            replace_swaps_the_whole_object,
            oversize_update_changes_nothing,
            concurrent_merges_of_different_keys_all_survive,
            extend_never_passes_absolute_deadline,
            rotate_by_id_kills_the_old_token,
            concurrent_rotations_of_one_token_have_one_winner,
            revoke_is_final,
            touch_racing_revoke_never_resurrects,
            list_is_newest_first_and_per_user,
            revoke_user_spares_only_the_exception,
            evict_oldest_makes_room,
            reject_policy_refuses_and_keeps_existing,
            expired_sessions_do_not_count_toward_the_limit,
            concurrent_creates_never_exceed_the_limit,
            concurrent_creates_with_reject_admit_exactly_the_limit,
            revoke_user_racing_creates_loses_nothing,
            odd_and_large_inputs,
            bad_input_is_a_typed_error,
            live_count_follows_creates_and_revokes,
            refresh_rotates_and_records_activity,
            replay_within_grace_returns_the_same_successor,
            reuse_after_grace_revokes_the_session,
            concurrent_refreshes_have_one_winner,
            refresh_tokens_end_with_their_session,
            unknown_refresh_tokens_find_nothing,
            revoke_issued_before_spares_newer_and_the_exception,
            creates_older_than_the_mark_are_refused,
            revoke_issued_before_racing_creates_leaves_none_older,
            the_mark_expires,
            revoke_issued_before_bad_input,
            authentication_context_is_kept_and_stepped_up,
            authenticate_needs_a_live_session_and_good_input,
            concurrent_step_ups_all_land,
            listing_filters_each_and_together,
            listing_pages_give_each_session_once,
            listing_bad_input_is_a_typed_error,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let clock = $crate::ManualClock::new();
                let fixture: $crate::Fixture = ($factory)(clock.clone()).await;
                $crate::conformance::$case($crate::conformance::Case::new(fixture, clock)).await;
            }
        )*
    };
}
