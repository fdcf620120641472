//! A stop request (Ctrl-C, SIGTERM from a cluster scheduler) that the training loop honours after
//! the step in progress: the model trained so far is saved and the run ends with an error, instead
//! of the process dying mid-write. The binary installs the signal handler; the library only reads
//! the flag, so embedding bertfit installs nothing. The binary ends a stopped run with exit 130; a
//! second signal while the flag is set quits at once with 131 (src/main.rs), leaving every earlier
//! save complete and at most a staging leftover that the next save clears (`crate::output::recover`).
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks the running training loop to stop after its current step.
pub fn request_stop() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether a stop was requested (and not yet cleared).
pub fn stop_requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Forgets a request (a new run in the same process starts clean).
pub fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
}
