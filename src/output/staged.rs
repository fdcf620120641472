//! Replacing a whole folder at once. Files are written into a temporary sibling folder; `commit`
//! makes them durable, carries over what the old folder has and the new one does not replace, and
//! swaps the two folders in one `renameat2(RENAME_EXCHANGE)`: the target is at every instant
//! either the complete old folder or the complete new one, also across `kill -9` or power loss.
//!
//! Why carry-over is by hard links (sub-folders such as `checkpoint-*/` recreated and their files
//! hard-linked), not by moving entries: moving would change the old folder before the swap, so a
//! crash in between would leave it incomplete. Hard links leave the old folder untouched until the
//! swap and cost no disk space. Where a filesystem refuses hard links the file is copied.
//!
//! Where the filesystem refuses the exchange (EINVAL/ENOTSUP, e.g. some network filesystems, or
//! a non-Linux system), the fallback is two renames: the old folder to `.<name>.bertfit-old-<pid>`,
//! the new one into place. Between them the target does not exist; [`super::recover`] then renames
//! the old folder back, so a crash there still ends with the complete old folder.
use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::atomic::{fsync_dir, parent};
use super::recover::recover;
use super::{hooks, OLD_MARKER, TEMP_MARKER};
use crate::error::{Error, Result};

/// A folder being written in a temporary sibling of `target`, swapped in by [`Self::commit`].
/// Dropping it without a commit removes the temporary folder and leaves `target` as it was.
#[derive(Debug)]
pub struct StagedDir {
    target: PathBuf,
    staged: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Creates `.<name>.bertfit-tmp-<pid>` beside `target` (and `target`'s parent folders), after
    /// clearing what a crashed earlier save left there ([`super::recover`]).
    pub fn new(target: &Path) -> Result<Self> {
        // A symlinked output folder: swap the folder it points to, not the link.
        let target = match std::fs::symlink_metadata(target) {
            Ok(m) if m.file_type().is_symlink() => target.canonicalize().map_err(|e| Error::io(target, e))?,
            _ => target.to_path_buf(),
        };
        let Some(name) = target.file_name().map(OsStr::to_string_lossy) else {
            return Err(Error::io(&target, std::io::Error::other("an output folder needs a name")));
        };
        let dir = parent(&target);
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        recover(&target)?;
        let staged = dir.join(format!(".{name}{TEMP_MARKER}{}", std::process::id()));
        if staged.exists() {
            // Only this process uses this name: a save of ours that did not get to clean up.
            std::fs::remove_dir_all(&staged).map_err(|e| Error::io(&staged, e))?;
        }
        // Named as the folder being saved (the user's name for it), not the temporary sibling.
        std::fs::create_dir(&staged).map_err(|e| Error::io(&target, e))?;
        Ok(StagedDir { target, staged, committed: false })
    }

    /// Where to write the new folder's files.
    pub fn path(&self) -> &Path {
        &self.staged
    }

    /// The folder the commit replaces.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Makes the staged files durable and puts them in place of the target (see the module docs).
    pub fn commit(self) -> Result<()> {
        self.commit_with(exchange)
    }

    fn commit_with(mut self, swap: fn(&Path, &Path) -> std::io::Result<bool>) -> Result<()> {
        sync_tree(&self.staged)?;
        let dir = parent(&self.target).to_path_buf();
        match std::fs::symlink_metadata(&self.target) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                hooks::save_point("before-swap");
                std::fs::rename(&self.staged, &self.target).map_err(|e| Error::io(&self.target, e))?;
                self.committed = true;
                fsync_dir(&dir)?;
                hooks::save_point("after-swap");
                return Ok(());
            }
            Err(e) => return Err(Error::io(&self.target, e)),
            Ok(m) if !m.is_dir() => {
                return Err(Error::io(&self.target, std::io::Error::other("exists and is not a folder")));
            }
            Ok(m) => {
                carry_over(&self.target, &self.staged)?;
                // The new folder keeps the old one's permissions.
                let _ = std::fs::set_permissions(&self.staged, m.permissions());
                fsync_dir(&self.staged)?;
            }
        }
        hooks::save_point("before-swap");
        if swap(&self.staged, &self.target).map_err(|e| Error::io(&self.target, e))? {
            // `staged` now names the old folder.
            self.committed = true;
            fsync_dir(&dir)?;
            hooks::save_point("after-swap");
            // A failure here only leaves the old copy, which the next `recover` removes.
            let _ = std::fs::remove_dir_all(&self.staged);
            return Ok(());
        }
        self.swap_by_renames(&dir)
    }

    /// The fallback: old folder aside, new one in, old one removed.
    fn swap_by_renames(&mut self, dir: &Path) -> Result<()> {
        let name = self.target.file_name().map(OsStr::to_string_lossy).unwrap_or_default();
        let old = dir.join(format!(".{name}{OLD_MARKER}{}", std::process::id()));
        std::fs::rename(&self.target, &old).map_err(|e| Error::io(&self.target, e))?;
        if let Err(e) = std::fs::rename(&self.staged, &self.target) {
            let _ = std::fs::rename(&old, &self.target);
            return Err(Error::io(&self.target, e));
        }
        self.committed = true;
        fsync_dir(dir)?;
        hooks::save_point("after-swap");
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staged);
        }
    }
}

/// `renameat2(a, b, RENAME_EXCHANGE)`: true if swapped, false if the filesystem cannot.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let cstr = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (a, b) = (cstr(a)?, cstr(b)?);
    // SAFETY: two valid NUL-terminated paths; the call reads nothing else.
    let rc = unsafe {
        libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE)
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => Ok(false),
        _ => Err(err),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<bool> {
    Ok(false)
}

/// Every entry of `old` that `new` does not have, recreated in `new` (see the module docs).
/// Leftover temporary entries are not carried.
fn carry_over(old: &Path, new: &Path) -> Result<()> {
    for entry in std::fs::read_dir(old).map_err(|e| Error::io(old, e))? {
        let entry = entry.map_err(|e| Error::io(old, e))?;
        let name = entry.file_name();
        let text = name.to_string_lossy();
        if text.contains(TEMP_MARKER) || text.contains(OLD_MARKER) {
            continue;
        }
        let dst = new.join(&name);
        if std::fs::symlink_metadata(&dst).is_ok() {
            continue; // replaced by the new folder
        }
        link_tree(&entry.path(), &dst)?;
    }
    Ok(())
}

/// `src` recreated at `dst`: files hard-linked (copied where links are refused), folders
/// recreated and filled, symlinks recreated.
fn link_tree(src: &Path, dst: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(src).map_err(|e| Error::io(src, e))?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        let to = std::fs::read_link(src).map_err(|e| Error::io(src, e))?;
        return std::os::unix::fs::symlink(to, dst).map_err(|e| Error::io(dst, e));
    }
    if kind.is_dir() {
        std::fs::create_dir(dst).map_err(|e| Error::io(dst, e))?;
        for entry in std::fs::read_dir(src).map_err(|e| Error::io(src, e))? {
            let entry = entry.map_err(|e| Error::io(src, e))?;
            link_tree(&entry.path(), &dst.join(entry.file_name()))?;
        }
        let _ = std::fs::set_permissions(dst, meta.permissions());
        return fsync_dir(dst);
    }
    if !kind.is_file() {
        return Err(Error::io(
            src,
            std::io::Error::other("not a file, folder or symlink: cannot carry it into the new folder"),
        ));
    }
    if std::fs::hard_link(src, dst).is_err() {
        std::fs::copy(src, dst).map_err(|e| Error::io(dst, e))?;
        File::open(dst).and_then(|f| f.sync_all()).map_err(|e| Error::io(dst, e))?;
    }
    Ok(())
}

/// fsync of every file and folder under `dir` (writers may have used plain `std::fs::write`).
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            File::open(&path).and_then(|f| f.sync_all()).map_err(|e| Error::io(&path, e))?;
        }
    }
    fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = crate::test_support::fresh_dir(&format!("staged-{name}"));
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        v.sort();
        v
    }

    fn old_folder(root: &Path) -> PathBuf {
        let out = root.join("out");
        std::fs::create_dir_all(out.join("checkpoint-5")).unwrap();
        std::fs::write(out.join("config.json"), "old").unwrap();
        std::fs::write(out.join("notes.txt"), "keep").unwrap();
        std::fs::write(out.join("checkpoint-5/model.safetensors"), "ck").unwrap();
        out
    }

    fn check_committed(root: &Path, out: &Path) {
        assert_eq!(std::fs::read_to_string(out.join("config.json")).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(out.join("checkpoint-5/model.safetensors")).unwrap(), "ck");
        assert_eq!(names(root), vec!["out"], "temporary folders left behind");
    }

    #[test]
    fn commit_swaps_and_carries_over() {
        let root = scratch("swap");
        let out = old_folder(&root);
        let staged = StagedDir::new(&out).unwrap();
        std::fs::write(staged.path().join("config.json"), "new").unwrap();
        assert_eq!(std::fs::read_to_string(out.join("config.json")).unwrap(), "old");
        staged.commit().unwrap();
        check_committed(&root, &out);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn fallback_without_exchange() {
        let root = scratch("fallback");
        let out = old_folder(&root);
        let staged = StagedDir::new(&out).unwrap();
        std::fs::write(staged.path().join("config.json"), "new").unwrap();
        staged.commit_with(|_, _| Ok(false)).unwrap();
        check_committed(&root, &out);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn new_target_and_drop() {
        let root = scratch("new");
        let out = root.join("a/b/out");
        let staged = StagedDir::new(&out).unwrap();
        std::fs::write(staged.path().join("config.json"), "x").unwrap();
        drop(staged);
        assert_eq!(names(&root.join("a/b")), Vec::<String>::new(), "drop leaves nothing");
        let staged = StagedDir::new(&out).unwrap();
        std::fs::write(staged.path().join("config.json"), "x").unwrap();
        staged.commit().unwrap();
        assert_eq!(names(&out), vec!["config.json"]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
