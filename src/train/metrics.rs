//! What a run records: per-step and per-epoch figures, appended to `metrics.jsonl` in the output
//! folder as they happen (a crash keeps everything up to the last step), and accuracy.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub kind: &'static str,
    pub epoch: usize,
    pub step: usize,
    pub loss: f64,
    /// Data rows (1-based, as in error messages) of the batch's examples, in batch order.
    pub rows: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochRecord {
    pub kind: &'static str,
    pub epoch: usize,
    /// Mean of the step losses, as the seed script prints it.
    pub loss: f64,
    pub val_accuracy: Option<f64>,
    pub train_seconds: f64,
    pub train_samples_per_second: f64,
    /// Time the training step spent waiting for the next batch (the data pipeline falling behind).
    pub data_wait_seconds: f64,
}

pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    pub fn create(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(MetricsLog { path: path.to_path_buf(), file })
    }

    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let line = serde_json::to_string(record).unwrap_or_default();
        writeln!(self.file, "{line}").map_err(|e| Error::io(&self.path, e))
    }
}

/// Percentage of predictions equal to the labels.
pub fn accuracy(correct: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * correct as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn accuracy_is_a_percentage() {
        assert_eq!(super::accuracy(3, 4), 75.0);
        assert_eq!(super::accuracy(0, 0), 0.0);
    }
}
