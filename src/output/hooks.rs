//! Fault-injection hooks for the crash and full-disk tests (tests/hardening.rs). They are read
//! from the environment at the few points they act on and do nothing when unset.
//!
//! - `BERTFIT_TEST_SAVE_PAUSE_MS=<ms>`: [`crate::weights::save_pretrained`] and
//!   [`super::StagedDir::commit`] print `bertfit-test: save point <name>` to stderr and sleep this
//!   long at each point (after each file, before the swap, after the swap; for checkpoints also
//!   around each deletion of `--save-total-limit`'s rotation), so a test can kill the process at a
//!   known point of a save. With `BERTFIT_TEST_SAVE_PAUSE_AT=<n>` every point is still announced
//!   but only the `n`th (from 0, in the process) pauses, so a test can give the kill at one late
//!   point a long margin without waiting at every earlier one.
//! - `BERTFIT_TEST_FAIL_WRITE=<file name>`: [`super::write_atomic`] writes half of a file with that
//!   name, then fails with ENOSPC ("No space left on device"), as a full disk would.
//!
//! (The step pause of the signal tests is a reporter: `crate::train::fault`.)
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub const SAVE_PAUSE_MS: &str = "BERTFIT_TEST_SAVE_PAUSE_MS";
pub const FAIL_WRITE: &str = "BERTFIT_TEST_FAIL_WRITE";
pub const SAVE_PAUSE_AT: &str = "BERTFIT_TEST_SAVE_PAUSE_AT";

/// A named point of a save: announced and paused at when `BERTFIT_TEST_SAVE_PAUSE_MS` is set (only
/// at the `n`th point of the process, counting from 0, when `BERTFIT_TEST_SAVE_PAUSE_AT=n` is set too).
pub fn save_point(name: &str) {
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    let Some(ms) = std::env::var(SAVE_PAUSE_MS).ok().and_then(|v| v.parse::<u64>().ok()) else {
        return;
    };
    let n = SEEN.fetch_add(1, Ordering::SeqCst);
    eprintln!("bertfit-test: save point {name}");
    let only = std::env::var(SAVE_PAUSE_AT).ok().and_then(|v| v.parse::<usize>().ok());
    if only.is_none_or(|at| at == n) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// Whether the test asked writes of `file_name` to fail.
pub fn fail_write(file_name: &str) -> bool {
    std::env::var_os(FAIL_WRITE).is_some_and(|v| v == file_name)
}
