//! trainer_state.json's `log_history` as HF Trainer 5.24 fills it (`_maybe_log_save_evaluate`
//! and `log`): a training entry when logging is due, holding `loss` (the steps' losses since the
//! last entry, summed, over their count), `grad_norm` (the last step's norm before clipping),
//! `learning_rate` (the lr that step used: HF reads `_get_learning_rate()` after
//! `optimizer.step()` and before `lr_scheduler.step()`), `epoch` (HF's fractional
//! `epoch + (step + 1) / steps_in_epoch`) and `step`; an entry per evaluation; the run's
//! summary (train_runtime, ..., train_loss) at its end.
//!
//! Logging is due after step `s` when `s % logging_steps == 0` (`Logging::Steps`), at
//! `s == 1` with `logging_first_step`, and at an epoch's end (`Logging::Epoch`), never twice at
//! one step. HF sums the losses in a float32 tensor; bertfit in f64 (with one step per entry,
//! the default, the value is the step's loss either way).
use serde_json::{json, Map, Value};

use super::args::Logging;
use super::report::StepRecord;

#[derive(Debug, Clone)]
pub struct LogHistory {
    pub entries: Vec<Value>,
    logging: Logging,
    first_step: bool,
    /// HF's `_tr_loss`: the step losses since the last training entry.
    tr_loss: f64,
    /// HF's `_total_loss_scalar`: every logged `tr_loss`.
    total_loss: f64,
    /// HF's `_globalstep_last_logged`.
    last_logged: usize,
    /// The step this run (this `train()` call) started at: HF's `_initial_global_step`.
    pub initial_step: usize,
    /// The last step's figures, for an entry at the epoch's end.
    grad_norm: f64,
    learning_rate: f64,
}

impl LogHistory {
    pub fn new(logging: Logging, first_step: bool) -> LogHistory {
        LogHistory {
            entries: Vec::new(),
            logging,
            first_step,
            tr_loss: 0.0,
            total_loss: 0.0,
            last_logged: 0,
            initial_step: 0,
            grad_norm: f64::NAN,
            learning_rate: f64::NAN,
        }
    }

    /// Continues a run from a checkpoint at `step` whose history was `entries`.
    pub fn resume(&mut self, entries: Vec<Value>, step: usize) {
        self.entries = entries;
        self.last_logged = step;
        self.initial_step = step;
    }

    /// After optimizer step `record.step` (its loss read), at fractional epoch `epoch`.
    pub fn step(&mut self, record: &StepRecord, epoch: f64) {
        self.tr_loss += record.loss;
        self.grad_norm = record.grad_norm;
        self.learning_rate = record.lr;
        let due = match self.logging {
            Logging::Steps(n) => record.step.is_multiple_of(n.max(1)),
            Logging::Epoch | Logging::No => false,
        } || (self.first_step && record.step == 1);
        if due {
            self.log_training(record.step, epoch);
        }
    }

    /// At the end of an epoch, after its last step `step`.
    pub fn epoch_end(&mut self, step: usize, epoch: f64) {
        if self.logging == Logging::Epoch {
            self.log_training(step, epoch);
        }
    }

    fn log_training(&mut self, step: usize, epoch: f64) {
        if step <= self.last_logged {
            return;
        }
        let loss = self.tr_loss / (step - self.last_logged) as f64;
        self.total_loss += self.tr_loss;
        self.tr_loss = 0.0;
        self.last_logged = step;
        self.entries.push(json!({
            "loss": loss,
            "grad_norm": self.grad_norm,
            "learning_rate": self.learning_rate,
            "epoch": epoch,
            "step": step,
        }));
    }

    /// Any other entry (an evaluation's metrics, the run's summary): `epoch` and `step` added.
    pub fn push(&mut self, mut metrics: Map<String, Value>, step: usize, epoch: f64) {
        metrics.insert("epoch".into(), json!(epoch));
        metrics.insert("step".into(), json!(step));
        self.entries.push(Value::Object(metrics));
    }

    /// HF's `train_loss`: every step loss of this run (logged or not) over its steps
    /// (`_total_loss_scalar / max(num_steps_trained, 0.001)`), at step `step`.
    pub fn train_loss(&self, step: usize) -> f64 {
        let steps = step.saturating_sub(self.initial_step) as f64;
        (self.total_loss + self.tr_loss) / steps.max(0.001)
    }
}

/// Python's `round(x, digits)`: the decimal nearest the exact binary value (ties to even), read
/// back as the nearest double; Rust's `{:.N}` rounds the same exact value the same way.
pub fn round_py(x: f64, digits: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.digits$}").parse().unwrap_or(x)
}

/// HF's `speed_metrics(split, start_time, num_samples, num_steps)`: `<split>_runtime` rounded to
/// 4 digits, `<split>_samples_per_second` and `<split>_steps_per_second` to 3 (both left out when
/// the runtime is 0).
pub fn speed_metrics(
    split: &str,
    runtime: f64,
    samples: Option<f64>,
    steps: Option<usize>,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(format!("{split}_runtime"), json!(round_py(runtime, 4)));
    if runtime == 0.0 {
        return out;
    }
    if let Some(n) = samples {
        out.insert(format!("{split}_samples_per_second"), json!(round_py(n / runtime, 3)));
    }
    if let Some(n) = steps {
        out.insert(format!("{split}_steps_per_second"), json!(round_py(n as f64 / runtime, 3)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: usize, loss: f64) -> StepRecord {
        StepRecord {
            kind: "step",
            epoch: 1,
            step,
            loss,
            lr: step as f64 * 1e-5,
            skipped: None,
            scale: None,
            rows: vec![],
            rank_rows: None,
            flops: None,
            grad_norm: step as f64 / 10.0,
        }
    }

    fn steps(h: &LogHistory) -> Vec<u64> {
        h.entries.iter().filter_map(|e| e.get("step").and_then(Value::as_u64)).collect()
    }

    #[test]
    fn every_n_steps_the_mean_loss_since_the_last_entry() {
        let mut h = LogHistory::new(Logging::Steps(2), true);
        for s in 1..=5 {
            h.step(&record(s, s as f64), s as f64 / 5.0);
        }
        h.epoch_end(5, 1.0);
        assert_eq!(steps(&h), [1, 2, 4]);
        let e = &h.entries[2];
        assert_eq!(e["loss"], json!((3.0 + 4.0) / 2.0));
        assert_eq!(e["grad_norm"], json!(0.4));
        assert_eq!(e["learning_rate"], json!(4e-5));
        assert_eq!(e["epoch"], json!(0.8));
        // Step 5 is not logged, yet counts in train_loss.
        assert_eq!(h.train_loss(5), 15.0 / 5.0);
    }

    #[test]
    fn rounds_as_python() {
        // Python: round(2.675, 2) == 2.67 (the double is below 2.675); round(0.12345, 4) ==
        // 0.1235 (the double is above 0.12345).
        assert_eq!(round_py(2.675, 2), 2.67);
        assert_eq!(round_py(0.12345, 4), 0.1235);
        let m = speed_metrics("eval", 2.0, Some(3.0), Some(1));
        assert_eq!(m["eval_samples_per_second"], json!(1.5));
        assert_eq!(m["eval_steps_per_second"], json!(0.5));
        assert_eq!(speed_metrics("eval", 0.0, Some(3.0), None).len(), 1);
    }

    #[test]
    fn by_epoch_and_never() {
        let mut h = LogHistory::new(Logging::Epoch, false);
        for s in 1..=3 {
            h.step(&record(s, 1.0), s as f64 / 3.0);
        }
        h.epoch_end(3, 1.0);
        h.epoch_end(3, 1.0);
        assert_eq!(steps(&h), [3]);
        let mut none = LogHistory::new(Logging::No, false);
        none.step(&record(1, 1.0), 1.0);
        none.epoch_end(1, 1.0);
        assert!(none.entries.is_empty());
        assert_eq!(none.train_loss(1), 1.0);
    }
}
