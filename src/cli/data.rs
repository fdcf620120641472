//! Where the training data is and how its columns are read (`train` and `check-data`).
use std::path::PathBuf;

use clap::Args;

use super::flags::LabelColumns;
use crate::data::dataset::{Columns, DataSource};
use crate::data::labels::{LabelFormat, ProblemType};
use crate::error::{Error, Result};

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
    // `conflicts_with = "data"` as well as `requires`: clap waives a requirement that conflicts
    // with a given flag, so with --data alone these files were silently ignored.
    /// Validation rows in a file of their own (with --train-file).
    #[arg(long, requires = "train_file", conflicts_with = "data")]
    pub validation_file: Option<PathBuf>,
    /// Test rows in a file of their own (with --train-file).
    #[arg(long, requires = "train_file", conflicts_with = "data")]
    pub test_file: Option<PathBuf>,
    #[command(flatten)]
    pub columns: LabelColumns,
    /// Joins several text columns in HF's run_classification.py; bertfit reads one text column, so
    /// this changes nothing (accepted so HF command lines run).
    #[arg(long, hide = true)]
    pub text_column_delimiter: Option<String>,
    /// HF's problem_type: one class per row (cross-entropy), several per row (`a|b` or `[0, 3]`;
    /// binary cross-entropy per class) or a number per row (regression, mean squared error).
    #[arg(long, value_enum, default_value_t = ProblemType::SingleLabelClassification)]
    pub problem_type: ProblemType,
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
        let separator = &self.columns.label_separator;
        if separator.is_empty() {
            return Err(Error::usage("--label-separator", "must not be empty"));
        }
        Ok(LabelFormat { problem: self.problem_type, separator: separator.clone(), ..LabelFormat::default() })
    }

    pub fn columns(&self) -> Columns {
        self.columns.columns()
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
