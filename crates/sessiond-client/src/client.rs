//! [`Client`]: one method per route of the sessiond HTTP API. Path segments
//! are percent-encoded through the URL builder; tokens travel only in bodies
//! and the `Authorization` header.

use std::fmt;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;
use sessiond_engine::{Mode, SessionData, SessionId, Timestamp};

use sessiond_api::{
    Aal, AuthQuery, Authenticate, ConnectionBeat, ConnectionView, CreateSession, Created,
    CreatedJwt, Extend, HistoryList, Introspect, Introspection, ListSessionsQuery, PatchData,
    PresenceView, Readiness, RefreshBody, RevokeIssuedBefore, RevokedCount, Rotated, Secret,
    SessionList, SessionListPage, SessionView, Stats, TokenPair,
};

use crate::error::Error;

/// Per-request timeout unless [`Client::with_timeout`] sets another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of one sessiond server. Cloning is cheap (the connection pool is
/// shared); `Debug` shows the base URL and timeout, never the API key.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    admin_auth: HeaderValue,
    timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base.as_str())
            .field("timeout", &self.timeout)
            .field("api_key", &"[redacted]")
            .finish()
    }
}

impl Client {
    /// A client of the server at `base_url` (like `"http://127.0.0.1:7420"`,
    /// optionally with a path prefix) using `api_key` for the admin routes.
    /// Public routes work with any key, even an empty one.
    ///
    /// Fails with [`Error::Config`] when the URL is not an `http(s)` URL
    /// without query, fragment and credentials, or the key cannot be sent
    /// in a header.
    pub fn new(base_url: &str, api_key: impl Into<String>) -> Result<Client, Error> {
        let base = parse_base(base_url)?;
        let mut admin_auth =
            HeaderValue::from_str(&format!("Bearer {}", api_key.into())).map_err(|_| {
                Error::Config("the API key contains characters not allowed in a header".into())
            })?;
        admin_auth.set_sensitive(true);
        Ok(Client {
            http: http_client(DEFAULT_TIMEOUT)?,
            base,
            admin_auth,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same client with another per-request timeout (connect, send and
    /// read the whole answer). A request that runs out of time fails with
    /// [`Error::Unavailable`]. A zero timeout is an [`Error::Config`].
    pub fn with_timeout(self, timeout: Duration) -> Result<Client, Error> {
        if timeout.is_zero() {
            return Err(Error::Config("the timeout must be above zero".into()));
        }
        Ok(Client {
            http: http_client(timeout)?,
            timeout,
            ..self
        })
    }

    /// The base URL requests are sent under.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    // ---- admin routes -------------------------------------------------

    /// Create an opaque-mode session (`POST /v1/sessions`).
    pub async fn create(&self, req: &CreateSession) -> Result<Created, Error> {
        let body = CreateSession {
            mode: Some(Mode::Opaque),
            ..req.clone()
        };
        let url = self.url(&["v1", "sessions"])?;
        self.json(self.admin(Method::POST, url).json(&body)).await
    }

    /// Create a JWT-mode session: an access token and a refresh token.
    pub async fn create_jwt(&self, req: &CreateSession) -> Result<CreatedJwt, Error> {
        let body = CreateSession {
            mode: Some(Mode::Jwt),
            ..req.clone()
        };
        let url = self.url(&["v1", "sessions"])?;
        self.json(self.admin(Method::POST, url).json(&body)).await
    }

    /// Check a session token or a JWT access token. `Ok(None)` when it does
    /// not prove a live session; `touch` records activity (slides the idle
    /// deadline, coalesced by the server).
    pub async fn introspect(&self, token: &str, touch: bool) -> Result<Option<SessionView>, Error> {
        let url = self.url(&["v1", "sessions", "introspect"])?;
        let body = Introspect {
            token: Secret::new(token),
            touch: Some(touch),
            max_age: None,
            min_aal: None,
            ip: None,
            user_agent: None,
        };
        let answer: Introspection = self.json(self.admin(Method::POST, url).json(&body)).await?;
        match (answer.active, answer.session) {
            (true, Some(session)) => Ok(Some(session)),
            (true, None) => Err(Error::Decode(
                "active introspection without a session".into(),
            )),
            (false, _) => Ok(None),
        }
    }

    /// Read one session; [`Error::NotFound`] unless it is live.
    pub async fn get(&self, id: &SessionId) -> Result<SessionView, Error> {
        let url = self.url(&["v1", "sessions", id.as_str()])?;
        self.json(self.admin(Method::GET, url)).await
    }

    /// Merge `data` into the session's data (`merge`: top-level keys, a
    /// `null` value removes its key) or replace it. Expiry is unchanged.
    pub async fn update_data(
        &self,
        id: &SessionId,
        data: &SessionData,
        merge: bool,
    ) -> Result<SessionView, Error> {
        let url = self.url(&["v1", "sessions", id.as_str()])?;
        let body = PatchData {
            data: data.clone(),
            merge: Some(merge),
        };
        self.json(self.admin(Method::PATCH, url).json(&body)).await
    }

    /// Push the idle deadline `idle_ttl` from now (default: the session's
    /// idle timeout), never past the absolute deadline. Sent in whole
    /// seconds, rounded up.
    pub async fn extend(
        &self,
        id: &SessionId,
        idle_ttl: Option<Duration>,
    ) -> Result<SessionView, Error> {
        let url = self.url(&["v1", "sessions", id.as_str(), "extend"])?;
        let body = Extend { idle_ttl };
        self.json(self.admin(Method::POST, url).json(&body)).await
    }

    /// Check a token as [`Client::introspect`] does, and also that its
    /// session's authentication meets `requirement`: else
    /// [`Error::InsufficientAal`] or [`Error::ReauthenticationRequired`].
    pub async fn introspect_requiring(
        &self,
        token: &str,
        touch: bool,
        requirement: &AuthQuery,
    ) -> Result<Option<SessionView>, Error> {
        let url = self.url(&["v1", "sessions", "introspect"])?;
        let body = Introspect {
            token: Secret::new(token),
            touch: Some(touch),
            max_age: requirement.max_age,
            min_aal: requirement.min_aal,
            ip: None,
            user_agent: None,
        };
        let answer: Introspection = self.json(self.admin(Method::POST, url).json(&body)).await?;
        Ok(answer.active.then_some(answer.session).flatten())
    }

    /// Record a new authentication of the session's user (step-up): its
    /// level rises to `aal`, `method` joins its methods, its
    /// `authenticated_at` becomes now.
    pub async fn authenticate(
        &self,
        id: &SessionId,
        aal: Aal,
        method: &str,
    ) -> Result<SessionView, Error> {
        let url = self.url(&["v1", "sessions", id.as_str(), "authenticate"])?;
        let body = Authenticate {
            aal: Some(aal),
            method: method.to_owned(),
        };
        self.json(self.admin(Method::POST, url).json(&body)).await
    }

    /// Give the session a new token; the old one stops working at once.
    pub async fn rotate(&self, id: &SessionId) -> Result<Rotated, Error> {
        let url = self.url(&["v1", "sessions", id.as_str(), "rotate"])?;
        self.json(self.admin(Method::POST, url)).await
    }

    /// Revoke a session (default reason `revoked_by_admin`). Succeeds also
    /// when it is already gone.
    pub async fn revoke(&self, id: &SessionId, reason: Option<&str>) -> Result<(), Error> {
        let mut url = self.url(&["v1", "sessions", id.as_str()])?;
        if let Some(reason) = reason {
            url.query_pairs_mut().append_pair("reason", reason);
        }
        self.empty(self.admin(Method::DELETE, url)).await
    }

    /// A user's live sessions, newest first.
    pub async fn list_user(&self, user_id: &str) -> Result<Vec<SessionView>, Error> {
        let url = self.url(&["v1", "users", user_segment(user_id)?, "sessions"])?;
        let list: SessionList = self.json(self.admin(Method::GET, url)).await?;
        Ok(list.sessions)
    }

    /// One page of the live sessions of all users that `query` filters
    /// (every filter given must hold): at most its `limit` (the server's
    /// default, 100, when `None`), after its `cursor` (the previous page's
    /// `next_cursor`). Paging until `next_cursor` is `None` gives every
    /// session that stayed live all along exactly once; a page may hold
    /// fewer sessions than the limit, even none, before the end.
    pub async fn list_sessions(&self, query: &ListSessionsQuery) -> Result<SessionListPage, Error> {
        let mut url = self.url(&["v1", "sessions"])?;
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(user_id) = &query.user_id {
                pairs.append_pair("user_id", user_id);
            }
            if let Some(ip) = query.ip {
                pairs.append_pair("ip", &ip.to_string());
            }
            if let Some(kind) = query.device_kind {
                pairs.append_pair("device_kind", kind.as_str());
            }
            if let Some(after) = query.created_after {
                pairs.append_pair("created_after", &after.to_rfc3339());
            }
            if let Some(limit) = query.limit {
                pairs.append_pair("limit", &limit.to_string());
            }
            if let Some(cursor) = &query.cursor {
                pairs.append_pair("cursor", cursor);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.json(self.admin(Method::GET, url)).await
    }

    /// One page of a user's lifecycle events, newest first: at most `limit`
    /// (the server's default when `None`), older than `cursor` (the
    /// previous page's `next_cursor`). Only SQL stores keep history: on
    /// Redis the server answers 501 ([`Error::Server`]).
    pub async fn history(
        &self,
        user_id: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<HistoryList, Error> {
        let mut url = self.url(&["v1", "users", user_segment(user_id)?, "history"])?;
        if limit.is_some() || cursor.is_some() {
            let mut query = url.query_pairs_mut();
            if let Some(limit) = limit {
                query.append_pair("limit", &limit.to_string());
            }
            if let Some(cursor) = cursor {
                query.append_pair("cursor", cursor);
            }
        }
        self.json(self.admin(Method::GET, url)).await
    }

    /// Subscribe to the event feed (`GET /v1/events`): a stream that gives
    /// every event once, in order, and resumes by itself after a
    /// disconnect (see [`EventStream`](crate::EventStream)). Nothing is
    /// sent until the stream is first polled.
    pub fn events(&self, request: &crate::EventsRequest) -> Result<crate::EventStream, Error> {
        let url = self.url(&["v1", "events"])?;
        crate::events::subscribe(url, self.admin_auth.clone(), self.timeout, request)
    }

    /// Register a live connection (a WebSocket, say) on a session, or keep
    /// it alive: a heartbeat. It ends `ttl` after this call (1 s to 1 h,
    /// sent in whole seconds rounded up; the server's default, 60 s, when
    /// `None`) unless another heartbeat comes, or with its session. `node`
    /// names the app instance holding it (kept from an earlier heartbeat
    /// when `None`). Returns the connection and whether this call opened it
    /// (201; a heartbeat on a live one is 200). [`Error::NotFound`] when the
    /// session is not live: the connection must end too. The embedded and
    /// PostgreSQL stores keep connections; on Redis the server answers 501
    /// ([`Error::Server`]).
    pub async fn beat_connection(
        &self,
        session_id: &SessionId,
        connection_id: &str,
        node: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<(ConnectionView, bool), Error> {
        let url = self.url(&[
            "v1",
            "sessions",
            session_id.as_str(),
            "connections",
            path_segment("connection id", connection_id)?,
        ])?;
        let body = ConnectionBeat {
            ttl,
            node: node.map(str::to_owned),
        };
        let response = self.send(self.admin(Method::PUT, url).json(&body)).await?;
        let opened = response.status() == reqwest::StatusCode::CREATED;
        let body = response.bytes().await.map_err(|e| Error::transport(&e))?;
        let view = serde_json::from_slice(&body).map_err(|e| Error::Decode(e.to_string()))?;
        Ok((view, opened))
    }

    /// Close a connection; succeeds also when it is already gone (with its
    /// session, say).
    pub async fn close_connection(
        &self,
        session_id: &SessionId,
        connection_id: &str,
    ) -> Result<(), Error> {
        let url = self.url(&[
            "v1",
            "sessions",
            session_id.as_str(),
            "connections",
            path_segment("connection id", connection_id)?,
        ])?;
        self.empty(self.admin(Method::DELETE, url)).await
    }

    /// Whether a user is online (a live session with a live connection),
    /// on which devices, and when last seen.
    pub async fn presence(&self, user_id: &str) -> Result<PresenceView, Error> {
        let url = self.url(&["v1", "users", user_segment(user_id)?, "presence"])?;
        self.json(self.admin(Method::GET, url)).await
    }

    /// Revoke all of a user's sessions but `except`; returns how many ended.
    pub async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&SessionId>,
        reason: Option<&str>,
    ) -> Result<u64, Error> {
        let mut url = self.url(&["v1", "users", user_segment(user_id)?, "sessions"])?;
        if except.is_some() || reason.is_some() {
            let mut query = url.query_pairs_mut();
            if let Some(except) = except {
                query.append_pair("except", except.as_str());
            }
            if let Some(reason) = reason {
                query.append_pair("reason", reason);
            }
        }
        let count: RevokedCount = self.json(self.admin(Method::DELETE, url)).await?;
        Ok(u64::try_from(count.revoked).unwrap_or(u64::MAX))
    }

    /// Revoke every session of a user created before `issued_before` but
    /// `except`, and refuse what was issued before it from then on (creates
    /// of older sessions, access tokens with an earlier `iat`); returns how
    /// many sessions ended.
    pub async fn revoke_issued_before(
        &self,
        user_id: &str,
        issued_before: Timestamp,
        except: Option<&SessionId>,
        reason: Option<&str>,
    ) -> Result<u64, Error> {
        let url = self.url(&["v1", "users", user_segment(user_id)?, "revoke"])?;
        let body = RevokeIssuedBefore {
            issued_before,
            except: except.map(|id| id.as_str().to_owned()),
            reason: reason.map(str::to_owned),
        };
        let count: RevokedCount = self.json(self.admin(Method::POST, url).json(&body)).await?;
        Ok(u64::try_from(count.revoked).unwrap_or(u64::MAX))
    }

    /// Counters since the server started and the store's status.
    pub async fn stats(&self) -> Result<Stats, Error> {
        let url = self.url(&["v1", "stats"])?;
        self.json(self.admin(Method::GET, url)).await
    }

    // ---- public routes ------------------------------------------------

    /// Trade a refresh token for a new access token and the next refresh
    /// token. A retired token presented after the server's grace period
    /// revokes the session and fails with [`Error::Unauthorized`].
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, Error> {
        let url = self.url(&["v1", "tokens", "refresh"])?;
        let body = RefreshBody {
            refresh_token: Secret::new(refresh_token),
        };
        self.json(self.http.post(url).json(&body)).await
    }

    /// The session `credential` (session token or access token) proves.
    pub async fn me(&self, credential: &str) -> Result<SessionView, Error> {
        let url = self.url(&["v1", "me"])?;
        self.json(self.public(Method::GET, url, credential)?).await
    }

    /// All live sessions of the caller's user; `current` marks the caller's.
    pub async fn my_sessions(&self, credential: &str) -> Result<Vec<SessionView>, Error> {
        let url = self.url(&["v1", "me", "sessions"])?;
        let list: SessionList = self
            .json(self.public(Method::GET, url, credential)?)
            .await?;
        Ok(list.sessions)
    }

    /// The presence of the caller's user; `current: true` marks the
    /// caller's own device.
    pub async fn my_presence(&self, credential: &str) -> Result<PresenceView, Error> {
        let url = self.url(&["v1", "me", "presence"])?;
        self.json(self.public(Method::GET, url, credential)?).await
    }

    /// Sign out one of the caller's user's sessions; [`Error::NotFound`]
    /// when it belongs to another user or is gone.
    pub async fn revoke_my_session(&self, credential: &str, id: &SessionId) -> Result<(), Error> {
        let url = self.url(&["v1", "me", "sessions", id.as_str()])?;
        self.empty(self.public(Method::DELETE, url, credential)?)
            .await
    }

    /// Sign out every other session of the caller's user; returns how many.
    pub async fn revoke_my_other_sessions(&self, credential: &str) -> Result<u64, Error> {
        let url = self.url(&["v1", "me", "sessions"])?;
        let count: RevokedCount = self
            .json(self.public(Method::DELETE, url, credential)?)
            .await?;
        Ok(u64::try_from(count.revoked).unwrap_or(u64::MAX))
    }

    /// End the caller's session.
    pub async fn logout(&self, credential: &str) -> Result<(), Error> {
        let url = self.url(&["v1", "me", "logout"])?;
        self.empty(self.public(Method::POST, url, credential)?)
            .await
    }

    /// The JSON Web Key Set that verifies access tokens.
    pub async fn jwks(&self) -> Result<serde_json::Value, Error> {
        let url = self.url(&[".well-known", "jwks.json"])?;
        self.json(self.http.get(url)).await
    }

    /// Readiness: `Ok` when the server and its store answer; a server whose
    /// store is unreachable (503 `degraded`) is [`Error::Unavailable`], like
    /// a server that cannot be reached.
    pub async fn ready(&self) -> Result<Readiness, Error> {
        let url = self.url(&["readyz"])?;
        self.json(self.http.get(url)).await
    }

    // ---- plumbing -----------------------------------------------------

    /// The base URL with `segments` appended, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, Error> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::Config("the base URL cannot have a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    fn admin(&self, method: Method, url: Url) -> RequestBuilder {
        self.http
            .request(method, url)
            .header(AUTHORIZATION, self.admin_auth.clone())
    }

    /// A request carrying the end user's credential as Bearer. A credential
    /// that cannot be a header value cannot be valid: [`Error::Unauthorized`].
    fn public(&self, method: Method, url: Url, credential: &str) -> Result<RequestBuilder, Error> {
        let mut value = HeaderValue::from_str(&format!("Bearer {credential}"))
            .map_err(|_| Error::Unauthorized)?;
        value.set_sensitive(true);
        Ok(self.http.request(method, url).header(AUTHORIZATION, value))
    }

    /// Send; any non-2xx answer becomes its [`Error`].
    async fn send(&self, request: RequestBuilder) -> Result<Response, Error> {
        let response = request.send().await.map_err(|e| Error::transport(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        // The status decides; a body cut short only loses the detail.
        let body = response.bytes().await.unwrap_or_default();
        Err(Error::from_status(status, &headers, &body))
    }

    /// Send and decode a 2xx JSON answer.
    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, Error> {
        let response = self.send(request).await?;
        let body = response.bytes().await.map_err(|e| Error::transport(&e))?;
        serde_json::from_slice(&body).map_err(|e| Error::Decode(e.to_string()))
    }

    /// Send and expect a 2xx with nothing to read.
    async fn empty(&self, request: RequestBuilder) -> Result<(), Error> {
        self.send(request).await.map(drop)
    }
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // Never follow a redirect with the API key to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sessiond-client/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))
}

fn parse_base(base_url: &str) -> Result<Url, Error> {
    let url =
        Url::parse(base_url).map_err(|e| Error::Config(format!("base URL {base_url:?}: {e}")))?;
    let bad = |why: &str| Error::Config(format!("base URL {base_url:?}: {why}"));
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("expected an http:// or https:// URL"));
    }
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(bad("expected a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("expected no query and no fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "expected no credentials in the URL; pass the API key instead",
        ));
    }
    Ok(url)
}

/// A user id as a path segment. `""`, `"."` and `".."` cannot be one (URL
/// rules drop or collapse them), so they are refused rather than sent to
/// another path.
fn user_segment(user_id: &str) -> Result<&str, Error> {
    path_segment("user id", user_id)
}

/// An app-chosen id (`what`) as a path segment, refused as
/// [`user_segment`] says.
fn path_segment<'a>(what: &str, value: &'a str) -> Result<&'a str, Error> {
    match value {
        "" | "." | ".." => Err(Error::Invalid {
            detail: format!("the {what} {value:?} cannot be addressed in a URL path"),
        }),
        _ => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        match Client::new(base, "sdk_secret-api-key-0123456789") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn url(c: &Client, segments: &[&str]) -> String {
        c.url(segments).map(String::from).unwrap_or_default()
    }

    #[test]
    fn debug_never_shows_the_api_key() {
        let c = client("http://127.0.0.1:7420");
        for debug in [format!("{c:?}"), format!("{c:#?}")] {
            assert!(!debug.contains("secret-api-key"), "{debug}");
            assert!(debug.contains("127.0.0.1:7420"), "{debug}");
        }
    }

    #[test]
    fn segments_are_percent_encoded() {
        let c = client("http://127.0.0.1:7420");
        assert_eq!(
            url(&c, &["v1", "users", "a/b?c%d#e f ü", "sessions"]),
            "http://127.0.0.1:7420/v1/users/a%2Fb%3Fc%25d%23e%20f%20%C3%BC/sessions"
        );
        assert_eq!(
            url(&c, &["v1", "users", "%2e%2E", "sessions"]),
            "http://127.0.0.1:7420/v1/users/%252e%252E/sessions"
        );
        assert_eq!(
            url(&c, &[".well-known", "jwks.json"]),
            "http://127.0.0.1:7420/.well-known/jwks.json"
        );
    }

    #[test]
    fn a_base_path_is_kept() {
        for base in ["http://h:1/auth", "http://h:1/auth/"] {
            assert_eq!(url(&client(base), &["v1", "me"]), "http://h:1/auth/v1/me");
        }
    }

    #[test]
    fn unaddressable_user_ids_are_refused() {
        for id in ["", ".", ".."] {
            assert!(matches!(user_segment(id), Err(Error::Invalid { .. })));
        }
        assert!(user_segment("...").is_ok());
    }

    #[test]
    fn bad_configuration_is_an_error() {
        for base in [
            "",
            "127.0.0.1:7420",
            "ftp://h/",
            "mailto:a@b",
            "http://h/?x=1",
            "http://h/#f",
            "http://u:p@h/",
        ] {
            assert!(
                matches!(Client::new(base, "k"), Err(Error::Config(_))),
                "{base:?}"
            );
        }
        assert!(matches!(
            Client::new("http://h", "bad\nkey"),
            Err(Error::Config(msg)) if !msg.contains("bad")
        ));
        let c = client("https://sessions.example");
        assert!(matches!(
            c.clone().with_timeout(Duration::ZERO),
            Err(Error::Config(_))
        ));
        let c = c.with_timeout(Duration::from_millis(250));
        assert_eq!(
            c.map(|c| c.timeout()).ok(),
            Some(Duration::from_millis(250))
        );
    }
}
