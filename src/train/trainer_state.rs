//! trainer_state.json with every field of transformers 5.24's `TrainerState` (and no other:
//! `TrainerState.load_from_json` is `cls(**json.loads(text))`), sorted and indented as its
//! `save_to_json` writes them. bertfit's own fields go to bertfit_state.json beside it.
use serde_json::{json, Value};

use super::args::Logging;
use super::Trainer;

/// TrainerState's default for a `*_steps` HF leaves unset.
const HF_DEFAULT_STEPS: usize = 500;

impl Trainer<'_> {
    /// A `*_steps` field as TrainingArguments holds it: these are float fields that its
    /// `__post_init__` turns into ints only when above 1, so a command line's `1` stays `1.0`.
    fn hf_steps(&self, n: usize) -> Value {
        if n == 1 && self.args.conventions.hf_trainer {
            json!(1.0)
        } else {
            json!(n)
        }
    }

    /// trainer_state.json's object at this point of the run. `saving`: written by a checkpoint
    /// save (HF's TrainerControl then has `should_save` set; the final state has it cleared).
    pub(super) fn hf_trainer_state(&self, best_model_checkpoint: Option<String>, saving: bool) -> Value {
        let args = &self.args;
        let logging_steps = match args.conventions.logging {
            Logging::Steps(n) => n,
            Logging::Epoch | Logging::No => HF_DEFAULT_STEPS,
        };
        let max_steps = self.control.last_step;
        let per_epoch = self.steps_per_epoch().max(1);
        // set_initial_training_values: from max_steps when it was given, else ceil(epochs).
        let num_train_epochs = match args.max_steps {
            Some(m) => m.div_ceil(per_epoch),
            None => args.epochs,
        };
        let training_stop = self.global_step >= max_steps;
        json!({
            "best_global_step": self.best.as_ref().map(|b| b.step),
            "best_metric": self.best.as_ref().map(|b| b.value),
            "best_model_checkpoint": best_model_checkpoint,
            "epoch": self.epoch_done,
            "eval_steps": self.hf_steps(args.recipe.eval_steps.unwrap_or(HF_DEFAULT_STEPS)),
            "global_step": self.global_step,
            "is_hyper_param_search": false,
            "is_local_process_zero": true,
            "is_world_process_zero": true,
            "log_history": self.log.entries,
            "logging_steps": self.hf_steps(logging_steps),
            "max_steps": max_steps,
            "num_input_tokens_seen": 0,
            "num_train_epochs": num_train_epochs,
            "save_steps": self.hf_steps(args.save_steps),
            "stateful_callbacks": {
                "TrainerControl": {
                    "args": {
                        "should_training_stop": training_stop,
                        "should_epoch_stop": false,
                        "should_save": saving,
                        "should_evaluate": false,
                        "should_log": false,
                    },
                    "attributes": {},
                }
            },
            "total_flos": self.total_flos,
            "train_batch_size": args.batch_size,
            "trial_name": null,
            "trial_params": null,
        })
    }

    /// Optimizer steps of one epoch.
    pub(super) fn steps_per_epoch(&self) -> usize {
        self.batches_per_epoch().div_ceil(self.args.recipe.gradient_accumulation_steps.max(1))
    }
}

/// HF's `json.dumps(..., indent=2, sort_keys=True) + "\n"` (serde_json's maps are sorted).
pub fn to_hf_json(v: &Value) -> String {
    let mut text = serde_json::to_string_pretty(v).unwrap_or_default();
    text.push('\n');
    text
}

impl Trainer<'_> {
    /// HF's `_finalize_training` metrics, also logged as the run's last log_history entry:
    /// `speed_metrics("train", start, num_samples=num_train_samples * steps / max_steps,
    /// num_steps=steps)`, `total_flos`, `train_loss`.
    pub(super) fn finalize_metrics(&mut self) -> serde_json::Map<String, Value> {
        let steps = self.global_step.saturating_sub(self.log.initial_step);
        let max_steps = self.control.last_step.max(1);
        let world = self.world_size();
        let examples = (self.data.len(crate::data::dataset::Split::Train) * world) as f64;
        // set_initial_training_values: max_steps x total batch when max_steps was given, else
        // the examples x num_train_epochs (HF's float: 1.5 epochs count 1.5 passes).
        let num_train_samples = match self.args.max_steps {
            Some(m) => {
                (m * self.args.batch_size * world * self.args.recipe.gradient_accumulation_steps) as f64
            }
            None => examples * self.args.conventions.epoch_fraction.unwrap_or(self.args.epochs as f64),
        };
        let runtime = self.started.elapsed().as_secs_f64();
        let samples = num_train_samples * steps as f64 / max_steps as f64;
        let mut metrics = super::log_history::speed_metrics("train", runtime, Some(samples), Some(steps));
        metrics.insert("total_flos".into(), json!(self.total_flos));
        metrics.insert("train_loss".into(), json!(self.log.train_loss(self.global_step)));
        self.log.push(metrics.clone(), self.global_step, self.epoch_done);
        metrics
    }
}
