//! The HTTP ceiling for `scripts/bench-http`: an axum server whose handler
//! answers a constant small JSON, on the same runtime settings as sessiond.

use axum::Router;
use axum::routing::any;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7499".into());
    let app = Router::new().route(
        "/",
        any(|| async { axum::Json(serde_json::json!({"ok": true})) }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
