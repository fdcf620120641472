//! Command-line flags (clap derive; the `///` lines are the --help text), converted once into
//! validated settings.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tch::Device;

use crate::data::batch::Padding;
use crate::data::dataset::{Columns, DataSource};
use crate::error::{Error, Result};
use crate::train::TrainArgs;

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fine-tune a BertForSequenceClassification and save it as an HF model folder.
    Train(TrainFlags),
    /// Read a dataset as training would (streaming) and report rows, labels, token lengths and
    /// truncation, or the first problem training would stop on.
    CheckData(CheckFlags),
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
    #[arg(long, default_value = "text")]
    pub text_column: String,
    /// Second text of sentence-pair tasks (gets token type 1).
    #[arg(long)]
    pub text_pair_column: Option<String>,
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// Values: train; val, validation or dev; test.
    #[arg(long, default_value = "split")]
    pub split_column: String,
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

#[derive(Debug, Args)]
pub struct TrainFlags {
    /// HF model folder (config.json, model.safetensors or pytorch_model.bin, vocab.txt), or a model
    /// name such as bert-base-uncased found offline in the Hugging Face cache.
    #[arg(long)]
    pub model: String,
    #[command(flatten)]
    pub data: DataFlags,
    /// Where the fine-tuned model (config.json, model.safetensors, tokenizer files),
    /// training_args.json and metrics.jsonl are written.
    #[arg(long)]
    pub output_dir: PathBuf,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Stop after this many training steps in all (the epoch in progress is then reported and
    /// validated), like HF Trainer's max_steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Adam learning rate (PyTorch's Adam: betas 0.9/0.999, eps 1e-8, no weight decay).
    #[arg(long, default_value_t = 1e-5)]
    pub learning_rate: f64,
    /// Tokens per example, [CLS] and [SEP] included; longer texts are truncated.
    #[arg(long, default_value_t = 512)]
    pub max_length: usize,
    /// Number of classes. Default: from the training labels (integer labels: largest + 1; names: count).
    #[arg(long)]
    pub num_labels: Option<i64>,
    /// Seeds libtorch's generator (torch.manual_seed): classifier init, shuffling, dropout.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Pad each batch to its longest example, or to --max-length as the seed script does.
    #[arg(long, value_enum, default_value_t = Padding::Longest)]
    pub padding: Padding,
    /// Keep the training rows in file order instead of reshuffling them every epoch.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Batch examples of similar token length together (HF's group_by_length): less padding,
    /// the same per-example results; the batch order is then no longer PyTorch's.
    #[arg(long)]
    pub group_by_length: bool,
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
    /// libtorch CPU threads (default: one per core).
    #[arg(long)]
    pub threads: Option<i32>,
    /// cpu, cuda, cuda:N, or auto (cuda when available).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Replace a model already in --output-dir.
    #[arg(long)]
    pub overwrite: bool,
    /// Make the very run scripts/reference_train.py makes with the same seed and flags: same
    /// example order, dropout masks and initial classifier (CPU, fp32, one process). Settings that
    /// would break that are refused.
    #[arg(long)]
    pub reproduce_pytorch: bool,
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

impl TrainFlags {
    pub fn into_args(self) -> Result<TrainArgs> {
        let args = TrainArgs {
            model: self.model,
            data: self.data.source()?,
            columns: self.data.columns(),
            output_dir: self.output_dir,
            epochs: self.epochs,
            max_steps: self.max_steps,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            max_length: self.max_length,
            num_labels: self.num_labels,
            seed: self.seed,
            padding: self.padding,
            group_by_length: self.group_by_length,
            prefetch: self.prefetch,
            streaming: self.streaming,
            shuffle_buffer: self.shuffle_buffer,
            token_cache: self.token_cache,
            shuffle: !self.no_shuffle,
            threads: self.threads,
            device: parse_device(&self.device)?,
            overwrite: self.overwrite,
            reproduce_pytorch: self.reproduce_pytorch,
        };
        args.validate()?;
        Ok(args)
    }
}
