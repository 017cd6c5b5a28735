//! Private places on disk: directories only their owner can enter (0700) and
//! files only their owner can read (0600), whatever the process umask.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Mode of a private directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of a private file.
pub const FILE_MODE: u32 = 0o600;

/// What [`ensure_dir`] or [`restrict_file`] changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fix {
    /// Nothing: it was private already (or did not exist).
    None,
    /// Created, private.
    Created,
    /// It was open to group or others (its mode was this); now it is not.
    Restricted(u32),
}

/// Create `dir` (and missing parents) with mode 0700, or make an existing
/// `dir` mode 0700 if group or others had any access to it.
pub fn ensure_dir(dir: &Path) -> io::Result<Fix> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => restrict(dir, meta.permissions().mode(), DIR_MODE),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", dir.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)?;
            // The umask may have taken bits away but never adds any; set the
            // mode exactly anyway.
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
            Ok(Fix::Created)
        }
        Err(e) => Err(e),
    }
}

/// Make the file at `path` mode 0600 if group or others had any access to
/// it; a missing file is left alone.
pub fn restrict_file(path: &Path) -> io::Result<Fix> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => restrict(path, meta.permissions().mode(), FILE_MODE),
        Ok(_) => Ok(Fix::None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Fix::None),
        Err(e) => Err(e),
    }
}

/// Create the empty file `path` with mode 0600 unless it exists (then its
/// mode is fixed as by [`restrict_file`]). Tools that create files by their
/// own rules (SQLite's journal files copy the database file's mode) then
/// make them private too.
pub fn create_file(path: &Path) -> io::Result<Fix> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => {
            fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE))?;
            Ok(Fix::Created)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => restrict_file(path),
        Err(e) => Err(e),
    }
}

fn restrict(path: &Path, mode: u32, private: u32) -> io::Result<Fix> {
    if mode & 0o077 == 0 {
        return Ok(Fix::None);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(private))?;
    Ok(Fix::Restricted(mode & 0o7777))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_and_repairs_directories_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        assert_eq!(ensure_dir(&dir).unwrap(), Fix::Created);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(ensure_dir(&dir).unwrap(), Fix::None);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(ensure_dir(&dir).unwrap(), Fix::Restricted(0o755));
        assert_eq!(mode(&dir), 0o700);

        let file = dir.join("f");
        assert_eq!(restrict_file(&file).unwrap(), Fix::None);
        assert_eq!(create_file(&file).unwrap(), Fix::Created);
        assert_eq!(mode(&file), 0o600);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(create_file(&file).unwrap(), Fix::Restricted(0o644));
        assert_eq!(mode(&file), 0o600);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(restrict_file(&file).unwrap(), Fix::Restricted(0o640));

        let not_dir = tmp.path().join("plain");
        fs::write(&not_dir, b"x").unwrap();
        assert!(ensure_dir(&not_dir).is_err());
    }
}
