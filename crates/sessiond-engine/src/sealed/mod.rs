//! Encryption at rest: [`SealedStore`] wraps any store and seals what an app
//! would not want in a stolen dump — each `data` value and the device's user
//! agent and IP — with XChaCha20-Poly1305 under the current data key, and
//! opens them on the way out. Values are sealed one by one, so a merge stays
//! a per-key atomic change in every store.
//!
//! A sealed value is the string `sdenc:<len>:<key id>:<base64url(nonce |
//! ciphertext)>`, where `len` is the byte length of the plaintext (for a
//! data value, its compact JSON): stores measure a sealed value by it
//! ([`crate::data_size`]), so the data limit means the same with or
//! without encryption. The associated data binds each value to its
//! session and field, so a value moved elsewhere does not open.

pub mod format;
pub mod keys;

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::Value;

use crate::authentication::Authentication;
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::events::{EventPage, EventQuery};
use crate::history::HistoryEvent;
use crate::id::SessionId;
use crate::listing::{SessionFilter, SessionPage, SessionQuery};
use crate::presence::{Beaten, ConnectionBeat, ConnectionId, Presence};
use crate::session::{DataUpdate, RevokeReason, Session, SessionData, TouchRule};
use crate::store::{
    IssuedBefore, NewSession, NodeHealth, RefreshOutcome, RefreshRequest, RotateTarget, Store,
};
use crate::token::{TokenDigest, TokenHash};
pub use format::{PREFIX, has_reserved_value, sealed_len};
pub use keys::{DataKeys, KeyFileError};

/// A store whose data values and device user agent and IP are sealed at
/// rest. Put it above a near-cache (which then holds sealed records).
#[derive(Debug)]
pub struct SealedStore {
    inner: Arc<dyn Store>,
    sealer: Sealer,
}

/// Seals and opens single values with the current and older data keys.
#[derive(Debug)]
struct Sealer {
    keys: Arc<DataKeys>,
}

fn aad(session_id: &SessionId, field: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + field.len());
    out.extend_from_slice(b"sessiond-sealed-v1|");
    out.extend_from_slice(session_id.as_str().as_bytes());
    out.push(b'|');
    out.extend_from_slice(field.as_bytes());
    out
}

impl SealedStore {
    /// `inner`, sealed with `keys`.
    pub fn new(inner: Arc<dyn Store>, keys: Arc<DataKeys>) -> Self {
        Self {
            inner,
            sealer: Sealer { keys },
        }
    }
}

impl Sealer {
    fn seal(&self, id: &SessionId, field: &str, plain: &[u8]) -> Result<String, StoreError> {
        let key = self.keys.current();
        let cipher = XChaCha20Poly1305::new(&key.key.into());
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce)
            .map_err(|e| StoreError::Unavailable(format!("no randomness for a nonce: {e}")))?;
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad(id, field),
                },
            )
            .map_err(|_| StoreError::Corrupt("a value could not be sealed".into()))?;
        let mut raw = Vec::with_capacity(24 + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        Ok(format!(
            "{PREFIX}{}:{}:{}",
            plain.len(),
            key.id,
            URL_SAFE_NO_PAD.encode(raw)
        ))
    }

    /// The plaintext of a sealed value; a value that is not sealed (written
    /// before encryption was turned on) is returned as it is.
    fn open(&self, id: &SessionId, field: &str, text: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(rest) = text.strip_prefix(PREFIX) else {
            return Ok(None);
        };
        let bad = |why: &str| StoreError::Corrupt(format!("session {id}: sealed {field}: {why}"));
        let mut parts = rest.splitn(3, ':');
        let (Some(len), Some(kid), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("malformed"));
        };
        let key = self.keys.find(kid).ok_or_else(|| {
            bad(&format!(
                "sealed with key {kid}, which the key file does not hold"
            ))
        })?;
        let raw = URL_SAFE_NO_PAD.decode(b64).map_err(|_| bad("malformed"))?;
        if raw.len() < 24 {
            return Err(bad("malformed"));
        }
        let (nonce, sealed) = raw.split_at(24);
        let plain = XChaCha20Poly1305::new(&key.into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad(id, field),
                },
            )
            .map_err(|_| bad("does not open (altered, or moved from elsewhere)"))?;
        if len.parse::<usize>().ok() != Some(plain.len()) {
            return Err(bad("length does not match"));
        }
        Ok(Some(plain))
    }
}

impl SealedStore {
    fn seal_value(&self, id: &SessionId, key: &str, value: &Value) -> Result<Value, StoreError> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let json = serde_json::to_vec(value)
            .map_err(|e| StoreError::Corrupt(format!("data value does not encode: {e}")))?;
        Ok(Value::String(self.sealer.seal(
            id,
            &format!("data:{key}"),
            &json,
        )?))
    }

    fn seal_data(&self, id: &SessionId, data: &SessionData) -> Result<SessionData, StoreError> {
        data.iter()
            .map(|(k, v)| Ok((k.clone(), self.seal_value(id, k, v)?)))
            .collect()
    }

    fn seal_text(
        &self,
        id: &SessionId,
        field: &str,
        text: &mut Option<String>,
    ) -> Result<(), StoreError> {
        if let Some(t) = text.as_deref() {
            *text = Some(self.sealer.seal(id, field, t.as_bytes())?);
        }
        Ok(())
    }

    fn open_text(
        &self,
        id: &SessionId,
        field: &str,
        text: &mut Option<String>,
    ) -> Result<(), StoreError> {
        if let Some(t) = text.as_deref()
            && let Some(plain) = self.sealer.open(id, field, t)?
        {
            *text = Some(String::from_utf8(plain).map_err(|_| {
                StoreError::Corrupt(format!("session {id}: sealed {field}: not text"))
            })?);
        }
        Ok(())
    }

    fn seal_session(&self, s: &mut Session) -> Result<(), StoreError> {
        s.data = self.seal_data(&s.id, &s.data)?;
        self.seal_text(&s.id, "user_agent", &mut s.device.user_agent)?;
        self.seal_text(&s.id, "ip", &mut s.device.ip)
    }

    fn open_session(&self, mut s: Session) -> Result<Session, StoreError> {
        let id = s.id.clone();
        for (key, value) in &mut s.data {
            if let Value::String(text) = value
                && let Some(plain) = self.sealer.open(&id, &format!("data:{key}"), text)?
            {
                *value = serde_json::from_slice(&plain).map_err(|_| {
                    StoreError::Corrupt(format!("session {id}: sealed data:{key}: not JSON"))
                })?;
            }
        }
        self.open_text(&id, "user_agent", &mut s.device.user_agent)?;
        self.open_text(&id, "ip", &mut s.device.ip)?;
        Ok(s)
    }

    fn open_maybe(
        &self,
        s: Result<Option<Session>, StoreError>,
    ) -> Result<Option<Session>, StoreError> {
        s?.map(|s| self.open_session(s)).transpose()
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Store for SealedStore {
    async fn create(&self, new: &NewSession, now: Timestamp) -> Result<Vec<SessionId>, StoreError> {
        let mut sealed = new.clone();
        self.seal_session(&mut sealed.session)?;
        self.inner.create(&sealed, now).await
    }

    async fn introspect(
        &self,
        token: &TokenDigest,
        touch: Option<TouchRule>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        self.open_maybe(self.inner.introspect(token, touch, now).await)
    }

    async fn get(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.open_maybe(self.inner.get(id, now).await)
    }

    async fn update_data(
        &self,
        id: &SessionId,
        update: &DataUpdate,
        max_data_bytes: usize,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let sealed = match update {
            DataUpdate::Merge(d) => DataUpdate::Merge(self.seal_data(id, d)?),
            DataUpdate::Replace(d) => DataUpdate::Replace(self.seal_data(id, d)?),
        };
        self.open_maybe(
            self.inner
                .update_data(id, &sealed, max_data_bytes, now)
                .await,
        )
    }

    async fn extend(
        &self,
        id: &SessionId,
        idle_ttl_ms: Option<u64>,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        self.open_maybe(self.inner.extend(id, idle_ttl_ms, now).await)
    }

    async fn authenticate(
        &self,
        id: &SessionId,
        auth: &Authentication,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        self.open_maybe(self.inner.authenticate(id, auth, now).await)
    }

    async fn rotate(
        &self,
        target: &RotateTarget,
        new_token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        self.open_maybe(self.inner.rotate(target, new_token, now).await)
    }

    async fn refresh(
        &self,
        request: &RefreshRequest,
        now: Timestamp,
    ) -> Result<RefreshOutcome, StoreError> {
        Ok(match self.inner.refresh(request, now).await? {
            RefreshOutcome::Rotated {
                session,
                generation,
            } => RefreshOutcome::Rotated {
                session: self.open_session(session)?,
                generation,
            },
            RefreshOutcome::Replayed {
                session,
                generation,
                rotated_at,
                wrapped_successor,
            } => RefreshOutcome::Replayed {
                session: self.open_session(session)?,
                generation,
                rotated_at,
                wrapped_successor,
            },
            other => other,
        })
    }

    async fn revoke(
        &self,
        id: &SessionId,
        reason: &RevokeReason,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.revoke(id, reason, now).await
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        self.inner
            .list_user(user_id, now)
            .await?
            .into_iter()
            .map(|s| self.open_session(s))
            .collect()
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
        self.inner.revoke_user(user_id, except, reason, now).await
    }

    async fn revoke_issued_before(
        &self,
        revocation: &IssuedBefore,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        self.inner.revoke_issued_before(revocation, now).await
    }

    async fn not_before(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        self.inner.not_before(user_id, now).await
    }

    /// The store cannot compare sealed IPs: an `ip` filter is applied here,
    /// to the opened sessions of each page (a page may then be shorter, as
    /// the listing allows; its cursor is the store's).
    async fn list_sessions(
        &self,
        query: &SessionQuery,
        now: Timestamp,
    ) -> Result<SessionPage, StoreError> {
        let mut inner_query = query.clone();
        let ip_only = SessionFilter {
            ip: inner_query.filter.ip.take(),
            ..SessionFilter::default()
        };
        let page = self.inner.list_sessions(&inner_query, now).await?;
        let mut sessions = Vec::with_capacity(page.sessions.len());
        for s in page.sessions {
            let s = self.open_session(s)?;
            if ip_only.matches(&s) {
                sessions.push(s);
            }
        }
        Ok(SessionPage {
            sessions,
            next_cursor: page.next_cursor,
        })
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
        let mut events = self.inner.history(user_id, limit, before, now).await?;
        for e in &mut events {
            self.open_text(&e.session_id, "ip", &mut e.ip)?;
        }
        Ok(events)
    }

    async fn events(&self, query: &EventQuery, now: Timestamp) -> Result<EventPage, StoreError> {
        let mut page = self.inner.events(query, now).await?;
        for e in &mut page.events {
            self.open_text(&e.session_id, "ip", &mut e.ip)?;
        }
        Ok(page)
    }

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
        let mut presence = self.inner.presence(user_id, now).await?;
        for d in &mut presence.devices {
            let id = d.session_id.clone();
            self.open_text(&id, "user_agent", &mut d.device.user_agent)?;
            self.open_text(&id, "ip", &mut d.device.ip)?;
        }
        Ok(presence)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn nodes(&self) -> Result<Vec<NodeHealth>, StoreError> {
        self.inner.nodes().await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ShardTag;

    #[test]
    fn sealed_lengths_are_read_and_app_values_are_checked() {
        assert_eq!(sealed_len("sdenc:12:k1:AAAA"), Some(12));
        assert_eq!(sealed_len("sdenc:x:k1:AAAA"), None);
        assert_eq!(sealed_len("plain"), None);
        let Value::Object(bad) = serde_json::json!({"a": "sdenc:1:k1:x"}) else {
            unreachable!()
        };
        assert!(has_reserved_value(&bad));
        let Value::Object(ok) = serde_json::json!({"a": "sden", "b": ["sdenc:"]}) else {
            unreachable!()
        };
        assert!(!has_reserved_value(&ok));
    }

    #[test]
    fn values_open_only_in_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        DataKeys::rotate(&path).unwrap();
        let keys = Arc::new(DataKeys::load(&path).unwrap());
        let store = Sealer { keys };
        let a = SessionId::generate(&ShardTag::of_user("a"));
        let b = SessionId::generate(&ShardTag::of_user("b"));
        let sealed = store.seal(&a, "ip", b"192.0.2.1").unwrap();
        assert_eq!(sealed_len(&sealed), Some(9));
        assert!(!sealed.contains("192.0.2.1"));
        assert_eq!(
            store.open(&a, "ip", &sealed).unwrap().unwrap(),
            b"192.0.2.1"
        );
        assert!(matches!(
            store.open(&b, "ip", &sealed),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            store.open(&a, "user_agent", &sealed),
            Err(StoreError::Corrupt(_))
        ));
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(matches!(
            store.open(&a, "ip", &flipped),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(
            store.open(&a, "ip", "192.0.2.1").unwrap(),
            None,
            "plain stays plain"
        );
    }
}
