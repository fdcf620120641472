//! Validated training settings (the CLI converts its flags into this once), written into the
//! output folder as `training_args.json` next to the model.
use std::path::PathBuf;

use serde::Serialize;
use tch::Device;

use super::optim::AdamKind;
use super::precision::Precision;
use super::profile::ProfileOps;
use super::schedule::SchedulerType;
use crate::data::batch::Padding;
use crate::data::dataset::{Columns, DataSource};
use crate::data::labels::{LabelFormat, LabelList};
pub use crate::metrics::MetricName;
use crate::torch_ext::c10d::BackendKind;

mod validate;

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
    /// After each evaluation that gives a new best --metric-for-best-model (HF's `best`).
    Best,
}

/// HF Trainer's `logging_strategy`: when an entry of the run's loss, learning rate and gradient
/// norm goes into trainer_state.json's log_history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Logging {
    /// Every N optimizer steps: the mean loss of the steps since the last entry.
    Steps(usize),
    /// At the end of every epoch.
    Epoch,
    No,
}

/// What `train_loss` and each logged `loss` average (they differ only under gradient accumulation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainLoss {
    /// A step's loss is the mean of its micro-batches' losses (the seed script's loss; HF 4.x).
    WindowMean,
    /// A step's loss is the sum of its micro-batches' losses, as HF 5.x's Trainer reports it.
    WindowSum,
}

/// How a one-process run orders the training rows each epoch (a multi-process run uses
/// DistributedSampler either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataOrder {
    /// The seed script's shuffled DataLoader: a seed drawn from the run's generator each epoch.
    DataLoader,
    /// HF Trainer's: epoch `e` is a permutation drawn from a generator seeded `seed + e`
    /// (`data::sampler::SeedableRandomSampler`; `seed` is HF's data_seed, else its seed).
    HfTrainer { seed: u64 },
    /// HF Trainer's `train_sampling_strategy group_by_length` (`LengthGroupedSampler`): a
    /// `torch.randperm` from the run's generator each epoch (`data::sampler::GeneratorRandperm`),
    /// grouped by `input_ids` length in megabatches of train_batch_size x
    /// gradient_accumulation_steps (`data::sampler::group_by_length`).
    HfLengthGrouped,
}

/// When the run evaluates, logs and saves, and how it reports, where HF Trainer's conventions differ
/// from the seed script's. `bertfit train` keeps the seed script's ([`Conventions::default`]);
/// `bertfit run-classification` sets HF's from TrainingArguments.
#[derive(Debug, Clone, Serialize)]
pub struct Conventions {
    /// Evaluate on the validation rows at the end of every epoch (the seed script's; HF's
    /// `eval_strategy epoch`). HF's `steps` is `recipe.eval_steps`; its `no` sets neither.
    pub eval_each_epoch: bool,
    /// HF's logging_strategy and logging_steps, for trainer_state.json's log_history.
    pub logging: Logging,
    /// HF's logging_first_step: also log the first optimizer step.
    pub logging_first_step: bool,
    /// Write `checkpoint-<last step>` when training ends (HF Trainer does unless save_strategy is no).
    pub final_checkpoint: bool,
    /// HF's fractional num_train_epochs (1.5): the run stops after ceil(fraction x optimizer steps
    /// per epoch) steps; `TrainArgs::epochs` is then its ceiling.
    pub epoch_fraction: Option<f64>,
    pub train_loss: TrainLoss,
    /// The training rows' order in a one-process run.
    pub data_order: DataOrder,
    /// HF's metric_name: the metric keys results and evaluations add (`None`: the problem type's
    /// default, as run_classification.py picks it).
    pub metric: Option<MetricName>,
    /// HF's eval_delay: no evaluation during training before this step (eval steps) or epoch
    /// (evaluation every epoch); compared as HF compares it, so NaN never evaluates.
    pub eval_delay: f64,
    /// HF's eval_on_start: evaluate (and log it) before the first training step.
    pub eval_on_start: bool,
    /// HF Trainer's own rules where the seed script's differ, beyond the fields above:
    /// TrainingArguments' checks (`--load_best_model_at_end` needs the save and eval strategies
    /// to match), `train_loss` as HF averages it (over the steps, not the epochs), the results'
    /// `epoch` as HF's fractional state.epoch, log_history entries without bertfit's `kind`.
    pub hf_trainer: bool,
}

impl Default for Conventions {
    fn default() -> Self {
        Conventions {
            eval_each_epoch: true,
            logging: Logging::Steps(1),
            logging_first_step: false,
            final_checkpoint: false,
            epoch_fraction: None,
            train_loss: TrainLoss::WindowMean,
            data_order: DataOrder::DataLoader,
            metric: None,
            eval_delay: 0.0,
            eval_on_start: false,
            hf_trainer: false,
        }
    }
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
    /// `--precision auto`: the trainer picks `precision` when it knows the device
    /// ([`super::auto_precision`]); training_args.json records the choice, not "auto".
    #[serde(skip)]
    pub precision_auto: bool,
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
            precision_auto: false,
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

impl Recipe {
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
    /// The FLOP/s MFU is measured against (`--peak-flops`); `None`: the machine's measured GEMM
    /// peak in the run's compute dtype ([`crate::machine::peak_cache`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_flops: Option<f64>,
    /// The seed script's rhythms and reports, or HF Trainer's.
    pub conventions: Conventions,
    /// Profile some training steps by op (`--profile-ops`). A diagnostic, like the logging
    /// settings: not written into training_args.json.
    #[serde(skip)]
    pub profile_ops: Option<ProfileOps>,
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
    let hf = f.list == LabelList::Hf;
    let mut st = s.serialize_struct("LabelFormat", 2 + hf as usize)?;
    st.serialize_field("problem_type", f.problem.hf_name())?;
    st.serialize_field("label_separator", &f.separator)?;
    // Written only for run_classification.py's list, so `train`'s files (and their run identity)
    // are what they were.
    if hf {
        st.serialize_field("label_list", "run_classification")?;
    }
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
}
