//! No file of a crate imports, through any chain of `crate::`/`super::`
//! paths, a file that imports it back: the modules of each crate form a
//! layered graph (request → server → engine → store), so each can be read
//! and changed without its dependants. Re-exports (`pub use`) in a module's
//! own facade (`lib.rs`, `mod.rs`) do not count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of `file` inside `src` (`[]` for the crate root).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        parts.clear();
    }
    parts
}

/// The file that defines the longest prefix of `path`, if any.
fn file_of(src: &Path, path: &[String]) -> Option<PathBuf> {
    (1..=path.len()).rev().find_map(|n| {
        let base = path[..n].iter().fold(src.to_path_buf(), |p, s| p.join(s));
        [base.with_extension("rs"), base.join("mod.rs")]
            .into_iter()
            .find(|f| f.is_file())
    })
}

/// The files `file` refers to through `crate::` and `super::` paths
/// (outside its tests and its own re-exports).
fn references(src: &Path, file: &Path) -> BTreeSet<PathBuf> {
    let text = std::fs::read_to_string(file).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    let here = module_of(src, file);
    let parent: Vec<String> = here[..here.len().saturating_sub(1)].to_vec();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("//") || line.starts_with("pub use") {
            continue;
        }
        for (kind, base) in [("crate::", Vec::new()), ("super::", parent.clone())] {
            let mut rest = line;
            while let Some(at) = rest.find(kind) {
                let before = rest[..at].chars().last();
                rest = &rest[at + kind.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                // `crate::{a, b::c}` names several paths.
                let heads: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
                    let group = group.split('}').next().unwrap_or("");
                    group
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                } else {
                    vec![
                        rest.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                            .next()
                            .unwrap_or("")
                            .to_owned(),
                    ]
                };
                for head in heads {
                    let mut path = base.clone();
                    path.extend(
                        head.split("::")
                            .filter(|s| !s.is_empty() && *s != "self")
                            .map(str::to_owned),
                    );
                    let target = file_of(src, &path).or_else(|| {
                        [src.join("lib.rs"), src.join("main.rs")]
                            .into_iter()
                            .find(|f| f.is_file())
                    });
                    if let Some(target) = target
                        && target != file
                    {
                        out.insert(target);
                    }
                }
            }
        }
    }
    out
}

fn cycles_in(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = files
        .iter()
        .map(|f| (f.clone(), references(src, f)))
        .collect();
    let mut found = Vec::new();
    // A cycle exists where a file reaches itself.
    for start in &files {
        let mut stack: Vec<Vec<PathBuf>> = vec![vec![start.clone()]];
        let mut seen = BTreeSet::new();
        while let Some(chain) = stack.pop() {
            let last = chain.last().unwrap();
            for next in edges.get(last).into_iter().flatten() {
                if next == start {
                    let names: Vec<String> = chain
                        .iter()
                        .chain(std::iter::once(next))
                        .map(|p| p.strip_prefix(src).unwrap().display().to_string())
                        .collect();
                    found.push(format!("{}: {}", src.display(), names.join(" -> ")));
                } else if seen.insert(next.clone()) {
                    let mut longer = chain.clone();
                    longer.push(next.clone());
                    stack.push(longer);
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut sources = Vec::new();
    for group in ["crates", "examples"] {
        for entry in std::fs::read_dir(root.join(group)).unwrap() {
            let src = entry.unwrap().path().join("src");
            if src.is_dir() {
                sources.push(src);
            }
        }
    }
    assert!(sources.len() >= 10, "found {} crates", sources.len());
    let cycles: Vec<String> = sources.iter().flat_map(|s| cycles_in(s)).collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The checker itself finds a cycle (so the test above can fail).
#[test]
fn a_cycle_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::B;\npub struct A;\n").unwrap();
    std::fs::write(src.join("b.rs"), "use crate::a::A;\npub struct B;\n").unwrap();
    let cycles = cycles_in(&src);
    assert!(!cycles.is_empty());
    std::fs::write(src.join("b.rs"), "pub struct B;\n").unwrap();
    assert!(cycles_in(&src).is_empty());
}
