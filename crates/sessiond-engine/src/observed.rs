//! [`ObservedStore`]: the one [`Store`] decorator. It forwards every
//! operation to the store it wraps and tells a [`StoreObserver`] which
//! operation ran, how long it took and what it did; metrics and call counting
//! are observers.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

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

/// A [`Store`] operation. Its name is the metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// [`Store::create`].
    Create,
    /// [`Store::introspect`].
    Introspect,
    /// [`Store::get`].
    Get,
    /// [`Store::update_data`].
    UpdateData,
    /// [`Store::extend`].
    Extend,
    /// [`Store::authenticate`].
    Authenticate,
    /// [`Store::rotate`].
    Rotate,
    /// [`Store::refresh`].
    Refresh,
    /// [`Store::revoke`].
    Revoke,
    /// [`Store::list_user`].
    ListUser,
    /// [`Store::count_user`].
    CountUser,
    /// [`Store::revoke_user`].
    RevokeUser,
    /// [`Store::revoke_issued_before`].
    RevokeIssuedBefore,
    /// [`Store::not_before`].
    NotBefore,
    /// [`Store::list_sessions`].
    ListSessions,
    /// [`Store::count_live`].
    CountLive,
    /// [`Store::history`].
    History,
    /// [`Store::events`].
    Events,
    /// [`Store::beat_connection`].
    BeatConnection,
    /// [`Store::close_connection`].
    CloseConnection,
    /// [`Store::presence`].
    Presence,
    /// [`Store::ping`].
    Ping,
    /// [`Store::close`].
    Close,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 23] = [
        Op::Create,
        Op::Introspect,
        Op::Get,
        Op::UpdateData,
        Op::Extend,
        Op::Authenticate,
        Op::Rotate,
        Op::Refresh,
        Op::Revoke,
        Op::ListUser,
        Op::CountUser,
        Op::RevokeUser,
        Op::RevokeIssuedBefore,
        Op::NotBefore,
        Op::ListSessions,
        Op::CountLive,
        Op::History,
        Op::Events,
        Op::BeatConnection,
        Op::CloseConnection,
        Op::Presence,
        Op::Ping,
        Op::Close,
    ];

    /// The operation's name, as the trait method is called.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Introspect => "introspect",
            Op::Get => "get",
            Op::UpdateData => "update_data",
            Op::Extend => "extend",
            Op::Authenticate => "authenticate",
            Op::Rotate => "rotate",
            Op::Refresh => "refresh",
            Op::Revoke => "revoke",
            Op::ListUser => "list_user",
            Op::CountUser => "count_user",
            Op::RevokeUser => "revoke_user",
            Op::RevokeIssuedBefore => "revoke_issued_before",
            Op::NotBefore => "not_before",
            Op::ListSessions => "list_sessions",
            Op::CountLive => "count_live",
            Op::History => "history",
            Op::Events => "events",
            Op::BeatConnection => "beat_connection",
            Op::CloseConnection => "close_connection",
            Op::Presence => "presence",
            Op::Ping => "ping",
            Op::Close => "close",
        }
    }

    /// Whether the operation changes stored sessions (an introspection may
    /// also record activity, coalesced by the touch interval; it is not
    /// counted as a write).
    pub fn writes(self) -> bool {
        matches!(
            self,
            Op::Create
                | Op::UpdateData
                | Op::Extend
                | Op::Authenticate
                | Op::Rotate
                | Op::Refresh
                | Op::Revoke
                | Op::RevokeUser
                | Op::RevokeIssuedBefore
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an observed operation did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome<'a> {
    /// It failed.
    Failed(&'a StoreError),
    /// It succeeded without creating or ending sessions.
    Done,
    /// A session was created; `evicted` others were revoked to make room
    /// (reason `evicted_max_sessions`).
    Created {
        /// Sessions evicted by the limit.
        evicted: usize,
    },
    /// `count` sessions were revoked for `reason` (a refresh that found a
    /// reused token revokes one, reason `refresh_token_reuse`).
    Revoked {
        /// Why.
        reason: &'a RevokeReason,
        /// How many (0 when the sessions were already gone).
        count: usize,
    },
    /// The store counted this many live sessions.
    Counted(u64),
}

/// Told about every operation an [`ObservedStore`] forwards.
pub trait StoreObserver: Send + Sync + fmt::Debug {
    /// `op` finished after `elapsed` with `outcome`.
    fn observe(&self, op: Op, elapsed: Duration, outcome: Outcome<'_>);
}

/// A store that forwards every operation to `inner` and reports it to its
/// observer.
#[derive(Debug)]
pub struct ObservedStore<O> {
    inner: Arc<dyn Store>,
    observer: O,
}

impl<O: StoreObserver> ObservedStore<O> {
    /// Observe the operations of `inner` with `observer`.
    pub fn new(inner: Arc<dyn Store>, observer: O) -> Self {
        Self { inner, observer }
    }

    /// The observer.
    pub fn observer(&self) -> &O {
        &self.observer
    }

    /// Run `call` as `op`, then report it with the outcome `effect` reads
    /// from its result.
    async fn run<'a, T>(
        &self,
        op: Op,
        call: impl Future<Output = Result<T, StoreError>>,
        effect: impl FnOnce(&T) -> Outcome<'a>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let result = call.await;
        let elapsed = start.elapsed();
        match &result {
            Ok(value) => self.observer.observe(op, elapsed, effect(value)),
            Err(e) => self.observer.observe(op, elapsed, Outcome::Failed(e)),
        }
        result
    }
}

fn done<T>(_: &T) -> Outcome<'static> {
    Outcome::Done
}

const REUSE: RevokeReason = RevokeReason::RefreshTokenReuse;

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<O: StoreObserver> Store for ObservedStore<O> {
    async fn create(&self, new: &NewSession, now: Timestamp) -> Result<Vec<SessionId>, StoreError> {
        self.run(Op::Create, self.inner.create(new, now), |evicted| {
            Outcome::Created {
                evicted: evicted.len(),
            }
        })
        .await
    }

    async fn introspect(
        &self,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let call = self.inner.introspect(token, touch, now);
        self.run(Op::Introspect, call, done).await
    }

    async fn get(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.run(Op::Get, self.inner.get(id, now), done).await
    }

    async fn update_data(
        &self,
        id: &SessionId,
        update: &DataUpdate,
        max_data_bytes: usize,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let call = self.inner.update_data(id, update, max_data_bytes, now);
        self.run(Op::UpdateData, call, done).await
    }

    async fn extend(
        &self,
        id: &SessionId,
        idle_ttl_ms: Option<u64>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let call = self.inner.extend(id, idle_ttl_ms, now);
        self.run(Op::Extend, call, done).await
    }

    async fn authenticate(
        &self,
        id: &SessionId,
        auth: &Authentication,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let call = self.inner.authenticate(id, auth, now);
        self.run(Op::Authenticate, call, done).await
    }

    async fn rotate(
        &self,
        target: &RotateTarget,
        new_token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let call = self.inner.rotate(target, new_token, now);
        self.run(Op::Rotate, call, done).await
    }

    async fn refresh(
        &self,
        request: &RefreshRequest,
        now: Timestamp,
    ) -> Result<RefreshOutcome, StoreError> {
        let call = self.inner.refresh(request, now);
        self.run(Op::Refresh, call, |outcome| match outcome {
            RefreshOutcome::Reused { .. } => Outcome::Revoked {
                reason: &REUSE,
                count: 1,
            },
            _ => Outcome::Done,
        })
        .await
    }

    async fn revoke(
        &self,
        id: &SessionId,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let call = self.inner.revoke(id, reason, now);
        self.run(Op::Revoke, call, |removed| Outcome::Revoked {
            reason,
            count: usize::from(*removed),
        })
        .await
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        let call = self.inner.list_user(user_id, now);
        self.run(Op::ListUser, call, done).await
    }

    async fn count_user(&self, user_id: &str, now: Timestamp) -> Result<u64, StoreError> {
        let call = self.inner.count_user(user_id, now);
        self.run(Op::CountUser, call, done).await
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&SessionId>,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let call = self.inner.revoke_user(user_id, except, reason, now);
        self.run(Op::RevokeUser, call, |removed| Outcome::Revoked {
            reason,
            count: removed.len(),
        })
        .await
    }

    async fn revoke_issued_before(
        &self,
        revocation: &IssuedBefore,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let call = self.inner.revoke_issued_before(revocation, now);
        self.run(Op::RevokeIssuedBefore, call, |removed| Outcome::Revoked {
            reason: &revocation.reason,
            count: removed.len(),
        })
        .await
    }

    async fn not_before(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        let call = self.inner.not_before(user_id, now);
        self.run(Op::NotBefore, call, done).await
    }

    async fn list_sessions(
        &self,
        query: &SessionQuery,
        now: Timestamp,
    ) -> Result<SessionPage, StoreError> {
        let call = self.inner.list_sessions(query, now);
        self.run(Op::ListSessions, call, done).await
    }

    async fn count_live(&self, now: Timestamp) -> Result<u64, StoreError> {
        let call = self.inner.count_live(now);
        self.run(Op::CountLive, call, |live| Outcome::Counted(*live))
            .await
    }

    async fn history(
        &self,
        user_id: &str,
        limit: u32,
        before: Option<u64>,
        now: Timestamp,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        let call = self.inner.history(user_id, limit, before, now);
        self.run(Op::History, call, done).await
    }

    async fn events(&self, query: &EventQuery, now: Timestamp) -> Result<EventPage, StoreError> {
        self.run(Op::Events, self.inner.events(query, now), done)
            .await
    }

    async fn beat_connection(
        &self,
        beat: &ConnectionBeat,
        now: Timestamp,
    ) -> Result<Option<Beaten>, StoreError> {
        let call = self.inner.beat_connection(beat, now);
        self.run(Op::BeatConnection, call, done).await
    }

    async fn close_connection(
        &self,
        session_id: &SessionId,
        connection_id: &ConnectionId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let call = self.inner.close_connection(session_id, connection_id, now);
        self.run(Op::CloseConnection, call, done).await
    }

    async fn presence(&self, user_id: &str, now: Timestamp) -> Result<Presence, StoreError> {
        self.run(Op::Presence, self.inner.presence(user_id, now), done)
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(Op::Ping, self.inner.ping(), done).await
    }

    async fn nodes(&self) -> Result<Vec<crate::NodeHealth>, StoreError> {
        self.run(Op::Ping, self.inner.nodes(), done).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.run(Op::Close, self.inner.close(), done).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_its_method_name() {
        let names: Vec<&str> = Op::ALL.iter().map(|op| op.as_str()).collect();
        assert_eq!(
            names,
            [
                "create",
                "introspect",
                "get",
                "update_data",
                "extend",
                "authenticate",
                "rotate",
                "refresh",
                "revoke",
                "list_user",
                "count_user",
                "revoke_user",
                "revoke_issued_before",
                "not_before",
                "list_sessions",
                "count_live",
                "history",
                "events",
                "beat_connection",
                "close_connection",
                "presence",
                "ping",
                "close"
            ]
        );
        let writes: Vec<Op> = Op::ALL.into_iter().filter(|op| op.writes()).collect();
        assert_eq!(writes.len(), 9);
    }
}
