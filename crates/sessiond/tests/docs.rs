//! The generated parts of the docs match the code: the configuration
//! reference (in docs/configuration.md and the README) comes from
//! `config::reference`, the route table in docs/http-api.md and
//! docs/openapi.json from the OpenAPI document the server serves.
//! Run with `UPDATE_DOCS=1` to rewrite them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Check (or with UPDATE_DOCS=1, rewrite) the part of `file` between
/// `<!-- NAME:start -->` and `<!-- NAME:end -->`.
fn generated(file: &str, name: &str, content: &str) {
    let path = root().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let start = format!("<!-- {name}:start -->\n");
    let end = format!("<!-- {name}:end -->");
    let a = text
        .find(&start)
        .unwrap_or_else(|| panic!("{file}: no {start}"))
        + start.len();
    let b = text
        .find(&end)
        .unwrap_or_else(|| panic!("{file}: no {end}"));
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!("{}{content}{}", &text[..a], &text[b..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert_eq!(
        &text[a..b],
        content,
        "{file} is out of date: run UPDATE_DOCS=1 cargo test -p sessiond --test docs"
    );
}

#[test]
fn the_configuration_reference_is_generated_from_the_model() {
    let table = sessiond::config::reference::markdown();
    generated("docs/configuration.md", "reference", &table);
    generated("README.md", "config-reference", &table);
}

fn route_table(doc: &Value) -> String {
    let mut out = String::from("| route | credential | does | answers |\n|---|---|---|---|\n");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let credential = match op["tags"][0].as_str() {
                Some("admin") => "API key",
                Some("public") if path == "/v1/tokens/refresh" => "refresh token",
                Some("public") if path == "/.well-known/jwks.json" => "none",
                Some("public") => "session token or access token (Bearer or cookie)",
                _ => "none",
            };
            let text = format!(
                "{} {}",
                op["summary"].as_str().unwrap_or(""),
                op["description"].as_str().unwrap_or("")
            );
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            // The first sentence of the handler's doc comment.
            let does = text
                .split_once(". ")
                .map_or(text.as_str(), |(first, _)| first)
                .trim_end_matches('.');
            let mut statuses: Vec<&str> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            statuses.sort_unstable();
            out.push_str(&format!(
                "| `{} {path}` | {credential} | {does} | {} |\n",
                method.to_ascii_uppercase(),
                statuses.join(", ")
            ));
        }
    }
    out
}

#[test]
fn the_route_reference_is_generated_from_the_openapi_document() {
    let json = sessiond::app::openapi_document().to_pretty_json().unwrap();
    let doc: Value = serde_json::from_str(&json).unwrap();
    generated("docs/http-api.md", "routes", &route_table(&doc));
    let path = root().join("docs/openapi.json");
    let file = format!("{json}\n");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &file).unwrap();
    } else {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            current == file,
            "docs/openapi.json is out of date: run UPDATE_DOCS=1 cargo test -p sessiond --test docs"
        );
    }
}
