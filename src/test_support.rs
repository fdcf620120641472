//! What the unit tests share (compiled only for them).
use std::path::PathBuf;

/// A path in the system's temp folder for unit test `name`, unique to this process, with nothing
/// there (a test of what happens to a missing folder creates it itself).
pub fn missing_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bertfit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// [`missing_dir`], created empty.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = missing_dir(name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}
