//! A Redis [`Store`] for sessiond: every operation is one Lua script run in one
//! round trip, every key of an operation sits in the user's Cluster hash slot,
//! and Redis TTLs back up the liveness rules the scripts apply.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sessiond_engine::StoreError> {
//! use sessiond_redis::{RedisOptions, RedisStore};
//! let store = RedisStore::connect("redis://localhost/", RedisOptions::default()).await?;
//! # drop(store); Ok(()) }
//! ```
//!
//! Key schema (`P` = key prefix, `T` = the user's shard tag):
//! - `P{T}:s:<session id>`: hash of the session's fields, data keys as `.<key>`
//!   fields of compact JSON;
//! - `P{T}:t:<token hash>`: the session id of a token (only its hash is kept);
//! - `P{T}:u:<user id>`: sorted set of the user's session ids by idle deadline.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod codec;
mod connection;
mod keys;
mod scripts;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::Value;
use sessiond_engine::{
    DataUpdate, LimitPolicy, NewSession, RefreshOutcome, RefreshRequest, RevokeReason,
    RotateTarget, Session, SessionId, ShardTag, Store, StoreError, Timestamp, TokenDigest,
    TokenHash, TouchRule,
};

use crate::codec::Reply;
use crate::connection::{Connection, Retry};
use crate::keys::KeySchema;
use crate::scripts::SCRIPTS;

/// Settings of a [`RedisStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// Prefix of every key (default `sessiond:`). Must not contain `{` or `}`:
    /// the shard tag after it is the key's Cluster hash tag.
    pub key_prefix: String,
    /// Bound on connecting and on every call (default 2 s); past it a call
    /// fails with [`StoreError::Unavailable`].
    pub timeout: Duration,
    /// CA certificates (PEM) trusted for `rediss://` instead of the system's
    /// roots (e.g. a private CA of a managed Redis). `None`: the system's.
    pub tls_ca_pem: Option<Vec<u8>>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            key_prefix: "sessiond:".to_owned(),
            timeout: Duration::from_secs(2),
            tls_ca_pem: None,
        }
    }
}

/// Sessions in Redis. Cheap to clone; clones share one multiplexed connection
/// that reconnects by itself after Redis restarts.
#[derive(Clone)]
pub struct RedisStore {
    conn: Connection,
    keys: KeySchema,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No URL: it may hold a password.
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.keys.prefix())
            .field("timeout", &self.conn.timeout())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connect to the Redis at `url` (`redis://[user:password@]host:port/db`).
    /// Succeeds or fails within `options.timeout`; a bad URL or a key prefix
    /// with braces fails at once. All failures are [`StoreError::Unavailable`].
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let keys = KeySchema::new(&options.key_prefix).ok_or_else(|| {
            StoreError::Unavailable(format!(
                "key prefix {:?} contains '{{' or '}}'; Redis would take it as the hash tag",
                options.key_prefix
            ))
        })?;
        let conn = Connection::open(
            url,
            options.timeout,
            options.tls_ca_pem.as_deref(),
            &SCRIPTS.all(),
        )
        .await?;
        Ok(Self { conn, keys })
    }

    /// The reply of a script returning `{'session', ...}` or `{'none'}`.
    fn maybe_session(reply: &Value) -> Result<Option<Session>, StoreError> {
        match codec::tagged(reply)? {
            Reply::Session(s) => Ok(Some(*s)),
            Reply::None => Ok(None),
            other => Err(StoreError::Corrupt(format!("unexpected reply {other:?}"))),
        }
    }

    fn time(now: Timestamp) -> String {
        now.as_millis().to_string()
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn create(&self, new: &NewSession, now: Timestamp) -> Result<Vec<SessionId>, StoreError> {
        let s = &new.session;
        let tag = s.id.shard();
        let keys = [
            self.keys.session(&s.id),
            self.keys.token_in(&tag, &new.token.hash),
            self.keys.user_in(&tag, &s.user_id),
        ];
        let policy = match new.limit_policy {
            LimitPolicy::EvictOldest => "evict",
            LimitPolicy::Reject => "reject",
        };
        let mut args = vec![
            self.keys.base(&tag),
            Self::time(now),
            s.id.as_str().to_owned(),
            s.expires_at.as_millis().to_string(),
            new.max_sessions.max(1).to_string(),
            policy.to_owned(),
        ];
        args.extend(codec::session_fields(
            s,
            &new.token.hash.to_base64(),
            new.refresh.as_ref(),
        )?);
        let reply = self
            .conn
            .eval(&SCRIPTS.create, &keys, &args, Retry::Never)
            .await?;
        match codec::tagged(&reply)? {
            Reply::Rest(evicted) => codec::id_list(evicted),
            Reply::Limit => Err(StoreError::LimitReached {
                max: new.max_sessions,
            }),
            other => Err(StoreError::Corrupt(format!("unexpected reply {other:?}"))),
        }
    }

    async fn introspect(
        &self,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let keys = [self.keys.token(token)];
        let args = [
            self.keys.base(&token.shard),
            Self::time(now),
            token.hash.to_base64(),
            touch.map(|t| t.interval_ms.to_string()).unwrap_or_default(),
        ];
        let retry = if touch.is_some() {
            Retry::Never
        } else {
            Retry::Once
        };
        let reply = self
            .conn
            .eval(&SCRIPTS.introspect, &keys, &args, retry)
            .await;
        if let Err(e) = &reply {
            tracing::debug!(token_hash = %token.hash.short(), error = %e, "introspection failed");
        }
        Self::maybe_session(&reply?)
    }

    async fn get(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let keys = [self.keys.session(id)];
        let args = [
            self.keys.base(&id.shard()),
            Self::time(now),
            id.as_str().to_owned(),
        ];
        let reply = self
            .conn
            .eval(&SCRIPTS.get, &keys, &args, Retry::Once)
            .await?;
        Self::maybe_session(&reply)
    }

    async fn update_data(
        &self,
        id: &SessionId,
        update: &DataUpdate,
        max_data_bytes: usize,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let keys = [self.keys.session(id)];
        let (mode, data, null_deletes) = match update {
            DataUpdate::Merge(d) => ("merge", d, true),
            DataUpdate::Replace(d) => ("replace", d, false),
        };
        let mut args = vec![
            self.keys.base(&id.shard()),
            Self::time(now),
            id.as_str().to_owned(),
            max_data_bytes.to_string(),
            mode.to_owned(),
        ];
        codec::push_data_fields(&mut args, data, null_deletes)?;
        let reply = self
            .conn
            .eval(&SCRIPTS.update_data, &keys, &args, Retry::Never)
            .await?;
        match codec::tagged(&reply)? {
            Reply::Session(s) => Ok(Some(*s)),
            Reply::None => Ok(None),
            Reply::TooLarge(size) => Err(StoreError::DataTooLarge {
                size,
                max: max_data_bytes,
            }),
            other => Err(StoreError::Corrupt(format!("unexpected reply {other:?}"))),
        }
    }

    async fn extend(
        &self,
        id: &SessionId,
        idle_ttl_ms: Option<u64>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let keys = [self.keys.session(id)];
        let args = [
            self.keys.base(&id.shard()),
            Self::time(now),
            id.as_str().to_owned(),
            idle_ttl_ms.map(|t| t.to_string()).unwrap_or_default(),
        ];
        let reply = self
            .conn
            .eval(&SCRIPTS.extend, &keys, &args, Retry::Never)
            .await?;
        Self::maybe_session(&reply)
    }

    async fn rotate(
        &self,
        target: &RotateTarget,
        new_token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let (tag, second_key, mode, target_arg) = match target {
            RotateTarget::Id(id) => (
                id.shard(),
                self.keys.session(id),
                "id",
                id.as_str().to_owned(),
            ),
            RotateTarget::Token(old) => (
                old.shard.clone(),
                self.keys.token(old),
                "token",
                old.hash.to_base64(),
            ),
        };
        let keys = [self.keys.token_in(&tag, new_token), second_key];
        let args = [
            self.keys.base(&tag),
            Self::time(now),
            new_token.to_base64(),
            mode.to_owned(),
            target_arg,
        ];
        let reply = self
            .conn
            .eval(&SCRIPTS.rotate, &keys, &args, Retry::Never)
            .await?;
        Self::maybe_session(&reply)
    }

    async fn refresh(
        &self,
        request: &RefreshRequest,
        now: Timestamp,
    ) -> Result<RefreshOutcome, StoreError> {
        let family = &request.family;
        let keys = [self.keys.token(family)];
        let args = [
            self.keys.base(&family.shard),
            Self::time(now),
            family.hash.to_base64(),
            request.presented.to_base64(),
            request.successor.to_base64(),
            URL_SAFE_NO_PAD.encode(request.wrapped_successor),
            request.reuse_grace_ms.to_string(),
        ];
        let reply = self
            .conn
            .eval(&SCRIPTS.refresh, &keys, &args, Retry::Never)
            .await?;
        codec::refresh_outcome(&reply)
    }

    async fn revoke(
        &self,
        id: &SessionId,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let keys = [self.keys.session(id)];
        let args = [
            self.keys.base(&id.shard()),
            Self::time(now),
            id.as_str().to_owned(),
        ];
        let reply = self
            .conn
            .eval(&SCRIPTS.revoke, &keys, &args, Retry::Never)
            .await?;
        let removed = codec::integer(&reply)? == 1;
        if removed {
            tracing::trace!(session_id = %id, reason = %reason, "session removed from redis");
        }
        Ok(removed)
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        let keys = [self.keys.user(user_id)];
        let args = [self.keys.base(&ShardTag::of_user(user_id)), Self::time(now)];
        let reply = self
            .conn
            .eval(&SCRIPTS.list_user, &keys, &args, Retry::Once)
            .await?;
        match codec::tagged(&reply)? {
            Reply::Rest(items) => codec::session_list(items),
            other => Err(StoreError::Corrupt(format!("unexpected reply {other:?}"))),
        }
    }

    async fn count_live(&self, _now: Timestamp) -> Result<u64, StoreError> {
        // Session hashes expire with their idle deadline (Redis TTL), so the
        // keys present are the live sessions, give or take the last second.
        self.conn
            .count_keys(&self.keys.all_sessions_pattern())
            .await
    }

    async fn count_user(&self, user_id: &str, now: Timestamp) -> Result<u64, StoreError> {
        let keys = [self.keys.user(user_id)];
        let args = [self.keys.base(&ShardTag::of_user(user_id)), Self::time(now)];
        let reply = self
            .conn
            .eval(&SCRIPTS.count_user, &keys, &args, Retry::Once)
            .await?;
        u64::try_from(codec::integer(&reply)?)
            .map_err(|_| StoreError::Corrupt("negative count".into()))
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&SessionId>,
        _reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let keys = [self.keys.user(user_id)];
        let args = [
            self.keys.base(&ShardTag::of_user(user_id)),
            Self::time(now),
            except.map(|id| id.as_str().to_owned()).unwrap_or_default(),
        ];
        let reply = self
            .conn
            .eval(&SCRIPTS.revoke_user, &keys, &args, Retry::Never)
            .await?;
        codec::id_list(codec::array(&reply)?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn.ping().await
    }
}
