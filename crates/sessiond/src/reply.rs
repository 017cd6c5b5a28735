//! [`Json`]: a JSON answer, serialized straight into a buffer sized for a
//! session (axum's starts at 128 bytes and grows three times for one).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::problem::Problem;

/// Room for a typical session view, user agent and data included.
const INITIAL_CAPACITY: usize = 1024;

/// A `200`-style JSON answer (pair it with a status code for others).
#[derive(Clone, Copy, Debug)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(INITIAL_CAPACITY);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize an answer");
                Problem::internal().into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_json() {
        let response = Json(serde_json::json!({"a": [1, "b"]})).into_response();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        let body = axum::body::to_bytes(response.into_body(), 1024).await;
        assert_eq!(body.ok().as_deref(), Some(&br#"{"a":[1,"b"]}"#[..]));
    }
}
