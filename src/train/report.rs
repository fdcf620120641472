//! Everything a run tells the world goes through one [`Reporter`] that the caller chooses: the seed
//! script's two lines per epoch, progress, warnings and the metrics log. The library itself prints
//! nothing, so an embedding program, a test or a non-zero rank can report nothing at all.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::error::{Error, Result};

/// One training step.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub kind: &'static str,
    pub epoch: usize,
    pub step: usize,
    pub loss: f64,
    /// The learning rate the step used.
    pub lr: f64,
    /// fp16: whether the loss scaler skipped the step (an inf or NaN gradient).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<bool>,
    /// fp16: the loss scale after the step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// Data rows (1-based, as in error messages) of the step's examples (every micro-batch of an
    /// accumulation window), in order.
    pub rows: Vec<usize>,
}

/// One epoch.
#[derive(Debug, Clone, Serialize)]
pub struct EpochRecord {
    pub kind: &'static str,
    pub epoch: usize,
    /// Mean of the step losses, as the seed script prints it.
    pub loss: f64,
    /// Validation accuracy in percent (the seed's figure); `None` when nothing was validated.
    pub val_accuracy: Option<f64>,
    /// Mean cross-entropy over the validation rows.
    pub val_loss: Option<f64>,
    pub train_seconds: f64,
    pub train_samples_per_second: f64,
    /// Time the training step spent waiting for the next batch (the data pipeline falling behind).
    pub data_wait_seconds: f64,
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
    /// The run is over: flush, and return any error a record met on its way out.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Reports nothing (tests, non-zero ranks).
pub struct Silent;

impl Reporter for Silent {}

/// The terminal: the seed's lines on stdout, the rest on stderr, a progress bar while an epoch
/// runs (indicatif draws nothing when stderr is not a terminal).
#[derive(Default)]
pub struct Console {
    bar: Option<ProgressBar>,
}

impl Reporter for Console {
    fn device(&mut self, description: &str) {
        eprintln!("bertfit: {description}");
    }

    fn note(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    fn epoch_started(&mut self, epoch: usize, steps: usize) {
        let bar = ProgressBar::new(steps as u64);
        if let Ok(style) =
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} steps, {msg} ({eta} left)")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(epoch.to_string());
        self.bar = Some(bar);
    }

    fn step(&mut self, record: &StepRecord) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("loss {:.4}", record.loss));
            bar.inc(1);
        }
    }

    fn epoch_loss(&mut self, epoch: usize, loss: f64) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        println!("Epoch {epoch}, Loss: {loss:.4}");
    }

    fn validation_accuracy(&mut self, _epoch: usize, percent: f64) {
        println!("Validation Accuracy: {percent:.2}%");
    }

    fn validation_mse(&mut self, _epoch: usize, mse: f64) {
        println!("Validation MSE: {mse:.4}");
    }
}

/// `metrics.jsonl`: one JSON line per step, evaluation and epoch, written as they happen to
/// `metrics.jsonl.partial` beside it (a crash keeps everything up to the last step there) and renamed
/// to `metrics.jsonl` when the run ends, so a run that fails leaves a previous run's log alone.
pub struct JsonLines {
    path: PathBuf,
    partial: PathBuf,
    file: Option<File>,
    /// The first write error; returned by `finish`, since reporting a step cannot fail it.
    error: Option<std::io::Error>,
}

impl JsonLines {
    pub fn new(path: &Path) -> Self {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        JsonLines { path: path.to_path_buf(), partial: PathBuf::from(partial), file: None, error: None }
    }

    fn write<T: Serialize>(&mut self, record: &T) {
        if self.error.is_some() {
            return;
        }
        if self.file.is_none() {
            let opened = OpenOptions::new().create(true).write(true).truncate(true).open(&self.partial);
            match opened {
                Ok(f) => self.file = Some(f),
                Err(e) => return self.error = Some(e),
            }
        }
        let line = serde_json::to_string(record).unwrap_or_default();
        if let Some(Err(e)) = self.file.as_mut().map(|f| writeln!(f, "{line}")) {
            self.error = Some(e);
        }
    }
}

impl Reporter for JsonLines {
    fn step(&mut self, record: &StepRecord) {
        self.write(record);
    }

    fn epoch_finished(&mut self, record: &EpochRecord) {
        self.write(record);
    }

    fn evaluated(&mut self, record: &serde_json::Value) {
        self.write(record);
    }

    fn finish(&mut self) -> Result<()> {
        let Some(mut file) = self.file.take() else { return Ok(()) };
        let done = file.flush().and_then(|_| file.sync_all());
        if let Some(e) = self.error.take().or(done.err()) {
            return Err(Error::io(&self.partial, e));
        }
        std::fs::rename(&self.partial, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

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
    fn finish(&mut self) -> Result<()> {
        self.0.iter_mut().try_for_each(|r| r.finish())
    }
}
