//! The key file `signing_keys.json`: its JSON format, strict validation on
//! load, and private (0600), atomic writes.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::algorithm::Algorithm;
use crate::error::KeyError;
use crate::keys::KeyPair;

/// The file name of the key file inside the data directory.
pub const KEY_FILE_NAME: &str = "signing_keys.json";

/// The largest key file we read: far more than any sane number of keys.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// One key as stored in the file.
#[derive(Clone)]
pub(crate) struct StoredKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    pub(crate) created_at: u64,
    /// When it starts to sign (published before, so verifiers that cache
    /// the JWKS know it first); `created_at` if the file does not say.
    pub(crate) not_before: u64,
    pub(crate) retired_at: Option<u64>,
    pub(crate) pair: KeyPair,
    pub(crate) pem: Zeroizing<String>,
}

/// Read and validate the key file at `path`. Keys are in file order (newest last).
pub(crate) fn read(path: &Path) -> Result<Vec<StoredKey>, KeyError> {
    let io_err = |e: io::Error| KeyError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(KeyError::Missing {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(io_err(e)),
    };
    if !meta.is_file() {
        return Err(KeyError::Corrupt {
            path: path.to_owned(),
            reason: "not a regular file".to_owned(),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(KeyError::Corrupt {
            path: path.to_owned(),
            reason: format!("larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    let bytes = Zeroizing::new(fs::read(path).map_err(io_err)?);
    parse(&bytes).map_err(|reason| KeyError::Corrupt {
        path: path.to_owned(),
        reason,
    })
}

/// Parse and validate key file contents. Error texts name the offending
/// member but never echo values (which could be key material).
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<StoredKey>, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "not valid JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )
        .to_lowercase()
    })?;
    let root = doc
        .as_object()
        .ok_or("the top level must be an object {\"keys\": [...]}")?;
    if let Some(extra) = root.keys().find(|k| k.as_str() != "keys") {
        return Err(format!(
            "unknown member {:?} at the top level",
            short(extra)
        ));
    }
    let list = root
        .get("keys")
        .ok_or("missing member \"keys\"")?
        .as_array()
        .ok_or("\"keys\" must be an array")?;
    if list.is_empty() {
        return Err("\"keys\" is empty: there is no signing key".to_owned());
    }
    let mut keys = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let key = parse_key(entry).map_err(|reason| format!("keys[{i}]: {reason}"))?;
        if keys.iter().any(|k: &StoredKey| k.kid == key.kid) {
            return Err(format!("keys[{i}]: duplicate kid {:?}", key.kid));
        }
        let last = i + 1 == list.len();
        match (last, key.retired_at) {
            (true, Some(_)) => {
                return Err(format!(
                    "keys[{i}]: the last key is the current signer and cannot have \"retired_at\""
                ));
            }
            (false, None) => {
                return Err(format!(
                    "keys[{i}]: only the last key may lack \"retired_at\" (it is not the current signer)"
                ));
            }
            _ => {}
        }
        if keys
            .last()
            .is_some_and(|prev: &StoredKey| prev.not_before > key.not_before)
        {
            return Err(format!(
                "keys[{i}]: \"not_before\" is earlier than the key before it (keys are oldest first)"
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

fn parse_key(entry: &Value) -> Result<StoredKey, String> {
    let obj = entry.as_object().ok_or("must be an object")?;
    const KNOWN: [&str; 6] = [
        "kid",
        "alg",
        "created_at",
        "not_before",
        "retired_at",
        "private_key_pem",
    ];
    if let Some(extra) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!("unknown member {:?}", short(extra)));
    }
    let kid = string(obj, "kid")?;
    let alg: Algorithm = string(obj, "alg")?
        .parse()
        .map_err(|e| format!("\"alg\": {e}"))?;
    let created_at = number(obj, "created_at")?.ok_or("missing member \"created_at\"")?;
    let not_before = number(obj, "not_before")?.unwrap_or(created_at);
    if not_before < created_at {
        return Err("\"not_before\" is before \"created_at\"".to_owned());
    }
    let retired_at = number(obj, "retired_at")?;
    if let Some(retired) = retired_at
        && retired < created_at
    {
        return Err("\"retired_at\" is before \"created_at\"".to_owned());
    }
    let pem = Zeroizing::new(string(obj, "private_key_pem")?);
    let pair = KeyPair::from_pem(&pem, alg).map_err(|e| format!("\"private_key_pem\": {}", e.0))?;
    let thumbprint = pair.thumbprint();
    if thumbprint != kid {
        return Err(format!(
            "\"kid\" {:?} is not the RFC 7638 thumbprint of the key ({thumbprint:?})",
            short(&kid)
        ));
    }
    Ok(StoredKey {
        kid,
        alg,
        created_at,
        not_before,
        retired_at,
        pair,
        pem,
    })
}

fn string(obj: &Map<String, Value>, name: &str) -> Result<String, String> {
    match obj.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(format!("\"{name}\" is empty")),
        Some(_) => Err(format!("\"{name}\" must be a string")),
        None => Err(format!("missing member \"{name}\"")),
    }
}

fn number(obj: &Map<String, Value>, name: &str) -> Result<Option<u64>, String> {
    match obj.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("\"{name}\" must be a non-negative integer (unix seconds)")),
    }
}

/// At most 40 characters of a name from the file, for messages.
fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

#[derive(Serialize)]
struct FileOut<'a> {
    keys: Vec<EntryOut<'a>>,
}

#[derive(Serialize)]
struct EntryOut<'a> {
    kid: &'a str,
    alg: &'static str,
    created_at: u64,
    not_before: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    retired_at: Option<u64>,
    private_key_pem: &'a str,
}

/// The file contents for `keys`, newest last.
pub(crate) fn render(keys: &[StoredKey]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let doc = FileOut {
        keys: keys
            .iter()
            .map(|k| EntryOut {
                kid: &k.kid,
                alg: k.alg.as_str(),
                created_at: k.created_at,
                not_before: k.not_before,
                retired_at: k.retired_at,
                private_key_pem: k.pem.as_str(),
            })
            .collect(),
    };
    // Reserve enough up front so that no partial copy of a key is left behind
    // in a freed buffer when the vector grows.
    let mut out = Zeroizing::new(Vec::with_capacity(1024 + 512 * keys.len()));
    serde_json::to_writer_pretty(&mut *out, &doc)
        .map_err(|e| KeyError::Crypto(format!("encoding the key file: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

/// How [`write`] treats an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteMode {
    /// Fail with `AlreadyExists` if the file exists (another process won a race).
    CreateNew,
    /// Atomically replace the file.
    Replace,
}

/// Outcome of [`write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// The file now holds `contents`.
    Done,
    /// `CreateNew` found the file already there; nothing was changed.
    AlreadyExists,
}

/// Write `contents` to `path` with mode 0600: a temporary file in the same
/// directory, fsync, then rename (or hard link for `CreateNew`, which never
/// clobbers), then fsync of the directory.
pub(crate) fn write(path: &Path, contents: &[u8], mode: WriteMode) -> Result<Written, KeyError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_path(path)?;
    let io_err = |p: &Path, e: io::Error| KeyError::Io {
        path: p.to_owned(),
        reason: e.to_string(),
    };
    let result = (|| {
        let mut file = open_private(&tmp).map_err(|e| io_err(&tmp, e))?;
        file.write_all(contents).map_err(|e| io_err(&tmp, e))?;
        file.sync_all().map_err(|e| io_err(&tmp, e))?;
        drop(file);
        let outcome = match mode {
            WriteMode::Replace => {
                fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
                Written::Done
            }
            WriteMode::CreateNew => match fs::hard_link(&tmp, path) {
                Ok(()) => Written::Done,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Written::AlreadyExists,
                Err(e) => return Err(io_err(path, e)),
            },
        };
        sync_dir(dir).map_err(|e| io_err(dir, e))?;
        Ok(outcome)
    })();
    // After a rename the temporary name is gone; after a link or a failure it must go.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) if result.is_ok() => return Err(io_err(&tmp, e)),
        Err(_) => {}
    }
    result
}

fn temp_path(path: &Path) -> Result<PathBuf, KeyError> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| KeyError::Crypto(format!("randomness: {e}")))?;
    let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| KEY_FILE_NAME.to_owned());
    Ok(path.with_file_name(format!(".{name}.{}.{hex}.tmp", std::process::id())))
}

/// Options that create files readable by their owner only (0600 on unix).
fn private_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options
}

fn open_private(path: &Path) -> io::Result<fs::File> {
    private_options().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Take the lock that serializes changes to the key file in `dir` (a
/// `.signing_keys.json.lock` file beside it); held until the returned file
/// is dropped. Waits for another holder to finish.
pub(crate) fn lock(dir: &Path) -> Result<fs::File, KeyError> {
    let path = dir.join(format!(".{KEY_FILE_NAME}.lock"));
    let io_err = |e: io::Error| KeyError::Io {
        path: path.clone(),
        reason: e.to_string(),
    };
    let file = private_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err)?;
    file.lock().map_err(io_err)?;
    Ok(file)
}

/// Create `dir` (and missing parents) with mode 0700 if it does not exist.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| KeyError::Io {
        path: dir.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(alg: Algorithm, created_at: u64, retired_at: Option<u64>) -> StoredKey {
        let pair = KeyPair::generate(alg).unwrap();
        StoredKey {
            kid: pair.thumbprint(),
            alg,
            created_at,
            not_before: created_at,
            retired_at,
            pem: pair.to_pem().unwrap(),
            pair,
        }
    }

    fn render_value(keys: &[StoredKey]) -> Value {
        serde_json::from_slice(&render(keys).unwrap()).unwrap()
    }

    fn parse_value(v: &Value) -> Result<Vec<StoredKey>, String> {
        parse(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn render_then_parse_round_trips() {
        let keys = vec![
            stored(Algorithm::EdDSA, 10, Some(20)),
            stored(Algorithm::ES256, 20, None),
        ];
        let back = parse(&render(&keys).unwrap()).unwrap();
        assert_eq!(back.len(), 2);
        for (a, b) in keys.iter().zip(&back) {
            assert_eq!(a.kid, b.kid);
            assert_eq!(a.alg, b.alg);
            assert_eq!(a.created_at, b.created_at);
            assert_eq!(a.retired_at, b.retired_at);
        }
    }

    #[test]
    fn corrupt_files_are_described() {
        let good = render_value(&[stored(Algorithm::EdDSA, 10, None)]);
        let cases: Vec<(Value, &str)> = vec![
            (json!([]), "top level must be an object"),
            (json!({}), "missing member \"keys\""),
            (json!({"keys": []}), "is empty"),
            (json!({"keys": {}}), "must be an array"),
            (json!({"keys": [1]}), "keys[0]: must be an object"),
            (
                json!({"keys": good["keys"], "x": 1}),
                "unknown member \"x\"",
            ),
        ];
        for (doc, expected) in cases {
            let err = parse_value(&doc).err().unwrap();
            assert!(err.contains(expected), "{err} !~ {expected}");
        }
        let mutate = |f: &dyn Fn(&mut Map<String, Value>)| {
            let mut doc = good.clone();
            f(doc["keys"][0].as_object_mut().unwrap());
            parse_value(&doc).err().unwrap()
        };
        assert!(mutate(&|m| m["kid"] = json!("abc")).contains("not the RFC 7638 thumbprint"));
        assert!(mutate(&|m| m["alg"] = json!("HS256")).contains("unsupported algorithm"));
        assert!(mutate(&|m| m["alg"] = json!("ES256")).contains("not a PKCS#8 P-256"));
        assert!(mutate(&|m| m["created_at"] = json!(-1)).contains("non-negative integer"));
        assert!(mutate(&|m| m["created_at"] = json!("1")).contains("non-negative integer"));
        assert!(
            mutate(&|m| {
                m.remove("created_at");
            })
            .contains("missing member \"created_at\"")
        );
        assert!(
            mutate(&|m| {
                m.insert("retired_at".into(), json!(11));
            })
            .contains("the last key is the current signer")
        );
        assert!(
            mutate(&|m| {
                m.insert("extra".into(), json!(1));
            })
            .contains("unknown member \"extra\"")
        );
        assert!(mutate(&|m| m["private_key_pem"] = json!("")).contains("is empty"));
        assert!(mutate(&|m| m["private_key_pem"] = json!(7)).contains("must be a string"));
    }

    #[test]
    fn ordering_rules_are_enforced() {
        let a = stored(Algorithm::EdDSA, 10, None);
        let b = stored(Algorithm::EdDSA, 20, None);
        let err = parse(&render(&[a.clone(), b]).unwrap()).err().unwrap();
        assert!(err.contains("only the last key may lack"), "{err}");
        let mut dup = a.clone();
        dup.retired_at = Some(15);
        let err = parse(&render(&[dup, a]).unwrap()).err().unwrap();
        assert!(err.contains("duplicate kid"), "{err}");
        let err = parse(
            &render(&[
                stored(Algorithm::ES256, 10, Some(5)),
                stored(Algorithm::ES256, 10, None),
            ])
            .unwrap(),
        )
        .err()
        .unwrap();
        assert!(err.contains("before \"created_at\""), "{err}");
    }

    #[test]
    fn messages_never_echo_values() {
        let mut doc = render_value(&[stored(Algorithm::EdDSA, 10, None)]);
        let pem = doc["keys"][0]["private_key_pem"]
            .as_str()
            .unwrap()
            .to_owned();
        doc["keys"][0]["created_at"] = json!(pem.clone());
        let err = parse_value(&doc).err().unwrap();
        assert!(!err.contains("PRIVATE"), "{err}");
        // A truncated file: the syntax error must not quote the file.
        let bytes = render(&[stored(Algorithm::EdDSA, 10, None)]).unwrap();
        let err = parse(&bytes[..bytes.len() / 2]).err().unwrap();
        assert!(!err.contains("PRIVATE"), "{err}");
        assert!(err.starts_with("not valid json"), "{err}");
    }

    #[test]
    fn binary_garbage_is_an_error() {
        assert!(parse(&[0xff, 0x00, 0x13]).is_err());
        assert!(parse(b"").is_err());
    }
}
