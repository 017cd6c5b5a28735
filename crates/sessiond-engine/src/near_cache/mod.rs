//! The near-cache: introspections served from process memory, kept honest
//! by the store's invalidation channel (Redis CLIENT TRACKING; later
//! PostgreSQL LISTEN/NOTIFY).
//!
//! [`CachedStore`] is a [`Store`] decorator over a store that is also a
//! [`CacheSource`]. It serves [`Store::introspect`] from a [`NearCache`] when
//! it can, fills the cache from reads the source's channel follows, and drops
//! what this process changes as soon as the change returns. Every hit is
//! judged against the clock (a cached record never outlives its idle or
//! absolute deadline) and needs the touch not to be due; see
//! [`NearCache`] for when a hit may be served at all.

pub mod channel_socket;
mod entries;

use std::sync::Arc;

use async_trait::async_trait;

pub use entries::{CacheOptions, CacheStats, NearCache, Ticket};

use crate::authentication::Authentication;
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::events::{EventPage, EventQuery};
use crate::history::HistoryEvent;
use crate::id::SessionId;
use crate::listing::{SessionPage, SessionQuery};
use crate::presence::{Beaten, ConnectionBeat, ConnectionId, Presence};
use crate::session::{DataUpdate, RevokeReason, Session, TouchRule};
use crate::store::{IssuedBefore, NewSession, RefreshOutcome, RefreshRequest, RotateTarget, Store};
use crate::token::{TokenDigest, TokenHash};

/// What an introspection through the channel found.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackedRead {
    /// The live session, as [`Store::introspect`] returns it.
    pub session: Option<Session>,
    /// Whether `session` is the record exactly as stored and was read so the
    /// channel reports its next change: only then may it be cached. (False
    /// when the call touched it, or had to read around the channel.)
    pub cacheable: bool,
}

/// A store that can keep a near-cache honest.
#[async_trait]
pub trait CacheSource: Store {
    /// The name the invalidation channel gives the record of `token`.
    fn cache_key(&self, token: &TokenDigest) -> Vec<u8>;

    /// Start the invalidation channel: from now until the store is closed
    /// or dropped, report into `cache` when the channel is up
    /// ([`NearCache::channel_up`]), proven ([`NearCache::confirm`], every
    /// [`NearCache::CONFIRM_INTERVAL`]), lost ([`NearCache::channel_lost`],
    /// before anything else is reported), and every change to a record read
    /// through it ([`NearCache::invalidate_key`]).
    fn start_invalidations(&self, cache: Arc<NearCache>);

    /// Called before every lookup: bring the cache up to date with the
    /// channel (a store whose channel is polled, like SQLite's change
    /// counter, checks it here and reports into the cache) and say whether
    /// a hit may be served now (a pushed channel says no while anything it
    /// received is not applied yet).
    fn sync_channel(&self) -> bool;

    /// [`Store::introspect`], reading through the channel when it is up.
    async fn introspect_tracked(
        &self,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<TrackedRead, StoreError>;
}

/// A store whose introspections are served from a [`NearCache`] when they
/// can be.
#[derive(Debug)]
pub struct CachedStore<S> {
    inner: S,
    cache: Arc<NearCache>,
}

impl<S: CacheSource> CachedStore<S> {
    /// Cache `inner`'s records within `options`, starting its channel.
    pub fn new(inner: S, options: CacheOptions) -> Self {
        let cache = Arc::new(NearCache::new(options));
        inner.start_invalidations(cache.clone());
        Self { inner, cache }
    }

    /// The cache (for its counters).
    pub fn cache(&self) -> &Arc<NearCache> {
        &self.cache
    }

    /// The store it caches.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Forget what this process just changed of session `id`, whatever the
    /// call's result (a failed write may still have been applied).
    fn changed<T>(&self, id: &SessionId, result: Result<T, StoreError>) -> Result<T, StoreError> {
        self.cache.invalidate_session(id);
        result
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<S: CacheSource> Store for CachedStore<S> {
    async fn create(&self, new: &NewSession, now: Timestamp) -> Result<Vec<SessionId>, StoreError> {
        let result = self.inner.create(new, now).await;
        match &result {
            Ok(evicted) => evicted
                .iter()
                .for_each(|id| self.cache.invalidate_session(id)),
            // An eviction may have happened: which, is unknown.
            Err(StoreError::Unavailable(_) | StoreError::Corrupt(_)) => self.cache.flush(),
            Err(_) => {}
        }
        result
    }

    async fn introspect(
        &self,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let key = self.inner.cache_key(token);
        let hit = if self.inner.sync_channel() {
            self.cache.get(&key)
        } else {
            self.cache.pass();
            None
        };
        if let Some(session) = hit {
            if !session.is_live(now) {
                self.cache.invalidate_key(&key);
                return Ok(None);
            }
            if !touch.is_some_and(|rule| session.touch_due(rule, now)) {
                return Ok(Some(session));
            }
            // The touch is due: the store records it.
        }
        let ticket = self.cache.ticket(&key);
        let read = self.inner.introspect_tracked(token, touch, now).await?;
        match (&read.session, ticket) {
            (Some(session), Some(ticket)) if read.cacheable => {
                self.cache.fill(ticket, &key, session);
            }
            _ if !read.cacheable => self.cache.invalidate_key(&key),
            _ => {}
        }
        Ok(read.session)
    }

    async fn get(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.inner.get(id, now).await
    }

    async fn update_data(
        &self,
        id: &SessionId,
        update: &DataUpdate,
        max_data_bytes: usize,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let result = self
            .inner
            .update_data(id, update, max_data_bytes, now)
            .await;
        self.changed(id, result)
    }

    async fn extend(
        &self,
        id: &SessionId,
        idle_ttl_ms: Option<u64>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let result = self.inner.extend(id, idle_ttl_ms, now).await;
        self.changed(id, result)
    }

    async fn authenticate(
        &self,
        id: &SessionId,
        auth: &Authentication,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let result = self.inner.authenticate(id, auth, now).await;
        self.changed(id, result)
    }

    async fn rotate(
        &self,
        target: &RotateTarget,
        new_token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let result = self.inner.rotate(target, new_token, now).await;
        match target {
            RotateTarget::Id(id) => self.cache.invalidate_session(id),
            RotateTarget::Token(old) => {
                self.cache.invalidate_key(&self.inner.cache_key(old));
                if let Ok(Some(session)) = &result {
                    self.cache.invalidate_session(&session.id);
                }
            }
        }
        result
    }

    async fn refresh(
        &self,
        request: &RefreshRequest,
        now: Timestamp,
    ) -> Result<RefreshOutcome, StoreError> {
        let result = self.inner.refresh(request, now).await;
        self.cache
            .invalidate_key(&self.inner.cache_key(&request.family));
        match &result {
            Ok(RefreshOutcome::Rotated { session, .. }) => {
                self.cache.invalidate_session(&session.id);
            }
            Ok(RefreshOutcome::Reused { session_id }) => self.cache.invalidate_session(session_id),
            _ => {}
        }
        result
    }

    async fn revoke(
        &self,
        id: &SessionId,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = self.inner.revoke(id, reason, now).await;
        self.changed(id, result)
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        self.inner.list_user(user_id, now).await
    }

    async fn count_user(&self, user_id: &str, now: Timestamp) -> Result<u64, StoreError> {
        self.inner.count_user(user_id, now).await
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&SessionId>,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let result = self.inner.revoke_user(user_id, except, reason, now).await;
        match &result {
            Ok(removed) => removed
                .iter()
                .for_each(|id| self.cache.invalidate_session(id)),
            // Which of the user's sessions went is unknown.
            Err(_) => self.cache.flush(),
        }
        result
    }

    async fn revoke_issued_before(
        &self,
        revocation: &IssuedBefore,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let result = self.inner.revoke_issued_before(revocation, now).await;
        match &result {
            Ok(removed) => removed
                .iter()
                .for_each(|id| self.cache.invalidate_session(id)),
            // Which of the user's sessions went is unknown.
            Err(_) => self.cache.flush(),
        }
        result
    }

    // The mark is read from the store on every access-token check: the
    // cache never holds it.
    async fn not_before(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        self.inner.not_before(user_id, now).await
    }

    async fn list_sessions(
        &self,
        query: &SessionQuery,
        now: Timestamp,
    ) -> Result<SessionPage, StoreError> {
        // A read that fills nothing: the cache holds what introspection read.
        self.inner.list_sessions(query, now).await
    }

    async fn count_live(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.inner.count_live(now).await
    }

    async fn history(
        &self,
        user_id: &str,
        limit: u32,
        before: Option<u64>,
        now: Timestamp,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        // A read of records the cache never holds: nothing to invalidate.
        self.inner.history(user_id, limit, before, now).await
    }

    async fn events(&self, query: &EventQuery, now: Timestamp) -> Result<EventPage, StoreError> {
        self.inner.events(query, now).await
    }

    // Connections live beside the session records the cache holds: nothing
    // to invalidate.
    async fn beat_connection(
        &self,
        beat: &ConnectionBeat,
        now: Timestamp,
    ) -> Result<Option<Beaten>, StoreError> {
        self.inner.beat_connection(beat, now).await
    }

    async fn close_connection(
        &self,
        session_id: &SessionId,
        connection_id: &ConnectionId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner
            .close_connection(session_id, connection_id, now)
            .await
    }

    async fn presence(&self, user_id: &str, now: Timestamp) -> Result<Presence, StoreError> {
        self.inner.presence(user_id, now).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn nodes(&self) -> Result<Vec<crate::NodeHealth>, StoreError> {
        self.inner.nodes().await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.cache.channel_lost();
        self.inner.close().await
    }
}
