//! Benchmarks only: `benches/engine.rs` (criterion) and the empty-handler
//! HTTP ceiling binary used by `scripts/bench-http`. See BENCHMARKS.md.
