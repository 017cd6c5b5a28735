//! The README's live-socket example; a test checks that the README shows
//! exactly this code, so the README's code compiles.
use std::sync::Arc;

use axum::{Router, extract::State, response::Response, routing::get};
use sessiond_axum::{
    EngineBackend, LiveOptions, LiveSocket, LiveSockets, Message, Session, SessionLayer,
    WebSocketUpgrade,
};
use sessiond_embedded::{EmbeddedOptions, EmbeddedStore};
use sessiond_engine::{Engine, Policy};

async fn socket(
    State(live): State<LiveSockets>,
    ws: WebSocketUpgrade,
    session: Session,
) -> Response {
    // 401 without a session; then registered, kept alive, and closed
    // (4001 "session ended") within a second of the session ending anywhere.
    live.upgrade(ws, &session, echo).await
}

async fn echo(mut socket: LiveSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        if let Message::Text(text) = message {
            let _ = socket.send(Message::Text(text)).await;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(EmbeddedStore::open("./sessions", EmbeddedOptions::default()).await?);
    let backend = EngineBackend::new(Engine::new(store, Policy::default()));
    let live = LiveSockets::new(backend.clone(), LiveOptions::default())?; // one per app
    let app = Router::new()
        .route("/ws", get(socket))
        .with_state(live)
        .layer(SessionLayer::new(backend));
    axum::serve(tokio::net::TcpListener::bind("127.0.0.1:3000").await?, app).await?;
    Ok(())
}
