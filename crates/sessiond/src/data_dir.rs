//! The data directory (API key file, signing keys): private to its owner,
//! and made private again on start if it was opened up.

use std::io;
use std::path::Path;

use sessiond_engine::private_files::{self, Fix};

/// Create `dir` with mode 0700, or make it and its key directory mode 0700
/// again, logging each repair. (The files in it are created 0600; a key
/// file readable by others is refused where it is read, since its secret
/// may have leaked.)
pub fn prepare(dir: &Path) -> io::Result<()> {
    if let Fix::Restricted(mode) = private_files::ensure_dir(dir)? {
        tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "data directory was open to other users; now mode 700");
    }
    let keys = crate::access_tokens::key_dir_in(dir);
    if keys.is_dir()
        && let Fix::Restricted(mode) = private_files::ensure_dir(&keys)?
    {
        tracing::warn!(dir = %keys.display(), mode = format!("{mode:o}"), "key directory was open to other users; now mode 700");
    }
    Ok(())
}
