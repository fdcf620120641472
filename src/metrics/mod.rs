//! Evaluation metrics on host data (slices, no tensors), computed as scikit-learn 1.9 and scipy 1.17
//! compute them, so the figures a run reports equal the ones a user gets from Python on the same
//! predictions (`tests/metrics.rs` checks them against `scripts/parity/metrics_reference.py`).
//!
//! - `classification`: single-label accuracy, precision / recall / F1 (macro, weighted, per class),
//!   confusion matrix, and sklearn's `classification_report` table.
//! - `multilabel`: 0/1 indicator matrices: micro and macro precision / recall / F1, subset accuracy,
//!   Hamming loss.
//! - `regression`: MSE, RMSE, MAE, Pearson r, Spearman rho, R^2.
//!
//! Every struct serialises with HF-style keys for the metrics log. A ratio with a zero denominator
//! is 0.0, as with sklearn's default `zero_division="warn"`; where sklearn would warn, the struct's
//! `warnings` says so (nothing here prints).
pub mod classification;
pub mod multilabel;
pub mod regression;

pub use classification::{classification_metrics, ClassMetrics, ClassificationMetrics};
pub use multilabel::{multilabel_metrics, MultiLabelMetrics};
pub use regression::{regression_metrics, RegressionMetrics};

use crate::error::{Error, Result};

/// The metric a run reports by name (run_classification.py's `--metric_name`, loaded there with
/// `evaluate.load`), computed with `evaluate`'s defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    Accuracy,
    F1,
    Precision,
    Recall,
    Mse,
}

/// `num / den`, or 0.0 when `den` is 0: sklearn's `_prf_divide` with `zero_division="warn"`.
fn prf_divide(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// Per-class precision, recall, F1 from counts, as `precision_recall_fscore_support` (beta = 1):
/// F1 is `2 tp / (true + predicted)`, not the harmonic mean of the rounded ratios. Records a warning
/// for each ill-defined ratio, as sklearn warns.
fn class_scores(
    label: &str,
    tp: u64,
    predicted: u64,
    support: u64,
    warnings: &mut Vec<String>,
) -> ClassMetrics {
    if predicted == 0 {
        warnings.push(format!("precision of '{label}' is ill-defined (no predicted samples): set to 0.0"));
    }
    if support == 0 {
        warnings.push(format!("recall of '{label}' is ill-defined (no true samples): set to 0.0"));
    }
    if predicted + support == 0 {
        warnings.push(format!("f1 of '{label}' is ill-defined (no true nor predicted samples): set to 0.0"));
    }
    ClassMetrics {
        label: label.to_string(),
        precision: prf_divide(tp as f64, predicted as f64),
        recall: prf_divide(tp as f64, support as f64),
        f1: prf_divide(2.0 * tp as f64, support as f64 + predicted as f64),
        support,
    }
}

/// The unweighted mean of one score over the classes (sklearn's macro average).
fn macro_mean(classes: &[ClassMetrics], score: impl Fn(&ClassMetrics) -> f64) -> f64 {
    classes.iter().map(score).sum::<f64>() / classes.len() as f64
}

/// Label names for `n` classes: the given ones (exactly `n`) or "0", "1", ... as sklearn prints them.
fn label_names(names: Option<&[String]>, n: usize) -> Result<Vec<String>> {
    match names {
        Some(names) if names.len() != n => {
            Err(Error::Runtime(format!("metrics: {} label names for {n} classes", names.len())))
        }
        Some(names) => Ok(names.to_vec()),
        None => Ok((0..n).map(|i| i.to_string()).collect()),
    }
}

/// Refuses empty input and unequal lengths: every metric needs one prediction per target.
fn check_lengths(what: &str, predictions: usize, targets: usize) -> Result<()> {
    if predictions != targets {
        return Err(Error::Runtime(format!(
            "metrics: {predictions} {what} predictions but {targets} targets"
        )));
    }
    if predictions == 0 {
        return Err(Error::Runtime(format!("metrics: no {what} predictions to score")));
    }
    Ok(())
}
