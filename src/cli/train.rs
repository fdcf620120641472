//! `bertfit train`'s flags (HF's names as aliases) and their conversion into [`TrainArgs`], which
//! `TrainArgs::validate` then checks as a whole.
use std::path::PathBuf;

use clap::Args;

use super::data::DataFlags;
use super::flags::{count, folder_flag, opt_count, DeviceFlags, MaxLengthFlag};
use super::recipe::RecipeFlags;
use crate::data::batch::Padding;
use crate::error::{Error, Result};
use crate::metrics::MetricName;
use crate::torch_ext::c10d::BackendKind;
use crate::train::args::{Conventions, SaveStrategy};
use crate::train::profile::ProfileOps;
use crate::train::TrainArgs;

#[derive(Debug, Args)]
pub struct TrainFlags {
    /// HF model folder (config.json, model.safetensors or pytorch_model.bin, vocab.txt), or a model
    /// name such as bert-base-uncased found offline in the Hugging Face cache.
    #[arg(long, visible_alias = "model-name-or-path")]
    pub model: String,
    #[command(flatten)]
    pub data: DataFlags,
    /// Where the fine-tuned model (config.json, model.safetensors, tokenizer files),
    /// training_args.json, metrics.jsonl and the *_results files are written.
    #[arg(long)]
    pub output_dir: PathBuf,
    /// Passes over the training rows (HF's num_train_epochs: a whole number, 3 or 3.0).
    #[arg(long, visible_alias = "num-train-epochs", default_value_t = 20.0, allow_negative_numbers = true)]
    pub epochs: f64,
    /// Train this many optimizer steps in all, over as many epochs as they take: like HF
    /// Trainer's max_steps, it overrides --epochs (the epoch in progress at the last step is
    /// reported and validated; -1: no limit).
    #[arg(long, allow_negative_numbers = true)]
    pub max_steps: Option<i64>,
    #[arg(
        long,
        visible_alias = "per-device-train-batch-size",
        default_value_t = 16,
        allow_negative_numbers = true
    )]
    pub batch_size: i64,
    /// Batch size of validation and prediction passes. Default: --batch-size.
    #[arg(long, visible_alias = "per-device-eval-batch-size", allow_negative_numbers = true)]
    pub eval_batch_size: Option<i64>,
    /// Adam learning rate (PyTorch's Adam: betas 0.9/0.999, eps 1e-8, no weight decay).
    #[arg(long, default_value_t = 1e-5, allow_negative_numbers = true)]
    pub learning_rate: f64,
    #[command(flatten)]
    pub max_length: MaxLengthFlag,
    /// Number of classes. Default: from the training labels (integer labels: largest + 1; names: count).
    #[arg(long, allow_negative_numbers = true)]
    pub num_labels: Option<i64>,
    /// Seeds libtorch's generator (torch.manual_seed): classifier init, shuffling, dropout.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Pad each batch to its longest example, or to --max-length as the seed script does.
    /// Default: longest; max-length under --reproduce-pytorch (the seed script's padding).
    #[arg(long, value_enum)]
    pub padding: Option<Padding>,
    /// HF's pad_to_max_length: the same as --padding max-length (false: --padding longest).
    #[arg(long)]
    pub pad_to_max_length: Option<bool>,
    /// Keep the training rows in file order instead of reshuffling them every epoch.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Batch examples of similar token length together (HF's group_by_length): less padding,
    /// the same per-example results; the batch order is then no longer PyTorch's.
    #[arg(long)]
    pub group_by_length: Option<bool>,
    /// Batches tokenized and collated ahead of the training step, on a background thread.
    #[arg(long, default_value_t = 4)]
    pub prefetch: usize,
    /// Read the data from its files every epoch instead of holding it in memory (for datasets
    /// larger than memory); shuffling then goes through a buffer of --shuffle-buffer examples.
    #[arg(long)]
    pub streaming: bool,
    /// Examples held in the streaming shuffle buffer: the larger, the closer to a full shuffle.
    #[arg(long, default_value_t = 10_000)]
    pub shuffle_buffer: usize,
    /// Keep tokenized data in this folder, keyed by the data files' contents, the tokenizer and
    /// --max-length, and reuse it on the next run.
    #[arg(long)]
    pub token_cache: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceFlags,
    /// Replace a previous run in --output-dir (HF's overwrite_output_dir). Its files and checkpoints
    /// are set aside in .bertfit-overwritten/ until this run saves its model, then deleted.
    #[arg(long, visible_alias = "overwrite-output-dir")]
    pub overwrite: Option<bool>,
    /// Make the very run scripts/reference_train.py makes with the same seed and flags: same
    /// example order, dropout masks, padding and initial classifier (CPU, fp32, one process).
    /// Settings that would break that are refused.
    #[arg(long)]
    pub reproduce_pytorch: bool,
    /// Train. Without any --do-* flag bertfit trains and validates after every epoch, as the seed
    /// script does; with them it does exactly what they say (HF's do_train).
    #[arg(long)]
    pub do_train: Option<bool>,
    /// Validate after every epoch (or once, without --do-train) and write eval_results.json.
    #[arg(long)]
    pub do_eval: Option<bool>,
    /// Predict the test rows at the end: predict_results.txt (and test_results.json when the test
    /// rows have labels).
    #[arg(long)]
    pub do_predict: Option<bool>,
    /// Use only the first N training rows (HF's max_train_samples).
    #[arg(long, allow_negative_numbers = true)]
    pub max_train_samples: Option<i64>,
    /// Use only the first N validation rows.
    #[arg(long, allow_negative_numbers = true)]
    pub max_eval_samples: Option<i64>,
    /// Use only the first N test rows.
    #[arg(long, allow_negative_numbers = true)]
    pub max_predict_samples: Option<i64>,
    /// Shuffle the training rows once before training (and before --max-train-samples keeps
    /// the first N), in the order 🤗 datasets' shuffle(seed=--shuffle-seed) gives (HF's
    /// shuffle_train_dataset); every epoch is reshuffled anyway unless --no-shuffle.
    #[arg(long)]
    pub shuffle_train_dataset: Option<bool>,
    #[arg(long, default_value_t = 42)]
    pub shuffle_seed: u64,
    /// HF's metric_name: also report eval_<name> as `evaluate` computes it (f1, precision and
    /// recall binary, or micro over multi-label; mse for regression), besides bertfit's metrics.
    #[arg(long, value_enum)]
    pub metric_name: Option<MetricName>,
    /// When stderr is not a terminal (a batch job, CI): a progress line every N optimizer steps
    /// (and at least every 30 s) instead of the progress bar.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub logging_steps: u64,
    /// The FLOP/s that MFU (metrics.jsonl's `mfu`) is measured against, e.g. a data sheet's
    /// figure. Default: this machine's GEMM peak in the run's compute dtype, measured once and
    /// cached (`bertfit bench-peak` measures again).
    #[arg(long, value_name = "FLOP/S", value_parser = positive_rate)]
    pub peak_flops: Option<f64>,
    /// A TOML file of these flags by their long names (`learning_rate = 2e-5`, `do_train = true`,
    /// `data = "x.csv"`); flags given on the command line win over it.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,

    // The headed groups come last: clap lists the flags without a heading under "Options".
    #[command(flatten)]
    pub recipe: RecipeFlags,
    /// Compute every per-token layer on the real tokens only (packed); attention on the CPU in
    /// groups of similar length, on CUDA with libtorch's varlen flash/memory-efficient kernels: the
    /// same per-example results with less compute (speed-ups in BENCHMARKS.md). Default: on for
    /// the CPU, off on CUDA until measured there, off with --reproduce-pytorch. `--unpadded false`
    /// keeps the padded layout.
    #[arg(long, help_heading = "Recipe")]
    pub unpadded: Option<bool>,
    #[command(flatten)]
    pub dist: DistFlags,
    #[command(flatten)]
    pub checkpoints: CheckpointFlags,
    #[command(flatten)]
    pub profile: ProfileFlags,
}

/// Where a training step's time goes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Profiling")]
pub struct ProfileFlags {
    /// Profile training steps by op with libtorch's profiler (torch.profiler's Kineto path): the
    /// first 2 steps are skipped, then --profile-steps steps (fewer if the epoch ends first) are
    /// recorded. Writes DIR/trace.json (chrome trace: ui.perfetto.dev), DIR/ops.txt (per op:
    /// calls, self time, total time, by self time) and DIR/ops.json, and prints the top ops. Only
    /// the main process of a multi-process run profiles.
    #[arg(long, value_name = "DIR")]
    pub profile_ops: Option<PathBuf>,
    /// Optimizer steps recorded by --profile-ops.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, requires = "profile_ops")]
    pub profile_steps: i64,
}

impl ProfileFlags {
    fn profile_ops(&self) -> Result<Option<ProfileOps>> {
        let Some(dir) = &self.profile_ops else { return Ok(None) };
        folder_flag("--profile-ops", dir)?;
        Ok(Some(ProfileOps { dir: dir.clone(), steps: count("--profile-steps", self.profile_steps, 1)? }))
    }
}

/// Multi-process runs (scripts/launch-local.sh, torchrun, srun).
#[derive(Debug, Args)]
#[command(next_help_heading = "Distributed")]
pub struct DistFlags {
    /// Seconds a collective may wait for the other ranks before the run fails naming the lost
    /// rank (multi-process runs: scripts/launch-local.sh, torchrun, srun).
    #[arg(long, default_value_t = 1800)]
    pub ddp_timeout: u64,
    /// The collectives' backend in a multi-process run: gloo (CPU; the default there) or nccl
    /// (CUDA; the default there). Named in a launch of one process (WORLD_SIZE=1), it makes a
    /// process group of one, as torchrun + DDP would (a one-process run otherwise has none).
    #[arg(long, value_enum)]
    pub ddp_backend: Option<BackendKind>,
}

/// When checkpoints are written, how many are kept, and which one a run continues from.
#[derive(Debug, Args)]
#[command(next_help_heading = "Checkpoints")]
pub struct CheckpointFlags {
    /// When checkpoints (output_dir/checkpoint-<step>/) are written: steps, epoch, no, or best
    /// (after an evaluation that gives a new best --metric-for-best-model).
    #[arg(long, value_enum, default_value_t = SaveStrategy::Steps)]
    pub save_strategy: SaveStrategy,
    /// Every this many optimizer steps (with --save-strategy steps).
    #[arg(long, default_value_t = 500, allow_negative_numbers = true)]
    pub save_steps: i64,
    /// Keep at most N checkpoints, never deleting the newest nor the best one (so 1 with a best
    /// model that is not the newest keeps two, as HF does).
    #[arg(long, allow_negative_numbers = true)]
    pub save_total_limit: Option<i64>,
    /// Continue the run saved in a checkpoint folder, or `latest` in --output-dir: the same
    /// remaining steps, order and final weights as the uninterrupted run. `auto`: `latest` if
    /// --output-dir holds a checkpoint, else a fresh start (and nothing to do if it holds this
    /// run finished): the value for a job that may be requeued. A checkpoint of another run
    /// (other model or data files, seed, learning rate, ...) is refused naming what differs.
    #[arg(long)]
    pub resume_from_checkpoint: Option<String>,
}

/// HF passes epochs as a float (`3.0`); bertfit trains whole epochs.
fn whole_epochs(v: f64) -> Result<usize> {
    if !(v.is_finite() && v >= 1.0 && v.fract() == 0.0 && v <= 1e6) {
        return Err(Error::usage(
            "--epochs",
            format!(
                "must be a whole number of epochs, at least 1, got {v} (use --max-steps to stop mid-epoch)"
            ),
        ));
    }
    Ok(v as usize)
}

impl TrainFlags {
    /// The flags converted into settings, then validated (`TrainArgs::validate`).
    pub fn into_args(self) -> Result<TrainArgs> {
        folder_flag("--output-dir", &self.output_dir)?;
        if let Some(cache) = &self.token_cache {
            folder_flag("--token-cache", cache)?;
        }
        let padding = self.padding()?;
        let (do_train, do_eval, do_predict) = self.what_to_do();
        let batch_size = count("--batch-size", self.batch_size, 1)?;
        let recipe = self.recipe.recipe()?;
        let device = self.device.device()?;
        let args = TrainArgs {
            data: self.data.source()?,
            columns: self.data.columns(),
            label_format: self.data.label_format()?,
            epochs: whole_epochs(self.epochs)?,
            max_steps: match self.max_steps {
                None | Some(-1) => None,
                Some(v) => Some(count("--max-steps", v, 1)?),
            },
            batch_size,
            eval_batch_size: opt_count("--eval-batch-size", self.eval_batch_size, 1)?.unwrap_or(batch_size),
            learning_rate: self.learning_rate,
            max_length: self.max_length.max_length()?,
            num_labels: self.num_labels,
            seed: self.seed,
            padding,
            group_by_length: self.group_by_length.unwrap_or(false),
            prefetch: self.prefetch,
            streaming: self.streaming,
            shuffle_buffer: self.shuffle_buffer,
            shuffle: !self.no_shuffle,
            threads: self.device.threads()?,
            device,
            device_auto: self.device.device_auto(),
            overwrite: self.overwrite.unwrap_or(false),
            reproduce_pytorch: self.reproduce_pytorch,
            peak_flops: self.peak_flops,
            recipe,
            unpadded: self.unpadded,
            ddp_timeout: self.dist.ddp_timeout,
            ddp_backend: self.dist.ddp_backend,
            save_strategy: self.checkpoints.save_strategy,
            save_steps: count("--save-steps", self.checkpoints.save_steps, 1)?,
            save_total_limit: opt_count("--save-total-limit", self.checkpoints.save_total_limit, 1)?,
            do_train,
            do_eval,
            do_predict,
            max_samples: self.max_samples()?,
            shuffle_train_dataset: self.shuffle_train_dataset.unwrap_or(false).then_some(self.shuffle_seed),
            resume_from_checkpoint: self.checkpoints.resume_from_checkpoint,
            token_cache: self.token_cache,
            output_dir: self.output_dir,
            model: self.model,
            conventions: Conventions { metric: self.metric_name, ..Conventions::default() },
            profile_ops: self.profile.profile_ops()?,
        };
        args.validate()?;
        Ok(args)
    }

    /// `--padding`, or HF's `--pad-to-max-length` (not both).
    fn padding(&self) -> Result<Padding> {
        Ok(match (self.padding, self.pad_to_max_length) {
            (Some(p), None) => p,
            (None, Some(true)) => Padding::MaxLength,
            (None, Some(false)) => Padding::Longest,
            (Some(_), Some(_)) => {
                return Err(Error::usage(
                    "--pad-to-max-length",
                    "give --padding or --pad-to-max-length, not both",
                ))
            }
            // The seed script pads every example to max_length; --reproduce-pytorch makes its run.
            (None, None) if self.reproduce_pytorch => Padding::MaxLength,
            (None, None) => Padding::Longest,
        })
    }

    /// HF's do_train, do_eval, do_predict; without any of them, the seed script's train and
    /// validate.
    fn what_to_do(&self) -> (bool, bool, bool) {
        let flags = [self.do_train, self.do_eval, self.do_predict];
        if flags.iter().all(Option::is_none) {
            return (true, true, false);
        }
        let [t, e, p] = flags.map(|f| f.unwrap_or(false));
        (t, e, p)
    }

    /// `--max-train-samples`, `--max-eval-samples`, `--max-predict-samples`.
    fn max_samples(&self) -> Result<[Option<usize>; 3]> {
        Ok([
            opt_count("--max-train-samples", self.max_train_samples, 1)?,
            opt_count("--max-eval-samples", self.max_eval_samples, 1)?,
            opt_count("--max-predict-samples", self.max_predict_samples, 1)?,
        ])
    }
}

/// `--peak-flops`: a positive, finite FLOP/s figure (1e12 or 1000000000000).
fn positive_rate(v: &str) -> std::result::Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("'{v}' is not a positive number of FLOP/s (e.g. 3.5e11)")),
    }
}
