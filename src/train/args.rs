//! Validated training settings (the CLI converts its flags into this once), written into the
//! output folder as `training_args.json` next to the model.
use std::path::PathBuf;

use serde::Serialize;
use tch::Device;

use super::optim::AdamKind;
use super::precision::Precision;
use super::schedule::SchedulerType;
use crate::data::batch::Padding;
use crate::data::dataset::{Columns, DataSource};
use crate::data::labels::LabelFormat;
use crate::error::{Error, Result};
use crate::torch_ext::c10d::BackendKind;

/// HF's save_strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SaveStrategy {
    /// Every --save-steps optimizer steps.
    Steps,
    /// At the end of every epoch (after its evaluation).
    Epoch,
    /// No checkpoints (a stop signal still writes one).
    No,
}

/// How the model is updated: optimizer, schedule, accumulation, clipping, precision, evaluation
/// during the run and early stopping. The defaults are the seed script's (Adam, constant learning
/// rate, no clipping, fp32).
#[derive(Debug, Clone, Serialize)]
pub struct Recipe {
    #[serde(serialize_with = "adam_kind")]
    pub optim: AdamKind,
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    /// One fused kernel for all parameters (`_fused_adam(w)_`); equal results to the unfused path.
    pub fused: bool,
    #[serde(serialize_with = "scheduler_name")]
    pub lr_scheduler_type: SchedulerType,
    pub warmup_steps: Option<usize>,
    pub warmup_ratio: Option<f64>,
    pub gradient_accumulation_steps: usize,
    /// Clip the global gradient norm to this (none: no clipping, as the seed script).
    pub max_grad_norm: Option<f64>,
    pub label_smoothing: f64,
    #[serde(serialize_with = "precision_name")]
    pub precision: Precision,
    /// TF32 matmuls on CUDA.
    pub tf32: bool,
    /// Also evaluate every N optimizer steps (besides after each epoch).
    pub eval_steps: Option<usize>,
    /// The metric that picks the best model (`accuracy`, `f1_macro`, `loss`, ...; `eval_` optional).
    pub metric_for_best_model: Option<String>,
    pub greater_is_better: Option<bool>,
    /// Stop after this many evaluations without improvement of the metric.
    pub early_stopping_patience: Option<usize>,
    /// Save the best model seen at an evaluation instead of the last one.
    pub load_best_model_at_end: bool,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            optim: AdamKind::Adam,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            fused: true,
            lr_scheduler_type: SchedulerType::Constant,
            warmup_steps: None,
            warmup_ratio: None,
            gradient_accumulation_steps: 1,
            max_grad_norm: None,
            label_smoothing: 0.0,
            precision: Precision::Fp32,
            tf32: false,
            eval_steps: None,
            metric_for_best_model: None,
            greater_is_better: None,
            early_stopping_patience: None,
            load_best_model_at_end: false,
        }
    }
}

fn adam_kind<S: serde::Serializer>(k: &AdamKind, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(match k {
        AdamKind::Adam => "adam",
        AdamKind::AdamW => "adamw",
    })
}

fn scheduler_name<S: serde::Serializer>(k: &SchedulerType, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(k.hf_name())
}

fn precision_name<S: serde::Serializer>(p: &Precision, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

/// A number that must be finite and inside `range`, or an error naming its flag.
fn check_range(flag: &str, v: f64, ok: bool, what: &str) -> Result<()> {
    if v.is_finite() && ok {
        Ok(())
    } else {
        Err(Error::usage(flag, format!("must be {what}, got {v}")))
    }
}

impl Recipe {
    /// Checks the values that need no file.
    pub fn validate(&self) -> Result<()> {
        check_range("--weight-decay", self.weight_decay, self.weight_decay >= 0.0, "at least 0")?;
        check_range("--adam-beta1", self.adam_beta1, (0.0..1.0).contains(&self.adam_beta1), "in [0, 1)")?;
        check_range("--adam-beta2", self.adam_beta2, (0.0..1.0).contains(&self.adam_beta2), "in [0, 1)")?;
        check_range("--adam-epsilon", self.adam_epsilon, self.adam_epsilon > 0.0, "positive")?;
        check_range(
            "--label-smoothing",
            self.label_smoothing,
            (0.0..1.0).contains(&self.label_smoothing),
            "in [0, 1)",
        )?;
        if let Some(m) = self.max_grad_norm {
            check_range("--max-grad-norm", m, m > 0.0, "positive")?;
        }
        if let Some(r) = self.warmup_ratio {
            check_range("--warmup-ratio", r, (0.0..=1.0).contains(&r), "in [0, 1]")?;
        }
        if self.warmup_ratio.is_some() && self.warmup_steps.is_some() {
            return Err(Error::usage("--warmup-steps", "give --warmup-steps or --warmup-ratio, not both"));
        }
        if self.gradient_accumulation_steps == 0 {
            return Err(Error::usage("--gradient-accumulation-steps", "must be at least 1"));
        }
        if self.eval_steps == Some(0) {
            return Err(Error::usage("--eval-steps", "must be at least 1"));
        }
        if self.early_stopping_patience == Some(0) {
            return Err(Error::usage("--early-stopping-patience", "must be at least 1"));
        }
        Ok(())
    }

    /// The metric that picks the best model, as the key `eval_<name>` of an evaluation's metrics,
    /// and whether larger is better (HF: unless the name ends in `loss`).
    pub fn best_model_metric(&self) -> Option<(String, bool)> {
        let tracking = self.metric_for_best_model.is_some()
            || self.early_stopping_patience.is_some()
            || self.load_best_model_at_end;
        if !tracking {
            return None;
        }
        let name = self.metric_for_best_model.clone().unwrap_or_else(|| "loss".into());
        let key = if name.starts_with("eval_") { name } else { format!("eval_{name}") };
        let greater = self.greater_is_better.unwrap_or(!key.ends_with("loss"));
        Some((key, greater))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainArgs {
    /// HF model folder or a model name in the offline HF cache.
    pub model: String,
    pub data: DataSource,
    pub columns: Columns,
    /// HF's problem_type and how label cells are read.
    #[serde(serialize_with = "label_format")]
    pub label_format: LabelFormat,
    pub output_dir: PathBuf,
    pub epochs: usize,
    /// Stop after this many optimizer steps (HF Trainer's `max_steps`): the epoch in progress ends
    /// there, is reported and validated.
    pub max_steps: Option<usize>,
    pub batch_size: usize,
    /// Batch size of evaluation and prediction passes (HF's `per_device_eval_batch_size`).
    pub eval_batch_size: usize,
    pub learning_rate: f64,
    pub max_length: usize,
    pub num_labels: Option<i64>,
    pub seed: u64,
    #[serde(serialize_with = "padding_name")]
    pub padding: Padding,
    /// Reshuffle the training rows every epoch (the seed script's `shuffle=True`).
    pub shuffle: bool,
    /// libtorch intra-op threads; `None` keeps libtorch's default (one per core).
    pub threads: Option<i32>,
    #[serde(serialize_with = "device_name")]
    pub device: Device,
    /// The device was picked by `--device auto`.
    pub device_auto: bool,
    /// HF's `do_train`, `do_eval`, `do_predict`: train; evaluate on the validation rows after each
    /// epoch (and write eval_results.json); predict the test rows at the end (predict_results.txt).
    pub do_train: bool,
    pub do_eval: bool,
    pub do_predict: bool,
    /// HF's `max_train_samples`, `max_eval_samples`, `max_predict_samples`.
    pub max_samples: [Option<usize>; 3],
    /// HF's `shuffle_train_dataset` (with `shuffle_seed`): one shuffle of the training rows up front.
    pub shuffle_train_dataset: Option<u64>,
    /// Batch examples of similar length together (HF's `group_by_length`): less padding.
    pub group_by_length: bool,
    /// Batches prepared ahead of the training step on the loader thread.
    pub prefetch: usize,
    /// Stream the data from its files every epoch instead of holding it in memory.
    pub streaming: bool,
    /// Examples in the streaming shuffle buffer.
    pub shuffle_buffer: usize,
    /// Folder of the on-disk tokenized cache, if any.
    pub token_cache: Option<PathBuf>,
    /// Replace an output folder that already holds a model.
    pub overwrite: bool,
    /// The training recipe (HF TrainingArguments' names and meanings).
    pub recipe: Recipe,
    /// Run every per-token layer on the real tokens only (packed), padding only for the attention
    /// core: the same per-example results, less compute. `None`: the device's default
    /// ([`crate::model::unpadded_by_default`]), padded under `--reproduce-pytorch`, whose dropout
    /// masks are drawn over the padded shapes.
    pub unpadded: Option<bool>,
    /// When checkpoints are written (HF's save_strategy) and every how many steps.
    pub save_strategy: SaveStrategy,
    pub save_steps: usize,
    /// Keep at most this many checkpoints (the best one is never deleted).
    pub save_total_limit: Option<usize>,
    /// A checkpoint folder or `latest` (the newest complete one in --output-dir).
    pub resume_from_checkpoint: Option<String>,
    /// Seconds every collective may take across ranks (HF's ddp_timeout).
    pub ddp_timeout: u64,
    /// The collectives' backend (HF's ddp_backend); `None`: Gloo on the CPU, NCCL on CUDA.
    #[serde(serialize_with = "backend_name")]
    pub ddp_backend: Option<BackendKind>,
    /// Guarantee the run PyTorch makes with the same seed (see README): refuse any setting under
    /// which bertfit's random draws or arithmetic could part from the reference script's.
    pub reproduce_pytorch: bool,
}

fn backend_name<S: serde::Serializer>(b: &Option<BackendKind>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match b {
        None => s.serialize_none(),
        Some(BackendKind::Gloo) => s.serialize_str("gloo"),
        Some(BackendKind::Nccl) => s.serialize_str("nccl"),
    }
}

fn padding_name<S: serde::Serializer>(p: &Padding, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(match p {
        Padding::Longest => "longest",
        Padding::MaxLength => "max-length",
    })
}

fn label_format<S: serde::Serializer>(f: &LabelFormat, s: S) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("LabelFormat", 2)?;
    st.serialize_field("problem_type", f.problem.hf_name())?;
    st.serialize_field("label_separator", &f.separator)?;
    st.end()
}

fn device_name<S: serde::Serializer>(d: &Device, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&super::report::device_name(*d))
}

impl TrainArgs {
    /// Whether the model runs on the packed real tokens: `--unpadded` if given, else the device's
    /// default, never under `--reproduce-pytorch`.
    pub fn unpadded(&self) -> bool {
        self.unpadded.unwrap_or(!self.reproduce_pytorch && crate::model::unpadded_by_default(self.device))
    }

    /// Checks the settings that do not need any file.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::usage("--epochs", "must be at least 1"));
        }
        if self.max_steps == Some(0) {
            return Err(Error::usage("--max-steps", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::usage("--batch-size", "must be at least 1"));
        }
        if self.eval_batch_size == 0 {
            return Err(Error::usage("--eval-batch-size", "must be at least 1"));
        }
        if !(self.do_train || self.do_eval || self.do_predict) {
            return Err(Error::usage(
                "--do-train",
                "nothing to do: give --do-train, --do-eval or --do-predict",
            ));
        }
        for (flag, n) in ["--max-train-samples", "--max-eval-samples", "--max-predict-samples"]
            .iter()
            .zip(self.max_samples)
        {
            if n == Some(0) {
                return Err(Error::usage(*flag, "must be at least 1"));
            }
            if n.is_some() && self.streaming {
                return Err(Error::usage(
                    *flag,
                    "needs the data in memory; it cannot be combined with --streaming",
                ));
            }
        }
        if self.shuffle_train_dataset.is_some() && self.streaming {
            return Err(Error::usage(
                "--shuffle-train-dataset",
                "needs the data in memory; it cannot be combined with --streaming",
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::usage(
                "--learning-rate",
                format!("must be a positive number, got {}", self.learning_rate),
            ));
        }
        if self.max_length < 2 {
            return Err(Error::usage("--max-length", "must be at least 2 ([CLS] and [SEP])"));
        }
        if self.columns.text_pair.is_some() && self.max_length < 3 {
            return Err(Error::usage(
                "--max-length",
                "must be at least 3 for sentence pairs ([CLS] and two [SEP])",
            ));
        }
        if let Some(n) = self.num_labels {
            if n < 2 {
                return Err(Error::usage("--num-labels", format!("must be at least 2, got {n}")));
            }
        }
        if self.reproduce_pytorch && self.device != Device::Cpu {
            return Err(Error::usage(
                "--reproduce-pytorch",
                "the identical run is guaranteed on CPU only (CUDA kernels draw dropout masks differently); pass --device cpu",
            ));
        }
        if self.reproduce_pytorch && self.group_by_length {
            return Err(Error::usage(
                "--reproduce-pytorch",
                "--group-by-length changes the batch order PyTorch's DataLoader makes; drop one of them",
            ));
        }
        if self.reproduce_pytorch
            && (self.max_samples.iter().any(Option::is_some) || self.shuffle_train_dataset.is_some())
        {
            return Err(Error::usage(
                "--reproduce-pytorch",
                "scripts/reference_train.py reads every row in file order; drop --max-*-samples and --shuffle-train-dataset",
            ));
        }
        if self.reproduce_pytorch && !(self.do_train && self.do_eval && !self.do_predict) {
            return Err(Error::usage(
                "--reproduce-pytorch",
                "the seed script trains and validates every epoch: drop --do-* flags or give --do-train --do-eval",
            ));
        }
        self.recipe.validate()?;
        if self.save_steps == 0 {
            return Err(Error::usage("--save-steps", "must be at least 1"));
        }
        if self.save_total_limit == Some(0) {
            return Err(Error::usage("--save-total-limit", "must be at least 1"));
        }
        if self.recipe.tf32 && !matches!(self.device, Device::Cuda(_)) {
            return Err(Error::usage("--tf32", "TF32 applies to CUDA matmuls; the device is not CUDA"));
        }
        if self.recipe.label_smoothing > 0.0
            && self.label_format.problem != crate::data::labels::ProblemType::SingleLabelClassification
        {
            return Err(Error::usage("--label-smoothing", "applies to single-label classification only"));
        }
        if self.recipe.best_model_metric().is_some() && !self.do_eval {
            return Err(Error::usage(
                "--metric-for-best-model",
                "choosing the best model (or stopping early) needs evaluations: add --do-eval",
            ));
        }
        if self.reproduce_pytorch && self.recipe.precision != Precision::Fp32 {
            return Err(Error::usage(
                "--reproduce-pytorch",
                "the identical run is guaranteed in fp32 only (low-precision kernels round differently); drop --precision",
            ));
        }
        if self.reproduce_pytorch
            && (self.recipe.eval_steps.is_some() || self.recipe.best_model_metric().is_some())
        {
            return Err(Error::usage(
                "--reproduce-pytorch",
                "scripts/reference_train.py evaluates once per epoch and keeps the last model; drop --eval-steps, \
                 --metric-for-best-model, --early-stopping-patience and --load-best-model-at-end",
            ));
        }
        if self.reproduce_pytorch && self.unpadded == Some(true) {
            return Err(Error::usage(
                "--reproduce-pytorch",
                "--unpadded draws dropout masks over the packed tokens, not PyTorch's padded shapes; drop one of them",
            ));
        }
        if self.reproduce_pytorch && self.streaming {
            return Err(Error::usage(
                "--reproduce-pytorch",
                "--streaming shuffles through a buffer, not in PyTorch's DataLoader order; drop one of them",
            ));
        }
        if self.streaming && (self.group_by_length || self.token_cache.is_some()) {
            let flag = if self.group_by_length { "--group-by-length" } else { "--token-cache" };
            return Err(Error::usage(
                flag,
                "needs the data in memory; it cannot be combined with --streaming",
            ));
        }
        if self.streaming && self.shuffle_buffer == 0 {
            return Err(Error::usage("--shuffle-buffer", "must be at least 1"));
        }
        crate::dist::ddp::choose_backend(self.ddp_backend, self.device)?;
        if self.prefetch == 0 {
            return Err(Error::usage("--prefetch", "must be at least 1"));
        }
        if let Some(t) = self.threads {
            if t < 1 {
                return Err(Error::usage("--threads", "must be at least 1"));
            }
        }
        Ok(())
    }
}
