//! Clearing what a crashed save left behind, at the start of the next one.
//!
//! Leftovers are recognised by name (`.<name>.bertfit-tmp-<pid>[-<n>]` and
//! `.<name>.bertfit-old-<pid>`) and handled only when process `<pid>` is no longer running (a
//! live bertfit may be saving into the same folder right now):
//! - `bertfit-tmp`: a staged folder or temporary file that never got swapped in, or the old folder
//!   after a completed swap. Either way the target is complete without it: removed.
//! - `bertfit-old`: the old folder set aside by the fallback swap. If the target is missing, the
//!   crash came between the two renames and the old folder is renamed back; otherwise the swap
//!   completed and it is removed.
use std::path::{Path, PathBuf};

use super::atomic::{fsync_dir, parent};
use super::{OLD_MARKER, TEMP_MARKER};
use crate::error::{Error, Result};

/// What [`recover`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovered {
    /// Leftovers removed.
    pub removed: Vec<PathBuf>,
    /// Folders put back from a `.bertfit-old-` copy.
    pub restored: Vec<PathBuf>,
}

/// Clears leftovers of crashed saves of `target` (beside it) and inside it (temporary files of
/// [`super::write_atomic`], staged sub-folders such as checkpoints). Call it before looking at
/// what `target` holds.
pub fn recover(target: &Path) -> Result<Recovered> {
    let mut done = Recovered::default();
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned());
    if let Some(name) = name {
        recover_in(parent(target), Some(&name), &mut done)?;
    }
    if target.is_dir() {
        recover_in(target, None, &mut done)?;
        done.removed.extend(super::lock::sweep_stale(target));
    }
    Ok(done)
}

/// One leftover's parts: the name it stands in for, which marker, the owner's pid.
fn parse(file_name: &str) -> Option<(&str, &str, u32)> {
    for marker in [OLD_MARKER, TEMP_MARKER] {
        if let Some((base, rest)) = file_name.split_once(marker) {
            let base = base.strip_prefix('.')?;
            let pid = rest.split('-').next()?.parse().ok()?;
            return Some((base, marker, pid));
        }
    }
    None
}

fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Leftovers in `dir`, all of them or only those standing in for `only`.
fn recover_in(dir: &Path, only: Option<&str>, done: &mut Recovered) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut leftovers = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some((base, marker, pid)) = parse(&file_name) {
            if only.is_none_or(|o| o == base) && !alive(pid) {
                leftovers.push((entry.path(), dir.join(base), marker == OLD_MARKER));
            }
        }
    }
    // Old copies first: one may have to be put back before anything else is judged.
    leftovers.sort_by_key(|(_, _, old)| !old);
    for (path, stands_for, old) in leftovers {
        if old && std::fs::symlink_metadata(&stands_for).is_err() {
            std::fs::rename(&path, &stands_for).map_err(|e| Error::io(&stands_for, e))?;
            done.restored.push(stands_for);
            continue;
        }
        let removed =
            if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        removed.map_err(|e| Error::io(&path, e))?;
        done.removed.push(path);
    }
    if !done.removed.is_empty() || !done.restored.is_empty() {
        fsync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid no process has (a child that has exited and been reaped).
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn names_parse() {
        assert_eq!(parse(".out.bertfit-tmp-12"), Some(("out", TEMP_MARKER, 12)));
        assert_eq!(parse(".config.json.bertfit-tmp-12-3"), Some(("config.json", TEMP_MARKER, 12)));
        assert_eq!(parse(".out.bertfit-old-7"), Some(("out", OLD_MARKER, 7)));
        assert_eq!(parse("out.bertfit-tmp-7"), None);
        assert_eq!(parse(".out.bertfit-tmp-x"), None);
    }

    #[test]
    fn restores_and_removes_leftovers_of_dead_processes() {
        let root = crate::test_support::missing_dir("recover");
        let pid = dead_pid();
        // A crash between the fallback's two renames: no target, old copy and staged folder aside.
        let old = root.join(format!(".out{OLD_MARKER}{pid}"));
        let staged = root.join(format!(".out{TEMP_MARKER}{pid}"));
        std::fs::create_dir_all(&old).unwrap();
        std::fs::create_dir_all(&staged).unwrap();
        std::fs::write(old.join("config.json"), "old").unwrap();
        // A live process's staging (ours) and another folder's leftovers are left alone.
        let ours = root.join(format!(".out{TEMP_MARKER}{}", std::process::id()));
        let other = root.join(format!(".other{TEMP_MARKER}{pid}"));
        std::fs::create_dir_all(&ours).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        let out = root.join("out");
        let done = recover(&out).unwrap();
        assert_eq!(done.restored, vec![out.clone()]);
        assert_eq!(done.removed, vec![staged.clone()]);
        assert_eq!(std::fs::read_to_string(out.join("config.json")).unwrap(), "old");
        assert!(ours.exists() && other.exists() && !staged.exists() && !old.exists());
        // A temporary file of write_atomic inside the folder.
        let tmp = out.join(format!(".metrics.jsonl{TEMP_MARKER}{pid}-0"));
        std::fs::write(&tmp, "partial").unwrap();
        assert_eq!(recover(&out).unwrap().removed, vec![tmp]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
