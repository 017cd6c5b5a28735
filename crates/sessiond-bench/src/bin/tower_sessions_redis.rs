//! The peer for `scripts/bench-http`: tower-sessions with its Redis store
//! (fred), the library an axum app would otherwise use. `GET /login` starts a
//! session (its cookie is the credential); `GET /` loads the session by
//! cookie and answers a small JSON, the same shape of work as an
//! introspection.
//!
//! Usage: `tower_sessions_redis LISTEN_ADDR REDIS_URL [POOL_SIZE]`.

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde::Serialize;
use tower_sessions::{Session, SessionManagerLayer};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};

#[derive(Serialize)]
struct Me {
    user_id: Option<String>,
}

async fn me(session: Session) -> Json<Me> {
    let user_id = session.get::<String>("user_id").await.ok().flatten();
    Json(Me { user_id })
}

async fn login(session: Session) -> Json<Me> {
    let user_id = Some("bench".to_owned());
    // A failed insert leaves the session empty; the benchmark then sees it.
    let _ = session.insert("user_id", &user_id).await;
    Json(Me { user_id })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7498".into());
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".into());
    let pool_size = args.next().map_or(Ok(1), |n| n.parse())?;
    let pool = Pool::new(Config::from_url(&url)?, None, None, None, pool_size)?;
    let _connection = pool.connect();
    pool.wait_for_connect().await?;
    let sessions = SessionManagerLayer::new(RedisStore::new(pool)).with_secure(false);
    let app = Router::new()
        .route("/", get(me))
        .route("/login", get(login))
        .layer(sessions);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
