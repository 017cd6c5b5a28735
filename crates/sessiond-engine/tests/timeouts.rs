//! The engine bounds every store call: a store that never answers yields
//! `Error::Unavailable` after `store_timeout`, never a hang.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sessiond_engine::TouchRule;
use sessiond_engine::store::{NewSession, RefreshOutcome, RefreshRequest, RotateTarget};
use sessiond_engine::{
    CreateRequest, DataUpdate, Engine, Error, Policy, RefreshToken, RevokeReason, Session,
    SessionId, SessionToken, ShardTag, Store, StoreError, Timestamp, TokenDigest, TokenHash,
};

/// A backend that accepts every call and never answers.
#[derive(Debug)]
struct SilentStore;

async fn never<T>() -> Result<T, StoreError> {
    std::future::pending().await
}

#[async_trait]
impl Store for SilentStore {
    async fn create(&self, _: &NewSession, _: Timestamp) -> Result<Vec<SessionId>, StoreError> {
        never().await
    }
    async fn introspect(
        &self,
        _: &TokenDigest,
        _: Option<TouchRule>,
        _: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        never().await
    }
    async fn get(&self, _: &SessionId, _: Timestamp) -> Result<Option<Session>, StoreError> {
        never().await
    }
    async fn update_data(
        &self,
        _: &SessionId,
        _: &DataUpdate,
        _: usize,
        _: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        never().await
    }
    async fn extend(
        &self,
        _: &SessionId,
        _: Option<u64>,
        _: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        never().await
    }
    async fn rotate(
        &self,
        _: &RotateTarget,
        _: &TokenHash,
        _: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        never().await
    }
    async fn refresh(
        &self,
        _: &RefreshRequest,
        _: Timestamp,
    ) -> Result<RefreshOutcome, StoreError> {
        never().await
    }
    async fn revoke(
        &self,
        _: &SessionId,
        _: &RevokeReason,
        _: Timestamp,
    ) -> Result<bool, StoreError> {
        never().await
    }
    async fn list_user(&self, _: &str, _: Timestamp) -> Result<Vec<Session>, StoreError> {
        never().await
    }
    async fn count_user(&self, _: &str, _: Timestamp) -> Result<u64, StoreError> {
        never().await
    }
    async fn revoke_user(
        &self,
        _: &str,
        _: Option<&SessionId>,
        _: &RevokeReason,
        _: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        never().await
    }
    async fn count_live(&self, _: Timestamp) -> Result<u64, StoreError> {
        never().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        never().await
    }
}

#[tokio::test]
async fn every_call_fails_as_unavailable_after_the_timeout() {
    let timeout = Duration::from_millis(150);
    let e = Engine::new(
        Arc::new(SilentStore),
        Policy {
            store_timeout: timeout,
            ..Policy::default()
        },
    );
    let shard = ShardTag::of_user("u");
    let token = SessionToken::generate(&shard);
    let id = SessionId::generate(&shard);
    let id = id.as_str();
    let started = Instant::now();
    let results: Vec<Result<(), Error>> = vec![
        e.create(CreateRequest {
            user_id: "u".into(),
            ..CreateRequest::default()
        })
        .await
        .map(|_| ()),
        e.introspect(token.expose(), true).await.map(|_| ()),
        e.get(id).await.map(|_| ()),
        e.update_data(id, DataUpdate::Merge(Default::default()))
            .await
            .map(|_| ()),
        e.extend(id, None).await.map(|_| ()),
        e.rotate(id).await.map(|_| ()),
        e.rotate_token(token.expose()).await.map(|_| ()),
        e.refresh(
            RefreshToken::generate(&shard).expose(),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ()),
        e.revoke(id, RevokeReason::Logout).await.map(|_| ()),
        e.list_user("u").await.map(|_| ()),
        e.count_user("u").await.map(|_| ()),
        e.revoke_user("u", None, RevokeReason::Logout)
            .await
            .map(|_| ()),
        e.count_live().await.map(|_| ()),
        e.ping().await,
    ];
    let elapsed = started.elapsed();
    for r in &results {
        assert!(matches!(r, Err(Error::Unavailable(_))), "{r:?}");
    }
    // 14 calls, each bounded by the timeout (plus scheduling slack).
    assert!(elapsed >= timeout * 14, "{elapsed:?}");
    assert!(
        elapsed < timeout * 14 + Duration::from_secs(2),
        "{elapsed:?}"
    );
}
