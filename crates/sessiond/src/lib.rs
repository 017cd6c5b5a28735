//! sessiond, the service: the HTTP/JSON API (docs/http-api.md) over the engine, its
//! layered configuration, and the command line (`sessiond serve`, operator
//! commands).
#![forbid(unsafe_code)]

pub mod access_tokens;
pub mod api_key;
pub mod app;
pub mod cli;
pub mod config;
pub mod connections;
pub mod data_dir;
pub mod edge;
pub mod extract;
pub mod latency;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod ratelimit;
pub mod reply;
pub mod request_limits;
pub mod routes;
pub mod server;
pub mod state;
pub mod stats_command;
pub mod stores;
pub mod telemetry;
