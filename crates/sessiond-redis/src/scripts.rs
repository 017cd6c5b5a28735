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

/// The helpers every script starts with.
const COMMON: &str = include_str!("lua/common.lua");

impl LuaScript {
    fn new(name: &'static str, code: &'static str) -> Self {
        Self {
            name,
            code,
            hash: redis::Script::new(code).get_hash().to_owned(),
        }
    }

    /// `message` (an error Redis reported for this script) with every
    /// `user_script:N` position turned into the file and line it comes from:
    /// `common.lua:N` in the helpers, else `NAME.lua:M` counted from the
    /// start of the script's own file.
    pub(crate) fn locate(&self, message: &str) -> String {
        const MARK: &str = "user_script:";
        let common_lines = COMMON.matches('\n').count();
        let mut out = String::with_capacity(message.len() + 16);
        let mut rest = message;
        while let Some(at) = rest.find(MARK) {
            let (before, after) = rest.split_at(at);
            out.push_str(before);
            let digits = after[MARK.len()..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            let number = &after[MARK.len()..MARK.len() + digits];
            match number.parse::<usize>() {
                Ok(n) if n > common_lines => {
                    out.push_str(&format!("{}.lua:{}", self.name, n - common_lines));
                }
                Ok(n) => out.push_str(&format!("common.lua:{n}")),
                Err(_) => out.push_str(&after[..MARK.len() + digits]),
            }
            rest = &after[MARK.len() + digits..];
        }
        out.push_str(rest);
        out
    }
}

macro_rules! script {
    ($name:literal) => {
        LuaScript::new(
            $name,
            // `COMMON`, then the script's own file.
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
    pub(crate) touch: LuaScript,
    pub(crate) get: LuaScript,
    pub(crate) update_data: LuaScript,
    pub(crate) extend: LuaScript,
    pub(crate) authenticate: LuaScript,
    pub(crate) rotate: LuaScript,
    pub(crate) refresh: LuaScript,
    pub(crate) revoke: LuaScript,
    pub(crate) list_tag: LuaScript,
    pub(crate) revoke_user: LuaScript,
    pub(crate) revoke_issued_before: LuaScript,
    pub(crate) not_before: LuaScript,
    pub(crate) beat: LuaScript,
    pub(crate) close_connection: LuaScript,
    pub(crate) presence: LuaScript,
    pub(crate) sweep: LuaScript,
    pub(crate) retire: LuaScript,
}

impl Scripts {
    /// All of them, to load into a server ahead of use.
    pub(crate) fn all(&self) -> [&LuaScript; 18] {
        [
            &self.create,
            &self.touch,
            &self.get,
            &self.update_data,
            &self.extend,
            &self.authenticate,
            &self.rotate,
            &self.refresh,
            &self.revoke,
            &self.list_tag,
            &self.revoke_user,
            &self.revoke_issued_before,
            &self.not_before,
            &self.beat,
            &self.close_connection,
            &self.presence,
            &self.sweep,
            &self.retire,
        ]
    }
}

/// The scripts, hashed once per process.
pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    create: script!("create"),
    touch: script!("touch"),
    get: script!("get"),
    update_data: script!("update_data"),
    extend: script!("extend"),
    authenticate: script!("authenticate"),
    rotate: script!("rotate"),
    refresh: script!("refresh"),
    revoke: script!("revoke"),
    list_tag: script!("list_tag"),
    revoke_user: script!("revoke_user"),
    revoke_issued_before: script!("revoke_issued_before"),
    not_before: script!("not_before"),
    beat: script!("beat"),
    close_connection: script!("close_connection"),
    presence: script!("presence"),
    sweep: script!("sweep"),
    retire: script!("retire"),
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_positions_name_the_real_file_and_line() {
        let common = COMMON.matches('\n').count();
        let s = &SCRIPTS.create;
        assert!(s.code.starts_with(COMMON));
        let message = format!(
            "ERR user_script:{}: boom script: 5e9c, on @user_script:{}.",
            common + 12,
            common + 12
        );
        assert_eq!(
            s.locate(&message),
            "ERR create.lua:12: boom script: 5e9c, on @create.lua:12."
        );
        assert_eq!(
            s.locate("WRONGTYPE Operation script: 1, on @user_script:3."),
            "WRONGTYPE Operation script: 1, on @common.lua:3."
        );
        assert_eq!(s.locate("no position"), "no position");
        assert_eq!(s.locate("user_script:x"), "user_script:x");
        // The line really is that file's line.
        let line = s.code.lines().nth(common + 11).unwrap_or_default();
        let own = include_str!("lua/create.lua")
            .lines()
            .nth(11)
            .unwrap_or_default();
        assert_eq!(line, own);
    }

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
