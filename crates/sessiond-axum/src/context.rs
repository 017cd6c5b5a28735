//! The per-request session state handlers see: [`SessionContext`] (always
//! present; logs in) and [`Session`] (a live session: data, logout, devices).
//! Data changes are collected here and saved by the layer after the handler.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sessiond_api::SessionView;
use sessiond_engine::{Aal, RevokeReason, SessionData, SessionId, Timestamp, csrf_token_for};

use crate::backend::{BackendError, NewLogin, SessionBackend};
use crate::error::Error;

/// The request's session state, shared by every handle of one request.
#[derive(Clone)]
pub struct SessionContext {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn SessionBackend>,
    state: Mutex<State>,
    /// The request's cookie named no live session.
    ended: bool,
}

/// What the layer does with the cookie once the handler is done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CookieChange {
    /// Leave it.
    Keep,
    /// Set it to a new token, for this many seconds.
    Set { token: String, max_age_secs: u64 },
    /// Remove it.
    Clear,
}

pub(crate) struct State {
    /// The live session, if any.
    current: Option<Current>,
    /// Data changes not saved yet: key → new value (`null`: removed).
    changes: SessionData,
    cookie: CookieChange,
    /// Device facts of the request, for a login.
    user_agent: Option<String>,
    ip: Option<String>,
}

struct Current {
    session: SessionView,
    /// The credential that proves it (for the CSRF token); never logged.
    token: String,
}

/// Work the layer does after the handler.
pub(crate) struct Pending {
    pub(crate) save: Option<(SessionId, SessionData)>,
    pub(crate) cookie: CookieChange,
}

impl SessionContext {
    pub(crate) fn new(
        backend: Arc<dyn SessionBackend>,
        loaded: Option<(SessionView, String)>,
        user_agent: Option<String>,
        ip: Option<String>,
        ended: bool,
    ) -> Self {
        let current = loaded.map(|(session, token)| Current { session, token });
        Self {
            inner: Arc::new(Inner {
                backend,
                ended,
                state: Mutex::new(State {
                    current,
                    changes: SessionData::new(),
                    cookie: CookieChange::Keep,
                    user_agent,
                    ip,
                }),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A handler that panicked while holding the lock left consistent
        // data (every change is one insert): carry on with it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live session of this request, if any.
    pub fn session(&self) -> Option<Session> {
        let s = self.state();
        let c = s.current.as_ref()?;
        Some(Session::of(self.clone(), &c.session))
    }

    /// Whether the request presented a session cookie that names no live
    /// session: it was signed out from another device, revoked, or expired
    /// (the layer clears that cookie). Lets a page say why the user must
    /// sign in again.
    pub fn ended(&self) -> bool {
        self.inner.ended
    }

    /// Start a session for a user the app has just authenticated, with a
    /// fresh token in the cookie. A session the request came with is ended
    /// (so a token planted before login never gains the user's identity:
    /// fixation safe), and so are its unsaved changes.
    pub async fn login(&self, user_id: &str, role: Option<&str>) -> Result<Session, Error> {
        self.login_with(user_id, role, SessionData::new()).await
    }

    /// [`SessionContext::login`] with initial data.
    pub async fn login_with(
        &self,
        user_id: &str,
        role: Option<&str>,
        data: SessionData,
    ) -> Result<Session, Error> {
        self.start(NewLogin {
            user_id: user_id.to_owned(),
            role: role.map(str::to_owned),
            data,
            ..NewLogin::default()
        })
        .await
    }

    /// [`SessionContext::login`] recording how the user authenticated: the
    /// assurance level reached (`Aal::Aal2` after a second factor…) and the
    /// methods used (`pwd`, `otp`…), as [`crate::RequireAal`] and the
    /// session's `aal`/`amr` then show.
    pub async fn login_authenticated(
        &self,
        user_id: &str,
        role: Option<&str>,
        aal: Aal,
        methods: &[&str],
    ) -> Result<Session, Error> {
        self.start(NewLogin {
            user_id: user_id.to_owned(),
            role: role.map(str::to_owned),
            aal: Some(aal),
            amr: methods.iter().map(|m| (*m).to_owned()).collect(),
            ..NewLogin::default()
        })
        .await
    }

    /// Create the session of `login` from this request's device, ending the
    /// one the request came with.
    async fn start(&self, mut login: NewLogin) -> Result<Session, Error> {
        let previous = {
            let s = self.state();
            login.user_agent.clone_from(&s.user_agent);
            login.ip.clone_from(&s.ip);
            s.current.as_ref().map(|c| c.session.id.clone())
        };
        let created = self.inner.backend.create(login).await?;
        if let Some(previous) = previous
            && let Err(e) = self
                .inner
                .backend
                .revoke(&previous, RevokeReason::Logout)
                .await
        {
            // The new session is the user's; the old token still names only
            // the old session, so nothing is gained by failing the login.
            tracing::warn!(session_id = %previous, error = %e, "ending the session replaced by a login");
        }
        let max_age_secs = seconds_until(
            created.session.absolute_expires_at,
            created.session.created_at,
        );
        let mut s = self.state();
        s.changes.clear();
        let token = created.token.into_inner();
        s.cookie = CookieChange::Set {
            token: token.clone(),
            max_age_secs,
        };
        let session = Session::of(self.clone(), &created.session);
        s.current = Some(Current {
            session: created.session,
            token,
        });
        Ok(session)
    }

    /// Work left for the layer: the data to save (one write) and the cookie.
    pub(crate) fn take_pending(&self) -> Pending {
        let mut s = self.state();
        let changes = std::mem::take(&mut s.changes);
        let save = match &s.current {
            Some(c) if !changes.is_empty() => Some((c.session.id.clone(), changes)),
            _ => None,
        };
        Pending {
            save,
            cookie: s.cookie.clone(),
        }
    }

    pub(crate) fn backend(&self) -> &Arc<dyn SessionBackend> {
        &self.inner.backend
    }
}

impl fmt::Debug for SessionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state();
        f.debug_struct("SessionContext")
            .field("session", &s.current.as_ref().map(|c| &c.session.id))
            .field("unsaved_keys", &s.changes.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn seconds_until(deadline: Timestamp, from: Timestamp) -> u64 {
    u64::try_from(deadline.as_millis().saturating_sub(from.as_millis())).unwrap_or(0) / 1000
}

/// A live session, for handlers. Cloning is cheap; all clones of one request
/// share its state. Changes to its data are saved once, after the handler.
#[derive(Clone)]
pub struct Session {
    ctx: SessionContext,
    id: SessionId,
    user_id: String,
    role: Option<String>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Session {
    fn of(ctx: SessionContext, view: &SessionView) -> Self {
        Self {
            ctx,
            id: view.id.clone(),
            user_id: view.user_id.clone(),
            role: view.role.clone(),
        }
    }

    /// Work on this session's state, or fail with [`Error::NoSession`] once
    /// it was logged out (or replaced by a login) in this request.
    fn with<T>(&self, f: impl FnOnce(&mut Current, &mut SessionData) -> T) -> Result<T, Error> {
        let mut guard = self.ctx.state();
        let State {
            current, changes, ..
        } = &mut *guard;
        match current.as_mut() {
            Some(c) if c.session.id == self.id => Ok(f(c, changes)),
            _ => Err(Error::NoSession),
        }
    }

    /// A snapshot of the session as loaded, with this request's changes.
    pub fn view(&self) -> Result<SessionView, Error> {
        self.with(|c, _| c.session.clone())
    }

    /// The session's public id (safe to show and log).
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The user it belongs to.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Its role, if any.
    pub fn role(&self) -> Option<&str> {
        self.role.as_deref()
    }

    /// The token to put in forms (`csrf_token` field) or send as the
    /// `x-csrf-token` header on unsafe requests.
    pub fn csrf_token(&self) -> String {
        self.with(|c, _| csrf_token_for(&c.token))
            .unwrap_or_default()
    }

    /// The value under `key`, if there is one.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let value = self.with(|c, _| c.session.data.get(key).cloned())?;
        match value {
            None => Ok(None),
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| Error::Data(format!("{key}: {e}"))),
        }
    }

    /// Set `key` to `value` (a `null` value removes the key). Saved after the
    /// handler; setting the value it already has changes nothing.
    pub fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), Error> {
        let value = serde_json::to_value(value).map_err(|e| Error::Data(format!("{key}: {e}")))?;
        if value.is_null() {
            self.remove(key)?;
            return Ok(());
        }
        self.with(|c, changes| {
            if c.session.data.get(key) != Some(&value) {
                c.session.data.insert(key.to_owned(), value.clone());
                changes.insert(key.to_owned(), value);
            }
        })
    }

    /// Remove `key`; whether it was there.
    pub fn remove(&self, key: &str) -> Result<bool, Error> {
        self.with(|c, changes| {
            let was_there = c.session.data.remove(key).is_some();
            if was_there {
                changes.insert(key.to_owned(), Value::Null);
            }
            was_there
        })
    }

    /// Record that the user just authenticated again in this session (a
    /// second factor, a password re-entered): `aal` raises its level (never
    /// lowers it), `method` joins its methods, its authentication time
    /// becomes now. The token stays; guards later in this request see the
    /// new level. [`Error::NoSession`] if the session ended meanwhile.
    pub async fn step_up(&self, aal: Aal, method: &str) -> Result<(), Error> {
        self.with(|_, _| ())?;
        let Some(updated) = self
            .ctx
            .backend()
            .authenticate(&self.id, aal, method)
            .await?
        else {
            return Err(Error::NoSession);
        };
        self.with(|c, _| {
            c.session.authenticated_at = updated.authenticated_at;
            c.session.aal = updated.aal;
            c.session.amr = updated.amr;
        })
    }

    /// End this session now and clear the cookie. Unsaved changes are dropped.
    pub async fn logout(&self) -> Result<(), Error> {
        self.with(|_, _| ())?;
        self.ctx
            .backend()
            .revoke(&self.id, RevokeReason::Logout)
            .await?;
        let mut s = self.ctx.state();
        s.current = None;
        s.changes.clear();
        s.cookie = CookieChange::Clear;
        Ok(())
    }

    /// The user's live sessions, newest first, this one marked `current`.
    pub async fn devices(&self) -> Result<Vec<SessionView>, Error> {
        self.with(|_, _| ())?;
        let mut sessions = self.ctx.backend().list_user(&self.user_id).await?;
        for s in &mut sessions {
            s.current = Some(s.id == self.id);
        }
        Ok(sessions)
    }

    /// End every other session of the user ("sign out all other devices");
    /// how many ended.
    pub async fn sign_out_others(&self) -> Result<u64, Error> {
        self.with(|_, _| ())?;
        Ok(self
            .ctx
            .backend()
            .revoke_user(
                &self.user_id,
                Some(&self.id),
                RevokeReason::SignedOutOtherDevices,
            )
            .await?)
    }

    /// End one of the user's sessions by id (this one too: that is a
    /// logout). [`Error::NotFound`] if no live session of the user has it,
    /// so one user can never end another's.
    pub async fn sign_out(&self, id: &SessionId) -> Result<(), Error> {
        if *id == self.id {
            return self.logout().await;
        }
        self.with(|_, _| ())?;
        match self.ctx.backend().get(id).await? {
            Some(s) if s.user_id == self.user_id => {
                self.ctx
                    .backend()
                    .revoke(id, RevokeReason::RevokedByUser)
                    .await?;
                Ok(())
            }
            _ => Err(Error::NotFound),
        }
    }
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        Error::Backend(e)
    }
}
