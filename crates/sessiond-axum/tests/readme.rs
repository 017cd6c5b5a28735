//! The README's Rust blocks for the layer are `examples/readme.rs` and
//! `examples/live.rs` (which CI builds), so the README shows code that
//! compiles.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The first rust block after `heading` in the README, and the example
/// file without its `//!` lines.
fn block_and_example(heading: &str, example: &str) -> (String, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../../README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("examples").join(example)).unwrap();
    let code: String = example
        .lines()
        .filter(|l| !l.starts_with("//!"))
        .map(|l| format!("{l}\n"))
        .collect();
    let section = readme
        .split(&format!("{heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("the README has the section {heading:?}"));
    let block = section
        .split("```rust\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a rust block in the section");
    (block.to_owned(), code)
}

#[test]
fn readme_shows_the_compiled_example() {
    let (block, code) = block_and_example("## Use it from a Rust app", "readme.rs");
    assert_eq!(block, code, "README block and examples/readme.rs differ");
}

#[test]
fn readme_shows_the_compiled_live_socket_example() {
    let (block, code) = block_and_example("### WebSockets that end with their session", "live.rs");
    assert_eq!(block, code, "README block and examples/live.rs differ");
}
