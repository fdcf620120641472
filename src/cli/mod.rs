//! Command-line flags (clap derive; the `///` lines are the --help text), converted once into
//! validated settings.
use std::path::PathBuf;

use std::collections::BTreeSet;
use std::ffi::OsString;

use clap::builder::BoolishValueParser;
use clap::{Args, CommandFactory, Parser, Subcommand};
use tch::Device;

use crate::data::batch::Padding;
use crate::data::dataset::{Columns, DataSource};
use crate::data::labels::{LabelFormat, ProblemType};
use crate::error::{Error, Result};
use crate::train::args::{Recipe, SaveStrategy};
use crate::train::optim::AdamKind;
use crate::train::precision::Precision;
use crate::train::TrainArgs;

pub mod config_file;
pub mod hf;

#[derive(Debug, Parser)]
#[command(
    name = "bertfit",
    version,
    about = "Fine-tune Hugging Face BERT checkpoints for text classification, computing what PyTorch computes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fine-tune a BertForSequenceClassification and save it as an HF model folder.
    Train(TrainFlags),
    /// Read a dataset as training would (streaming) and report rows, labels, token lengths and
    /// truncation, or the first problem training would stop on.
    CheckData(CheckFlags),
    /// Predict every row of a data file with a fine-tuned model: the rows are written out with
    /// all their columns plus the model's label and class probabilities.
    Predict(PredictFlags),
    /// Loss and metrics of a fine-tuned model on labelled rows (HF's eval_* metrics), for its
    /// problem_type: single-label, multi-label or regression.
    Evaluate(EvaluateFlags),
    /// Draw a training run's metrics.jsonl (loss, learning rate, validation) as a PNG.
    Plot(PlotFlags),
    /// Join the process group from torchrun's or SLURM's variables and check every collective.
    #[command(hide = true)]
    DistSelftest(DistSelftestFlags),
}

/// Where the data is and which columns hold what (shared by `train` and `check-data`).
#[derive(Debug, Args)]
pub struct DataFlags {
    /// One data file (.csv, .tsv or .parquet) whose --split-column says train, val or test for
    /// each row (the seed script's data.csv). Or give --train-file and friends instead.
    #[arg(long, required_unless_present = "train_file", conflicts_with = "train_file")]
    pub data: Option<PathBuf>,
    /// Training rows in a file of their own (.csv, .tsv or .parquet), as HF's --train_file.
    #[arg(long)]
    pub train_file: Option<PathBuf>,
    /// Validation rows in a file of their own (with --train-file).
    #[arg(long, requires = "train_file")]
    pub validation_file: Option<PathBuf>,
    /// Test rows in a file of their own (with --train-file).
    #[arg(long, requires = "train_file")]
    pub test_file: Option<PathBuf>,
    /// The text column (HF's text_column_names, with one column).
    #[arg(long, default_value = "text", visible_aliases = ["text-column-names", "text-column-name"])]
    pub text_column: String,
    /// Joins several text columns in HF's run_classification.py; bertfit reads one text column, so
    /// this changes nothing (accepted so HF command lines run).
    #[arg(long, hide = true)]
    pub text_column_delimiter: Option<String>,
    /// Second text of sentence-pair tasks (gets token type 1).
    #[arg(long)]
    pub text_pair_column: Option<String>,
    #[arg(long, default_value = "label", visible_alias = "label-column-name")]
    pub label_column: String,
    /// Values: train; val, validation or dev; test.
    #[arg(long, default_value = "split")]
    pub split_column: String,
    /// HF's problem_type: one class per row (cross-entropy), several per row (`a|b` or `[0, 3]`;
    /// binary cross-entropy per class) or a number per row (regression, mean squared error).
    #[arg(long, value_enum, default_value_t = ProblemType::SingleLabelClassification)]
    pub problem_type: ProblemType,
    /// Separates the label names of a multi-label cell.
    #[arg(long, default_value = "|")]
    pub label_separator: String,
}

impl DataFlags {
    pub fn source(&self) -> Result<DataSource> {
        match (&self.data, &self.train_file) {
            (Some(path), _) => Ok(DataSource::SplitColumn(path.clone())),
            (None, Some(train)) => Ok(DataSource::Files {
                train: train.clone(),
                validation: self.validation_file.clone(),
                test: self.test_file.clone(),
            }),
            (None, None) => Err(Error::usage("--data", "give --data or --train-file")),
        }
    }

    pub fn label_format(&self) -> Result<LabelFormat> {
        if self.label_separator.is_empty() {
            return Err(Error::usage("--label-separator", "must not be empty"));
        }
        Ok(LabelFormat { problem: self.problem_type, separator: self.label_separator.clone() })
    }

    pub fn columns(&self) -> Columns {
        Columns {
            text: self.text_column.clone(),
            text_pair: self.text_pair_column.clone(),
            label: self.label_column.clone(),
            split: self.split_column.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct CheckFlags {
    /// HF model folder or cached model name, for its tokenizer (the weights are not read).
    #[arg(long)]
    pub model: String,
    #[command(flatten)]
    pub data: DataFlags,
    /// Report how many rows this many tokens would truncate.
    #[arg(long, default_value_t = 512)]
    pub max_length: usize,
    /// Number of classes, as `train --num-labels` (checks integer labels against it).
    #[arg(long)]
    pub num_labels: Option<i64>,
}

/// `--flag`, `--flag true` or `--flag false` (HF's boolean flags take an optional value).
const BOOL: &str = "true";

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
    /// Stop after this many training steps in all (the epoch in progress is then reported and
    /// validated), like HF Trainer's max_steps (-1: no limit).
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
    /// Tokens per example, [CLS] and [SEP] included; longer texts are truncated.
    #[arg(long, visible_alias = "max-seq-length", default_value_t = 512, allow_negative_numbers = true)]
    pub max_length: i64,
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
    #[arg(long, num_args = 0..=1, default_missing_value = BOOL, value_parser = BoolishValueParser::new())]
    pub pad_to_max_length: Option<bool>,
    /// Keep the training rows in file order instead of reshuffling them every epoch.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Batch examples of similar token length together (HF's group_by_length): less padding,
    /// the same per-example results; the batch order is then no longer PyTorch's.
    #[arg(long, num_args = 0..=1, default_missing_value = BOOL, value_parser = BoolishValueParser::new())]
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
    /// libtorch CPU threads, 1 to 4 per core (default: one per core).
    #[arg(long, allow_negative_numbers = true)]
    pub threads: Option<i64>,
    /// cpu, cuda, cuda:N, or auto (cuda when available; the run's first line says which).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Replace a previous run in --output-dir (HF's overwrite_output_dir). Its files and checkpoints
    /// are set aside in .bertfit-overwritten/ until this run saves its model, then deleted.
    #[arg(long, visible_alias = "overwrite-output-dir", num_args = 0..=1, default_missing_value = BOOL,
          value_parser = BoolishValueParser::new())]
    pub overwrite: Option<bool>,
    /// Make the very run scripts/reference_train.py makes with the same seed and flags: same
    /// example order, dropout masks, padding and initial classifier (CPU, fp32, one process).
    /// Settings that would break that are refused.
    #[arg(long)]
    pub reproduce_pytorch: bool,
    /// Train. Without any --do-* flag bertfit trains and validates after every epoch, as the seed
    /// script does; with them it does exactly what they say (HF's do_train).
    #[arg(long, num_args = 0..=1, default_missing_value = BOOL, value_parser = BoolishValueParser::new())]
    pub do_train: Option<bool>,
    /// Validate after every epoch (or once, without --do-train) and write eval_results.json.
    #[arg(long, num_args = 0..=1, default_missing_value = BOOL, value_parser = BoolishValueParser::new())]
    pub do_eval: Option<bool>,
    /// Predict the test rows at the end: predict_results.txt (and test_results.json when the test
    /// rows have labels).
    #[arg(long, num_args = 0..=1, default_missing_value = BOOL, value_parser = BoolishValueParser::new())]
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
    /// Shuffle the training rows once before training, with --shuffle-seed (HF's
    /// shuffle_train_dataset); every epoch is reshuffled anyway unless --no-shuffle.
    #[arg(long, num_args = 0..=1, default_missing_value = BOOL, value_parser = BoolishValueParser::new())]
    pub shuffle_train_dataset: Option<bool>,
    #[arg(long, default_value_t = 42)]
    pub shuffle_seed: u64,
    /// The metric the run reports (HF's metric_name); bertfit computes accuracy.
    #[arg(long)]
    pub metric_name: Option<String>,

    /// adam (the seed script's torch.optim.Adam: L2 decay in the gradient) or adamw (HF's:
    /// decoupled decay on all but biases and LayerNorm weights). HF's adamw_torch and
    /// adamw_torch_fused are accepted.
    #[arg(long, default_value = "adam", help_heading = "Recipe")]
    pub optim: String,
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, help_heading = "Recipe")]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true, help_heading = "Recipe")]
    pub adam_beta1: f64,
    #[arg(long, default_value_t = 0.999, allow_negative_numbers = true, help_heading = "Recipe")]
    pub adam_beta2: f64,
    #[arg(long, default_value_t = 1e-8, allow_negative_numbers = true, help_heading = "Recipe")]
    pub adam_epsilon: f64,
    /// Use the unfused optimizer (a kernel per parameter); the fused one gives equal results.
    #[arg(long, help_heading = "Recipe")]
    pub no_fused: bool,
    /// constant (the seed script's), linear, cosine or constant_with_warmup, as HF names them.
    #[arg(long, default_value = "constant", help_heading = "Recipe")]
    pub lr_scheduler_type: String,
    /// Optimizer steps of linear warmup from 0 to --learning-rate.
    #[arg(long, allow_negative_numbers = true, help_heading = "Recipe")]
    pub warmup_steps: Option<i64>,
    /// Warmup as a fraction of all optimizer steps (rounded up).
    #[arg(long, allow_negative_numbers = true, help_heading = "Recipe")]
    pub warmup_ratio: Option<f64>,
    /// Batches whose gradients are summed (each loss divided by the window) before one optimizer
    /// step; an epoch's last window may be shorter, as in HF Trainer.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true, help_heading = "Recipe")]
    pub gradient_accumulation_steps: i64,
    /// Clip the global gradient norm to this before each step (default: no clipping).
    #[arg(long, allow_negative_numbers = true, help_heading = "Recipe")]
    pub max_grad_norm: Option<f64>,
    /// Cross-entropy label smoothing (HF's label_smoothing_factor).
    #[arg(
        long,
        visible_alias = "label-smoothing-factor",
        default_value_t = 0.0,
        allow_negative_numbers = true,
        help_heading = "Recipe"
    )]
    pub label_smoothing: f64,
    /// fp32, bf16 or fp16: autocast for forward and loss (fp32 master weights); fp16 adds a loss
    /// scaler with torch.amp.GradScaler's rules.
    #[arg(long, default_value = "fp32", help_heading = "Recipe")]
    pub precision: String,
    /// HF's switch: the same as --precision bf16.
    #[arg(long, num_args = 0..=1, default_missing_value = BOOL, value_parser = BoolishValueParser::new(), help_heading = "Recipe")]
    pub bf16: Option<bool>,
    /// HF's switch: the same as --precision fp16.
    #[arg(long, num_args = 0..=1, default_missing_value = BOOL, value_parser = BoolishValueParser::new(), help_heading = "Recipe")]
    pub fp16: Option<bool>,
    /// TF32 tensor-core matmuls on CUDA.
    #[arg(long, num_args = 0..=1, default_missing_value = BOOL, value_parser = BoolishValueParser::new(), help_heading = "Recipe")]
    pub tf32: Option<bool>,
    /// Also evaluate on the validation rows every N optimizer steps.
    #[arg(long, allow_negative_numbers = true, help_heading = "Recipe")]
    pub eval_steps: Option<i64>,
    /// The metric that picks the best model: accuracy, f1_macro, f1_weighted, loss, ... (eval_
    /// prefix optional). The best model is the one saved.
    #[arg(long, help_heading = "Recipe")]
    pub metric_for_best_model: Option<String>,
    /// Default: true unless the metric is a loss.
    #[arg(long, num_args = 0..=1, default_missing_value = BOOL, value_parser = BoolishValueParser::new(), help_heading = "Recipe")]
    pub greater_is_better: Option<bool>,
    /// Stop after this many evaluations without improvement (HF's EarlyStoppingCallback); the
    /// best model is saved.
    #[arg(long, allow_negative_numbers = true, help_heading = "Recipe")]
    pub early_stopping_patience: Option<i64>,
    /// Compute every per-token layer on the real tokens only (packed); attention on the CPU in
    /// groups of similar length, on CUDA with libtorch's varlen flash/memory-efficient kernels: the
    /// same per-example results with less compute (CPU: 2x PyTorch on short texts, 4.8-6.3x on
    /// long ones; BENCHMARKS.md). Default: on for the CPU, off on CUDA until measured there, off
    /// with --reproduce-pytorch. `--unpadded false` keeps the padded layout.
    #[arg(long, num_args = 0..=1, default_missing_value = BOOL, value_parser = BoolishValueParser::new(), help_heading = "Recipe")]
    pub unpadded: Option<bool>,
    /// Seconds a collective may wait for the other ranks before the run fails naming the lost
    /// rank (multi-process runs: scripts/launch-local.sh, torchrun, srun).
    #[arg(long, default_value_t = 1800, help_heading = "Distributed")]
    pub ddp_timeout: u64,
    /// The collectives' backend in a multi-process run: gloo (CPU; the default there) or nccl
    /// (CUDA; the default there). Named in a launch of one process (WORLD_SIZE=1), it makes a
    /// process group of one, as torchrun + DDP would (a one-process run otherwise has none).
    #[arg(long, value_parser = ["gloo", "nccl"], help_heading = "Distributed")]
    pub ddp_backend: Option<String>,
    /// When checkpoints (output_dir/checkpoint-<step>/) are written: steps, epoch or no.
    #[arg(long, value_enum, default_value_t = SaveStrategy::Steps, help_heading = "Checkpoints")]
    pub save_strategy: SaveStrategy,
    /// Every this many optimizer steps (with --save-strategy steps).
    #[arg(long, default_value_t = 500, allow_negative_numbers = true, help_heading = "Checkpoints")]
    pub save_steps: i64,
    /// Keep at most N checkpoints, never deleting the newest nor the best one (so 1 with a best
    /// model that is not the newest keeps two, as HF does).
    #[arg(long, allow_negative_numbers = true, help_heading = "Checkpoints")]
    pub save_total_limit: Option<i64>,
    /// Continue the run saved in a checkpoint folder, or `latest` in --output-dir: the same
    /// remaining steps, order and final weights as the uninterrupted run. `auto`: `latest` if
    /// --output-dir holds a checkpoint, else a fresh start (and nothing to do if it holds this
    /// run finished): the value for a job that may be requeued. A checkpoint of another run
    /// (other model or data files, seed, learning rate, ...) is refused naming what differs.
    #[arg(long, help_heading = "Checkpoints")]
    pub resume_from_checkpoint: Option<String>,
    /// Save the best model seen at an evaluation rather than the last one.
    #[arg(long, num_args = 0..=1, default_missing_value = BOOL, value_parser = BoolishValueParser::new(), help_heading = "Recipe")]
    pub load_best_model_at_end: Option<bool>,

    /// When stderr is not a terminal (a batch job, CI): a progress line every N optimizer steps
    /// (and at least every 30 s) instead of the progress bar.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub logging_steps: u64,
    /// A TOML file of these flags by their long names (`learning_rate = 2e-5`, `do_train = true`,
    /// `data = "x.csv"`); flags given on the command line win over it.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
}

pub fn parse_device(s: &str) -> Result<Device> {
    match s {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => cuda(i),
            _ => Err(Error::usage("--device", format!("'{s}' is not cpu, cuda, cuda:N or auto"))),
        },
    }
}

fn cuda(i: usize) -> Result<Device> {
    if (i as i64) < tch::Cuda::device_count() {
        Ok(Device::Cuda(i))
    } else {
        Err(Error::usage(
            "--device",
            format!("cuda:{i} requested but libtorch sees {} CUDA device(s)", tch::Cuda::device_count()),
        ))
    }
}

/// A count from a flag: at least `min`, or an error naming the flag.
fn count(flag: &str, v: i64, min: i64) -> Result<usize> {
    if v < min {
        return Err(Error::usage(flag, format!("must be at least {min}, got {v}")));
    }
    usize::try_from(v).map_err(|_| Error::usage(flag, format!("{v} is too large")))
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

/// A flag naming a folder that a run makes if missing: neither the path nor a folder above it may
/// be a file. Checked before anything runs, so the message names the path instead of the OS's
/// "File exists" or "Not a directory" at the first write, after the model and data were read.
fn folder_flag(flag: &str, path: &std::path::Path) -> Result<()> {
    for p in path.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => return Err(Error::usage(flag, format!("{} is a file, expected a folder", p.display()))),
            // Missing (it will be made) or unreadable (the write will say why): look further up.
            Err(_) => continue,
        }
    }
    Ok(())
}

impl TrainFlags {
    pub fn into_args(self) -> Result<TrainArgs> {
        folder_flag("--output-dir", &self.output_dir)?;
        if let Some(cache) = &self.token_cache {
            folder_flag("--token-cache", cache)?;
        }
        if let Some(m) = self.metric_name.as_deref().filter(|m| *m != "accuracy") {
            return Err(Error::usage(
                "--metric-name",
                format!("'{m}' is not supported; bertfit reports accuracy"),
            ));
        }
        if self.data.text_column.contains(',') {
            return Err(Error::usage(
                "--text-column",
                format!(
                    "'{}' names several columns; bertfit reads one text column (and --text-pair-column for pairs)",
                    self.data.text_column
                ),
            ));
        }
        let padding = match (self.padding, self.pad_to_max_length) {
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
        };
        let any_do = self.do_train.is_some() || self.do_eval.is_some() || self.do_predict.is_some();
        let (do_train, do_eval, do_predict) = if any_do {
            (self.do_train.unwrap_or(false), self.do_eval.unwrap_or(false), self.do_predict.unwrap_or(false))
        } else {
            (true, true, false)
        };
        let max_samples = [
            ("--max-train-samples", self.max_train_samples),
            ("--max-eval-samples", self.max_eval_samples),
            ("--max-predict-samples", self.max_predict_samples),
        ]
        .map(|(flag, v)| v.map(|v| count(flag, v, 1)).transpose());
        let [train_n, eval_n, predict_n] = max_samples;
        let batch_size = count("--batch-size", self.batch_size, 1)?;
        let recipe = self.recipe()?;
        let device = parse_device(&self.device)?;
        let args = TrainArgs {
            model: self.model,
            data: self.data.source()?,
            columns: self.data.columns(),
            label_format: self.data.label_format()?,
            output_dir: self.output_dir,
            epochs: whole_epochs(self.epochs)?,
            max_steps: match self.max_steps {
                None | Some(-1) => None,
                Some(v) => Some(count("--max-steps", v, 1)?),
            },
            batch_size,
            eval_batch_size: self
                .eval_batch_size
                .map(|v| count("--eval-batch-size", v, 1))
                .transpose()?
                .unwrap_or(batch_size),
            learning_rate: self.learning_rate,
            max_length: count("--max-length", self.max_length, 2)?,
            num_labels: self.num_labels,
            seed: self.seed,
            padding,
            group_by_length: self.group_by_length.unwrap_or(false),
            prefetch: self.prefetch,
            streaming: self.streaming,
            shuffle_buffer: self.shuffle_buffer,
            token_cache: self.token_cache,
            shuffle: !self.no_shuffle,
            threads: crate::bounds::threads("--threads", self.threads)?,
            device,
            device_auto: self.device == "auto",
            overwrite: self.overwrite.unwrap_or(false),
            reproduce_pytorch: self.reproduce_pytorch,
            recipe,
            unpadded: self.unpadded,
            ddp_timeout: self.ddp_timeout,
            ddp_backend: self.ddp_backend.as_deref().map(|b| {
                use crate::torch_ext::c10d::BackendKind;
                if b == "nccl" {
                    BackendKind::Nccl
                } else {
                    BackendKind::Gloo
                }
            }),
            save_strategy: self.save_strategy,
            save_steps: count("--save-steps", self.save_steps, 1)?,
            save_total_limit: self.save_total_limit.map(|v| count("--save-total-limit", v, 1)).transpose()?,
            resume_from_checkpoint: self.resume_from_checkpoint.clone(),
            do_train,
            do_eval,
            do_predict,
            max_samples: [train_n?, eval_n?, predict_n?],
            shuffle_train_dataset: self.shuffle_train_dataset.unwrap_or(false).then_some(self.shuffle_seed),
        };
        args.validate()?;
        Ok(args)
    }
}

impl TrainFlags {
    /// The recipe flags, parsed and converted (values are range-checked in `Recipe::validate`).
    fn recipe(&self) -> Result<Recipe> {
        let (optim, fused) = match self.optim.as_str() {
            "adam" => (AdamKind::Adam, !self.no_fused),
            "adamw" | "adamw_torch" | "adamw-torch" => (AdamKind::AdamW, !self.no_fused),
            "adamw_torch_fused" | "adamw-torch-fused" if !self.no_fused => (AdamKind::AdamW, true),
            other => {
                return Err(Error::usage(
                    "--optim",
                    format!(
                        "'{other}' is not adam, adamw, adamw_torch or adamw_torch_fused (without --no-fused)"
                    ),
                ))
            }
        };
        let mut precision: Precision = self.precision.parse()?;
        for (flag, on, p) in [("--bf16", self.bf16, Precision::Bf16), ("--fp16", self.fp16, Precision::Fp16)]
        {
            if on == Some(true) {
                if precision != Precision::Fp32 && precision != p {
                    return Err(Error::usage(flag, format!("conflicts with --precision {precision}")));
                }
                precision = p;
            }
        }
        let opt_count = |flag: &str, v: Option<i64>, min: i64| v.map(|v| count(flag, v, min)).transpose();
        Ok(Recipe {
            optim,
            weight_decay: self.weight_decay,
            adam_beta1: self.adam_beta1,
            adam_beta2: self.adam_beta2,
            adam_epsilon: self.adam_epsilon,
            fused,
            lr_scheduler_type: self.lr_scheduler_type.parse()?,
            warmup_steps: opt_count("--warmup-steps", self.warmup_steps, 0)?,
            warmup_ratio: self.warmup_ratio,
            gradient_accumulation_steps: count(
                "--gradient-accumulation-steps",
                self.gradient_accumulation_steps,
                1,
            )?,
            max_grad_norm: self.max_grad_norm,
            label_smoothing: self.label_smoothing,
            precision,
            tf32: self.tf32.unwrap_or(false),
            eval_steps: opt_count("--eval-steps", self.eval_steps, 1)?,
            metric_for_best_model: self.metric_for_best_model.clone(),
            greater_is_better: self.greater_is_better,
            early_stopping_patience: opt_count("--early-stopping-patience", self.early_stopping_patience, 1)?,
            load_best_model_at_end: self.load_best_model_at_end.unwrap_or(false),
        })
    }
}

/// Parses the command line, HF's flag names and spellings included (see `hf.rs`), with the
/// settings of a `--config` file (see `config_file.rs`).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> std::result::Result<Cli, ParseFailure> {
    let mut known = BTreeSet::new();
    let mut command = Cli::command();
    command.build(); // each argument's action and value count, for config_file
    for sub in std::iter::once(&command).chain(command.get_subcommands()) {
        for arg in sub.get_arguments() {
            known.extend(arg.get_long().map(str::to_string));
            known.extend(arg.get_all_aliases().into_iter().flatten().map(str::to_string));
        }
    }
    let args = hf::normalize(args, &known).map_err(ParseFailure::Refused)?;
    let expanded = config_file::expand(args, &command).map_err(ParseFailure::Refused)?;
    Cli::try_parse_from(&expanded.args).map_err(|e| match expanded.blame(&e) {
        Some(named) => ParseFailure::Refused(named),
        None => ParseFailure::Clap(e),
    })
}

/// Why the command line was not accepted.
pub enum ParseFailure {
    /// An HF flag bertfit does not implement.
    Refused(Error),
    /// clap's own error (or --help / --version, which clap prints and exits 0 for).
    Clap(clap::Error),
}

/// The model and how it runs, shared by `predict` and `evaluate`.
#[derive(Debug, Args)]
pub struct InferenceFlags {
    /// A fine-tuned model folder (bertfit train's --output-dir, or an HF save_pretrained folder of
    /// BertForSequenceClassification), or a model name in the Hugging Face cache.
    #[arg(long, visible_alias = "model-name-or-path")]
    pub model: String,
    /// Tokens per example, [CLS] and [SEP] included; longer texts are truncated.
    #[arg(long, visible_alias = "max-seq-length", default_value_t = 512, allow_negative_numbers = true)]
    pub max_length: i64,
    /// Rows per forward pass.
    #[arg(
        long,
        visible_alias = "per-device-eval-batch-size",
        default_value_t = 64,
        allow_negative_numbers = true
    )]
    pub batch_size: i64,
    /// Batches tokenized ahead of the forward pass, on a background thread.
    #[arg(long, default_value_t = 4)]
    pub prefetch: usize,
    /// cpu, cuda, cuda:N, or auto (cuda when available).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// libtorch CPU threads, 1 to 4 per core (default: one per core).
    #[arg(long, allow_negative_numbers = true)]
    pub threads: Option<i64>,
}

impl InferenceFlags {
    pub fn into_args(self) -> Result<crate::predict::InferenceArgs> {
        Ok(crate::predict::InferenceArgs {
            model: self.model,
            max_length: count("--max-length", self.max_length, 2)?,
            batch_size: count("--batch-size", self.batch_size, 1)?,
            prefetch: self.prefetch,
            device: parse_device(&self.device)?,
            device_auto: self.device == "auto",
            threads: crate::bounds::threads("--threads", self.threads)?,
        })
    }
}

#[derive(Debug, Args)]
pub struct PredictFlags {
    #[command(flatten)]
    pub run: InferenceFlags,
    /// The rows to predict (.csv, .tsv or .parquet), read in batches: any size works.
    #[arg(long)]
    pub data: PathBuf,
    /// Where to write the rows with their predictions (.csv, .tsv or .parquet): every input column,
    /// then predicted_label and prob_<label> per class (multi-label models: predicted_labels and
    /// score_<label>; regression: predicted_value). Written whole or not at all.
    #[arg(long)]
    pub output: PathBuf,
    #[arg(long, default_value = "text", visible_aliases = ["text-column-names", "text-column-name"])]
    pub text_column: String,
    /// Second text of sentence-pair models (gets token type 1).
    #[arg(long)]
    pub text_pair_column: Option<String>,
    /// Replace --output if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

impl PredictFlags {
    pub fn into_args(self) -> Result<crate::predict::PredictArgs> {
        Ok(crate::predict::PredictArgs {
            run: self.run.into_args()?,
            data: self.data,
            output: self.output,
            text_column: self.text_column,
            text_pair_column: self.text_pair_column,
            overwrite: self.overwrite,
        })
    }
}

#[derive(Debug, Args)]
pub struct EvaluateFlags {
    #[command(flatten)]
    pub run: InferenceFlags,
    /// A data file with a --split-column: its validation rows (val, validation, dev) are evaluated.
    #[arg(long, required_unless_present = "validation_file", conflicts_with = "validation_file")]
    pub data: Option<PathBuf>,
    /// A file whose every row is evaluated (HF's --validation_file).
    #[arg(long)]
    pub validation_file: Option<PathBuf>,
    #[arg(long, default_value = "text", visible_aliases = ["text-column-names", "text-column-name"])]
    pub text_column: String,
    #[arg(long)]
    pub text_pair_column: Option<String>,
    /// Labels: names from the model's id2label, or class ids; for a multi-label model any number
    /// of them (`a|b`, `[0, 3]`, or empty for none); for a regression model a number.
    #[arg(long, default_value = "label", visible_alias = "label-column-name")]
    pub label_column: String,
    #[arg(long, default_value = "split")]
    pub split_column: String,
    /// Separates the label names of a multi-label cell.
    #[arg(long, default_value = "|")]
    pub label_separator: String,
    /// Also write the metrics to DIR/eval_results.json (the metrics are always printed on stdout).
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Print the metrics on stdout as JSON instead of HF's text table.
    #[arg(long)]
    pub json: bool,
    /// Write into an --output-dir that holds a previous run or evaluation: its eval_results.json
    /// is replaced (and all_results.json's eval_* keys), as HF's Trainer.save_metrics does.
    #[arg(long, visible_alias = "overwrite-output-dir")]
    pub overwrite: bool,
}

impl EvaluateFlags {
    pub fn into_args(self) -> Result<crate::predict::EvaluateArgs> {
        use crate::predict::EvalData;
        if let Some(dir) = &self.output_dir {
            folder_flag("--output-dir", dir)?;
        }
        let data = match (self.data, self.validation_file) {
            (Some(p), None) => EvalData::SplitColumn(p),
            (None, Some(p)) => EvalData::File(p),
            _ => return Err(Error::usage("--data", "give --data or --validation-file")),
        };
        Ok(crate::predict::EvaluateArgs {
            run: self.run.into_args()?,
            data,
            columns: Columns {
                text: self.text_column,
                text_pair: self.text_pair_column,
                label: self.label_column,
                split: self.split_column,
            },
            output_dir: self.output_dir,
            overwrite: self.overwrite,
            label_separator: self.label_separator,
        })
    }
}

#[derive(Debug, Args)]
pub struct PlotFlags {
    /// A training output folder (bertfit train's --output-dir) holding metrics.jsonl.
    pub dir: PathBuf,
    /// The PNG to write. Default: DIR/training.png.
    #[arg(long)]
    pub output: Option<PathBuf>,
}
/// `bertfit dist-selftest` (hidden): a launch check and the distributed tests' probe.
#[derive(Debug, Args)]
pub struct DistSelftestFlags {
    /// gloo (CPU) or nccl (GPU).
    #[arg(long, default_value = "gloo", value_parser = ["gloo", "nccl"])]
    pub backend: String,
    /// Seconds a rendezvous or collective may take (HF's --ddp_timeout).
    #[arg(long, default_value_t = 1800)]
    pub ddp_timeout: u64,
    /// After the checks, all-reduce this many times (0: until a rank fails).
    #[arg(long)]
    pub loops: Option<usize>,
    /// After the checks, time this many all-reduces of MiniLM-sized gradients.
    #[arg(long, default_value_t = 0)]
    pub bench: usize,
    /// After the checks, compare data-parallel gradients with one process on the whole batch.
    #[arg(long)]
    pub ddp_check: bool,
}

impl DistSelftestFlags {
    pub fn options(&self) -> crate::dist::selftest::SelftestOptions {
        use crate::torch_ext::c10d::BackendKind;
        crate::dist::selftest::SelftestOptions {
            backend: if self.backend == "nccl" { BackendKind::Nccl } else { BackendKind::Gloo },
            timeout: std::time::Duration::from_secs(self.ddp_timeout),
            loops: self.loops.map(|n| if n == 0 { None } else { Some(n) }).unwrap_or(Some(0)),
            bench: self.bench,
            ddp_check: self.ddp_check,
        }
    }
}
