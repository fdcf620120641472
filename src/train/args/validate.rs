//! Every check on the training settings that needs no file, in one place: the CLI runs it after
//! converting the flags, and `Trainer::new` again, for settings built in code. (The checks that
//! need the model and its tokenizer, --max-length against max_position_embeddings and against the
//! special tokens the tokenizer adds, are the trainer's.)
use tch::Device;

use super::{Recipe, SaveStrategy, TrainArgs};
use crate::data::labels::ProblemType;
use crate::error::{Error, Result};
use crate::train::precision::Precision;

/// A setting `--reproduce-pytorch` refuses, and why: under it bertfit's random draws or arithmetic
/// could part from scripts/reference_train.py's.
type Refusal = (fn(&TrainArgs) -> bool, &'static str);

/// What `--reproduce-pytorch` refuses, checked in this order.
const REPRODUCE_REFUSALS: [Refusal; 8] = [
    (
        |a| a.device != Device::Cpu,
        "the identical run is guaranteed on CPU only (CUDA kernels draw dropout masks differently); pass --device cpu",
    ),
    (
        |a| a.group_by_length,
        "--group-by-length changes the batch order PyTorch's DataLoader makes; drop one of them",
    ),
    (
        |a| a.max_samples.iter().any(Option::is_some) || a.shuffle_train_dataset.is_some(),
        "scripts/reference_train.py reads every row in file order; drop --max-*-samples and --shuffle-train-dataset",
    ),
    (
        |a| !(a.do_train && a.do_eval && !a.do_predict),
        "the seed script trains and validates every epoch: drop --do-* flags or give --do-train --do-eval",
    ),
    (
        |a| a.recipe.precision != Precision::Fp32,
        "the identical run is guaranteed in fp32 only (low-precision kernels round differently); drop --precision",
    ),
    (
        |a| a.recipe.eval_steps.is_some() || a.recipe.best_model_metric().is_some(),
        "scripts/reference_train.py evaluates once per epoch and keeps the last model; drop --eval-steps, \
         --metric-for-best-model, --early-stopping-patience and --load-best-model-at-end",
    ),
    (
        |a| a.unpadded == Some(true),
        "--unpadded draws dropout masks over the packed tokens, not PyTorch's padded shapes; drop one of them",
    ),
    (|a| a.streaming, "--streaming shuffles through a buffer, not in PyTorch's DataLoader order; drop one of them"),
];

/// The message that refuses a value of `flag`.
fn refuse<T>(flag: &str, why: impl Into<String>) -> Result<T> {
    Err(Error::usage(flag, why.into()))
}

/// A number that must be finite and inside `range`, or an error naming its flag.
fn check_range(flag: &str, v: f64, ok: bool, what: &str) -> Result<()> {
    if v.is_finite() && ok {
        Ok(())
    } else {
        refuse(flag, format!("must be {what}, got {v}"))
    }
}

/// A count that must be at least 1.
fn at_least_one(flag: &str, n: Option<usize>) -> Result<()> {
    if n == Some(0) {
        return refuse(flag, "must be at least 1");
    }
    Ok(())
}

/// What needs the data in memory, refused with --streaming.
const IN_MEMORY: &str = "needs the data in memory; it cannot be combined with --streaming";

impl Recipe {
    /// Checks the values that need no file.
    pub fn validate(&self) -> Result<()> {
        check_range("--weight-decay", self.weight_decay, self.weight_decay >= 0.0, "at least 0")?;
        check_range("--adam-beta1", self.adam_beta1, (0.0..1.0).contains(&self.adam_beta1), "in [0, 1)")?;
        check_range("--adam-beta2", self.adam_beta2, (0.0..1.0).contains(&self.adam_beta2), "in [0, 1)")?;
        // torch's AdamW takes 0, and then writes NaN into every parameter whose gradient is 0
        // (unused vocabulary rows): 0 / (0 + 0).
        let eps = self.adam_epsilon;
        check_range("--adam-epsilon", eps, eps > 0.0, "positive (0 makes NaN where a gradient is 0)")?;
        let smoothing = self.label_smoothing;
        check_range("--label-smoothing", smoothing, (0.0..1.0).contains(&smoothing), "in [0, 1)")?;
        if let Some(m) = self.max_grad_norm {
            // inf is allowed, as torch's clip_grad_norm_ and HF allow it: the norm is computed
            // and logged, the clip factor is 1.
            if m.is_nan() || m <= 0.0 {
                return refuse("--max-grad-norm", format!("must be positive, got {m}"));
            }
        }
        if let Some(r) = self.warmup_ratio {
            check_range("--warmup-ratio", r, (0.0..=1.0).contains(&r), "in [0, 1]")?;
        }
        if self.warmup_ratio.is_some() && self.warmup_steps.is_some() {
            return refuse("--warmup-steps", "give --warmup-steps or --warmup-ratio, not both");
        }
        at_least_one("--gradient-accumulation-steps", Some(self.gradient_accumulation_steps))?;
        at_least_one("--eval-steps", self.eval_steps)?;
        at_least_one("--early-stopping-patience", self.early_stopping_patience)
    }
}

impl TrainArgs {
    /// Checks the settings that do not need any file.
    pub fn validate(&self) -> Result<()> {
        self.check_counts()?;
        if !(self.do_train || self.do_eval || self.do_predict) {
            return refuse("--do-train", "nothing to do: give --do-train, --do-eval or --do-predict");
        }
        self.check_in_memory()?;
        self.check_text()?;
        if let Some(n) = self.num_labels.filter(|n| *n < 2) {
            return refuse("--num-labels", format!("must be at least 2, got {n}"));
        }
        if self.reproduce_pytorch {
            if let Some((_, why)) = REPRODUCE_REFUSALS.iter().find(|(breaks, _)| breaks(self)) {
                return refuse("--reproduce-pytorch", *why);
            }
        }
        self.recipe.validate()?;
        self.check_recipe_fits()?;
        crate::dist::ddp::choose_backend(self.ddp_backend, self.device)?;
        Ok(())
    }

    /// Counts and sizes (the CLI's conversion already refused most of these, naming the value).
    fn check_counts(&self) -> Result<()> {
        at_least_one("--epochs", Some(self.epochs))?;
        at_least_one("--max-steps", self.max_steps)?;
        at_least_one("--batch-size", Some(self.batch_size))?;
        at_least_one("--eval-batch-size", Some(self.eval_batch_size))?;
        for (flag, n) in ["--max-train-samples", "--max-eval-samples", "--max-predict-samples"]
            .iter()
            .zip(self.max_samples)
        {
            at_least_one(flag, n)?;
        }
        at_least_one("--save-steps", Some(self.save_steps))?;
        at_least_one("--save-total-limit", self.save_total_limit)?;
        at_least_one("--prefetch", Some(self.prefetch))?;
        if self.threads.is_some_and(|t| t < 1) {
            return refuse("--threads", "must be at least 1");
        }
        // torch's Adam takes 0 (a run that changes nothing), as HF does.
        if !(self.learning_rate.is_finite() && self.learning_rate >= 0.0) {
            let lr = self.learning_rate;
            return refuse("--learning-rate", format!("must be 0 or more, got {lr}"));
        }
        Ok(())
    }

    /// What --streaming cannot do: anything that needs every row in memory at once.
    fn check_in_memory(&self) -> Result<()> {
        if !self.streaming {
            return Ok(());
        }
        let flags = ["--max-train-samples", "--max-eval-samples", "--max-predict-samples"];
        if let Some((flag, _)) = flags.iter().zip(self.max_samples).find(|(_, n)| n.is_some()) {
            return refuse(flag, IN_MEMORY);
        }
        if self.shuffle_train_dataset.is_some() {
            return refuse("--shuffle-train-dataset", IN_MEMORY);
        }
        if self.group_by_length {
            return refuse("--group-by-length", IN_MEMORY);
        }
        if self.token_cache.is_some() {
            return refuse("--token-cache", IN_MEMORY);
        }
        if self.shuffle_buffer == 0 {
            return refuse("--shuffle-buffer", "must be at least 1");
        }
        Ok(())
    }

    /// The text column and the room for it in --max-length tokens.
    fn check_text(&self) -> Result<()> {
        let text = &self.columns.text;
        if text.contains(',') {
            return refuse(
                "--text-column",
                format!(
                    "'{text}' names several columns; bertfit reads one text column (and --text-pair-column for pairs)"
                ),
            );
        }
        // The special tokens a text or pair needs room for are the tokenizer's to say (2 for
        // `[CLS] A [SEP]`, 4 for RoBERTa's pairs): checked once it is read (setup::check_max_length).
        if self.max_length < 1 {
            return refuse("--max-length", "must be at least 1");
        }
        Ok(())
    }

    /// The recipe against the rest: the device, the problem type, the evaluations.
    fn check_recipe_fits(&self) -> Result<()> {
        if self.recipe.tf32 && !matches!(self.device, Device::Cuda(_)) {
            return refuse("--tf32", "TF32 applies to CUDA matmuls; the device is not CUDA");
        }
        if self.recipe.label_smoothing > 0.0
            && self.label_format.problem != ProblemType::SingleLabelClassification
        {
            return refuse("--label-smoothing", "applies to single-label classification only");
        }
        if self.recipe.best_model_metric().is_some() && !self.do_eval {
            return refuse(
                "--metric-for-best-model",
                "choosing the best model (or stopping early) needs evaluations: add --do-eval",
            );
        }
        let c = &self.conventions;
        if self.recipe.best_model_metric().is_some() && !c.eval_each_epoch && self.recipe.eval_steps.is_none()
        {
            return refuse(
                "--metric-for-best-model",
                "choosing the best model (or stopping early) needs evaluations during training: \
                 evaluate every epoch or every --eval-steps",
            );
        }
        if self.save_strategy == SaveStrategy::Best && self.recipe.best_model_metric().is_none() {
            // HF's words (Trainer.__init__).
            return refuse(
                "--save-strategy",
                "`args.metric_for_best_model` must be provided when using 'best' save_strategy",
            );
        }
        if c.hf_trainer && self.recipe.load_best_model_at_end {
            self.check_best_model_strategies()?;
        }
        Ok(())
    }

    /// TrainingArguments.__post_init__'s rule, with its words: the best model is a saved
    /// checkpoint, so saves must fall on evaluations.
    fn check_best_model_strategies(&self) -> Result<()> {
        let eval = match (self.conventions.eval_each_epoch, self.recipe.eval_steps) {
            (true, None) => "epoch",
            (false, Some(_)) => "steps",
            (false, None) => "no",
            (true, Some(_)) => "epoch and steps",
        };
        let save = match self.save_strategy {
            SaveStrategy::Steps => "steps",
            SaveStrategy::Epoch => "epoch",
            SaveStrategy::No => "no",
            // Saves fall on evaluations by definition.
            SaveStrategy::Best => return Ok(()),
        };
        if eval != save {
            return refuse(
                "--load_best_model_at_end",
                format!(
                    "requires the save and eval strategy to match, except when --save_strategy=\"best\", \
                     but found\n- Evaluation strategy: IntervalStrategy.{}\n- Save strategy: SaveStrategy.{}",
                    eval.to_uppercase(),
                    save.to_uppercase()
                ),
            );
        }
        if let Some(eval_steps) = self.recipe.eval_steps.filter(|_| eval == "steps") {
            if !self.save_steps.is_multiple_of(eval_steps) {
                return refuse(
                    "--load_best_model_at_end",
                    format!(
                        "requires the saving steps to be a round multiple of the evaluation steps, but found {}, \
                         which is not a round multiple of {eval_steps}.",
                        self.save_steps
                    ),
                );
            }
        }
        Ok(())
    }
}
