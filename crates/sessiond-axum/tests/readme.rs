//! The README's "Use it from a Rust app" block is `examples/readme.rs`
//! (which CI builds), so the README shows code that compiles.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn readme_shows_the_compiled_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../../README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("examples/readme.rs")).unwrap();
    let code: String = example
        .lines()
        .filter(|l| !l.starts_with("//!"))
        .map(|l| format!("{l}\n"))
        .collect();
    let section = readme
        .split("## Use it from a Rust app")
        .nth(1)
        .expect("the README has the section");
    let block = section
        .split("```rust\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a rust block in the section");
    assert_eq!(block, code, "README block and examples/readme.rs differ");
}
