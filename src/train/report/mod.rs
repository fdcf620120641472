//! Everything a run tells the world goes through one [`Reporter`] that the caller chooses: the seed
//! script's two lines per epoch, progress, warnings and the metrics log, so an embedding program, a
//! test or a non-zero rank can report nothing at all.
//!
//! Not yet through it (each prints one kind of line to stderr itself): `data::token_cache` (an
//! entry reused, rebuilt or written), `model::varlen` (a varlen kernel refused, once per kernel) and
//! `dist::group` (a rank's Gloo address and its waiting notices); `output::hooks` prints only
//! under the test hooks, and `main` prints the error chain and the commands' own output.
//!
//! Rooms: `records` (the records a run reports), `console` (the terminal), `json_lines`
//! (`metrics.jsonl`); here the trait, `Silent` and `Tee`.
mod console;
mod json_lines;
mod records;

use std::path::Path;

use crate::error::Result;

pub use console::Console;
pub use json_lines::JsonLines;
pub use records::{CheckpointRecord, EpochRecord, StepRecord};

pub use crate::machine::peak::device_name;

/// The device and why, for the first line a command reports (`auto` chose it, or a flag did).
pub fn describe_device(device: tch::Device, auto: bool) -> String {
    let name = device_name(device);
    match (auto, device) {
        (true, tch::Device::Cpu) => format!("device {name} (--device auto: libtorch sees no CUDA device)"),
        (true, _) => format!("device {name} (--device auto: CUDA is available)"),
        (false, _) => format!("device {name}"),
    }
}

/// What a run reports. Every method has a do-nothing default.
pub trait Reporter {
    /// The first thing a run says: where it computes, and why there.
    fn device(&mut self, _description: &str) {}
    /// Something the user should know that does not stop the run.
    fn note(&mut self, _text: &str) {}
    fn epoch_started(&mut self, _epoch: usize, _steps: usize) {}
    fn step(&mut self, _record: &StepRecord) {}
    /// The seed's `Epoch N, Loss: x`.
    fn epoch_loss(&mut self, _epoch: usize, _loss: f64) {}
    /// The seed's `Validation Accuracy: y%`.
    fn validation_accuracy(&mut self, _epoch: usize, _percent: f64) {}
    /// Regression's line: `Validation MSE: z`.
    fn validation_mse(&mut self, _epoch: usize, _mse: f64) {}
    fn epoch_finished(&mut self, _record: &EpochRecord) {}
    /// An evaluation's metrics (`kind: "eval"`, epoch, step, `eval_*` keys).
    fn evaluated(&mut self, _record: &serde_json::Value) {}
    /// The run's start-up phases (`train::startup`), once, after the first step.
    fn startup(&mut self, _record: &serde_json::Value) {}
    /// The peak that MFU is measured against (`kind: "peak"`), once before the first step.
    fn peak(&mut self, _record: &crate::train::mfu::PeakRecord) {}
    /// A checkpoint was written or loaded.
    fn checkpoint(&mut self, _record: &CheckpointRecord) {}
    /// The run continues from a checkpoint taken at `step` in `epoch` (1-based; the next epoch
    /// when taken at an epoch's end). Called before any record of the resumed run, so a log can
    /// keep what the interrupted runs logged up to there.
    fn resumed(&mut self, _step: usize, _epoch: usize, _checkpoint: &Path) {}
    /// The run is over: flush, and return any error a record met on its way out.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Reports nothing (tests, non-zero ranks).
pub struct Silent;

impl Reporter for Silent {}

/// Several reporters, each told everything, in order.
pub struct Tee(pub Vec<Box<dyn Reporter>>);

impl Reporter for Tee {
    fn device(&mut self, d: &str) {
        self.0.iter_mut().for_each(|r| r.device(d));
    }
    fn note(&mut self, t: &str) {
        self.0.iter_mut().for_each(|r| r.note(t));
    }
    fn epoch_started(&mut self, e: usize, s: usize) {
        self.0.iter_mut().for_each(|r| r.epoch_started(e, s));
    }
    fn step(&mut self, rec: &StepRecord) {
        self.0.iter_mut().for_each(|r| r.step(rec));
    }
    fn epoch_loss(&mut self, e: usize, l: f64) {
        self.0.iter_mut().for_each(|r| r.epoch_loss(e, l));
    }
    fn validation_accuracy(&mut self, e: usize, p: f64) {
        self.0.iter_mut().for_each(|r| r.validation_accuracy(e, p));
    }
    fn validation_mse(&mut self, e: usize, m: f64) {
        self.0.iter_mut().for_each(|r| r.validation_mse(e, m));
    }
    fn epoch_finished(&mut self, rec: &EpochRecord) {
        self.0.iter_mut().for_each(|r| r.epoch_finished(rec));
    }
    fn evaluated(&mut self, rec: &serde_json::Value) {
        self.0.iter_mut().for_each(|r| r.evaluated(rec));
    }
    fn startup(&mut self, rec: &serde_json::Value) {
        self.0.iter_mut().for_each(|r| r.startup(rec));
    }
    fn peak(&mut self, rec: &crate::train::mfu::PeakRecord) {
        self.0.iter_mut().for_each(|r| r.peak(rec));
    }
    fn checkpoint(&mut self, rec: &CheckpointRecord) {
        self.0.iter_mut().for_each(|r| r.checkpoint(rec));
    }
    fn resumed(&mut self, step: usize, epoch: usize, checkpoint: &Path) {
        self.0.iter_mut().for_each(|r| r.resumed(step, epoch, checkpoint));
    }
    fn finish(&mut self) -> Result<()> {
        self.0.iter_mut().try_for_each(|r| r.finish())
    }
}
