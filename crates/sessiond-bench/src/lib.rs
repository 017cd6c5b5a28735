//! Benchmarks only: see `benches/engine.rs` and BENCHMARKS.md.
