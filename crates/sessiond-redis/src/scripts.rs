//! The Lua scripts, one per store operation, each run atomically in one round
//! trip. Sources live in `lua/`; `common.lua` is prepended to every script.

use std::sync::LazyLock;

/// One script: its source and SHA-1 (for EVALSHA).
#[derive(Debug)]
pub(crate) struct LuaScript {
    /// Name for logs and errors.
    pub(crate) name: &'static str,
    /// Full source, helpers included.
    pub(crate) code: &'static str,
    /// SHA-1 of `code`, as `redis::Script` computes it.
    pub(crate) hash: String,
}

impl LuaScript {
    fn new(name: &'static str, code: &'static str) -> Self {
        Self {
            name,
            code,
            hash: redis::Script::new(code).get_hash().to_owned(),
        }
    }
}

macro_rules! script {
    ($name:literal) => {
        LuaScript::new(
            $name,
            concat!(
                include_str!("lua/common.lua"),
                include_str!(concat!("lua/", $name, ".lua"))
            ),
        )
    };
}

/// Every script of the store.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) create: LuaScript,
    pub(crate) introspect: LuaScript,
    pub(crate) get: LuaScript,
    pub(crate) update_data: LuaScript,
    pub(crate) extend: LuaScript,
    pub(crate) rotate: LuaScript,
    pub(crate) refresh: LuaScript,
    pub(crate) revoke: LuaScript,
    pub(crate) list_user: LuaScript,
    pub(crate) count_user: LuaScript,
    pub(crate) revoke_user: LuaScript,
}

impl Scripts {
    /// All of them, to load into a server ahead of use.
    pub(crate) fn all(&self) -> [&LuaScript; 11] {
        [
            &self.create,
            &self.introspect,
            &self.get,
            &self.update_data,
            &self.extend,
            &self.rotate,
            &self.refresh,
            &self.revoke,
            &self.list_user,
            &self.count_user,
            &self.revoke_user,
        ]
    }
}

/// The scripts, hashed once per process.
pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    create: script!("create"),
    introspect: script!("introspect"),
    get: script!("get"),
    update_data: script!("update_data"),
    extend: script!("extend"),
    rotate: script!("rotate"),
    refresh: script!("refresh"),
    revoke: script!("revoke"),
    list_user: script!("list_user"),
    count_user: script!("count_user"),
    revoke_user: script!("revoke_user"),
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_has_the_helpers_and_a_distinct_hash() {
        let all = SCRIPTS.all();
        for s in all {
            assert!(s.code.contains("local function load("), "{}", s.name);
            assert_eq!(s.hash.len(), 40);
        }
        let mut hashes: Vec<_> = all.iter().map(|s| &s.hash).collect();
        hashes.sort();
        hashes.dedup();
        assert_eq!(hashes.len(), all.len());
    }
}
