// Shared by the targets (included with `include!`): bertfit's readers take paths, so each input is
// written to a file in a per-process scratch folder (in /dev/shm when there is one: no disk I/O).
use std::path::PathBuf;

#[allow(dead_code)]
fn scratch() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let dir = base.join(format!("bertfit-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// `bytes` as the file `name` in the scratch folder.
#[allow(dead_code)]
fn input_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).expect("write the fuzz input");
    path
}
