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
//! - `BERTFIT_TEST_STEP_PAUSE_MS=<ms>`: the trainer prints `bertfit-test: step pause` and sleeps
//!   this long after each optimizer step, so a signal test can stop a tiny run mid-epoch.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub const SAVE_PAUSE_MS: &str = "BERTFIT_TEST_SAVE_PAUSE_MS";
pub const FAIL_WRITE: &str = "BERTFIT_TEST_FAIL_WRITE";
pub const STEP_PAUSE_MS: &str = "BERTFIT_TEST_STEP_PAUSE_MS";
pub const SAVE_PAUSE_AT: &str = "BERTFIT_TEST_SAVE_PAUSE_AT";

/// After an optimizer step: announces `bertfit-test: step pause` on stderr and pauses when
/// `BERTFIT_TEST_STEP_PAUSE_MS` is set (a signal test waits for the line, then signals).
pub fn step_pause() {
    if let Some(ms) = std::env::var(STEP_PAUSE_MS).ok().and_then(|v| v.parse::<u64>().ok()) {
        eprintln!("bertfit-test: step pause");
        std::thread::sleep(Duration::from_millis(ms));
    }
}

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
