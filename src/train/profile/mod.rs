//! `bertfit train --profile-ops DIR`: libtorch's profiler over a window of training steps, and
//! what it writes. The first [`WARMUP_STEPS`] steps this process runs are skipped (allocator
//! growth, first-call dispatch, oneDNN's kernel choice), then `--profile-steps` optimizer steps
//! are recorded, the loop's bookkeeping and data waits between them included. The window closes
//! early at an epoch's end, so the epoch's evaluation is never in it. Only the main process
//! profiles. `DIR` gets `trace.json` (chrome trace), `ops.txt` (the per-op table, [`summary`])
//! and `ops.json` (its rows); the table's first rows are also printed.
pub mod summary;

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use tch::Device;

use super::report::Reporter;
use crate::error::{Error, Result};
use crate::output::write_atomic;
use crate::torch_ext::profiler::ActiveProfiler;

/// Steps run before the profiler starts.
pub const WARMUP_STEPS: usize = 2;
/// Rows of the table printed at the end of the window (ops.txt has all).
const PRINTED_ROWS: usize = 15;

/// `--profile-ops` and `--profile-steps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileOps {
    pub dir: PathBuf,
    pub steps: usize,
}

struct Window {
    profiler: ActiveProfiler,
    started: Instant,
    steps: usize,
}

/// The profiling window's state across the run's steps.
pub struct StepProfiler {
    settings: ProfileOps,
    device: Device,
    steps_run: usize,
    window: Option<Window>,
    done: bool,
}

/// ops.json: the window and its rows.
#[derive(Serialize)]
struct OpsFile<'a> {
    steps: usize,
    wall_ms: f64,
    device: String,
    ops: &'a [summary::OpRow],
}

impl StepProfiler {
    pub fn new(settings: ProfileOps, device: Device) -> Self {
        StepProfiler { settings, device, steps_run: 0, window: None, done: false }
    }

    /// Before a training step: starts the window after the warm-up steps.
    pub fn before_step(&mut self) -> Result<()> {
        self.steps_run += 1;
        if !self.done && self.window.is_none() && self.steps_run > WARMUP_STEPS {
            self.window = Some(Window {
                profiler: ActiveProfiler::start(self.device)?,
                started: Instant::now(),
                steps: 0,
            });
        }
        Ok(())
    }

    /// After a training step (and its bookkeeping): closes the window after `--profile-steps`.
    pub fn after_step(&mut self, reporter: &mut dyn Reporter) -> Result<()> {
        if let Some(w) = self.window.as_mut() {
            w.steps += 1;
            if w.steps >= self.settings.steps {
                self.close(reporter, "")?;
            }
        }
        Ok(())
    }

    /// At an epoch's end, before its evaluation: closes a window still open.
    pub fn epoch_ended(&mut self, reporter: &mut dyn Reporter) -> Result<()> {
        let Some(w) = &self.window else { return Ok(()) };
        let why = format!(" (the epoch ended after {} of {} steps)", w.steps, self.settings.steps);
        self.close(reporter, &why)
    }

    /// At the run's end: says so when the run was too short to profile anything.
    pub fn run_ended(&mut self, reporter: &mut dyn Reporter) {
        if !self.done {
            reporter.note(&format!(
                "--profile-ops: nothing profiled, the run had {} step(s) and the first {WARMUP_STEPS} are \
                 not profiled",
                self.steps_run
            ));
        }
    }

    fn close(&mut self, reporter: &mut dyn Reporter, why: &str) -> Result<()> {
        let Some(w) = self.window.take() else { return Ok(()) };
        self.done = true;
        if let Device::Cuda(i) = self.device {
            // The kernels of the window's steps finish inside it.
            tch::Cuda::synchronize(i as i64);
        }
        let wall = w.started.elapsed();
        let profile = w.profiler.stop()?;
        let dir = &self.settings.dir;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        profile.save_chrome_trace(&dir.join("trace.json"))?;
        let rows = summary::summarize(&profile.events()?);
        let wall_ms = wall.as_secs_f64() * 1e3;
        let head = format!(
            "--profile-ops: {} training step(s){why}, {wall_ms:.1} ms wall, on {}; by self time:\n",
            w.steps,
            super::report::device_name(self.device)
        );
        write_atomic(&dir.join("ops.txt"), format!("{head}{}", summary::table(&rows, None)).as_bytes())?;
        let file =
            OpsFile { steps: w.steps, wall_ms, device: super::report::device_name(self.device), ops: &rows };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| Error::Runtime(e.to_string()))?;
        write_atomic(&dir.join("ops.json"), &json)?;
        reporter.note(&format!(
            "{head}{}(all ops in {}; trace.json opens in ui.perfetto.dev)",
            summary::table(&rows, Some(PRINTED_ROWS)),
            dir.join("ops.txt").display()
        ));
        Ok(())
    }
}
