//! The admin API key: taken from config, or read from (or generated into) a
//! mode-0600 file in the data directory. Only its SHA-256 is kept in memory.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Config;

/// Name of the key file inside the data directory.
pub const FILE_NAME: &str = "api_key";
/// Prefix of generated keys, so secret scanners can recognize them.
pub const PREFIX: &str = "sdk_";

/// The admin API key, held as its SHA-256 only.
#[derive(Clone)]
pub struct ApiKey {
    digest: [u8; 32],
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl ApiKey {
    /// Hold `key` (by its hash).
    pub fn new(key: &str) -> Self {
        Self {
            digest: Sha256::digest(key.as_bytes()).into(),
        }
    }

    /// Whether `presented` is the key, compared in constant time.
    pub fn verify(&self, presented: &str) -> bool {
        let candidate: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest.ct_eq(&candidate).into()
    }
}

/// A new random key: `sdk_` and 32 bytes from the OS CSPRNG in base64url.
pub fn generate() -> Result<String, io::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(format!("no randomness: {e}")))?;
    Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// Path of the key file for `config`.
pub fn file_path(config: &Config) -> PathBuf {
    config.data_dir.join(FILE_NAME)
}

/// The configured key, else the key in `<data_dir>/api_key` if there is
/// one (nothing is written): what a command talking to the server uses.
pub fn existing(config: &Config) -> Result<Option<String>, io::Error> {
    if let Some(key) = &config.api_key {
        return Ok(Some(key.clone()));
    }
    match read_key_file(&file_path(config)) {
        Ok(key) => Ok(Some(key)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The configured key; else the key in `<data_dir>/api_key`; else a new key
/// written there with mode 0600. Logs the file's path, never the key.
pub fn load_or_create(config: &Config) -> Result<ApiKey, io::Error> {
    let path = file_path(config);
    if let Some(key) = existing(config)? {
        if config.api_key.is_none() {
            tracing::info!(path = %path.display(), "admin API key read from file");
        }
        return Ok(ApiKey::new(&key));
    }
    let key = generate()?;
    match write_new_key_file(&config.data_dir, &path, &key) {
        Ok(()) => {
            tracing::info!(
                path = %path.display(),
                "generated an admin API key; read it from this file (mode 0600)"
            );
            Ok(ApiKey::new(&key))
        }
        // Another process wrote it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let key = read_key_file(&path)?;
            tracing::info!(path = %path.display(), "admin API key read from file");
            Ok(ApiKey::new(&key))
        }
        Err(e) => Err(e),
    }
}

/// Read the key file, refusing one that others may read.
fn read_key_file(path: &Path) -> Result<String, io::Error> {
    let meta = fs::metadata(path)?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is readable or writable by group or others (mode {:o}); run: chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            ),
        ));
    }
    let text = fs::read_to_string(path)?;
    let key = text.trim();
    if key.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is empty; delete it to generate a new key",
                path.display()
            ),
        ));
    }
    Ok(key.to_owned())
}

/// Write `key` to `path` atomically (temporary file, then a hard link that
/// fails if `path` exists), creating `dir` with mode 0700 if needed.
fn write_new_key_file(dir: &Path, path: &Path, key: &str) -> Result<(), io::Error> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| io::Error::other(format!("no randomness: {e}")))?;
    let tmp = dir.join(format!(
        ".{FILE_NAME}.{}.tmp",
        URL_SAFE_NO_PAD.encode(suffix)
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(key.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    written?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path) -> Config {
        Config {
            data_dir: dir.join("data"),
            ..Config::default()
        }
    }

    #[test]
    fn generates_a_private_file_once() {
        let tmp = tempfile::tempdir().unwrap();
        let config = config_in(tmp.path());
        let first = load_or_create(&config).unwrap();
        let path = file_path(&config);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let key = fs::read_to_string(&path).unwrap();
        let key = key.trim();
        assert!(key.starts_with(PREFIX));
        assert_eq!(key.len(), PREFIX.len() + 43);
        assert!(first.verify(key));
        let second = load_or_create(&config).unwrap();
        assert!(second.verify(key));
        assert_eq!(fs::read_dir(&config.data_dir).unwrap().count(), 1);
    }

    #[test]
    fn configured_key_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = config_in(tmp.path());
        config.api_key = Some("configured-key-0123456789".to_owned());
        let key = load_or_create(&config).unwrap();
        assert!(key.verify("configured-key-0123456789"));
        assert!(!file_path(&config).exists());
    }

    #[test]
    fn verify_is_exact() {
        let key = ApiKey::new("sdk_abc");
        assert!(key.verify("sdk_abc"));
        assert!(!key.verify("sdk_abd"));
        assert!(!key.verify("sdk_ab"));
        assert!(!key.verify(""));
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
    }

    #[test]
    fn refuses_a_readable_file() {
        let tmp = tempfile::tempdir().unwrap();
        let config = config_in(tmp.path());
        load_or_create(&config).unwrap();
        let path = file_path(&config);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(&config).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(generate().unwrap(), generate().unwrap());
    }
}
