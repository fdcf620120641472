//! Replacing one file atomically: write a temporary file beside it, fsync, rename over it, fsync
//! the folder. The temporary file is removed on every error path, so a full disk leaves the
//! previous file as it was and no partial file behind.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{hooks, TEMP_MARKER};
use crate::error::{Error, Result};

/// Writes `bytes` to `path` so that `path` is at every instant either its old content (or absent)
/// or the new content, also across a crash or power loss.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    if let Err(e) = write_synced(&tmp, path, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    // The rename is durable only once the folder's entry is on disk.
    fsync_dir(parent(path))
}

/// `.<name>.bertfit-tmp-<pid>-<n>` beside `path`: unique within the process, and recognisable
/// (with its owner's pid) by [`super::recover`].
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    parent(path).join(format!(".{name}{TEMP_MARKER}{}-{n}", std::process::id()))
}

fn write_synced(tmp: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(tmp)?;
    if target.file_name().is_some_and(|n| hooks::fail_write(&n.to_string_lossy())) {
        file.write_all(&bytes[..bytes.len() / 2])?;
        return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
    }
    file.write_all(bytes)?;
    file.sync_all()
}

/// The folder `path` is in ("." for a bare name).
pub(super) fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes the entries of folder `dir` (created, renamed, removed files) durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temp() {
        let dir = crate::test_support::fresh_dir("atomic");
        let f = dir.join("a.json");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
        // A folder that does not exist: an error naming the file, nothing created.
        let err = write_atomic(&dir.join("missing/b.json"), b"x").unwrap_err().to_string();
        assert!(err.contains("missing/b.json"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
