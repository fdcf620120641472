//! One run per output folder. Two runs writing into one folder would each take the other's
//! checkpoints for their own and interleave metrics.jsonl; the second one is refused instead,
//! naming the first (PID, host, start time).
//!
//! The lock is `flock(LOCK_EX)` on `<output>/.bertfit-lock`, held for the run's lifetime and
//! released by the kernel when the process ends however it ends. The file exists only while a
//! run holds it: the holder deletes it before unlocking, and a taker checks after locking that
//! the name still leads to the file it locked (else it lost a race with a deletion and tries
//! again). A file left by a killed run is unlocked, so the next run takes it over, and
//! [`super::recover`] sweeps it. The folder swap of a save carries the file over by hard link
//! (`StagedDir`), so the new folder's lock file is the same inode and the lock holds across swaps.
//! flock works on local filesystems and on NFS (as fcntl locks, Linux >= 2.6.12).
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The lock file's name inside the output folder.
pub const LOCK_FILE: &str = ".bertfit-lock";

/// Lock files this process holds, for [`remove_held_lock_files`].
static HELD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Deletes the lock files this process holds, for a process about to end without unwinding
/// (the second stop signal's `_exit`): the kernel releases the locks, this removes the files.
/// Never blocks (a signal handler's thread calls it).
pub fn remove_held_lock_files() {
    if let Ok(held) = HELD.try_lock() {
        for path in held.iter() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An exclusive hold on an output folder; released on drop.
#[derive(Debug)]
pub struct RunLock {
    /// `None` on a read-only filesystem: nobody can write there, so there is nothing to exclude
    /// (the run fails at its first write, naming the file).
    file: Option<File>,
    dir: PathBuf,
    /// The folder did not exist before: if the run ends having written nothing, it is removed.
    created: bool,
}

impl RunLock {
    /// Takes the folder `dir` (creating it), or refuses naming the run that holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = loop {
            let mut file = match open(&path) {
                Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EROFS) => {
                    return Ok(RunLock { file: None, dir: dir.to_path_buf(), created });
                }
                other => other?,
            };
            if !try_lock(&file).map_err(|e| Error::io(&path, e))? {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::usage(
                    "--output-dir",
                    format!(
                        "{} is in use by another bertfit run ({}); wait for it to end, or give this \
                         run another --output-dir",
                        dir.display(),
                        if holder.is_empty() { "its PID is not written yet" } else { holder }
                    ),
                ));
            }
            if same_file(&file, &path) {
                break file;
            }
        };
        let me = format!(
            "PID {} on host {}, started at unix time {}",
            std::process::id(),
            hostname(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
        );
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(me.as_bytes()))
            .map_err(|e| Error::io(&path, e))?;
        if let Ok(mut held) = HELD.lock() {
            held.push(path);
        }
        Ok(RunLock { file: Some(file), dir: dir.to_path_buf(), created })
    }
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// `flock(LOCK_EX | LOCK_NB)`: whether this open file now holds the lock.
fn try_lock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// Whether `path` still names the open `file` (not deleted or replaced since it was opened).
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Deletes a lock file that no run holds (its run was killed); returns it if it did.
pub(super) fn sweep_stale(dir: &Path) -> Option<PathBuf> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new().read(true).write(true).open(&path).ok()?;
    // Held (by a live run, or by this process itself through another descriptor): leave it.
    if !try_lock(&file).ok()? || !same_file(&file, &path) {
        return None;
    }
    std::fs::remove_file(&path).ok()?;
    Some(path)
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let Some(file) = &self.file else { return };
        // Deleted while still held, so that no other run can lock this inode after it is gone.
        let path = self.dir.join(LOCK_FILE);
        if let Ok(mut held) = HELD.lock() {
            held.retain(|p| p != &path);
        }
        if same_file(file, &path) {
            let _ = std::fs::remove_file(&path);
        }
        // A run refused before it wrote anything leaves no empty folder behind.
        if self.created {
            let _ = std::fs::remove_dir(&self.dir);
        }
        // SAFETY: unlocking our own descriptor (closing it would release the lock too).
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return "?".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_hold_is_refused_naming_the_first_and_released_on_drop() {
        let dir = crate::test_support::missing_dir("lock");
        let first = RunLock::acquire(&dir).unwrap();
        // flock locks belong to the open file: a second open in the same process conflicts too.
        let e = RunLock::acquire(&dir).unwrap_err().to_string();
        assert!(e.contains("is in use by another bertfit run"), "{e}");
        assert!(e.contains(&format!("PID {} on host", std::process::id())), "{e}");
        assert_eq!(sweep_stale(&dir), None, "a held lock is not stale");
        drop(first);
        // Nothing was written: the folder the lock made is gone again.
        assert!(!dir.exists());
        let again = RunLock::acquire(&dir).unwrap();
        std::fs::write(dir.join("metrics.jsonl"), "").unwrap();
        drop(again);
        assert!(dir.join("metrics.jsonl").exists() && !dir.join(LOCK_FILE).exists());
        // A killed run's file: unlocked, taken over, swept.
        std::fs::write(dir.join(LOCK_FILE), "PID 1 on host gone").unwrap();
        assert_eq!(sweep_stale(&dir), Some(dir.join(LOCK_FILE)));
        std::fs::write(dir.join(LOCK_FILE), "PID 1 on host gone").unwrap();
        drop(RunLock::acquire(&dir).unwrap());
        assert!(!dir.join(LOCK_FILE).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
