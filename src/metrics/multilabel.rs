//! Multi-label metrics on 0/1 indicator matrices, as sklearn gives them for
//! `multilabel-indicator` targets: `precision_recall_fscore_support` micro and macro,
//! `accuracy_score` (subset accuracy) and `hamming_loss`.
use serde::Serialize;

use super::{check_lengths, class_scores, label_names, macro_mean, prf_divide, ClassMetrics};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultiLabelMetrics {
    /// Fraction of examples whose whole predicted label set equals the true one.
    pub subset_accuracy: f64,
    /// Fraction of (example, label) cells predicted wrong.
    pub hamming_loss: f64,
    /// Counts pooled over all labels.
    pub precision_micro: f64,
    pub recall_micro: f64,
    pub f1_micro: f64,
    /// Unweighted means over labels, every label counted.
    pub precision_macro: f64,
    pub recall_macro: f64,
    pub f1_macro: f64,
    /// Number of examples scored.
    pub support: u64,
    pub per_label: Vec<ClassMetrics>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Scores `predicted` against `truth`, both row-major `[examples x num_labels]` matrices of 0 and 1
/// (as a flattened tensor gives them), labels named by `names` (or "0", "1", ...). Refuses empty or
/// unequal inputs, a length that is not a multiple of `num_labels`, and any value other than 0 or 1.
pub fn multilabel_metrics(
    predicted: &[u8],
    truth: &[u8],
    num_labels: usize,
    names: Option<&[String]>,
) -> Result<MultiLabelMetrics> {
    check_lengths("multi-label", predicted.len(), truth.len())?;
    if num_labels == 0 || !truth.len().is_multiple_of(num_labels) {
        return Err(Error::Runtime(format!(
            "metrics: {} indicator values do not make rows of {num_labels} labels",
            truth.len()
        )));
    }
    if let Some(i) = predicted.iter().chain(truth).position(|&v| v > 1) {
        let (which, i) = if i < predicted.len() { ("predicted", i) } else { ("true", i - predicted.len()) };
        return Err(Error::Runtime(format!(
            "metrics: {which} indicator of example {}, label {} is not 0 or 1",
            i / num_labels,
            i % num_labels
        )));
    }
    let names = label_names(names, num_labels)?;
    let n = truth.len() / num_labels;

    let (mut tp, mut pred, mut true_) =
        (vec![0u64; num_labels], vec![0u64; num_labels], vec![0u64; num_labels]);
    let (mut exact_rows, mut wrong_cells) = (0u64, 0u64);
    for (p_row, t_row) in predicted.chunks_exact(num_labels).zip(truth.chunks_exact(num_labels)) {
        let mut row_wrong = 0u64;
        for (j, (&p, &t)) in p_row.iter().zip(t_row).enumerate() {
            tp[j] += u64::from(p & t);
            pred[j] += u64::from(p);
            true_[j] += u64::from(t);
            row_wrong += u64::from(p != t);
        }
        exact_rows += u64::from(row_wrong == 0);
        wrong_cells += row_wrong;
    }

    let mut warnings = Vec::new();
    let per_label: Vec<ClassMetrics> =
        (0..num_labels).map(|j| class_scores(&names[j], tp[j], pred[j], true_[j], &mut warnings)).collect();
    let (tp_all, pred_all, true_all) =
        (tp.iter().sum::<u64>() as f64, pred.iter().sum::<u64>() as f64, true_.iter().sum::<u64>() as f64);
    if pred_all == 0.0 {
        warnings.push("micro precision is ill-defined (no predicted labels): set to 0.0".into());
    }
    if true_all == 0.0 {
        warnings.push("micro recall is ill-defined (no true labels): set to 0.0".into());
    }
    Ok(MultiLabelMetrics {
        subset_accuracy: exact_rows as f64 / n as f64,
        hamming_loss: wrong_cells as f64 / (n * num_labels) as f64,
        precision_micro: prf_divide(tp_all, pred_all),
        recall_micro: prf_divide(tp_all, true_all),
        f1_micro: prf_divide(2.0 * tp_all, true_all + pred_all),
        precision_macro: macro_mean(&per_label, |c| c.precision),
        recall_macro: macro_mean(&per_label, |c| c.recall),
        f1_macro: macro_mean(&per_label, |c| c.f1),
        support: n as u64,
        per_label,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_a_small_case() {
        // 2 examples x 3 labels; label 2 never predicted nor true.
        let m = multilabel_metrics(&[1, 1, 0, 0, 1, 0], &[1, 0, 0, 0, 1, 0], 3, None).unwrap();
        assert_eq!(m.subset_accuracy, 0.5);
        assert_eq!(m.hamming_loss, 1.0 / 6.0);
        assert_eq!(m.precision_micro, 2.0 / 3.0);
        assert_eq!(m.recall_micro, 1.0);
        assert_eq!(m.f1_micro, 0.8);
        assert_eq!(m.per_label[2].f1, 0.0);
        assert_eq!(m.precision_macro, (1.0 + 0.5 + 0.0) / 3.0);
    }

    #[test]
    fn refuses_bad_input_without_panicking() {
        assert!(multilabel_metrics(&[], &[], 2, None).is_err());
        assert!(multilabel_metrics(&[0, 1], &[0, 1, 1, 0], 2, None).is_err());
        assert!(multilabel_metrics(&[0, 1, 1], &[0, 1, 1], 2, None).is_err());
        assert!(multilabel_metrics(&[0, 1], &[0, 1], 0, None).is_err());
        let err = multilabel_metrics(&[0, 1, 0, 1], &[0, 1, 2, 1], 2, None).unwrap_err().to_string();
        assert!(err.contains("true indicator of example 1, label 0"), "{err}");
    }
}
