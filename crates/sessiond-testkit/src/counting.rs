//! A store decorator that counts the calls of each operation, to show how
//! many store round trips a higher layer makes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sessiond_engine::{
    DataUpdate, NewSession, RefreshOutcome, RefreshRequest, RevokeReason, RotateTarget, Session,
    SessionId, Store, StoreError, Timestamp, TokenDigest, TokenHash, TouchRule,
};

/// Operations that change stored sessions (an introspection may also touch,
/// coalesced by the touch interval; it is counted apart).
pub const WRITE_OPS: [&str; 7] = [
    "create",
    "update_data",
    "extend",
    "rotate",
    "refresh",
    "revoke",
    "revoke_user",
];

/// Counts every call by operation name, then delegates.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn Store>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl CountingStore {
    /// Count the calls made to `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    fn count(&self, op: &'static str) {
        *self.counts.lock().unwrap().entry(op).or_default() += 1;
    }

    /// Calls so far, by operation.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts.lock().unwrap().clone()
    }

    /// Calls of `op` so far.
    pub fn calls(&self, op: &str) -> u64 {
        self.counts.lock().unwrap().get(op).copied().unwrap_or(0)
    }

    /// Calls of the [`WRITE_OPS`] so far.
    pub fn writes(&self) -> u64 {
        WRITE_OPS.iter().map(|op| self.calls(op)).sum()
    }
}

#[async_trait]
impl Store for CountingStore {
    async fn create(&self, new: &NewSession, now: Timestamp) -> Result<Vec<SessionId>, StoreError> {
        self.count("create");
        self.inner.create(new, now).await
    }

    async fn introspect(
        &self,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        self.count("introspect");
        self.inner.introspect(token, touch, now).await
    }

    async fn get(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.count("get");
        self.inner.get(id, now).await
    }

    async fn update_data(
        &self,
        id: &SessionId,
        update: &DataUpdate,
        max_data_bytes: usize,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        self.count("update_data");
        self.inner
            .update_data(id, update, max_data_bytes, now)
            .await
    }

    async fn extend(
        &self,
        id: &SessionId,
        idle_ttl_ms: Option<u64>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        self.count("extend");
        self.inner.extend(id, idle_ttl_ms, now).await
    }

    async fn rotate(
        &self,
        target: &RotateTarget,
        new_token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        self.count("rotate");
        self.inner.rotate(target, new_token, now).await
    }

    async fn refresh(
        &self,
        request: &RefreshRequest,
        now: Timestamp,
    ) -> Result<RefreshOutcome, StoreError> {
        self.count("refresh");
        self.inner.refresh(request, now).await
    }

    async fn revoke(
        &self,
        id: &SessionId,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.count("revoke");
        self.inner.revoke(id, reason, now).await
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        self.count("list_user");
        self.inner.list_user(user_id, now).await
    }

    async fn count_user(&self, user_id: &str, now: Timestamp) -> Result<u64, StoreError> {
        self.count("count_user");
        self.inner.count_user(user_id, now).await
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&SessionId>,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        self.count("revoke_user");
        self.inner.revoke_user(user_id, except, reason, now).await
    }

    async fn count_live(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.count("count_live");
        self.inner.count_live(now).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.count("ping");
        self.inner.ping().await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}
