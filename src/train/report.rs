//! Everything a run tells the world goes through one [`Reporter`] that the caller chooses: the seed
//! script's two lines per epoch, progress, warnings and the metrics log. The library itself prints
//! nothing, so an embedding program, a test or a non-zero rank can report nothing at all.
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::error::{Error, Result};

/// `cpu` or `cuda:N`, as the flags and training_args.json spell a device.
pub fn device_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cpu => "cpu".to_string(),
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}"),
    }
}

/// The device and why, for the first line a command reports (`auto` chose it, or a flag did).
pub fn describe_device(device: tch::Device, auto: bool) -> String {
    let name = device_name(device);
    match (auto, device) {
        (true, tch::Device::Cpu) => format!("device {name} (--device auto: libtorch sees no CUDA device)"),
        (true, _) => format!("device {name} (--device auto: CUDA is available)"),
        (false, _) => format!("device {name}"),
    }
}

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
    /// accumulation window), in order. In a multi-process run, rank 0's.
    pub rows: Vec<usize>,
    /// Multi-process runs: every rank's rows of the step, in rank order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank_rows: Option<Vec<Vec<usize>>>,
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
    /// Multi-process runs: seconds spent averaging gradients across ranks (waiting for the slowest
    /// rank included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allreduce_seconds: Option<f64>,
}

/// A checkpoint written (`kind: "checkpoint"`) or loaded to resume (`kind: "checkpoint_load"`):
/// how long it took and its size on disk.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointRecord {
    pub kind: &'static str,
    pub step: usize,
    /// Wall time of the write (staging, fsync, swap, rotation) or of the load (weights, optimizer,
    /// generator state).
    pub seconds: f64,
    /// Bytes of the checkpoint's files.
    pub bytes: u64,
    /// As text (a folder name that is not UTF-8 is written lossily, not left out).
    #[serde(serialize_with = "path_text")]
    pub path: PathBuf,
}

fn path_text<S: serde::Serializer>(p: &Path, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&p.display().to_string())
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

/// The terminal: the seed's lines on stdout, the rest on stderr. While an epoch runs, a progress
/// bar when stderr is a terminal; otherwise (a batch job's log, CI) a plain line every
/// `logging_steps` optimizer steps and at least every 30 s, since a bar draws nothing there.
pub struct Console {
    bar: Option<ProgressBar>,
    /// `Some` when stderr is not a terminal.
    lines: Option<PlainProgress>,
}

impl Default for Console {
    fn default() -> Self {
        Console::new(50)
    }
}

impl Console {
    pub fn new(logging_steps: usize) -> Self {
        let lines = (!std::io::stderr().is_terminal()).then(|| PlainProgress::new(logging_steps));
        Console { bar: None, lines }
    }

    /// The run's length, so progress lines count steps and time to the run's end rather than the
    /// epoch's (`max_steps` caps it; early stopping can end it sooner).
    pub fn with_run_length(mut self, epochs: usize, max_steps: Option<usize>) -> Self {
        if let Some(lines) = &mut self.lines {
            lines.run = Some((epochs, max_steps));
        }
        self
    }
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
        if let Some(lines) = &mut self.lines {
            return lines.epoch_started(steps);
        }
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
        if let Some(line) = self.lines.as_mut().and_then(|l| l.step(record)) {
            eprintln!("{line}");
        }
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

/// At least this often a progress line, however slow the steps.
const LINE_EVERY: Duration = Duration::from_secs(30);

/// Progress as plain lines: `step 120/1000 (epoch 1), loss 0.4123, lr 2.0e-05, 31.2 samples/s,
/// ETA 7m12s`. Speed and ETA are averages over the epoch so far.
struct PlainProgress {
    logging_steps: usize,
    /// (epochs, max_steps) when known; otherwise counts and ETA run to the epoch's end.
    run: Option<(usize, Option<usize>)>,
    epoch_steps: usize,
    /// Steps and examples of this epoch so far, and when it started.
    done: usize,
    samples: usize,
    started: Instant,
    last_line: Instant,
}

impl PlainProgress {
    fn new(logging_steps: usize) -> Self {
        let now = Instant::now();
        PlainProgress {
            logging_steps: logging_steps.max(1),
            run: None,
            epoch_steps: 0,
            done: 0,
            samples: 0,
            started: now,
            last_line: now,
        }
    }

    fn epoch_started(&mut self, steps: usize) {
        self.epoch_steps = steps;
        self.done = 0;
        self.samples = 0;
        self.started = Instant::now();
    }

    /// The line to print after this step, if one is due.
    fn step(&mut self, r: &StepRecord) -> Option<String> {
        self.done += 1;
        self.samples += r.rows.len();
        let now = Instant::now();
        if !r.step.is_multiple_of(self.logging_steps) && now.duration_since(self.last_line) < LINE_EVERY {
            return None;
        }
        self.last_line = now;
        // Steps of the earlier epochs: the global step less this epoch's.
        let total = match self.run {
            Some((epochs, max_steps)) => {
                let all = epochs.saturating_mul(self.epoch_steps);
                max_steps.map_or(all, |m| m.min(all))
            }
            None => r.step - self.done + self.epoch_steps,
        };
        let seconds = now.duration_since(self.started).as_secs_f64();
        let eta = total.saturating_sub(r.step) as f64 * seconds / self.done as f64;
        Some(progress_line(r, total, self.samples as f64 / seconds.max(1e-9), eta))
    }
}

/// `step 120/1000 (epoch 1), loss 0.4123, lr 2.0e-05, 31.2 samples/s, ETA 7m12s`.
fn progress_line(r: &StepRecord, total: usize, samples_per_second: f64, eta_seconds: f64) -> String {
    format!(
        "step {}/{total} (epoch {}), loss {:.4}, lr {}, {samples_per_second:.1} samples/s, ETA {}",
        r.step,
        r.epoch,
        r.loss,
        python_exp(r.lr),
        duration(eta_seconds)
    )
}

/// `2.0e-05`, as Python's `f"{lr:.1e}"` writes it (Rust writes `2.0e-5`).
fn python_exp(x: f64) -> String {
    let s = format!("{x:.1e}");
    match s.split_once('e').map(|(m, e)| (m, e.parse::<i32>())) {
        Some((m, Ok(e))) => format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs()),
        _ => s, // NaN, inf
    }
}

/// `45s`, `7m12s`, `2h05m`.
fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "?".to_string();
    }
    let s = seconds.round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// `metrics.jsonl`: one JSON line per step, evaluation and epoch, written as they happen to
/// `metrics.jsonl.partial` beside it (a crash keeps everything up to the last step there) and renamed
/// to `metrics.jsonl` when the run ends, so a run that fails leaves a previous run's log alone.
/// A resumed run continues the log: the interrupted runs' records up to the checkpoint are kept,
/// those after it (steps that are trained again) dropped, and a `resume` record marks the seam.
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
        let line = serde_json::to_string(record).unwrap_or_default();
        self.write_line(&line);
    }

    fn write_line(&mut self, line: &str) {
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

    fn startup(&mut self, record: &serde_json::Value) {
        self.write(record);
    }

    fn checkpoint(&mut self, record: &CheckpointRecord) {
        self.write(record);
    }

    fn resumed(&mut self, step: usize, epoch: usize, checkpoint: &Path) {
        if self.file.is_some() || self.error.is_some() {
            return; // (records of this run already written: nothing earlier to keep)
        }
        // A crash leaves the newest log in .partial; a stop signal or a finished run, renamed.
        let old = [&self.partial, &self.path].into_iter().find(|p| p.is_file());
        let text = match old.map(std::fs::read_to_string) {
            Some(Ok(text)) => text,
            Some(Err(e)) => return self.error = Some(e),
            None => String::new(),
        };
        for line in kept_before(&text, step, epoch) {
            self.write_line(line);
        }
        self.write(&serde_json::json!({
            "kind": "resume",
            "step": step,
            "epoch": epoch,
            "checkpoint": checkpoint.display().to_string(),
        }));
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

/// The lines of an earlier (interrupted) run's log that a run resumed from the checkpoint taken
/// at `step` in `epoch` keeps. The log is in time order, so that is every line up to the
/// checkpoint's own record (the last one at `step`: a step may have been trained twice). Where
/// that record is missing (a log cut short), records with a step up to `step`, summaries of
/// finished epochs and records with neither (start-up, earlier resume marks). Lines cut short by
/// a crash are dropped.
fn kept_before(text: &str, step: usize, epoch: usize) -> Vec<&str> {
    let records: Vec<(&str, serde_json::Value)> =
        text.lines().filter_map(|l| serde_json::from_str(l).ok().map(|v| (l, v))).collect();
    let n = |v: &serde_json::Value, key: &str| v.get(key).and_then(serde_json::Value::as_u64);
    let kind = |v: &serde_json::Value| v.get("kind").and_then(|k| k.as_str()).map(str::to_string);
    let seam = records
        .iter()
        .rposition(|(_, v)| kind(v).as_deref() == Some("checkpoint") && n(v, "step") == Some(step as u64));
    let keep = |v: &serde_json::Value| match (kind(v).as_deref(), n(v, "step"), n(v, "epoch")) {
        (Some("epoch"), _, Some(e)) => (e as usize) < epoch,
        (_, Some(s), _) => s as usize <= step,
        _ => true,
    };
    match seam {
        Some(i) => records[..=i].iter().map(|(l, _)| *l).collect(),
        None => records.iter().filter(|(_, v)| keep(v)).map(|(l, _)| *l).collect(),
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
    fn startup(&mut self, rec: &serde_json::Value) {
        self.0.iter_mut().for_each(|r| r.startup(rec));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: usize, rows: usize) -> StepRecord {
        StepRecord {
            kind: "step",
            epoch: 2,
            step,
            loss: 0.41234,
            lr: 2e-5,
            skipped: None,
            scale: None,
            rows: (0..rows).collect(),
            rank_rows: None,
        }
    }

    #[test]
    fn a_line_has_every_field_in_python_notation() {
        let line = progress_line(&record(120, 16), 1000, 31.24, 432.0);
        assert_eq!(line, "step 120/1000 (epoch 2), loss 0.4123, lr 2.0e-05, 31.2 samples/s, ETA 7m12s");
        assert_eq!(python_exp(0.0), "0.0e+00");
        assert_eq!(python_exp(1.5e3), "1.5e+03");
        assert_eq!(
            (duration(45.2), duration(7505.0), duration(f64::NAN)),
            ("45s".into(), "2h05m".into(), "?".into())
        );
    }

    #[test]
    fn lines_come_every_n_steps_and_count_to_the_run_end() {
        let mut p = PlainProgress::new(3);
        p.run = Some((4, Some(10)));
        p.epoch_started(5);
        // Global steps 6..=10 are epoch 2's five steps.
        let due: Vec<usize> = (6..=10).filter(|&s| p.step(&record(s, 8)).is_some()).collect();
        assert_eq!(due, [6, 9]);
        let mut p = PlainProgress::new(3);
        p.epoch_started(5);
        p.done = 2;
        let line = p.step(&record(9, 8)).unwrap();
        assert!(line.starts_with("step 9/11 (epoch 2)"), "{line}"); // no run length: the epoch's end
    }

    #[test]
    fn a_resumed_log_keeps_what_came_before_the_checkpoints_record() {
        let log = [
            r#"{"kind":"startup"}"#,
            r#"{"kind":"step","epoch":1,"step":1}"#,
            r#"{"kind":"step","epoch":1,"step":2}"#,
            r#"{"kind":"eval","epoch":1,"step":2}"#,
            r#"{"kind":"checkpoint","step":2}"#,
            r#"{"kind":"epoch","epoch":1}"#,
            r#"{"kind":"step","epoch":2,"step":3}"#,
            r#"{"kind":"step","epo"#,
        ]
        .join("\n");
        // The checkpoint at step 2 was taken at the end of epoch 1's last step, before its
        // evaluation was logged again: everything up to its record stays, nothing after.
        assert_eq!(kept_before(&log, 2, 1), log.lines().take(5).collect::<Vec<_>>());
        // No record of the checkpoint (a log cut short): by step and finished epochs.
        let cut: Vec<&str> = log.lines().filter(|l| !l.contains("checkpoint")).collect();
        let cut_log = cut.join("\n");
        let kept = kept_before(&cut_log, 2, 2);
        assert_eq!(kept, [cut[0], cut[1], cut[2], cut[3], cut[4]]);
        assert!(kept_before("", 5, 1).is_empty());
    }
}
