//! The records a run reports: one per step, per epoch, per checkpoint written or loaded (the
//! lines of `metrics.jsonl`).
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::train::mfu::StepFlops;

/// One training step.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub kind: &'static str,
    pub epoch: usize,
    pub step: usize,
    pub loss: f64,
    /// The learning rate the step used.
    pub lr: f64,
    /// fp16: whether the loss scaler skipped the step (an inf or NaN gradient).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<bool>,
    /// fp16: the loss scale after the step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// Data rows (1-based, as in error messages) of the step's examples (every micro-batch of an
    /// accumulation window), in order. In a multi-process run, rank 0's.
    pub rows: Vec<usize>,
    /// Multi-process runs: every rank's rows of the step, in rank order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank_rows: Option<Vec<Vec<usize>>>,
    /// The step's useful FLOPs (this rank's), their rate over the step's wall time and MFU
    /// against the run's peak (`train::mfu`); `None` in records made outside a run.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub flops: Option<StepFlops>,
    /// The global gradient norm before clipping (trainer_state.json's `grad_norm`; not a
    /// metrics.jsonl field).
    #[serde(skip)]
    pub grad_norm: f64,
}

/// One epoch.
#[derive(Debug, Clone, Serialize)]
pub struct EpochRecord {
    pub kind: &'static str,
    pub epoch: usize,
    /// Mean of the step losses, as the seed script prints it.
    pub loss: f64,
    /// Validation accuracy in percent (the seed's figure); `None` when nothing was validated.
    pub val_accuracy: Option<f64>,
    /// Mean cross-entropy over the validation rows.
    pub val_loss: Option<f64>,
    pub train_seconds: f64,
    pub train_samples_per_second: f64,
    /// Time the training step spent waiting for the next batch (the data pipeline falling behind).
    pub data_wait_seconds: f64,
    /// Multi-process runs: seconds spent averaging gradients across ranks (waiting for the slowest
    /// rank included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allreduce_seconds: Option<f64>,
    /// The epoch's useful FLOPs (this rank's steps in this process), over `train_seconds`, and
    /// MFU against the run's peak.
    #[serde(flatten)]
    pub flops: StepFlops,
}

/// A checkpoint written (`kind: "checkpoint"`) or loaded to resume (`kind: "checkpoint_load"`):
/// how long it took and its size on disk.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointRecord {
    pub kind: &'static str,
    pub step: usize,
    /// Wall time of the write (staging, fsync, swap, rotation) or of the load (weights, optimizer,
    /// generator state).
    pub seconds: f64,
    /// Bytes of the checkpoint's files.
    pub bytes: u64,
    /// As text (a folder name that is not UTF-8 is written lossily, not left out).
    #[serde(serialize_with = "path_text")]
    pub path: PathBuf,
}

fn path_text<S: serde::Serializer>(p: &Path, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&p.display().to_string())
}
