//! The best model so far by `--metric-for-best-model`, and early stopping's count of evaluations
//! without improvement (HF's `load_best_model_at_end` and `EarlyStoppingCallback`).
use serde_json::json;

use super::args::SaveStrategy;
use super::evaluation::Evaluation;
use super::log_history::speed_metrics;
use super::Trainer;
use crate::error::{Error, Result};

/// The best model so far: the metric's value, the step it was reached at, the trainable weights.
pub struct Best {
    pub metric: String,
    pub value: f64,
    pub step: usize,
    pub weights: Vec<tch::Tensor>,
}

/// What an evaluation meant for the best model.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Tracked {
    /// Early stopping's patience ran out.
    pub early_stop: bool,
    /// A checkpoint is due: the evaluation gave a new best under `--save-strategy best` (HF's
    /// `should_save = is_new_best_metric`).
    pub save: bool,
}

impl Trainer<'_> {
    /// Keeps the best model by the recipe's metric and counts evaluations without improvement.
    pub(super) fn track_best(&mut self, eval: &Evaluation, epoch: usize) -> Result<Tracked> {
        let metrics = self.log_evaluation(eval, epoch)?;
        let Some((key, greater)) = self.args.recipe.best_model_metric() else {
            return Ok(Tracked::default());
        };
        let value =
            if key == "eval_accuracy" { eval.accuracy() } else { metrics.get(&key).and_then(|v| v.as_f64()) };
        let Some(value) = value else {
            return Err(Error::usage(
                "--metric-for-best-model",
                format!("the evaluation has no '{key}' (it has {:?})", metrics.keys().collect::<Vec<_>>()),
            ));
        };
        let improved = match &self.best {
            None => true,
            Some(b) => {
                if greater {
                    value > b.value
                } else {
                    value < b.value
                }
            }
        };
        if improved {
            let weights = tch::no_grad(|| self.trainable().iter().map(|t| t.detach().copy()).collect());
            self.best = Some(Best { metric: key.clone(), value, step: self.global_step, weights });
            self.evals_without_improvement = 0;
        } else {
            self.evals_without_improvement += 1;
        }
        let patience = self.args.recipe.early_stopping_patience;
        let stop = patience.is_some_and(|p| self.evals_without_improvement >= p);
        if stop {
            self.reporter.note(&format!(
                "early stopping at step {}: no improvement of {key} in {} evaluations",
                self.global_step, self.evals_without_improvement
            ));
        }
        let save = improved && self.args.save_strategy == SaveStrategy::Best;
        Ok(Tracked { early_stop: stop, save })
    }

    /// An evaluation's entry in log_history and its `evaluated` record: bertfit's metric keys,
    /// HF's metric, HF's speed metrics (`speed_metrics("eval", start, num_samples, num_steps)`,
    /// with steps = batches of `per_device_eval_batch_size` over all ranks). Returns the metrics.
    pub(super) fn log_evaluation(
        &mut self,
        eval: &Evaluation,
        epoch: usize,
    ) -> Result<serde_json::Map<String, serde_json::Value>> {
        // bertfit's keys in their order (eval_accuracy first), then HF's metric and speed.
        // (HF's log has only its own keys: the loss and its one metric.)
        let mut metrics = serde_json::Map::new();
        if self.args.conventions.hf_trainer {
            metrics.insert("eval_loss".into(), json!(eval.loss));
        } else {
            if let Some(acc) = eval.accuracy() {
                metrics.insert("eval_accuracy".into(), json!(acc));
            }
            metrics.extend(eval.metrics("eval", &self.data.labels().names)?);
        }
        metrics.extend(eval.hf_metric("eval", self.args.conventions.metric)?);
        let batch = self.args.eval_batch_size * self.world_size();
        let rows = eval.rows.len();
        metrics.extend(speed_metrics("eval", eval.seconds, Some(rows as f64), Some(rows.div_ceil(batch))));
        let mut record = serde_json::Map::new();
        record.insert("kind".into(), json!("eval"));
        record.insert("epoch".into(), json!(epoch));
        record.insert("step".into(), json!(self.global_step));
        record.extend(metrics.clone());
        let record = serde_json::Value::Object(record);
        if self.args.conventions.hf_trainer {
            self.log.push(metrics.clone(), self.global_step, self.epoch_done);
        } else {
            self.log.entries.push(record.clone());
        }
        self.reporter.evaluated(&record);
        Ok(metrics)
    }

    /// Puts the best model's weights back (`--load-best-model-at-end`), saying so.
    pub(super) fn restore_best(&mut self) {
        let Some(best) = self.best.as_ref() else { return };
        self.reporter
            .note(&format!("keeping the best model: {} = {} at step {}", best.metric, best.value, best.step));
        tch::no_grad(|| {
            for (var, saved) in self.trainable().iter().zip(&best.weights) {
                var.shallow_clone().copy_(saved);
            }
        });
    }
}
