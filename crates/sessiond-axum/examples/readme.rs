//! The README's "Use it from a Rust app" example; a test checks that the
//! README shows exactly this code, so the README's code compiles.
use std::sync::Arc;

use axum::{Form, Router, routing::get};
use sessiond_axum::{EngineBackend, Error, Session, SessionContext, SessionLayer};
use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{Engine, Policy};

async fn home(session: Session) -> Result<String, Error> {
    let visits: u64 = session.get("visits")?.unwrap_or(0) + 1;
    session.insert("visits", visits)?; // saved after the handler, in one write
    Ok(format!("{} was here {visits} times", session.user_id()))
}

#[derive(serde::Deserialize)]
struct Login {
    user: String,
}

async fn login(ctx: SessionContext, Form(f): Form<Login>) -> Result<&'static str, Error> {
    ctx.login(&f.user, None).await?; // password checked first: new session, new cookie
    Ok("signed in")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(EmbeddedStore::open("./sessions", EmbeddedOptions::default()).await?);
    let sessions = SessionLayer::new(EngineBackend::new(Engine::new(store, Policy::default())));
    let app = Router::new()
        .route("/", get(home).post(login))
        .layer(sessions);
    axum::serve(tokio::net::TcpListener::bind("127.0.0.1:3000").await?, app).await?;
    Ok(())
}
