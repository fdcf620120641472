//! Single-label classification metrics, as sklearn's `accuracy_score`,
//! `precision_recall_fscore_support(labels=range(num_labels))`, `confusion_matrix` and
//! `classification_report(digits=4)` give them.
use std::fmt;

use serde::Serialize;

use super::{check_lengths, class_scores, label_names, macro_mean};
use crate::error::{Error, Result};

/// One class's row of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Examples whose true class is this one.
    pub support: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationMetrics {
    /// Fraction of predictions equal to the label (not a percentage).
    pub accuracy: f64,
    pub precision_macro: f64,
    pub recall_macro: f64,
    pub f1_macro: f64,
    /// Averages weighted by each class's support.
    pub precision_weighted: f64,
    pub recall_weighted: f64,
    pub f1_weighted: f64,
    /// Number of examples scored.
    pub support: u64,
    /// Every class `0..num_labels`, including those absent from both labels and predictions.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion_matrix[true][predicted]`: counts, rows are true classes, columns predicted ones.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// The ratios sklearn warns about (zero denominators, set to 0.0).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Scores class-index `predictions` against `labels` for classes `0..num_labels`, named by
/// `names` (or "0", "1", ... when `None`). Refuses empty or unequal inputs and any index
/// `>= num_labels`.
pub fn classification_metrics(
    predictions: &[usize],
    labels: &[usize],
    num_labels: usize,
    names: Option<&[String]>,
) -> Result<ClassificationMetrics> {
    check_lengths("class", predictions.len(), labels.len())?;
    if num_labels == 0 {
        return Err(Error::Runtime("metrics: num_labels must be at least 1".into()));
    }
    let names = label_names(names, num_labels)?;
    let mut confusion = vec![vec![0u64; num_labels]; num_labels];
    for (i, (&p, &t)) in predictions.iter().zip(labels).enumerate() {
        if p >= num_labels || t >= num_labels {
            return Err(Error::Runtime(format!(
                "metrics: example {i} has prediction {p} and label {t}; classes are 0..{num_labels}"
            )));
        }
        confusion[t][p] += 1;
    }

    let mut warnings = Vec::new();
    let per_class: Vec<ClassMetrics> = (0..num_labels)
        .map(|c| {
            let tp = confusion[c][c];
            let predicted: u64 = confusion.iter().map(|row| row[c]).sum();
            let support: u64 = confusion[c].iter().sum();
            class_scores(&names[c], tp, predicted, support, &mut warnings)
        })
        .collect();

    let n = predictions.len() as u64;
    let correct: u64 = (0..num_labels).map(|c| confusion[c][c]).sum();
    // Every label is a class index, so the supports sum to n > 0: no zero-weight case here.
    let weighted = |score: fn(&ClassMetrics) -> f64| {
        per_class.iter().map(|c| score(c) * c.support as f64).sum::<f64>() / n as f64
    };
    Ok(ClassificationMetrics {
        accuracy: correct as f64 / n as f64,
        precision_macro: macro_mean(&per_class, |c| c.precision),
        recall_macro: macro_mean(&per_class, |c| c.recall),
        f1_macro: macro_mean(&per_class, |c| c.f1),
        precision_weighted: weighted(|c| c.precision),
        recall_weighted: weighted(|c| c.recall),
        f1_weighted: weighted(|c| c.f1),
        support: n,
        per_class,
        confusion_matrix: confusion,
        warnings,
    })
}

impl ClassificationMetrics {
    /// The lines of sklearn's `classification_report(..., digits=4)` for these figures, byte for
    /// byte: a header, one row per class, then accuracy, macro and weighted averages.
    pub fn summary_lines(&self) -> Vec<String> {
        const DIGITS: usize = 4;
        let longest_heading = "weighted avg".len();
        let name_width = self.per_class.iter().map(|c| c.label.chars().count()).max().unwrap_or(0);
        let w = name_width.max(longest_heading).max(DIGITS);
        let row = |name: &str, p: f64, r: f64, f: f64, s: u64| {
            format!("{name:>w$}  {p:>9.DIGITS$} {r:>9.DIGITS$} {f:>9.DIGITS$} {s:>9}")
        };
        let mut lines = vec![format!(
            "{:>w$}  {:>9} {:>9} {:>9} {:>9}",
            "", "precision", "recall", "f1-score", "support"
        )];
        lines.push(String::new());
        for c in &self.per_class {
            lines.push(row(&c.label, c.precision, c.recall, c.f1, c.support));
        }
        lines.push(String::new());
        lines.push(format!(
            "{:>w$}  {:>9} {:>9} {:>9.DIGITS$} {:>9}",
            "accuracy", "", "", self.accuracy, self.support
        ));
        lines.push(row("macro avg", self.precision_macro, self.recall_macro, self.f1_macro, self.support));
        lines.push(row(
            "weighted avg",
            self.precision_weighted,
            self.recall_weighted,
            self.f1_weighted,
            self.support,
        ));
        lines
    }
}

/// The classification report (see `summary_lines`), without a final newline.
impl fmt::Display for ClassificationMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary_lines().join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_scores_a_small_case() {
        // true:      0 0 1 1 2
        // predicted: 0 1 1 1 1   (class 2 never predicted)
        let m = classification_metrics(&[0, 1, 1, 1, 1], &[0, 0, 1, 1, 2], 3, None).unwrap();
        assert_eq!(m.confusion_matrix, vec![vec![1, 1, 0], vec![0, 2, 0], vec![0, 1, 0]]);
        assert_eq!(m.accuracy, 0.6);
        assert_eq!(m.per_class[1].precision, 0.5);
        assert_eq!(m.per_class[1].recall, 1.0);
        assert_eq!(m.per_class[2].precision, 0.0);
        assert_eq!(m.per_class[2].f1, 0.0);
        assert_eq!(m.per_class[0].f1, 2.0 / 3.0);
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert!(m.warnings[0].contains("precision of '2'"));
    }

    #[test]
    fn refuses_bad_input_without_panicking() {
        assert!(classification_metrics(&[], &[], 2, None).is_err());
        assert!(classification_metrics(&[0], &[0, 1], 2, None).is_err());
        assert!(classification_metrics(&[2], &[0], 2, None)
            .unwrap_err()
            .to_string()
            .contains("prediction 2"));
        assert!(classification_metrics(&[0], &[5], 2, None).is_err());
        assert!(classification_metrics(&[0], &[0], 0, None).is_err());
        assert!(classification_metrics(&[0], &[0], 2, Some(&["a".to_string()])).is_err());
    }

    #[test]
    fn report_has_one_row_per_class_and_three_averages() {
        let names = ["ham".to_string(), "spam".to_string()];
        let m = classification_metrics(&[0, 1, 1], &[0, 1, 0], 2, Some(&names)).unwrap();
        let lines = m.summary_lines();
        assert_eq!(lines.len(), 8);
        assert_eq!(lines[2], "         ham     1.0000    0.5000    0.6667         2");
        assert_eq!(lines[5], "    accuracy                         0.6667         3");
    }
}
