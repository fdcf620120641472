//! Fault injection for the signal tests, outside the training loop: with
//! `BERTFIT_TEST_STEP_PAUSE_MS=<ms>` the binary adds a [`StepPause`] reporter, which prints
//! `bertfit-test: step pause` and sleeps that long each time a step is reported, so a test can
//! signal a tiny run mid-epoch. Every rank gets one (the other reporters are rank 0's only).
//! On the CPU each step is reported as it ends (`train::pending`), before the step's stop check.
use std::time::Duration;

use super::report::{Reporter, StepRecord};

pub const STEP_PAUSE_MS: &str = "BERTFIT_TEST_STEP_PAUSE_MS";

pub struct StepPause {
    pause: Duration,
}

impl StepPause {
    /// The pause the environment asks for, if any.
    pub fn from_env() -> Option<StepPause> {
        let ms = std::env::var(STEP_PAUSE_MS).ok()?.parse::<u64>().ok()?;
        Some(StepPause { pause: Duration::from_millis(ms) })
    }
}

impl Reporter for StepPause {
    fn step(&mut self, _record: &StepRecord) {
        eprintln!("bertfit-test: step pause");
        std::thread::sleep(self.pause);
    }
}
