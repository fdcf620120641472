//! The best model so far by `--metric-for-best-model`, and early stopping's count of evaluations
//! without improvement (HF's `load_best_model_at_end` and `EarlyStoppingCallback`).
use serde_json::json;

use super::evaluation::Evaluation;
use super::Trainer;
use crate::error::{Error, Result};

/// The best model so far: the metric's value, the step it was reached at, the trainable weights.
pub struct Best {
    pub metric: String,
    pub value: f64,
    pub step: usize,
    pub weights: Vec<tch::Tensor>,
}

impl Trainer<'_> {
    /// Keeps the best model by the recipe's metric and counts evaluations without improvement;
    /// returns whether early stopping's patience ran out.
    pub(super) fn track_best(&mut self, eval: &Evaluation, epoch: usize) -> Result<bool> {
        let metrics = eval.metrics("eval", &self.data.labels().names)?;
        let mut record = serde_json::Map::new();
        record.insert("kind".into(), json!("eval"));
        record.insert("epoch".into(), json!(epoch));
        record.insert("step".into(), json!(self.global_step));
        if let Some(acc) = eval.accuracy() {
            record.insert("eval_accuracy".into(), json!(acc));
        }
        record.extend(metrics.clone());
        let record = serde_json::Value::Object(record);
        self.log_history.push(record.clone());
        self.reporter.evaluated(&record);
        let Some((key, greater)) = self.args.recipe.best_model_metric() else { return Ok(false) };
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
        Ok(stop)
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
