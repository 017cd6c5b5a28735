//! The data keys of encryption at rest: a private file of named 256-bit
//! keys, one per line (`<id> <base64url key>`), the last one sealing new
//! writes and every one opening what it sealed. Rotation appends a key;
//! a running process picks the file up again when it changes.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::private_files::{self, FILE_MODE};

/// How often a process looks whether the key file changed.
const RECHECK: Duration = Duration::from_secs(1);

/// A key file that cannot be used, and why (never a key's bytes).
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// It could not be read or written.
    #[error("data key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A line is not `<id> <base64url of 32 bytes>`.
    #[error("data key file {path}, line {line}: expected `<id> <base64url of 32 bytes>`")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
    },
    /// It holds no key.
    #[error("data key file {path} holds no key (create one with `sessiond keys rotate --data`)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// One named key.
#[derive(Clone)]
pub(crate) struct DataKey {
    pub(crate) id: String,
    pub(crate) key: [u8; 32],
}

struct Loaded {
    keys: Vec<DataKey>,
    modified: Option<SystemTime>,
    checked: Instant,
}

/// The keys of one key file.
pub struct DataKeys {
    path: PathBuf,
    loaded: RwLock<Loaded>,
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeys")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn io_error(path: &Path, source: io::Error) -> KeyFileError {
    KeyFileError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read_keys(path: &Path) -> Result<(Vec<DataKey>, Option<SystemTime>), KeyFileError> {
    let text = fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    let modified = fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let malformed = || KeyFileError::Malformed {
            path: path.to_owned(),
            line: n + 1,
        };
        let (id, b64) = line.split_once(' ').ok_or_else(malformed)?;
        if !valid_id(id) {
            return Err(malformed());
        }
        let key = URL_SAFE_NO_PAD
            .decode(b64.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(malformed)?;
        keys.push(DataKey {
            id: id.to_owned(),
            key,
        });
    }
    if keys.is_empty() {
        return Err(KeyFileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok((keys, modified))
}

/// A key id: 1..=16 characters from `[A-Za-z0-9_-]`.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 16
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl DataKeys {
    /// The keys of the file at `path`; it must hold at least one.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        private_files::restrict_file(path).map_err(|e| io_error(path, e))?;
        let (keys, modified) = read_keys(path)?;
        Ok(Self {
            path: path.to_owned(),
            loaded: RwLock::new(Loaded {
                keys,
                modified,
                checked: Instant::now(),
            }),
        })
    }

    /// Append a new random key to the file at `path` (created, mode 0600,
    /// if missing): from then on it seals new writes. Returns its id.
    pub fn rotate(path: &Path) -> Result<String, KeyFileError> {
        let existing = match read_keys(path) {
            Ok((keys, _)) => keys,
            Err(KeyFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Vec::new()
            }
            Err(KeyFileError::Empty { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut n = existing.len() + 1;
        let id = loop {
            let id = format!("k{n}");
            if !existing.iter().any(|k| k.id == id) {
                break id;
            }
            n += 1;
        };
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| io_error(path, io::Error::other(e.to_string())))?;
        let mut file = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(FILE_MODE)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        private_files::restrict_file(path).map_err(|e| io_error(path, e))?;
        let line = format!("{id} {}\n", URL_SAFE_NO_PAD.encode(key));
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(path, e))?;
        Ok(id)
    }

    /// Read the file again if it changed since it was last read (at most
    /// once per [`RECHECK`]); a file that became unusable keeps the keys
    /// already loaded (and says so in the log).
    fn refresh(&self) {
        {
            let loaded = self.loaded.read().unwrap_or_else(PoisonError::into_inner);
            if loaded.checked.elapsed() < RECHECK {
                return;
            }
        }
        let mut loaded = self.loaded.write().unwrap_or_else(PoisonError::into_inner);
        if loaded.checked.elapsed() < RECHECK {
            return;
        }
        loaded.checked = Instant::now();
        let modified = fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if modified == loaded.modified {
            return;
        }
        match read_keys(&self.path) {
            Ok((keys, modified)) => {
                tracing::info!(keys = keys.len(), "data key file read again");
                loaded.keys = keys;
                loaded.modified = modified;
            }
            Err(e) => {
                tracing::error!(error = %e, "data key file unusable; keeping the keys loaded")
            }
        }
    }

    /// The key that seals new writes.
    pub(crate) fn current(&self) -> DataKey {
        self.refresh();
        let loaded = self.loaded.read().unwrap_or_else(PoisonError::into_inner);
        // `load` and `refresh` only keep non-empty key lists.
        loaded.keys.last().cloned().unwrap_or(DataKey {
            id: String::new(),
            key: [0; 32],
        })
    }

    /// The key named `id`, if the file holds it.
    pub(crate) fn find(&self, id: &str) -> Option<[u8; 32]> {
        self.refresh();
        let loaded = self.loaded.read().unwrap_or_else(PoisonError::into_inner);
        loaded.keys.iter().find(|k| k.id == id).map(|k| k.key)
    }
}
