//! `bertfit predict` and `bertfit evaluate`: a fine-tuned model run over rows.
use std::path::PathBuf;

use clap::Args;

use super::flags::{count, folder_flag, DeviceFlags, LabelColumns, MaxLengthFlag, TextColumns};
use crate::error::{Error, Result};
use crate::predict::{EvalData, EvaluateArgs, InferenceArgs, PredictArgs};

/// The model and how it runs, shared by `predict` and `evaluate`.
#[derive(Debug, Args)]
pub struct InferenceFlags {
    /// A fine-tuned model folder (bertfit train's --output-dir, or an HF save_pretrained folder of
    /// BertForSequenceClassification), or a model name in the Hugging Face cache.
    #[arg(long, visible_alias = "model-name-or-path")]
    pub model: String,
    #[command(flatten)]
    pub max_length: MaxLengthFlag,
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
    #[command(flatten)]
    pub device: DeviceFlags,
}

impl InferenceFlags {
    pub fn into_args(self) -> Result<InferenceArgs> {
        Ok(InferenceArgs {
            max_length: self.max_length.max_length()?,
            batch_size: count("--batch-size", self.batch_size, 1)?,
            prefetch: self.prefetch,
            device: self.device.device()?,
            device_auto: self.device.device_auto(),
            threads: self.device.threads()?,
            model: self.model,
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
    #[command(flatten)]
    pub columns: TextColumns,
    /// Replace --output if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

impl PredictFlags {
    pub fn into_args(self) -> Result<PredictArgs> {
        Ok(PredictArgs {
            run: self.run.into_args()?,
            data: self.data,
            output: self.output,
            text_column: self.columns.text_column,
            text_pair_column: self.columns.text_pair_column,
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
    #[command(flatten)]
    pub columns: LabelColumns,
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
    pub fn into_args(self) -> Result<EvaluateArgs> {
        if let Some(dir) = &self.output_dir {
            folder_flag("--output-dir", dir)?;
        }
        let data = match (self.data, self.validation_file) {
            (Some(p), None) => EvalData::SplitColumn(p),
            (None, Some(p)) => EvalData::File(p),
            _ => return Err(Error::usage("--data", "give --data or --validation-file")),
        };
        Ok(EvaluateArgs {
            run: self.run.into_args()?,
            data,
            columns: self.columns.columns(),
            output_dir: self.output_dir,
            overwrite: self.overwrite,
            label_separator: self.columns.label_separator,
        })
    }
}
