//! Writing outputs so that nothing is lost: a file is replaced whole or not at all
//! ([`write_atomic`]), a folder is replaced whole or not at all ([`StagedDir`]), leftovers of a
//! crash are cleared at the next start ([`recover`]), and a folder that holds anything bertfit
//! writes is recognised as a previous run ([`holds_previous_run`]); the `*_results.json` files
//! are written by one writer ([`Results`]).
//!
//! Temporary names all contain [`TEMP_MARKER`] and the writer's process id
//! (`.<name>.bertfit-tmp-<pid>[-<n>]`, `.<name>.bertfit-old-<pid>`), so recovery can tell a
//! leftover of a dead process from the work of a live one.
//!
//! Test hooks (read only here, only by the test suite; see [`hooks`]):
//! `BERTFIT_TEST_SAVE_PAUSE_MS` and `BERTFIT_TEST_FAIL_WRITE`.
mod atomic;
pub mod hooks;
mod lock;
mod previous;
mod recover;
mod results;
mod staged;

pub use atomic::{fsync_dir, write_atomic};
pub use lock::{remove_held_lock_files, RunLock, LOCK_FILE};
pub use previous::{holds_previous_run, previous_run_files, remove_set_aside, set_aside, SET_ASIDE};
pub use recover::{recover, Recovered};
pub use results::{Results, ALL_RESULTS};
pub use staged::StagedDir;

/// Every temporary name bertfit makes contains this.
pub const TEMP_MARKER: &str = ".bertfit-tmp-";
/// The old folder set aside by the fallback swap (filesystems without `RENAME_EXCHANGE`).
pub const OLD_MARKER: &str = ".bertfit-old-";
