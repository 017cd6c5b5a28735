//! The client against a real sessiond server in this process, on the embedded
//! store and on a private redis-server: one scenario covers every route.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sessiond::config::{Config, MaxSessionsPolicy, RoleConfig};
use sessiond::server::{RunningServer, start};
use sessiond_client::{
    Client, CreateSession, Created, DeviceKind, Error, Mode, SessionData, SessionId,
};
use sessiond_engine::ShardTag;
use sessiond_testkit::redis_server::RedisServer;
use tempfile::TempDir;

const API_KEY: &str = "sdk_client-test-key-0123456789";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

#[derive(Clone, Copy, Debug)]
enum Backend {
    Embedded,
    Redis,
}

/// A running server and what it needs kept alive.
struct TestServer {
    server: Option<RunningServer>,
    redis: Option<RedisServer>,
    base_url: String,
    _dir: TempDir,
}

impl TestServer {
    async fn start(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let redis = match backend {
            Backend::Redis => Some(
                tokio::task::spawn_blocking(RedisServer::start)
                    .await
                    .unwrap(),
            ),
            Backend::Embedded => None,
        };
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            store: match &redis {
                Some(r) => Some(r.url()),
                None => Some(format!("embedded:{}", dir.path().join("store").display())),
            },
            data_dir: dir.path().join("data"),
            api_key: Some(API_KEY.into()),
            ..Config::default()
        };
        config.cookie.secure = false;
        config.store_timeout = Duration::from_millis(500);
        // Every touching introspection writes, so `touch: false` is observable.
        config.touch_interval = Duration::ZERO;
        // A retired refresh token is reuse at once.
        config.refresh.reuse_grace = Duration::ZERO;
        config.roles.insert(
            "capped".into(),
            RoleConfig {
                max_sessions: 1,
                ..RoleConfig::default()
            },
        );
        tweak(&mut config);
        let server = start(config).await.unwrap();
        Self {
            base_url: format!("http://{}", server.addr),
            server: Some(server),
            redis,
            _dir: dir,
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.base_url, API_KEY).unwrap()
    }

    async fn shutdown(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

fn data(v: Value) -> SessionData {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn missing_id() -> SessionId {
    SessionId::generate(&ShardTag::of_user("nobody"))
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn create_for(client: &Client, user: &str) -> Created {
    client
        .create(&CreateSession {
            user_agent: Some(UA.into()),
            ip: Some("192.0.2.7".into()),
            ..CreateSession::new(user)
        })
        .await
        .unwrap()
}

/// Everything the client does, against one server.
async fn scenario(server: &TestServer) {
    let client = server.client();
    let created = creation(&client).await;
    introspection(&client, &created).await;
    reads_and_updates(&client, &created).await;
    rotation(&client, &created).await;
    listing_and_revocation(&client).await;
    jwt_and_refresh(&client).await;
    own_sessions(&client).await;
    odd_user_ids(&client).await;
    wrong_api_key(server, &created).await;
    operations(&client).await;
}

async fn creation(client: &Client) -> Created {
    let created = client
        .create(&CreateSession {
            user_agent: Some(UA.into()),
            ip: Some("192.0.2.7".into()),
            data: Some(data(json!({"theme": "dark"}))),
            ..CreateSession::new("alice")
        })
        .await
        .unwrap();
    let s = &created.session;
    assert_eq!(s.user_id, "alice");
    assert_eq!(s.role, None);
    assert_eq!(s.mode, Mode::Opaque);
    assert_eq!(s.data, data(json!({"theme": "dark"})));
    assert_eq!(s.device.kind, DeviceKind::Desktop);
    assert_eq!(s.device.browser.as_deref(), Some("Chrome"));
    assert_eq!(s.device.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(s.current, None);
    assert!(created.evicted.is_empty());
    assert!(!created.token.expose().is_empty());
    let debug = format!("{created:?}");
    assert!(!debug.contains(created.token.expose()), "{debug}");

    // Per-session lifetimes instead of the role's.
    let short = client
        .create(&CreateSession {
            idle_ttl: Some(Duration::from_secs(60)),
            absolute_ttl: Some(Duration::from_secs(3600)),
            ..CreateSession::new("alice")
        })
        .await
        .unwrap()
        .session;
    let created_at = short.created_at.as_millis();
    assert_eq!(short.expires_at.as_millis() - created_at, 60_000);
    assert_eq!(
        short.absolute_expires_at.as_millis() - created_at,
        3_600_000
    );

    // max_sessions 1 with evict_oldest: the second session evicts the first.
    let capped = CreateSession {
        role: Some("capped".into()),
        ..CreateSession::new("capped-user")
    };
    let first = client.create(&capped).await.unwrap();
    let second = client.create(&capped).await.unwrap();
    assert_eq!(second.session.role.as_deref(), Some("capped"));
    assert_eq!(second.evicted, vec![first.session.id.clone()]);
    assert!(matches!(
        client.get(&first.session.id).await,
        Err(Error::NotFound)
    ));

    // Bad input is a 400 with the server's explanation.
    match client.create(&CreateSession::new("")).await {
        Err(Error::Invalid { detail }) => assert!(detail.contains("user_id"), "{detail}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    created
}

async fn introspection(client: &Client, created: &Created) {
    let token = created.token.expose();
    let first = client.introspect(token, false).await.unwrap().unwrap();
    assert_eq!(first.id, created.session.id);
    sleep_ms(20).await;
    // touch: false records no activity.
    let peeked = client.introspect(token, false).await.unwrap().unwrap();
    assert_eq!(peeked.last_seen_at, first.last_seen_at);
    assert_eq!(peeked.expires_at, first.expires_at);
    assert_eq!(
        client.get(&created.session.id).await.unwrap().last_seen_at,
        first.last_seen_at
    );
    sleep_ms(20).await;
    // touch: true does (touch interval is zero on the test server).
    client.introspect(token, true).await.unwrap().unwrap();
    let read = client.get(&created.session.id).await.unwrap();
    assert!(read.last_seen_at > first.last_seen_at);
    assert!(read.expires_at > first.expires_at);

    for dead in [
        "",
        "sdt_not-a-real-token",
        "eyJhbGciOiJFZERTQSJ9.e30.c2ln",
        "x\ny",
    ] {
        assert_eq!(
            client.introspect(dead, true).await.unwrap(),
            None,
            "{dead:?}"
        );
    }
}

async fn reads_and_updates(client: &Client, created: &Created) {
    let id = &created.session.id;
    let read = client.get(id).await.unwrap();
    assert_eq!(read.id, *id);
    assert_eq!(read.user_id, created.session.user_id);
    assert_eq!(read.device, created.session.device);
    assert_eq!(read.created_at, created.session.created_at);
    assert_eq!(
        read.absolute_expires_at,
        created.session.absolute_expires_at
    );
    assert!(matches!(
        client.get(&missing_id()).await,
        Err(Error::NotFound)
    ));

    let merged = client
        .update_data(id, &data(json!({"a": 1})), true)
        .await
        .unwrap();
    assert_eq!(merged.data, data(json!({"theme": "dark", "a": 1})));
    assert_eq!(merged.expires_at, read.expires_at, "expiry unchanged");
    let merged = client
        .update_data(id, &data(json!({"theme": null, "b": [1, 2]})), true)
        .await
        .unwrap();
    assert_eq!(merged.data, data(json!({"a": 1, "b": [1, 2]})));
    let replaced = client
        .update_data(id, &data(json!({"c": {"d": true}})), false)
        .await
        .unwrap();
    assert_eq!(replaced.data, data(json!({"c": {"d": true}})));

    let blob = data(json!({"blob": "x".repeat(20_000)}));
    match client.update_data(id, &blob, true).await {
        Err(Error::TooLarge { detail }) => assert!(!detail.is_empty()),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(client.get(id).await.unwrap().data, replaced.data);
    assert!(matches!(
        client
            .update_data(&missing_id(), &data(json!({"a": 2})), true)
            .await,
        Err(Error::NotFound)
    ));

    // Extend: pushes the idle deadline, never shortens it, never past the
    // absolute deadline.
    let short = client
        .create(&CreateSession {
            idle_ttl: Some(Duration::from_secs(60)),
            absolute_ttl: Some(Duration::from_secs(3600)),
            ..CreateSession::new("extend-user")
        })
        .await
        .unwrap()
        .session;
    let before = now_ms();
    let extended = client
        .extend(&short.id, Some(Duration::from_secs(600)))
        .await
        .unwrap();
    let after = now_ms();
    let deadline = extended.expires_at.as_millis();
    assert!(
        deadline >= before + 600_000 - 1_000 && deadline <= after + 600_000 + 1_000,
        "{deadline} not ~10 min from now"
    );
    let again = client
        .extend(&short.id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(again.expires_at, extended.expires_at);
    let default = client.extend(&short.id, None).await.unwrap();
    assert_eq!(default.expires_at, extended.expires_at);
    let capped = client
        .extend(&short.id, Some(Duration::from_secs(7200)))
        .await
        .unwrap();
    assert_eq!(capped.expires_at, short.absolute_expires_at);
    assert!(matches!(
        client.extend(&missing_id(), None).await,
        Err(Error::NotFound)
    ));
}

async fn rotation(client: &Client, created: &Created) {
    let old = created.token.expose();
    let rotated = client.rotate(&created.session.id).await.unwrap();
    assert_eq!(rotated.session.id, created.session.id);
    assert_ne!(rotated.token.expose(), old);
    assert!(!format!("{rotated:?}").contains(rotated.token.expose()));
    assert_eq!(client.introspect(old, true).await.unwrap(), None);
    let live = client
        .introspect(rotated.token.expose(), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.id, created.session.id);
    assert!(matches!(
        client.rotate(&missing_id()).await,
        Err(Error::NotFound)
    ));
}

async fn listing_and_revocation(client: &Client) {
    let user = "list-user";
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create_for(client, user).await.session.id);
        sleep_ms(5).await;
    }
    let listed: Vec<SessionId> = client
        .list_user(user)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]);

    client
        .revoke(&ids[0], Some("password_changed"))
        .await
        .unwrap();
    // Already gone is still a success.
    client.revoke(&ids[0], None).await.unwrap();
    client.revoke(&missing_id(), None).await.unwrap();
    assert!(matches!(client.get(&ids[0]).await, Err(Error::NotFound)));
    assert!(matches!(
        client.revoke(&ids[1], Some("has space")).await,
        Err(Error::Invalid { .. })
    ));
    assert_eq!(client.list_user(user).await.unwrap().len(), 2);

    let revoked = client
        .revoke_user(user, Some(&ids[2]), Some("security_sweep"))
        .await
        .unwrap();
    assert_eq!(revoked, 1);
    let left: Vec<SessionId> = client
        .list_user(user)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec![ids[2].clone()]);
    assert_eq!(client.revoke_user(user, None, None).await.unwrap(), 1);
    assert_eq!(client.revoke_user(user, None, None).await.unwrap(), 0);
    assert!(client.list_user(user).await.unwrap().is_empty());
    assert!(client.list_user("nobody-here").await.unwrap().is_empty());

    let stats = client.stats().await.unwrap();
    assert_eq!(stats.store, "ok");
    assert!(stats.live_sessions.is_some());
    assert!(stats.created >= 3, "{stats:?}");
    assert!(
        stats.revoked_by_reason.get("password_changed") >= Some(&1),
        "{stats:?}"
    );
    assert!(
        stats.revoked_by_reason.get("security_sweep") >= Some(&1),
        "{stats:?}"
    );
}

async fn jwt_and_refresh(client: &Client) {
    let created = client
        .create_jwt(&CreateSession {
            user_agent: Some(UA.into()),
            ..CreateSession::new("jwt-user")
        })
        .await
        .unwrap();
    let id = created.session.id.clone();
    assert_eq!(created.session.mode, Mode::Jwt);
    assert!(created.expires_in > 0);
    assert_eq!(created.access_token.expose().matches('.').count(), 2);
    let debug = format!("{created:?}");
    assert!(!debug.contains(created.access_token.expose()));
    assert!(!debug.contains(created.refresh_token.expose()));

    // The access token is a credential for introspection and the public routes.
    let seen = client
        .introspect(created.access_token.expose(), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.id, id);
    assert_eq!(
        client.me(created.access_token.expose()).await.unwrap().id,
        id
    );

    let first = client
        .refresh(created.refresh_token.expose())
        .await
        .unwrap();
    assert_eq!(first.session.id, id);
    assert!(first.expires_in > 0);
    assert_ne!(first.refresh_token.expose(), created.refresh_token.expose());
    assert!(!format!("{first:?}").contains(first.refresh_token.expose()));
    let second = client.refresh(first.refresh_token.expose()).await.unwrap();
    assert_ne!(second.refresh_token.expose(), first.refresh_token.expose());
    assert_eq!(
        client.me(second.access_token.expose()).await.unwrap().id,
        id
    );

    // A retired refresh token presented again (no grace here) revokes the session.
    assert!(matches!(
        client.refresh(created.refresh_token.expose()).await,
        Err(Error::Unauthorized)
    ));
    assert!(matches!(client.get(&id).await, Err(Error::NotFound)));
    assert!(matches!(
        client.refresh(second.refresh_token.expose()).await,
        Err(Error::Unauthorized)
    ));
    assert_eq!(
        client
            .introspect(second.access_token.expose(), true)
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        client.me(second.access_token.expose()).await,
        Err(Error::Unauthorized)
    ));
    assert!(matches!(
        client.refresh("sdr_garbage").await,
        Err(Error::Unauthorized)
    ));
}

async fn own_sessions(client: &Client) {
    let user = "me-user";
    let a = create_for(client, user).await;
    let b = create_for(client, user).await;
    let c = create_for(client, user).await;
    let other = create_for(client, "someone-else").await;
    let token = a.token.expose();

    let me = client.me(token).await.unwrap();
    assert_eq!(me.id, a.session.id);
    assert_eq!(me.current, None);

    let mine = client.my_sessions(token).await.unwrap();
    assert_eq!(mine.len(), 3);
    for s in &mine {
        assert_eq!(s.user_id, user);
        assert_eq!(s.current, Some(s.id == a.session.id), "{s:?}");
    }

    client
        .revoke_my_session(token, &b.session.id)
        .await
        .unwrap();
    assert!(matches!(
        client.get(&b.session.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        client.revoke_my_session(token, &b.session.id).await,
        Err(Error::NotFound)
    ));
    // Another user's session is not the caller's to end.
    assert!(matches!(
        client.revoke_my_session(token, &other.session.id).await,
        Err(Error::NotFound)
    ));
    assert_eq!(
        client.get(&other.session.id).await.unwrap().id,
        other.session.id
    );

    assert_eq!(client.revoke_my_other_sessions(token).await.unwrap(), 1);
    assert!(matches!(
        client.get(&c.session.id).await,
        Err(Error::NotFound)
    ));
    let mine = client.my_sessions(token).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].current, Some(true));

    client.logout(token).await.unwrap();
    assert!(matches!(client.me(token).await, Err(Error::Unauthorized)));
    assert!(matches!(
        client.logout(token).await,
        Err(Error::Unauthorized)
    ));
    assert_eq!(client.introspect(token, true).await.unwrap(), None);
    // Not a header value: refused without a request.
    assert!(matches!(
        client.me("bad\r\ncredential").await,
        Err(Error::Unauthorized)
    ));
}

async fn odd_user_ids(client: &Client) {
    let users = [
        "a/b?c%d#e f",
        "ünïcødé/用户 🦀",
        "%2e%2E",
        "...",
        "../v1/stats",
        "a b+c&except=x",
    ];
    // A plain neighbour that a mis-encoded path could reach instead.
    let neighbour = create_for(client, "a").await;
    for user in users {
        let first = create_for(client, user).await;
        sleep_ms(5).await;
        let second = create_for(client, user).await;
        let listed = client.list_user(user).await.unwrap();
        assert_eq!(listed.len(), 2, "{user:?}");
        assert!(listed.iter().all(|s| s.user_id == user), "{user:?}");
        assert_eq!(listed[0].id, second.session.id, "{user:?}");
        assert_eq!(
            client
                .revoke_user(user, Some(&first.session.id), None)
                .await
                .unwrap(),
            1,
            "{user:?}"
        );
        let left = client.list_user(user).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, first.session.id);
        assert_eq!(client.revoke_user(user, None, None).await.unwrap(), 1);
        assert!(client.list_user(user).await.unwrap().is_empty());
    }
    assert_eq!(
        client.get(&neighbour.session.id).await.unwrap().user_id,
        "a"
    );
    for unaddressable in ["", ".", ".."] {
        assert!(matches!(
            client.list_user(unaddressable).await,
            Err(Error::Invalid { .. })
        ));
    }
}

async fn wrong_api_key(server: &TestServer, created: &Created) {
    let wrong = Client::new(&server.base_url, "sdk_wrong-key-000000000000").unwrap();
    assert!(matches!(
        wrong.get(&created.session.id).await,
        Err(Error::Unauthorized)
    ));
    assert!(matches!(
        wrong.create(&CreateSession::new("mallory")).await,
        Err(Error::Unauthorized)
    ));
    assert!(matches!(wrong.stats().await, Err(Error::Unauthorized)));
    // Public routes need no key.
    assert!(wrong.ready().await.unwrap().is_ready());
}

async fn operations(client: &Client) {
    let jwks = client.jwks().await.unwrap();
    let keys = jwks["keys"].as_array().expect("keys array");
    assert!(!keys.is_empty(), "{jwks}");
    assert!(keys.iter().all(|k| k["kid"].is_string()), "{jwks}");
    let ready = client.ready().await.unwrap();
    assert!(ready.is_ready());
    assert_eq!(ready.store, "ok");
}

async fn full_scenario(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    scenario(&server).await;
    server.shutdown().await;
}

/// With the `reject` policy a user at `max_sessions` gets a 409.
async fn limit_reached(backend: Backend) {
    let server = TestServer::start(backend, |c| {
        c.max_sessions_policy = MaxSessionsPolicy::Reject;
    })
    .await;
    let client = server.client();
    let capped = CreateSession {
        role: Some("capped".into()),
        ..CreateSession::new("capped-user")
    };
    let first = client.create(&capped).await.unwrap();
    match client.create(&capped).await {
        Err(Error::LimitReached { detail }) => assert!(!detail.is_empty()),
        other => panic!("expected LimitReached, got {other:?}"),
    }
    assert!(matches!(
        client.create_jwt(&capped).await,
        Err(Error::LimitReached { .. })
    ));
    assert_eq!(
        client.get(&first.session.id).await.unwrap().id,
        first.session.id
    );
    server.shutdown().await;
}

macro_rules! both_stores {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::Embedded).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::Redis).await;
                }
            )*
        }
    };
}

/// The history pages through `next_cursor` on a store that keeps it; Redis
/// answers 501.
async fn history(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let client = server.client();
    let user = "history-user";
    let first = create_for(&client, user).await;
    client.rotate(&first.session.id).await.unwrap();
    client
        .revoke(&first.session.id, Some("password_changed"))
        .await
        .unwrap();
    if matches!(backend, Backend::Redis) {
        match client.history(user, None, None).await {
            Err(Error::Server { status: 501, .. }) => {}
            other => panic!("expected 501, got {other:?}"),
        }
        server.shutdown().await;
        return;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = client
            .history(user, Some(2), cursor.as_deref())
            .await
            .unwrap();
        seen.extend(
            page.events
                .iter()
                .map(|e| (e.kind.as_str(), e.reason.clone())),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec![
            ("revoked", Some("password_changed".to_owned())),
            ("rotated", None),
            ("created", None),
        ]
    );
    server.shutdown().await;
}

/// Connections and presence: a first heartbeat opens (201), later ones
/// keep alive (200), presence shows the connection until it is closed, and
/// a heartbeat on a session that ended is `NotFound`.
async fn connections_and_presence(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let client = server.client();
    let user = "presence-user";
    let created = create_for(&client, user).await;
    let id = &created.session.id;

    let before = now_ms();
    let (opened, is_new) = client
        .beat_connection(id, "ws-1", Some("node-a"), Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(is_new);
    assert_eq!(&opened.session_id, id);
    assert_eq!(opened.connection_id, "ws-1");
    assert_eq!(opened.node.as_deref(), Some("node-a"));
    let ttl_ms = opened.expires_at.as_millis() - opened.last_seen_at.as_millis();
    assert_eq!(ttl_ms, 30_000, "{opened:?}");
    assert!(opened.opened_at.as_millis() >= before - 1000);

    sleep_ms(20).await;
    // A heartbeat: the same connection, not new, its node kept, default TTL.
    let (beaten, is_new) = client
        .beat_connection(id, "ws-1", None, None)
        .await
        .unwrap();
    assert!(!is_new);
    assert_eq!(beaten.opened_at, opened.opened_at);
    assert_eq!(beaten.node.as_deref(), Some("node-a"));
    assert!(beaten.last_seen_at >= opened.last_seen_at);
    let ttl_ms = beaten.expires_at.as_millis() - beaten.last_seen_at.as_millis();
    assert_eq!(ttl_ms, 60_000, "{beaten:?}");

    let presence = client.presence(user).await.unwrap();
    assert_eq!(presence.user_id, user);
    assert!(presence.online);
    assert_eq!(presence.devices.len(), 1);
    let device = &presence.devices[0];
    assert_eq!(&device.session_id, id);
    assert!(device.online);
    assert_eq!(device.device.kind, DeviceKind::Desktop);
    assert_eq!(device.connections.len(), 1);
    assert_eq!(device.connections[0].connection_id, "ws-1");
    assert_eq!(device.current, None);
    // The user's own view marks the caller's device.
    let mine = client.my_presence(created.token.expose()).await.unwrap();
    assert!(mine.online);
    assert_eq!(mine.devices[0].current, Some(true));

    client.close_connection(id, "ws-1").await.unwrap();
    // Closing again is fine: it is gone either way.
    client.close_connection(id, "ws-1").await.unwrap();
    let presence = client.presence(user).await.unwrap();
    assert!(!presence.online);
    assert_eq!(presence.devices.len(), 1, "the session is still live");
    assert!(presence.devices[0].connections.is_empty());

    // Ids and TTLs the server refuses, and ones a URL cannot carry.
    for bad in ["a b", "a/b", "é"] {
        assert!(
            matches!(
                client.beat_connection(id, bad, None, None).await,
                Err(Error::Invalid { .. })
            ),
            "{bad:?}"
        );
    }
    for unaddressable in ["", ".", ".."] {
        assert!(matches!(
            client.beat_connection(id, unaddressable, None, None).await,
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            client.close_connection(id, unaddressable).await,
            Err(Error::Invalid { .. })
        ));
    }
    assert!(matches!(
        client
            .beat_connection(id, "ws-2", None, Some(Duration::from_secs(7200)))
            .await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        client
            .beat_connection(id, "ws-2", Some("no spaces"), None)
            .await,
        Err(Error::Invalid { .. })
    ));

    // A connection ends with its session: its heartbeat is NotFound.
    client
        .beat_connection(id, "ws-3", None, None)
        .await
        .unwrap();
    client.revoke(id, Some("logout")).await.unwrap();
    assert!(matches!(
        client.beat_connection(id, "ws-3", None, None).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        client
            .beat_connection(&missing_id(), "ws-1", None, None)
            .await,
        Err(Error::NotFound)
    ));
    let presence = client.presence(user).await.unwrap();
    assert!(!presence.online);
    assert!(presence.devices.is_empty());
    assert_eq!(presence.last_seen_at, None);
    assert!(matches!(
        client.presence("").await,
        Err(Error::Invalid { .. })
    ));
    server.shutdown().await;
}

/// Revoking what was issued before a time: older sessions end (but the
/// exception), newer ones stay, a bad time or exception is `Invalid`.
async fn revoke_issued_before(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let client = server.client();
    let user = "issued-before-user";
    let keep = create_for(&client, user).await;
    let old = create_for(&client, user).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t = sessiond_engine::Clock::now(&sessiond_engine::SystemClock);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let newer = create_for(&client, user).await;
    let revoked = client
        .revoke_issued_before(user, t, Some(&keep.session.id), Some("password_changed"))
        .await
        .unwrap();
    assert_eq!(revoked, 1);
    assert!(matches!(
        client.get(&old.session.id).await,
        Err(Error::NotFound)
    ));
    assert!(client.get(&keep.session.id).await.is_ok());
    assert!(client.get(&newer.session.id).await.is_ok());
    assert!(matches!(
        client
            .revoke_issued_before(user, t.plus(Duration::from_secs(3600)), None, None)
            .await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        client.revoke_issued_before("", t, None, None).await,
        Err(Error::Invalid { .. })
    ));
    assert_eq!(
        client
            .revoke_issued_before(user, t, None, None)
            .await
            .unwrap(),
        1
    );
    server.shutdown().await;
}

/// The listing of all users' sessions pages through `next_cursor` with
/// typed filters; a bad limit or cursor is `Invalid`.
async fn list_sessions(backend: Backend) {
    let server = TestServer::start(backend, |_| {}).await;
    let client = server.client();
    let mut made = Vec::new();
    for n in 0..7 {
        let created = client
            .create(&CreateSession {
                user_agent: (n % 2 == 0).then(|| UA.to_owned()),
                ip: Some(format!("2001:db8::{n}")),
                ..CreateSession::new(format!("list-user-{}", n % 3))
            })
            .await
            .unwrap();
        made.push(created.session);
        // Creation times apart, for `created_after`.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut seen = Vec::new();
    let mut query = sessiond_client::ListSessionsQuery {
        limit: Some(3),
        ..Default::default()
    };
    loop {
        let page = client.list_sessions(&query).await.unwrap();
        assert!(page.sessions.len() <= 3);
        seen.extend(page.sessions.into_iter().map(|s| s.id));
        match page.next_cursor {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
    }
    seen.sort();
    let mut all: Vec<SessionId> = made.iter().map(|s| s.id.clone()).collect();
    all.sort();
    assert_eq!(seen, all);
    let filtered = client
        .list_sessions(&sessiond_client::ListSessionsQuery {
            user_id: Some("list-user-0".into()),
            device_kind: Some(DeviceKind::Desktop),
            ip: "2001:DB8:0::6".parse().ok(),
            created_after: Some(made[0].created_at),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<SessionId> = filtered.sessions.into_iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![made[6].id.clone()]);
    assert_eq!(filtered.next_cursor, None);
    for bad in [
        sessiond_client::ListSessionsQuery {
            limit: Some(0),
            ..Default::default()
        },
        sessiond_client::ListSessionsQuery {
            cursor: Some("not-a-cursor".into()),
            ..Default::default()
        },
    ] {
        assert!(matches!(
            client.list_sessions(&bad).await,
            Err(Error::Invalid { .. })
        ));
    }
    server.shutdown().await;
}

both_stores!(
    full_scenario,
    limit_reached,
    history,
    connections_and_presence,
    revoke_issued_before,
    list_sessions
);

/// A store that goes away is a quick `Unavailable` (with the server's
/// `Retry-After`), and service resumes by itself when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outage_is_unavailable_then_recovers() {
    let mut server = TestServer::start(Backend::Redis, |_| {}).await;
    let client = server.client();
    let created = create_for(&client, "outage-user").await;
    let token = created.token.expose().to_owned();

    let mut redis = server.redis.take().unwrap();
    let redis = tokio::task::spawn_blocking(move || {
        redis.kill();
        redis
    })
    .await
    .unwrap();

    let started = Instant::now();
    match client.introspect(&token, true).await {
        Err(e @ Error::Unavailable { .. }) => {
            assert!(e.is_unavailable());
            assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(client.me(&token).await, Err(e) if e.is_unavailable()));
    assert!(matches!(client.ready().await, Err(e) if e.is_unavailable()));
    assert_eq!(client.stats().await.unwrap().store, "unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );

    let redis = tokio::task::spawn_blocking(move || {
        let mut redis = redis;
        redis.restart();
        redis
    })
    .await
    .unwrap();
    server.redis = Some(redis);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match client.ready().await {
            Ok(r) if r.is_ready() => break,
            _ if Instant::now() > deadline => panic!("store did not come back"),
            _ => sleep_ms(100).await,
        }
    }
    // The test Redis keeps no data across a kill; what matters is that the
    // service answers again without a restart of its own.
    let again = create_for(&client, "outage-user").await;
    assert_eq!(
        client
            .introspect(again.token.expose(), true)
            .await
            .unwrap()
            .map(|s| s.id),
        Some(again.session.id)
    );
    server.shutdown().await;
}
